"""Parameter scans with standard errors, zero crossings, finite-time exponents and covariant Lyapunov vectors.

Exact cases computed independently of the library: scalar random maps whose log-derivative is a function of the
noise alone (the exponent is E ln|a_t|, the n-step exponent is an average of i.i.d. terms), random upper-triangular
products (exponents E ln|a11|, E ln|a22|, e1 covariant) and constant matrices (covariant vectors = eigenvectors).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import analysis
import rds
from analysis.lyapunov_scan import _fieller, _significant_bracket, batch_means


def lognormal_growth(s, xi, p):
    """x ↦ a e^ξ x (mod 1: the state stays bounded, the derivative is a e^ξ exactly): λ = ln a."""
    return (np.mod(p[0] * np.exp(xi[0]) * s[0], 1.0),)


def make_growth(a, sigma2=1.0):
    return rds.RandomDynamicalSystem(lognormal_growth, noise=rds.noise.Gaussian(sigma2), variables=("x",),
                                     params=(float(a),), name="lognormal_growth")


# ------------------------------------------------------------------------------------------------ scans and roots
def test_scan_matches_ln_a_with_honest_errors():
    grid = [0.6, 0.9, 1.0, 1.2, 1.7]
    ds = analysis.lyapunov_scan(make_growth, grid, np.full(1, 0.3), 3000, realizations=4, blocks=10, seed=5,
                                parameter="a", backend="numpy")
    assert ds.mean_exponents.dims == ("a", "exponent")
    lam = ds.mean_exponents.sel(exponent=1).values
    se = ds.stderr.sel(exponent=1).values
    # per-step log-derivative ln a + ξ, Var ξ = 1: the error of the mean over K n steps is 1 / sqrt(K n)
    assert np.allclose(se, 1 / np.sqrt(4 * 3000), rtol=0.3)
    assert np.all(np.abs(lam - np.log(grid)) < 4 * se)
    assert ds.attrs["blocks"] == 10
    assert int(ds.n_batches[0]) == 40 and "batch means" in ds.attrs["stderr_method"]
    assert np.all(ds.ci_low.values < np.log(grid)[:, None]) and np.all(np.log(grid)[:, None] < ds.ci_high.values)
    # the block exponents average to the exponent of the whole window
    whole = ds.exponents.mean(("realization", "member")).values
    assert np.allclose(ds.block_exponents.mean(("realization", "member", "block")).values, whole, atol=1e-12)


def test_scan_roundtrip(tmp_path):
    ds = analysis.lyapunov_scan(make_growth, [0.5, 2.0], np.full(1, 0.3), 200, realizations=2, blocks=4,
                                backend="numpy")
    back = rds.io.load(rds.io.save(ds, tmp_path / "scan.nc"))
    assert back.attrs["analysis"] == "lyapunov_scan"
    np.testing.assert_array_equal(back.stderr.values, ds.stderr.values)


def test_scan_rejects_bad_input():
    x0 = np.full(1, 0.3)
    with pytest.raises(ValueError, match="grid"):
        analysis.lyapunov_scan(make_growth, [], x0, 100, backend="numpy")
    with pytest.raises(ValueError, match="grid"):
        analysis.lyapunov_scan(make_growth, [1.0, np.nan], x0, 100, backend="numpy")
    with pytest.raises(ValueError, match="blocks"):
        analysis.lyapunov_scan(make_growth, [1.0], x0, 100, transient=95, blocks=10, backend="numpy")
    with pytest.raises(ValueError, match="confidence"):
        analysis.lyapunov_scan(make_growth, [1.0], x0, 100, confidence=1.5, backend="numpy")
    with pytest.raises(TypeError, match="make_system"):
        analysis.lyapunov_scan(lambda a: 3, [1.0], x0, 100, backend="numpy")
    with pytest.raises(ValueError, match="direction"):
        analysis.exponent_root(make_growth, [0.5, 2.0], x0, 100, direction="sideways", backend="numpy")
    with pytest.raises(ValueError, match="rounds"):
        analysis.exponent_root(make_growth, [0.5, 2.0], x0, 100, rounds=-1, backend="numpy")


def test_correlated_blocks_warn():
    """A slow Ornstein-Uhlenbeck log-rate (correlation time 100 steps) with 10-step blocks: errors understated."""
    def slow(s, xi, p):
        x, y = s
        return (np.mod(np.exp(y) * x, 1.0), p[0] * y + 0.1 * xi[0])

    make = lambda c: rds.RandomDynamicalSystem(slow, noise=rds.noise.Gaussian(1.0), variables=("x", "y"),  # noqa
                                               params=(c,))
    with pytest.warns(RuntimeWarning, match="autocorrelation"):
        ds = analysis.lyapunov_scan(make, [0.99], np.array([0.3, 0.0]), 400, blocks=40, realizations=2,
                                    backend="numpy")
    assert float(ds.block_autocorrelation.sel(exponent=1).max()) > 0.3


def test_exponent_root_covers_known_crossing():
    """λ(a) = ln a crosses zero at a = 1; the interval covers it and the refinement adds values in the bracket."""
    ds = analysis.exponent_root(make_growth, [0.5, 0.8, 1.3, 2.0], np.full(1, 0.3), 2000, rounds=3, points=3,
                                realizations=4, parameter="a", seed=11, backend="numpy")
    assert ds.attrs["status"].startswith("resolved")
    assert float(ds.root_low) < 1.0 < float(ds.root_high)
    assert float(ds.root_high - ds.root_low) < 0.08
    assert ds.attrs["rounds_done"] >= 1 and int(ds["round"].max()) >= 1
    assert np.all(np.diff(ds.a.values) > 0)
    # common random numbers: the neighbouring values share the noise, so the level error is not averaged away;
    # the interval is about +-t se / slope (slope 1 at a = 1), not sqrt(5) times narrower
    se = float(ds.stderr.sel(exponent=1).mean())
    assert float(ds.root_high - ds.root_low) > 2 * 1.9 * se * 0.8


def test_exponent_root_without_crossing_says_so():
    with pytest.warns(RuntimeWarning, match="no sign change"):
        ds = analysis.exponent_root(make_growth, [1.5, 2.0, 3.0], np.full(1, 0.3), 300, realizations=2,
                                    backend="numpy")
    assert np.isnan(float(ds.root)) and "widen the grid" in ds.attrs["status"]


def test_fieller_interval_coverage():
    """Fieller's interval from paired batches (shared and independent errors) covers the root at its level."""
    rng = np.random.default_rng(0)
    x = np.linspace(0.8, 1.2, 5)
    q = stats.t.ppf(0.975, 39)
    hits = 0
    reps = 400
    for _ in range(reps):
        common = rng.normal(0, 1.0, (40, 1))  # the same noise path at every value (common random numbers)
        own = rng.normal(0, 0.5, (40, 5))
        batches = 2.0 * (x - 1.0) + common + own
        res = _fieller(x, batches, 1.0, q)
        hits += res["low"] <= 1.0 <= res["high"]
    assert 0.92 <= hits / reps <= 0.98


