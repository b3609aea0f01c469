"""
A first pullback attractor
==========================

The Fukumizu–Amari network trained by online SGD is a random dynamical system
:math:`\\theta_{t+1} = \\varphi(\\theta_t, x_t)`, with a fresh input :math:`x_t \\sim N(0, \\sigma^2)` each step.
Start a cloud of networks at time :math:`-\\tau`, drive them all with the *same* input sequence up to time 0 and
look at the cloud at time 0: as :math:`\\tau` grows, it converges to the pullback attractor of that input
sequence. At :math:`\\sigma^2 = 1` the two hidden neurons become identical (:math:`w_1 = w_2`, then
:math:`v_1 = v_2`): noise-induced degeneration.

This is the page-one example at a small scale (1000 networks, :math:`\\tau \\le 10^4`).
"""

import analysis
import rds

fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=1)
box = rds.regions.Box([-1.0] * 4, [1.0] * 4, variables=fa.variables)  # B = [-1, 1]^4
ds = analysis.pullback_attractor(fa, box, taus=[0, 1000, 10000], t=0, seed=0, members=1000, backend="numpy")
fig = analysis.plot_pullback_attractors([ds], diagnostics=[analysis.pullback_diagnostics(ds)], lim=4.0)

# %%
# The result is a labelled :class:`xarray.Dataset`: the states at time 0, one set per :math:`\tau`.
ds

# %%
# The diagnostics count how many members have degenerated (:math:`|w_1-w_2|` and :math:`|v_1-v_2|` below a
# threshold) and how far the sets of successive :math:`\tau` are from each other (Hausdorff distance).
analysis.pullback_diagnostics(ds)
