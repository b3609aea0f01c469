"""The FA SGD map restricted to the doubly degenerate subspace M_wv (Sato et al. 2022, eqs. 31–35).

On M_wv = {w1 = w2 = w, v1 = v2 = v} the network is f = 2 v tanh(w x) and the SGD step reads (eqs. 31–34)

    (w, v) ← (w, v) + η g(x; w, v),   g = −e · (v x / cosh²(w x), tanh(w x)),   e = 2 v tanh(w x) − T(x),

with T(x) = 2 tanh(x) − tanh(4x) (eq. 8). The Jacobian of g is eq. 35 (symmetric: g = −∇(e²/4)); the Jacobian of
the step is I + η J.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from rds._checks import positive
from rds.models.fukumizu_amari import target
from rds.noise import Gaussian
from rds.system import RandomDynamicalSystem

__all__ = ["fukumizu_amari_reduced", "reduced_step", "reduced_jacobian", "g_jacobian"]

ReducedParams = namedtuple("ReducedParams", ["eta"])


def reduced_step(state, xi, params):
    """One step of eqs. 31–32, averaged over the batch ``xi``. Elementwise."""
    w, v = state
    eta = params[0]
    gw = 0.0 * w
    gv = 0.0 * v
    for k in range(xi.shape[0]):
        x = xi[k]
        th = np.tanh(w * x)
        e = 2.0 * v * th - target(x)
        gw = gw - e * v * x * (1.0 - th * th)
        gv = gv - e * th
    c = eta / xi.shape[0]
    return (w + c * gw, v + c * gv)


def g_jacobian(x, w, v):
    """The Jacobian J(x; w, v) = ∂g/∂(w, v) of the step direction on M_wv (Sato et al. 2022, eq. 35). Elementwise.

    The one home of this formula (:func:`analysis.jacobian_wv` stacks it into matrices). J is symmetric because
    g = −∇(e²/4); the Jacobian of the step map is I + η J. With th = tanh(wx), sech = 1/cosh(wx) (computed from
    e^{−|wx|}, so nothing overflows and sech keeps full relative accuracy where tanh rounds to ±1), T = T(x):

    Parameters
    ----------
    x, w, v : float or array_like
        Input and point (w, v) of M_wv (broadcast together).

    Returns
    -------
    (J11, J12, J22)
        J11 = −2 v x² (T th − 3 v th² + v) sech², J12 = J21 = x (T − 4 v th) sech², J22 = −2 th².

    Examples
    --------
    >>> from rds.models.fukumizu_amari_reduced import g_jacobian
    >>> [round(float(j), 6) for j in g_jacobian(1.0, 0.5, 0.5)]
    [-0.331689, -0.314874, -0.427105]
    """
    th = np.tanh(w * x)
    ez = np.exp(-np.abs(w * x))
    sech = 2.0 * ez / (1.0 + ez * ez)
    T = target(x)
    xs = x * sech
    j11 = -2.0 * v * xs * xs * (T * th - 3.0 * v * th * th + v)
    j12 = xs * sech * (T - 4.0 * v * th)
    j22 = -2.0 * th * th
    return j11, j12, j22


def reduced_jacobian(state, xi, params):
    """Analytic Jacobian I + η ⟨J(x; w, v)⟩ of :func:`reduced_step` (eq. 35). Elementwise."""
    w, v = state
    eta = params[0]
    a11 = 0.0 * (w + v)
    a12 = a11
    a22 = a11
    for k in range(xi.shape[0]):
        j11, j12, j22 = g_jacobian(xi[k], w, v)
        a11 = a11 + j11
        a12 = a12 + j12
        a22 = a22 + j22
    c = eta / xi.shape[0]
    return ((1.0 + c * a11, c * a12), (c * a12, 1.0 + c * a22))


def fukumizu_amari_reduced(eta: float = 0.1, sigma2: float = 1.0, batch: int = 1, common_noise: bool = True):
    """The SGD map on M_wv, variables ``("w", "v")`` (Sato et al. 2022, eqs. 31–32).

    Parameters
    ----------
    eta : float
        Learning rate η > 0.
    sigma2 : float
        Input variance σ² ≥ 0, x ~ N(0, σ²).
    batch : int
        Batch size S ≥ 1 (the paper uses S = 1).
    common_noise : bool
        Shared inputs across members (default) or independent per member.

    Returns
    -------
    RandomDynamicalSystem
        With analytic Jacobian I + η J (eq. 35). It equals the full FA map restricted to M_wv:
        ``fa.apply((w, w, v, v), x) == (w', w', v', v')`` with ``(w', v') = red.apply((w, v), x)``.

    Examples
    --------
    >>> import numpy as np, rds
    >>> red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    >>> red.evolve(np.array([0.5, 0.5]), 10).shape
    (2,)
    """
    eta = positive(eta, "eta")
    system = RandomDynamicalSystem(
        reduced_step, noise=Gaussian(sigma2=sigma2, batch=batch), variables=("w", "v"), params=ReducedParams(eta),
        jacobian=reduced_jacobian, name="fukumizu_amari_reduced", common_noise=common_noise,
        attrs={"reference": "Sato, Tsutsui, Fujiwara, Physica D 430 (2022) 133095",
               "equations": "eqs. 31-34 (map on M_wv), eq. 35 (Jacobian of g)"},
        recipe=(fukumizu_amari_reduced, {"eta": eta, "sigma2": float(sigma2), "batch": int(batch)}))
    return system
