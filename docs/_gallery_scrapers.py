"""A sphinx-gallery image scraper for figures that pyplot does not manage.

Several plotting functions of ``analysis`` return a bare :class:`matplotlib.figure.Figure` (no pyplot state, safe
in threads and servers); the standard scraper only sees pyplot's figures. This one saves every other Figure bound
to a name in the example's globals, once.
"""

from __future__ import annotations

import weakref

_seen: weakref.WeakSet = weakref.WeakSet()


def bare_figures(block, block_vars, gallery_conf):
    import matplotlib.figure
    import matplotlib.pyplot as plt
    from sphinx_gallery.scrapers import figure_rst

    managed = {m.canvas.figure for m in plt._pylab_helpers.Gcf.get_all_fig_managers()}
    paths = []
    for obj in list(block_vars["example_globals"].values()):
        if isinstance(obj, matplotlib.figure.Figure) and obj not in managed and obj not in _seen:
            _seen.add(obj)
            path = next(block_vars["image_path_iterator"])
            obj.savefig(path, dpi=100)
            paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
