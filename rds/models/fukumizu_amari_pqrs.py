"""The FA SGD map in the (p, q, r, s) coordinates of Sato et al. 2022 (eqs. 19–24).

p = (w1 + w2)/2, q = (v1 + v2)/2, r = (w1 − w2)/2, s = (v1 − v2)/2 (eq. 19). The map is written here directly from
eqs. 20–24, independently of :mod:`rds.models.fukumizu_amari`, so that the conjugacy
``to_pqrs ∘ φ = φ_pqrs ∘ to_pqrs`` is a real check. M_wv is {r = s = 0}; M_w is {r = 0}.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from rds._checks import positive
from rds.models.fukumizu_amari import target
from rds.noise import Gaussian
from rds.system import RandomDynamicalSystem

__all__ = ["fukumizu_amari_pqrs", "pqrs_step"]

PQRSParams = namedtuple("PQRSParams", ["eta"])


def pqrs_step(state, xi, params):
    """One SGD step in (p, q, r, s), eqs. 20–23 with h from eq. 24, averaged over the batch. Elementwise."""
    p, q, r, s = state
    eta = params[0]
    dp = 0.0 * p
    dq = 0.0 * q
    dr = 0.0 * r
    ds = 0.0 * s
    for k in range(xi.shape[0]):
        x = xi[k]
        tp = np.tanh((p + r) * x)
        tm = np.tanh((p - r) * x)
        cp = np.cosh((p + r) * x)
        cm = np.cosh((p - r) * x)
        h = (q + s) * tp + (q - s) * tm - target(x)  # eq. 24
        dp = dp - x * h / 2.0 * ((q + s) / (cp * cp) + (q - s) / (cm * cm))  # eq. 20
        dq = dq - h / 2.0 * (tp + tm)  # eq. 21
        dr = dr - x * h / 2.0 * ((q + s) / (cp * cp) - (q - s) / (cm * cm))  # eq. 22
        ds = ds - h / 2.0 * (tp - tm)  # eq. 23
    c = eta / xi.shape[0]
    return (p + c * dp, q + c * dq, r + c * dr, s + c * ds)


def fukumizu_amari_pqrs(eta: float = 0.1, sigma2: float = 1.0, batch: int = 1, common_noise: bool = True):
    """The FA SGD map in (p, q, r, s) coordinates (Sato et al. 2022, eqs. 20–24), variables ``("p","q","r","s")``.

    Parameters
    ----------
    eta, sigma2, batch, common_noise
        As in :func:`rds.models.fukumizu_amari`.

    Returns
    -------
    RandomDynamicalSystem
        Jacobian by exact complex-step differentiation. Conjugate to the FA map through :mod:`rds.coords`.

    Examples
    --------
    >>> import numpy as np, rds
    >>> pq = rds.models.fukumizu_amari_pqrs(eta=0.1, sigma2=1.0)
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> th = np.array([0.3, -0.2, 0.5, 0.1]); x = np.array([0.7])
    >>> bool(np.allclose(rds.coords.to_pqrs(fa.apply(th, x)), pq.apply(rds.coords.to_pqrs(th), x)))
    True
    """
    eta = positive(eta, "eta")
    system = RandomDynamicalSystem(
        pqrs_step, noise=Gaussian(sigma2=sigma2, batch=batch), variables=("p", "q", "r", "s"),
        params=PQRSParams(eta), name="fukumizu_amari_pqrs", common_noise=common_noise,
        attrs={"reference": "Sato, Tsutsui, Fujiwara, Physica D 430 (2022) 133095",
               "equations": "eq. 19 (coordinates), eqs. 20-24 (map)"},
        recipe=(fukumizu_amari_pqrs, {"eta": eta, "sigma2": float(sigma2), "batch": int(batch)}))
    return system
