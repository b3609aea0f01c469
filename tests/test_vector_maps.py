"""Vector maps (one member's step on a 1-D θ) and the JAX backend: analytic answers, backend agreement, cocycle,
chunking, I/O, and the JAX path of elementwise maps."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analysis
import rds
from rds.noise import GaussianInputs

jax = pytest.importorskip("jax")


# ------------------------------------------------------------------------------------------------ maps
def make_linear(D, scale=1.0):
    """θ ↦ A_t θ, A_t = I + scale · G_t / √D with G_t a D×D standard Gaussian matrix (the noise sample)."""
    def linear_step(theta, xi, params):
        return theta + params[0] * (xi @ theta) / np.sqrt(xi.shape[0])
    return rds.RandomDynamicalSystem(linear_step, noise=GaussianInputs(1.0, batch=D, dim=D), form="vector",
                                     dim=D, params=(scale,), name="random_linear")


def tanh_step(theta, xi, params):
    """A small nonlinear vector map: θ ← θ − η (tanh(B θ) B − 0.1 θ), B = the noise sample (S, D)."""
    eta = params[0]
    return theta - eta * (np.tanh(xi @ theta) @ xi / xi.shape[0] + 0.1 * theta) + 0.01 * xi[0]


def make_tanh(D=12, S=3, common=True, precision="float64"):
    return rds.RandomDynamicalSystem(tanh_step, noise=GaussianInputs(1.0, batch=S, dim=D), form="vector", dim=D,
                                     params=(0.3,), common_noise=common, precision=precision)


def u0(M, D, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (M, D))


def qr_exponents(mats, k):
    """Independent Lyapunov exponents of a product of matrices: plain NumPy QR at every step."""
    D = mats.shape[-1]
    Q = np.eye(D)[:, :k]
    s = np.zeros(k)
    for A in mats:
        Q, R = np.linalg.qr(A @ Q)
        s += np.log(np.abs(np.diag(R)))
        Q = Q * np.sign(np.diag(R))
    return s / len(mats)


def largest_first(exps):
    """The library's order from the identity start (documented: largest first per member)."""
    return np.sort(exps)[::-1]


# ------------------------------------------------------------------------------------------------ analytic answers
def test_linear_map_exponents_equal_an_independent_computation():
    D, n = 20, 60
    lin = make_linear(D)
    # the identity's first 6 columns, given (top k < D starts generic): the same start as the reference
    ds = analysis.lyapunov_spectrum(lin, np.ones(D), n, seed=5, tangent=np.eye(D)[:, :6], qr_every=3,
                                    backend="jax")
    mats = np.eye(D) + lin.noise_path(0, n, seed=5) / np.sqrt(D)
    np.testing.assert_allclose(ds.exponents.values[0, 0], qr_exponents(mats, 6), rtol=0, atol=1e-10)
    assert ds.attrs["form"] == "vector" and ds.attrs["backend"] == "jax"


@settings(max_examples=8, deadline=None)
@given(D=st.integers(1, 50), seed=st.integers(0, 10**6), n=st.integers(1, 12))
def test_sum_of_exponents_is_mean_log_det(D, seed, n):
    lin = make_linear(D, scale=0.7)
    ds = analysis.lyapunov_spectrum(lin, np.ones(D), n, seed=seed, qr_every=4, backend="numpy")
    mats = np.eye(D) + 0.7 * lin.noise_path(0, n, seed=seed) / np.sqrt(D)
    logdet = np.mean(np.linalg.slogdet(mats)[1])
    assert abs(float(ds["sum"].values[0, 0]) - logdet) <= 1e-9 * max(1.0, abs(logdet))
    np.testing.assert_allclose(ds.exponents.values[0, 0], largest_first(qr_exponents(mats, D)), rtol=0,
                               atol=1e-8)


def test_sum_of_exponents_is_mean_log_det_on_jax_at_D50():
    D, n = 50, 15
    lin = make_linear(D, scale=0.7)
    ds = analysis.lyapunov_spectrum(lin, np.ones(D), n, seed=3, qr_every=5, backend="jax")
    mats = np.eye(D) + 0.7 * lin.noise_path(0, n, seed=3) / np.sqrt(D)
    np.testing.assert_allclose(float(ds["sum"].values[0, 0]), np.mean(np.linalg.slogdet(mats)[1]), atol=1e-9)


