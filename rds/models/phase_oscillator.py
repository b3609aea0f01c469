"""The phase oscillator with common multiplicative noise (Sato et al. 2022, App. D).

dφ = ω dt + sin φ ∘ dW (Stratonovich), dW ~ N(0, σ² dt). Discretised with the stochastic Heun scheme, which
converges to the Stratonovich solution:

    φ̃ = φ + ω dt + sin φ ΔW,   φ' = φ + ω dt + ½ (sin φ + sin φ̃) ΔW.

Its Lyapunov exponent is λ = −(σ²/2) ⟨sin² φ⟩ ≈ −σ²/4 < 0 for small σ² (eq. D.6): oscillators driven by the same
noise synchronise.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from rds._checks import positive
from rds.noise import Wiener
from rds.system import RandomDynamicalSystem

__all__ = ["phase_oscillator", "heun_step", "heun_jacobian"]

OscParams = namedtuple("OscParams", ["omega", "dt"])


def heun_step(state, xi, params):
    """One stochastic Heun step of dφ = ω dt + sin φ ∘ dW; ``xi[0]`` is ΔW. Elementwise."""
    (phi,) = state
    omega, dt = params
    dw = xi[0]
    pred = phi + omega * dt + np.sin(phi) * dw
    return (phi + omega * dt + 0.5 * (np.sin(phi) + np.sin(pred)) * dw,)


def heun_jacobian(state, xi, params):
    """Analytic derivative dφ'/dφ of :func:`heun_step`. Elementwise."""
    (phi,) = state
    omega, dt = params
    dw = xi[0]
    pred = phi + omega * dt + np.sin(phi) * dw
    dpred = 1.0 + np.cos(phi) * dw
    return ((1.0 + 0.5 * (np.cos(phi) + np.cos(pred) * dpred) * dw,),)


def phase_oscillator(omega: float = 1.0, sigma2: float = 0.1, dt: float = 0.01, common_noise: bool = True):
    """The stochastic phase oscillator of Sato et al. 2022, App. D (Stratonovich, Heun scheme).

    Parameters
    ----------
    omega : float
        Natural frequency ω (finite).
    sigma2 : float
        Noise intensity σ² ≥ 0: dW ~ N(0, σ² dt).
    dt : float
        Time step dt > 0. The system's ``dt`` is set to it, so Lyapunov exponents come per unit time.
    common_noise : bool
        Oscillators share the noise (default; they synchronise) or have their own.

    Returns
    -------
    RandomDynamicalSystem
        Variable ``("phi",)``, noise :class:`rds.noise.Wiener`, analytic Jacobian.

    Examples
    --------
    >>> import numpy as np, rds
    >>> osc = rds.models.phase_oscillator(omega=1.0, sigma2=0.5, dt=0.01)
    >>> phi = osc.evolve(np.array([[0.0], [2.0]]), 20000, seed=3)
    >>> bool(abs(np.sin((phi[0, 0] - phi[1, 0]) / 2)) < 1e-3)   # common noise synchronises them
    True
    """
    from rds._checks import real
    omega = real(omega, "omega")
    dt = positive(dt, "dt")
    system = RandomDynamicalSystem(
        heun_step, noise=Wiener(sigma2=sigma2, dt=dt), variables=("phi",), params=OscParams(omega, dt),
        jacobian=heun_jacobian, name="phase_oscillator", dt=dt, common_noise=common_noise,
        attrs={"reference": "Sato, Tsutsui, Fujiwara, Physica D 430 (2022) 133095, App. D",
               "equations": "dphi = omega dt + sin(phi) o dW (Stratonovich), stochastic Heun; eq. D.6"},
        recipe=(phase_oscillator, {"omega": omega, "sigma2": float(sigma2), "dt": dt}))
    return system