def test_significant_bracket_is_model_free():
    """A kinked exponent (flat, then steep): the bracket is the nearest significantly signed values around it."""
    x = np.array([0.8, 0.9, 0.95, 1.0, 1.05, 1.1])
    y = np.array([-0.01, -0.01, -0.002, 0.001, 0.2, 0.4])
    s = np.full(6, 0.002)
    assert _significant_bracket(x, y, s, np.full(6, 40), 0.98, y[0], 0.95) == (0.9, 1.05)
    assert np.isnan(_significant_bracket(x, y, s * 1000, np.full(6, 40), 0.98, y[0], 0.95)[0])


def test_batch_means_independent_members_count_each_member():
    rng = np.random.default_rng(1)
    blocks = rng.normal(0, 1, (3, 4, 5, 2))
    assert batch_means(blocks, True)[2] == 60 and batch_means(blocks, False)[2] == 15
    blocks[0, :, 0, 0] = np.nan  # a path whose members all diverged is dropped, the rest go on
    assert batch_means(blocks, False)[2] == 10


# ------------------------------------------------------------------------------------------- finite-time exponents
A1, A2, CUT = 2.5, 0.6, 0.5  # a_t = A1 when ξ_t > CUT (probability P), else A2
P = float(stats.norm.sf(CUT))


