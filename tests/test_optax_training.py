"""JAX-native maps on pytree states, step-dependent maps, and optax training as a random map (rds.native,
rds.models.optax_training)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

import analysis  # noqa: E402
import rds  # noqa: E402
from rds.models.dataset_sgd import dataset_sgd, load_dataset  # noqa: E402
from rds.models.optax_training import (  # noqa: E402
    loss_region,
    optax_training,
    training_losses,
    training_state,
    training_states,
)
from rds.native import PytreeLayout, TimeStamped  # noqa: E402


def mlp_loss(p, Xb, yb):
    """The loss of rds.models.dataset_sgd (tanh, "mean"): (1/S) Σ (Σ_j v_j tanh(w_j·x) − y)²."""
    return jnp.mean((jnp.tanh(Xb @ p["W"].T) @ p["v"] - yb) ** 2)


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris")


def _p0(N=3, d=3, seed=1):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(0, 0.5, (N, d)), "v": rng.normal(0, 0.5, N)}


# ------------------------------------------------------------------------------------------------ native maps
def test_pytree_layout_names_follow_paths_and_round_trip():
    tree = {"params": {"Dense_0": {"kernel": np.arange(6.0).reshape(2, 3), "bias": np.zeros(3)}},
            "opt_state": [np.ones(2), np.float64(7.0)]}
    lay = PytreeLayout(tree)
    assert lay.size == 12 and len(lay.names) == 12 and len(set(lay.names)) == 12
    assert "params/Dense_0/kernel[1,2]" in lay.names and "opt_state/1" in lay.names
    theta = lay.flatten(tree)
    assert theta[lay.names.index("params/Dense_0/kernel[1,2]")] == 5.0
    back = lay.unflatten(theta)
    assert np.array_equal(back["params"]["Dense_0"]["kernel"], tree["params"]["Dense_0"]["kernel"])
    with pytest.raises(ValueError, match="structure"):
        lay.flatten({"params": tree["params"]})
    with pytest.raises(ValueError, match="dtype int"):
        PytreeLayout({"count": np.int32(0), "x": np.zeros(2)})


def test_native_map_is_checked_refuses_numpy_and_runs_as_written():
    def bad(s, xi, p):
        return {"x": s["x"], "y": s["x"]}
    with pytest.raises(ValueError, match="structure of the state"):
        rds.RandomDynamicalSystem.from_jax(bad, {"x": np.zeros(2)}, noise=rds.noise.Gaussian(1.0))

    def step(s, xi, p):  # jnp-only code (jax.lax): jaxify would never be needed, and is not used
        return {"x": jax.lax.cumsum(s["x"]) * p[0] + xi[0]}
    sys = rds.RandomDynamicalSystem.from_jax(step, {"x": np.zeros(3)}, noise=rds.noise.Gaussian(1.0),
                                             params=(0.5,))
    u = np.array([1.0, 2.0, 3.0])
    xi = sys.noise_path(0, 2)
    expect = np.cumsum(np.cumsum(u) * 0.5 + xi[0, 0]) * 0.5 + xi[1, 0]
    assert np.allclose(sys.evolve(u, 2), expect, rtol=0, atol=1e-14)
    assert np.allclose(sys.apply(u, xi[0]), np.cumsum(u) * 0.5 + xi[0, 0], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="backend='jax'"):
        sys.evolve(u, 2, backend="numpy")
    ds = sys.trajectory(u, 3)
    assert ds.attrs["native"] == 1 and ds.attrs["backend"] == "jax" and list(ds["var"].values)[0] == "x[0]"


def test_time_dependent_map_is_a_cocycle_over_time_and_noise():
    def step(s, xi, p, t):  # a schedule: the rate changes at t = 25
        rate = jnp.where(t < 25, 0.9, 0.5)
        return {"x": rate * jnp.sin(s["x"]) + xi[0]}
    sys = rds.RandomDynamicalSystem.from_jax(step, {"x": np.zeros(2)}, noise=rds.noise.Gaussian(0.1),
                                             time_dependent=True, t_min=0)
    assert isinstance(sys.noise, TimeStamped) and sys.noise.shape == (2,)
    u = np.array([0.3, -1.0])
    whole = sys.evolve(u, 70, seed=4)
    parts = sys.evolve(sys.evolve(u, 30, seed=4), 40, seed=4, t0=30)
    assert np.array_equal(whole, parts)
    # by hand: ξ_t from the inner source, and t itself
    xi = rds.noise.Gaussian(0.1).block(4, 0, 0, 70)[:, 0]
    x = u.copy()
    for t in range(70):
        x = (0.9 if t < 25 else 0.5) * np.sin(x) + xi[t]
    assert np.allclose(whole, x, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="t >= 0"):
        sys.evolve(u, 5, t0=-5)


# ------------------------------------------------------------------------------------------------ optax
def test_optax_sgd_is_dataset_sgd_on_one_minibatch_path(iris):
    """optax.sgd(η) = rds.models.dataset_sgd on the same minibatch path: states and top-k exponents (1e-12)."""
    X, y = iris
    p0 = _p0()
    ref = dataset_sgd(X, y, hidden=3, eta=0.05, batch=10)
    sx = optax_training(mlp_loss, p0, optax.sgd(0.05), data=(X, y), batch=10)
    th0 = training_state(sx, p0)
    assert sx.nvar == ref.nvar == 12 and sx.attrs["step_counters"] == 0
    assert np.array_equal(th0, np.concatenate([p0["W"].ravel(), p0["v"]]))  # the same packing as two_layer.pack
    a, b = sx.evolve(th0, 2000, seed=3), ref.evolve(th0, 2000, seed=3, backend="jax")
    assert np.max(np.abs(a - b)) <= 1e-12
    la = analysis.lyapunov_spectrum(sx, th0, 1500, seed=3, k=4, transient=500)
    lb = analysis.lyapunov_spectrum(ref, th0, 1500, seed=3, k=4, transient=500, backend="numpy")  # analytic J
    assert np.max(np.abs(la.exponents.values - lb.exponents.values)) <= 1e-12
    assert la.attrs["backend"] == "jax" and la.sizes["var"] == 12


def test_adam_with_schedule_equals_a_handwritten_optax_loop(iris):
    """Adam's bias correction and a schedule read the step counter: it is the absolute step t."""
    X, y = iris
    p0 = _p0(seed=2)
    # eps = 1e-3: with the default 1e-8, m / (sqrt(v) + eps) of a component whose gradient is ~0 is a ratio of
    # rounding errors, and two correct evaluations (jit and eager) drift apart to ~1e-9 within 30 steps. The
    # schedule is written in float64: optax's own schedules compute in float32 (1 ulp apart jit vs eager)
    opt = optax.adam(lambda count: 0.02 * 0.5 ** (count.astype(jnp.float64) / 50.0), eps=1e-3)
    sx = optax_training(mlp_loss, p0, opt, data=(X, y), batch=8)
    assert sx.attrs["step_counters"] == 2 and sx.nvar == 36
    assert sx.variables[12] == "opt_state/0/mu/W[0,0]"
    th = sx.evolve(training_state(sx, p0), 120, seed=5)
    idx = rds.noise.Minibatches(150, 8).block(5, 0, 0, 120).astype(int)
    with jax.enable_x64(True):
        p = jax.tree_util.tree_map(jnp.asarray, p0)
        s = opt.init(p)
        for t in range(120):
            g = jax.grad(mlp_loss)(p, X[idx[t]], y[idx[t]])
            u, s = opt.update(g, s, p)
            p = optax.apply_updates(p, u)
        hand = sx.pytree.flatten(sx.pytree.unflatten(th)._replace(params=p, opt_state=(
            s[0]._replace(count=None), s[1]._replace(count=None))))
    assert np.max(np.abs(th - hand)) <= 1e-12
    # cocycle across the cut, and replay by (seed, t)
    half = sx.evolve(sx.evolve(training_state(sx, p0), 47, seed=5), 73, seed=5, t0=47)
    assert np.array_equal(half, th)
    with pytest.raises(ValueError, match="t >= 0"):
        sx.evolve(th, 3, t0=-1)


