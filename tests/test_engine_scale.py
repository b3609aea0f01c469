"""Engine at scale: vectorisable elementary functions, and results independent of backend, chunking, thread count
and executor (process pool, dask cluster)."""

import math
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import numba
import numpy as np
import pytest

import rds
from rds import engine, fastmath

ATOL = 1e-12


def noisy_logistic(state, xi, params):
    """A user map defined in a test module (pickled by reference) that uses np.exp and np.sin."""
    (x,) = state
    return (params[0] * x * (1.0 - x) + 0.01 * np.sin(3.0 * x) * np.exp(-x * x) + xi[0],)


def user_system(common=True):
    return rds.RandomDynamicalSystem(noisy_logistic, noise=rds.noise.Gaussian(sigma2=1e-4), variables=("x",),
                                     params=(2.9,), name="noisy_logistic", common_noise=common)


def fa_initial(members, seed=0):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, (members, 4))


# ------------------------------------------------------------------------------------------------ fast functions
@numba.njit(error_model="numpy")
def _apply_all(x, out):
    # one kernel (one compilation); together these exercise every code path of rds.fastmath
    for i in range(x.size):
        v = x[i]
        out[0, i] = fastmath.fast_numpy.tanh(v)  # expm1
        out[1, i] = fastmath.fast_numpy.exp(v)
        out[2, i] = fastmath.fast_numpy.log1p(v)  # log
        out[3, i] = fastmath.fast_numpy.sinh(v)
        out[4, i] = fastmath.fast_numpy.sin(v)
        out[5, i] = fastmath.fast_numpy.cos(v)


NAMES = ["tanh", "exp", "log1p", "sinh", "sin", "cos"]


def test_fast_functions_are_accurate_to_a_few_ulp_and_handle_special_values():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 20000), rng.uniform(-40, 40, 20000), rng.uniform(-1e-8, 1e-8, 2000),
                        np.exp(rng.uniform(-700, 709, 20000)) * rng.choice([-1, 1], 20000),
                        10 ** rng.uniform(0, 15, 5000),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 709.5, 710.2, -745.0, 1e-310, 20.0, -20.0, 22.5]])
    out = np.empty((len(NAMES), x.size))
    with np.errstate(all="ignore"):
        _apply_all(x, out)
        for row, name in zip(out, NAMES):
            ref = getattr(np, name)(x)
            if name in ("sin", "cos"):  # documented: NaN for |x| >= 2**50
                assert np.all(np.isnan(row[np.abs(x) >= fastmath.TRIG_MAX]))
                keep = np.abs(x) < fastmath.TRIG_MAX
                row, ref = row[keep], ref[keep]
            same = (row == ref) | (np.isnan(row) & np.isnan(ref))
            ulp = np.abs(row - ref) / np.spacing(np.maximum(np.abs(ref), 2.2250738585072014e-308))
            worst = np.max(np.where(same, 0.0, ulp))
            assert worst <= 4, (name, worst, x[np.argmax(np.where(same, 0.0, ulp))])
            np.testing.assert_array_equal(np.isnan(row), np.isnan(ref), err_msg=name)


def test_fast_functions_fall_back_for_complex_and_are_numpy_from_python():
    @numba.njit
    def f(z):
        return fastmath.fast_numpy.tanh(z), fastmath.fast_numpy.exp(z)

    z = 0.3 + 1e-20j
    a, b = f(z)
    assert a == pytest.approx(np.tanh(z), rel=1e-15) and a.imag == pytest.approx(np.tanh(z).imag, rel=1e-14)
    assert b == pytest.approx(np.exp(z), rel=1e-15)
    assert fastmath.fast_numpy.tanh(0.5) == np.tanh(0.5)  # from Python: NumPy's
    assert fastmath.fast_math.exp is fastmath.FAST_FUNCTIONS["exp"]
    glb = fastmath.substitute_globals({"np": np, "math": math, "tanh": np.tanh, "other": 1}, ["np", "math", "tanh"])
    assert glb["np"] is fastmath.fast_numpy and glb["math"] is fastmath.fast_math
    assert glb["tanh"] is fastmath.FAST_FUNCTIONS["tanh"] and glb["other"] == 1


