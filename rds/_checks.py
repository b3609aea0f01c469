"""Argument checks shared by the public boundary: clear errors that name the argument and the rule."""

from __future__ import annotations

import numpy as np


def real(value, name) -> float:
    """A finite real number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def positive(value, name) -> float:
    """A finite real number > 0."""
    out = real(value, name)
    if out <= 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    return out


def nonnegative(value, name) -> float:
    """A finite real number >= 0."""
    out = real(value, name)
    if out < 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


def integer(value, name, minimum=None) -> int:
    """An integer (not bool), optionally >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def finite_array(value, name, ndim=None) -> np.ndarray:
    """A float array with only finite entries (and the given number of dimensions)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return arr


def real_array(value, name) -> np.ndarray:
    """A float array of any shape with only finite entries (TypeError if not real, ValueError if not finite)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be real numbers (array-like of float), got {value!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}")
    return arr


def positive_array(value, name, meaning="") -> np.ndarray:
    """A finite float array with every entry > 0; ``meaning`` (e.g. " (a variance)") is added to the error."""
    arr = real_array(value, name)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0{meaning}, got {value!r}")
    return arr