def test_heavy_ball_on_a_quadratic_has_the_companion_exponents():
    """Heavy ball (m ← g + β m, p ← p − η m) on ½ pᵀHp, full batch, D = 20: the 2D exponents are ln|ρ| of
    [[1 + β − η h, −β], [1, 0]] over the eigenvalues h of H — real, complex and unstable modes (Polyak 1964)."""
    eta, beta, D = 0.1, 0.5, 20
    # real (h < 0.86), complex (|rho| = sqrt(beta)), real stable near the boundary, unstable (eta h > 2 (1 + beta))
    h = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 2.0, 4.0, 6.0, 8.0, 10.0, 13.0, 16.0, 19.0, 22.0, 25.0,
                  29.6, 29.9, 30.3, 30.6])
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(D, D)))[0]
    H = (Q * h) @ Q.T

    def quad(p, Xb, yb):
        return 0.5 * p["w"] @ (H @ p["w"])
    sx = optax_training(quad, {"w": np.zeros(D)}, optax.sgd(eta, momentum=beta), data=(np.zeros((1, 1)), np.zeros(1)))
    assert sx.nvar == 2 * D and sx.noise.quenched
    rho = np.concatenate([np.abs(np.roots([1.0, -(1 + beta - eta * hh), beta])) for hh in h])
    expect = np.sort(np.log(rho))[::-1]
    n = 2000
    th0 = training_state(sx, {"w": np.full(D, 1e-3)})
    ds = analysis.lyapunov_spectrum(sx, th0, n, qr_every=1)
    got = ds.exponents.values[0, 0]
    assert np.all(np.isfinite(got)) and got[0] > 0  # the unstable modes are measured, not lost
    assert np.max(np.abs(got - expect)) < 10.0 / n  # the 1/n accuracy of the QR method (no transient)
    # float32: the same exponents to the 1/n accuracy (stable modes: no overflow in single precision)
    keep = h < 29
    D32 = int(keep.sum())
    Q32 = np.linalg.qr(np.random.default_rng(1).normal(size=(D32, D32)))[0]
    H32 = (Q32 * h[keep]) @ Q32.T

    def quad32(p, Xb, yb):
        return 0.5 * p["w"] @ (H32.astype(p["w"].dtype) @ p["w"])
    s32 = optax_training(quad32, {"w": np.zeros(D32)}, optax.sgd(eta, momentum=beta),
                         data=(np.zeros((1, 1)), np.zeros(1)), precision="float32")
    d32 = analysis.lyapunov_spectrum(s32, training_state(s32, {"w": np.full(D32, 1e-3)}), n, qr_every=1)
    rho32 = np.concatenate([np.abs(np.roots([1.0, -(1 + beta - eta * hh), beta])) for hh in h[keep]])
    assert d32.attrs["precision"] == "float32"
    assert np.max(np.abs(d32.exponents.values[0, 0] - np.sort(np.log(rho32))[::-1])) < 10.0 / n


