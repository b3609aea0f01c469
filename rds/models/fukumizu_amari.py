"""The Fukumizu–Amari (FA) network trained by SGD, as a random dynamical system (Sato et al. 2022, eqs. 4–16).

Network f(x; θ) = v1 tanh(w1 x) + v2 tanh(w2 x), target T(x) = 2 tanh(x) − tanh(4x) (eq. 8), inputs
x ~ N(0, σ²) i.i.d. (S per step), loss l = ½ (f − T)². One SGD step with learning rate η (eqs. 12–15, 16):

    w_i ← w_i − η ⟨x v_i h / cosh²(w_i x)⟩,   v_i ← v_i − η ⟨tanh(w_i x) h⟩,   h = f(x; θ) − T(x),

where ⟨·⟩ is the mean over the S inputs of the batch (eq. 1).

Reference: Sato, Tsutsui, Fujiwara, *Noise-induced degeneration in online learning*, Physica D 430 (2022) 133095.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from rds._checks import positive
from rds.noise import Gaussian
from rds.system import RandomDynamicalSystem

__all__ = ["fukumizu_amari", "fa_step", "fa_jacobian", "target", "OPTIMA", "FAParams", "THETA_VARS", "PQRS_VARS",
           "PQRS_MATRIX", "PQRS_BASIS"]

FAParams = namedtuple("FAParams", ["eta"])

#: The optimal set θ* (eq. 9), rows (w1, w2, v1, v2): f(·; θ) = T exactly.
OPTIMA = np.array([[1, 4, 2, -1], [-1, 4, -2, -1], [1, -4, 2, 1], [-1, -4, -2, 1],
                   [4, 1, -1, 2], [4, -1, -1, -2], [-4, 1, 1, 2], [-4, -1, 1, -2]], dtype=float)


THETA_VARS = ("w1", "w2", "v1", "v2")
PQRS_VARS = ("p", "q", "r", "s")
#: The (p, q, r, s) basis of eq. 19: (p, q, r, s)ᵀ = PQRS_MATRIX @ (w1, w2, v1, v2)ᵀ, i.e. p = (w1 + w2)/2,
#: q = (v1 + v2)/2, r = (w1 − w2)/2, s = (v1 − v2)/2; the inverse is 2 PQRS_MATRIXᵀ (w1 = p + r, w2 = p − r,
#: v1 = q + s, v2 = q − s). M_w = {r = 0} (eq. 17), M_wv = {r = s = 0} (eq. 18). Used by :mod:`rds.coords`.
PQRS_MATRIX = 0.5 * np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, -1, 0, 0], [0, 0, 1, -1]], dtype=float)
_SQ = 1.0 / np.sqrt(2.0)
#: Unit directions of p, q, r, s in (w1, w2, v1, v2) coordinates, as the columns (e_p, e_q, e_r, e_s):
#: an orthonormal matrix whose columns are the rows of PQRS_MATRIX normalised.
PQRS_BASIS = np.array([[_SQ, 0.0, _SQ, 0.0], [_SQ, 0.0, -_SQ, 0.0], [0.0, _SQ, 0.0, _SQ], [0.0, _SQ, 0.0, -_SQ]])


def target(x):
    """The teacher T(x) = 2 tanh(x) − tanh(4x) (Sato et al. 2022, eq. 8).

    Parameters
    ----------
    x : array_like
        Inputs, any shape.

    Returns
    -------
    ndarray, same shape

    Examples
    --------
    >>> from rds.models import target
    >>> float(target(0.0))
    0.0
    """
    return 2.0 * np.tanh(x) - np.tanh(4.0 * x)


def fa_step(state, xi, params):
    """One SGD step of the FA model (eqs. 12–15) averaged over the batch ``xi`` (eq. 1). Elementwise."""
    w1, w2, v1, v2 = state
    eta = params[0]
    gw1 = 0.0 * w1
    gw2 = 0.0 * w2
    gv1 = 0.0 * v1
    gv2 = 0.0 * v2
    for k in range(xi.shape[0]):
        x = xi[k]
        t1 = np.tanh(w1 * x)
        t2 = np.tanh(w2 * x)
        h = v1 * t1 + v2 * t2 - target(x)
        gw1 = gw1 + x * v1 * h * (1.0 - t1 * t1)
        gw2 = gw2 + x * v2 * h * (1.0 - t2 * t2)
        gv1 = gv1 + t1 * h
        gv2 = gv2 + t2 * h
    c = eta / xi.shape[0]
    return (w1 - c * gw1, w2 - c * gw2, v1 - c * gv1, v2 - c * gv2)


def fa_jacobian(state, xi, params):
    """Analytic Jacobian ∂θ'/∂θ = I − η ⟨∇²l⟩ of :func:`fa_step`, with ∇²l = ∇f ∇fᵀ + h ∇²f. Elementwise."""
    w1, w2, v1, v2 = state
    eta = params[0]
    z = 0.0 * (w1 + w2 + v1 + v2)
    a11 = z
    a12 = z
    a13 = z
    a14 = z
    a22 = z
    a23 = z
    a24 = z
    a33 = z
    a34 = z
    a44 = z
    for k in range(xi.shape[0]):
        x = xi[k]
        t1 = np.tanh(w1 * x)
        t2 = np.tanh(w2 * x)
        s1 = 1.0 - t1 * t1
        s2 = 1.0 - t2 * t2
        h = v1 * t1 + v2 * t2 - target(x)
        f1 = v1 * x * s1  # ∂f/∂w1
        f2 = v2 * x * s2  # ∂f/∂w2
        a11 = a11 + f1 * f1 - 2.0 * h * v1 * x * x * s1 * t1
        a12 = a12 + f1 * f2
        a13 = a13 + f1 * t1 + h * x * s1
        a14 = a14 + f1 * t2
        a22 = a22 + f2 * f2 - 2.0 * h * v2 * x * x * s2 * t2
        a23 = a23 + f2 * t1
        a24 = a24 + f2 * t2 + h * x * s2
        a33 = a33 + t1 * t1
        a34 = a34 + t1 * t2
        a44 = a44 + t2 * t2
    c = eta / xi.shape[0]
    return ((1.0 - c * a11, -c * a12, -c * a13, -c * a14),
            (-c * a12, 1.0 - c * a22, -c * a23, -c * a24),
            (-c * a13, -c * a23, 1.0 - c * a33, -c * a34),
            (-c * a14, -c * a24, -c * a34, 1.0 - c * a44))


