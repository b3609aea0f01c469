"""
Your own map
============

This tutorial builds a random dynamical system from a map you write yourself, runs it on both backends, checks
its exact Jacobian, saves and reloads a trajectory, and computes its Lyapunov exponent and pullback attractor.
It is written as notebook cells (``# %%``): download it with the button at the bottom and open it in Jupyter or
VS Code, or run it as a script.

The map is the noisy circle map

.. math:: \\theta_{t+1} = \\theta_t + \\Omega - \\frac{K}{2\\pi}\\sin(2\\pi\\theta_t) + \\xi_t,
   \\qquad \\xi_t \\sim N(0, \\sigma^2),

with the noise :math:`\\xi_t` shared by every member of the ensemble (common noise).
"""

# %%
# Write the map once, elementwise
# -------------------------------
# A step function takes ``(state, xi, params)`` and returns the new state as a tuple, one entry per variable.
# Write it with NumPy functions and plain arithmetic, *elementwise*: under the NumPy backend each entry of
# ``state`` is an array over the ensemble, under the Numba backend a scalar (the map is compiled per member).
# No ``if`` on the state and no in-place updates: that is all the engine needs to vectorise, compile and
# differentiate it.

import numpy as np

import analysis
import rds


def circle_step(state, xi, params):
    (theta,) = state
    omega, k = params
    return (theta + omega - k / (2.0 * np.pi) * np.sin(2.0 * np.pi * theta) + xi[0],)


system = rds.RandomDynamicalSystem(circle_step, noise=rds.noise.Gaussian(sigma2=0.01), variables=("theta",),
                                   params={"omega": 0.25, "K": 0.8}, name="noisy_circle_map")
system

# %%
# Parameters given as a mapping (or a namedtuple) reach the map as a namedtuple (``omega, k = params`` and
# ``params.omega`` both work) and keep their names in every Dataset's attrs (``param_omega``, ``param_K``).

# %%
# The exact automatic Jacobian
# ----------------------------
# No Jacobian was given, so the engine differentiates the map by the complex step,
# :math:`\partial_j\varphi_i \approx \operatorname{Im}\varphi_i(\theta + i h e_j)/h` with :math:`h = 10^{-20}`:
# no subtraction, hence exact to rounding. Compare with the derivative by hand,
# :math:`1 - K\cos(2\pi\theta)`.
theta = np.array([[0.1], [0.3], [0.7]])
J = system.jacobian_matrix(theta, xi=np.zeros(1))
print(J[:, 0, 0])
print(1 - 0.8 * np.cos(2 * np.pi * theta[:, 0]))

# %%
# Both backends, the same noise path
# ----------------------------------
# Time is absolute and the noise is generated from ``(seed, realization, t)``, so a run can be replayed exactly,
# on either backend. ``backend=None`` (the default) picks the backend with the smaller estimated time,
# compilation included: NumPy for short runs, Numba for long ones; the first Numba call compiles the kernel (a
# second or two), later calls reuse it.
theta0 = np.random.default_rng(0).uniform(0, 1, (2000, 1))
a = system.evolve(theta0, 2000, seed=1, backend="numpy")
b = system.evolve(theta0, 2000, seed=1, backend="numba")
print("max |numpy - numba| =", np.max(np.abs(a - b)))

# %%
# A trajectory as a labelled Dataset, saved and reloaded
# ------------------------------------------------------
# :meth:`~rds.RandomDynamicalSystem.trajectory` records the ensemble every ``every`` steps as an
# :class:`xarray.Dataset` with dims ``(time, member, var)``; :func:`rds.io.save` writes it atomically to netCDF4
# and :func:`rds.io.load` reads it back identically (the system's description travels in the attributes).
import os
import tempfile

ds = system.trajectory(theta0[:20], 2000, seed=1, every=10)
path = rds.io.save(ds, os.path.join(tempfile.mkdtemp(), "circle.nc"))
back = rds.io.load(path)
print("identical after the round trip:", back.identical(ds))
ds

# %%
# Common noise synchronises the ensemble: the phases (mod 1) of 20 members collapse onto one random point.
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 3), constrained_layout=True)
ax.plot(ds.time, np.mod(ds.state.sel(var="theta"), 1.0), lw=0.6)
ax.set(xlabel="t", ylabel="θ mod 1", title="20 members, one noise path")

# %%
# Lyapunov exponent and pullback attractor
# ----------------------------------------
# A negative Lyapunov exponent (here from the exact Jacobian along the trajectories) means that the pullback
# attractor of a noise path is a single random point: sets started further in the past arrive at time 0 ever
# more concentrated.
ly = analysis.lyapunov_spectrum(system, theta0[:8], 10_000, seed=2, transient=1000, realizations=2,
                                backend="numba")
print(f"λ = {float(ly.mean_exponents[0]):+.4f} ± {float(ly.stderr[0]):.4f} per step")

pb = analysis.pullback_attractor(system, theta0, taus=[0, 10, 100, 1000], t=0, seed=3, backend="numba")
z = np.exp(2j * np.pi * pb.state.sel(var="theta"))
spread = 1 - np.abs(z.mean("member"))
fig, ax = plt.subplots(figsize=(5, 3), constrained_layout=True)
ax.semilogx(np.maximum(pb.tau, 1), np.maximum(spread, 1e-16), "o-")
ax.set(xlabel="τ", ylabel="circular spread", yscale="log", title="the pullback set shrinks to a point")
