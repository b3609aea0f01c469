"""The saddle–saddle–attractor scenario of GD on a fixed noisy dataset (Maleknia & Sato 2026, Fig. 4).

Reference: Maleknia & Sato, "Plateaus, optima and overfitting in multi-layer perceptrons: a saddle–saddle–attractor
scenario" (2026).

Full-batch GD θ ← θ − η ∇E_tr on a dataset drawn once (x_k ~ N(0, 1), y_k = 2 tanh(x_k) + ε_k) is a quenched random
map. From the authors' start w = (−0.13, 0.13), v = (0.16, −0.15), η = 0.01, the script records the learning curves
(E_tr, E_gen, log–log) for the noisy labels and for the noise-free labels 2 tanh(x_k) on the same inputs, the Hessian
spectrum of E_tr along the way (unstable directions), the phases (plateau, near-optimal, overfitting), the trajectory
in (w1, w2) and (v1, v2) coloured by log10 t with O and the overfitting point, and the end points from many random
starts modulo symmetry (Theorem 3.1).

    python examples/overfitting_scenario.py                      # generated dataset (σ_ε = 0.2, seed 0)
    python examples/overfitting_scenario.py --data PATH/TO/overfitting_dataset.dat --out out/   # the authors' data

Outputs in --out: overfitting_curves_noisy.nc, overfitting_curves_clean.nc, overfitting_convergence.nc,
overfitting_learning_curves.png, overfitting_trajectory_noisy.png, overfitting_trajectory_clean.png.
Timing: each 3·10⁶-step run costs 2·n·N tanh evaluations per step (6·10⁸ in all); about 30–90 s with Numba on
one core of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import analysis.overfitting as ov  # noqa: E402
import rds  # noqa: E402
from analysis.plots_overfitting import plot_learning_curves, plot_trajectory  # noqa: E402

START = np.array([-0.13, 0.13, 0.16, -0.15])
ETA = 0.01
SCALES = {"small": {"steps": 3_000_000, "starts": 8, "start_steps": 100_000},
          "paper": {"steps": 3_000_000, "starts": 32, "start_steps": 300_000}}


def _ranges_text(s):
    return ", ".join(part.replace(":", ": t = ") for part in s.split(";"))


def run(out_dir="out", scale="small", data=None, steps=None, noise_std=0.2, seed=0, num=200):
    """Run the scenario; returns a dict of the Datasets. ``data``: path of a two-column file, or None to generate."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    cfg = dict(SCALES[scale])
    if steps is not None:
        cfg["steps"] = int(steps)
    os.makedirs(out_dir, exist_ok=True)
    if data is not None:
        x, y = ov.load_dataset(data)
        source = f"file {data}"
    else:
        x, y = ov.make_dataset(100, noise_std=noise_std, seed=seed)
        source = f"generated: n = 100, sigma_eps = {noise_std}, seed = {seed}"
    y0 = ov.teacher(x)
    print(f"dataset: {source}; n = {x.size}; residual std of y - 2 tanh(x) = {np.std(y - y0):.4f}")

    gd = rds.models.teacher_student(x, y, hidden=2, eta=ETA)
    gd0 = rds.models.teacher_student(x, y0, hidden=2, eta=ETA)
    t = time.perf_counter()
    noisy = ov.learning_curves(gd, START, cfg["steps"], num=num)
    t_noisy = time.perf_counter() - t
    clean = ov.learning_curves(gd0, START, cfg["steps"], num=num)
    t_all = time.perf_counter() - t
    for ds in (noisy, clean):
        ds.attrs["dataset"] = source
    rds.io.save(noisy, os.path.join(out_dir, "overfitting_curves_noisy.nc"))
    rds.io.save(clean, os.path.join(out_dir, "overfitting_curves_clean.nc"))

    starts = np.random.default_rng(seed + 1).uniform(-1.0, 1.0, (cfg["starts"], 4))
    conv = ov.convergence_modulo_symmetry(gd, starts, cfg["start_steps"])
    conv.attrs["dataset"] = source
    rds.io.save(conv, os.path.join(out_dir, "overfitting_convergence.nc"))

    fig = plot_learning_curves([noisy, clean], ["noisy labels", "noise-free labels"])
    fig.axes[0].set_title(f"GD, eta = {ETA}, start w = (-0.13, 0.13), v = (0.16, -0.15)")
    fig.savefig(os.path.join(out_dir, "overfitting_learning_curves.png"), dpi=130)
    plt.close(fig)
    for ds, name in ((noisy, "noisy"), (clean, "clean")):
        fig = plot_trajectory(ds)
        fig.suptitle(f"{name} labels: trajectory coloured by log10 t; grey: O; red stars: end point (Newton-polished)")
        fig.savefig(os.path.join(out_dir, f"overfitting_trajectory_{name}.png"), dpi=130)
        plt.close(fig)

    kinds = [ov.END_KINDS[k] if k >= 0 else "diverged" for k in conv.kind.values]
    E_noise = float(np.mean((y - y0) ** 2))
    print(f"\nGD runs: {cfg['steps']} steps, noisy {t_noisy:.0f} s, both {t_all:.0f} s (shared machine, noisy timing)")
    print("noisy labels:")
    print(f"  end point (canonical, after Newton polish): {np.round(noisy.overfit_canonical.values, 6).tolist()}"
          f"  |grad E_tr| at GD end = {float(noisy.grad_norm[-1]):.2e}")
    print(f"  unstable directions of GD (negative Hessian eigenvalues) at recorded steps: "
          f"{_ranges_text(noisy.attrs['unstable_ranges'])}")
    print(f"  phases: {_ranges_text(noisy.attrs['phase_ranges'])}")
    print(f"  min E_gen = {float(noisy.E_gen_min):.4e} at t = {int(noisy.t_min_gen)};"
          f" final E_gen = {float(noisy.E_gen_final):.4e}; final E_tr = {float(noisy.E_tr_final):.4e}"
          f" < (1/n) sum eps^2 = {E_noise:.4e} (E_tr on O)")
    print("noise-free labels:")
    end_clean = np.round(rds.symmetry.canonical(clean.state.values[-1]), 6).tolist()
    print(f"  GD end point (canonical): {end_clean}, final E_gen ="
          f" {float(clean.E_gen_final):.3e}, final E_tr = {float(clean.E_tr_final):.3e},"
          f" parameter distance to O = {float(clean.distance_O[-1]):.3e}")
    print(f"  unstable directions: {_ranges_text(clean.attrs['unstable_ranges'])}")
    print(f"  phases: {_ranges_text(clean.attrs['phase_ranges'])}")
    print(f"convergence modulo symmetry ({cfg['starts']} uniform starts in [-1, 1]^4, {cfg['start_steps']} GD steps,"
          f" then Newton): {conv.attrs['n_strict_min']} strict minima, {conv.attrs['n_degenerate_min']} degenerate"
          f" minima; spread of the strict minima's canonical forms = {float(conv.spread_minima):.2e}; max L2"
          f" distance between the functions of all minima = {float(conv.function_spread):.2e}; end points:")
    for c, e, k in zip(np.round(conv.canonical.values, 5), conv.E_tr.values, kinds):
        print(f"    {c.tolist()}  E_tr = {e:.10f}  {k}")
    print("\nPaper (000, Sec. 4 and Fig. 4): plateau near a singular region, then a slow near-optimal stretch, then"
          " escape to a unique (mod symmetry) overfitting point; with noise E_tr stays flat near O, without noise it"
          " keeps decreasing; two unstable directions along the plateau, typically one near O.")
    return {"noisy": noisy, "clean": clean, "convergence": conv}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="The authors' dataset is a text file of 100 rows 'x y'; pass it with --data.")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="two-column text file 'x y' (e.g. the authors' dataset); default: generate one")
    p.add_argument("--steps", type=float, default=None, help="GD steps for the learning curves (default 3e6)")
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="small: 8 random starts for Theorem 3.1; paper: 32 starts, longer GD before polishing")
    p.add_argument("--noise-std", type=float, default=0.2, help="sigma_eps of a generated dataset (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated dataset and of the random starts")
    p.add_argument("--out", default="out", help="output directory (default out/)")
    a = p.parse_args(argv)
    run(a.out, a.scale, data=a.data, steps=None if a.steps is None else int(a.steps), noise_std=a.noise_std,
        seed=a.seed)


if __name__ == "__main__":
    main()
