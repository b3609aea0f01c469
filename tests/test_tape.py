"""The NumPy backend's recorded (tape) evaluation of elementwise maps: bitwise the direct evaluation, and a silent
fallback to it for maps it cannot record."""

import math
import warnings
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rds
from rds import _tape
from rds import models as m

RNG = np.random.default_rng(0)
_X = RNG.standard_normal(20)
_Y = 2 * np.tanh(_X) + 0.1 * RNG.standard_normal(20)


def builtin_systems():
    fa = m.fukumizu_amari(eta=0.1, sigma2=1.0)
    return {
        "fa": fa, "fa_batch3": m.fukumizu_amari(eta=0.1, sigma2=1.0, batch=3),
        "fa_independent": fa.replace(common_noise=False),
        "reduced": m.fukumizu_amari_reduced(eta=0.1, sigma2=0.5, batch=2),
        "pqrs": m.fukumizu_amari_pqrs(eta=0.1, sigma2=1.0, batch=2),
        "conjugate": m.pqrs_system(fa), "conditional": m.conditional_r_system(fa),
        "phase_oscillator": m.phase_oscillator(omega=1.0, sigma2=0.5, dt=0.01),
        "teacher_student": m.teacher_student(_X, _Y, hidden=2),
        "teacher_student_2d": m.teacher_student(RNG.standard_normal((20, 2)), _Y, hidden=2),
    }


SYSTEMS = builtin_systems()


def direct(f):
    """``f()`` with every map evaluated directly (the reference)."""
    _tape.TapedMap.enabled = False
    try:
        return f()
    finally:
        _tape.TapedMap.enabled = True


def bits(x):
    return np.ascontiguousarray(x).tobytes()


def same_results(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_results(a[k], b[k]) for k in a if k != "backend")
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bits(a) == bits(b)


def tapes(system, which=0):
    """Recorded tapes of the NumPy kernels' map (0) or Jacobian (1): True where recorded, False where direct."""
    return [t is not None for t in system._get_kernels("numpy")._taped[which]._tapes.values()]


def initial(system, members=40, scale=1.0, seed=1):
    return np.random.default_rng(seed).uniform(-scale, scale, (members, system.nvar))


# ------------------------------------------------------------------------------------------------ built-in models
@pytest.mark.parametrize("name", SYSTEMS)
def test_builtin_models_are_recorded_and_bitwise_equal_on_every_service(name):
    s = SYSTEMS[name]
    X0 = initial(s)
    box = rds.regions.Box([-1.2] * s.nvar, [1.2] * s.nvar, variables=s.variables)
    runs = [lambda: s.evolve(X0, 25, seed=3, backend="numpy"),
            lambda: s.trajectory(X0, 25, every=5, seed=3, backend="numpy").state.values,
            lambda: s.first_exit(X0, box, 25, seed=3, backend="numpy"),
            lambda: s.propagate_tangent(X0, 25, seed=3, qr_every=2, backend="numpy")]
    for run in runs:
        assert same_results(run(), direct(run))
    assert tapes(s) and all(tapes(s))  # recorded and validated: the map never falls back
    if name != "pqrs":  # (its Jacobian is the complex-step one, which is evaluated directly)
        assert tapes(s, 1) and all(tapes(s, 1))


