"""Lyapunov spectra by the QR method: exact answers, invariants, backends, chunking, I/O, bad input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rds
from analysis import lyapunov_spectrum


def _diag_step(state, xi, params):
    x, y, z = state
    return (1.5 * x, 0.5 * y, -0.3 * z)


def _lin_noisy_step(state, xi, params):
    x, y = state
    return (0.9 * x + 0.5 * y + xi[0], 0.1 * x + 0.3 * y)


def _henon(state, xi, params):
    x, y = state
    a, b = params
    return (1.0 - a * x * x + y, b * x)


DIAG = rds.RandomDynamicalSystem(_diag_step, noise=None, variables=("x", "y", "z"), name="diag")
LIN = rds.RandomDynamicalSystem(_lin_noisy_step, noise=rds.noise.Gaussian(sigma2=0.5), variables=("x", "y"),
                                name="linear_noisy")
HENON = rds.RandomDynamicalSystem(_henon, noise=None, variables=("x", "y"), params=(1.4, 0.3), name="henon")


def test_diagonal_linear_map_exact():
    ds = lyapunov_spectrum(DIAG, np.zeros(3), 300, backend="numpy")
    np.testing.assert_allclose(ds.exponents.values[0, 0], np.log([1.5, 0.5, 0.3]), rtol=0, atol=1e-10)
    assert ds.exponents.dims == ("realization", "member", "exponent")
    # the finite-time history is exact at every recorded time too
    np.testing.assert_allclose(ds.history.values[0, 0], np.broadcast_to(np.log([1.5, 0.5, 0.3]),
                                                                          ds.history.shape[2:]), atol=1e-10)
    # k: the top k exponents only, from a generic start (the O(1/n) error of the initial alignment) ...
    ds2 = lyapunov_spectrum(DIAG, np.zeros(3), 300, k=2, backend="numpy")
    assert ds2.attrs["tangent_start"] == "generic"
    np.testing.assert_allclose(ds2.exponents.values[0, 0], np.log([1.5, 0.5]), atol=10 / 300)
    # ... and exactly from the identity's first columns when they are given
    ds3 = lyapunov_spectrum(DIAG, np.zeros(3), 300, tangent=np.eye(3)[:, :2], backend="numpy")
    np.testing.assert_allclose(ds3.exponents.values[0, 0], np.log([1.5, 0.5]), atol=1e-10)


def _triangular_step(state, xi, params):
    x, y = state
    return (0.5 * x + y, 2.0 * y)


def test_top_exponent_is_not_hidden_by_an_invariant_coordinate_direction():
    """J = [[0.5, 1], [0, 2]]: e1 is invariant (exponent ln 0.5), the top exponent is ln 2. The identity's first
    column stays in e1 and reported ln 0.5 as the top exponent; the generic start finds ln 2."""
    tri = rds.RandomDynamicalSystem(_triangular_step, noise=None, variables=("x", "y"), name="triangular")
    ds = lyapunov_spectrum(tri, np.zeros(2), 200, k=1, backend="numpy")
    np.testing.assert_allclose(ds.exponents.values[0, 0, 0], np.log(2.0), atol=10 / 200)
    hidden = lyapunov_spectrum(tri, np.zeros(2), 200, tangent=np.eye(2)[:, :1], backend="numpy")
    np.testing.assert_allclose(hidden.exponents.values[0, 0, 0], np.log(0.5), atol=1e-10)  # why it matters


def test_general_linear_map_with_noise_has_log_eigenvalue_exponents():
    A = np.array([[0.9, 0.5], [0.1, 0.3]])
    ref = np.sort(np.log(np.abs(np.linalg.eigvals(A))))[::-1]
    ds = lyapunov_spectrum(LIN, np.zeros((2, 2)), 3000, transient=10, realizations=2, backend="numpy", seed=1)
    # additive noise does not change the tangent dynamics; the error is O(1/n) from the initial alignment
    np.testing.assert_allclose(ds.exponents.values, np.broadcast_to(ref, ds.exponents.shape), atol=2e-3)
    assert ds.sizes["realization"] == 2


def test_henon_sum_and_largest_exponent():
    rng = np.random.default_rng(0)
    X0 = rng.uniform(-0.1, 0.1, (16, 2))
    ds = lyapunov_spectrum(HENON, X0, 21000, transient=1000, qr_every=2, backend="numpy")
    # |det J| = b exactly at every step: the sum is ln b to rounding
    np.testing.assert_allclose(ds["sum"].values, np.log(0.3), rtol=0, atol=1e-11)
    lam1 = float(ds.mean_exponents.sel(exponent=1))
    se = float(ds.stderr.sel(exponent=1))
    # reference 0.41922 (Sprott, Chaos and Time-Series Analysis, 2003); tolerance 0.005 and 5 standard errors
    assert abs(lam1 - 0.41922) < 0.005
    assert abs(lam1 - 0.41922) < 5 * se
    assert 0 < se < 0.002


def test_phase_oscillator_exponent_is_minus_sigma2_over_4():
    s2 = 0.1
    osc = rds.models.phase_oscillator(omega=1.0, sigma2=s2, dt=0.01, common_noise=False)
    ds = lyapunov_spectrum(osc, np.linspace(0, 6, 32)[:, None], 41000, transient=1000, realizations=2, qr_every=10,
                           backend="numpy", seed=3)
    lam, se = float(ds.mean_exponents[0]), float(ds.stderr[0])
    assert ds.attrs["n_samples"] == 64 and 0 < se < 0.003
    assert abs(lam + s2 / 4) < 3 * se, (lam, se)   # eq. D.6: λ ≈ −σ²/4 (per unit time)
    assert "per unit time" in ds.attrs["units"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), steps=st.integers(5, 60), transient=st.integers(0, 20),
       qr=st.integers(1, 4), u=st.lists(st.floats(-1.5, 1.5), min_size=4, max_size=4))
def test_sum_equals_mean_log_det_jacobian(seed, steps, transient, qr, u):
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    u = np.asarray(u)
    total = steps + transient
    ds = lyapunov_spectrum(fa, u, total, seed=seed, transient=transient, qr_every=qr, backend="numpy",
                           num_history=3)
    tr = fa.trajectory(u, total, seed=seed, backend="numpy")
    xis = fa.noise_path(0, total, seed=seed)
    logdet = [np.log(abs(np.linalg.det(fa.jacobian_matrix(tr.state.values[t, 0], xis[t]))))
              for t in range(transient, total)]
    expected = np.mean(logdet) / fa.dt
    assert abs(float(ds["sum"][0, 0]) - expected) <= 1e-10 * max(1.0, abs(expected))


def test_backends_and_chunking_agree():
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X0 = np.random.default_rng(2).uniform(-1, 1, (7, 4))
    kw = dict(seed=4, transient=50, qr_every=3, realizations=2, num_history=5)
    a = lyapunov_spectrum(fa, X0, 400, backend="numpy", **kw)
    b = lyapunov_spectrum(fa, X0, 400, backend="numba", **kw)
    c = lyapunov_spectrum(fa, X0, 400, backend="numpy", chunk_size=3, **kw)
    np.testing.assert_allclose(a.exponents.values, b.exponents.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.history.values, b.history.values, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(a.exponents.values, c.exponents.values)
    # independent noise per member is also chunk-independent
    fi = fa.replace(common_noise=False)
    d = lyapunov_spectrum(fi, X0, 200, backend="numpy", **kw)
    e = lyapunov_spectrum(fi, X0, 200, backend="numpy", chunk_size=2, **kw)
    np.testing.assert_array_equal(d.exponents.values, e.exponents.values)
    assert "independent" in d.attrs["stderr_method"]


def test_netcdf_round_trip(tmp_path):
    ds = lyapunov_spectrum(LIN, np.zeros((3, 2)), 200, transient=20, realizations=2, backend="numpy")
    path = tmp_path / "lyap.nc"
    rds.io.save(ds, path)
    back = rds.io.load(path)
    assert back.identical(ds) or (back.equals(ds) and back.attrs == ds.attrs)
    for v in ds.data_vars:
        assert back[v].attrs == ds[v].attrs


def test_divergence_is_data():
    def blow(state, xi, params):
        (x,) = state
        return (x * x + 1.0,)
    s = rds.RandomDynamicalSystem(blow, noise=None, variables=("x",))
    with pytest.warns(rds.DivergenceWarning):
        ds = lyapunov_spectrum(s, np.array([[0.0], [0.5]]), 40, backend="numpy")
    assert ds.diverged.values.all() and np.isnan(ds.exponents.values).all() and ds.attrs["n_diverged"] == 2


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=10, transient=10), "steps"),
    (dict(steps=10, transient=20), "steps"),
    (dict(steps=10, qr_every=0), "qr_every"),
    (dict(steps=10, k=0), "k"),
    (dict(steps=10, k=4), "k"),
    (dict(steps=10, num_history=0), "num_history"),
])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        lyapunov_spectrum(LIN, np.zeros(2), backend="numpy", **kwargs)


def test_single_path_systems_refuse_realizations():
    with pytest.raises(ValueError, match="realizations"):
        lyapunov_spectrum(HENON, np.zeros(2), 10, realizations=2, backend="numpy")
    x = np.linspace(-1, 1, 5)
    gd = rds.models.teacher_student(x, np.tanh(x), hidden=2, eta=0.01)
    with pytest.raises(ValueError, match="realizations"):
        lyapunov_spectrum(gd, np.full(4, 0.3), 10, realizations=3, backend="numpy")
    with pytest.raises(ValueError, match="initial"):
        lyapunov_spectrum(HENON, np.zeros(3), 10, backend="numpy")
    with pytest.raises(ValueError, match="tangent"):
        lyapunov_spectrum(HENON, np.zeros(2), 10, tangent=np.zeros((3, 1)), backend="numpy")


def test_plot_exponent_history_accepts_array_reference():
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from analysis import lyapunov_spectrum, plot_exponent_history
    from rds import RandomDynamicalSystem

    lin = RandomDynamicalSystem(lambda s, xi, p: (2.0 * s[0], 0.5 * s[1]), variables=("x", "y"))
    ds = lyapunov_spectrum(lin, np.ones((1, 2)), 50, backend="numpy")
    fig = plot_exponent_history(ds, reference=np.array([np.log(2), -np.log(2)]))
    assert fig is not None