def _packed_double_ops(dispatcher):
    asm = "\n".join(dispatcher.inspect_asm().values())
    return len(re.findall(r"\bv?\w+pd\s", asm))


# ------------------------------------------------------------------------------------------------ independence
def test_evolve_identical_across_backend_chunks_and_threads():
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X = fa_initial(700)
    ref = fa.evolve(X, 300, seed=3, t0=-200, backend="numpy")
    out = [fa.evolve(X, 300, seed=3, t0=-200, backend="numba", chunk_size=c) for c in (None, 1, 257)]
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        out.append(fa.evolve(X, 300, seed=3, t0=-200, backend="numba"))
    finally:
        numba.set_num_threads(old)
    for o in out:
        np.testing.assert_allclose(o, ref, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(out[0], out[1])  # compiled: bitwise independent of chunking and threads
    np.testing.assert_array_equal(out[0], out[3])


def test_tangent_and_exit_identical_across_backend_chunks_and_threads():
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.8)
    X = np.random.default_rng(1).uniform(-1.5, 1.5, (300, 2))
    region = rds.regions.Box([-2, -2], [2, 2], variables=("w", "v"))
    ref_t = red.propagate_tangent(X, 120, seed=2, qr_every=10, backend="numpy")
    ref_e = red.first_exit(X, region, 400, seed=2, backend="numpy")
    old = numba.get_num_threads()
    first = None
    try:
        for threads in (1, old):
            numba.set_num_threads(threads)
            for chunk in (None, 77):
                t = red.propagate_tangent(X, 120, seed=2, qr_every=10, backend="numba", chunk_size=chunk)
                # logr is a sum of 120 logs (|logr| up to ~50): compared relative to its size
                np.testing.assert_allclose(t["logr"], ref_t["logr"], rtol=ATOL, atol=ATOL)
                np.testing.assert_allclose(t["state"], ref_t["state"], rtol=0, atol=ATOL)
                np.testing.assert_allclose(t["V"], ref_t["V"], rtol=0, atol=ATOL)
                if first is None:
                    first = t
                else:  # compiled: bitwise independent of chunking and threads
                    np.testing.assert_array_equal(t["logr"], first["logr"])
                e = red.first_exit(X, region, 400, seed=2, backend="numba", chunk_size=chunk)
                np.testing.assert_array_equal(e["exit_step"], ref_e["exit_step"])
                np.testing.assert_allclose(e["state"], ref_e["state"], rtol=0, atol=ATOL)
    finally:
        numba.set_num_threads(old)


def test_user_map_with_independent_noise_identical_on_both_backends():
    sys_ = user_system(common=False)
    X = np.random.default_rng(2).uniform(0.2, 0.8, (130, 1))
    a = sys_.evolve(X, 200, seed=1, backend="numpy")
    b = sys_.evolve(X, 200, seed=1, backend="numba", chunk_size=50)
    np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


def test_map_using_noise_as_array_falls_back_and_agrees():
    def step(state, xi, params):
        (x,) = state
        return (0.5 * x + np.sum(xi) * params[0],)  # np.sum of the sample: not supported by the fixed vector

    sys_ = rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(1.0, batch=3), variables=("x",), params=(0.1,))
    X = np.linspace(-1, 1, 20)[:, None]
    np.testing.assert_allclose(sys_.evolve(X, 50, backend="numba"), sys_.evolve(X, 50, backend="numpy"),
                               rtol=0, atol=ATOL)


def test_compiled_member_loops_vectorise():
    # the FA evolve kernel and the reduced-map tangent kernel (compiled by the tests above)
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.8)
    fa.evolve(fa_initial(40), 3, backend="numba")
    red.propagate_tangent(np.zeros((3, 2)) + 0.5, 3, qr_every=2, backend="numba")
    assert _packed_double_ops(rds.backends.kernels_for(fa, "numba")._cache["evolve"][0].block) > 50
    assert _packed_double_ops(rds.backends.kernels_for(red, "numba")._cache[("tangent", 2)][0].block) > 50


