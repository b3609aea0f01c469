"""Noise-induced degeneration in online learning (Sato, Tsutsui, Fujiwara, Physica D 430 (2022) 133095).

The main example of rds. It runs, at a small default scale (minutes on a laptop), every figure of that paper the
library reproduces, and writes netCDF files and PNG figures to ``--out``:

  trajectories  FA SGD trajectories from several initial conditions under one noise path: w1 − w2 and v1 − v2 over
                time (the two neurons become degenerate: M_w, then M_wv)                        [this file]
  fig3          μ± of the Jacobian on M_wv against x, and the attracting probability π(w, v) with the valley C
                of the averaged potential (§3.2, App. A-B)                              [examples/fig3_stability.py]
  fig4          finite-time pullback attractors for σ² ∈ {0.1, 1} (App. C)         [examples/pullback_attractors.py]
  transverse    Lyapunov exponents transverse to M_wv against σ² (Theorem 1)     [examples/transverse_exponents.py]
  fig5          escape time from the trapping region around M_wv against σ² (§4.2), censoring handled
                                                                                   [examples/escape_time_scan.py]

Run:  python examples/noise_induced_degeneration.py [--scale small|paper] [--out out/] [--parts fig4 fig5 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import rds

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PARTS = ("trajectories", "fig3", "fig4", "transverse", "fig5")


def run_trajectories(out_dir, scale="small"):
    """FA SGD from a few initial conditions in [−1, 1]⁴ under one shared noise path (σ² = 1, η = 0.1).

    Saves ``fa_trajectories.nc`` (`state` over time × member × var) and ``fa_trajectories.png`` (|w1 − w2| and
    |v1 − v2| against t, log-log). Returns the Dataset.
    """
    members, steps = (8, 100_000) if scale == "small" else (64, 1_000_000)
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    theta0 = np.random.default_rng(2022).uniform(-1, 1, (members, 4))
    times = np.unique(np.concatenate([[0], np.geomspace(1, steps, 400).astype(np.int64)]))
    ds = fa.trajectory(theta0, steps, seed=0, times=times)
    ds.attrs["description"] = "FA SGD trajectories under one common noise path (Sato et al. 2022, eqs. 12-16)"
    rds.io.save(ds, os.path.join(out_dir, "fa_trajectories.nc"))

    s = ds.state
    dw = np.abs(s.sel(var="w1") - s.sel(var="w2"))
    dv = np.abs(s.sel(var="v1") - s.sel(var="v2"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    t = np.maximum(ds.time.values, 1)
    for m in range(members):
        axes[0].loglog(t, dw.isel(member=m) + 1e-16, lw=0.8)
        axes[1].loglog(t, dv.isel(member=m) + 1e-16, lw=0.8)
    axes[0].set(xlabel="t", ylabel="|w1 − w2|", title="distance to M_w")
    axes[1].set(xlabel="t", ylabel="|v1 − v2|", title="distance to M_wv (given M_w)")
    fig.suptitle(f"FA SGD, σ² = 1, η = 0.1, one noise path, {members} initial conditions")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "fa_trajectories.png"), dpi=120)
    plt.close(fig)

    final = s.isel(time=-1)
    near_w = (dw.isel(time=-1) < 0.05).values
    near_wv = near_w & (dv.isel(time=-1) < 0.05).values
    dist_opt = rds.symmetry.distance_modulo_symmetry(final.values, rds.models.OPTIMA[0])
    print(f"[trajectories] {members} runs of {steps} steps: at the end {near_w.sum()} near M_w, "
          f"{near_wv.sum()} near M_wv (|Δ| < 0.05), {(dist_opt < 0.1).sum()} within 0.1 of θ* (mod symmetry)")
    return ds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=("small", "paper"), default="small",
                    help="small (default, minutes) or paper (the paper's ensemble sizes: hours for trajectories, "
                         "fig3, fig4 and transverse; fig5 at paper size is a cluster job, and its part prints its "
                         "estimated time before starting)")
    ap.add_argument("--out", default="out", help="output folder (default: out/)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to run (default: all)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    runners = {"trajectories": lambda: run_trajectories(args.out, args.scale)}
    if "fig3" in args.parts:
        import fig3_stability
        runners["fig3"] = lambda: fig3_stability.run_fig3(args.out, 1.0 if args.scale == "small" else 2.0)
    if "fig4" in args.parts:
        import pullback_attractors
        runners["fig4"] = lambda: pullback_attractors.run(args.out, args.scale)
    if "transverse" in args.parts:
        import transverse_exponents
        runners["transverse"] = lambda: transverse_exponents.run(args.out, args.scale)
    if "fig5" in args.parts:
        import escape_time_scan
        runners["fig5"] = lambda: escape_time_scan.run(args.out, args.scale)

    total = time.perf_counter()
    for part in PARTS:
        if part not in args.parts:
            continue
        print(f"\n=== {part} ===", flush=True)
        t = time.perf_counter()
        runners[part]()
        print(f"[{part}] done in {time.perf_counter() - t:.1f} s", flush=True)
    print(f"\nall parts done in {time.perf_counter() - total:.1f} s; outputs in {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
