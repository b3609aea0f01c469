"""Reliability of vector maps, JAX and tangents: no silent wrong results, errors in the user's terms.

One test per case found: the complex step keeps its imaginary part inside library code, absorbing states give
λ = −∞ (counted, warned) instead of NaN, vector maps are checked on NumPy before JAX traces them, and JAX errors
name the map.
"""

from __future__ import annotations

import numpy as np
import pytest

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
    """Only x collapses: λ_x = −∞, λ_y = log 0.5 exactly, on every orbit that collapsed."""
    xy = rds.RandomDynamicalSystem(clipped_logistic_xy, noise=rds.noise.Gaussian(sigma2=1e-4, batch=1),
                                   variables=("x", "y"))
    X = np.column_stack([np.linspace(0.1, 0.9, 6), np.ones(6)])
    with pytest.warns(TangentCollapseWarning):
        ds = analysis.lyapunov_spectrum(xy, X, 1000, backend=backend)
    coll = ds.collapsed.values[0] > 0
    assert coll.any()
    ex = ds.exponents.values[0]
    assert np.all(np.isneginf(ex[coll, 0]))
    np.testing.assert_allclose(ex[coll, 1], np.log(0.5), rtol=1e-12)
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
