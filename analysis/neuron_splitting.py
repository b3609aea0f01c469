"""Neuron splitting, stationary plateaus and the inner Hessian.

Reference: "A geometric characterization of the stationary plateau for two-layer neural networks" (the
stationary-plateau paper below; equation, definition and theorem numbers are its own).

A one-hidden-layer network with ``d`` inputs and ``N`` hidden neurons,

    f(x; W, v) = sum_j v_j sigma(w_j . x),        W: (N, d), v: (N,),

is trained on a fixed dataset ``X`` (n, d), ``y`` (n,) with the empirical loss
(eq. 2 of the stationary-plateau paper, with the 1/(2n) normalisation used throughout this module)

    L(W, v) = (1 / 2n) sum_k (f(x_k) - y_k)^2,      r_k = f(x_k) - y_k  (the residual).

Splitting neuron ``j`` with coefficients beta = (beta_0, ..., beta_s), sum beta_i = 1 (Definition 1)
replaces it by s + 1 daughters that copy w_j and carry output weights beta_i v_j. The function and
the loss are unchanged and the point is stationary iff its split is (Proposition 1), so a stationary
point becomes an affine plateau of stationary points of the wider net.

The inner Hessian of neuron j (eq. 11; the second term of the partial Hessian d^2 L / dw_j^2, App. B) is

    H_j = (1/n) sum_k r_k v_j sigma''(w_j . x_k) x_k x_k^T           (d, d).

Everything here is analytic (exact first and second derivatives; third derivatives of the activation
are used for the locally-effective test of Theorem 3). Finite differences appear only in the tests.

What the numerics establish about the statements of the paper (all checked against the
exact Hessian of the wide net and explicit descent paths; see ``tests/test_neuron_splitting.py``):

* Sign convention: along the split direction delta_a = beta_b u, delta_b = -beta_a u (all other
  weights fixed) the loss changes by ``+1/2 t^2 beta_a beta_b (beta_a + beta_b) u^T H_j u + O(t^3)``;
  for two daughters beta_a + beta_b = 1, so the change is ``+1/2 beta_0 beta_1 u^T H_j u`` with
  r = f - y and L = (1/2n) sum r^2. The sign is as stated in the paper; the factor is 1/2 (and with more
  than two daughters the extra factor beta_a + beta_b matters: it can be negative).
  More generally, at a plateau point write the daughters' input-weight perturbations as
  delta_i = dbar + e_i with dbar = sum_i beta_i delta_i (so sum_i beta_i e_i = 0) and let
  eps_i be their output-weight perturbations; the wide Hessian's quadratic form is exactly
  ``Q_wide = Q_narrow(dbar, sum_i eps_i, other neurons) + sum_i beta_i e_i^T H_j e_i``.
* Theorem 1 needs *strict* signs. PD: local minimum iff every beta_i > 0 (a weak reading "beta_i >= 0" fails:
  a zero coefficient gives a saddle, detectable only at third order: the Hessian is then positive
  semi-definite). ND: local minimum iff exactly one beta_i > 0 *and all others < 0* (the weak reading
  "exactly one beta_i > 0" also admits zeros, which are saddles).
* Theorem 2's surely-saddle region (any H_j != 0) is the complement of both minimum regions:
  beta with some beta_i <= 0 and at least two beta_i >= 0. For two daughters it is only the two
  points beta = (1, 0) and (0, 1); it has positive measure from three daughters on (e.g.
  beta = (0.7, 0.5, -0.2)).
* Three or more daughters: with H_j PD or ND the region boundaries are exactly as in Theorem 1
  (the restricted form sum_i beta_i c_i^2 on {beta . c = 0} has inertia (p - 1, q), p / q the numbers
  of positive / negative beta_i), so the same sign rules hold for every s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy import optimize

import rds
from rds.labels import annotate
from rds.models import two_layer
from rds.models.two_layer import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "NumericalClassification",
    "PlateauClassification",
    "classify_plateau",
    "find_local_minimum",
    "inner_hessian",
    "numerical_classification",
    "plateau_map",
    "split_neuron",
    "two_layer_gradient",
    "two_layer_hessian",
    "two_layer_loss",
    "unsplit_neuron",
]

KIND_CODES = {"local_min": 0, "saddle": 1, "undetermined": 2}
REGION_CODES = {"all_positive": 0, "one_positive_rest_negative": 1, "surely_saddle": 2}

# The network, its loss (normalization "half_mean": L = (1/2n) sum r^2, eq. 2), gradient, Hessian and
# activations live in rds.models.two_layer; this module adds splitting and the plateau classification.
_NORM = "half_mean"
_activation = two_layer.activation_function


def _as_net(W, v, name_W="W", name_v="v"):
    if np.ndim(W) != 2:
        raise ValueError(f"{name_W}: must be a 2-d array (N, d) of input weights, got shape {np.shape(W)}")
    if np.ndim(v) != 1:
        raise ValueError(f"{name_v}: must be a 1-d array (N,) of output weights, got shape {np.shape(v)}")
    return two_layer.check_network(W, v, name_W, name_v)


_as_data = two_layer.check_data


def _as_index(j, N):
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
        raise TypeError(f"j: must be an integer neuron index, got {type(j).__name__}")
    if not 0 <= j < N:
        raise ValueError(f"j: neuron index {j} out of range for N = {N} neurons (0 <= j < N)")
    return int(j)


def _as_beta(beta, atol=1e-10):
    beta = np.asarray(beta, dtype=float)
    if beta.ndim != 1 or beta.shape[0] < 2:
        raise ValueError(
            f"beta: must be a 1-d array of at least 2 splitting coefficients, got shape {beta.shape}"
        )
    if not np.all(np.isfinite(beta)):
        raise ValueError("beta: splitting coefficients must be finite")
    total = float(np.sum(beta))
    if abs(total - 1.0) > atol * max(1.0, float(np.sum(np.abs(beta)))):
        raise ValueError(f"beta: splitting coefficients must sum to 1 (Definition 1), got sum {total!r}")
    return beta


# --------------------------------------------------------------------------------------------------
# the network: loss, gradient, Hessian (analytic), from rds.models.two_layer with L = (1/2n) sum r^2
# --------------------------------------------------------------------------------------------------


def _loss(W, v, X, y, act):
    return float(two_layer.loss(W, v, X, y, act, _NORM))


def two_layer_loss(W, v, X, y, activation="tanh"):
    """Empirical loss of the one-hidden-layer net (eq. 2 / 4).

    ``L = (1 / 2n) sum_k (f(x_k) - y_k)^2`` with ``f(x) = sum_j v_j sigma(w_j . x)``:
    :func:`rds.models.two_layer.loss` with ``normalization="half_mean"``.

    Parameters
    ----------
    W : array (N, d)
        Input weights, one row per hidden neuron.
    v : array (N,)
        Output weights.
    X : array (n, d)
        Inputs, one row per sample.
    y : array (n,)
        Targets.
    activation : {"tanh", "erf", "softplus"} or callable
        ``act(z, order)`` returning the ``order``-th derivative of sigma.

    Returns
    -------
    float
        The loss (dimensionless, same units as y squared).

    Examples
    --------
    >>> import numpy as np
    >>> two_layer_loss(np.zeros((1, 2)), np.ones(1), np.ones((3, 2)), np.ones(3))
    0.5
    """
    W, v = _as_net(W, v)
    X, y = _as_data(X, y, W.shape[1])
    return _loss(W, v, X, y, _activation(activation))


def _loss_change(W, v, dW, dv, X, y, act):
    """L(W + dW, v + dv) - L(W, v), computed without cancellation of the two losses."""
    f0 = two_layer.forward(W, v, X, act)
    df = two_layer.forward(W + dW, v + dv, X, act) - f0
    return float(0.5 * np.mean(df * (df + 2.0 * (f0 - y))))


def _grad(W, v, X, y, act):
    return two_layer.gradient(W, v, X, y, act, _NORM)


def two_layer_gradient(W, v, X, y, activation="tanh"):
    """Analytic gradient of :func:`two_layer_loss` (eq. 30); :func:`rds.models.two_layer.gradient`.

    ``dL/dw_j = (1/n) sum_k r_k v_j sigma'(w_j . x_k) x_k``, ``dL/dv_j = (1/n) sum_k r_k sigma(w_j . x_k)``.

    Parameters
    ----------
    W : array (N, d)
    v : array (N,)
    X : array (n, d)
    y : array (n,)
    activation : str or callable

    Returns
    -------
    gW : array (N, d)
    gv : array (N,)

    Examples
    --------
    >>> import numpy as np
    >>> gW, gv = two_layer_gradient(np.zeros((1, 2)), np.ones(1), np.ones((3, 2)), np.ones(3))
    >>> gW.shape, gv.shape
    ((1, 2), (1,))
    """
    W, v = _as_net(W, v)
    X, y = _as_data(X, y, W.shape[1])
    return _grad(W, v, X, y, _activation(activation))


def _hessian(W, v, X, y, act):
    return two_layer.hessian(W, v, X, y, act, _NORM)


def two_layer_hessian(W, v, X, y, activation="tanh"):
    """Exact Hessian of :func:`two_layer_loss` with respect to all weights (eq. 12, App. B).

    ``Hess = (1/n) J^T J + (1/n) sum_k r_k Hess f(x_k)``; the (w_j, w_j) block of the second term is the
    inner Hessian ``H_j`` of eq. 11. :func:`rds.models.two_layer.hessian` with ``normalization="half_mean"``.

    Parameters
    ----------
    W : array (N, d)
    v : array (N,)
    X : array (n, d)
    y : array (n,)
    activation : str or callable

    Returns
    -------
    array (N*d + N, N*d + N)
        Parameters ordered as ``concatenate([W.ravel(), v])`` (W row-major, then v).

    Examples
    --------
    >>> import numpy as np
    >>> two_layer_hessian(np.zeros((2, 3)), np.ones(2), np.ones((4, 3)), np.ones(4)).shape
    (8, 8)
    """
    W, v = _as_net(W, v)
    X, y = _as_data(X, y, W.shape[1])
    return _hessian(W, v, X, y, _activation(activation))


_pack = two_layer.pack
_unpack = two_layer.unpack



# --------------------------------------------------------------------------------------------------
# Definition 1: splitting and its inverse
# --------------------------------------------------------------------------------------------------


def split_neuron(W, v, j, beta):
    """Split hidden neuron ``j`` into ``len(beta)`` daughters (Definition 1, eq. 8 of the stationary-plateau paper).

    The daughters copy the input weights ``w_j`` (eq. 8b) and take output weights ``beta_i v_j``
    (eq. 8c); the other neurons are unchanged (eq. 8a). Daughter 0 takes the parent's place ``j``,
    daughters 1..s follow it at ``j + 1 .. j + s`` (the paper puts the parent last; only the order
    differs). The function, the loss, and stationarity are preserved (Proposition 1).

    Parameters
    ----------
    W : array (N, d)
        Input weights of the narrow net.
    v : array (N,)
        Output weights of the narrow net.
    j : int
        Index of the parent neuron, ``0 <= j < N``.
    beta : array (s + 1,)
        Splitting coefficients, ``s >= 1``, summing to 1.

    Returns
    -------
    W_wide : array (N + s, d)
    v_wide : array (N + s,)

    Raises
    ------
    ValueError
        If shapes disagree, ``j`` is out of range, or ``sum(beta) != 1``.

    Examples
    --------
    >>> import numpy as np
    >>> Ww, vw = split_neuron(np.array([[1.0, 2.0]]), np.array([3.0]), 0, [0.25, 0.75])
    >>> Ww.tolist(), vw.tolist()
    ([[1.0, 2.0], [1.0, 2.0]], [0.75, 2.25])
    """
    W, v = _as_net(W, v)
    j = _as_index(j, W.shape[0])
    beta = _as_beta(beta)
    k = beta.shape[0]
    W_wide = np.concatenate([W[:j], np.repeat(W[j : j + 1], k, axis=0), W[j + 1 :]], axis=0)
    v_wide = np.concatenate([v[:j], beta * v[j], v[j + 1 :]])
    return W_wide, v_wide


def unsplit_neuron(W_wide, v_wide, j, daughters, atol=0.0):
    """Inverse of :func:`split_neuron`: check that a wide net is a split and recover the narrow net.

    Parameters
    ----------
    W_wide : array (N + s, d)
    v_wide : array (N + s,)
    j : int
        Index of the first daughter (the parent's index in the narrow net).
    daughters : int
        Number of daughters ``s + 1 >= 2``, at indices ``j .. j + s``.
    atol : float
        Tolerance on the equality of the daughters' input weights (default: exact).

    Returns
    -------
    W : array (N, d)
    v : array (N,)
        ``v[j]`` is the sum of the daughters' output weights.
    beta : array (s + 1,)
        Coefficients ``v_daughter / v[j]``; all NaN when ``v[j] == 0`` (any beta then splits it).

    Raises
    ------
    ValueError
        If the daughters do not share their input weights (not a split, eq. 8b) or indices are bad.

    Examples
    --------
    >>> import numpy as np
    >>> W, v, beta = unsplit_neuron(np.ones((2, 1)), np.array([1.0, 3.0]), 0, 2)
    >>> v.tolist(), beta.tolist()
    ([4.0], [0.25, 0.75])
    """
    W_wide, v_wide = _as_net(W_wide, v_wide, "W_wide", "v_wide")
    if isinstance(daughters, bool) or not isinstance(daughters, (int, np.integer)) or daughters < 2:
        raise ValueError(f"daughters: must be an integer >= 2, got {daughters!r}")
    M = W_wide.shape[0]
    if M - daughters + 1 < 1:
        raise ValueError(f"daughters: {daughters} daughters do not fit in a net of {M} neurons")
    j = _as_index(j, M - daughters + 1)
    block = W_wide[j : j + daughters]
    if np.max(np.abs(block - block[0])) > atol:
        raise ValueError(
            f"W_wide: rows {j}..{j + daughters - 1} differ, so they are not daughters of one split "
            "neuron (Definition 1, eq. 8b)"
        )
    vj = float(np.sum(v_wide[j : j + daughters]))
    W = np.concatenate([W_wide[:j], block[:1], W_wide[j + daughters :]], axis=0)
    v = np.concatenate([v_wide[:j], [vj], v_wide[j + daughters :]])
    beta = v_wide[j : j + daughters] / vj if vj != 0.0 else np.full(daughters, np.nan)
    return W, v, beta


# --------------------------------------------------------------------------------------------------
# eq. 11: the inner Hessian
# --------------------------------------------------------------------------------------------------


def _inner(W, v, X, y, j, act, order=2):
    r = two_layer.forward(W, v, X, act) - y
    w = r * v[j] * act(X @ W[j], order) / X.shape[0]
    if order == 2:
        return (w[:, None] * X).T @ X
    return np.einsum("k,ka,kb,kc->abc", w, X, X, X)


def inner_hessian(W, v, X, y, j, activation="tanh"):
    """Inner Hessian ``H_j`` of hidden neuron ``j`` (eq. 11 of the stationary-plateau paper).

    ``H_j = (1/n) sum_k r_k v_j sigma''(w_j . x_k) x_k x_k^T`` with residual ``r_k = f(x_k) - y_k``,
    i.e. the second term of the partial Hessian ``d^2 L / dw_j^2`` (eq. 12, App. B) for the loss
    normalised as ``L = (1/2n) sum_k r_k^2``. (With ``L = (1/2) sum r^2`` multiply by n.)

    Parameters
    ----------
    W : array (N, d)
    v : array (N,)
    X : array (n, d)
    y : array (n,)
    j : int
        Neuron index, ``0 <= j < N``.
    activation : {"tanh", "erf", "softplus"} or callable

    Returns
    -------
    array (d, d)
        Symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> inner_hessian(np.array([[0.5, -0.5]]), np.array([1.0]), X, np.zeros(2), 0).shape
    (2, 2)
    """
    W, v = _as_net(W, v)
    X, y = _as_data(X, y, W.shape[1])
    j = _as_index(j, W.shape[0])
    H = _inner(W, v, X, y, j, _activation(activation))
    return 0.5 * (H + H.T)


# --------------------------------------------------------------------------------------------------
# Theorems 1-4: classification
# --------------------------------------------------------------------------------------------------


class NumericalClassification(NamedTuple):
    """Result of :func:`numerical_classification`: the verdict and its evidence."""

    kind: str
    info: dict


class PlateauClassification(str):
    """Result of :func:`classify_plateau`.

    The result *is* its ``kind`` string (a ``str`` subclass: ``classify_plateau(...) == "saddle"``, usable as a
    dict key or in a ``match``) and carries the evidence as attributes; two results are equal when their kinds
    are (compare ``.theorem``, ``.region``, … for more).

    Parameters
    ----------
    kind, theorem, region, definiteness, narrow_kind : str
    inner_eigenvalues : ndarray, shape (d,)
    numeric_kind : str
    hessian_eigenvalues : ndarray, shape (P,)
    transverse_eigenvalues : ndarray, shape (P - s,)
    descent : dict, optional
    W_wide, v_wide : ndarray, shape (N + s, d) and (N + s,), optional
        Stored unchanged as the attributes below (normally built by :func:`classify_plateau`, not by hand).

    Attributes
    ----------
    kind : str
        ``"local_min"``, ``"saddle"`` or (only when neither the theorems nor the numerics decide)
        ``"undetermined"``.
    theorem : str
        Which result decided it (e.g. ``"Theorem 1.1 (H_j PD, all beta_i > 0)"``).
    region : str
        ``"all_positive"`` (every beta_i > 0), ``"one_positive_rest_negative"`` or ``"surely_saddle"``
        (the complement of both, Theorem 2's region).
    definiteness : str
        Of the parent's inner Hessian: ``"PD"``, ``"ND"``, ``"ID"``, ``"PSD"``, ``"NSD"`` or ``"zero"``.
    narrow_kind : str
        Type of the narrow stationary point (``"local_min"``, ``"saddle"``, ``"degenerate"``, ``"zero_loss"``).
    inner_eigenvalues : array (d,)
        Eigenvalues of ``H_j`` (ascending).
    numeric_kind : str
        Independent verdict from the wide net's exact Hessian and descent paths
        (:func:`numerical_classification`).
    hessian_eigenvalues : array (P,)
        Spectrum of the wide net's Hessian, ``P = (N + s)(d + 1)`` (ascending).
    transverse_eigenvalues : array (P - s,)
        Spectrum of the wide Hessian on the complement of the plateau's tangent space.
    descent : dict
        For saddles: ``W1`` (N + s, d), ``v1`` (N + s,), ``W2``, ``v2`` (second-order terms, zero for a
        straight line), ``step`` t and ``loss_change`` ``L(theta(t)) - L(theta) < 0`` along
        ``theta(t) = theta + t (W1, v1) + t^2 (W2, v2)``, and ``predicted`` (the leading-order change).
        Empty for local minima.
    W_wide, v_wide : arrays (N + s, d), (N + s,)
        The plateau point.

    Examples
    --------
    >>> import numpy as np
    >>> c = PlateauClassification(kind="saddle", theorem="Theorem 2", region="surely_saddle", definiteness="PD",
    ...                           narrow_kind="local_min", inner_eigenvalues=np.array([0.1, 0.4]),
    ...                           numeric_kind="saddle", hessian_eigenvalues=np.array([-0.2, 0.0, 0.3]),
    ...                           transverse_eigenvalues=np.array([-0.2, 0.3]))
    >>> c == "saddle", c == "local_min", str(c)
    (True, False, 'saddle')
    """


    _FIELDS = ("theorem", "region", "definiteness", "narrow_kind", "inner_eigenvalues", "numeric_kind",
               "hessian_eigenvalues", "transverse_eigenvalues", "descent", "W_wide", "v_wide")

    def __new__(cls, kind, theorem, region, definiteness, narrow_kind, inner_eigenvalues, numeric_kind,
                hessian_eigenvalues, transverse_eigenvalues, descent=None, W_wide=None, v_wide=None):
        obj = super().__new__(cls, kind)
        values = (theorem, region, definiteness, narrow_kind, inner_eigenvalues, numeric_kind, hessian_eigenvalues,
                  transverse_eigenvalues, {} if descent is None else descent, W_wide, v_wide)
        for name, value in zip(cls._FIELDS, values, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    @property
    def kind(self) -> str:
        """``"local_min"``, ``"saddle"`` or ``"undetermined"`` (a plain ``str``)."""
        return str.__str__(self)

    def __str__(self):
        return self.kind

    def __repr__(self):
        return f"PlateauClassification({self.kind!r}, theorem={self.theorem!r}, region={self.region!r})"

    def __reduce__(self):
        return (_plateau_classification, (self.kind, {k: getattr(self, k) for k in self._FIELDS}))


def _plateau_classification(kind, fields):
    return PlateauClassification(kind, **fields)


def _beta_region(beta, beta_tol):
    pos = beta > beta_tol
    neg = beta < -beta_tol
    if np.all(pos):
        return "all_positive"
    if np.sum(pos) == 1 and np.sum(neg) == beta.size - 1:
        return "one_positive_rest_negative"
    return "surely_saddle"


def _definiteness(lam, tol):
    pos, neg = lam[-1] > tol, lam[0] < -tol
    if pos and neg:
        return "ID"
    if pos:
        return "PD" if lam[0] > tol else "PSD"
    if neg:
        return "ND" if lam[-1] < -tol else "NSD"
    return "zero"


def _scale(M):
    return max(1.0, float(np.max(np.abs(M)))) if M.size else 1.0


def _narrow_kind(W, v, X, y, act, tol):
    if _loss(W, v, X, y, act) <= tol**2:
        return "zero_loss", None
    Hn = _hessian(W, v, X, y, act)
    lam, U = np.linalg.eigh(Hn)
    t = tol * _scale(Hn)
    if lam[0] < -t:
        return "saddle", U[:, 0]
    if lam[0] > t:
        return "local_min", None
    return "degenerate", None


def _verify_path(W, v, X, y, act, W1, v1, W2, v2, predicted_coef, power):
    """Find t with L(theta + t d1 + t^2 d2) < L(theta); return (t, change)."""
    L0 = _loss(W, v, X, y, act)
    noise = 1e-13 * max(L0, 1e-300)
    t = 1.0
    for _ in range(60):
        dL = _loss_change(W, v, t * W1 + t * t * W2, t * v1 + t * t * v2, X, y, act)
        pred = predicted_coef * t**power
        if dL < -noise and abs(dL - pred) <= 0.25 * abs(pred):
            return t, dL
        t *= 0.5
    return float("nan"), float("nan")


def _descent_saddle_hessian(W, v, X, y, act, direction, lam):
    N, d = W.shape
    W1, v1 = _unpack(direction / np.linalg.norm(direction), N, d)
    zW, zv = np.zeros_like(W), np.zeros_like(v)
    t, dL = _verify_path(W, v, X, y, act, W1, v1, zW, zv, 0.5 * lam, 2)
    return {"W1": W1, "v1": v1, "W2": zW, "v2": zv, "step": t, "loss_change": dL,
            "predicted": 0.5 * lam * t * t}


def _descent_dead_daughter(W, v, X, y, act, i, tol):
    """Third/fourth-order descent at a neuron with zero output weight (beta_i = 0, Lemma 4 Part II).

    With g(w) = (1/n) sum r_k sigma(w . x_k) (g = 0, grad g = 0 at a stationary point) and
    G = Hess g = (1/n) sum r sigma'' x x^T != 0, take unit u with kappa = u^T G u != 0 and move
    w_i -> w_i + t u, v_i -> -c sign(kappa) t^2, c = |kappa| / (2 m), m = (1/n) sum sigma(w_i . x)^2:
    L changes by -kappa^2 t^4 / (8 m) + O(t^5).
    """
    N, d = W.shape
    r = two_layer.forward(W, v, X, act) - y
    z = X @ W[i]
    n = X.shape[0]
    G = ((r * act(z, 2) / n)[:, None] * X).T @ X
    G = 0.5 * (G + G.T)
    lam, U = np.linalg.eigh(G)
    k = int(np.argmax(np.abs(lam)))
    kappa = float(lam[k])
    m = float(np.mean(act(z, 0) ** 2))
    if abs(kappa) <= tol * _scale(G) or m == 0.0:
        return None
    W1 = np.zeros_like(W)
    W1[i] = U[:, k]
    v2 = np.zeros_like(v)
    v2[i] = -np.sign(kappa) * abs(kappa) / (2.0 * m)
    coef = -kappa * kappa / (8.0 * m)
    t, dL = _verify_path(W, v, X, y, act, W1, np.zeros_like(v), np.zeros_like(W), v2, coef, 4)
    return {"W1": W1, "v1": np.zeros_like(v), "W2": np.zeros_like(W), "v2": v2, "step": t,
            "loss_change": dL, "predicted": coef * t**4}


def _plateau_tangent(N_wide, d, j, daughters):
    """Orthonormal basis (P, s) of the plateau's tangent: daughter output weights with zero sum."""
    P = N_wide * (d + 1)
    B = np.zeros((P, daughters - 1))
    for a in range(daughters - 1):
        B[N_wide * d + j + a, a] = 1.0
        B[N_wide * d + j + a + 1, a] = -1.0
    Q, _ = np.linalg.qr(B)
    return Q


def numerical_classification(W_wide, v_wide, X, y, j=None, daughters=None, activation="tanh", tol=1e-7):
    """Classify a stationary point of the wide net from its exact Hessian and explicit descent paths.

    Independent of the theorems: a negative Hessian eigenvalue gives a saddle (the eigenvector is a
    verified descent direction); a Hessian that is positive definite transverse to the plateau's
    tangent (daughters' output weights with zero sum, ``daughters - 1`` directions) gives a local
    minimum (the plateau is a manifold of stationary points with constant loss, so this is the
    Morse-Bott second-order sufficient condition); a neuron with zero output weight and a non-zero
    ``(1/n) sum r sigma'' x x^T`` gives a saddle by a verified fourth-order descent path.

    Parameters
    ----------
    W_wide : array (M, d)
    v_wide : array (M,)
    X : array (n, d)
    y : array (n,)
    j, daughters : int or None
        Position of the first daughter and the number of daughters; ``None`` means no plateau
        (a point whose Hessian is PD is then a strict local minimum).
    activation : str or callable
    tol : float
        Relative tolerance for zero eigenvalues (scaled by ``max(1, max |Hessian entry|)``).

    Returns
    -------
    NumericalClassification
        A named tuple ``(kind, info)``: ``kind`` is ``"local_min"``, ``"saddle"`` or ``"undetermined"``;
        ``info`` a dict with ``hessian_eigenvalues`` (P,), ``transverse_eigenvalues`` (P - s,), ``descent``
        (dict as in :class:`PlateauClassification`, empty for minima).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0], [2.0]]); y = np.tanh(X[:, 0])      # fitted exactly by W = [[1]], v = [1]
    >>> numerical_classification(np.ones((1, 1)), np.ones(1), X, y)[0]
    'local_min'
    >>> numerical_classification(np.zeros((1, 1)), np.zeros(1), X, y)[0]   # W = 0, v = 0: a saddle
    'saddle'
    """
    W, v = _as_net(W_wide, v_wide, "W_wide", "v_wide")
    X, y = _as_data(X, y, W.shape[1])
    act = _activation(activation)
    M, d = W.shape
    Hs = _hessian(W, v, X, y, act)
    lam, U = np.linalg.eigh(Hs)
    if daughters is not None and daughters >= 2:
        T = _plateau_tangent(M, d, j, daughters)
        full = np.linalg.qr(np.concatenate([T, np.eye(Hs.shape[0])], axis=1))[0]
        C = full[:, T.shape[1] :]
        lam_t = np.linalg.eigvalsh(C.T @ Hs @ C)
    else:
        lam_t = lam
    t = tol * _scale(Hs)
    info = {"hessian_eigenvalues": lam, "transverse_eigenvalues": lam_t, "descent": {}}
    if lam[0] < -t:
        info["descent"] = _descent_saddle_hessian(W, v, X, y, act, U[:, 0], lam[0])
        return NumericalClassification("saddle", info)
    if lam_t[0] > t:
        return NumericalClassification("local_min", info)
    for i in np.flatnonzero(np.abs(v) <= tol * max(1.0, float(np.max(np.abs(v))))):
        desc = _descent_dead_daughter(W, v, X, y, act, int(i), tol)
        if desc is not None and desc["loss_change"] < 0:
            info["descent"] = desc
            return NumericalClassification("saddle", info)
    return NumericalClassification("undetermined", info)


def _split_direction(beta, lam_sign, beta_tol):
    """Coefficients c (s+1,) with beta . c = 0 and sign(lam) * sum beta_i c_i^2 < 0, or None."""
    k = beta.size
    # orthonormal basis of {c : beta . c = 0}
    Q = np.linalg.qr(np.concatenate([beta[:, None], np.eye(k)], axis=1))[0][:, 1:k]
    R = Q.T @ np.diag(beta) @ Q
    mu, V = np.linalg.eigh(0.5 * (R + R.T))
    idx = 0 if lam_sign > 0 else -1
    if lam_sign * mu[idx] >= -beta_tol:
        return None, 0.0
    c = Q @ V[:, idx]
    return c, float(mu[idx])


def classify_plateau(W, v, X, y, j, beta, activation="tanh", *, narrow="auto", tol=1e-7, gtol=1e-7,
                     beta_tol=1e-9):
    """Classify the plateau point obtained by splitting neuron ``j`` of a stationary point with ``beta``.

    Decides "local_min" or "saddle" by the theorems of the stationary-plateau paper and attaches the evidence:

    * narrow point a saddle -> every plateau point is a saddle (Theorem 4); descent direction lifted
      from the narrow net's negative-curvature direction;
    * narrow point a local minimum with loss != 0, by the definiteness of ``H_j`` (eq. 11):
      PD -> local min iff all beta_i > 0 (Theorem 1.1); ND -> local min iff exactly one beta_i > 0 and
      all others < 0 (Theorem 1.2); indefinite -> saddle for every beta (Theorem 1.3); any
      ``H_j != 0`` -> saddle on the surely-saddle region "some beta_i <= 0 and at least two beta_i >= 0"
      (Theorem 2); ``H_j = 0``: locally constant parent -> local min (Theorem 3.2), locally effective
      parent -> a saddle exists for some beta (Theorem 3.1) and this beta is decided numerically;
      PSD / NSD singular ``H_j`` on the minimum-candidate region is decided numerically.
    * zero loss -> every plateau point is a global minimum.

    Saddle evidence is an explicit path ``theta(t) = theta + t d1 + t^2 d2`` that lowers the loss
    (checked by evaluating the loss): ``d1 = (c_i u)`` on the daughters' input weights, with u an
    eigenvector of ``H_j`` and ``beta . c = 0``, ``sign(lambda) sum beta_i c_i^2 < 0`` (Lemma 4, Part I),
    or, when some beta_i = 0, the fourth-order path of Lemma 4 Part II's boundary case. Minimum
    evidence is the wide net's exact Hessian spectrum (PSD, with exactly ``s`` zero eigenvalues along
    the plateau). Sum of squares normalisation: ``L = (1/2n) sum (f - y)^2``.

    Parameters
    ----------
    W : array (N, d)
        Input weights of the narrow net; ``(W, v)`` must be stationary (gradient norm <= gtol).
    v : array (N,)
    X : array (n, d)
    y : array (n,)
    j : int
        Parent neuron, ``0 <= j < N``.
    beta : array (s + 1,)
        Splitting coefficients, sum 1.
    activation : {"tanh", "erf", "softplus"} or callable
    narrow : {"auto", "local_min", "saddle"}
        Type of the narrow point; "auto" reads it from the narrow Hessian (a degenerate Hessian then
        leaves the result to the numerics).
    tol : float
        Relative tolerance for zero eigenvalues.
    gtol : float
        Stationarity tolerance on the narrow gradient's max-norm.
    beta_tol : float
        Coefficients with ``|beta_i| <= beta_tol`` count as zero (plateau boundaries).

    Returns
    -------
    PlateauClassification
        ``.kind`` is ``"local_min"`` or ``"saddle"`` (``"undetermined"`` only if neither the theorems
        nor the numerics decide); the result is that string, with the evidence as attributes.

    Raises
    ------
    ValueError
        Bad shapes, ``j`` out of range, ``sum(beta) != 1``, unknown option, or a non-stationary point.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 2)); y = np.tanh(X @ [1.0, -1.0]) + 0.5 * np.tanh(X @ [0.5, 1.0])
    >>> W, v = find_local_minimum(X, y, hidden=1, seed=0)
    >>> c = classify_plateau(W, v, X, y, 0, [0.5, 0.5])
    >>> c.kind in ("local_min", "saddle")
    True
    """
    p = _prepare_plateau(W, v, X, y, j, beta, _activation(activation), narrow=narrow, tol=tol, gtol=gtol,
                         beta_tol=beta_tol)
    num_kind, info = numerical_classification(p.Ww, p.vw, p.X, p.y, p.j, p.beta.size, p.act, tol)
    kind, theorem = _theorem_verdict(p, num_kind)
    return PlateauClassification(
        kind=kind, theorem=theorem, region=p.region, definiteness=p.definiteness, narrow_kind=p.nkind,
        inner_eigenvalues=p.lamH, numeric_kind=num_kind, hessian_eigenvalues=info["hessian_eigenvalues"],
        transverse_eigenvalues=info["transverse_eigenvalues"], descent=_saddle_evidence(p, kind, info),
        W_wide=p.Ww, v_wide=p.vw,
    )


@dataclass
class _Plateau:
    """A split stationary point and what the theorems need about it (built by :func:`_prepare_plateau`)."""

    W: np.ndarray
    v: np.ndarray
    X: np.ndarray
    y: np.ndarray
    j: int
    beta: np.ndarray
    act: Callable
    tol: float
    Ww: np.ndarray             # the wide net
    vw: np.ndarray
    H: np.ndarray              # inner Hessian H_j (eq. 11), its spectrum and eigenvectors
    lamH: np.ndarray
    UH: np.ndarray
    Hn: np.ndarray             # the narrow Hessian (sets the eigenvalue scale htol)
    htol: float
    definiteness: str
    region: str
    nkind: str                 # type of the narrow point and, for a saddle, its negative-curvature direction
    ndir: np.ndarray | None
    zero: np.ndarray           # daughters with beta_i = 0


def _prepare_plateau(W, v, X, y, j, beta, act, *, narrow, tol, gtol, beta_tol):
    W, v = _as_net(W, v)
    X, y = _as_data(X, y, W.shape[1])
    j = _as_index(j, W.shape[0])
    beta = _as_beta(beta)
    if narrow not in ("auto", "local_min", "saddle"):
        raise ValueError(f"narrow: must be 'auto', 'local_min' or 'saddle', got {narrow!r}")
    gW, gv = _grad(W, v, X, y, act)
    gnorm = max(float(np.max(np.abs(gW))), float(np.max(np.abs(gv))))
    if gnorm > gtol:
        raise ValueError(
            f"W, v: not a stationary point (max |grad L| = {gnorm:.3g} > gtol = {gtol:.3g}); "
            "the theorems of the stationary-plateau paper classify splits of stationary points only"
        )
    Ww, vw = split_neuron(W, v, j, beta)
    H = _inner(W, v, X, y, j, act)
    H = 0.5 * (H + H.T)
    lamH, UH = np.linalg.eigh(H)
    Hn = _hessian(W, v, X, y, act)   # eigenvalue scale: the narrow Hessian sets it, H_j is one of its terms
    htol = tol * _scale(Hn)
    nkind, ndir = _narrow_kind(W, v, X, y, act, tol)
    if narrow != "auto" and nkind != "zero_loss":
        nkind = narrow
    return _Plateau(W, v, X, y, j, beta, act, tol, Ww, vw, H, lamH, UH, Hn, htol, _definiteness(lamH, htol),
                    _beta_region(beta, beta_tol), nkind, ndir, np.abs(beta) <= beta_tol)


def _theorem_verdict(p, num_kind):
    """(kind, theorem) by Theorems 1-4; ``num_kind`` (the numerical verdict) where the theorems are silent."""
    if p.nkind == "zero_loss":
        return "local_min", "zero loss: every plateau point is a global minimum"
    if p.nkind == "saddle":
        return "saddle", "Theorem 4 (splitting a saddle gives saddles)"
    if p.nkind != "local_min":
        return num_kind, "numerical (narrow point degenerate; pass narrow= to apply the theorems)"
    d, region = p.definiteness, p.region
    in_min_region = {"PD": region == "all_positive", "ND": region == "one_positive_rest_negative",
                     "PSD": region == "all_positive", "NSD": region == "one_positive_rest_negative"}
    if d in ("PD", "ND", "ID"):
        label = {"PD": "1.1", "ND": "1.2", "ID": "1.3"}[d]
        kind = "local_min" if d != "ID" and in_min_region[d] else "saddle"
        return kind, f"Theorem {label} (H_j {d}, beta in {region})"
    if d in ("PSD", "NSD"):
        if in_min_region[d]:
            return num_kind, f"numerical (H_j {d} singular: Theorems 1-2 silent)"
        return "saddle", f"Theorem 2 / Lemma 4 (H_j {d}, beta in {region})"
    # H_j = 0: Theorem 3
    if not np.any(p.X):
        return "local_min", "Theorem 3.2 (parent locally constant)"
    T3 = _inner(p.W, p.v, p.X, p.y, p.j, p.act, order=3)
    effective = np.max(np.abs(T3)) > p.htol or np.max(np.abs(p.H)) > p.htol
    label = "Theorem 3.1 (locally effective: a saddle exists for some beta)" if effective \
        else "H_j = 0, third derivative 0"
    return num_kind, f"numerical ({label})"


def _saddle_evidence(p, kind, info):
    """A verified descent path for a saddle (empty for a minimum); the numerical one when no theorem gives one."""
    if kind != "saddle":
        return {}
    descent = {}
    if p.nkind == "saddle":
        if p.ndir is not None:
            descent = _lifted_descent(p, p.ndir)
    elif p.nkind == "local_min" and p.definiteness != "zero":
        if np.any(p.zero):
            i = p.j + int(np.flatnonzero(p.zero)[0])
            descent = _descent_dead_daughter(p.Ww, p.vw, p.X, p.y, p.act, i, p.tol) or {}
        else:
            for sign in (+1, -1):
                if (sign > 0 and p.lamH[-1] > p.htol) or (sign < 0 and p.lamH[0] < -p.htol):
                    descent = _split_descent(p, sign)
                    if descent:
                        break
    return descent or info["descent"]


def _lifted_descent(p, direction):
    """Theorem 4: the narrow net's negative-curvature direction, lifted to the wide net."""
    N, d = p.W.shape
    k = p.beta.size
    dW, dv = _unpack(direction, N, d)
    W1 = np.concatenate([dW[: p.j], np.repeat(dW[p.j : p.j + 1], k, axis=0), dW[p.j + 1 :]], axis=0)
    v1 = np.concatenate([dv[: p.j], p.beta * dv[p.j], dv[p.j + 1 :]])
    q = float(direction @ p.Hn @ direction)
    return _descent_saddle_hessian(p.Ww, p.vw, p.X, p.y, p.act, _pack(W1, v1),
                                   q / float(W1.ravel() @ W1.ravel() + v1 @ v1))


def _split_descent(p, sign):
    """Lemma 4 Part I path along an eigenvector of H_j with eigenvalue of the given sign."""
    c, _ = _split_direction(p.beta, sign, 0.0)
    if c is None:
        return {}
    u = p.UH[:, -1] if sign > 0 else p.UH[:, 0]
    lam = p.lamH[-1] if sign > 0 else p.lamH[0]
    W1 = np.zeros_like(p.Ww)
    W1[p.j : p.j + p.beta.size] = c[:, None] * u[None, :]
    q = lam * float(np.sum(p.beta * c * c))  # Q_wide = sum beta_i delta_i^T H delta_i (eq. 31)
    nrm = float(np.linalg.norm(W1))
    return _descent_saddle_hessian(p.Ww, p.vw, p.X, p.y, p.act, _pack(W1, np.zeros_like(p.vw)), q / nrm**2)


# --------------------------------------------------------------------------------------------------
# finding local minima of the narrow net
# --------------------------------------------------------------------------------------------------


def find_local_minimum(X, y, hidden=1, seed=0, activation="tanh", init_scale=1.0, gtol=1e-11, maxiter=50):
    """Find a stationary point of the one-hidden-layer net by BFGS, polished by Newton's method.

    The analytic gradient drives BFGS from a random start; Newton steps with the exact Hessian then
    bring the gradient to round-off (typically max |grad| < 1e-13), so the classification theorems can
    be applied to the result. Check its type with :func:`numerical_classification` (BFGS usually
    ends at a local minimum).

    Parameters
    ----------
    X : array (n, d)
    y : array (n,)
    hidden : int
        Number of hidden neurons N >= 1.
    seed : int
        Seed of the random initial weights, N(0, init_scale^2).
    activation : str or callable
    init_scale : float
    gtol : float
        Target max-norm of the gradient after polishing.
    maxiter : int
        Newton iterations at most.

    Returns
    -------
    W : array (N, d)
    v : array (N,)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-2, 2, 15)[:, None]; y = np.tanh(2 * X[:, 0])
    >>> W, v = find_local_minimum(X, y, hidden=1, seed=1)
    >>> bool(np.max(np.abs(two_layer_gradient(W, v, X, y)[0])) < 1e-10)
    True
    """
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"hidden: must be a positive integer, got {hidden!r}")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X: must be a 2-d array (n, d), got shape {X.shape}")
    X, y = _as_data(X, y, X.shape[1])
    act = _activation(activation)
    N, d = int(hidden), X.shape[1]
    rng = np.random.default_rng(seed)
    theta = init_scale * rng.normal(size=N * (d + 1))

    def fun(th):
        W, v = _unpack(th, N, d)
        return _loss(W, v, X, y, act), _pack(*_grad(W, v, X, y, act))

    res = optimize.minimize(fun, theta, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 5000})
    theta = res.x
    for _ in range(maxiter):
        W, v = _unpack(theta, N, d)
        g = _pack(*_grad(W, v, X, y, act))
        if np.max(np.abs(g)) < gtol:
            break
        theta = theta - np.linalg.lstsq(_hessian(W, v, X, y, act), g, rcond=None)[0]
    W, v = _unpack(theta, N, d)
    return W.copy(), v.copy()


