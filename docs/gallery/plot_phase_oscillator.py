"""
Synchronisation by common noise
===============================

The phase oscillator :math:`d\\varphi = \\omega\\,dt + \\sin\\varphi \\circ dW` (Stratonovich, integrated by
Heun's method) has the Lyapunov exponent :math:`\\lambda = -\\tfrac{\\sigma^2}{2}\\langle \\sin^2\\varphi\\rangle
\\approx -\\sigma^2/4 < 0`: oscillators driven by the *same* noise synchronise, those driven by independent
noise do not.
"""

import matplotlib.pyplot as plt
import numpy as np

import analysis
import rds

sigma2 = np.array([0.1, 0.3, 1.0])
lam, se = [], []
for s2 in sigma2:
    osc = rds.models.phase_oscillator(omega=1.0, sigma2=float(s2), dt=0.01)
    init = np.linspace(0, 2 * np.pi, 4, endpoint=False)[:, None]
    ds = analysis.lyapunov_spectrum(osc, init, 10_000, transient=1_000, qr_every=10, seed=7, realizations=2,
                                    backend="numpy")
    lam.append(float(ds.mean_exponents[0]))
    se.append(float(ds.stderr[0]))
fig = analysis.plot_exponent_vs_sigma2(sigma2, np.array(lam), np.array(se), reference=-sigma2 / 4,
                                       reference_label="−σ²/4")

# %%
# Two oscillators from different phases, common noise (left) and independent noise (right).
osc = rds.models.phase_oscillator(omega=1.0, sigma2=0.5, dt=0.01)
start = np.array([[0.0], [2.5]])
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True, constrained_layout=True)
for ax, system, title in ((axes[0], osc, "common noise"),
                          (axes[1], osc.replace(common_noise=False), "independent noise")):
    tr = system.trajectory(start, 20_000, seed=3, every=20, backend="numpy")
    phase = np.mod(tr.state.sel(var="phi"), 2 * np.pi)
    ax.plot(tr.time * osc.dt, phase, lw=0.7)
    ax.set(title=title, xlabel="time")
axes[0].set_ylabel("φ mod 2π")
