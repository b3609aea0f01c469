"""Is a trained minimum stable under SGD? Lyapunov exponents of the SGD map on a real dataset, and pullback.

A small two-layer network (tanh, N hidden neurons, no biases) is trained by full-batch gradient descent on Fisher's
iris data (scikit-learn's bundled copy: no download), regressing the petal width on the other three measurements, with
a small weight decay. At the trained minimum θ* the question is whether minibatch SGD,

    θ_{t+1} = θ_t − η ∇L(θ_t; I_t),   I_t a random minibatch of S indices (replayable noise),

stays there: θ* is stable exactly when the top Lyapunov exponent λ₁ of the linearised random map
δ ↦ (I − η ∇²L(θ*; I_t)) δ is negative. The linearised map is the Jacobian at δ = 0 of the *recentred* SGD map

    δ ↦ φ(θ* + δ, I_t) − φ(θ*, I_t),

which has δ = 0 as a fixed point for every minibatch; its top-k exponents come from the exact tangent service of
the vector map (jvp of k vectors, never the D × D Jacobian). For full-batch GD (S = n) the map is deterministic and
λ₁ = max_i log|1 − η h_i| changes sign exactly at the classical sharpness bound η · λ_max(H) = 2; for minibatches
the boundary moves (the curvature fluctuates with the batch). The example scans a grid of learning rates and batch
sizes, locates the sign change of λ₁ for each batch size with a confidence interval and compares it with
2 / λ_max(H). Finally an ensemble of
networks started around θ* and driven by one shared minibatch sequence is pulled back: it synchronises (its
diameter, modulo the neuron symmetries, shrinks) below the boundary and not above it.

Run:  python examples/sgd_stability.py [--scale small|paper] [--out out/]

Measured (small scale: ``python examples/sgd_stability.py``, 20 s wall clock on 2 CPU cores shared with other jobs,
JAX kernels compiled in the run): λ_max(H) = 6.72 at the minimum (loss 0.053); the top exponent changes sign at
η λ_max = 2.000 (95% interval [1.997, 2.006]) for full-batch GD — the sharpness bound 2 —, at 1.997 [1.969, 2.100]
for S = 8 and at 2.024 [2.016, 2.100] for S = 32 (``analysis.exponent_root``: batch means over 4 noise paths × 5
time blocks of 2000-step runs, 3 rounds of refinement; the exponent has a kink at the crossing, so the intervals
are the model-free brackets between significantly negative and positive values): for S = 32 the boundary lies
above the sharpness bound, for S = 8 it cannot be told apart from it at this scale. Below and above the boundary the
pulled-back ensemble on one shared minibatch path shrinks — above it the ensemble leaves θ* and synchronises
elsewhere.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import analysis
import rds
from rds.models.dataset_sgd import dataset_loss, load_dataset
from rds.models.two_layer import gradient, hessian, unpack

#: Weight decay μ of the training loss L + (μ/2)|θ|²: isolates the minimum along the network's flat directions.
WEIGHT_DECAY = 1e-3

SCALES = {
    # a few seconds, for the test suite only
    "tiny": dict(hidden=2, train=2_000, ratios=np.array([0.5, 1.5]), batches=(8, None), steps=100,
                 realizations=2, k=2, members=3, taus=(0, 20), blocks=4, rounds=1),
    # hidden, GD training steps, eta/eta_GD grid, batch sizes (None: full batch), Lyapunov steps, realizations,
    # time blocks per path (batch means), refinement rounds of the boundary (3 new values each)
    "small": dict(hidden=3, train=40_000, ratios=np.linspace(0.3, 1.5, 9), batches=(8, 32, None), steps=2_000,
                  realizations=4, k=3, members=8, taus=(0, 100, 1000, 5000), blocks=5, rounds=3),
    "paper": dict(hidden=8, train=200_000, ratios=np.linspace(0.1, 1.6, 31), batches=(1, 4, 16, 64, None),
                  steps=20_000, realizations=8, k=5, members=64, taus=(0, 100, 1000, 10_000, 50_000), blocks=10,
                  rounds=5),
}


def recentred(base_step, theta_star):
    """The SGD map recentred at θ*: δ ↦ φ(θ* + δ, ξ) − φ(θ*, ξ) (a vector map; δ = 0 is fixed for every ξ).

    The second term is evaluated at ``θ* + 0·δ``: the same run-time computation as the first at δ = 0, so the
    difference is exactly 0 in floating point too (a constant θ* would let the compiler fold φ(θ*) at compile time,
    with different rounding, and above the stability boundary that 1e-16 offset would grow like e^{λ₁ t}).
    """
    def recentred_step(delta, xi, params):
        return base_step(theta_star + delta, xi, params) - base_step(theta_star + 0.0 * delta, xi, params)
    return recentred_step


def train(X, y, hidden, steps, seed=0):
    """Full-batch GD from a small random start; returns θ*, the GD system and the Hessian's top eigenvalue."""
    gd = rds.models.dataset_sgd(X, y, hidden=hidden, eta=0.1, weight_decay=WEIGHT_DECAY)
    theta0 = np.random.default_rng(seed).normal(0, 0.5, gd.nvar)
    theta = gd.evolve(theta0, steps)
    W, v = unpack(theta, hidden, X.shape[1])
    gW, gv = gradient(W, v, X, y)
    gW, gv = gW + WEIGHT_DECAY * W, gv + WEIGHT_DECAY * v
    H = hessian(W, v, X, y) + WEIGHT_DECAY * np.eye(gd.nvar)
    eig = np.linalg.eigvalsh(H)
    return theta, gd, eig, float(np.sqrt(np.sum(gW ** 2) + np.sum(gv ** 2)))


