"""Plots of finite-time pullback attractors Ã_τ(t, ω) (eq. C.2 of Sato et al. 2022) of any system.

One panel per set: rows are pullback times τ, columns are datasets (e.g. σ² = 0.1 and σ² = 1).

* Any system: the members projected on the first two variables (axes named after them), or, for a one-variable
  system, the variable against the member index (a set that has synchronised on one random point is a flat line).
* The Fukumizu–Amari network only (the result says it comes from that model, :func:`analysis.pullback.
  fukumizu_amari_theta`): the layout of Fig. 4 — the members' (w1, w2) as red dots and their (v1, v2) as blue dots
  in the same axes, the diagonal w1 = w2 / v1 = v2 (the degenerate subspaces M_w, M_wv seen in both projections) as
  a line, and the optimal set θ* (eq. 9) as grey points.

matplotlib is imported only when a figure is drawn, through its object-oriented API (no backend is chosen or
changed).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.pullback import fukumizu_amari_theta

__all__ = ["plot_pullback_attractors"]

_FA_LIM = 5.0


def plot_pullback_attractors(datasets, diagnostics=None, *, max_points=20000, lim=None, markersize=1.0,
                             taus=None, titles=None, seed=0, ax=None, axes=None):
    """Panels of finite-time pullback attractors, one per (τ, dataset); Fig. 4 layout for the FA model.

    Parameters
    ----------
    datasets : xarray.Dataset or sequence of Dataset
        Results of :func:`analysis.pullback_attractor` (dims (tau, member, var)), of any system; one column each.
    diagnostics : Dataset, sequence of Dataset or None
        Matching results of :func:`analysis.pullback_diagnostics`; written in each panel: the spread and diameter
        of the set, and for the FA model its fractions on M_w, M_wv and at θ*.
    max_points : int
        Plot at most this many members per panel (a fixed random subset, the same for every τ).
    lim : float or None
        Axis limits [−lim, lim] (the value axis for a one-variable system); members outside are clipped from view,
        not from the data. None: 5 for the FA model (Fig. 4), matplotlib's automatic limits otherwise.
    markersize : float
    taus : sequence of int or None
        The pullback times to show (default: all of the first dataset).
    titles : sequence of str or None
        Column titles (default: "σ² = …" when the noise has a variance, else the model's name).
    seed : int
        Seed of the subsampling.
    ax : matplotlib Axes or array of Axes, shape (tau, dataset), optional
        Axes to draw into (one Axes is enough for one τ and one dataset); a new figure is made when omitted.
    axes : optional
        Former name of ``ax``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the panels (that of ``ax`` when given).

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> box = rds.regions.Box([-1] * 4, [1] * 4, variables=fa.variables)
    >>> ds = analysis.pullback_attractor(fa, box, taus=[0, 100], members=100, backend="numpy")
    >>> fig = plot_pullback_attractors(ds)
    >>> len(fig.axes), fig.axes[1].get_xlabel()
    (2, 'w1 (red), v1 (blue)')
    >>> def logistic(s, xi, p):
    ...     return (3.7 * s[0] * (1 - s[0]) + xi[0],)
    >>> lg = rds.RandomDynamicalSystem(logistic, noise=rds.noise.Gaussian(1e-6), variables=("x",))
    >>> dl = analysis.pullback_attractor(lg, np.linspace(0.2, 0.8, 30)[:, None], taus=[0, 50], backend="numpy")
    >>> fig = plot_pullback_attractors(dl)
    >>> fig.axes[1].get_xlabel(), fig.axes[1].get_ylabel()
    ('member', 'x')
    """
    from matplotlib.figure import Figure

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
    if ax is not None and axes is not None:
        raise TypeError("give ax or its former name axes, not both")
    ax = axes if ax is None else ax
    if ax is None:
        fig = Figure(figsize=(3.4 * ncol, 3.2 * nrow), layout="constrained")
        grid = np.asarray(fig.subplots(nrow, ncol, squeeze=False))
    else:
        grid = np.asarray(ax, dtype=object)
        if grid.size != nrow * ncol:
            raise ValueError(f"ax must hold one Axes per (tau, dataset): {nrow} x {ncol}, got {grid.size}")
        grid = grid.reshape(nrow, ncol)
        fig = grid[0, 0].figure
    rng = np.random.default_rng(seed)
    for j, (ds, dg) in enumerate(zip(datasets, diagnostics)):
        st = ds["state"].transpose("tau", "member", "var")
        theta = fukumizu_amari_theta(ds)
        M = st.sizes["member"]
        pick = np.sort(rng.choice(M, size=min(M, int(max_points)), replace=False))
        head = titles[j] if titles is not None else _column_title(ds, j)
        for i, tau in enumerate(taus):
            a = grid[i, j]
            k = st.get_index("tau").get_loc(tau)
            if theta is not None:
                _fa_panel(a, theta[k][pick], markersize, _FA_LIM if lim is None else float(lim),
                          legend=i == 0 and j == 0)
                xlabel, ylabel = "w1 (red), v1 (blue)", "w2 (red), v2 (blue)"
            else:
                xlabel, ylabel = _generic_panel(a, st, k, pick, markersize, lim)
            a.set_title(f"{head}, τ = {tau:g}", fontsize=9)
            if dg is not None and tau in dg["tau"].values:
                text = _diagnostics_text(dg.sel(tau=tau), theta is not None)
                if text:
                    a.text(0.02, 0.02, text, transform=a.transAxes, fontsize=7, va="bottom", zorder=5,
                           bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
            if j == 0:
                a.set_ylabel(ylabel, fontsize=8)
            if i == nrow - 1:
                a.set_xlabel(xlabel, fontsize=8)
    return fig


def _column_title(ds, j):
    s2 = ds.attrs.get("sigma2", ds.attrs.get("noise_sigma2"))
    if s2 is not None:
        return f"σ² = {float(s2):g}"
    return str(ds.attrs.get("model", f"set {j}"))


def _fa_panel(ax, X, markersize, lim, legend):
    """Fig. 4: (w1, w2) red and (v1, v2) blue, the diagonal (M_w, M_wv) and θ* (eq. 9)."""
    from rds.models import OPTIMA

    ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.6, zorder=1)
    ax.plot(X[:, 0], X[:, 1], ".", color="tab:red", ms=markersize, alpha=0.5, zorder=2,
            label="(w1, w2)" if legend else None)
    ax.plot(X[:, 2], X[:, 3], ".", color="tab:blue", ms=markersize, alpha=0.5, zorder=2,
            label="(v1, v2)" if legend else None)
    ax.plot(OPTIMA[:, 0], OPTIMA[:, 1], "o", color="0.45", ms=4, zorder=3, label="θ*" if legend else None)
    ax.plot(OPTIMA[:, 2], OPTIMA[:, 3], "o", color="0.45", ms=4, zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if legend:
        leg = ax.legend(loc="upper left", fontsize=7)
        for h in leg.legend_handles[:2]:
            h.set_markersize(4)


def _generic_panel(ax, st, k, pick, markersize, lim):
    """Any system: the first two variables against each other, or the one variable against the member index."""
    names = [str(v) for v in st["var"].values]
    X = st.values[k][pick]
    if len(names) == 1:
        members = st["member"].values[pick] if "member" in st.coords else pick
        ax.plot(members, X[:, 0], ".", color="tab:blue", ms=max(markersize, 2.0), alpha=0.7)
        if lim is not None:
            ax.set_ylim(-float(lim), float(lim))
        return "member", names[0]
    ax.plot(X[:, 0], X[:, 1], ".", color="tab:blue", ms=markersize, alpha=0.5)
    if lim is not None:
        ax.set_xlim(-float(lim), float(lim))
        ax.set_ylim(-float(lim), float(lim))
    return names[0], names[1]


def _diagnostics_text(d, fa):
    """The panel's note: spread and diameter of the set; for FA the fractions on M_w, M_wv and at θ* (Fig. 4)."""
    if fa and "frac_Mwv" in d:
        thr, othr = d.attrs.get("threshold"), d.attrs.get("optimum_threshold")
        within = "" if thr is None else f" (within {thr:g})"
        near = "" if othr is None else f" within {othr:g}"
        return (f"M_w {float(d.frac_Mw):.0%}  M_wv {float(d.frac_Mwv):.0%}{within}"
                f" (w,v>0: {float(d.frac_Mwv_positive):.0%})\nθ*{near}: {float(d.frac_optimum):.0%}")
    parts = [f"{name} {float(d[name]):.3g}" for name in ("spread", "diameter") if name in d]
    return "  ".join(parts)