def test_loss_curves_escape_and_initial_states(iris, tmp_path):
    X, y = iris
    sx = optax_training(mlp_loss, _p0(), optax.sgd(0.05, momentum=0.9), data=(X[:120], y[:120]), batch=10,
                        test=(X[120:], y[120:]))

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"W": 0.5 * jax.random.normal(k1, (3, 3)), "v": 0.5 * jax.random.normal(k2, (3,))}
    th0 = training_states(sx, init, 3)
    assert th0.shape == (3, 24) and np.all(th0[:, 12:] == 0.0)  # momentum starts at zero
    ds = analysis.loss_curves(sx, th0, 400, num=15)  # the declared losses: train and test
    assert ds.curve.values.tolist() == ["train", "test"]
    tr = ds.loss.sel(curve="train").values
    assert np.all(tr[-1] < tr[0])
    L = training_losses(sx)["train"](th0)
    assert np.allclose(L, tr[0], rtol=1e-12)
    rds.io.save(ds, tmp_path / "lc.nc")
    back = rds.io.load(tmp_path / "lc.nc")
    assert np.array_equal(back.loss.values, ds.loss.values) and back.attrs["native"] == 1
    # escape times on the loss: from a high loss, the time to get below a threshold (leave {L >= thr})
    thr = float(np.median(tr[-1])) * 1.5
    out = sx.first_exit(th0, loss_region(sx, 100.0, above=thr), 400)
    assert np.all((out["exit_step"] > 0) & (out["exit_step"] <= 400))


def test_hyperparameters_are_run_time_parameters(iris):
    """optimizer=optax.sgd with hyperparams: η and β are the system's params; the same numbers as fixed ones."""
    X, y = iris
    p0 = _p0()
    a = optax_training(mlp_loss, p0, optax.sgd, data=(X, y), batch=10,
                       hyperparams={"learning_rate": 0.05, "momentum": 0.8})
    b = optax_training(mlp_loss, p0, optax.sgd, data=(X, y), batch=10,
                       hyperparams={"learning_rate": 0.02, "momentum": 0.5})
    assert a.params.learning_rate == 0.05 and a.map.identity() == b.map.identity()  # one compiled kernel
    for sysh, (eta, beta) in ((a, (0.05, 0.8)), (b, (0.02, 0.5))):
        fixed = optax_training(mlp_loss, p0, optax.sgd(eta, momentum=beta), data=(X, y), batch=10)
        th0 = training_state(fixed, p0)
        assert np.array_equal(training_state(sysh, p0), th0)
        assert np.max(np.abs(sysh.evolve(th0, 300, seed=1) - fixed.evolve(th0, 300, seed=1))) <= 1e-13
    with pytest.raises(ValueError, match="hyperparams"):
        optax_training(mlp_loss, p0, optax.sgd, data=(X, y), hyperparams={"learning rate": 0.1})


def test_optax_training_refuses_bad_input(iris):
    X, y = iris
    with pytest.raises(ValueError, match="same first dimension"):
        optax_training(mlp_loss, _p0(), optax.sgd(0.1), data=(X, y[:10]))
    with pytest.raises(ValueError, match="batch"):
        optax_training(mlp_loss, _p0(), optax.sgd(0.1), data=(X, y), batch=0)
    with pytest.raises(ValueError, match="not a step counter"):
        optax_training(mlp_loss, _p0(), optax.MultiSteps(optax.sgd(0.1), every_k_schedule=1), data=(X, y))
    with pytest.raises(TypeError, match="GradientTransformation"):
        optax_training(mlp_loss, _p0(), "sgd", data=(X, y))
    with pytest.raises(ValueError, match="finite"):
        optax_training(mlp_loss, _p0(), optax.sgd(0.1), data=(X * np.nan, y))
