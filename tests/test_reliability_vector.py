"""Reliability of vector maps, JAX and tangents: no silent wrong results, errors in the user's terms.

One test per case found: the complex step keeps its imaginary part inside library code, absorbing states give
λ = −∞ (counted, warned) instead of NaN, vector maps are checked on NumPy before JAX traces them, and JAX errors
name the map.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.special
from scipy.special import erf

import analysis
import rds
from analysis.lyapunov import TangentCollapseWarning

jax = pytest.importorskip("jax")

R_LOGISTIC = 3.9


def clipped_logistic(s, xi, p):
    x = s[0]
    return (np.clip(R_LOGISTIC * x * (1 - x) + xi[0], 0, 1),)


def clipped_logistic_xy(s, xi, p):
    x, y = s
    return (np.clip(R_LOGISTIC * x * (1 - x) + xi[0], 0, 1), 0.5 * y + 0.0 * x)


# ------------------------------------------------------------------------------------------ A2: absorbing states
@pytest.mark.parametrize("backend", ["numpy", "numba", "jax"])
def test_absorbing_state_gives_minus_inf_counted_and_warned(backend):
    """np.clip(r x (1 - x) + ξ, 0, 1) hits x = 0 where the derivative is 0: λ = −∞ on that orbit, never NaN."""
    logistic = rds.RandomDynamicalSystem(clipped_logistic, noise=rds.noise.Gaussian(sigma2=1e-4, batch=1),
                                         variables=("x",))
    X = np.linspace(0.1, 0.9, 8)[:, None]
    with pytest.warns(TangentCollapseWarning, match="collapsed"):
        ds = analysis.lyapunov_spectrum(logistic, X, 2000, backend=backend, realizations=2)
    ex = ds.exponents.values[..., 0]
    coll = ds.collapsed.values > 0
    assert not np.isnan(ex).any() and not ds.diverged.values.any()
    assert coll.any() and not coll.all()
    assert np.all(np.isneginf(ex[coll])) and np.all(np.isfinite(ex[~coll]))
    assert ds.n_collapsed.values.tolist() == coll.sum(axis=1).tolist()
    assert ds.attrs["n_collapsed"] == int(coll.sum())
    assert np.isneginf(ds.mean_exponents.values[0])  # a mean over orbits with λ = −∞


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_collapse_of_one_direction_keeps_the_other(backend):
    """Only x collapses: λ_x = −∞, λ_y = log 0.5 exactly, on every orbit that collapsed (sorted largest first)."""
    xy = rds.RandomDynamicalSystem(clipped_logistic_xy, noise=rds.noise.Gaussian(sigma2=1e-4, batch=1),
                                   variables=("x", "y"))
    X = np.column_stack([np.linspace(0.1, 0.9, 6), np.ones(6)])
    with pytest.warns(TangentCollapseWarning):
        ds = analysis.lyapunov_spectrum(xy, X, 1000, backend=backend)
    coll = ds.collapsed.values[0] > 0
    assert coll.any()
    ex = ds.exponents.values[0]
    assert np.all(np.isneginf(ex[coll, 1]))
    np.testing.assert_allclose(ex[coll, 0], np.log(0.5), rtol=1e-12)
    assert not np.isnan(ex).any()


def test_collapse_in_the_looped_compiled_qr():
    """The compiled backend's looped QR (used for nvar·k > 16) handles a collapsed vector like the unrolled one:
    log R = −inf, the vector stays 0, the next one is orthonormalised as before; a NaN vector stays NaN."""
    import numba as nb

    from rds._codegen import make_function
    from rds.backends import numba as nbk
    from rds.backends._sources import mgs_source
    ns = {"nb": nb, "np": np}
    exec(nbk._MGS_LOOPED, ns)  # noqa: S102 - the library's own kernel source
    V = np.zeros((3, 2, 3))
    V[:, 1, 0] = [0.0, 3.0, 4.0]                      # member 0: first vector 0, second of norm 5
    V[:, :, 1] = [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]  # member 1: nothing collapses
    V[:, 0, 2] = np.nan                               # member 2: a NaN vector
    V[:, 1, 2] = [1.0, 0.0, 0.0]
    L = np.zeros((2, 3))
    Vn, Ln = V.copy(), L.copy()
    ns["mgs_block"](V, L, np.empty(3), 3)
    mgs = make_function(mgs_source(3, 2), "mgs", {"np": np, "pick": np.where})
    with np.errstate(invalid="ignore"):
        mgs(Vn, Ln, slice(None))
    assert np.isneginf(L[0, 0]) and L[1, 0] == np.log(5.0) and np.all(V[:, 0, 0] == 0.0)
    np.testing.assert_allclose(L[:, 1], [0.0, np.log(2.0)])
    assert np.isnan(L[0, 2])
    np.testing.assert_array_equal(L, Ln)
    np.testing.assert_array_equal(V, Vn)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_collapse_on_a_vector_map(backend):
    """The same absorbing state in a vector map (Householder QR): −∞ counted, not NaN."""
    def step(th, xi, p):
        x = np.clip(R_LOGISTIC * th[:1] * (1 - th[:1]) + xi[0], 0.0, 1.0)
        return np.concatenate([x, 0.5 * th[1:]])
    vec = rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(sigma2=1e-4, batch=1), form="vector", dim=2,
                                    jacobian=None)
    X = np.column_stack([np.linspace(0.1, 0.9, 6), np.ones(6)])
    with pytest.warns(TangentCollapseWarning):
        ds = analysis.lyapunov_spectrum(vec, X, 300, backend=backend)
    assert not np.isnan(ds.exponents.values).any() and (ds.collapsed.values > 0).any()


def test_nonfinite_tangent_on_a_finite_orbit_is_marked_diverged():
    """A Jacobian with an infinite entry makes the tangent non-finite on a finite orbit: diverged and warned, not
    a NaN exponent with diverged = False."""
    ident = rds.RandomDynamicalSystem(lambda s, xi, p: (1.0 * s[0],), variables=("x",),
                                      jacobian=lambda s, xi, p: ((np.inf + 0.0 * s[0],),))
    with pytest.warns(TangentCollapseWarning, match="non-finite"):
        ds = analysis.lyapunov_spectrum(ident, np.array([[0.5], [1.0]]), 5, backend="numpy")
    assert bool(ds.diverged.values.all()) and np.isnan(ds.exponents.values).all()
    assert ds.attrs["n_diverged"] == 2


# ------------------------------------------------------------------------------------------ A1: the complex step
def _small_gd():
    from rds.models.dataset_sgd import load_dataset
    X, y = load_dataset("iris")
    return rds.models.dataset_sgd(X[:30], y[:30], hidden=1, eta=0.05)


THETA0 = np.array([0.3, -0.2, 0.1, 0.5])


def _wrap(f):
    def wrapped_step(th, xi, p):
        return f(th, xi, p)
    return wrapped_step


_GLOBAL_GD = None


def global_wrapped_step(th, xi, p):
    return _GLOBAL_GD.step(th, xi, p)


def test_wrapped_builtin_step_keeps_the_complex_step():
    """examples/sgd_stability.py's pattern, gd.replace(step=wrap(gd.step), jacobian=None): on NumPy the complex step
    must pass through rds.models.two_layer (it gave exponents exactly [0, 0, 0, 0] with a ComplexWarning)."""
    gd = _small_gd()
    ref = analysis.lyapunov_spectrum(gd, THETA0, 20, backend="numpy").exponents.values
    wrapped = gd.replace(step=_wrap(gd.step), jacobian=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        got = analysis.lyapunov_spectrum(wrapped, THETA0, 20, backend="numpy").exponents.values
    assert np.all(got != 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_wrapped_step_read_from_a_global_runs_on_jax(monkeypatch):
    """The same wrapper reading the system from a global (not a closure) works on JAX (TracerArrayConversionError
    in dataset_sgd.py before) and agrees with the analytic Jacobian."""
    gd = _small_gd()
    monkeypatch.setitem(globals(), "_GLOBAL_GD", gd)
    ref = analysis.lyapunov_spectrum(gd, THETA0, 20, backend="numpy").exponents.values
    wrapped = gd.replace(step=global_wrapped_step, jacobian=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rds._identity.UnidentifiedMapWarning)  # it reads a system object
        got = analysis.lyapunov_spectrum(wrapped, THETA0, 20, backend="jax").exponents.values
        closure = analysis.lyapunov_spectrum(gd.replace(step=_wrap(gd.step), jacobian=None), THETA0, 20,
                                             backend="jax").exponents.values
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(closure, ref, rtol=1e-9, atol=1e-12)


def lossy_vector_step(th, xi, p):
    return 0.5 * np.asarray(th, dtype=float) + 0.1 * np.tanh(th)


def test_a_cast_during_the_complex_step_is_an_error_naming_the_map():
    """A map that casts its complex argument to real would get a wrong Jacobian: an error naming it and the line."""
    from rds._complexstep import ComplexStepError
    lossy = rds.RandomDynamicalSystem(lossy_vector_step, form="vector", dim=2)
    with pytest.raises(ComplexStepError, match=r"lossy_vector_step.*cast to real at .*test_reliability_vector\.py"):
        analysis.lyapunov_spectrum(lossy, np.array([0.3, 0.4]), 5, backend="numpy")
    with pytest.raises(ComplexStepError, match="lossy_vector_step"):
        lossy.jacobian_matrix(np.array([0.3, 0.4]), backend="numpy")
    J = lossy.jacobian_matrix(np.array([0.3, 0.4]), backend="jax")  # JAX differentiates it as written
    np.testing.assert_allclose(np.diag(J), 0.5 + 0.1 / np.cosh([0.3, 0.4]) ** 2, rtol=1e-12)


def test_coords_and_models_keep_complex_inputs():
    """Library functions a map may call keep a complex argument complex (the derivative rides on it)."""
    from rds.models import two_layer
    from rds.models.teacher_student import network_output
    z = np.array([1.0, 3.0, 2.0, 0.0]) + 1e-20j * np.array([1.0, 0.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        p = rds.coords.to_pqrs(z)
        assert np.iscomplexobj(p) and np.allclose(p.imag / 1e-20, [0.5, 0.0, 0.5, 0.0])
        assert np.iscomplexobj(rds.coords.from_pqrs(p))
        W, v = two_layer.check_network(z[:2, None], z[2:])
        assert np.iscomplexobj(W) and np.iscomplexobj(v)
        out = network_output(z, np.array([0.5, 1.0]))
        assert np.iscomplexobj(out) and np.all(out.imag != 0)


# ------------------------------------------------------------------------------------------ A3: vector maps checked
def _vec(step, dim=3, batch=2, independent=False):
    return rds.RandomDynamicalSystem(step, noise=rds.noise.GaussianInputs(0.1, batch=batch), form="vector",
                                     dim=dim, common_noise=not independent)


def oob_theta(th, xi, p):
    return 0.5 * th + th[5]


def oob_xi(th, xi, p):
    return 0.5 * th + xi[3, 0]


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("step, index", [(oob_theta, "index 5"), (oob_xi, "index 3")])
def test_out_of_bounds_index_raises_on_every_backend(backend, step, index):
    """theta[5] with dim=3 and xi[3] with a batch of 2: JAX clamped them silently; checked on NumPy first."""
    with pytest.raises(IndexError, match=rf"{step.__name__}.*test_reliability_vector\.py.*{index}"):
        _vec(step).evolve(np.full(3, 0.3), 3, backend=backend)


def test_out_of_bounds_noise_index_with_independent_noise():
    with pytest.raises(IndexError, match="oob_xi"):
        _vec(oob_xi, independent=True).evolve(np.full((2, 3), 0.3), 3, backend="jax")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_float_region_predicate_is_refused(backend):
    """A predicate returning a float was taken as True (every member "never exits")."""
    contracting = _vec(lambda th, xi, p: 0.9 * th)
    with pytest.raises(TypeError, match=r"region predicate.*float64.*must return one bool"):
        contracting.first_exit(np.ones((2, 3)), lambda th: np.sum(th * th) * 1.0, 5, backend=backend)


class _Holder:
    pass


_HIDDEN = _Holder()
_HIDDEN.rng = np.random.default_rng(0)


def hidden_random_step(th, xi, p):
    return 0.5 * th + _HIDDEN.rng.normal()


def random_step(th, xi, p):
    return 0.5 * th + np.random.normal()  # noqa: NPY002 - the legacy global generator is the case


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("step", [random_step, hidden_random_step])
def test_map_drawing_its_own_random_numbers_is_refused(backend, step):
    """numpy.random inside a map was frozen by JAX into one number for every step and member; a generator hidden in
    an object (which the identity walk cannot see) is caught by calling the map twice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rds._identity.UnidentifiedMapWarning)
        with pytest.raises(rds._identity.ImpureMapError, match=step.__name__):
            _vec(step).evolve(np.full(3, 0.3), 3, backend=backend)