# --------------------------------------------------------------------------------------------------
# the plateau map
# --------------------------------------------------------------------------------------------------


def plateau_map(W, v, X, y, j, *, daughters=2, grid=None, activation="tanh", narrow="auto", tol=1e-7,
                gtol=1e-7):
    """Classify the plateau of a split stationary point over a grid of coefficients (Theorems 1-4).

    For ``daughters = 2`` the free coordinate is ``beta_0`` (``beta_1 = 1 - beta_0``); for 3 it is
    ``(beta_0, beta_1)`` (``beta_2 = 1 - beta_0 - beta_1``); in general the first ``daughters - 1``
    coefficients span the grid (a full tensor grid).

    Parameters
    ----------
    W : array (N, d)
    v : array (N,)
    X : array (n, d)
    y : array (n,)
    j : int
        Parent neuron.
    daughters : int
        Number of daughters ``s + 1 >= 2``.
    grid : array (G,), optional
        Values of each free coefficient; default ``linspace(-1, 2, 61)`` for two daughters and
        ``linspace(-1, 2, 31)`` otherwise.
    activation, narrow, tol, gtol
        As in :func:`classify_plateau`.

    Returns
    -------
    xarray.Dataset
        Dims ``beta_0, ..., beta_{s-1}`` (coordinates: the grid) and ``daughter`` (s + 1).
        Variables: ``kind`` (int8 code, 0 local_min / 1 saddle / 2 undetermined, from the theorems),
        ``numeric_kind`` (same codes, from the wide Hessian and descent paths), ``region`` (0 all
        beta_i > 0, 1 one positive rest negative, 2 surely-saddle region of Theorem 2),
        ``min_transverse_eig`` (smallest eigenvalue of the wide Hessian transverse to the plateau),
        ``min_hessian_eig``, ``loss_change`` (of the verified descent path; NaN at minima) and
        ``beta`` (all coefficients, dims (..., daughter)), ``inner_hessian_eigenvalues`` (eig,),
        ``W_narrow`` (neuron, input) and ``v_narrow`` (neuron,). Attrs record the inner Hessian's
        definiteness, the narrow point's type and loss, the activation, j and the references; the
        Dataset survives a netCDF round trip.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 2)); y = np.tanh(X @ [1.0, -1.0]) + 0.5 * np.tanh(X @ [0.5, 1.0])
    >>> W, v = find_local_minimum(X, y, hidden=1, seed=0)
    >>> ds = plateau_map(W, v, X, y, 0, daughters=2, grid=np.linspace(-1, 2, 7))
    >>> ds["kind"].dims
    ('beta_0',)
    """
    if isinstance(daughters, bool) or not isinstance(daughters, (int, np.integer)) or daughters < 2:
        raise ValueError(f"daughters: must be an integer >= 2, got {daughters!r}")
    if grid is None:
        grid = np.linspace(-1.0, 2.0, 61 if daughters == 2 else 31)
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("grid: must be a non-empty finite 1-d array of coefficient values")
    # snap round-off zeros onto the plateau boundaries
    grid = np.where(np.abs(grid) < 1e-12, 0.0, grid)
    scan = _scan_plateau(W, v, X, y, j, grid, int(daughters) - 1, activation, narrow=narrow, tol=tol, gtol=gtol)
    return _plateau_dataset(scan, W, v, X, y, j, grid, activation, tol)


