"""Escape time from the trapping region around M_wv against the noise strength σ² (Sato et al. 2022, §4.2, Fig. 5).

The paper reports the mean escape time τ* from [−2, 2]² around the doubly degenerate subspace M_wv (w, v > 0),
averaged over 10⁵ initial conditions and 10³ noise realisations, as a U-shaped function of σ² (log–log): large near
σ² = 0.004, smallest near σ² ≈ 0.07, large again near 0.15. It leaves the protocol open; we run two readings:

* ``reduced`` (the most literal reading): the SGD map restricted to M_wv (eqs. 31–32, variables (w, v)), η = 0.1,
  S = 1, (w, v)(0) uniform in (0, 2]², escape when (w, v) leaves [−2, 2]².
* ``full``: the 4-D FA map (eqs. 12–15), θ(0) uniform in [−1, 1]⁴ (as for Fig. 4), escape when (w1, w2) leaves
  [−2, 2]². The optima θ* (eq. 9) have one |w_i| = 4, so here learning succeeds only by leaving.

Members of one realisation share the inputs x_t (common noise, as in the paper); realisations are independent noise
paths over the same initial conditions. Runs still inside at the cap are right-censored: τ* is the censored
maximum-likelihood mean of an exponential tail (events / exposure), with the restricted mean (a model-free lower
bound) and the naive mean of uncensored runs (biased) for contrast; intervals: two-way bootstrap (initial
conditions and realisations resampled independently).

``--scale small`` (default): 128 initial conditions × 8 realisations per σ² and protocol, cap 10⁵ steps,
13 σ² from 0.002 to 0.5: roughly 10–25 minutes with Numba on 2 busy cores (both protocols).
``--scale paper``: 10⁵ × 10³ (and cap 10⁶), resumable via the store files; the estimated run time (printed first)
is years on 2 cores (measured small-scale throughput ~6–12·10⁶ member-steps/s → ~2–4 years with cap 10⁶, ~0.5 year
with cap 10⁵; dominated by the censored runs) — a cluster job (``executor=``), not run here. The statistics of one
σ² row then pool 10⁸ runs (a few GB of RAM for the bootstrap).

Usage::

    python examples/escape_time_scan.py [--scale small|paper] [--out out/] [--protocol reduced full]
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import rds  # noqa: E402
from analysis.escape_times import escape_time_scan  # noqa: E402
from analysis.plots_escape import plot_escape_time_scan, plot_survival  # noqa: E402

ETA = 0.1
SIGMA2 = np.geomspace(0.002, 0.5, 13)
SCALES = {
    "small": {"members": 128, "realizations": 8, "max_steps": 100_000, "n_boot": 1000, "keep_members": True},
    "paper": {"members": 100_000, "realizations": 1000, "max_steps": 1_000_000, "n_boot": 200,
              "keep_members": False},
}


def protocols():
    """The two protocols: name -> (make_system, initial box, region, description)."""
    red_box = rds.regions.Box([0.0, 0.0], [2.0, 2.0], ("w", "v"))
    full_box = rds.regions.Box([-1.0] * 4, [1.0] * 4, ("w1", "w2", "v1", "v2"))
    return {
        "reduced": (lambda s2: rds.models.fukumizu_amari_reduced(eta=ETA, sigma2=s2), red_box,
                    rds.regions.Box([-2.0, -2.0], [2.0, 2.0], ("w", "v")),
                    "map on M_wv (eqs. 31-32), eta=0.1, S=1, (w,v)(0) uniform in (0,2]^2, escape when (w,v) "
                    "leaves [-2,2]^2; common noise within a realization"),
        "full": (lambda s2: rds.models.fukumizu_amari(eta=ETA, sigma2=s2), full_box,
                 rds.regions.Box([-2.0, -2.0], [2.0, 2.0], ("w1", "w2")),
                 "4-D FA map (eqs. 12-15), eta=0.1, S=1, theta(0) uniform in (-1,1]^4, escape when (w1,w2) "
                 "leaves [-2,2]^2 (optima have |w|=4); common noise within a realization"),
    }


def estimate_paper_seconds(ds, wall_seconds, scale_from="small"):
    """Paper-scale run time extrapolated from a measured scan: member-steps actually simulated / throughput."""
    steps_done = float(ds.escape_time.sum())
    rate = steps_done / wall_seconds  # member-steps per second
    small, paper = SCALES[scale_from], SCALES["paper"]
    factor = (paper["members"] * paper["realizations"]) / (small["members"] * small["realizations"])
    # censored runs would run 10x longer under the 10x cap
    cens_steps = float((ds.escape_time * ds.censored).sum())
    paper_steps = factor * (steps_done + cens_steps * (paper["max_steps"] / small["max_steps"] - 1))
    return paper_steps / rate, rate


def run(out_dir="out", scale="small", which=("reduced", "full"), seed=0, backend="numba", verbose=True):
    """Run the scans, save ``escape_scan_<protocol>.nc`` and the figures; return ``{protocol: Dataset}``.

    The store files make the scans resumable: re-running continues after the last finished σ² (with the same
    settings; otherwise a ValueError asks for another ``--out``).
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {tuple(SCALES)}, got {scale!r}")
    cfg = SCALES[scale]
    os.makedirs(out_dir, exist_ok=True)
    protos = protocols()
    results, walls = {}, {}
    say = print if verbose else (lambda *a, **k: None)
    if scale == "paper":
        say("Paper scale: 10^5 initial conditions x 10^3 realisations x 13 sigma2, cap 10^6. Estimated time from "
            "the small-scale throughput: years on 2 cores (see the small run's printed estimate). Resumable.")
    for name in which:
        make_system, init_box, region, desc = protos[name]
        store = os.path.join(out_dir, f"escape_scan_{name}_{scale}.nc")
        say(f"[{name}] protocol: {desc}")
        say(f"[{name}] {cfg['members']} initial conditions x {cfg['realizations']} realisations, cap "
            f"{cfg['max_steps']} steps, {SIGMA2.size} sigma2 in [{SIGMA2[0]:g}, {SIGMA2[-1]:g}], store {store}")
        t0 = time.perf_counter()
        ds = escape_time_scan(make_system, SIGMA2, init_box, region, cfg["max_steps"], seed=seed, store=store,
                              progress=verbose, realizations=cfg["realizations"], members=cfg["members"],
                              n_boot=cfg["n_boot"], bootstrap="both", backend=backend,
                              keep_members=cfg["keep_members"], protocol=f"{name}: {desc}")
        walls[name] = time.perf_counter() - t0
        results[name] = ds
        _summary(name, ds, walls[name], say)
        if cfg["keep_members"] and scale == "small":
            secs, rate = estimate_paper_seconds(ds, walls[name])
            say(f"[{name}] throughput {rate:.3g} member-steps/s (this run; includes resumed rows if any) -> "
                f"paper scale ~{secs / 86400:.3g} days on this machine")
        fig = plot_survival(ds, title=f"{name}: Kaplan–Meier survival in the trapping region")
        fig.savefig(os.path.join(out_dir, f"escape_survival_{name}.png"), dpi=120)
    if results:
        fig = plot_escape_time_scan(list(results.values()), labels=list(results),
                                    title="Escape time vs σ² (Sato et al. 2022, Fig. 5); open markers: > 50 % censored")
        fig.savefig(os.path.join(out_dir, "escape_time_scan.png"), dpi=120)
    say("Paper: tau* large near sigma2=0.004, smallest near 0.07, large again near 0.15 (U shape).")
    return results