def two_valued(s, xi, p):
    return (np.mod(np.where(xi[0] > 0.5, 2.5, 0.6) * s[0], 1.0),)


def test_finite_time_exponents_two_valued_map_exact():
    """x ↦ a_t x, a_t two-valued: n λ_n = N ln A1 + (n − N) ln A2 with N ~ Binomial(n, P) the count of ξ_t > CUT
    (read from the noise path itself), and L(q) = ln(P A1^q + (1 − P) A2^q) at every horizon."""
    sys = rds.RandomDynamicalSystem(two_valued, noise=rds.noise.Gaussian(1.0), variables=("x",), common_noise=False)
    M, hz, qs = 3000, np.array([1, 5, 20, 60]), np.array([-1.0, 1.0, 2.0])
    ds = analysis.finite_time_exponents(sys, np.full((M, 1), 0.3), hz, q=qs, seed=3, backend="numpy")
    assert ds.exponents.dims == ("realization", "member", "horizon", "exponent") and ds.sizes["realization"] == 1
    xi = sys.noise_path(0, int(hz[-1]), seed=3, members=(0, M))[:, 0, :]  # (time, member)
    N = np.cumsum(xi > CUT, axis=0)[hz - 1]  # (horizon, member): the count of a_t = A1, computed independently
    exact = (N * np.log(A1) + (hz[:, None] - N) * np.log(A2)) / hz[:, None]
    np.testing.assert_allclose(ds.exponents.values[0, :, :, 0].T, exact, rtol=0, atol=1e-12)
    # the distribution at the longest horizon is Binomial(n, P) (chi-square goodness of fit)
    n = int(hz[-1])
    counts = np.bincount(N[-1], minlength=n + 1)
    pmf = stats.binom.pmf(np.arange(n + 1), n, P) * M
    keep = pmf >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp_ = np.append(pmf[keep], pmf[~keep].sum())
    assert stats.chisquare(obs, exp_ * obs.sum() / exp_.sum()).pvalue > 1e-3
    # variance growth: T Var λ_n = P (1 − P) ln(A1/A2)²
    np.testing.assert_allclose(ds.variance_rate.values[:, 0], P * (1 - P) * np.log(A1 / A2) ** 2, rtol=0.12)
    # L(q): the library's estimate is the sample formula, and it covers the exact value within its error
    Lhat = np.log(np.mean(np.exp(qs[None, :, None] * hz[:, None, None] * exact[:, None, :]), axis=-1))
    np.testing.assert_allclose(ds.generalized.values, Lhat / hz[:, None], rtol=1e-10)
    L = np.log(P * A1 ** qs + (1 - P) * A2 ** qs)
    rel = ds.reliable.values
    corrected = (ds.generalized - ds.generalized_bias).values
    assert rel[0].all() and not rel[-1, -1]  # n = 60, q = 2 needs ~e^{60 (L(4) - 2 L(2))} samples: flagged
    assert np.all(np.abs(corrected - L)[rel] < 4 * ds.generalized_stderr.values[rel] + 1e-12)


def test_finite_time_exponents_common_noise_groups_by_path(tmp_path):
    sys = rds.RandomDynamicalSystem(two_valued, noise=rds.noise.Gaussian(1.0), variables=("x",))
    ds = analysis.finite_time_exponents(sys, np.array([[0.3], [0.7]]), [3, 6], realizations=40, q=[1.0],
                                        backend="numpy")
    assert ds.sizes["realization"] == 40 and "noise path" in ds.attrs["jackknife_groups"]
    # members share the noise: their exponents are equal (the derivative does not depend on the state)
    np.testing.assert_array_equal(ds.exponents.values[:, 0], ds.exponents.values[:, 1])
    back = rds.io.load(rds.io.save(ds, tmp_path / "ft.nc"))
    np.testing.assert_array_equal(back.generalized.values, ds.generalized.values)
    with pytest.raises(ValueError, match="horizons"):
        analysis.finite_time_exponents(sys, np.array([[0.3]]), [0, 3], backend="numpy")
    with pytest.raises(ValueError, match="q must"):
        analysis.finite_time_exponents(sys, np.array([[0.3]]), [3], q=[1.0, 1.0], backend="numpy")


