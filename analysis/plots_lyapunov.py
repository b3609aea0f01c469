"""Figures for Lyapunov spectra and transverse exponents (each function takes ``ax=`` and returns a bare
:class:`matplotlib.figure.Figure`: no pyplot state)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_exponent_history", "plot_exponent_vs_sigma2", "plot_transverse_exponents", "plot_lyapunov_scan"]


def _fig(ax=None, size=(5.5, 4.0)):
    from analysis._figures import figure_and_axes

    return figure_and_axes(ax, size)


def plot_exponent_history(ds, ax=None, reference=None):
    """Finite-time exponents of :func:`analysis.lyapunov_spectrum` against elapsed time (log x axis).

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`analysis.lyapunov_spectrum` (``history`` (realization, member, time, exponent)).
    ax : matplotlib Axes or None
    reference : sequence of float or None
        Reference values drawn as dashed lines (e.g. log|eig A| or −σ²/4).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> def step(state, xi, params):
    ...     x, y = state
    ...     return (2.0 * x + 0.0 * y, 0.5 * y + 0.0 * x)
    >>> lin = rds.RandomDynamicalSystem(step, noise=None, variables=("x", "y"))
    >>> ds = analysis.lyapunov_spectrum(lin, np.zeros(2), 50, num_history=5, backend="numpy")
    >>> fig = plot_exponent_history(ds, reference=[np.log(2.0), np.log(0.5)])
    >>> fig.axes[0].get_xscale()
    'log'
    """
    fig, ax = _fig(ax)
    t = ds["elapsed"].values
    for c in ds["exponent"].values:
        h = ds["history"].sel(exponent=c).values.reshape(-1, t.size)
        ax.plot(t, h.T, color=f"C{(c - 1) % 10}", alpha=0.25, lw=0.7)
        ax.plot(t, np.nanmean(h, axis=0), color=f"C{(c - 1) % 10}", lw=2, label=f"λ{c}")
    for r in ([] if reference is None else np.atleast_1d(reference)):
        ax.axhline(r, color="k", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("elapsed time")
    ax.set_ylabel("finite-time exponent")
    ax.set_title(ds.attrs.get("model", ""))
    ax.legend(fontsize=8)
    return fig


def plot_exponent_vs_sigma2(sigma2, mean, stderr, ax=None, reference=None, reference_label="reference",
                            label="λ (QR method)"):
    """Exponent ± 2 standard errors against σ² (log x), with an optional reference curve.

    Parameters
    ----------
    sigma2, mean, stderr : array_like (sigma2,)
        Noise variances σ² > 0 (log axis), exponent estimates and their standard errors (error bars are ± 2 stderr).
    ax : matplotlib Axes or None
    reference : array_like (sigma2,) or None
        Reference curve drawn dashed (e.g. the closed form −σ²/2 of a linear SDE).
    reference_label, label : str
        Legend entries of the reference curve and of the estimates.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> s2 = np.array([0.1, 0.3, 1.0])
    >>> fig = plot_exponent_vs_sigma2(s2, -s2 / 2 + 0.01, [0.01, 0.01, 0.02], reference=-s2 / 2,
    ...                               reference_label="−σ²/2")
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['−σ²/2', 'λ (QR method)']
    """
    fig, ax = _fig(ax)
    sigma2 = np.asarray(sigma2)
    ax.errorbar(sigma2, mean, yerr=2 * np.asarray(stderr), fmt="o", ms=4, capsize=2, label=label)
    if reference is not None:
        ax.plot(sigma2, reference, "k--", lw=1, label=reference_label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("σ²")
    ax.set_ylabel("Lyapunov exponent (per unit time)")
    ax.legend(fontsize=8)
    return fig


def plot_transverse_exponents(ds, ax=None, symlog=True):
    """Transverse (and tangential) exponents of :func:`analysis.transverse_exponents` against σ².

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`analysis.transverse_exponents`.
    ax : matplotlib Axes or None
    symlog : bool
        Symmetric-log y axis (the exponents span several decades around 0).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> make = lambda s2: rds.models.fukumizu_amari(eta=0.1, sigma2=s2)
    >>> ds = analysis.transverse_exponents(make, [0.1, 1.0], np.array([[0.5, 0.5]]), 200, transient=50,
    ...                                    num_history=5, backend="numpy")
    >>> fig = plot_transverse_exponents(ds)
    >>> fig.axes[0].get_yscale()
    'symlog'
    """
    fig, ax = _fig(ax, size=(6.0, 4.2))
    s2 = ds["sigma2"].values
    for c in ds["exponent"].values:
        ax.errorbar(s2, ds["mean_exponents"].sel(exponent=c), yerr=2 * ds["stderr"].sel(exponent=c), fmt="o-",
                    ms=4, capsize=2, label=f"transverse λ{c}")
    if "tangential_mean" in ds:
        for c in ds["tangential_exponent"].values:
            ax.plot(s2, ds["tangential_mean"].sel(tangential_exponent=c), "x:", color="0.4" if c == 1 else "0.7",
                    label=f"tangential λ{c} (within {ds.attrs.get('subspace', '')})")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    if symlog:
        ax.set_yscale("symlog", linthresh=1e-5)
    ax.set_xlabel("σ²")
    ax.set_ylabel("exponent per step")
    ax.set_title(f"{ds.attrs.get('subspace', '')}: η = {ds.attrs.get('param_eta', '?')}")
    ax.legend(fontsize=7)
    return fig


def plot_lyapunov_scan(ds, ax=None, exponents=None, logx=False, label=None):
    """Exponents of :func:`analysis.lyapunov_scan` (or :func:`analysis.exponent_root`) with error bars.

    Error bars are the confidence intervals ``ci_low`` … ``ci_high`` of the scan (batch means; level in
    ``attrs["confidence"]``). For an :func:`analysis.exponent_root` result the crossing is drawn as a vertical
    line with its confidence interval shaded.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`analysis.lyapunov_scan` or :func:`analysis.exponent_root`.
    ax : matplotlib Axes or None
    exponents : sequence of int or None
        Which exponents to draw (default: all).
    logx : bool
        Logarithmic parameter axis.
    label : str or None
        Legend prefix (default: ``λ``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt, numpy as np, rds, analysis
    >>> def scaled(s, xi, p):
    ...     return (np.mod(p[0] * np.exp(0.5 * xi[0]) * s[0], 1.0),)
    >>> def make(a):
    ...     return rds.RandomDynamicalSystem(scaled, noise=rds.noise.Gaussian(1.0), variables=("x",), params=(a,))
    >>> ds = analysis.lyapunov_scan(make, [0.5, 1.0, 2.0], np.full(1, 0.3), 500, parameter="a", backend="numpy")
    >>> fig = plot_lyapunov_scan(ds)
    >>> fig.axes[0].get_xlabel()
    'a'
    >>> plt.close(fig)
    """
    fig, ax = _fig(ax)
    name = ds.attrs.get("parameter", "parameter")
    x = ds[name].values
    which = ds["exponent"].values if exponents is None else np.atleast_1d(exponents)
    prefix = "λ" if label is None else label
    for c in which:
        m = ds["mean_exponents"].sel(exponent=c).values
        yerr = np.vstack([m - ds["ci_low"].sel(exponent=c).values, ds["ci_high"].sel(exponent=c).values - m])
        ax.errorbar(x, m, yerr=yerr, fmt="o-", ms=3.5, capsize=2, lw=1, color=f"C{(int(c) - 1) % 10}",
                    label=f"{prefix}{int(c)}")
    if "root" in ds and np.isfinite(float(ds["root"])):
        r = float(ds["root"])
        ax.axvline(r, color="k", ls="--", lw=1, label=f"crossing {r:.4g}")
        lo, hi = float(ds["root_low"]), float(ds["root_high"])
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="0.8", alpha=0.6, lw=0,
                       label=f"{ds.attrs.get('confidence', 0.95):.0%} interval [{lo:.4g}, {hi:.4g}]")
    ax.axhline(0, color="0.5", lw=0.8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel(f"Lyapunov exponent ({ds.attrs.get('confidence', 0.95):.0%} interval)")
    ax.legend(fontsize=8)
    return fig