# ------------------------------------------------------------------------------------------ B7: JAX errors
def scipy_erf_step(th, xi, p):
    return scipy.special.erf(th) * 0.5


def scipy_erf_name_step(th, xi, p):
    return erf(th) * 0.5 + 0.1 * th


def math_gamma_step(th, xi, p):
    return 0.5 * th + math.gamma(2.5) * 0.01


def int_step(th, xi, p):
    return np.round(th).astype(np.int64)


def math_factorial_step(th, xi, p):
    return 0.5 * th * math.factorial(3)


def concrete_step(th, xi, p):
    return th * float(th[0])


def longer_step(th, xi, p):
    return np.concatenate([th, th[:1]])


def scalar_step(th, xi, p):
    return np.sum(th)


@pytest.mark.parametrize("step", [scipy_erf_step, scipy_erf_name_step, math_gamma_step, int_step])
def test_jax_runs_what_its_docstring_promises_like_numpy(step):
    """scipy.special.erf (a SciPy ufunc hit NumPy's branch first: TracerArrayConversionError), math.gamma
    ('_JaxMath' object has no attribute 'gamma') and an int result (while_loop carry types differ)."""
    system = _vec(step)
    np.testing.assert_allclose(system.evolve(np.full(3, 0.3), 3, backend="jax"),
                               system.evolve(np.full(3, 0.3), 3, backend="numpy"), rtol=1e-12)