def fukumizu_amari(eta: float = 0.1, sigma2: float = 1.0, batch: int = 1, common_noise: bool = True):
    """The FA model under SGD as a random dynamical system (Sato et al. 2022, eqs. 4–16).

    Parameters
    ----------
    eta : float
        Learning rate η > 0 (paper: 0.1).
    sigma2 : float
        Input variance σ² ≥ 0: x ~ N(0, σ²) (the control parameter; paper: 0.002 … 1).
    batch : int
        Batch size S ≥ 1 (S = 1: online learning).
    common_noise : bool
        All members share the inputs x_t (default), or draw their own.

    Returns
    -------
    RandomDynamicalSystem
        Variables ``("w1", "w2", "v1", "v2")``; noise :class:`rds.noise.Gaussian` with ξ_t of shape (S,);
        analytic Jacobian. M_wv = {w1 = w2, v1 = v2} (eq. 18) is invariant for every x.

    Examples
    --------
    >>> import numpy as np, rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> fa.variables
    ('w1', 'w2', 'v1', 'v2')
    >>> theta = fa.evolve(np.random.default_rng(0).uniform(-1, 1, (100, 4)), 1000, seed=0)
    >>> theta.shape
    (100, 4)
    """
    eta = positive(eta, "eta")
    system = RandomDynamicalSystem(
        fa_step, noise=Gaussian(sigma2=sigma2, batch=batch), variables=("w1", "w2", "v1", "v2"),
        params=FAParams(eta), jacobian=fa_jacobian, name="fukumizu_amari", common_noise=common_noise,
        attrs={"reference": "Sato, Tsutsui, Fujiwara, Physica D 430 (2022) 133095",
               "equations": "eqs. 4-16 (SGD map), eq. 8 (target T(x) = 2 tanh(x) - tanh(4x))"},
        recipe=(fukumizu_amari, {"eta": eta, "sigma2": float(sigma2), "batch": int(batch)}))
    return system
