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

Where direct runs are mostly censored (small σ²), the example switches to adaptive multilevel splitting
(:func:`analysis.multilevel_splitting`, Bréhier et al. 2016) for the part direct runs cannot see:
E[τ] = E[min(τ, c)] + S(c) · E[τ − c | τ > c], the first two terms from the direct runs up to the cap c, the mean
remaining time from splitting started at the states of the runs still inside at the cap, with the score the
sup-norm distance to the centre of the trapping region over its half-width, max(|w|, |v|)/2 (escape: score ≥ 1),
and horizon c (weighted reactive paths to the horizon + an exponential tail fitted on its second half,
:func:`analysis.splitting_mean_time`). The direct estimate alone extrapolates with an exponential tail fitted on
the second half of its own window (:func:`analysis.censored_mean`); where direct runs still see escapes there,
both must agree (the overlap). Splitting is also run
at the smallest σ² where direct runs still work (the overlap, where both must agree within errors) and below the
paper's grid. Both go on one figure with ±2 SE bars (``escape_time_methods_<protocol>.png``). The clones run on
independent noise: the law of each run's escape time is that of a member under common noise.

``--scale demo``: a check of a few minutes (5 σ², small ensembles). ``--scale small`` (default): 128 initial
conditions × 8 realisations per σ² and protocol, cap 10⁵ steps, 13 σ² from 0.002 to 0.5: roughly 10–25 minutes
with Numba on 2 busy cores (both protocols), plus the splitting rows. ``--scale paper``: 10⁵ × 10³ (and cap 10⁶),
resumable via the store files — a cluster job (``executor=``), not run here. Its run time is estimated from the
rows the small run computed (printed): a lower bound taking the runs censored at the small cap as escaping just
after it, and an upper bound running them to the paper's cap, both at this machine's measured throughput.

Usage::

    python examples/escape_time_scan.py [--scale demo|small|paper] [--out out/] [--protocol reduced full]
                                        [--split-above 0.5] [--no-splitting] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import rds  # noqa: E402
from analysis.escape_times import censored_mean, escape_time_scan, escape_times  # noqa: E402
from analysis.plots_escape import plot_escape_time_methods, plot_escape_time_scan, plot_survival  # noqa: E402
from analysis.rare_events import multilevel_splitting, splitting_mean_time  # noqa: E402

ETA = 0.1
SIGMA2 = np.geomspace(0.002, 0.5, 13)
SCALES = {
    "demo": {"members": 32, "realizations": 2, "max_steps": 20_000, "n_boot": 100, "keep_members": True,
             "sigma2": np.array([0.003, 0.01, 0.03, 0.07, 0.15]), "split_sigma2": np.array([]),
             "n_clones": 30, "n_kill": 6, "repeats": 3},
    "small": {"members": 128, "realizations": 8, "max_steps": 100_000, "n_boot": 1000, "keep_members": True},
    "paper": {"members": 100_000, "realizations": 1000, "max_steps": 1_000_000, "n_boot": 200,
              "keep_members": False, "n_clones": 1000, "n_kill": 100, "repeats": 32},
}
#: Splitting settings where a scale does not set them; the horizon is always the direct runs' cap.
SPLITTING = {"split_sigma2": np.array([0.0005, 0.001]), "n_clones": 100, "n_kill": 20, "repeats": 4}


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
    """Paper-scale run time extrapolated from rows computed in one call: member-steps / measured throughput.

    ``ds``: only the rows computed during ``wall_seconds`` (not rows resumed from a store). Returns ``(low, high,
    rate)``: seconds if the runs censored at the small cap escaped right after it (low) or ran on to the paper's
    cap (high), and the throughput in member-steps per second (which includes the bootstrap and any compiling:
    a conservative rate).
    """
    steps_done = float(ds.escape_time.sum())
    rate = steps_done / wall_seconds  # member-steps per second
    small, paper = SCALES[scale_from], SCALES["paper"]
    factor = (paper["members"] * paper["realizations"]) / (small["members"] * small["realizations"])
    factor *= SIGMA2.size / ds.sizes["sigma2"]  # the whole grid, from the rows measured
    cens_steps = float((ds.escape_time * ds.censored).sum())
    low = factor * steps_done
    high = factor * (steps_done + cens_steps * (paper["max_steps"] / small["max_steps"] - 1))
    return low / rate, high / rate, rate