# ------------------------------------------------------------------------------------- covariant Lyapunov vectors
A3 = np.array([[1.8, 0.7, -0.4], [0.0, -0.9, 0.5], [0.3, 0.0, 0.4]])


def linear3(s, xi, p):
    x, y, z = s
    return (1.8 * x + 0.7 * y - 0.4 * z, -0.9 * y + 0.5 * z + 0.0 * x, 0.3 * x + 0.4 * z + 0.0 * y)


def eigvecs_by_modulus(A):
    w, V = np.linalg.eig(A)
    order = np.argsort(-np.abs(w))
    return w[order].real, V[:, order].real


def test_propagate_tangent_return_r_factors():
    """J Q(t_{i-1}) = Q(t_i) R(t_i) with the recorded factors, for a constant matrix (J = A² over two steps)."""
    lin = rds.RandomDynamicalSystem(linear3, variables=("x", "y", "z"))
    out = lin.propagate_tangent(np.zeros((2, 3)), 6, times=[0, 2, 4, 6], return_r=True, backend="numpy")
    R, Q = out["r_records"][0], out["v_records"][0]
    assert R.shape == (4, 3, 3) and np.allclose(R[0], np.eye(3))
    A2 = A3 @ A3
    for i in range(1, 4):
        np.testing.assert_allclose(A2 @ Q[i - 1], Q[i] @ R[i], atol=1e-12)
        assert np.allclose(np.tril(R[i], -1), 0) and np.all(np.diagonal(R[i]) > 0)
    np.testing.assert_allclose(out["logr"][0], np.log(np.diagonal(R[1:], axis1=1, axis2=2)).sum(0), atol=1e-12)
    with pytest.raises(ValueError, match="return_r"):
        lin.propagate_tangent(np.zeros((1, 3)), 6, return_r=True, backend="numpy")


def test_clv_constant_matrix_are_eigenvectors():
    lin = rds.RandomDynamicalSystem(linear3, variables=("x", "y", "z"))
    w, E = eigvecs_by_modulus(A3)
    for qr_every in (1, 3):
        ds = analysis.covariant_vectors(lin, np.zeros(3), 30, transient=60, backward_transient=90,
                                        qr_every=qr_every, backend="numpy")
        V = ds.vectors.values[0, 0]  # (time, var, clv)
        dots = np.abs(np.einsum("tvc,vc->tc", V, E / np.linalg.norm(E, axis=0)))
        np.testing.assert_allclose(dots, 1.0, atol=1e-10)
        np.testing.assert_allclose(ds.covariant_exponents.values[0, 0], np.log(np.abs(w)), atol=1e-9)
        np.testing.assert_allclose(ds.local_exponents.values[0, 0], np.log(np.abs(w))[None].repeat(10 if qr_every
                                   == 3 else 30, 0), atol=1e-9)
        assert ds.attrs["split"] == 1  # one positive exponent (ln 1.8...)
        expect = analysis.subspace_angle(E[:, :1], E[:, 1:])
        np.testing.assert_allclose(ds.angle.values[0, 0], expect, atol=1e-9)


def triangular(s, xi, p):
    """θ ↦ A_t θ, A_t = [[e^{m1 + ξ0}, ξ2], [0, e^{m2 + ξ1}]]: e1 is invariant; exponents m1, m2."""
    x, y = s
    return (np.exp(p[0] + xi[0]) * x + xi[2] * y, np.exp(p[1] + xi[1]) * y + 0.0 * x)


