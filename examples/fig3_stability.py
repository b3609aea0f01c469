"""Fig. 3 of Sato et al. 2022: local Jacobian stability on M_wv, the attracting probability π and the valley C.

Saves ``fig3_mu.png`` (μ±(x; ½, ½) with ρ(x), σ² = 0.1 and 1), ``fig3_pi.png`` (π over [0, 2]² with the valley C
in red, σ² = 0.01, 0.1, 1), ``fig3_stability.nc`` (the Dataset) and, when the 4-D core is available,
``fig3_random_vs_averaged.nc`` (tangent/transverse Jacobian blocks per input and averaged). Prints π(½, ½) for
the three σ², where the attracting region lies, and whether the valley C holds a local minimum of the averaged
potential (the claim of §3.2).

Usage::

    python examples/fig3_stability.py --out out/ [--scale 1.0]

``run_fig3(out_dir, scale)`` is the entry point used by ``examples/noise_induced_degeneration.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from analysis.degenerate_stability import (
    attracting_probability,
    compare_random_averaged,
    degenerate_stability,
    valley_local_minima,
    valley_potential,
)
from analysis.plots_stability import plot_mu_eigenvalues, plot_pi_map
from rds.io import save

SIGMA2 = (0.01, 0.1, 1.0)


def _region_summary(ds, s2, level):
    pi = ds["pi"].sel(sigma2=s2).values
    w, v = ds["w"].values, ds["v"].values
    i, j = np.unravel_index(np.argmax(pi), pi.shape)
    mask = pi >= level
    line = (f"  sigma2 = {s2:<5g} max pi = {pi.max():.3f} at (w, v) = ({w[i]:.2f}, {v[j]:.2f}); "
            f"pi >= {level}: {100 * mask.mean():.1f} % of [0,2]^2")
    if mask.any():
        ww, vv = np.meshgrid(w, v, indexing="ij")
        line += (f", w in [{ww[mask].min():.2f}, {ww[mask].max():.2f}], v in [{vv[mask].min():.2f}, "
                 f"{vv[mask].max():.2f}]")
    vs = ds["valley"].sel(sigma2=s2).values
    on = np.isfinite(vs) & (vs > 0) & (vs <= 2)
    if on.any():
        pc = attracting_probability(w[on], vs[on], float(s2))
        line += (f"\n      along C (w in [{w[on].min():.2f}, {w[on].max():.2f}]): pi from {pc.min():.3f} to "
                 f"{pc.max():.3f}, median {np.median(pc):.3f}")
    return line


def summary(ds):
    """Text summary of a ``degenerate_stability`` Dataset: π(½, ½), the attracting region, the valley minimum."""
    lines = ["pi(1/2, 1/2) = Prob[mu_+ <= 0], x ~ N(0, sigma2)  (eq. 38, exact quadrature):"]
    for s2 in ds["sigma2"].values:
        p = float(ds["pi_at_points"].sel(sigma2=s2).values[0])
        am = ds["avg_mu"].sel(sigma2=s2).values[0]
        lines.append(f"  sigma2 = {s2:<5g} pi = {p:.10f}   eig E_x[J] = ({am[0]:+.4f}, {am[1]:+.4f})")
    lines.append("Attracting region of the pi map on [0, 2]^2:")
    for s2 in ds["sigma2"].values:
        lines.append(_region_summary(ds, s2, 0.5))
    lines.append("Valley C (erf averaged potential, App. A): local minima of L* along C for w in [1e-3, 100]:")
    for s2 in ds["sigma2"].values:
        ws, vs, lam = valley_local_minima(float(s2))
        if ws.size:
            lines.append(f"  sigma2 = {s2:<5g} local min at (w, v) = ({ws[0]:.4f}, {vs[0]:.4f}), L* = {lam[0]:.6f}"
                         f" (and its mirror (-w, -v)); outside [0,2]^2" if not (0 <= vs[0] <= 2 and ws[0] <= 2)
                         else f"  sigma2 = {s2:<5g} local min at ({ws[0]:.4f}, {vs[0]:.4f})")
        else:
            lam_lo, lam_hi = valley_potential(np.array([1e-3, 100.0]), float(s2))
            lines.append(f"  sigma2 = {s2:<5g} none: L* increases monotonically along C from {lam_lo:.6f} "
                         f"(w -> 0+, v* -> inf) to {lam_hi:.6f} (w = 100)")
    return "\n".join(lines)


def paper_comparison(ds):
    """What Sato et al. 2022 state about Fig. 3, next to what this run finds (one line per claim)."""
    lines = ["Compared with the paper (Sato, Tsutsui & Fujiwara 2022, Fig. 3 and §3.2):"]
    for s2 in ds["sigma2"].values:
        am = ds["avg_mu"].sel(sigma2=s2).values[0]
        kind = "attracting" if np.all(am < 0) else ("saddle" if np.any(am < 0) else "repelling")
        paper = {1.0: "attracting", 0.1: "saddle", 0.01: "saddle"}.get(float(s2))
        if paper is not None:
            lines.append(f"  (1/2, 1/2) at sigma2 = {s2:<5g} paper: {paper:<10}  here: {kind:<10} "
                         f"(eigenvalues of E_x[J]: {am[0]:+.4f}, {am[1]:+.4f})  "
                         f"{'agrees' if kind == paper else 'DIFFERS'}")
    for s2 in ds["sigma2"].values:
        frac = float((ds["pi"].sel(sigma2=s2) >= 0.5).mean())
        if float(s2) <= 0.1:
            lines.append(f"  attracting region (pi >= 0.5) at sigma2 = {s2:<5g} paper: gone  here: "
                         f"{100 * frac:.1f} % of [0,2]^2  {'agrees' if frac == 0 else 'DIFFERS'}")
        else:
            lines.append(f"  attracting region (pi >= 0.5) at sigma2 = {s2:<5g} paper: present  here: "
                         f"{100 * frac:.1f} % of [0,2]^2  {'agrees' if frac > 0 else 'DIFFERS'}")
    return "\n".join(lines)


def run_fig3(out_dir="out", scale=1.0):
    """Compute, save and summarise Fig. 3 (Sato et al. 2022). Returns the ``degenerate_stability`` Dataset.

    Parameters
    ----------
    out_dir : str or path
        Directory for figures and netCDF files (created if missing).
    scale : float
        Resolution factor: the π grid has ``round(121 * scale)`` points per axis over [0, 2]
        (scale 1: ~10 s on one core).

    Returns
    -------
    xarray.Dataset
        See :func:`analysis.degenerate_stability.degenerate_stability`.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    os.makedirs(out_dir, exist_ok=True)
    n = max(11, int(round(121 * scale)))
    grid = np.linspace(0.0, 2.0, n)
    t0 = time.perf_counter()
    ds = degenerate_stability(list(SIGMA2), grid, grid, x=np.linspace(-3.0, 3.0, 601), points=[(0.5, 0.5)])
    ds.attrs["example"] = "examples/fig3_stability.py"
    save(ds, os.path.join(out_dir, "fig3_stability.nc"))
    plot_mu_eigenvalues(ds, sigma2=[0.1, 1.0]).savefig(os.path.join(out_dir, "fig3_mu.png"), dpi=120)
    plot_pi_map(ds).savefig(os.path.join(out_dir, "fig3_pi.png"), dpi=120)
    print(summary(ds))
    print(paper_comparison(ds))
    try:
        import rds

        fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=1)
    except (ImportError, AttributeError) as exc:          # the 4-D core is optional for this figure
        print(f"(4-D comparison skipped: {exc})")
    else:
        pts_w, pts_v = [0.5, 1.0, 0.3], [0.5, 0.3, 1.5]
        lines = ["Random vs averaged picture, 4-D step Jacobian at points of M_wv (eta = 0.1, sigma2 = 1):"]
        cmp = compare_random_averaged(fa, pts_w, pts_v, 1.0, x=np.linspace(-3, 3, 121))
        save(cmp, os.path.join(out_dir, "fig3_random_vs_averaged.nc"))
        for k in range(len(pts_w)):
            c = cmp.isel(point=k)
            tr = c["transverse_rate"].values
            lines.append(
                f"  (w, v) = ({pts_w[k]}, {pts_v[k]}): pi = {float(c['pi']):.3f}; averaged tangent rates "
                f"{(c['avg_tangent_eig'].values - 1) / 0.1}, averaged transverse rates "
                f"{(c['avg_transverse_eig'].values - 1) / 0.1}; per-x transverse max rate in "
                f"[{tr[:, 1].min():+.3f}, {tr[:, 1].max():+.3f}]")
        print("\n".join(lines))
    print(f"saved fig3_mu.png, fig3_pi.png, fig3_stability.nc in {out_dir} ({time.perf_counter() - t0:.1f} s)")
    return ds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out", help="output directory (default: out/)")
    parser.add_argument("--scale", type=float, default=1.0, help="grid resolution factor (default 1)")
    args = parser.parse_args(argv)
    run_fig3(args.out, args.scale)


if __name__ == "__main__":
    main()
