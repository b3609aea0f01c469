"""Where do SGD, heavy ball and Adam stop being stable? Lyapunov exponents of optax training on real digits.

An MLP 64 → H → 10 (tanh, softmax cross-entropy, weight decay μ/2 |p|²) is trained on scikit-learn's 8×8 digits
(no download) to a minimum θ* by full-batch Adam. Training with an optax optimizer is a random map on
θ = (parameters, optimizer state) (:func:`rds.models.optax_training`). At the minimum, the question is for which
learning rates η each optimizer stays there: it does when the top Lyapunov exponent λ₁ of its map linearised at
the minimum is negative. The linearised map is the Jacobian at δ = 0 of the recentred map
δ ↦ φ(x* + δ, ξ) − φ(x* + 0·δ, ξ) (x* = θ* with the optimizer's state there), whose top-10 exponents come from
exact Jacobian-vector products (k·D numbers, never the D × D Jacobian). The theory of the boundaries (full batch):

* gradient descent (``optax.sgd(η)``): η λ_max(H) = 2;
* heavy ball (``optax.sgd(η, momentum=β)``): η λ_max(H) = 2 (1 + β) (Polyak 1964; the companion matrices
  [[1 + β − η h, −β], [1, 0]]);
* Adam (``optax.adam(η)``, β₁ = 0.9): the preconditioned sharpness λ_max(P⁻¹H), P = diag(√v̂ + ε), reaches
  (2 + 2β₁) / ((1 − β₁) η) (Cohen et al., "Adaptive gradient methods at the edge of stability", 2022) — for the
  preconditioner frozen at the minimum.

λ₁ is scanned over η / η_theory; the printed crossing (linear interpolation of λ₁ between the two grid points
around its sign change) is compared with 1. Then an ensemble started around θ* and driven by one shared minibatch
sequence (S = 32) is run below (0.5 η_theory) and above (1.5 η_theory) each boundary: does it synchronise (its
diameter shrinks) or not?

Why Adam's boundary differs from the frozen theory: at a minimum the gradient vanishes, so Adam's second moment v
decays like β₂^t and the preconditioner P grows — the map is not the frozen one, and its linearisation carries
the v directions with exponent ln β₂ ≈ −0.001 (λ₁ cannot be below that). Over the measured window the drift is
small, so the measured crossing is close to the frozen prediction; over longer runs the boundary moves to
smaller η.

Run:  python examples/optax_digits.py [--scale small|paper] [--out out/]

Measured (small scale, H = 16, D = 1210 parameters, weight decay 1e-2; 2000 Adam + 2000 GD steps to a minimum
with |grad| ~ 1e-5 and Hessian eigenvalues in [9e-4, 2.29]; 2 CPU cores shared with other jobs, 226 s at load
average ~7, about a minute on a quiet machine):

* GD and heavy ball: λ₁ changes sign at η / η_theory = 1.03 (bisection in [0.5, 1.5], 4 halvings: resolution
  ±0.03) — the theory, to the resolution;
* Adam: λ₁ rises above its small-η value between 0.95 and 1.05 η_theory, as the frozen-preconditioner bound says,
  but it does not change sign: it stays at ≈ +0.028, the same for every η in the grid, along the first-layer
  weights of pixels blank in (nearly) every image (``params/W1[8,3]``, ``params/W1[8,4]``: the var names say
  so). Their gradient is the weight decay alone, Adam's v̂ there is ~ g², and Adam's update is sign-like, which
  the frozen-preconditioner linearisation (P⁻¹H, P = √v̂ + ε fixed) does not describe;
* ensembles on one minibatch path (S = 32, start diameter 0.034): GD below its boundary shrinks to 0.009 in 300
  steps (synchronises) and above it grows to 1.8; heavy ball grows both below (18) and above (350): the
  full-batch bound does not hold with minibatch noise at η/(1 − β) = 10 η; Adam shrinks below (0.005) and above
  (0.014): its sign-like steps of size ~η keep the ensemble together even above the full-batch bound.

``--scale paper`` uses H = 128 (D ≈ 10⁴ parameters, 3·10⁴ state variables for Adam) and a finer η grid.
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import xarray as xr

import analysis
import rds
from rds.models.optax_training import optax_training, training_losses, training_state

WEIGHT_DECAY = 1e-2
BETA = 0.9  # heavy ball's momentum and Adam's β₁
SCALES = {
    "tiny": dict(hidden=4, n_train=300, train_steps=300, ratios=(0.5, 1.5), lyap_steps=60, k=3, members=3,
                 sync_steps=50, bisect=1),
    "small": dict(hidden=16, n_train=1000, train_steps=2000, ratios=(0.5, 0.8, 0.95, 1.05, 1.25, 1.5),
                  lyap_steps=200, k=10, members=8, sync_steps=300, bisect=4),
    "paper": dict(hidden=128, n_train=1500, train_steps=5000, ratios=tuple(np.round(np.linspace(0.5, 1.5, 21), 3)),
                  lyap_steps=2000, k=10, members=16, sync_steps=5000, bisect=8),
}


def load(n_train):
    from sklearn.datasets import load_digits
    d = load_digits()
    X, y = d.data / 16.0, d.target.astype(np.int32)
    perm = np.random.default_rng(0).permutation(X.shape[0])
    X, y = X[perm], y[perm]
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def loss(p, Xb, yb):
    """Softmax cross-entropy of the MLP, plus the weight decay (μ/2)|p|² that isolates the minimum."""
    h = jnp.tanh(Xb @ p["W1"] + p["b1"])
    ce = optax.softmax_cross_entropy_with_integer_labels(h @ p["W2"] + p["b2"], yb).mean()
    return ce + 0.5 * WEIGHT_DECAY * sum(jnp.sum(a * a) for a in jax.tree_util.tree_leaves(p))


def init(key, hidden):
    k1, k2 = jax.random.split(key)
    return {"W1": jax.random.normal(k1, (64, hidden)) / 8.0, "b1": jnp.zeros(hidden),
            "W2": jax.random.normal(k2, (hidden, 10)) / np.sqrt(hidden), "b2": jnp.zeros(10)}


def top_eigenvalue(matvec, D, which="LA"):
    """Largest (``"LA"``) or smallest (``"SA"``) eigenvalue of a symmetric operator given by its matrix-vector
    product (Lanczos, ARPACK)."""
    from scipy.sparse.linalg import LinearOperator, eigsh
    op = LinearOperator((D, D), matvec=lambda v: np.asarray(matvec(np.asarray(v, dtype=float).ravel())))
    return float(eigsh(op, k=1, which=which, tol=1e-8, return_eigenvectors=False)[0])


def gradient_norm(p_star, data):
    with jax.enable_x64(True):
        g = jax.grad(loss)(jax.tree_util.tree_map(jnp.asarray, p_star), jnp.asarray(data[0]), jnp.asarray(data[1]))
        return float(np.sqrt(sum(float(jnp.sum(a * a)) for a in jax.tree_util.tree_leaves(g))))


def sharpness(p_star, data, precond=None, which="LA"):
    """λ_max(H) of the full-batch loss at p*, or λ_max(P^{-1/2} H P^{-1/2}) with P = diag(precond)."""
    from jax.flatten_util import ravel_pytree
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(p_star)
        Xj, yj = jnp.asarray(data[0]), jnp.asarray(data[1])
        grad = jax.grad(lambda q: loss(unravel(q), Xj, yj))
        s = jnp.ones_like(flat) if precond is None else 1.0 / jnp.sqrt(ravel_pytree(precond)[0])
        hvp = jax.jit(lambda v: s * jax.jvp(grad, (flat,), (s * v,))[1])
        return top_eigenvalue(hvp, flat.size, which)


def recentred(system, x_star):
    """The map linearised at x*: δ ↦ φ(x* + δ, ξ) − φ(x* + 0·δ, ξ) (δ = 0 fixed for every ξ, also in rounding)."""
    base = system.step

    def recentred_step(delta, xi, params):
        return base(x_star + delta, xi, params) - base(x_star + 0.0 * delta, xi, params)
    return rds.RandomDynamicalSystem(recentred_step, noise=system.noise, variables=system.variables,
                                     params=system.params, form="vector", native=True, name="recentred")


def top_exponent(lin, eta, steps, t0):
    """λ₁ of the linearised map at learning rate ``eta`` (one random tangent vector)."""
    sysr = lin.replace(params=lin.params._replace(learning_rate=float(eta)))
    V0 = np.random.default_rng(3).standard_normal((lin.nvar, 1))
    ds = analysis.lyapunov_spectrum(sysr, np.zeros(lin.nvar), steps, tangent=V0, qr_every=5, t0=t0)
    return float(ds.exponents.values[0, 0, 0])


def boundary(lin, eta_theory, lo, hi, cfg, t0):
    """η / η_theory where λ₁ changes sign, by bisection in [lo, hi] (NaN if it does not change sign there).

    Each λ₁ comes from a window of 2 × ``lyap_steps`` steps: the finite-window error of the QR method is
    ~ ln(cond) / n, and heavy ball's companion matrices are far from normal (transient growth ~ 1 / (1 − β)).
    """
    n = 2 * cfg["lyap_steps"]
    if not (top_exponent(lin, lo * eta_theory, n, t0) < 0 <= top_exponent(lin, hi * eta_theory, n, t0)):
        return float("nan")
    for _ in range(cfg["bisect"]):
        mid = 0.5 * (lo + hi)
        if top_exponent(lin, mid * eta_theory, n, t0) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out", help="output folder (default: out/)")
    ap.add_argument("--scale", choices=tuple(SCALES), default="small",
                    help="small (under a minute, default), paper (H = 128, D ~ 1e4), tiny (seconds, for tests)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cfg = SCALES[args.scale]
    t_start = time.perf_counter()
    train, test = load(cfg["n_train"])
    with jax.enable_x64(True):
        p0 = jax.tree_util.tree_map(np.asarray, init(jax.random.PRNGKey(0), cfg["hidden"]))

    # 1. train to a minimum: full-batch Adam, then full-batch GD at η = 1 / λ_max to polish the minimum
    adam_full = optax_training(loss, p0, optax.adam, data=train, test=test, hyperparams={"learning_rate": 1e-2})
    n_tr = cfg["train_steps"]
    x_adam = adam_full.evolve(training_state(adam_full, p0), n_tr)
    state = adam_full.pytree.unflatten(x_adam)
    gd = optax_training(loss, p0, optax.sgd, data=train, test=test,
                        hyperparams={"learning_rate": 1.0 / sharpness(state.params, train)})
    x_gd = gd.evolve(training_state(gd, state.params), n_tr)
    p_star = gd.pytree.unflatten(x_gd).params
    state = state._replace(params=p_star)
    L = {k: float(f(x_gd)) for k, f in training_losses(gd).items()}
    D = sum(np.size(a) for a in jax.tree_util.tree_leaves(p_star))
    lam, lam_min = sharpness(p_star, train), sharpness(p_star, train, which="SA")
    gnorm = gradient_norm(p_star, train)
    v_hat = jax.tree_util.tree_map(lambda v: np.asarray(v) / (1 - 0.999 ** n_tr), state.opt_state[0].nu)
    precond = jax.tree_util.tree_map(lambda v: np.sqrt(v) + 1e-8, v_hat)
    lam_pre = sharpness(p_star, train, precond)
    print(f"digits: {train[0].shape[0]} training / {test[0].shape[0]} test images; MLP 64-{cfg['hidden']}-10, "
          f"D = {D} parameters")
    print(f"trained by full-batch Adam then GD ({n_tr} + {n_tr} steps): loss train {L['train']:.4f}, test "
          f"{L['test']:.4f}, |grad| = {gnorm:.1e}; Hessian eigenvalues in [{lam_min:.2e}, {lam:.3f}]; "
          f"preconditioned lambda_max(P^-1 H) = {lam_pre:.4g} (Adam's v at the end of its training)")

    theory = {"GD": 2.0 / lam, "heavy ball": 2.0 * (1 + BETA) / lam,
              "Adam": (2.0 + 2.0 * BETA) / ((1.0 - BETA) * lam_pre)}
    systems = {"GD": (optax.sgd, {}), "heavy ball": (optax.sgd, {"momentum": BETA}),
               "Adam": (optax.adam, {"b1": BETA})}
    ratios = np.asarray(cfg["ratios"], dtype=float)
    lyap = np.full((3, ratios.size, cfg["k"]), np.nan)
    crossing, sync = {}, {}
    for i, (name, (factory, extra)) in enumerate(systems.items()):
        full = optax_training(loss, p0, factory, data=train, hyperparams={"learning_rate": theory[name], **extra})
        # x*: θ* with the optimizer's state there (momentum 0; Adam: its moments at the end of training)
        x_star = training_state(full, p_star)
        if name == "Adam":  # its second moment at the minimum (the preconditioner), momentum 0 as for the others
            x_star = full.pytree.flatten(state._replace(opt_state=(state.opt_state[0]._replace(
                mu=jax.tree_util.tree_map(np.zeros_like, state.opt_state[0].mu)),) + tuple(state.opt_state[1:])))
        lin = recentred(full, x_star)
        # random initial tangents: coordinate vectors could lie in an invariant subspace (the weights of the
        # always-blank pixels feel only the weight decay) and would never see the top exponents
        V0 = np.random.default_rng(2).standard_normal((full.nvar, cfg["k"]))
        for j, r in enumerate(ratios):
            sysr = lin.replace(params=lin.params._replace(learning_rate=r * theory[name]))
            ds = analysis.lyapunov_spectrum(sysr, np.zeros(full.nvar), cfg["lyap_steps"], tangent=V0, qr_every=5,
                                            t0=n_tr if name == "Adam" else 0)
            lyap[i, j] = ds.exponents.values[0, 0]
            if j == 0:  # which entries of θ carry the top Lyapunov vector (the var names are the pytree paths)
                v = ds.vectors.values[0, 0, :, 0]
                top_vars = [f"{full.variables[q]} ({v[q]:+.2f})" for q in np.argsort(-np.abs(v))[:2]]
        crossing[name] = boundary(lin, theory[name], ratios[0], ratios[-1], cfg, t0=n_tr if name == "Adam" else 0)
        # 2. an ensemble around θ* on one shared minibatch path, below and above the boundary
        mb = optax_training(loss, p0, factory, data=train, batch=32,
                            hyperparams={"learning_rate": theory[name], **extra})
        X0 = x_star + np.concatenate([1e-3 * np.random.default_rng(1).standard_normal((cfg["members"], D)),
                                      np.zeros((cfg["members"], mb.nvar - D))], axis=1)
        # (θ is params first: the pytree's first field)
        d0 = float(np.max(np.linalg.norm(X0[:, :D] - X0[:, :D].mean(axis=0), axis=-1)))
        sync[name] = {}
        for label, r in (("below", 0.5), ("above", 1.5)):
            sm = mb.replace(params=mb.params._replace(learning_rate=r * theory[name]))
            t0 = n_tr if name == "Adam" else 0
            tr = sm.trajectory(X0, cfg["sync_steps"], t0=t0, times=t0 + np.unique(np.geomspace(
                1, cfg["sync_steps"], 12).astype(int)))
            P = tr.state.values[..., :D]
            diam = np.max(np.linalg.norm(P - np.nanmean(P, axis=1, keepdims=True), axis=-1), axis=1)
            sync[name][label] = (tr.time.values - t0, diam)
        print(f"{name:>10}: at eta = {ratios[0]} eta_theory, lambda_1 = {lyap[i, 0, 0]:+.4f}, top Lyapunov vector "
              f"mostly {', '.join(top_vars)}")
        lam1 = lyap[i, :, 0]
        j = next((j for j in range(1, ratios.size) if lam1[j] > lam1[0] + 0.01), None)
        rise = "not in the grid" if j is None else f"between {ratios[j - 1]} and {ratios[j]}"
        print(f"{name:>10}: theory eta = {theory[name]:.4g}; top exponent changes sign at eta / eta_theory = "
              f"{crossing[name]:.3f}, rises above its small-eta value {rise}")
        print(f"{name:>10}: ensemble diameter after {cfg['sync_steps']} steps: below "
              f"{sync[name]['below'][1][-1]:.2e}, above {sync[name]['above'][1][-1]:.2e} (start {d0:.2e})")

    ds = xr.Dataset(
        {"top_exponents": (("optimizer", "eta_ratio", "exponent"), lyap),
         "eta_theory": (("optimizer",), [theory[k] for k in systems]),
         "crossing_ratio": (("optimizer",), [crossing[k] for k in systems])},
        coords={"optimizer": list(systems), "eta_ratio": ratios, "exponent": np.arange(1, cfg["k"] + 1)},
        attrs={"analysis": "top-k Lyapunov exponents of optax training linearised at a trained minimum",
               "dataset": "scikit-learn digits, X / 16", "hidden": cfg["hidden"], "parameters": int(D),
               "weight_decay": WEIGHT_DECAY, "beta": BETA, "lambda_max_hessian": lam,
               "lambda_max_preconditioned": lam_pre, "lyapunov_steps": cfg["lyap_steps"],
               "loss_train": L["train"], "loss_test": L["test"],
               "reference": "Polyak (1964); Cohen et al., Adaptive gradient methods at the edge of stability (2022)"})
    path = rds.io.save(rds.labels.annotate(ds), os.path.join(args.out, "optax_digits.nc"))
    print(f"results saved to {path}")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, name in enumerate(systems):
        line = ax.plot(ratios, lyap[i, :, 0], "o-", label=f"{name} (crossing {crossing[name]:.2f})")[0]
        ax.plot(ratios, lyap[i, :, 1:], "-", color=line.get_color(), alpha=0.2, lw=0.8)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(1.0, color="r", ls="--", lw=1, label="theory")
    ax.set(xlabel="η / η_theory", ylabel="top-10 Lyapunov exponents (per step)",
           title="linearised at the trained minimum (full batch)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for i, name in enumerate(systems):
        for label, ls in (("below", "-"), ("above", "--")):
            t, dm = sync[name][label]
            ax.loglog(t, np.maximum(dm, 1e-16), ls, color=f"C{i}", label=f"{name}, {label} (η = "
                      f"{0.5 if label == 'below' else 1.5} η_theory)")
    ax.set(xlabel="steps", ylabel="ensemble diameter (parameters)", title="one shared minibatch path, S = 32")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "optax_digits.png"), dpi=120)
    print(f"figure: {os.path.join(args.out, 'optax_digits.png')}  ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