def _score_sup_norm(X):
    """Score of the splitting runs: the sup-norm distance to the centre of [-2, 2]^2 over 2 (escape: >= 1)."""
    return np.maximum(np.abs(X[..., 0]), np.abs(X[..., 1])) / 2.0


def _score_full(X):
    """The same score for the 4-D map: escape when (w1, w2) leaves [-2, 2]^2."""
    return np.maximum(np.abs(X[..., 0]), np.abs(X[..., 1])) / 2.0


def direct_means(ds, tail_from):
    """The mean escape time of each direct row by :func:`analysis.censored_mean` with the splitting runs' tail
    window (``combined_mean`` of the scan when the per-run times were not kept)."""
    if "escape_time" not in ds:
        return ds
    means, ses = [], []
    for s2 in ds.sigma2.values:
        r = ds.sel(sigma2=s2)
        inside = ~r.started_outside.values
        T, c = r.escape_time.values[:, inside].ravel(), r.censored.values[:, inside].ravel()
        m = censored_mean(T, c, int(ds.attrs["max_steps"]), tail_from=tail_from)
        means.append(float(m["mean"]))
        ses.append(float(m["mean_se"]))
    out = ds.copy()
    out["combined_mean"] = ("sigma2", np.array(means))
    out["combined_mean_se"] = ("sigma2", np.array(ses))
    return out


def split_sigma2(ds, cfg, split_above=0.5):
    """σ² for splitting: below the paper's grid, where direct runs are mostly censored at the small-σ² end, and
    the two smallest σ² where direct runs still work (the overlap)."""
    s2, cens = ds.sigma2.values, ds.censored_fraction.values
    low_end = s2 <= s2[np.argmin(np.where(np.isfinite(ds.combined_mean.values), ds.combined_mean.values, np.inf))]
    heavy = s2[low_end & (cens > split_above)]
    ok = s2[low_end & (cens <= split_above)][:2]
    return np.unique(np.concatenate([cfg["split_sigma2"], heavy, ok]))


