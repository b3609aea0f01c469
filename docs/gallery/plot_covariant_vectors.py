"""
Finite-time exponents and covariant Lyapunov vectors
====================================================

**Finite-time exponents.** For :math:`x \\mapsto a_t x` with :math:`a_t = 2.5` or :math:`0.6` (probability
:math:`P = 0.31` and :math:`1 - P`), the n-step exponent is :math:`(N \\ln 2.5 + (n - N) \\ln 0.6)/n` with
:math:`N \\sim \\mathrm{Binomial}(n, P)`, and the generalised exponents are :math:`L(q) = \\ln E|a|^q` exactly.
:func:`analysis.finite_time_exponents` gives the distribution over independent noise paths and :math:`L(q)` with
its jackknife bias and error; estimates whose rare contributing paths were not drawn are flagged (open markers).

**Covariant vectors.** For random upper-triangular products
:math:`A_t = \\begin{pmatrix} e^{m_1 + \\xi_1} & \\xi_3 \\\\ 0 & e^{m_2 + \\xi_2} \\end{pmatrix}` the direction
:math:`e_1` is invariant, so it is a covariant Lyapunov vector — the second one when :math:`m_1 < m_2`. The first
one moves with the noise; :func:`analysis.covariant_vectors` (Ginelli et al. 2007) finds both, and the angle
between the unstable and the stable direction over time shows the near-tangencies.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import analysis
import rds


def two_valued(s, xi, p):
    return (np.mod(np.where(xi[0] > 0.5, 2.5, 0.6) * s[0], 1.0),)


P = float(stats.norm.sf(0.5))
iid = rds.RandomDynamicalSystem(two_valued, noise=rds.noise.Gaussian(1.0), variables=("x",), common_noise=False)
q = np.linspace(-2, 2, 9)
ft = analysis.finite_time_exponents(iid, np.full((4000, 1), 0.3), [10, 40], q=q, seed=1, backend="numpy")


def triangular(s, xi, p):
    x, y = s
    return (np.exp(p[0] + xi[0]) * x + xi[2] * y, np.exp(p[1] + xi[1]) * y + 0.0 * x)


tri = rds.RandomDynamicalSystem(triangular, noise=rds.noise.Gaussian(0.25, batch=3), variables=("x", "y"),
                                params=(-0.3, 0.2))
clv = analysis.covariant_vectors(tri, np.array([[0.1, 0.2]]), 300, transient=100, backward_transient=100,
                                 backend="numpy")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
n = 40
N = np.arange(n + 1)
values = (N * np.log(2.5) + (n - N) * np.log(0.6)) / n
step = values[1] - values[0]
axes[0].hist(ft.exponents.sel(horizon=n, exponent=1).values.ravel(), bins=np.append(values, values[-1] + step)
             - step / 2, density=True, color="C0", alpha=0.6, label="finite-time exponents, n = 40")
axes[0].plot(values, stats.binom.pmf(N, n, P) / step, "k.", label="binomial")
axes[0].set(xlabel="λ_n", ylabel="density", title="distribution over noise paths")
axes[0].legend(fontsize=7)
for i, h in enumerate(ft.horizon.values):
    g = (ft.generalized - ft.generalized_bias).sel(horizon=h)
    ok = ft.reliable.sel(horizon=h).values
    axes[1].errorbar(q[ok], g.values[ok], yerr=2 * ft.generalized_stderr.sel(horizon=h).values[ok], fmt="o",
                     ms=4, color=f"C{i}", label=f"n = {h}")
    axes[1].plot(q[~ok], g.values[~ok], "o", mfc="none", color=f"C{i}")
qq = np.linspace(-2, 2, 81)
axes[1].plot(qq, np.log(P * 2.5 ** qq + (1 - P) * 0.6 ** qq), "k--", lw=1, label="ln E|a|^q")
axes[1].set(xlabel="q", ylabel="L(q)", title="generalised exponents (open: unreliable)")
axes[1].legend(fontsize=7)
t = clv.time.values
axes[2].plot(t, np.degrees(clv.angle.isel(realization=0, member=0)), lw=0.8)
e1 = np.abs(clv.vectors.isel(realization=0, member=0).sel(var="x", clv=2))
axes[2].set(xlabel="time step", ylabel="angle between v1 and v2 (degrees)",
            title=f"CLVs: |v2 · e1| = 1 ± {float(np.abs(e1 - 1).max()):.0e}")

# %%
clv