# ------------------------------------------------------------------------------------------------ executors
def test_process_pool_gives_identical_results():
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X = fa_initial(64)
    local = fa.evolve(X, 100, seed=4, backend="numpy")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        remote = fa.evolve(X, 100, seed=4, backend="numpy", executor=ex, chunk_size=20)
        user = user_system().evolve(X[:, :1] * 0.3 + 0.5, 100, seed=4, backend="numpy", executor=ex, chunk_size=20)
    np.testing.assert_array_equal(remote, local)
    np.testing.assert_array_equal(user, user_system().evolve(X[:, :1] * 0.3 + 0.5, 100, seed=4, backend="numpy"))


def test_dask_cluster_gives_identical_results():
    distributed = pytest.importorskip("distributed")

    def local_map(state, xi, params):  # a closure-free local function: needs cloudpickle (dask uses it)
        (x, y) = state
        return (y, -params[0] * np.tanh(x) + 0.5 * y + xi[0])

    sys_ = rds.RandomDynamicalSystem(local_map, noise=rds.noise.Gaussian(0.1), variables=("x", "y"), params=(1.2,))
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X = fa_initial(50)
    region = rds.regions.Box([-2.0], [2.0], variables=("w1",))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        ex = client.get_executor()
        a = fa.evolve(X, 200, seed=5, backend="numpy", executor=ex, chunk_size=13)
        b = sys_.evolve(X[:, :2], 100, seed=5, backend="numpy", executor=ex, chunk_size=13)
        c = fa.first_exit(X, region, 300, seed=5, backend="numpy", executor=ex, chunk_size=13)
    np.testing.assert_array_equal(a, fa.evolve(X, 200, seed=5, backend="numpy"))
    np.testing.assert_array_equal(b, sys_.evolve(X[:, :2], 100, seed=5, backend="numpy"))
    np.testing.assert_array_equal(c["exit_step"], fa.first_exit(X, region, 300, seed=5, backend="numpy")["exit_step"])


def ring5(state, xi, params):
    """A 5-variable user map (automatic complex-step Jacobian): its tangent service uses the looped kernel."""
    a, b, c, d, e = state
    k = params[0]
    return (a + k * np.tanh(b - a) + xi[0], b + k * np.tanh(c - b), c + k * np.sin(d - c),
            d + k * np.tanh(e - d), e + 0.5 * k * np.tanh(a - e))


