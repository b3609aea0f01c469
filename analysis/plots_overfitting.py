"""Figures of learning curves: the overfitting study's (E_tr, E_gen), its (w, v) trajectory, and any map's losses.

Reference: Maleknia & Sato, "Plateaus, optima and overfitting in multi-layer perceptrons: a saddle–saddle–attractor
scenario" (2026), Fig. 4. Each function takes ``ax=`` (``axes=``) and returns the Figure; matplotlib is imported
only when a figure is drawn, through its object-oriented API (no backend is chosen or changed).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.overfitting import optimal_set_sample
from rds.symmetry import orbit

__all__ = ["plot_learning_curves", "plot_loss_curves", "plot_trajectory"]


def _figure(ax, size):
    from analysis._figures import figure_and_axes

    return figure_and_axes(ax, size, layout=None)


def plot_learning_curves(curves, labels=None, ax=None):
    """Log–log learning curves (Maleknia & Sato 2026, Fig. 4 left): E_tr solid, E_gen dashed, one colour per Dataset.

    Parameters
    ----------
    curves : xarray.Dataset or sequence of them (from :func:`learning_curves`)
    labels : sequence of str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import rds
    >>> from analysis.overfitting import learning_curves, make_dataset
    >>> x, y = make_dataset(20, noise_std=0.1, seed=0)
    >>> gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    >>> ds = learning_curves(gd, [-0.13, 0.13, 0.16, -0.15], 200, num=10, backend="numpy", polish=False)
    >>> fig = plot_learning_curves(ds, labels=["σ_ε = 0.1"])
    >>> len(fig.axes[0].lines)   # E_tr, E_gen and the marker of min E_gen
    3
    """
    if isinstance(curves, xr.Dataset):
        curves = [curves]
    labels = labels or [f"run {i}" for i in range(len(curves))]
    fig, ax = _figure(ax, (6, 4))
    for i, (ds, lab) in enumerate(zip(curves, labels)):
        sel = ds.sel(time=ds.time > 0)
        c = f"C{i}"
        ax.loglog(sel.time, sel.E_tr, color=c, label=f"{lab}: $E_{{tr}}$")
        ax.loglog(sel.time, sel.E_gen, color=c, ls="--", label=f"{lab}: $E_{{gen}}$")
        ax.plot(int(ds.t_min_gen), float(ds.E_gen_min), "v", color=c, ms=6)
    ax.set_xlabel("GD step t")
    ax.set_ylabel("error")
    ax.legend(fontsize=7)
    return fig


def plot_trajectory(curves, axes=None):
    """Trajectory in (w1, w2) and (v1, v2), coloured by log10 t, with O and the overfitting point (Fig. 4).

    O is drawn as its symmetry images of the lines A, B, C (grey); the overfitting point's 8 images are red stars.

    Parameters
    ----------
    curves : xarray.Dataset from :func:`learning_curves` (N = 2)
    axes : two matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import rds
    >>> from analysis.overfitting import learning_curves, make_dataset
    >>> x, y = make_dataset(20, noise_std=0.1, seed=0)
    >>> gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    >>> ds = learning_curves(gd, [-0.13, 0.13, 0.16, -0.15], 200, num=10, backend="numpy", polish=False)
    >>> fig = plot_trajectory(ds)
    >>> len(fig.axes)   # (w1, w2), (v1, v2) and the colour bar
    3
    """
    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 5))
        axes = fig.subplots(1, 2)
    else:
        fig = axes[0].figure
    sel = curves.sel(time=curves.time > 0)
    S = sel.state.values
    lt = np.log10(sel.time.values)
    Ofull = orbit(optimal_set_sample(200, 3.0)).reshape(-1, 4)
    ovf = orbit(curves.overfitting_point.values)
    for ax, (i, j), name in zip(axes, [(0, 1), (2, 3)], ["w", "v"]):
        ax.scatter(Ofull[:, i], Ofull[:, j], s=1, color="0.75", label="O (optimal region)")
        sc = ax.scatter(S[:, i], S[:, j], c=lt, s=8, cmap="viridis")
        ax.plot(ovf[:, i], ovf[:, j], "r*", ms=10, label="overfitting point (all images)")
        ax.set_xlabel(f"${name}_1$")
        ax.set_ylabel(f"${name}_2$")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.colorbar(sc, ax=list(axes), label="log10 t")
    return fig


def plot_loss_curves(ds, losses=None, ax=None, members: bool = True):
    """Log–log learning curves of :func:`loss_curves`: the mean per loss, and each member thin.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`analysis.loss_curves`.
    losses : sequence of str, optional
        Which losses (default: all).
    ax : matplotlib Axes, optional
    members : bool
        Draw each member's curve (thin, transparent) under the mean.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> scm = rds.models.soft_committee(inputs=2, hidden=2, eta=0.1, sigma2=0.5)
    >>> ds = analysis.loss_curves(scm, np.full((3, scm.nvar), 0.1), 200, num=10, backend="numpy")
    >>> fig = analysis.plot_loss_curves(ds)
    >>> len(fig.axes[0].lines)    # 3 members + the mean
    4
    """
    fig, ax = _figure(ax, (6, 4))
    names = list(ds["curve"].values) if losses is None else list(losses)
    sel = ds.sel(time=ds.time > 0)
    t = sel.time.values
    for i, name in enumerate(names):
        c = f"C{i}"
        if members:
            for m in sel.member.values:
                ax.loglog(t, sel.loss.sel(curve=name, member=m), color=c, lw=0.5, alpha=0.3)
        ax.loglog(t, sel.loss_mean.sel(curve=name), color=c, lw=2, label=f"{name} (mean)")
    ax.set_xlabel("step t")
    ax.set_ylabel("loss")
    ax.legend()
    return fig