# ------------------------------------------------------------------------------------------------ backends
@pytest.mark.parametrize("common", [True, False])
def test_numpy_and_jax_agree_on_every_service(common):
    sys_ = make_tanh(common=common)
    u = u0(5, 12)
    a = sys_.evolve(u, 150, seed=3, t0=-40, backend="numpy")
    b = sys_.evolve(u, 150, seed=3, t0=-40, backend="jax")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    ta = sys_.propagate_tangent(u, 60, tangent=np.eye(12)[:, :4], seed=1, qr_every=7, backend="numpy",
                                times=[10, 30])
    tb = sys_.propagate_tangent(u, 60, tangent=np.eye(12)[:, :4], seed=1, qr_every=7, backend="jax",
                                times=[10, 30])
    for key in ("state", "V", "logr", "logr_records"):
        np.testing.assert_allclose(ta[key], tb[key], rtol=0, atol=1e-12)
    ball = rds.vector.norm_ball(1.3)
    ea = sys_.first_exit(u * 0.3, ball, 300, seed=2, backend="numpy")
    eb = sys_.first_exit(u * 0.3, ball, 300, seed=2, backend="jax")
    np.testing.assert_array_equal(ea["exit_step"], eb["exit_step"])
    np.testing.assert_allclose(ea["state"], eb["state"], rtol=0, atol=1e-12)
    xi = sys_.noise_path(0, 1, seed=1)[0]
    np.testing.assert_allclose(sys_.jacobian_matrix(u, xi, backend="numpy"),
                               sys_.jacobian_matrix(u, xi, backend="jax"), rtol=0, atol=1e-13)


def test_apply_and_jacobian_matrix_match_the_step():
    sys_ = make_tanh()
    u = u0(3, 12)
    xi = sys_.noise_path(0, 1)[0]
    np.testing.assert_array_equal(sys_.apply(u, xi)[1], tanh_step(u[1], xi, (0.3,)))
    J = sys_.jacobian_matrix(u, xi)
    assert J.shape == (3, 12, 12)
    h = 1e-6  # a central difference, only as a sanity check of the exact Jacobian
    e = np.zeros(12)
    e[4] = h
    fd = (tanh_step(u[0] + e, xi, (0.3,)) - tanh_step(u[0] - e, xi, (0.3,))) / (2 * h)
    np.testing.assert_allclose(J[0, :, 4], fd, atol=1e-8)
    # evolve one step = apply on the noise of that step
    np.testing.assert_allclose(sys_.evolve(u, 1, t0=7, seed=2), sys_.apply(u, sys_.noise_path(7, 8, seed=2)[0]),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_cocycle_is_bitwise_within_a_backend(backend):
    sys_ = make_tanh()
    u = u0(4, 12)
    once = sys_.evolve(u, 90, t0=-30, seed=4, backend=backend)
    twice = sys_.evolve(sys_.evolve(u, 37, t0=-30, seed=4, backend=backend), 53, t0=7, seed=4, backend=backend)
    np.testing.assert_array_equal(once, twice)


def test_chunks_and_executors_do_not_change_results():
    sys_ = make_tanh(common=False)
    u = u0(9, 12)
    ref = sys_.evolve(u, 40, seed=9, backend="numpy")
    np.testing.assert_array_equal(sys_.evolve(u, 40, seed=9, backend="numpy", chunk_size=4), ref)
    j = sys_.evolve(u, 40, seed=9, backend="jax")
    np.testing.assert_allclose(j, ref, rtol=0, atol=1e-12)
    with ThreadPoolExecutor(2) as ex:
        jc = sys_.evolve(u, 40, seed=9, backend="jax", chunk_size=4, executor=ex)
    np.testing.assert_allclose(jc, j, rtol=0, atol=1e-13)


def test_trajectory_dataset_round_trips_through_netcdf(tmp_path):
    sys_ = make_tanh()
    ds = sys_.trajectory(u0(3, 12), 20, every=5, seed=1)
    assert ds.state.dims == ("time", "member", "var") and ds.sizes["var"] == 12
    assert ds.attrs["form"] == "vector" and ds.attrs["dim"] == 12 and ds.attrs["backend"] == "jax"
    assert list(ds["var"].values[:2]) == ["theta0", "theta1"]
    back = rds.io.load(rds.io.save(ds, tmp_path / "vec.nc"))
    np.testing.assert_array_equal(back.state.values, ds.state.values)
    assert back.attrs["form"] == "vector"


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_divergent_member_is_flagged_not_fatal():
    def blow(theta, xi, params):
        return theta * 1e200 * (1.0 + 0.0 * xi[0, 0])
    sys_ = rds.RandomDynamicalSystem(blow, noise=GaussianInputs(1.0, 1, 2), form="vector", dim=2)
    u = np.array([[1.0, 1.0], [0.0, 0.0]])
    for backend in ("numpy", "jax"):
        with pytest.warns(rds.DivergenceWarning):
            out = sys_.evolve(u, 3, backend=backend)
        assert np.all(np.isnan(out[0])) and np.all(out[1] == 0.0)


def test_float32_precision_is_close_and_global_jax_config_is_unchanged():
    before = bool(jax.config.jax_enable_x64)
    u = u0(3, 12)
    a = make_tanh().evolve(u, 50, seed=1, backend="jax")
    b = make_tanh(precision="float32").evolve(u, 50, seed=1, backend="jax")
    assert bool(jax.config.jax_enable_x64) == before
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert np.max(np.abs(a - b)) > 0  # it really ran in single precision


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="backend"):
        make_tanh().evolve(u0(1, 12), 2, backend="numba")
    with pytest.raises(TypeError, match="jacobian"):
        rds.RandomDynamicalSystem(tanh_step, form="vector", dim=3, jacobian="exact")
    with pytest.raises(ValueError, match="dim"):
        rds.RandomDynamicalSystem(tanh_step, form="vector")
    with pytest.raises(ValueError, match="form"):
        rds.RandomDynamicalSystem(tanh_step, form="matrix")
    with pytest.raises(ValueError, match="initial"):
        make_tanh().evolve(np.zeros(5), 2)
    bad = rds.RandomDynamicalSystem(lambda th, xi, p: th[:2], form="vector", dim=3)
    with pytest.raises(ValueError, match="step must return"):
        bad.evolve(np.zeros(3), 2, backend="numpy")


