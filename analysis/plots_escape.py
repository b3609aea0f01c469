"""Plots for escape times (Sato et al. 2022, Fig. 5): τ*(σ²) log–log with intervals and censoring, survival curves."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_escape_time_scan", "plot_escape_time_methods", "plot_survival"]


def plot_escape_time_scan(scans, labels=None, title=None, axes=None):
    """τ* against σ² (log–log) with bootstrap intervals, and the censored fraction below (Sato et al. 2022, Fig. 5).

    Parameters
    ----------
    scans : xarray.Dataset or sequence of Dataset
        Results of :func:`analysis.escape_time_scan` (dim ``sigma2``).
    labels : sequence of str or None
        One label per scan.
    title : str or None
    axes : (Axes, Axes) or None
        The two axes (τ*, censored fraction) to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        Top: ``exp_mean`` (τ*, censored ML of an exponential tail; filled markers, bars = bootstrap interval, an
        arrow where the upper bound is infinite), ``restricted_mean`` (area under S up to the cap: a lower bound;
        dashed) and the naive mean of uncensored times (dotted, biased). Open markers: more than half of the runs
        censored. Bottom: censored fraction.

    Examples
    --------
    >>> import rds, analysis
    >>> from rds.regions import Box
    >>> ds = analysis.escape_time_scan(lambda s2: rds.models.fukumizu_amari_reduced(sigma2=s2), [0.05, 0.1],
    ...     Box([0, 0], [2, 2], ("w", "v")), Box([-2, -2], [2, 2], ("w", "v")), 50, members=5, n_boot=10,
    ...     backend="numpy", progress=False)
    >>> fig = plot_escape_time_scan(ds)
    """
    from analysis._figures import new_figure

    if not isinstance(scans, (list, tuple)):
        scans = [scans]
    labels = list(labels) if labels is not None else [s.attrs.get("model", f"scan {i}") for i, s in enumerate(scans)]
    if len(labels) != len(scans):
        raise ValueError("labels must have one entry per scan")
    if axes is None:
        fig = new_figure((6.5, 6.5), layout=None)
        ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        ax, axc = axes
        fig = ax.figure
    for k, (ds, lab) in enumerate(zip(scans, labels)):
        color = f"C{k}"
        s2 = ds.sigma2.values
        tau = ds.exp_mean.values
        lo, hi = ds.exp_mean_ci.sel(ci="low").values, ds.exp_mean_ci.sel(ci="high").values
        cens = ds.censored_fraction.values
        cap = ds.attrs.get("max_steps")
        fin = np.isfinite(tau)
        top = np.where(np.isfinite(hi), hi, np.nan)
        with np.errstate(invalid="ignore"):
            yerr = np.array([tau - lo, top - tau])
        ax.errorbar(s2[fin], tau[fin], yerr=np.nan_to_num(yerr[:, fin]), color=color, ls="-", capsize=3,
                    label=f"{lab}: τ* = 1/λ̂ (censored ML)")
        heavy = fin & (cens > 0.5)
        ax.plot(s2[heavy], tau[heavy], "o", mfc="white", mec=color, zorder=5)
        ax.plot(s2[fin & ~heavy], tau[fin & ~heavy], "o", color=color, zorder=5)
        up = fin & ~np.isfinite(hi)
        for x, y in zip(s2[up], tau[up]):
            ax.annotate("", xy=(x, y * 4), xytext=(x, y), arrowprops={"arrowstyle": "->", "color": color})
        if cap is not None:
            for x in s2[~fin]:  # nothing escaped: tau* > cap only
                ax.annotate("", xy=(x, 4 * cap), xytext=(x, cap), arrowprops={"arrowstyle": "->", "color": color})
        ax.plot(s2, ds.restricted_mean.values, "--", color=color, alpha=0.8, label=f"{lab}: restricted mean (≤ τ)")
        ax.plot(s2, ds.naive_mean_uncensored.values, ":", color=color, alpha=0.6,
                label=f"{lab}: naive mean of uncensored (biased)")
        axc.plot(s2, cens, "o-", color=color, label=lab)
        if cap is not None and k == 0:
            ax.axhline(cap, color="grey", lw=0.8, ls="-.", label=f"cap max_steps = {cap:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("escape time (steps)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title or "Escape time from the trapping region vs noise strength (open: > 50 % censored)",
                 fontsize=9)
    axc.set_xlabel("σ²")
    axc.set_ylabel("censored\nfraction")
    axc.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    return fig


def plot_survival(ds, sigma2=None, title=None, ax=None):
    """Kaplan–Meier survival curves S(t) with Greenwood bands, one per σ² (log time axis).

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`analysis.escape_times` (one curve) or :func:`analysis.escape_time_scan`.
    sigma2 : sequence of float or None
        Subset of σ² values to draw (nearest available); default all.
    title : str or None
    ax : matplotlib Axes or None
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> from rds.regions import Box
    >>> red = rds.models.fukumizu_amari_reduced(sigma2=0.07)
    >>> ds = analysis.escape_times(red, np.full((5, 2), 1.0), Box([-2, -2], [2, 2], ("w", "v")), 50, n_boot=0,
    ...                            backend="numpy")
    >>> fig = plot_survival(ds)
    """
    import matplotlib

    from analysis._figures import figure_and_axes

    fig, ax = figure_and_axes(ax, (6.5, 4.5), layout=None)
    if "sigma2" in ds.dims:
        sel = ds.sigma2.values if sigma2 is None else ds.sigma2.sel(sigma2=list(sigma2), method="nearest").values
        rows = [(float(s), ds.sel(sigma2=s)) for s in sel]
    else:
        rows = [(ds.attrs.get("noise_sigma2", np.nan), ds)]
    cmap = matplotlib.colormaps["viridis"]
    for i, (s2, row) in enumerate(rows):
        c = cmap(i / max(1, len(rows) - 1))
        t = row.t.values[1:]
        ax.step(t, row.survival.values[1:], where="post", color=c, label=f"σ² = {s2:.3g}")
        ax.fill_between(t, row.survival_ci.sel(ci="low").values[1:], row.survival_ci.sel(ci="high").values[1:],
                        step="post", color=c, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("t (steps since start)")
    ax.set_ylabel("S(t) = P(still inside)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or "Kaplan–Meier survival in the trapping region (bands: Greenwood)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_escape_time_methods(direct, splitting, label="", title=None, ax=None):
    """Mean escape time against σ² from direct runs and from splitting, on one log–log plot with error bars.

    Parameters
    ----------
    direct : xarray.Dataset or None
        An :func:`analysis.escape_time_scan` result (dim ``sigma2``) with ``combined_mean`` and
        ``combined_mean_se`` (Kaplan–Meier to the cap + exponential tail, :func:`analysis.censored_mean`).
    splitting : xarray.Dataset or None
        Dim ``sigma2`` with ``mean`` and ``mean_se`` (e.g. :func:`analysis.splitting_mean_time` rows
        concatenated along ``sigma2``).
    label : str
        Prefix of the legend entries.
    title : str or None
    ax : matplotlib Axes or None
        Axes to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        Circles: direct runs (open where more than half were censored: the value rests on the fitted tail);
        squares: splitting. Bars: ±2 standard errors (clipped at the axis where they reach below 0).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> d = xr.Dataset({"combined_mean": ("sigma2", [1e4, 3e3]), "combined_mean_se": ("sigma2", [2e3, 1e2]),
    ...                 "censored_fraction": ("sigma2", [0.6, 0.1])}, coords={"sigma2": [0.01, 0.05]})
    >>> s = xr.Dataset({"mean": ("sigma2", [5e5, 1.1e4]), "mean_se": ("sigma2", [1e5, 1e3])},
    ...                coords={"sigma2": [0.002, 0.01]})
    >>> fig = plot_escape_time_methods(d, s)
    >>> fig = plot_escape_time_methods(d * np.inf, None)   # nothing finite: a note, no log scale
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5)) if ax is None else (ax.figure, ax)
    pre = f"{label}: " if label else ""
    if direct is not None:
        s2, m, se = direct.sigma2.values, direct.combined_mean.values, direct.combined_mean_se.values
        fin = np.isfinite(m)
        lo = np.minimum(2 * np.nan_to_num(se), 0.999 * m)
        ax.errorbar(s2[fin], m[fin], yerr=np.array([lo, 2 * np.nan_to_num(se)])[:, fin], fmt="none", ecolor="C0",
                    capsize=3)
        heavy = fin & (direct.censored_fraction.values > 0.5)
        ax.plot(s2[fin & ~heavy], m[fin & ~heavy], "o-", color="C0", label=f"{pre}direct (KM + exponential tail)")
        ax.plot(s2[heavy], m[heavy], "o", mfc="white", mec="C0", label=f"{pre}direct, > 50 % censored")
    if splitting is not None:
        s2, m, se = splitting.sigma2.values, splitting["mean"].values, splitting["mean_se"].values
        fin = np.isfinite(m)
        lo = np.minimum(2 * np.nan_to_num(se), 0.999 * m)
        ax.errorbar(s2[fin], m[fin], yerr=np.array([lo, 2 * np.nan_to_num(se)])[:, fin], fmt="s--", color="C3",
                    capsize=3, label=f"{pre}splitting (AMS)")
    drawn = [v for v in ((direct.combined_mean.values if direct is not None else np.array([])),
                         (splitting["mean"].values if splitting is not None else np.array([])))]
    vals = np.concatenate([np.ravel(v) for v in drawn]) if drawn else np.array([])
    if np.any(np.isfinite(vals) & (vals > 0)):
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:  # nothing finite to draw (no escape seen): say so instead of an empty log scale
        ax.text(0.5, 0.5, "no finite estimate (no escape seen in the tail windows)", ha="center",
                transform=ax.transAxes, fontsize=8)
    ax.set_xlabel("σ²")
    ax.set_ylabel("mean escape time (steps)")
    ax.legend(fontsize=7)
    ax.set_title(title or "Mean escape time: direct runs and adaptive multilevel splitting (bars: ±2 SE)",
                 fontsize=9)
    fig.tight_layout()
    return fig