def test_divergence_and_nans_are_unchanged():
    def squaring(state, xi, params):
        x, y = state
        return (x * x * params[0] + xi[0], np.tanh(y) + x)

    s = rds.RandomDynamicalSystem(squaring, noise=rds.noise.Gaussian(0.01), variables=("x", "y"), params=(1.0,))
    X0 = initial(s, 60, scale=1.5)
    run = lambda: s.trajectory(X0, 40, every=1, seed=2, backend="numpy")  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = run(), direct(run)
    assert 0 < a.attrs["n_diverged"] == b.attrs["n_diverged"] < 60
    assert same_results(a.state.values, b.state.values) and same_results(a.diverged.values, b.diverged.values)
    assert tapes(s) == [True]
    fa = m.fukumizu_amari(eta=3.0, sigma2=4.0)
    X0 = initial(fa, 60, scale=4.0)
    X0[:3] = [[np.inf, 0, 0, 0], [np.nan, 1, 1, 1], [1e308, 1e308, 1e308, 1e308]]
    # the map itself on non-finite states: the replayed tape gives the direct values bit for bit
    taped = _tape.TapedMap(fa.step, False)
    state = tuple(np.ascontiguousarray(X0[:, i]) for i in range(4))
    with np.errstate(all="ignore"):
        for xi in ([0.7], [np.inf], [np.nan], [-1e300]):
            xi = np.array(xi)
            assert same_results(taped(state, xi, fa.params), fa.step(state, xi, fa.params))
    assert all(t is not None for t in taped._tapes.values())


FA_STEP = m.fukumizu_amari().step
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(FLOATS, FLOATS, FLOATS, FLOATS), min_size=2, max_size=6),
       st.lists(st.lists(FLOATS, min_size=2, max_size=2), min_size=2, max_size=4),
       st.floats(-10, 10), st.booleans())
def test_replay_is_bitwise_the_direct_map_on_any_inputs(rows, xis, eta, int_eta):
    taped = _tape.TapedMap(FA_STEP, False)
    params = m.fukumizu_amari().params._replace(eta=int(eta) if int_eta else eta)
    state = tuple(np.array(c) for c in zip(*rows))
    with np.errstate(all="ignore"):
        for xi in xis:  # the first call records, the next ones replay
            xi = np.array(xi)
            assert same_results(taped(state, xi, params), FA_STEP(state, xi, params))


# ------------------------------------------------------------------------------------------------ user maps
def user_system(step, nvar=1, **kw):
    return rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(sigma2=0.01), variables=tuple("xyzw"[:nvar]),
                                     params=(0.5,), **kw)


def check_user(step, members=30, recorded=True, steps=20, **kw):
    s = user_system(step, **kw)
    X0 = initial(s, members, scale=0.9)
    run = lambda: s.evolve(X0, steps, seed=5, backend="numpy")  # noqa: E731
    assert same_results(run(), direct(run))
    assert set(tapes(s)) == {recorded}  # (the kernels, and their table, are shared by systems of one map)
    assert same_results(run(), direct(run))  # and again, from the table of layouts
    return s


def test_noise_only_functions_and_methods_are_recorded_and_printing_falls_back():
    def batch(state, xi, params):
        (x,) = state
        m, q = xi.mean(), np.dot(xi, xi)
        return (0.5 * x + m * np.sum(xi * xi) * 0.1 + q * x * 0.01 + xi.reshape(3, 1)[1, 0] * x,)

    def chatty(state, xi, params):
        (x,) = state
        print(end="")  # harmless
        if params[0] < 0:
            print(x)
        return (0.5 * x + xi[0],)

    def prints(state, xi, params):
        (x,) = state
        text = f"{xi[0]}"
        return (0.5 * x + len(text) * 1e-3,)

    s = rds.RandomDynamicalSystem(batch, noise=rds.noise.Gaussian(sigma2=0.5, batch=3), variables=("x",))
    X0 = initial(s, 30)
    assert same_results(s.evolve(X0, 10, backend="numpy"), direct(lambda: s.evolve(X0, 10, backend="numpy")))
    assert tapes(s) == [True]
    check_user(chatty, recorded=False)
    check_user(prints, recorded=False)


def test_a_branch_on_a_state_value_falls_back():
    def branchy(state, xi, params):
        (x,) = state
        if np.any(x > 0.5):
            return (0.9 * x + xi[0],)
        return (params[0] * np.sin(x) + xi[0],)

    check_user(branchy, recorded=False)