def run_splitting(make_system, sigma2, init_box, region, cfg, seed=0, backend="numba", say=print,
                  score=_score_sup_norm):
    """The mean escape time where direct runs are censored: direct runs up to the cap, then splitting from the
    states of the runs still inside at the cap.

    For each σ², E[τ] = E[min(τ, c)] + S(c) · E[τ − c | τ > c]: the first two from direct runs on independent
    noise (the same law per run as under common noise; all censored at the cap c, so the restricted mean is the
    sample mean of min(τ, c) and S(c) the fraction still inside), the
    mean remaining time from :func:`analysis.multilevel_splitting` started from the states those runs had at the
    cap (the conditional law at c), with horizon c, via :func:`analysis.splitting_mean_time` (weighted reactive
    paths to the horizon + an exponential tail fitted on its second half). Standard error: the direct part's
    sample variance of min(τ, c) + M·1{τ > c} (runs taken as independent) and the splitting part's jackknife.
    Returns a Dataset with dim ``sigma2``.
    """
    rows = []
    cap = cfg["max_steps"]
    for s2 in sigma2:
        t0 = time.perf_counter()
        system = make_system(float(s2))
        # independent noise per run: under common noise the runs of a realisation synchronise (a random
        # attractor), so their states at the cap would be a few points, not a sample of the conditional law
        d = escape_times(system.replace(common_noise=False), init_box, region, cap, seed=seed,
                         members=cfg["members"] * cfg["realizations"], n_boot=0, backend=backend)
        inside = ~d.started_outside.values
        T = d.escape_time.values[:, inside].ravel().astype(float)
        c = d.censored.values[:, inside].ravel()
        alive = d.exit_state.values[:, inside][d.censored.values[:, inside]]
        N, S = T.size, float(c.mean())
        row = xr.Dataset()
        if alive.shape[0] == 0:  # nothing censored: the sample mean
            M = M_se = q = 0.0
            work, iters = 0, 0
        else:
            def from_alive(rng, m, states=alive):
                return states[rng.integers(0, states.shape[0], m)]

            ams = multilevel_splitting(system, from_alive, score, target=1.0, n_clones=cfg["n_clones"],
                                       n_kill=cfg["n_kill"], horizon=cap, repeats=cfg["repeats"], seed=seed,
                                       backend=backend)
            m = splitting_mean_time(ams)
            M, M_se, q = float(m["mean"]), float(m["mean_se"]), float(ams.probability)
            work, iters = int(ams.work), int(ams.iterations)
        total = T.mean() + S * M
        se = np.sqrt(np.var(T + M * c, ddof=1) / N + (S * M_se) ** 2) if np.isfinite(M) else np.nan
        vals = {"mean": (total, "mean escape time: direct runs to the cap + S(cap) x splitting's mean remaining "
                                "time", "steps"),
                "mean_se": (se, "standard error of mean", "steps"),
                "km_part": (T.mean(), "restricted mean to the cap (direct runs)", "steps"),
                "survival_at_cap": (S, "fraction of direct runs still inside at the cap", "1"),
                "remaining_mean": (M, "mean remaining escape time after the cap, from splitting", "steps"),
                "remaining_mean_se": (M_se, "standard error of remaining_mean (jackknife over repeats)", "steps"),
                "probability": (q, "P(escape within one more cap | inside at the cap), splitting", "1"),
                "work": (work + int(T.sum()), "member-steps: direct runs + splitting", "steps"),
                "iterations": (iters, "splitting iterations in all repeats", None)}
        for k, (v, ln, unit) in vals.items():
            row[k] = v
            row[k].attrs.update(long_name=ln, **({"units": unit} if unit else {}))
        rows.append(row.expand_dims(sigma2=[float(s2)]))
        say(f"  splitting sigma2={s2:.4g}: S(cap) = {S:.3f}, P(escape in the next {cap} | inside) = {q:.3g}, "
            f"mean remaining {M:.4g} +- {M_se:.2g}; mean escape time {total:.4g} +- {se:.2g} steps "
            f"({work:.3g} splitting member-steps, {time.perf_counter() - t0:.0f} s)")
    out = xr.concat(rows, dim="sigma2")
    out["sigma2"].attrs.update(long_name="input variance sigma^2 (noise strength)", units="1")
    out.attrs.update({"analysis": "escape_time_splitting", "n_clones": cfg["n_clones"], "n_kill": cfg["n_kill"],
                      "repeats": cfg["repeats"], "horizon": cap, "seed": seed, "max_steps": cap,
                      "score": "sup-norm distance to the centre / 2 (escape: >= 1)", "tail_from": cap // 2})
    return out


def run(out_dir="out", scale="small", which=("reduced", "full"), seed=0, backend="numba", verbose=True,
        splitting=True, split_above=0.5):
    """Run the scans, save ``escape_scan_<protocol>.nc`` and the figures; return ``{protocol: Dataset}``
    (and ``{protocol + "_splitting": Dataset}`` for the splitting rows).

    The store files make the scans resumable: re-running continues after the last finished σ² (with the same
    settings; otherwise a ValueError asks for another ``--out``).
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {tuple(SCALES)}, got {scale!r}")
    cfg = {**SPLITTING, **SCALES[scale]}
    cfg["horizon"] = cfg["max_steps"]
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
        grid = cfg.get("sigma2", SIGMA2)
        say(f"[{name}] {cfg['members']} initial conditions x {cfg['realizations']} realisations, cap "
            f"{cfg['max_steps']} steps, {grid.size} sigma2 in [{grid[0]:g}, {grid[-1]:g}], store {store}")
        resumed = rds.io.load(store).sizes.get("sigma2", 0) if os.path.exists(store) else 0
        t0 = time.perf_counter()
        ds = escape_time_scan(make_system, grid, init_box, region, cfg["max_steps"], seed=seed, store=store,
                              progress=verbose, realizations=cfg["realizations"], members=cfg["members"],
                              n_boot=cfg["n_boot"], bootstrap="both", backend=backend,
                              keep_members=cfg["keep_members"], protocol=f"{name}: {desc}")
        walls[name] = time.perf_counter() - t0
        results[name] = ds
        _summary(name, ds, walls[name], say)
        if cfg["keep_members"] and scale == "small" and resumed < ds.sizes["sigma2"]:
            lo, hi, rate = estimate_paper_seconds(ds.isel(sigma2=slice(resumed, None)), walls[name])
            say(f"[{name}] throughput {rate:.3g} member-steps/s on the {ds.sizes['sigma2'] - resumed} rows computed "
                f"now -> paper scale (this protocol, 10^8 runs x {SIGMA2.size} sigma2, cap 10^6) between "
                f"{lo / 86400:.3g} days (censored runs escaping right after the small cap) and {hi / 86400:.3g} "
                f"days (running on to the paper's cap) on this machine ({os.cpu_count()} cores)")
        elif scale == "small":
            say(f"[{name}] all rows resumed from {store}: no throughput measured, no paper-scale estimate")
        if splitting:
            s2_split = split_sigma2(ds, cfg, split_above)
            say(f"[{name}] splitting at sigma2 = {np.round(s2_split, 5).tolist()} (direct > {split_above:.0%} "
                f"censored, the overlap, and below the grid): {cfg['n_clones']} clones, n_kill {cfg['n_kill']}, "
                f"{cfg['repeats']} repeats, horizon {cfg['horizon']}")
            split = run_splitting(make_system, s2_split, init_box, region, cfg, seed=seed, backend=backend, say=say,
                                  score=_score_sup_norm if name == "reduced" else _score_full)
            rds.io.save(split, os.path.join(out_dir, f"escape_splitting_{name}_{scale}.nc"))
            results[name + "_splitting"] = split
            ds_m = direct_means(ds, cfg["horizon"] // 2)
            fig = plot_escape_time_methods(ds_m, split, label=name,
                                           title=f"{name}: mean escape time, direct and splitting (Fig. 5 extended)")
            fig.savefig(os.path.join(out_dir, f"escape_time_methods_{name}.png"), dpi=120)
            both = np.intersect1d(ds.sigma2.values, split.sigma2.values)
            for s2 in both:
                d, sp = ds_m.sel(sigma2=s2), split.sel(sigma2=s2)
                z = (float(d.combined_mean) - float(sp["mean"])) / np.hypot(float(d.combined_mean_se),
                                                                            float(sp.mean_se))
                say(f"[{name}] overlap sigma2={s2:.4g}: direct {float(d.combined_mean):.4g} +- "
                    f"{float(d.combined_mean_se):.2g}, splitting {float(sp['mean']):.4g} +- {float(sp.mean_se):.2g}"
                    f" (difference {z:+.1f} SE)")
        fig = plot_survival(ds, title=f"{name}: Kaplan–Meier survival in the trapping region")
        fig.savefig(os.path.join(out_dir, f"escape_survival_{name}.png"), dpi=120)
    direct = {k: v for k, v in results.items() if not k.endswith("_splitting")}
    if direct:
        fig = plot_escape_time_scan(list(direct.values()), labels=list(direct),
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
    p.add_argument("--scale", choices=tuple(SCALES), default="small",
                   help="ensemble sizes: demo (a few minutes), small (default; tens of minutes on 2 cores), "
                        "paper (10^5 initial conditions x 10^3 realisations: a cluster job)")
    p.add_argument("--out", default="out/", help="folder for the netCDF stores and figures (default: out/); the "
                                                 "direct scans resume from the stores found there")
    p.add_argument("--protocol", nargs="+", choices=("reduced", "full"), default=["reduced", "full"],
                   help="which reading of the paper's protocol to run (default: both)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (also of the initial sampling); default 0")
    p.add_argument("--split-above", type=float, default=0.5,
                   help="run splitting at the small-sigma2 end where more than this fraction of direct runs is "
                        "censored (default 0.5)")
    p.add_argument("--no-splitting", action="store_true", help="direct runs only (the paper's method)")
    a = p.parse_args(argv)
    if not 0 <= a.split_above < 1:
        p.error(f"--split-above must be in [0, 1), got {a.split_above}")
    run(a.out, a.scale, which=tuple(a.protocol), seed=a.seed, splitting=not a.no_splitting,
        split_above=a.split_above)


if __name__ == "__main__":
    main()
