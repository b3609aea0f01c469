"""
A stochastic bifurcation: where the top exponent crosses zero
=============================================================

The random linear map :math:`x \\mapsto (a + \\xi_t)\\,x`, :math:`\\xi_t \\sim N(0, 1)`, has the Lyapunov exponent
:math:`\\lambda(a) = E \\ln|a + \\xi|`, computed here independently by quadrature. It changes sign at
:math:`a^* \\approx 1.278`: below, trajectories driven by the same noise contract onto each other (synchronisation
by noise); above, they separate. (The state is taken modulo 1 so that it stays bounded; the derivative is
:math:`a + \\xi_t` exactly.)

:func:`analysis.lyapunov_scan` measures :math:`\\lambda` over a grid with batch-means errors (noise paths × time
blocks); :func:`analysis.exponent_root` brackets the sign change, refines the bracket adaptively and gives the
crossing with a 95% confidence interval. :func:`analysis.plot_lyapunov_scan` draws the exponents with their
intervals and the crossing.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy import integrate, optimize, stats

import analysis
import rds


def multiplier(s, xi, p):
    return (np.mod((p[0] + xi[0]) * s[0], 1.0),)


def make(a):
    return rds.RandomDynamicalSystem(multiplier, noise=rds.noise.Gaussian(1.0), variables=("x",), params=(a,))


def exact(a):  # E ln|a + ξ| by quadrature, split at the logarithmic singularity ξ = −a
    f = lambda z: np.log(abs(a + z)) * stats.norm.pdf(z)  # noqa: E731
    return integrate.quad(f, -12.0, -a, limit=200)[0] + integrate.quad(f, -a, 12.0, limit=200)[0]


ds = analysis.exponent_root(make, np.linspace(0.0, 3.0, 7), np.full(1, 0.3), 4000, realizations=4, rounds=3,
                            parameter="a", seed=1, backend="numpy")
a_star = optimize.brentq(exact, 0.5, 3.0)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
analysis.plot_lyapunov_scan(ds, ax=axes[0])
grid = np.linspace(0.0, 3.0, 61)
axes[0].plot(grid, [exact(a) for a in grid], "k:", lw=1, label="E ln|a + ξ| (quadrature)")
axes[0].legend(fontsize=7)
axes[0].set_title("scan and refinement")
zoom = ds.sel(a=slice(1.0, 1.6))
analysis.plot_lyapunov_scan(zoom.assign(root=ds.root, root_low=ds.root_low, root_high=ds.root_high), ax=axes[1])
axes[1].axvline(a_star, color="r", lw=1, label=f"exact a* = {a_star:.4f}")
axes[1].legend(fontsize=7)
axes[1].set_title("near the crossing")
print(f"crossing {float(ds.root):.4f}, 95% interval [{float(ds.root_low):.4f}, {float(ds.root_high):.4f}]; "
      f"exact {a_star:.4f}")

# %%
ds
