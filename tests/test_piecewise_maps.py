"""Exact automatic Jacobians of piecewise-smooth maps (abs, floor, mod, where, maximum, clip, comparisons …).

The automatic Jacobian is a complex step; these maps used to give NaN exponents or fail (``ufunc 'floor' not
supported``). Numba tests are few and share one compiled map (compiling is slow).
"""

import math

import numpy as np
import pytest

import rds
from analysis import lyapunov_spectrum
from rds._complexstep import complex_step_clone, jacobian_function

LN2 = math.log(2.0)


def tent(s, xi, p):
    return (1.0 - np.abs(1.0 - 2.0 * s[0]),)


def tent_builtin(s, xi, p):
    return (1.0 - abs(1.0 - 2.0 * s[0]),)


def doubling_floor(s, xi, p):
    y = 2.0 * s[0]
    return (y - np.floor(y),)


def doubling_mod(s, xi, p):
    return ((2.0 * s[0]) % 1.0,)


def doubling_augmented(s, xi, p):
    y = 2.0 * s[0]
    y %= 1.0
    return (y,)


K = 0.8


def circle(s, xi, p):
    x = s[0]
    return (np.mod(x + p[0] + K / (2 * np.pi) * np.sin(2 * np.pi * x) + xi[0], 1.0),)


def _system(step, nvar=1, noise=None, params=()):
    return rds.RandomDynamicalSystem(step, noise=noise, variables=("x", "y", "z")[:nvar], params=params)


def _fd_jacobian(system, X, xi, h=1e-7):
    cols = [(system.apply(X + h * e, xi) - system.apply(X - h * e, xi)) / (2 * h) for e in np.eye(system.nvar)]
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("step", [tent, tent_builtin, doubling_floor, doubling_mod, doubling_augmented])
def test_tent_and_doubling_maps_have_exponent_ln2_numpy(step):
    system = _system(step)
    X = np.random.default_rng(1).uniform(0.01, 0.99, (6, 1))
    out = system.propagate_tangent(X, 200, backend="numpy")
    np.testing.assert_allclose(out["logr"][:, 0] / 200, LN2, rtol=1e-12)
    ds = lyapunov_spectrum(system, X, 100, backend="numpy")
    np.testing.assert_allclose(ds["exponents"].values, LN2, rtol=1e-12)


def test_tent_map_jacobian_on_both_sides_of_the_kink():
    J = _system(tent).jacobian_matrix(np.array([[0.2], [0.4999], [0.5001], [0.9], [0.5]]))
    np.testing.assert_array_equal(J[:, 0, 0], [2.0, 2.0, -2.0, -2.0, 2.0])  # at the kink: abs'(0) = +1


def test_noisy_circle_map_matches_finite_differences_away_from_the_wrap():
    system = _system(circle, noise=rds.noise.Gaussian(sigma2=1e-3), params=(0.31,))
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, (200, 1))
    xi = np.array([0.017])
    pre = X[:, 0] + 0.31 + K / (2 * np.pi) * np.sin(2 * np.pi * X[:, 0]) + xi[0]
    away = np.abs(pre - np.round(pre)) > 1e-4  # the map's only kinks: where the mod wraps
    J = system.jacobian_matrix(X[away], xi)
    np.testing.assert_allclose(J, _fd_jacobian(system, X[away], xi), rtol=0, atol=1e-7)
    np.testing.assert_allclose(J[:, 0, 0], 1 + K * np.cos(2 * np.pi * X[away, 0]), rtol=1e-13)
    out = system.propagate_tangent(X[:5], 500, backend="numpy", seed=3)
    assert np.all(np.isfinite(out["logr"]))


def piecewise_2d(s, xi, p):
    x, y = s
    a = np.where(x < 0.5, 3.0 * x * y, x + y * y)
    b = np.maximum(x, 2.0 * y) + np.clip(y, -0.5, 0.5) + np.minimum(x * y, 0.3) + np.sign(x) * y
    c = np.fmod(3.0 * x, 0.7) + np.arctan2(y, x) + np.hypot(x, y) + np.cbrt(x) + np.heaviside(x - 0.3, 0.5)
    return (a + np.floor(4.0 * x) * y, b + c)


def piecewise_2d_derivative(x, y):
    da = np.where(x < 0.5, [3.0 * y, 3.0 * x], [np.ones_like(x), 2.0 * y])
    dmax = np.where(x >= 2.0 * y, [np.ones_like(x), 0.0 * x], [0.0 * x, 2.0 + 0.0 * x])
    dclip = [0.0 * x, np.where(np.abs(y) < 0.5, 1.0, 0.0)]
    dmin = np.where(x * y <= 0.3, [y, x], [0.0 * x, 0.0 * x])
    dsign = [0.0 * x, np.sign(x)]
    r2 = x * x + y * y
    dc = [3.0 - y / r2 + x / np.sqrt(r2) + 1.0 / (3.0 * np.cbrt(x) ** 2), x / r2 + y / np.sqrt(r2)]
    row0 = [da[0], da[1] + np.floor(4.0 * x)]
    row1 = [dmax[i] + dclip[i] + dmin[i] + dsign[i] + dc[i] for i in range(2)]
    return np.moveaxis(np.array([row0, row1]), -1, 0)