def _scan_plateau(W, v, X, y, j, grid, s, activation, *, narrow, tol, gtol):
    """Classify every beta of the grid: arrays over the ``s`` free coefficients, and the first classification."""
    shape = (grid.size,) * s
    out = {"kind": np.full(shape, KIND_CODES["undetermined"], dtype=np.int8),
           "numeric_kind": np.full(shape, KIND_CODES["undetermined"], dtype=np.int8),
           "region": np.zeros(shape, dtype=np.int8), "min_transverse_eig": np.full(shape, np.nan),
           "min_hessian_eig": np.full(shape, np.nan), "loss_change": np.full(shape, np.nan),
           "beta": np.zeros(shape + (s + 1,)), "first": None}
    for idx in np.ndindex(*shape):
        free = grid[list(idx)]
        last = 1.0 - float(np.sum(free))
        last = 0.0 if abs(last) < 1e-12 else last
        beta = np.append(free, last)
        c = classify_plateau(W, v, X, y, j, beta, activation, narrow=narrow, tol=tol, gtol=gtol)
        out["first"] = out["first"] or c
        out["kind"][idx] = KIND_CODES[c.kind]
        out["numeric_kind"][idx] = KIND_CODES[c.numeric_kind]
        out["region"][idx] = REGION_CODES[c.region]
        out["min_transverse_eig"][idx] = c.transverse_eigenvalues[0]
        out["min_hessian_eig"][idx] = c.hessian_eigenvalues[0]
        out["loss_change"][idx] = c.descent.get("loss_change", np.nan) if c.kind == "saddle" else np.nan
        out["beta"][idx] = beta
    return out


