"""Broken user maps, Jacobians and region predicates: errors in the user's terms, on both backends.

Each error names the function, its file and line; none leaks generated code (``<rds-generated …>``) or a raw
Numba message (that one is chained, for experts). Most checks run before anything is compiled, so these tests are
fast; the few that compile say so.
"""

import numpy as np
import pytest
from scipy.special import erf as _erf

import rds
from rds.regions import Predicate

HERE = __file__


def _system(step, nvar=1, noise=None, **kw):
    return rds.RandomDynamicalSystem(step, noise=noise, variables=("x", "y", "z")[:nvar], **kw)


def _check_message(excinfo, func_name, *words):
    msg = str(excinfo.value)
    assert f"'{func_name}'" in msg and HERE in msg and "line" in msg, msg
    assert "rds-generated" not in msg, msg
    for w in words:
        assert w in msg, msg


def bare(st, xi, p):
    return (0.5 * st[0] + xi[0])  # not a tuple: no trailing comma


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_bare_value_is_refused_not_broadcast_from_member_0(backend):
    system = _system(bare, noise=rds.noise.Gaussian(1.0))
    with pytest.raises(TypeError) as e:
        system.evolve(np.linspace(0, 1, 5)[:, None], 3, backend=backend)
    _check_message(e, "bare", "(value,)", "tuple of 1 value")
    with pytest.raises(TypeError, match="trailing comma"):
        system.apply(np.linspace(0, 1, 5)[:, None], np.array([0.1]))


def extra(st, xi, p):
    return (st[0], st[1], st[0] + st[1])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_extra_outputs_are_refused(backend):
    with pytest.raises(ValueError) as e:
        _system(extra, 2).evolve(np.ones((4, 2)), 3, backend=backend)
    _check_message(e, "extra", "returned 3 values", "tuple of 2 values")


def test_wrong_arity_none_complex_and_string_outputs():
    def two_args(s, xi):
        return (s[0],)

    def no_return(s, xi, p):
        0.5 * s[0]

    def complex_out(s, xi, p):
        return (s[0] * 1j,)

    def string_out(s, xi, p):
        return ("x",)

    def per_member_shape(s, xi, p):
        return (np.ones((2, 2)),)
    X = np.ones((4, 1))
    for f, exc, words in [(two_args, TypeError, ["3 positional arguments", "two_args(s, xi)"]),
                          (no_return, TypeError, ["returned None"]),
                          (complex_out, TypeError, ["complex", "real numbers"]),
                          (string_out, TypeError, ["str"]),
                          (per_member_shape, ValueError, ["shape (2, 2)"])]:
        for backend in ("numpy", "numba"):
            with pytest.raises(exc) as e:
                _system(f).evolve(X, 2, backend=backend)
            _check_message(e, f.__name__, *words)


def test_a_valid_map_returning_an_array_of_rows_still_runs():
    def rows(s, xi, p):
        return np.array([s[1], -s[0]])
    out = _system(rows, 2).evolve(np.array([[1.0, 2.0], [3.0, 4.0]]), 1, backend="numpy")
    np.testing.assert_array_equal(out, [[2.0, -1.0], [4.0, -3.0]])


def branch(s, xi, p):
    x = s[0]
    if x > 0.5:
        return (0.5 * x,)
    return (2.0 * x,)


def test_a_branching_map_is_refused_on_numpy_and_runs_compiled_whatever_ran_before():
    system = _system(branch)
    X = np.array([[0.2], [0.9], [0.6]])
    with pytest.raises(TypeError) as e:
        system.evolve(X, 3, backend="numpy")
    _check_message(e, "branch", "np.where", "backend='numba'")
    assert isinstance(e.value.__cause__, ValueError)  # NumPy's "truth value … ambiguous", chained
    # backend=None: the compiled backend, from the first call on (not only once something else compiled it)
    rds.backends._KERNELS.clear()
    out = system.trajectory(X, 3)
    assert out.attrs["backend"] == "numba"
    expected = []
    for x in X[:, 0]:
        for _ in range(3):
            x = 0.5 * x if x > 0.5 else 2.0 * x
        expected.append(x)
    np.testing.assert_allclose(out.state.values[-1, :, 0], expected, rtol=1e-15)