@pytest.mark.parametrize("step, match", [
    (math_factorial_step, r"math\.factorial has no JAX counterpart"),
    (concrete_step, r"ConcretizationTypeError"),
])
def test_jax_errors_name_the_map_file_and_line(step, match):
    line = step.__code__.co_firstlineno + 1
    with pytest.raises(TypeError, match=rf"{step.__name__}.*test_reliability_vector\.py, line {line}.*{match}"):
        _vec(step).evolve(np.full(3, 0.3), 3, backend="jax")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("step, match", [(longer_step, r"shape \(4,\)"), (scalar_step, r"shape \(\) \(a scalar")])
def test_wrong_output_shape_names_the_map(backend, step, match):
    """D + 1 values ('while_loop carry types differ') or a scalar (IndexError) returned."""
    with pytest.raises(ValueError, match=rf"{step.__name__}.*{match}.*must return an array of shape \(3,\)"):
        _vec(step).evolve(np.full(3, 0.3), 3, backend=backend)


def test_jacobian_matrix_checks_a_vector_map_first():
    """jacobian_matrix on JAX does not go through the run services: it is checked on NumPy too."""
    with pytest.raises(IndexError, match="oob_theta"):
        _vec(oob_theta).jacobian_matrix(np.full(3, 0.3), np.zeros((2, 1)), backend="jax")
