"""Plots of neuron-splitting plateaus: local-min / saddle regions over the coefficients beta.

Reference: "A geometric characterization of the stationary plateau for two-layer neural networks".

Each function takes ``ax=`` (or ``axes=``) to draw into existing axes and returns the Figure; matplotlib is
imported only when a plot is made, and new figures use the object-oriented API (``matplotlib.figure.Figure``), so
no backend is chosen or changed.
"""

from __future__ import annotations

import numpy as np

_COLORS = {0: "#4c9f70", 1: "#d1495b", 2: "#bbbbbb"}  # local_min, saddle, undetermined
_NAMES = {0: "local min", 1: "saddle", 2: "undetermined"}


def plot_plateau_map(ds, ax=None, title=None):
    """Plot a plateau map from :func:`analysis.neuron_splitting.plateau_map`.

    Two daughters: the smallest eigenvalue of the wide Hessian transverse to the plateau against
    ``beta_0`` (``beta_1 = 1 - beta_0``), points coloured by the theorem's verdict (Theorems 1-4).
    Three daughters: the ``(beta_0, beta_1)`` plane coloured by the verdict, with the lines
    ``beta_0 = 0``, ``beta_1 = 0`` and ``beta_2 = 0`` that bound the regions of Theorem 1.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``kind`` over dims ``("beta_0",)`` or ``("beta_0", "beta_1")``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw in; a new figure is made when omitted.
    title : str, optional
        Defaults to the inner Hessian's definiteness and the number of daughters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_plateau_map(ds)              # doctest: +SKIP
    >>> fig.savefig("plateau.png")              # doctest: +SKIP
    """
    dims = ds["kind"].dims
    if dims not in (("beta_0",), ("beta_0", "beta_1")):
        raise ValueError(f"ds: plot needs a plateau map with 2 or 3 daughters, got kind dims {dims}")
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if ax is None:
        fig = Figure(figsize=(4.5, 3.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    kind = ds["kind"].values
    if title is None:
        title = f"H_j {ds.attrs.get('definiteness', '?')}, {len(dims) + 1} daughters"
    if len(dims) == 1:
        b0 = ds["beta_0"].values
        lam = ds["min_transverse_eig"].values
        scale = np.nanmax(np.abs(lam)) or 1.0
        ax.axhline(0.0, color="k", lw=0.6)
        ax.plot(b0, lam, color="0.4", lw=0.8)
        for code, name in _NAMES.items():
            sel = kind == code
            if np.any(sel):
                ax.scatter(b0[sel], lam[sel], s=12, color=_COLORS[code], label=name, zorder=3)
        for b in (0.0, 1.0):
            ax.axvline(b, color="k", ls=":", lw=0.8)
        ax.set_xlabel(r"$\beta_0$  ($\beta_1 = 1-\beta_0$)")
        ax.set_ylabel("min transverse Hessian eig.")
        ax.set_ylim(-1.1 * scale, 1.1 * scale)
        ax.legend(fontsize=7, loc="best")
    else:
        b0 = ds["beta_0"].values
        b1 = ds["beta_1"].values
        cmap = ListedColormap([_COLORS[c] for c in sorted(_COLORS)])
        ax.pcolormesh(b0, b1, kind.T, cmap=cmap, vmin=-0.5, vmax=2.5, shading="nearest")
        ax.axvline(0.0, color="k", lw=0.8)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.plot(b0, 1.0 - b0, color="k", lw=0.8)
        ax.set_xlim(b0.min(), b0.max())
        ax.set_ylim(b1.min(), b1.max())
        ax.set_xlabel(r"$\beta_0$")
        ax.set_ylabel(r"$\beta_1$  ($\beta_2 = 1-\beta_0-\beta_1$)")
        handles = [Rectangle((0, 0), 1, 1, color=_COLORS[c]) for c in (0, 1) if np.any(kind == c)]
        labels = [_NAMES[c] for c in (0, 1) if np.any(kind == c)]
        if handles:
            ax.legend(handles, labels, fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    return fig


def plot_plateau_maps(maps, titles=None, axes=None):
    """Grid of plateau maps: one row per case, one column per number of daughters.

    Parameters
    ----------
    maps : sequence of sequences of xarray.Dataset
        ``maps[row][col]`` as from :func:`analysis.neuron_splitting.plateau_map`.
    titles : sequence of sequences of str, optional
    axes : 2-d array of matplotlib Axes, optional
        ``axes[row][col]`` to draw into; a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_plateau_maps([[pd2, pd3], [nd2, nd3]])   # doctest: +SKIP
    """
    rows, cols = len(maps), max(len(r) for r in maps)
    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
    else:
        fig = np.asarray(axes).ravel()[0].figure
    for i, row in enumerate(maps):
        for k, ds in enumerate(row):
            plot_plateau_map(ds, ax=axes[i][k], title=None if titles is None else titles[i][k])
    return fig