def _plateau_dataset(scan, W, v, X, y, j, grid, activation, tol):
    """The Dataset of :func:`plateau_map` from the scanned arrays."""
    first = scan["first"]
    s = scan["beta"].shape[-1] - 1
    dims = tuple(f"beta_{i}" for i in range(s))
    code_attrs = {"flag_values": np.array(list(KIND_CODES.values()), dtype=np.int8),
                  "flag_meanings": " ".join(KIND_CODES)}
    Wn, vn = _as_net(W, v)
    Xn, yn = _as_data(X, y, Wn.shape[1])
    act = _activation(activation)
    ds = xr.Dataset(
        {
            "kind": (dims, scan["kind"], dict(code_attrs, long_name="plateau point type by Theorems 1-4")),
            "numeric_kind": (dims, scan["numeric_kind"],
                             dict(code_attrs, long_name="type from the wide Hessian and descent")),
            "region": (dims, scan["region"], {"flag_values": np.array(list(REGION_CODES.values()), dtype=np.int8),
                                              "flag_meanings": " ".join(REGION_CODES)}),
            "min_transverse_eig": (dims, scan["min_transverse_eig"],
                                   {"long_name": "smallest wide-Hessian eigenvalue transverse to the plateau"}),
            "min_hessian_eig": (dims, scan["min_hessian_eig"], {"long_name": "smallest wide-Hessian eigenvalue"}),
            "loss_change": (dims, scan["loss_change"],
                            {"long_name": "loss change along the verified descent path (saddles)"}),
            "beta": (dims + ("daughter",), scan["beta"], {"long_name": "splitting coefficients (sum 1)"}),
            "inner_hessian_eigenvalues": ("eig", first.inner_eigenvalues,
                                          {"long_name": "eigenvalues of H_j (eq. 11), ascending"}),
            "W_narrow": (("neuron", "input"), Wn, {"long_name": "input weights of the narrow net"}),
            "v_narrow": (("neuron",), vn, {"long_name": "output weights of the narrow net"}),
        },
        coords={**{dm: (dm, grid) for dm in dims}, "daughter": np.arange(s + 1)},
        attrs={
            "title": "Classification of a neuron-splitting plateau",
            "reference": "A Geometric Characterization of the Stationary Plateau for Two-Layer "
                         "Neural Networks; Definition 1, eq. 11, Theorems 1-4, Lemma 4",
            "loss": "L = (1/2n) sum_k (f(x_k) - y_k)^2",
            "normalization": _NORM,
            "equations": "H_j = (1/n) sum_k r_k v_j sigma''(w_j.x_k) x_k x_k^T, r = f - y (eq. 11)",
            "inner_hessian": "H_j = (1/n) sum_k r_k v_j sigma''(w_j.x_k) x_k x_k^T, r = f - y (eq. 11)",
            "activation": activation if isinstance(activation, str) else getattr(activation, "__name__", "custom"),
            "parent_neuron": int(j),
            "daughters": int(s + 1),
            "definiteness": first.definiteness,
            "narrow_kind": first.narrow_kind,
            "narrow_loss": _loss(Wn, vn, Xn, yn, act),
            "tol": float(tol),
            "rds_version": rds.__version__,
        },
    )
    return annotate(ds)  # long_name / units from rds.labels