def stability_grid(X, y, theta_star, lam_max, cfg):
    """Top-k exponents of the linearised SGD map at θ* over (batch, eta), and where λ₁ changes sign.

    For each batch size :func:`analysis.exponent_root` scans the η grid (batch-means errors over noise paths and
    time blocks), brackets the sign change of λ₁ and refines it adaptively; the boundary comes with a confidence
    interval. λ₁(η) is not smooth at every η (it is a maximum over directions), which the interval accounts for
    (the fitted line's covariance is widened by its lack of fit).

    Returns the grid Dataset `exponents` (batch, eta, exponent) with `stderr`, the boundary per batch size with its
    interval, and the refinement results (one :func:`analysis.exponent_root` Dataset per batch size).
    """
    hidden, n = cfg["hidden"], X.shape[0]
    eta_gd = 2.0 / lam_max
    etas = cfg["ratios"] * eta_gd
    batches = [n if b is None else b for b in cfg["batches"]]
    lin_step = None
    roots = []
    for b in cfg["batches"]:
        base = rds.models.dataset_sgd(X, y, hidden=hidden, eta=1.0, batch=b, weight_decay=WEIGHT_DECAY)
        lin_step = lin_step or recentred(base.step, theta_star)  # one function: compiled once per batch size

        def make(eta, base=base, lin_step=lin_step):
            return base.replace(step=lin_step, params=base.params._replace(eta=float(eta)), jacobian=None)

        K = 1 if base.noise.quenched else cfg["realizations"]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "exponent_root", RuntimeWarning)  # printed from its status below
            roots.append(analysis.exponent_root(
                make, etas, np.zeros(base.nvar), cfg["steps"], k=cfg["k"], qr_every=10, realizations=K,
                blocks=cfg["blocks"], seed=1, rounds=cfg["rounds"], points=3, direction="up", parameter="eta"))
    on_grid = [r.where(r["round"] == 0, drop=True) for r in roots]
    ex = np.stack([g.mean_exponents.values for g in on_grid])
    se = np.stack([g.stderr.values for g in on_grid])
    bound = {key: np.array([float(r[key]) for r in roots]) for key in ("root", "root_low", "root_high")}
    grid = xr.Dataset(
        {"exponents": (("batch", "eta", "exponent"), ex), "stderr": (("batch", "eta", "exponent"), se),
         "boundary_eta": (("batch",), bound["root"],
                          {"long_name": "eta at which the top exponent changes sign (NaN: not found/resolved)"}),
         "boundary_low": (("batch",), bound["root_low"],
                          {"long_name": "95% confidence interval of boundary_eta, lower end", "units": "1"}),
         "boundary_high": (("batch",), bound["root_high"],
                           {"long_name": "95% confidence interval of boundary_eta, upper end", "units": "1"})},
        coords={"batch": batches, "eta": etas, "eta_over_gd_bound": ("eta", cfg["ratios"]),
                "exponent": np.arange(1, cfg["k"] + 1)},
        attrs={"analysis": "top-k Lyapunov exponents of linearised SGD at the trained minimum",
               "lambda_max_hessian": lam_max, "gd_sharpness_bound_eta": eta_gd,
               "dataset": "iris (scikit-learn): petal width regressed on the other measurements, standardised",
               "hidden": hidden, "weight_decay": WEIGHT_DECAY, "steps": cfg["steps"], "qr_every": 10,
               "blocks": cfg["blocks"], "form": "vector", "backend": roots[0].attrs["backend"],
               "stderr_method": roots[0].attrs["stderr_method"], "root_method": roots[0].attrs["root_method"]})
    return grid, roots


