"""The one way plotting functions of ``analysis`` make figures: bare :class:`matplotlib.figure.Figure` objects.

A plotting function takes ``ax=`` (or ``axes=``) to draw into a figure the caller owns, and otherwise makes a bare
Figure with :func:`new_figure`: no pyplot state (safe in threads and servers, nothing to close), no backend chosen
or changed. Display one in a notebook by leaving it as a cell's value, or save it with ``fig.savefig``.
"""

from __future__ import annotations


def new_figure(size, layout="constrained"):
    """A bare Figure of ``size`` (inches), outside pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout=layout)


def figure_and_axes(ax, size, layout="constrained"):
    """``(ax.figure, ax)`` when the caller gives ``ax``, else a new bare Figure with one Axes."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(size, layout)
    return fig, fig.add_subplot()