@pytest.mark.parametrize("m1, m2", [(0.3, -0.4), (-0.5, 0.2)])
def test_clv_random_upper_triangular(m1, m2):
    """e1 is covariant: the first CLV when E ln a11 > E ln a22, else the second; its local exponents are ln a11."""
    sys = rds.RandomDynamicalSystem(triangular, noise=rds.noise.Gaussian(0.25, batch=3), variables=("x", "y"),
                                    params=(m1, m2))
    n, tr = 400, 100
    ds = analysis.covariant_vectors(sys, np.array([[0.1, 0.2]]), n, transient=tr, backward_transient=tr, seed=4,
                                    realizations=2, backend="numpy")
    which = 0 if m1 > m2 else 1
    V = ds.vectors.values  # (realization, member, time, var, clv)
    np.testing.assert_allclose(np.abs(V[..., 0, which]), 1.0, atol=1e-10)  # v_which = ±e1 at every time
    other = V[..., 0, 1 - which]
    assert np.abs(other).min() < 0.999  # the other CLV is not e1
    for r in range(2):
        xi = sys.noise_path(tr, tr + n, seed=4, realization=r)
        ln11, ln22 = m1 + xi[:, 0], m2 + xi[:, 1]
        np.testing.assert_allclose(ds.local_exponents.values[r, 0, :, which], ln11, atol=1e-10)
        np.testing.assert_allclose(ds.exponents.values[r, 0].sum(), np.mean(ln11 + ln22), atol=1e-10)
    lam = np.sort([m1, m2])[::-1]
    assert np.all(np.abs(ds.exponents.mean(("realization", "member")).values - lam) < 4 * 0.5 / np.sqrt(2 * n))
    np.testing.assert_allclose(ds.covariant_exponents.values, ds.exponents.values, atol=0.05)
    assert np.all((ds.angle.values > 0) & (ds.angle.values <= np.pi / 2))


def test_clv_checkpointing_does_not_change_results():
    sys = rds.RandomDynamicalSystem(triangular, noise=rds.noise.Gaussian(0.25, batch=3), variables=("x", "y"),
                                    params=(0.3, -0.4))
    kw = dict(transient=30, backward_transient=30, qr_every=2, record_every=3, backend="numpy")
    ref = analysis.covariant_vectors(sys, np.array([[0.1, 0.2], [0.3, -1.0]]), 40, checkpoint=1000, **kw)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex:
        runs = [analysis.covariant_vectors(sys, np.array([[0.1, 0.2], [0.3, -1.0]]), 40, checkpoint=cp, **kw)
                for cp in (1, 7)]
        runs.append(analysis.covariant_vectors(sys, np.array([[0.1, 0.2], [0.3, -1.0]]), 40, executor=ex,
                                               chunk_size=1, **kw))
    for ds in runs:
        for key in ("vectors", "local_exponents", "angle", "exponents"):
            np.testing.assert_array_equal(ds[key].values, ref[key].values)
    assert ref.sizes["time_recorded"] == 7 and ref.sizes["time"] == 20


def test_clv_vector_map_top_k(tmp_path):
    """A vector map θ ↦ A θ (D = 6): the top-2 CLVs are the two eigenvectors of largest modulus."""
    rng = np.random.default_rng(3)
    P = rng.normal(size=(6, 6))
    A = P @ np.diag([1.5, -1.2, 0.8, 0.5, 0.3, 0.1]) @ np.linalg.inv(P)

    def vstep(theta, xi, params):
        return A @ theta

    sys = rds.RandomDynamicalSystem(vstep, form="vector", dim=6)
    ds = analysis.covariant_vectors(sys, np.zeros(6), 20, k=2, transient=60, backward_transient=60,
                                    backend="numpy")
    w, E = eigvecs_by_modulus(A)
    E = E[:, :2] / np.linalg.norm(E[:, :2], axis=0)
    np.testing.assert_allclose(np.abs(np.einsum("tvc,vc->tc", ds.vectors.values[0, 0], E)), 1.0, atol=1e-8)
    np.testing.assert_allclose(ds.exponents.values[0, 0], np.log([1.5, 1.2]), atol=1e-2)
    back = rds.io.load(rds.io.save(ds, tmp_path / "clv.nc"))
    np.testing.assert_array_equal(back.vectors.values, ds.vectors.values)