def test_looped_tangent_kernel_agrees_with_numpy_for_k_below_nvar():
    sys_ = rds.RandomDynamicalSystem(ring5, noise=rds.noise.Gaussian(0.01), variables=tuple("abcde"), params=(0.3,))
    assert not rds.backends.numba.tangent_unrolled(5, 4)  # nvar * k = 20: loops, not unrolled scalars
    X = np.random.default_rng(3).uniform(-1, 1, (70, 5))
    V0 = np.eye(5)[:, :4]
    ref = sys_.propagate_tangent(X, 60, tangent=V0, seed=1, qr_every=3, backend="numpy")
    out = [sys_.propagate_tangent(X, 60, tangent=V0, seed=1, qr_every=3, backend="numba", chunk_size=c)
           for c in (None, 33)]
    for o in out:
        np.testing.assert_allclose(o["logr"], ref["logr"], rtol=ATOL, atol=ATOL)
        np.testing.assert_allclose(o["V"], ref["V"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(o["state"], ref["state"], rtol=0, atol=ATOL)
    np.testing.assert_array_equal(out[0]["logr"], out[1]["logr"])


def ring5_jacobian(state, xi, params):
    """ring5's Jacobian by hand, with integer entries (rows of mixed types) and homogeneous float rows."""
    a, b, c, d, e = state
    k = params[0]
    ta, tb, td, te = (1.0 - np.tanh(b - a) ** 2, 1.0 - np.tanh(c - b) ** 2, 1.0 - np.tanh(e - d) ** 2,
                      1.0 - np.tanh(a - e) ** 2)
    cc = np.cos(d - c)
    return ((1.0 - k * ta, k * ta, 0, 0, 0),
            (0, 1.0 - k * tb, k * tb, 0, 0),
            (0.0, 0.0, 1.0 - k * cc, k * cc, 0.0),
            (0, 0, 0, 1.0 - k * td, k * td),
            (0.5 * k * te, 0.0, 0.0, 0.0, 1.0 - 0.5 * k * te))


def test_looped_tangent_kernel_stores_jacobians_of_mixed_entry_types():
    """The looped kernel stores a hand-written Jacobian whose rows mix int and float entries (rds.engine
    .store_matrix: loops over homogeneous rows, entry by entry otherwise) and agrees with NumPy and with the
    automatic Jacobian."""
    auto = rds.RandomDynamicalSystem(ring5, noise=rds.noise.Gaussian(0.01), variables=tuple("abcde"), params=(0.3,))
    hand = auto.replace(jacobian=ring5_jacobian)
    X = np.random.default_rng(4).uniform(-1, 1, (40, 5))
    ref = hand.propagate_tangent(X, 40, tangent=np.eye(5), seed=2, qr_every=4, backend="numpy")
    for system in (hand, auto):
        out = system.propagate_tangent(X, 40, tangent=np.eye(5), seed=2, qr_every=4, backend="numba")
        np.testing.assert_allclose(out["logr"], ref["logr"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(out["V"], ref["V"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("batch", [2, 16])
def test_minibatch_kernels_unrolled_over_the_batch_agree_with_numpy(batch):
    """With the batch loop unrolled (rds.backends.numba.UNROLL_THRESHOLD) the compiled FA step still equals NumPy's."""
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=batch)
    X = np.random.default_rng(5).uniform(-1, 1, (300, 4))
    np.testing.assert_allclose(fa.evolve(X, 100, seed=2, backend="numba"), fa.evolve(X, 100, seed=2, backend="numpy"),
                               rtol=0, atol=ATOL)


def test_run_segments_are_lazy_and_cut_at_blocks_and_records():
    from itertools import islice

    from rds.noise import NOISE_BLOCK
    first = list(islice(engine._segments(5, 2**62, np.array([], dtype=np.int64)), 3))  # nothing materialised
    assert first == [(5, NOISE_BLOCK), (NOISE_BLOCK, 2 * NOISE_BLOCK), (2 * NOISE_BLOCK, 3 * NOISE_BLOCK)]
    rng = np.random.default_rng(0)
    for _ in range(50):
        t0 = int(rng.integers(-3000, 3000))
        t1 = t0 + int(rng.integers(1, 5000))
        rec = np.unique(rng.integers(t0, t1 + 1, 6))
        cuts = set(range((t0 // NOISE_BLOCK + 1) * NOISE_BLOCK, t1, NOISE_BLOCK)) | {int(r) for r in rec if t0 < r < t1}
        pts = [t0] + sorted(cuts) + [t1]
        assert list(engine._segments(t0, t1, rec)) == list(zip(pts[:-1], pts[1:]))


def test_backend_choice_counts_total_work():
    osc = rds.models.phase_oscillator(omega=1.0, sigma2=0.1, dt=0.01)
    # one member, 5e5 steps, 160 realisations: a Python loop over 8e7 steps on NumPy; compiled wins
    X1 = np.zeros((1, 1))
    plan = rds.backends.Plan("tangent", members=1, steps=500_000, k=1, repeats=160)
    assert rds.backends.choose(osc, None, X1, plan) == "numba"
    def fresh(state, xi, params):  # a map nobody compiled in this process
        return (0.5 * state[0] + xi[0],)

    small = rds.RandomDynamicalSystem(fresh, noise=rds.noise.Gaussian(0.1))
    X = np.zeros((100, 1))
    assert rds.backends.choose(small, None, X, rds.backends.Plan("evolve", 100, 50)) == "numpy"  # short: no compile
    assert rds.backends.choose(small, "numba", X, rds.backends.Plan()) == "numba"
    with pytest.raises(ValueError, match="backend"):
        rds.backends.choose(small, "fortran", X, rds.backends.Plan())
