"""
Exponents transverse to the degenerate subspace
===============================================

:math:`M_{wv}` is invariant, so the Jacobian at a point of it splits into a part along :math:`M_{wv}` and a part
transverse to it (the :math:`(r, s)` directions of the coordinates :math:`p, q, r, s`). The transverse Lyapunov
exponents decide whether trajectories near :math:`M_{wv}` are attracted to it: negative means noise-induced
degeneration. A short scan over :math:`\\sigma^2`.
"""

import numpy as np

import analysis
import rds

sigma2 = np.geomspace(0.01, 1.0, 3)
starts = np.array([[0.5, 0.5], [1.0, 1.0]])
ds = analysis.transverse_exponents(lambda s2: rds.models.fukumizu_amari(eta=0.1, sigma2=s2), sigma2, starts,
                                   6_000, transient=1_000, qr_every=10, seed=2022, backend="numpy")
fig = analysis.plot_transverse_exponents(ds)

# %%
ds