def test_clv_rejects_bad_input():
    lin = rds.RandomDynamicalSystem(linear3, variables=("x", "y", "z"))
    with pytest.raises(ValueError, match="multiple of qr_every"):
        analysis.covariant_vectors(lin, np.zeros(3), 10, qr_every=3, backend="numpy")
    with pytest.raises(ValueError, match="split"):
        analysis.covariant_vectors(lin, np.zeros(3), 10, split=3, backend="numpy")
    with pytest.raises(ValueError, match="realizations"):
        analysis.covariant_vectors(lin, np.zeros(3), 10, realizations=2, backend="numpy")


def test_scan_on_an_executor_gives_the_same_numbers():
    from concurrent.futures import ThreadPoolExecutor
    x0 = np.array([[0.3], [0.6], [0.2]])
    ref = analysis.lyapunov_scan(make_growth, [0.7, 1.4], x0, 200, realizations=2, blocks=4, backend="numpy")
    with ThreadPoolExecutor(2) as ex:
        ds = analysis.lyapunov_scan(make_growth, [0.7, 1.4], x0, 200, realizations=2, blocks=4, backend="numpy",
                                    executor=ex, chunk_size=1)
    np.testing.assert_array_equal(ds.block_exponents.values, ref.block_exponents.values)


def test_return_r_agrees_across_backends():
    pytest.importorskip("jax")
    sys = rds.RandomDynamicalSystem(triangular, noise=rds.noise.Gaussian(0.25, batch=3), variables=("x", "y"),
                                    params=(0.3, -0.4))
    kw = dict(times=[0, 3, 6, 9], return_r=True, seed=2)
    ref = sys.propagate_tangent(np.array([[0.1, 0.2]]), 9, backend="numpy", **kw)
    out = sys.propagate_tangent(np.array([[0.1, 0.2]]), 9, backend="jax", **kw)
    assert out.backend == "jax"
    np.testing.assert_allclose(out["r_records"], ref["r_records"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out["v_records"], ref["v_records"], rtol=1e-12, atol=1e-14)


def test_scan_and_finite_time_start_generic():
    """With e1 invariant and E ln a11 < E ln a22 the identity's first column would give λ1 = m1 (wrong); the
    analyses start from generic vectors and find the top exponent m2."""
    make = lambda m1: rds.RandomDynamicalSystem(triangular, noise=rds.noise.Gaussian(0.25, batch=3),  # noqa: E731
                                                variables=("x", "y"), params=(m1, 0.2))
    ds = analysis.lyapunov_scan(make, [-0.5], np.array([0.1, 0.2]), 1000, realizations=2, backend="numpy")
    assert abs(float(ds.mean_exponents[0, 0]) - 0.2) < 4 * float(ds.stderr[0, 0])
    ft = analysis.finite_time_exponents(make(-0.5), np.array([0.1, 0.2]), [500], realizations=4, backend="numpy")
    assert abs(float(ft["mean"][0, 0]) - 0.2) < 0.1 and ft.attrs["tangent_start"].startswith("random")


def test_lyapunov_spectrum_history_option():
    ds = analysis.lyapunov_spectrum(make_growth(2.0), np.full(1, 0.3), 100, transient=20, history=[10, 50, 80],
                                    backend="numpy")
    assert ds.time.values.tolist() == [30, 70, 100]
    np.testing.assert_allclose(ds.history.values[0, 0, -1], ds.exponents.values[0, 0], rtol=1e-12)
    for bad in ([0, 5], [90], []):
        with pytest.raises(ValueError, match="history"):
            analysis.lyapunov_spectrum(make_growth(2.0), np.full(1, 0.3), 100, transient=20, history=bad,
                                       backend="numpy")
