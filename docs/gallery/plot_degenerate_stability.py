"""
Stability on the degenerate subspace
====================================

On :math:`M_{wv} = \\{w_1 = w_2,\\ v_1 = v_2\\}` the SGD step reduces to
:math:`(w, v) \\leftarrow (w, v) + \\eta\\, g(x; w, v)`. The Jacobian of :math:`g` is symmetric with
eigenvalues :math:`\\mu_- \\le \\mu_+`; for one input :math:`x` the point is attracting when
:math:`\\mu_+(x) \\le 0`. The left panel shows :math:`\\mu_\\pm(x)` at :math:`(w, v) = (\\tfrac12, \\tfrac12)`,
the right one the attracting probability :math:`\\pi(w, v) = P_{x\\sim N(0,\\sigma^2)}[\\mu_+ \\le 0]` with the
valley of the averaged potential (red).
"""

import numpy as np

import analysis
from analysis.plots_stability import plot_mu_eigenvalues, plot_pi_map

grid = np.linspace(0.02, 2.0, 60)
ds = analysis.degenerate_stability([0.1, 1.0], grid, grid, x=np.linspace(-3, 3, 301), points=[(0.5, 0.5)])
fig_mu = plot_mu_eigenvalues(ds, sigma2=[0.1, 1.0])
fig_pi = plot_pi_map(ds)

# %%
ds