def test_a_branch_on_the_noise_falls_back():
    def noisy_branch(state, xi, params):
        (x,) = state
        a = 0.9 if xi[0] > 0 else 0.8
        return (a * x + xi[0],)

    check_user(noisy_branch, recorded=False)


def test_np_where_and_comparisons_are_recorded():
    def tent(state, xi, params):
        (x,) = state
        y = np.where(x < 0.0, -x, x)
        return (np.where(y > params[0], 1.0 - y, y) * 1.9 + 0.01 * np.abs(xi[0]) + (y >= 0.3) * 0.0,)

    check_user(tent)


def test_many_ufuncs_operators_and_noise_only_terms():
    def busy(state, xi, params):
        x, y = state
        c = np.exp(-xi[0] * xi[0]) + math.pi  # a per-step scalar from the noise
        r = np.sqrt(x * x + y * y + 1.0) ** 0.5
        u = np.maximum(np.tanh(x), -0.5) - np.minimum(y, 0.25) / (1.0 + r) + np.arctan2(y, x) * 0.01
        v = -(y // 3.0) + (x % 0.7) - abs(y) * params[0] + np.log1p(np.abs(u)) + 2 ** (-r)
        return (0.5 * u + 0.1 * c, 0.5 * v - c * 0.01)

    check_user(busy, nvar=2)


def test_member_counts_and_shapes_are_those_of_the_call():
    def shapes(state, xi, params):  # recorded on the first members, but shapes are those of all members
        x, y = state
        return (x * (1.0 / x.shape[0]) + xi[0] * len(y), y + x.size * 1e-3 + xi.shape[0])

    for members in (_tape.MIN_MEMBERS, _tape.RECORD_MEMBERS, _tape.RECORD_MEMBERS + 1, 200):
        check_user(shapes, nvar=2, members=members)
        check_user(shapes, nvar=2, members=members, common_noise=False)
    s = check_user(shapes, nvar=2, members=_tape.MIN_MEMBERS - 1)  # evaluated directly: no new layout
    assert len(s._get_kernels("numpy")._taped[0]._tapes) == 4


def test_math_on_a_traced_value_behaves_as_before():
    def scalar_only(state, xi, params):
        (x,) = state
        return (math.tanh(x) + xi[0],)

    s = user_system(scalar_only)
    for members in (1, 5):
        X0 = initial(s, members)
        outcome = []
        run = lambda x=X0: s.evolve(x, 5, backend="numpy")  # noqa: E731
        for f in (run, lambda r=run: direct(r)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    outcome.append(bits(f()))
            except Exception as e:  # the same error as before
                outcome.append((type(e), str(e)))
        assert outcome[0] == outcome[1]
    assert not any(tapes(s))
    taped = _tape.TapedMap(scalar_only, False)  # the map itself: the direct evaluation's error, unchanged
    for x in (np.array([0.3]), np.array([0.3, 0.4])):
        with pytest.raises(TypeError) as direct_error:
            scalar_only((x,), np.array([0.1]), (0.5,))
        with pytest.raises(TypeError) as taped_error:
            taped((x,), np.array([0.1]), (0.5,))
        assert str(taped_error.value) == str(direct_error.value)
    assert not taped._tapes

    def math_on_noise(state, xi, params):
        (x,) = state
        return (0.9 * x + math.tanh(xi[0]),)

    check_user(math_on_noise, recorded=False)


def test_in_place_updates_and_untraced_results_fall_back():
    def inplace(state, xi, params):
        (x,) = state
        g = 0.0 * x
        g += x * params[0]
        return (g + xi[0],)

    def constant_result(state, xi, params):
        x, y = state
        return (0.5 * x + xi[0], 0.25)

    def list_result(state, xi, params):
        (x,) = state
        return [0.5 * x + xi[0]]

    check_user(inplace, recorded=False)
    check_user(constant_result, nvar=2, recorded=False)
    check_user(list_result, recorded=False)


def test_parameters_of_other_types_fall_back_and_layouts_are_keyed():
    P = namedtuple("P", ["a"])

    def lin(state, xi, params):
        (x,) = state
        return (params[0] * x + xi[0],)

    taped = _tape.TapedMap(lin, False)
    x, xi = np.linspace(-1, 1, 7), np.array([0.1])
    for params in [(0.5,), (2,), P(0.5), (np.float64(0.5),), (np.array([0.5]),)]:
        for state in [(x,), (x[:3],)]:
            assert same_results(taped(state, xi, params), lin(state, xi, params))
            assert same_results(taped(state, xi, params), lin(state, xi, params))
    assert len(taped._tapes) == 6  # 3 recorded parameter types x 2 member counts
    assert same_results(taped((x,), np.array([0.1, 0.2]), (0.5,)), lin((x,), np.array([0.1, 0.2]), (0.5,)))
    assert len(taped._tapes) == 7  # another noise shape


def test_mismatching_tape_is_rejected():
    def lin(state, xi, params):
        (x,) = state
        return (params[0] * x + xi[0],)

    taped = _tape.TapedMap(lin, False)
    x, xi = np.linspace(-1, 1, 7), np.array([0.1])
    real = _tape.record
    try:  # a recording whose replay differs from the direct evaluation is never used
        _tape.record = lambda *a: _tape._Tape(lambda s, xi, p, b: (s[0] * 0.0,), (), 7)
        assert same_results(taped((x,), xi, (0.5,)), lin((x,), xi, (0.5,)))
    finally:
        _tape.record = real
    assert list(taped._tapes.values()) == [None]
    assert same_results(taped((x,), xi, (0.5,)), lin((x,), xi, (0.5,)))


def test_threads_share_the_kernels_without_sharing_buffers():
    fa = m.fukumizu_amari(eta=0.1, sigma2=1.0)
    X0 = initial(fa, 400)
    run = lambda ex: fa.evolve(X0, 30, seed=4, backend="numpy", executor=ex, chunk_size=50)  # noqa: E731
    with ThreadPoolExecutor(4) as ex:
        a = run(ex)
    assert same_results(a, direct(lambda: run(None)))


def test_the_store_masks_exactly_as_np_where():
    from rds.engine import _np_sel

    a = np.array([1.0, -0.0, 2.5])
    for ok in (np.array([True, True, True]), np.array([True, False, True]), np.True_, np.False_):
        for v in (a, a[::-1], a.astype(np.float32), a.astype(int), 0.5, np.float64(-0.0)):
            ref = np.broadcast_to(np.where(ok, v, np.nan), (3,)).astype(float)
            got = np.empty(3)
            got[:] = _np_sel(ok, v)
            assert bits(got) == bits(ref)

    def swap(state, xi, params):  # results that are the state's own rows (views) are copied before storing
        x, y = state
        return (y, x)

    s = user_system(swap, nvar=2)
    X0 = initial(s, 5)
    for steps in (1, 2, 3):
        assert same_results(s.evolve(X0, steps, backend="numpy"), X0[:, ::-1] if steps % 2 else X0)


GAIN = 0.5


def test_a_module_constant_set_anew_between_runs_is_seen_as_by_the_direct_evaluation():
    global GAIN

    def gain_map(state, xi, params):
        (x,) = state
        return (GAIN * np.tanh(x) + xi[0],)

    s = user_system(gain_map)
    X0 = initial(s, 20)
    run = lambda: s.evolve(X0, 10, seed=2, backend="numpy")  # noqa: E731
    try:
        first = run()
        assert same_results(first, direct(run)) and tapes(s) == [True]
        GAIN = 0.9
        second = run()  # re-recorded: the tape of GAIN = 0.5 is forgotten
        assert same_results(second, direct(run)) and not same_results(first, second)
    finally:
        GAIN = 0.5
