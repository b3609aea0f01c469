"""
Splitting a neuron: local minima and saddles on the plateau
===========================================================

Duplicate the hidden neuron of a one-neuron network at a local minimum, giving the daughters the output weights
:math:`\\beta_0 v` and :math:`\\beta_1 v` with :math:`\\beta_0 + \\beta_1 = 1`: the function is unchanged and
every :math:`\\beta_0` gives a stationary point of the wider network. Whether it is a local minimum or a saddle is
decided by the inner Hessian :math:`H_j = \\frac1n\\sum_k r_k v_j \\sigma''(w_j\\cdot x_k)\\, x_k x_k^\\top` and
the signs of the coefficients.
"""

import numpy as np

import analysis
from analysis.plots_splitting import plot_plateau_map

rng = np.random.default_rng(249)
X = rng.normal(size=(10, 2))
Wt, vt = 1.5 * rng.normal(size=(2, 2)), rng.normal(size=2)
y = np.tanh(X @ Wt.T) @ vt  # a two-neuron teacher
W, v = analysis.find_local_minimum(X, y, hidden=1, seed=0)
print("eigenvalues of the inner Hessian:", np.linalg.eigvalsh(analysis.inner_hessian(W, v, X, y, 0)))
ds = analysis.plateau_map(W, v, X, y, 0, daughters=2, grid=np.linspace(-1, 2, 31))
fig = plot_plateau_map(ds, title="two daughters: classification against β₀")

# %%
ds
