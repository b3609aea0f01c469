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


# ---------------------------------------------------------------------------------------------- times and sizes
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def time_window(t0, steps, t0_name="t0", steps_name="steps"):
    """Absolute times t0 … t0 + steps must be int64 (the engine's clock; ξ_t is keyed by t)."""
    if not INT64_MIN <= t0 <= INT64_MAX:
        raise ValueError(f"{t0_name} must be an int64 time in [-2**63, 2**63 - 1], got {t0}")
    if t0 + steps > INT64_MAX:
        raise ValueError(f"{t0_name} + {steps_name} = {t0 + steps} exceeds the largest int64 time 2**63 - 1 "
                         f"({t0_name}={t0}, {steps_name}={steps})")


def integer_times(times, name="times") -> np.ndarray:
    """Sorted distinct int64 times from integers (or whole floats); floats with a fraction are refused."""
    try:
        arr = np.asarray(times)
    except ValueError:
        raise ValueError(f"{name} must be a 1-D sequence of integer times (got a ragged sequence)") from None
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a 1-D sequence of integer times, got shape {arr.shape}")
    arr = arr.ravel()
    kind = arr.dtype.kind
    if kind == "O" and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr):
        big = [int(v) for v in arr if not INT64_MIN <= int(v) <= INT64_MAX]
        if big:
            raise ValueError(f"{name} must be int64 times, got {big[0]}")
        arr = arr.astype(np.int64)
        kind = "i"
    if kind == "b" or kind not in "iuf":
        raise TypeError(f"{name} must be integer times (absolute steps), got {times!r}"[:200])
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite integer times (found NaN or inf)")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be whole numbers (absolute steps), got {arr[arr != np.round(arr)][:3]}")
        if np.any(np.abs(arr) >= 2.0**63):
            raise ValueError(f"{name} must be int64 times")
    if kind == "u" and arr.size and arr.max() > INT64_MAX:
        raise ValueError(f"{name} must be int64 times, got {arr.max()}")
    return np.unique(arr.astype(np.int64))


def memory_available() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 2**62


def check_memory(nbytes, what, hint=""):
    """ValueError before allocating ``nbytes`` when that is more than the memory available."""
    avail = memory_available()
    if nbytes > avail:
        raise ValueError(f"{what} needs {nbytes / 1e9:.3g} GB, more than the {avail / 1e9:.3g} GB of memory "
                         f"available" + (f"; {hint}" if hint else ""))


#: Bytes per parameter name of a vector map (a short Python str in a tuple), for :func:`check_parameter_count`.
NAME_BYTES = 100


def check_parameter_count(D, what, jacobian=False):
    """ValueError before setting up a parameter vector of ``D`` entries too large for the memory available.

    A vector map keeps the names of its ``D`` parameters (≈ :data:`NAME_BYTES` bytes each) and, with
    ``jacobian=True``, a ``D × D`` float matrix (the analytic Jacobians of the two-layer models).
    ``what`` names the arguments that gave ``D`` (e.g. ``"inputs=10**8, hidden=1"``).
    """
    D = int(D)
    need = NAME_BYTES * D + (8 * D * D if jacobian else 0)
    check_memory(need, f"{what}: D = {D} parameters ({'their names and a D x D Jacobian' if jacobian else 'names'})",
                 "use fewer parameters (vector maps are meant for D up to about 10**4)")


def check_tangent_memory(realizations, members, nvar, k, records, what="", k_name="k"):
    """ValueError before a tangent (Lyapunov) run whose arrays need more memory than is available.

    Per realisation and member: ``k`` tangent vectors of ``nvar`` entries (a few copies), ``records`` recorded
    finite-time exponents of ``k`` each, the state; ``realizations`` results are kept.
    """
    R, M, D, K, H = (int(x) for x in (realizations, members, nvar, k, records))
    kept = 8 * R * M * (K * D + K * (H + 1) + D)  # the results of every realisation
    work = 8 * M * (3 * K * D + K * (H + 1) + 2 * D)  # one realisation's run (tangents, records, copies)
    check_memory(kept + work,
                 f"{what}{R} realizations x {M} members x {k_name} = {K} tangent vectors of {D} entries x "
                 f"{H} recorded times (num_history)",
                 "pass a smaller k (the leading exponents only), fewer realizations, members or num_history")


def positive_int_arg(text) -> int:
    """``argparse`` type: an integer >= 1 (``--members 0`` or ``-5`` is a usage error, not a traceback)."""
    import argparse
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {value}")
    return value


def real_array(value, name, what="a real array", finite=False) -> np.ndarray:
    """A float array; complex values (whose imaginary part a cast would drop) and non-numbers are a TypeError.

    With ``finite=True`` NaN or inf entries are a ValueError too.
    """
    try:
        arr = np.asarray(value)
    except ValueError:
        raise ValueError(f"{name} must be {what}: got a ragged nested sequence") from None
    if np.iscomplexobj(arr) or (arr.dtype.kind == "O" and any(isinstance(v, complex) for v in arr.ravel())):
        raise TypeError(f"{name} must be real: got complex values (the imaginary part would be dropped)")
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what} of numbers, got {value!r}"[:200]) from None
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}"[:200])
    return arr


def positive_array(value, name, meaning="") -> np.ndarray:
    """A finite float array with every entry > 0; ``meaning`` (e.g. " (a variance)") is added to the error."""
    arr = real_array(value, name, finite=True)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0{meaning}, got {value!r}")
    return arr


def tangent_vectors(tangent, members, nvar) -> np.ndarray:
    """Tangent vectors (member, var, k) from an array (var, k) or (member, var, k): real, finite, 1 <= k <= var,
    and of full column rank for every member (the one check of ``propagate_tangent`` and the Lyapunov analyses)."""
    V = real_array(tangent, "tangent")
    if V.ndim == 2:
        V = np.broadcast_to(V, (members,) + V.shape)
    if V.ndim != 3 or V.shape[:2] != (members, nvar) or not 1 <= V.shape[2] <= nvar:
        raise ValueError(f"tangent must have shape (var, k) or (member, var, k) = ({members}, {nvar}, k) with "
                         f"1 <= k <= {nvar}, got {np.shape(tangent)}")
    if not np.all(np.isfinite(V)):
        raise ValueError("tangent must be finite")
    rank = np.linalg.matrix_rank(V[:1] if np.ndim(tangent) == 2 else V)
    if np.any(rank < V.shape[2]):
        i = int(np.argmax(rank < V.shape[2]))
        raise ValueError(f"tangent must have {V.shape[2]} linearly independent columns for every member "
                         f"(full column rank); member {i} has rank {int(rank[i])}")
    return V