def test_jacobian_of_where_maximum_clip_minimum_sign_fmod_arctan2_hypot_is_the_piecewise_derivative():
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (400, 2))
    X = X[np.abs(X[:, 0] - 0.5) > 1e-3]
    system = _system(piecewise_2d, 2)
    J = system.jacobian_matrix(X)
    np.testing.assert_allclose(J, piecewise_2d_derivative(X[:, 0], X[:, 1]), rtol=1e-12, atol=1e-12)


def scalar_forms(s, xi, p):
    x, y = s
    if x > y:  # a branch: this map runs member by member
        u = max(x, 2.0 * y) + min(x, y, 0.1)
    else:
        u = round(x, 3) + abs(x - y) + x // 0.25
    q, r = divmod(3.0 * y, 1.0)
    return (u + math.floor(5.0 * y) + math.fabs(y), r + q * x + math.atan2(y, 1.0 + x * x) + math.erf(x))


def scalar_forms_derivative(x, y):
    if x > y:
        du = [1.0 if x >= 2.0 * y else 0.0, 0.0 if x >= 2.0 * y else 2.0]
        m = min(x, y, 0.1)
        du = [du[0] + (m == x), du[1] + (m == y and m != x)]
    else:
        du = [math.copysign(1.0, x - y), -math.copysign(1.0, x - y)]
    du[1] += math.copysign(1.0, y)
    q = math.floor(3.0 * y)
    den = (1.0 + x * x) ** 2 + y * y
    dv = [q - y * 2.0 * x / den + 2.0 / math.sqrt(math.pi) * math.exp(-x * x), 3.0 + (1.0 + x * x) / den]
    return [du, dv]


def test_builtins_and_math_functions_on_scalars():
    jac = jacobian_function(scalar_forms, 2)
    for x, y in [(0.7, 0.3), (0.2, 0.6), (0.9, -0.4), (-0.3, 0.05)]:
        J = np.array(jac((x, y), np.zeros(0), ()), dtype=float)
        np.testing.assert_allclose(J, scalar_forms_derivative(x, y), rtol=1e-13, atol=1e-15, err_msg=f"{x, y}")


def _helper(x):
    return np.abs(x) % 1.0


def with_helper(s, xi, p):
    return (_helper(3.0 * s[0]) + (s[0] > 0.5) * s[0],)


def test_helpers_and_closures_are_made_complex_step_safe_too():
    X = np.array([[0.1], [0.3], [0.7], [-0.4]])
    J = _system(with_helper).jacobian_matrix(X)
    np.testing.assert_array_equal(J[:, 0, 0], [3.0, 3.0, 4.0, -3.0])

    def make(c):
        def inner(x):
            return np.floor(c * x) + np.abs(x - 0.5)

        def step(s, xi, p):
            return (inner(s[0]),)
        return step
    J = _system(make(2.0)).jacobian_matrix(X)
    np.testing.assert_array_equal(J[:, 0, 0], [-1.0, -1.0, 1.0, -1.0])


def test_the_map_itself_is_untouched_by_its_clone():
    assert complex_step_clone(tent) is not tent
    assert tent.__globals__["np"] is np
    system = _system(tent)
    assert system.map.identity() == _system(tent).map.identity()  # same map, same kernels


def test_an_unsupported_function_is_named():
    def uses_ldexp(s, xi, p):
        return (np.ldexp(s[0], 2),)
    with pytest.raises(TypeError, match="np.ldexp"):
        _system(uses_ldexp).propagate_tangent(np.array([[0.3]]), 2, backend="numpy")


def test_dropping_the_imaginary_part_is_an_error_not_a_zero_derivative():
    def casts(s, xi, p):
        return (np.asarray(s[0], dtype=float) * 2.0,)
    assert _system(casts).evolve(np.array([[0.3]]), 1, backend="numpy")[0, 0] == 0.6
    with pytest.raises(TypeError, match="imaginary part"):
        _system(casts).propagate_tangent(np.array([[0.3], [0.4]]), 2, backend="numpy")


def tent_and_doubling(s, xi, p):
    x, y = s
    return (1.0 - abs(1.0 - 2.0 * x), np.where(y < 2.0, (2.0 * y) % 1.0, y))


def test_compiled_backend_agrees_with_numpy_on_piecewise_maps():  # compiles one tangent kernel
    system = _system(tent_and_doubling, 2)
    X = np.random.default_rng(5).uniform(0.01, 0.99, (8, 2))
    a = system.propagate_tangent(X, 100, backend="numpy")
    b = system.propagate_tangent(X, 100, backend="numba")
    np.testing.assert_allclose(b["logr"], a["logr"], rtol=1e-12)
    np.testing.assert_allclose(b["logr"] / 100, LN2, rtol=1e-12)


def test_without_source_operators_are_reported_and_function_forms_work():
    glb = {"np": np}
    exec("def op_form(s, xi, p):\n    return ((2.0 * s[0]) % 1.0,)\n"
         "def fn_form(s, xi, p):\n    return (np.mod(2.0 * s[0], 1.0),)\n", glb)  # no source to read back
    X = np.array([[0.3], [0.4]])
    with pytest.raises(TypeError, match="source could not be read.*np.mod"):
        _system(glb["op_form"]).propagate_tangent(X, 3, backend="numpy")
    out = _system(glb["fn_form"]).propagate_tangent(X, 3, backend="numpy")
    np.testing.assert_allclose(out["logr"] / 3, LN2, rtol=1e-12)