def _summary(name, ds, wall, say):
    say(f"[{name}] sigma2    tau*=1/rate [95% CI]             restricted_mean  KM median  naive(uncens)  censored")
    for s2 in ds.sigma2.values:
        r = ds.sel(sigma2=s2)
        lo, hi = r.exp_mean_ci.values
        say(f"[{name}] {s2:7.4f}  {float(r.exp_mean):9.3g} [{lo:9.3g}, {hi:9.3g}]  {float(r.restricted_mean):11.3g}"
            f"  {float(r['median']):9.3g}  {float(r.naive_mean_uncensored):11.3g}  {float(r.censored_fraction):7.2f}")
    tau = ds.exp_mean.values
    i = int(np.nanargmin(np.where(np.isfinite(tau), tau, np.nan))) if np.isfinite(tau).any() else None
    if i is not None:
        say(f"[{name}] minimum of tau* at sigma2 = {ds.sigma2.values[i]:.4g} (tau* = {tau[i]:.3g} steps); "
            f"wall time {wall:.0f} s (2 busy shared cores: noisy)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=tuple(SCALES), default="small")
    p.add_argument("--out", default="out/")
    p.add_argument("--protocol", nargs="+", choices=("reduced", "full"), default=["reduced", "full"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    run(a.out, a.scale, which=tuple(a.protocol), seed=a.seed)


if __name__ == "__main__":
    main()