# ------------------------------------------------------------------------------------------------ elementwise on JAX
def test_elementwise_maps_run_on_jax_and_agree_with_numpy():
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=2)
    u = np.random.default_rng(0).uniform(-1, 1, (20, 4))
    np.testing.assert_allclose(fa.evolve(u, 300, seed=3, t0=-100, backend="jax"),
                               fa.evolve(u, 300, seed=3, t0=-100, backend="numpy"), rtol=0, atol=1e-12)
    ta = fa.propagate_tangent(u, 100, seed=1, qr_every=7, backend="numpy")
    tb = fa.propagate_tangent(u, 100, seed=1, qr_every=7, backend="jax")
    np.testing.assert_allclose(ta["logr"], tb["logr"], rtol=0, atol=1e-12)
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    box = rds.regions.Box([-2, -2], [2, 2], variables=("w", "v"))
    w0 = np.random.default_rng(1).uniform(-1.5, 1.5, (10, 2))
    np.testing.assert_array_equal(red.first_exit(w0, box, 2000, seed=2, backend="numpy")["exit_step"],
                                  red.first_exit(w0, box, 2000, seed=2, backend="jax")["exit_step"])
    X = np.zeros((10**3, 4))  # None never picks JAX for elementwise maps
    assert rds.backends.choose(fa, None, X, rds.backends.Plan("evolve", 10**3, 10**6)) != "jax"


# ------------------------------------------------------------------------------------------------ built-in models
def test_two_neuron_vector_model_is_teacher_student():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20)
    y = 2 * np.tanh(x) + 0.1 * rng.standard_normal(20)
    gd = rds.models.teacher_student(x, y, hidden=2, eta=0.01)
    vec = rds.models.dataset_sgd(x, y, hidden=2, eta=0.01)
    assert vec.variables == gd.variables and vec.noise.quenched
    u = np.array([[-0.13, 0.13, 0.16, -0.15], [0.5, 0.2, -0.3, 0.9]])
    ref = gd.evolve(u, 10_000, backend="numpy")
    np.testing.assert_allclose(vec.evolve(u, 10_000, backend="jax"), ref, rtol=0, atol=1e-12)
    la = analysis.lyapunov_spectrum(gd, u, 1500, transient=500, qr_every=10, backend="numpy")
    lb = analysis.lyapunov_spectrum(vec, u, 1500, transient=500, qr_every=10, backend="jax")
    np.testing.assert_allclose(lb.exponents.values, la.exponents.values, rtol=0, atol=1e-9)


def test_soft_committee_d1_is_the_fukumizu_amari_model_on_the_same_noise():
    scm = rds.models.soft_committee(inputs=1, hidden=2, eta=0.1, sigma2=1.0, batch=2)
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=2)
    u = np.random.default_rng(0).uniform(-1, 1, (3, 4))
    np.testing.assert_allclose(scm.evolve(u, 400, seed=2, backend="jax"), fa.evolve(u, 400, seed=2, backend="numpy"),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(scm.propagate_tangent(u, 100, seed=2, qr_every=5, backend="numpy")["logr"],
                               fa.propagate_tangent(u, 100, seed=2, qr_every=5, backend="numpy")["logr"], atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "erf", "softplus"])