def pullback_demo(X, y, theta_star, eta, batch, cfg):
    """Ensemble around θ* on one shared minibatch path: diameter modulo symmetry over the pullback time τ."""
    sgd = rds.models.dataset_sgd(X, y, hidden=cfg["hidden"], eta=float(eta), batch=batch,
                                 weight_decay=WEIGHT_DECAY)
    B = theta_star + 0.05 * np.random.default_rng(2).standard_normal((cfg["members"], sgd.nvar))
    ds = analysis.pullback_attractor(sgd, B, list(cfg["taus"]), t=0, seed=3)
    return analysis.pullback_diagnostics(ds, symmetry=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out", help="output folder (default: out/)")
    ap.add_argument("--scale", choices=tuple(SCALES), default="small",
                    help="small (minutes, default), paper (larger grid), tiny (seconds, for tests)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cfg = SCALES[args.scale]
    t_start = time.perf_counter()

    X, y = load_dataset("iris")
    theta_star, gd, eig, gnorm = train(X, y, cfg["hidden"], cfg["train"])
    lam_max = float(eig[-1])
    print(f"iris: n = {X.shape[0]}, d = {X.shape[1]}; network N = {cfg['hidden']}, D = {gd.nvar} parameters")
    loss = float(dataset_loss(gd, theta_star, X, y))
    print(f"trained by GD ({cfg['train']} steps, eta = 0.1, weight decay {WEIGHT_DECAY}): loss {loss:.4f}, "
          f"|grad| = {gnorm:.1e}, Hessian eigenvalues in [{eig[0]:.2e}, {lam_max:.3f}]")
    print(f"GD sharpness bound: eta * lambda_max(H) = 2  ->  eta_GD = {2 / lam_max:.4f}")

    grid, roots = stability_grid(X, y, theta_star, lam_max, cfg)
    rows = grid.boundary_eta.values.tolist()
    for i, b in enumerate(grid.batch.values):
        eb, lo, hi = rows[i], float(grid.boundary_low[i]), float(grid.boundary_high[i])
        label = "full batch (GD)" if b == X.shape[0] else f"S = {b}"
        print(f"{label:>16}: top exponent changes sign at eta = {eb:.4f}  (eta * lambda_max = {eb * lam_max:.3f}, "
              f"95% interval [{lo * lam_max:.3f}, {hi * lam_max:.3f}]; GD bound 2; "
              f"{roots[i].attrs['status'].split(':')[0]})")
    path = rds.io.save(rds.labels.annotate(grid), os.path.join(args.out, "sgd_stability_grid.nc"))
    print(f"grid saved to {path}")

    # pullback: one batch size, just below and above its boundary
    b_demo = cfg["batches"][0]
    eb = rows[0] if np.isfinite(rows[0]) else 2 / lam_max
    demos = {}
    for name, eta in (("stable", 0.7 * eb), ("unstable", 1.3 * eb)):
        dg = pullback_demo(X, y, theta_star, eta, b_demo, cfg)
        demos[name] = (eta, dg)
        moved = float(np.linalg.norm(dg["mean"].values[-1] - theta_star))
        print(f"pullback, S = {b_demo}, eta = {eta:.4f} ({name}): diameter modulo symmetry over tau "
              f"{dict(zip(dg.tau.values.tolist(), np.round(dg.diameter_symmetric.values, 5).tolist()))}; "
              f"|centroid - theta*| at the last tau = {moved:.3f}")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, b in enumerate(grid.batch.values):
        label = "full batch (GD)" if b == X.shape[0] else f"S = {b}"
        r = roots[i].assign_coords(eta=roots[i].eta * lam_max)  # all evaluated η, refinements included
        lam1 = r.mean_exponents.sel(exponent=1)
        yerr = [lam1 - r.ci_low.sel(exponent=1), r.ci_high.sel(exponent=1) - lam1]
        ax.errorbar(r.eta, lam1, yerr=yerr, marker="o", ms=3, capsize=2, color=f"C{i}", label=label)
        if np.isfinite(rows[i]):
            ax.axvspan(float(grid.boundary_low[i]) * lam_max, float(grid.boundary_high[i]) * lam_max,
                       color=f"C{i}", alpha=0.25, lw=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(2.0, color="r", ls="--", lw=1, label="sharpness bound η λ_max = 2")
    ax.set(xlabel="η · λ_max(H)", ylabel="top Lyapunov exponent λ₁ (per step, 95% interval)",
           title="linearised SGD at the trained minimum")
    ax.legend(fontsize=8)
    ax = axes[1]
    for name, (eta, dg) in demos.items():
        ax.semilogy(np.maximum(dg.tau.values, 1), np.maximum(dg.diameter_symmetric.values, 1e-16), "o-",
                    label=f"{name}: η λ_max = {eta * lam_max:.2f}")
    ax.set(xlabel="pullback time τ", ylabel="ensemble diameter modulo symmetry",
           title=f"one shared minibatch path, S = {b_demo}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "sgd_stability.png"), dpi=120)
    print(f"figure: {os.path.join(args.out, 'sgd_stability.png')}  ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
