"""Fig. 3-style plots of local Jacobian stability on M_wv (Sato et al. 2022, §3.2, Fig. 3).

Both functions take the Dataset of :func:`analysis.degenerate_stability.degenerate_stability`, draw with the
object-oriented matplotlib API (no pyplot state; matplotlib is imported only when a figure is drawn and no backend
is chosen) and return the Figure. ``axes=`` draws into existing axes, one per σ² panel.
"""

from __future__ import annotations

import numpy as np


def _panels(axes, n, size):
    if axes is not None:
        axes = list(np.ravel(axes))
        if len(axes) != n:
            raise ValueError(f"axes: need {n} axes (one per sigma2 panel), got {len(axes)}")
        return axes[0].figure, axes
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, list(fig.subplots(1, n, squeeze=False)[0])


def plot_mu_eigenvalues(ds, point=0, sigma2=None, axes=None):
    """Fig. 3 (left): μ+(x; w, v) (red), μ−(x; w, v) (blue) and the input density ρ(x) (grey, right axis).

    Parameters
    ----------
    ds : xarray.Dataset
        From ``degenerate_stability``; uses ``mu_minus``, ``mu_plus`` (point, x) and ``density`` (sigma2, x).
    point : int
        Index along dim ``point``.
    sigma2 : sequence of float, optional
        Which σ² to draw densities for (default: all in ``ds``); one panel per σ².

    axes : sequence of matplotlib Axes, optional
        One per σ² panel; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from analysis.degenerate_stability import degenerate_stability
    >>> fig = plot_mu_eigenvalues(degenerate_stability([0.1, 1.0], [0.5], [0.5]))
    """
    s2_all = np.atleast_1d(ds["sigma2"].values)
    s2_list = s2_all if sigma2 is None else np.atleast_1d(np.asarray(sigma2, dtype=float))
    fig, axes = _panels(axes, len(s2_list), (4.2 * len(s2_list), 3.4))
    x = ds["x"].values
    mm = ds["mu_minus"].isel(point=point).values
    mp = ds["mu_plus"].isel(point=point).values
    pw = float(ds["point_w"].values[point])
    pv = float(ds["point_v"].values[point])
    for ax, s2 in zip(axes, s2_list, strict=True):
        ax.axhline(0.0, color="k", lw=0.6)
        ax.plot(x, mp, color="red", label=r"$\mu_+$")
        ax.plot(x, mm, color="blue", label=r"$\mu_-$")
        ax.fill_between(x, mm.min(), mm.max(), where=mp <= 0, color="0.85", zorder=0, label=r"$\mu_+\leq 0$")
        ax.set_xlabel("x")
        ax.set_ylabel(r"$\mu_\pm(x; w, v)$")
        ax2 = ax.twinx()
        ax2.plot(x, ds["density"].sel(sigma2=s2).values, color="0.4", ls="--", label=r"$\rho(x)$")
        ax2.set_ylabel(r"$\rho(x)$")
        ax2.set_ylim(bottom=0)
        title = rf"$(w, v) = ({pw:g}, {pv:g})$, $\sigma^2 = {s2:g}$"
        if "pi_at_points" in ds:
            title += rf", $\pi = {float(ds['pi_at_points'].sel(sigma2=s2).values[point]):.3f}$"
        ax.set_title(title, fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_pi_map(ds, sigma2=None, levels=(0.1, 0.3, 0.5), axes=None):
    """Fig. 3 (right): π(w, v) on M_wv (darker = more often attracting) with the valley C (red, eq. A.6).

    Parameters
    ----------
    ds : xarray.Dataset
        From ``degenerate_stability``; uses ``pi`` (sigma2, w, v) and ``valley`` (sigma2, w).
    sigma2 : sequence of float, optional
        Panels to draw (default: all σ² in ``ds``). Colour scale is shared, [0, 1].
    levels : sequence of float
        π contour levels drawn in black.

    axes : sequence of matplotlib Axes, optional
        One per σ² panel; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from analysis.degenerate_stability import degenerate_stability
    >>> g = np.linspace(0, 2, 21)
    >>> fig = plot_pi_map(degenerate_stability([1.0], g, g))
    """
    s2_all = np.atleast_1d(ds["sigma2"].values)
    s2_list = s2_all if sigma2 is None else np.atleast_1d(np.asarray(sigma2, dtype=float))
    fig, axes = _panels(axes, len(s2_list), (4.0 * len(s2_list) + 0.8, 3.8))
    w = ds["w"].values
    v = ds["v"].values
    mesh = None
    for ax, s2 in zip(axes, s2_list, strict=True):
        pi = ds["pi"].sel(sigma2=s2).values          # (w, v)
        mesh = ax.pcolormesh(w, v, pi.T, cmap="Greys", vmin=0.0, vmax=1.0, shading="auto")
        if pi.max() > min(levels):
            cs = ax.contour(w, v, pi.T, levels=list(levels), colors="k", linewidths=0.6)
            ax.clabel(cs, fontsize=7)
        vs = ds["valley"].sel(sigma2=s2).values
        ok = np.isfinite(vs) & (vs >= v.min()) & (vs <= v.max())
        if ok.any():
            ax.plot(np.where(ok, w, np.nan), np.where(ok, vs, np.nan), color="red", lw=1.5, label="C: v*(w)")
        else:  # no legend entry for a curve that is not drawn
            ax.text(0.03, 0.97, "C: v*(w) outside this window", transform=ax.transAxes, va="top", fontsize=8,
                    color="red")
        if "valley_min_w" in ds:
            wm = float(ds["valley_min_w"].sel(sigma2=s2))
            vm = float(ds["valley_min_v"].sel(sigma2=s2))
            if np.isfinite(wm) and w.min() <= wm <= w.max() and v.min() <= vm <= v.max():
                ax.plot([wm], [vm], "r*", ms=10, label="local min of L* on C")
        ax.set_xlim(w.min(), w.max())
        ax.set_ylim(v.min(), v.max())
        ax.set_xlabel("w")
        ax.set_ylabel("v")
        ax.set_title(rf"$\pi(w, v)$, $\sigma^2 = {s2:g}$ (max {pi.max():.2f})", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(mesh, ax=list(axes), label=r"$\pi = $Prob$[\mu_+ \leq 0]$")
    return fig