def test_soft_committee_backends_agree_for_every_activation(activation):
    scm = rds.models.soft_committee(inputs=3, hidden=4, eta=0.1, sigma2=0.5, batch=4, activation=activation)
    assert scm.nvar == 16
    u = np.random.default_rng(1).normal(0, 0.5, (2, 16))
    a = scm.propagate_tangent(u, 30, tangent=np.eye(16)[:, :3], qr_every=4, backend="numpy")
    b = scm.propagate_tangent(u, 30, tangent=np.eye(16)[:, :3], qr_every=4, backend="jax")
    np.testing.assert_allclose(a["state"], b["state"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["logr"], b["logr"], rtol=0, atol=1e-10)


def test_minibatch_sgd_on_iris_replays_and_learns():
    X, y = rds.models.load_dataset("iris")
    sgd = rds.models.dataset_sgd(X, y, hidden=3, eta=0.05, batch=8)
    u = np.random.default_rng(0).normal(0, 0.3, (2, sgd.nvar))
    a = sgd.evolve(u, 300, seed=1, backend="jax")
    np.testing.assert_allclose(a, sgd.evolve(u, 300, seed=1, backend="numpy"), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a, sgd.evolve(sgd.evolve(u, 100, seed=1, backend="jax"), 200, t0=100, seed=1,
                                                backend="jax"))
    from rds.models.dataset_sgd import dataset_loss
    assert np.all(dataset_loss(sgd, a, X, y) < dataset_loss(sgd, u, X, y))
    # a loss threshold as a first-exit region: leave {L > 0.5}
    from rds.models.two_layer import loss, unpack

    def above(theta):
        W, v = unpack(theta, 3, 3)
        return loss(W, v, X, y, xp=np) > 0.5
    e1 = sgd.first_exit(u, above, 2000, seed=1, backend="jax")
    e2 = sgd.first_exit(u, above, 2000, seed=1, backend="numpy")
    np.testing.assert_array_equal(e1["exit_step"], e2["exit_step"])
    assert np.all(e1["exit_step"] > 0)


# ---------------------------------------------------------------------------------------------- analyses on vector maps
def test_pullback_on_a_vector_map_synchronises():
    ds = analysis.pullback_attractor(make_tanh(), u0(6, 12), [0, 50, 400], t=0, seed=2)
    dg = analysis.pullback_diagnostics(ds)
    assert ds.attrs["form"] == "vector" and dg.diameter.dims == ("tau",)
    assert dg.diameter.values[-1] < 1e-3 * dg.diameter.values[0]
    assert "diameter_symmetric" not in dg  # no declared network symmetry


def test_pullback_diagnostics_of_an_sgd_ensemble_modulo_symmetry():
    X, y = rds.models.load_dataset("iris")
    sgd = rds.models.dataset_sgd(X, y, hidden=2, eta=0.05, batch=10)
    B = np.random.default_rng(1).normal(0, 0.5, (6, sgd.nvar))
    dg = analysis.pullback_diagnostics(analysis.pullback_attractor(sgd, B, [0, 100], t=0, seed=2))
    assert np.all(dg.diameter_symmetric.values <= dg.diameter.values + 1e-12)
    assert np.all(dg.pairwise_mean_symmetric.values <= dg.pairwise_mean.values + 1e-12)


def test_network_distance_is_invariant_under_the_declared_symmetries():
    from analysis.pullback import network_distance
    rng = np.random.default_rng(3)
    N, d = 4, 3
    W, v = rng.standard_normal((N, d)), rng.standard_normal(N)
    perm, sign = rng.permutation(N), np.array([1.0, -1.0, -1.0, 1.0])
    a = np.concatenate([W.ravel(), v])
    b = np.concatenate([(sign[:, None] * W[perm]).ravel(), sign * v[perm]])
    assert network_distance(a, b, N, d) < 1e-12
    assert network_distance(a, b, N, d, signs=False) > 0.1
    assert abs(network_distance(a, a + 0.1, N, d) - np.linalg.norm(np.full(a.size, 0.1))) < 1e-12


def test_escape_times_from_a_norm_ball_on_a_vector_map():
    sys_ = make_tanh()
    ball = rds.vector.norm_ball(1.2)
    ds = analysis.escape_times(sys_, u0(8, 12) * 0.25, ball, 200, seed=1, n_boot=0)
    assert 0.0 <= float(ds.censored_fraction) <= 1.0
    assert ds.escape_time.shape == (1, 8)
