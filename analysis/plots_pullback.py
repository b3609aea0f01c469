"""Plots of finite-time pullback attractors in the style of Sato et al. 2022, Fig. 4.

Each panel shows one set Ã_τ(t, ω) (eq. C.2) of the Fukumizu–Amari network: the members' (w1, w2) as red dots
and their (v1, v2) as blue dots in the same axes, the diagonal w1 = w2 / v1 = v2 (the degenerate subspaces M_w,
M_wv seen in both projections) as a line, and the optimal set θ* (eq. 9) as grey points. Rows are pullback times τ,
columns are datasets (e.g. σ² = 0.1 and σ² = 1).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["plot_pullback_attractors"]


def plot_pullback_attractors(datasets, diagnostics=None, max_points=20000, lim=5.0, markersize=1.0,
                             taus=None, titles=None, seed=0, axes=None):
    """Fig. 4-style panels: (w1, w2) red and (v1, v2) blue per τ, diagonal and θ* marked.

    Parameters
    ----------
    datasets : xarray.Dataset or sequence of Dataset
        Results of :func:`analysis.pullback_attractor` for the FA model (var w1, w2, v1, v2 or p, q, r, s); one
        column each.
    diagnostics : Dataset, sequence of Dataset or None
        Matching results of :func:`analysis.pullback_diagnostics`; their fractions on M_wv and at θ* are written
        in each panel.
    max_points : int
        Plot at most this many members per panel (a fixed random subset, the same for every τ).
    lim : float
        Axis limits [−lim, lim] (members outside are clipped from view, not from the data).
    markersize : float
    taus : sequence of int or None
        The pullback times to show (default: all of the first dataset).
    titles : sequence of str or None
        Column titles (default: "σ² = …").
    seed : int
        Seed of the subsampling.
    axes : 2-d array of matplotlib Axes (tau, dataset), optional
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import rds, analysis
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> box = rds.regions.Box([-1] * 4, [1] * 4, variables=fa.variables)
    >>> ds = analysis.pullback_attractor(fa, box, taus=[0, 100], members=100, backend="numpy")
    >>> fig = plot_pullback_attractors(ds)
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    from rds.models import OPTIMA

    if isinstance(datasets, xr.Dataset):
        datasets = [datasets]
    datasets = list(datasets)
    if not datasets or not all(isinstance(d, xr.Dataset) and "state" in d for d in datasets):
        raise TypeError("datasets must be a pullback_attractor Dataset or a non-empty sequence of them")
    if diagnostics is None or isinstance(diagnostics, xr.Dataset):
        diagnostics = [diagnostics] * len(datasets) if diagnostics is None else [diagnostics]
    diagnostics = list(diagnostics)
    if len(diagnostics) != len(datasets):
        raise ValueError("diagnostics must match datasets one to one")
    if taus is None:
        taus = datasets[0]["tau"].values
    taus = [int(x) for x in taus]
    ncol, nrow = len(datasets), len(taus)
    if axes is None:
        fig = Figure(figsize=(3.4 * ncol, 3.2 * nrow), layout="constrained")
        axes = np.asarray(fig.subplots(nrow, ncol, squeeze=False))
    else:
        axes = np.asarray(axes, dtype=object).reshape(nrow, ncol)
        fig = axes[0, 0].figure
    rng = np.random.default_rng(seed)
    for j, (ds, dg) in enumerate(zip(datasets, diagnostics)):
        st = ds["state"].transpose("tau", "member", "var")
        names = tuple(str(v) for v in st["var"].values)
        M = st.sizes["member"]
        pick = np.sort(rng.choice(M, size=min(M, int(max_points)), replace=False))
        for i, tau in enumerate(taus):
            ax = axes[i, j]
            X = st.sel(tau=tau).values[pick]
            if names == ("p", "q", "r", "s"):
                from rds.coords import from_pqrs
                X = from_pqrs(X)
            elif names != ("w1", "w2", "v1", "v2"):
                raise ValueError(f"datasets must hold the FA variables (w1, w2, v1, v2), got {names}")
            ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.6, zorder=1)
            ax.plot(X[:, 0], X[:, 1], ".", color="tab:red", ms=markersize, alpha=0.5, zorder=2,
                    label="(w1, w2)" if i == 0 else None)
            ax.plot(X[:, 2], X[:, 3], ".", color="tab:blue", ms=markersize, alpha=0.5, zorder=2,
                    label="(v1, v2)" if i == 0 else None)
            ax.plot(OPTIMA[:, 0], OPTIMA[:, 1], "o", color="0.45", ms=4, zorder=3,
                    label="θ*" if i == 0 else None)
            ax.plot(OPTIMA[:, 2], OPTIMA[:, 3], "o", color="0.45", ms=4, zorder=3)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            s2 = ds.attrs.get("sigma2", ds.attrs.get("noise_sigma2"))
            head = titles[j] if titles is not None else (f"σ² = {s2:g}" if s2 is not None else f"set {j}")
            ax.set_title(f"{head}, τ = {tau:g}", fontsize=9)
            if dg is not None and "frac_Mwv" in dg and tau in dg["tau"].values:
                d = dg.sel(tau=tau)
                ax.text(0.02, 0.02, f"M_w {float(d.frac_Mw):.0%}  M_wv {float(d.frac_Mwv):.0%}"
                        f" (w,v>0: {float(d.frac_Mwv_positive):.0%})\nθ* {float(d.frac_optimum):.0%}",
                        transform=ax.transAxes, fontsize=7, va="bottom", zorder=5,
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
            if j == 0:
                ax.set_ylabel("w2 (red), v2 (blue)", fontsize=8)
            if i == nrow - 1:
                ax.set_xlabel("w1 (red), v1 (blue)", fontsize=8)
            if i == 0 and j == 0:
                leg = ax.legend(loc="upper left", fontsize=7)
                for h in leg.legend_handles[:2]:
                    h.set_markersize(4)
    return fig
