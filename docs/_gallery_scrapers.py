"""The gallery's one image scraper: every matplotlib Figure of an example, saved once.

Plotting functions of ``analysis`` return bare :class:`matplotlib.figure.Figure` objects (no pyplot state), which
sphinx-gallery's standard scraper does not see; an example may also make figures with pyplot (``plt.subplots``) to
pass ``ax=``. This scraper takes both after each code block — pyplot's open figures and the Figures bound to names
in the example's globals — saves each figure the first time it is seen, and closes pyplot's figures. Used alone
(``image_scrapers`` in ``conf.py``): with sphinx-gallery's matplotlib scraper beside it, a pyplot figure was saved
by that scraper and again by a bare-figure scraper in the next block, so every such figure appeared twice.
"""

from __future__ import annotations

import weakref

_seen: weakref.WeakSet = weakref.WeakSet()


def figures(block, block_vars, gallery_conf):
    import matplotlib.figure
    import matplotlib.pyplot as plt
    from sphinx_gallery.scrapers import figure_rst

    found = [m.canvas.figure for m in plt._pylab_helpers.Gcf.get_all_fig_managers()]
    found += [obj for obj in list(block_vars["example_globals"].values())
              if isinstance(obj, matplotlib.figure.Figure)]
    paths = []
    for fig in found:
        if fig in _seen:
            continue
        _seen.add(fig)
        path = next(block_vars["image_path_iterator"])
        fig.savefig(path, dpi=100)
        paths.append(path)
    plt.close("all")
    return figure_rst(paths, gallery_conf["src_dir"])
