"""Symmetries of one-hidden-layer tanh networks f(x) = Σ_j v_j tanh(w_j x) (Maleknia & Sato 2026; Sato et al. 2022).

Parameters are ordered (w1…wN, v1…vN) on the last axis. The function (and so every loss and the SGD/GD map) is
invariant under permutations of the neurons and under flipping one neuron (w_j, v_j) → (−w_j, −v_j), since tanh is
odd. The group has 2^N · N! elements. :func:`canonical` picks one representative of each orbit.
"""

from __future__ import annotations

import itertools

import numpy as np

from rds._checks import real_array

__all__ = ["canonical", "swap", "flip", "orbit", "distance_modulo_symmetry"]


def _split(theta, name="theta"):
    theta = real_array(theta, name, "a real array (..., 2N) of (w1..wN, v1..vN)")
    if theta.ndim == 0 or theta.shape[-1] % 2 or theta.shape[-1] == 0:
        raise ValueError(f"{name} must have an even, non-zero last axis (w1..wN, v1..vN), got shape {theta.shape}")
    N = theta.shape[-1] // 2
    return theta, theta[..., :N], theta[..., N:], N


def _neuron(j, N, name):
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
        raise TypeError(f"{name} must be a neuron index (an integer in range({N})), got {j!r}")
    if not 0 <= j < N:
        raise ValueError(f"{name} must be a neuron index in range({N}) (0-based, N = {N} neurons), got {j}")
    return int(j)


def canonical(theta):
    """Representative of θ modulo neuron swaps and per-neuron sign flips.

    Each neuron is flipped so that w_j > 0 (or w_j = 0 and v_j ≥ 0); then neurons are sorted by (w_j, v_j)
    ascending. Two parameter vectors give the same network function through a symmetry iff their canonical forms
    are equal.

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
        (w1…wN, v1…vN).

    Returns
    -------
    ndarray, shape (..., 2N)

    Examples
    --------
    >>> from rds.symmetry import canonical
    >>> canonical([4.0, -1.0, -1.0, -2.0]).tolist()   # an optimum of eq. 9 → its representative
    [1.0, 4.0, 2.0, -1.0]
    """
    theta, w, v, N = _split(theta)
    neg = (w < 0) | ((w == 0) & (v < 0))
    sign = np.where(neg, -1.0, 1.0)
    w, v = w * sign, v * sign
    order = np.lexsort((v, w), axis=-1)
    return np.concatenate([np.take_along_axis(w, order, -1), np.take_along_axis(v, order, -1)], axis=-1)


def swap(theta, i, j):
    """Swap neurons i and j (0-based): (w_i, v_i) ↔ (w_j, v_j) — a symmetry of the network (Sato et al. 2022, §2).

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
        (w1…wN, v1…vN).
    i, j : int
        Neuron indices in ``range(N)``.

    Returns
    -------
    ndarray, shape (..., 2N)

    Examples
    --------
    >>> from rds.symmetry import swap
    >>> swap([1.0, 4.0, 2.0, -1.0], 0, 1).tolist()
    [4.0, 1.0, -1.0, 2.0]
    """
    theta, w, v, N = _split(theta)
    i, j = _neuron(i, N, "i"), _neuron(j, N, "j")
    perm = np.arange(N)
    perm[[i, j]] = perm[[j, i]]
    return np.concatenate([w[..., perm], v[..., perm]], axis=-1)


def flip(theta, j):
    """Flip neuron j (0-based): (w_j, v_j) → (−w_j, −v_j) — a symmetry since tanh is odd (Sato et al. 2022, §2).

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
    j : int
        Neuron index in ``range(N)``.

    Returns
    -------
    ndarray, shape (..., 2N)

    Examples
    --------
    >>> from rds.symmetry import flip
    >>> flip([1.0, 4.0, 2.0, -1.0], 1).tolist()
    [1.0, -4.0, 2.0, 1.0]
    """
    theta, w, v, N = _split(theta)
    j = _neuron(j, N, "j")
    out = theta.copy()
    out[..., j] *= -1
    out[..., N + j] *= -1
    return out


def orbit(theta):
    """All 2^N · N! images of θ under neuron permutations and sign flips.

    Parameters
    ----------
    theta : array_like, shape (..., 2N)

    Returns
    -------
    ndarray, shape (2^N · N!, ..., 2N)
        The images (with repeats if θ is itself symmetric).

    Examples
    --------
    >>> import rds
    >>> rds.symmetry.orbit([1.0, 4.0, 2.0, -1.0]).shape   # the 8 optima of eq. 9
    (8, 4)
    """
    theta, w, v, N = _split(theta)
    images = []
    for perm in itertools.permutations(range(N)):
        for signs in itertools.product((1.0, -1.0), repeat=N):
            s = np.asarray(signs)
            images.append(np.concatenate([w[..., perm] * s, v[..., perm] * s], axis=-1))
    return np.stack(images)


def distance_modulo_symmetry(a, b):
    """Euclidean distance from θ_a to the closest image of θ_b: min_g |θ_a − g θ_b| over the symmetry group.

    Parameters
    ----------
    a : array_like, shape (..., 2N)
    b : array_like, shape (2N,) or broadcastable with ``a``

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import rds
    >>> float(rds.symmetry.distance_modulo_symmetry([4.0, -1.0, -1.0, -2.0], rds.models.OPTIMA[0]))
    0.0
    """
    a, _, _, Na = _split(a, "a")
    b_arr, _, _, Nb = _split(b, "b")
    if Na != Nb:
        raise ValueError(f"a and b must have the same number of parameters (last axis), got {a.shape[-1]} and "
                         f"{b_arr.shape[-1]}")
    try:
        shape = np.broadcast_shapes(a.shape, b_arr.shape)
    except ValueError:
        raise ValueError(f"b must have shape (2N,) or broadcast with a: got shapes a {a.shape}, b {b_arr.shape}") \
            from None
    images = orbit(b_arr)
    images = images.reshape(images.shape[:1] + (1,) * (len(shape) - b_arr.ndim) + b_arr.shape)
    return np.min(np.linalg.norm(images - a, axis=-1), axis=0)
