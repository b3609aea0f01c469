"""Tests of analysis.degenerate_stability: stability on M_wv, π(w, v) and the valley (paper 002, §3.2, Apps. A-B)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special

from analysis.degenerate_stability import (
    attracting_probability,
    averaged_jacobian_wv,
    averaged_potential,
    averaged_potential_full,
    degenerate_stability,
    jacobian_wv,
    mu_eigenvalues,
    sgd_direction_wv,
    target,
    valley,
    valley_local_minima,
    valley_potential,
)

finite = st.floats(min_value=-6.0, max_value=6.0, allow_nan=False, allow_infinity=False)
wide = st.floats(min_value=-200.0, max_value=200.0, allow_nan=False, allow_infinity=False)
SETTINGS = settings(max_examples=50, deadline=None)


def _scale(x, w, v):
    return np.abs(jacobian_wv(x, w, v)).max(axis=(-2, -1)) + 1e-300


# ------------------------------------------------------------------------------------------------ J and μ±
@SETTINGS
@given(x=wide, w=finite, v=finite)
def test_closed_form_equals_numeric_eigenvalues(x, w, v):
    # below |x| ~ 1e-150 the entries of J (~x²) are subnormal floats: no formula keeps relative accuracy there
    assume(x == 0 or abs(x) > 1e-150)
    num = np.array(mu_eigenvalues(x, w, v))
    closed = np.array(mu_eigenvalues(x, w, v, closed_form=True))
    assert np.all(np.abs(num - closed) <= 1e-12 * _scale(x, w, v))
    assert closed[0] <= closed[1]


def test_closed_form_vectorised_and_matches_paper_formula_unscaled():
    """B.2-B.5 as printed (with cosh, sinh), where they do not overflow, against the scaled implementation."""
    rng = np.random.default_rng(0)
    x, w, v = rng.normal(0, 1.5, (3, 2000))
    T = target(x)
    ch, sh = np.cosh(w * x), np.sinh(w * x)
    A = -1 + (1 + 2 * v**2 * x**2 - v * x**2 * np.tanh(w * x) * T) / ch**2 - 3 * v**2 * x**2 / ch**4
    C = (8 * v**2 * (2 + np.cosh(2 * w * x)) * sh**2 - v * (6 * np.sinh(2 * w * x) + np.sinh(4 * w * x)) * T
         + 2 * ch**2 * T**2)
    B = 32 * x**2 * ch**2 * C + (-1 + 16 * v**2 * x**2 - 8 * v**2 * x**2 * np.cosh(2 * w * x)
                                 + np.cosh(4 * w * x) + 4 * v * x**2 * np.sinh(2 * w * x) * T) ** 2
    mp_paper = A + np.sqrt(B) / (8 * ch**4)
    mm_paper = A - np.sqrt(B) / (8 * ch**4)
    mm, mp = mu_eigenvalues(x, w, v, closed_form=True)
    sc = _scale(x, w, v)
    assert np.all(np.abs(mp - mp_paper) <= 1e-9 * sc)
    assert np.all(np.abs(mm - mm_paper) <= 1e-9 * sc)
    assert mp.shape == (2000,)


def test_no_overflow_for_large_wx():
    x = np.array([50.0, 200.0, 1e3, 1e5, -1e5])
    for w in (3.0, 40.0, -7.0):
        mm, mp = mu_eigenvalues(x, w, 0.7, closed_form=True)
        nm, np_ = mu_eigenvalues(x, w, 0.7)
        assert np.all(np.isfinite(mm)) and np.all(np.isfinite(mp))
        assert np.allclose(mm, nm, rtol=0, atol=1e-12) and np.allclose(mp, np_, rtol=0, atol=1e-12)


@SETTINGS
@given(x=finite, w=finite, v=finite)
def test_closed_form_small_mu_plus_keeps_relative_accuracy(x, w, v):
    """μ+ μ− = det J, to relative accuracy, even when μ+ ≈ 0 (no cancellation in A + √B)."""
    assume(x == 0 or abs(x) > 1e-150)
    J = jacobian_wv(x, w, v).astype(np.longdouble)
    det = J[0, 0] * J[1, 1] - J[0, 1] ** 2
    mm, mp = mu_eigenvalues(x, w, v, closed_form=True)
    terms = abs(J[0, 0] * J[1, 1]) + J[0, 1] ** 2
    # det from float64 entries is itself only accurate to ~eps * terms
    assert abs(float(mm) * float(mp) - float(det)) <= 1e-13 * float(terms) + 1e-300


def test_mu_plus_near_its_root_is_accurate():
    """At (1/2, 1/2) μ+ changes sign at x0 ≈ 0.88: near x0 the closed form keeps many digits, numerics do not."""
    f = lambda t: float(mu_eigenvalues(t, 0.5, 0.5, closed_form=True)[1])
    x0 = optimize.brentq(f, 0.5, 1.5, xtol=1e-15)
    x = x0 * (1 + np.array([1e-9, -1e-9]))
    mp = mu_eigenvalues(x, 0.5, 0.5, closed_form=True)[1]
    assert mp[0] < 0 < mp[1] or mp[1] < 0 < mp[0]
    # linear behaviour on both sides: μ+(x0(1+δ)) ≈ δ x0 μ+'(x0), same magnitude either side
    assert np.isclose(abs(mp[0]), abs(mp[1]), rtol=1e-5)


@SETTINGS
@given(x=finite, w=finite, v=finite)
def test_jacobian_symmetric_and_equals_finite_differences_of_g(x, w, v):
    J = jacobian_wv(x, w, v)
    assert J[0, 1] == J[1, 0]
    h = 1e-6
    dgw = (sgd_direction_wv(x, w + h, v) - sgd_direction_wv(x, w - h, v)) / (2 * h)
    dgv = (sgd_direction_wv(x, w, v + h) - sgd_direction_wv(x, w, v - h)) / (2 * h)
    fd = np.stack([dgw, dgv], axis=-1)           # fd[i, j] = ∂g_i/∂θ_j
    tol = 1e-6 * (1 + abs(x)) ** 4 * (1 + abs(v)) ** 2
    assert np.allclose(J, fd, rtol=0, atol=tol)


def test_g_is_minus_gradient_of_quarter_squared_error():
    x, w, v = 0.7, -0.3, 1.2
    h = 1e-6
    phi = lambda ww, vv: (2 * vv * np.tanh(ww * x) - target(x)) ** 2 / 4
    grad = np.array([(phi(w + h, v) - phi(w - h, v)) / (2 * h), (phi(w, v + h) - phi(w, v - h)) / (2 * h)])
    assert np.allclose(sgd_direction_wv(x, w, v), -grad, atol=1e-9)


@SETTINGS
@given(x=wide, w=finite, v=finite)
def test_mu_even_in_x(x, w, v):
    for cf in (False, True):
        a = np.array(mu_eigenvalues(x, w, v, closed_form=cf))
        b = np.array(mu_eigenvalues(-x, w, v, closed_form=cf))
        assert np.allclose(a, b, rtol=0, atol=1e-13 * _scale(x, w, v))


@SETTINGS
@given(x=finite.filter(lambda t: abs(t) > 1e-3), w=finite, v=finite)
def test_mu_minus_negative_theorem_2(x, w, v):
    e = 2 * v * np.tanh(w * x) - target(x)
    mm, _ = mu_eigenvalues(x, w, v, closed_form=True)
    if abs(e) > 1e-6 and abs(x * w) < 30:
        assert mm < 0


def test_fig3_left_saddle_near_zero_attracting_far():
    mm, mp = mu_eigenvalues(np.array([0.1, 0.5, 1.5, 3.0]), 0.5, 0.5, closed_form=True)
    assert mp[0] > 0 and mp[1] > 0 and mp[2] < 0 and mp[3] < 0
    assert np.all(mm < 0)


# ------------------------------------------------------------------------------------------------ π
@SETTINGS
@given(w=finite, v=finite, s2=st.floats(min_value=1e-3, max_value=10.0))
def test_pi_in_unit_interval(w, v, s2):
    p = attracting_probability(w, v, s2)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize("w, v, s2", [(0.5, 0.5, 1.0), (0.5, 0.5, 0.1), (1.3, 0.2, 1.0), (-0.8, -1.1, 0.5),
                                      (2.0, 1.5, 3.0), (0.3, -1.0, 1.0)])
def test_pi_matches_monte_carlo(w, v, s2):
    rng = np.random.default_rng(12345)
    n = 400_000
    x = rng.normal(0.0, math.sqrt(s2), n)
    hits = mu_eigenvalues(x, w, v)[1] <= 0        # numeric eigenvalues: independent of the root formula
    mc = hits.mean()
    err = math.sqrt(max(mc * (1 - mc), 1.0 / n) / n)
    assert abs(attracting_probability(w, v, s2) - mc) <= 5 * err


@pytest.mark.parametrize("w, v, s2", [(0.5, 0.5, 1.0), (1.3, 0.2, 0.1)])
def test_pi_matches_fine_grid_quadrature(w, v, s2):
    """Deterministic check below MC precision: midpoint rule of the indicator on 10⁶ cells."""
    s = math.sqrt(s2)
    edges = np.linspace(0, 12 * s, 1_000_001)
    mid = 0.5 * (edges[1:] + edges[:-1])
    mass = special.erf(edges[1:] / (s * math.sqrt(2))) - special.erf(edges[:-1] / (s * math.sqrt(2)))
    ind = mu_eigenvalues(mid, w, v, closed_form=True)[1] <= 0
    ref = mass[ind].sum()
    # only the cells holding a root (≤ 2 here) can be misclassified, each of mass ≤ 12/10⁶ · 0.8 < 1e-5
    assert abs(attracting_probability(w, v, s2) - ref) < 2e-5


def test_pi_vectorised_and_grid_shape():
    w = np.linspace(0, 2, 7)
    v = np.linspace(0, 2, 5)
    p = attracting_probability(w[:, None], v[None, :], 1.0)
    assert p.shape == (7, 5)
    one = np.array([[attracting_probability(a, b, 1.0) for b in v] for a in w])
    assert np.allclose(p, one, rtol=0, atol=1e-15)
    p3 = attracting_probability(0.5, 0.5, np.array([0.01, 0.1, 1.0]))
    assert p3.shape == (3,) and np.all(np.diff(p3) > 0)


def test_pi_zero_without_hidden_unit():
    # w = 0 or v = 0: det J = −x² T² sech⁴ ≤ 0 < … only saddles
    assert attracting_probability(0.0, 0.7, 1.0) == 0.0
    assert attracting_probability(1.3, 0.0, 1.0) == 0.0


@SETTINGS
@given(w=finite, v=finite)
def test_pi_symmetric_under_sign_flip(w, v):
    # (w, v) → (−w, −v) is the neuron sign flip on M_wv: J is unchanged, so π is too
    assert abs(attracting_probability(w, v, 0.7) - attracting_probability(-w, -v, 0.7)) < 1e-14


def test_pi_paper_values():
    p = attracting_probability(0.5, 0.5, np.array([0.01, 0.1, 1.0]))
    assert p[0] < 1e-15 and 0.003 < p[1] < 0.01 and 0.3 < p[2] < 0.45
    # regression values (exact quadrature)
    assert np.allclose(p[1:], [0.00547616, 0.37975107], atol=1e-8)


# ------------------------------------------------------------------------------------------------ App. A
def _erf_act(u):
    return special.erf(u / math.sqrt(2))


def _erf_potential_quad(w, v, s2):
    s = math.sqrt(s2)

    def integrand(z):
        x = s * z
        f = 2 * v * _erf_act(w * x)
        T = 2 * _erf_act(x) - _erf_act(4 * x)
        return 0.5 * (f - T) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    return integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]


@pytest.mark.parametrize("w, v, s2", [(0.7, 0.3, 1.0), (-1.5, 2.0, 0.1), (3.0, -0.4, 2.0)])
def test_erf_averaged_potential_closed_form_A3_A5(w, v, s2):
    assert np.isclose(averaged_potential(w, v, s2), _erf_potential_quad(w, v, s2), rtol=1e-9, atol=1e-12)
    assert np.isclose(averaged_potential_full([w, w, v, v], s2), averaged_potential(w, v, s2), rtol=1e-13)


@pytest.mark.parametrize("w, s2", [(0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (0.7, 0.1), (6.0, 0.01), (-1.2, 1.0)])
def test_valley_is_direct_minimiser_of_erf_potential(w, s2):
    res = optimize.minimize_scalar(lambda vv: _erf_potential_quad(w, vv, s2), bracket=(-3, 3), tol=1e-12)
    assert np.isclose(valley(w, s2), res.x, rtol=1e-5, atol=1e-7)


def test_valley_equation_A7():
    w = np.linspace(0.1, 2.0, 20)
    a7 = (2 * np.arcsin(w / (np.sqrt(2) * np.sqrt(1 + w**2))) - np.arcsin(4 * w / (np.sqrt(17) * np.sqrt(1 + w**2)))
          ) / (2 * np.arcsin(w**2 / (1 + w**2)))
    assert np.allclose(valley(w, 1.0), a7, rtol=1e-13)
    assert np.allclose(valley_potential(w, 1.0), averaged_potential(w, valley(w, 1.0), 1.0), rtol=1e-12)


def test_valley_local_minimum_claim():
    """The paper says C (σ² = 1) holds a local minimum of the averaged potential; with the erf potential it does
    not for w > 0 (L* increases monotonically along C), while for σ² = 0.1 and 0.01 there is one (at v < 0)."""
    w = np.geomspace(1e-3, 100, 3000)
    assert np.all(np.diff(valley_potential(w, 1.0)) > 0)
    assert valley_local_minima(1.0)[0].size == 0
    for s2 in (0.1, 0.01):
        ws, vs, lam = valley_local_minima(s2)
        assert ws.size == 1 and vs[0] < 0
        h = 1e-3 * ws[0]
        assert valley_potential(ws[0] - h, s2) > lam[0] < valley_potential(ws[0] + h, s2)


def test_averaged_jacobian_is_minus_half_hessian_of_tanh_potential():
    w, v, s2 = 0.6, 0.4, 1.0
    h = 1e-4
    L = lambda a, b: float(averaged_potential(a, b, s2, activation="tanh"))
    H = np.empty((2, 2))
    H[0, 0] = (L(w + h, v) - 2 * L(w, v) + L(w - h, v)) / h**2
    H[1, 1] = (L(w, v + h) - 2 * L(w, v) + L(w, v - h)) / h**2
    H[0, 1] = H[1, 0] = (L(w + h, v + h) - L(w + h, v - h) - L(w - h, v + h) + L(w - h, v - h)) / (4 * h * h)
    assert np.allclose(averaged_jacobian_wv(w, v, s2), -0.5 * H, atol=1e-6)


# ------------------------------------------------------------------------------------------------ Dataset
def test_dataset_structure_and_netcdf_round_trip(tmp_path):
    w = np.linspace(0, 2, 6)
    v = np.linspace(0, 2, 4)
    ds = degenerate_stability([0.1, 1.0], w, v, x=np.linspace(-3, 3, 31))
    assert ds["pi"].dims == ("sigma2", "w", "v")
    assert ds["valley"].dims == ("sigma2", "w")
    assert ds["mu_plus"].dims == ("point", "x")
    assert float(ds["pi_at_points"].sel(sigma2=1.0)[0]) == pytest.approx(0.37975107, abs=1e-8)
    path = tmp_path / "fig3.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as back:
        back = back.load()
    xr.testing.assert_identical(ds, back)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [0.0, -1.0, [1.0, -0.1]])
def test_bad_sigma2(bad):
    with pytest.raises(ValueError, match="sigma2"):
        attracting_probability(0.5, 0.5, bad)
    with pytest.raises(ValueError, match="sigma2"):
        degenerate_stability(bad, [0.5], [0.5])
    with pytest.raises(ValueError, match="sigma2"):
        valley(1.0, bad)


@pytest.mark.parametrize("name", ["x", "w", "v"])
def test_non_finite_points(name):
    args = {"x": 1.0, "w": 0.5, "v": 0.5}
    for bad in (np.nan, np.inf, [0.1, -np.inf]):
        args2 = dict(args, **{name: bad})
        with pytest.raises(ValueError, match=f"^{name} must be finite"):
            mu_eigenvalues(**args2)
        if name != "x":
            with pytest.raises(ValueError, match=f"^{name} must be finite"):
                attracting_probability(args2["w"], args2["v"], 1.0)
    with pytest.raises(ValueError, match="sigma2 must be finite"):
        attracting_probability(0.5, 0.5, np.nan)


def test_bad_options():
    with pytest.raises(TypeError, match="closed_form"):
        mu_eigenvalues(1.0, 0.5, 0.5, closed_form="yes")
    with pytest.raises(ValueError, match="activation"):
        averaged_potential(1.0, 0.5, 1.0, activation="relu")
    with pytest.raises(ValueError, match="points"):
        degenerate_stability(1.0, [0.5], [0.5], points=[0.5, 0.5, 0.5])


# ------------------------------------------------------------------------------------------------ 4-D system
def _fa(batch=1):
    rds = pytest.importorskip("rds")
    models = getattr(rds, "models", None)
    if models is None or not hasattr(models, "fukumizu_amari") or not hasattr(rds, "coords"):
        pytest.skip("rds core (models.fukumizu_amari, coords) not available yet")
    return rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=batch)


def test_tangent_block_is_I_plus_eta_J_and_blocks_decouple():
    from analysis.degenerate_stability import transverse_jacobian

    fa = _fa()
    w = np.array([0.5, -1.2, 2.0])
    v = np.array([0.5, 0.3, -0.7])
    for x in (-1.3, 0.4, 2.2):
        tan, tr, coup = transverse_jacobian(fa, w, v, [x])
        assert np.allclose(tan, np.eye(2) + 0.1 * jacobian_wv(x, w, v)[..., :, :], atol=1e-12)
        assert np.all(coup < 1e-12)
        assert tr.shape == (3, 2, 2)


def test_step_jacobian_pqrs_equals_finite_differences():
    import rds
    from analysis.degenerate_stability import step_jacobian_pqrs

    fa = _fa()
    pqrs = np.array([0.4, 0.6, 0.1, -0.2])
    x = np.array([0.9])
    step = lambda u: rds.coords.to_pqrs(fa.apply(rds.coords.from_pqrs(u), x))
    h = 1e-6
    fd = np.stack([(step(pqrs + h * e) - step(pqrs - h * e)) / (2 * h) for e in np.eye(4)], axis=-1)
    J = step_jacobian_pqrs(fa, rds.coords.from_pqrs(pqrs), x)
    assert np.allclose(J, fd, atol=1e-8)


def test_averaged_tangent_block_matches_averaged_J():
    from analysis.degenerate_stability import averaged_step_jacobian, compare_random_averaged

    fa = _fa()
    Javg = averaged_step_jacobian(fa, [0.5, 0.5, 0.5, 0.5], 1.0)
    assert np.allclose(Javg[:2, :2], np.eye(2) + 0.1 * averaged_jacobian_wv(0.5, 0.5, 1.0), atol=1e-10)
    assert np.abs(Javg[:2, 2:]).max() < 1e-12
    fa2 = _fa(batch=3)
    assert np.allclose(averaged_step_jacobian(fa2, [0.5, 0.5, 0.5, 0.5], 1.0), Javg, atol=1e-12)
    ds = compare_random_averaged(fa, [0.5], [0.5], 1.0, x=[0.3, 1.0, 2.0])
    mu = ds["mu"].values
    assert np.allclose(ds["tangent_rate"].values, mu, atol=1e-10)


def test_plots_return_figures():
    from matplotlib.figure import Figure

    from analysis.plots_stability import plot_mu_eigenvalues, plot_pi_map

    g = np.linspace(0, 2, 9)
    ds = degenerate_stability([0.1, 1.0], g, g, x=np.linspace(-3, 3, 41))
    assert isinstance(plot_mu_eigenvalues(ds), Figure)
    assert isinstance(plot_pi_map(ds), Figure)