def importing(s, xi, p):
    import math as m
    return (m.sin(s[0]),)


def uses_scipy(s, xi, p):
    return (_erf(s[0]),)


def unknown_global(s, xi, p):
    return (undefined_helper(s[0]),)  # noqa: F821


def test_what_the_compiled_backend_cannot_compile_is_reported_before_compiling():
    X = np.array([[0.2], [0.4]])
    with pytest.raises(TypeError) as e:
        _system(importing).evolve(X, 2)  # runs per member only: compiled backend
    _check_message(e, "importing", "imports 'math' inside the function", "module level")
    with pytest.raises(TypeError) as e:
        _system(uses_scipy).evolve(X, 2, backend="numba")
    _check_message(e, "uses_scipy", "_erf", "scipy", "math.erf")
    np.testing.assert_allclose(_system(uses_scipy).evolve(X, 1, backend="numpy"), _erf(X))  # fine on NumPy
    big = np.full((2_000_000, 1), 0.1)  # backend=None would compile this run: NumPy instead
    assert _system(uses_scipy).trajectory(big, 1, every=1).attrs["backend"] == "numpy"
    for backend in ("numpy", "numba"):
        with pytest.raises(NameError) as e:
            _system(unknown_global).evolve(X, 2, backend=backend)
        _check_message(e, "unknown_global", "'undefined_helper'", "not defined")


def tolist_map(s, xi, p):
    return (s[0] + len(xi.tolist()),)


def raising(s, xi, p):
    x = s[0]
    if x > 0.9:
        raise ValueError("too big")
    return (1.5 * x,)


def test_numba_errors_are_translated_and_chained():  # compiles (fails fast, ~1 s each)
    import numba
    with pytest.raises(TypeError) as e:
        _system(tolist_map, noise=rds.noise.Gaussian(1.0)).evolve(np.array([[0.1], [0.5]]), 2, backend="numba")
    _check_message(e, "tolist_map", "tolist", "backend='numpy'")
    assert isinstance(e.value.__cause__, numba.core.errors.TypingError)
    with pytest.raises(ValueError, match="too big"):  # one block runs serially: the map's own exception
        _system(raising).evolve(np.array([[0.1], [0.5]]), 10, backend="numba")
    X = np.full((3 * rds.backends.numba.BLOCK, 1), 0.5)  # several blocks run in parallel: Numba cannot report it
    with pytest.raises(RuntimeError, match="inside the parallel loop") as e:
        _system(raising).evolve(X, 10, backend="numba")
    assert isinstance(e.value.__cause__, SystemError)


def test_region_predicates_are_checked():
    system = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    X = np.array([[0.5, 0.5], [1.0, 1.5], [0.1, 0.2]])

    def with_and(s):
        return s[0] > -2 and s[0] < 2

    def returns_float(s):
        return s[0] * s[0] + s[1] * s[1] - 4.0
    with pytest.raises(ValueError) as e:
        system.first_exit(X, Predicate(with_and), 10, backend="numpy")
    _check_message(e, "with_and", "np.logical_and", "all members at once")
    with pytest.raises(TypeError) as e:
        system.first_exit(X, returns_float, 10, backend="numpy")
    _check_message(e, "returns_float", "bool")
    out = system.first_exit(X, lambda s: np.logical_and(s[0] > -2, s[0] < 2), 10, backend="numpy")
    assert out["exit_step"].shape == (3,)


def test_analytic_jacobians_are_checked():
    def step(s, xi, p):
        return (s[0] * s[1], s[0] + s[1])

    def short_jac(s, xi, p):
        return ((s[1], s[0]),)

    def bad_row(s, xi, p):
        return ((s[1], s[0], 1.0), (1.0, 1.0))
    for jac, exc, words in [(short_jac, TypeError, ["length 1", "2 rows"]),
                            (bad_row, ValueError, ["returned 3 values"])]:
        system = _system(step, 2, jacobian=jac)
        with pytest.raises(exc) as e:
            system.propagate_tangent(np.ones((3, 2)), 2, backend="numpy")
        _check_message(e, jac.__name__, *words)
        with pytest.raises(exc):
            system.jacobian_matrix(np.ones((3, 2)))
