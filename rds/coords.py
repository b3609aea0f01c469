"""The (p, q, r, s) coordinates of the FA network (Sato et al. 2022, eq. 19).

p = (w1 + w2)/2, q = (v1 + v2)/2, r = (w1 − w2)/2, s = (v1 − v2)/2; inverse w1 = p + r, w2 = p − r, v1 = q + s,
v2 = q − s. M_w = {r = 0} (eq. 17) and M_wv = {r = s = 0} (eq. 18). The FA map written in these coordinates
(eqs. 20–24) is :func:`rds.models.fukumizu_amari_pqrs`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from rds._checks import real_array
from rds.models.fukumizu_amari import PQRS_MATRIX, PQRS_VARS, THETA_VARS

__all__ = ["to_pqrs", "from_pqrs", "THETA_VARS", "PQRS_VARS", "PQRS_MATRIX"]

# The basis is defined once, in the FA model: (p, q, r, s)ᵀ = PQRS_MATRIX @ (w1, w2, v1, v2)ᵀ; inverse 2 PQRS_MATRIXᵀ.


def _convert(obj, matrix, src, dst, name):
    if isinstance(obj, xr.Dataset):
        return obj.map(lambda da: _convert(da, matrix, src, dst, name) if "var" in da.dims else da,
                       keep_attrs=True).assign_coords(var=list(dst))
    if isinstance(obj, xr.DataArray):
        if "var" not in obj.dims:
            raise ValueError(f"{name}: the DataArray has no 'var' dimension")
        labels = tuple(str(v) for v in obj["var"].values) if "var" in obj.coords else src
        if labels != src:
            raise ValueError(f"{name}: expected var = {list(src)}, got {list(labels)}")
        arr = np.moveaxis(obj.values, obj.dims.index("var"), -1) @ matrix.T
        out = obj.copy(data=np.moveaxis(arr, -1, obj.dims.index("var")))
        return out.assign_coords(var=list(dst))
    # complex input stays complex: the basis change is linear, so a complex-step derivative passes through exactly
    try:
        probe = np.asarray(obj)
    except ValueError:  # ragged: real_array says so, naming the function
        probe = None
    arr = (probe.astype(complex) if probe is not None and probe.dtype.kind == "c"
           else real_array(obj, name, "a real array (..., 4) or an xarray object"))
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"{name}: the last axis must have length 4 {src}, got shape {arr.shape}")
    return arr @ matrix.T


def to_pqrs(theta):
    """(w1, w2, v1, v2) → (p, q, r, s) (Sato et al. 2022, eq. 19).

    Parameters
    ----------
    theta : array_like (..., 4), or xarray DataArray/Dataset with a ``var`` dim labelled w1, w2, v1, v2
        For a Dataset every variable with a ``var`` dim is converted and ``var`` is relabelled p, q, r, s.
        A complex array stays complex (the map is linear: a complex-step derivative passes through exactly).

    Returns
    -------
    Same type and shape, in (p, q, r, s).

    Examples
    --------
    >>> from rds.coords import to_pqrs
    >>> to_pqrs([1.0, 3.0, 2.0, 0.0]).tolist()
    [2.0, 1.0, -1.0, 1.0]
    """
    return _convert(theta, PQRS_MATRIX, THETA_VARS, PQRS_VARS, "to_pqrs")


def from_pqrs(pqrs):
    """(p, q, r, s) → (w1, w2, v1, v2) = (p + r, p − r, q + s, q − s) (inverse of eq. 19).

    Parameters
    ----------
    pqrs : array_like (..., 4), or xarray DataArray/Dataset with ``var`` labelled p, q, r, s

    Returns
    -------
    Same type and shape, in (w1, w2, v1, v2).

    Examples
    --------
    >>> from rds.coords import from_pqrs
    >>> from_pqrs([2.0, 1.0, -1.0, 1.0]).tolist()
    [1.0, 3.0, 2.0, 0.0]
    """
    return _convert(pqrs, 2.0 * PQRS_MATRIX.T, PQRS_VARS, THETA_VARS, "from_pqrs")
