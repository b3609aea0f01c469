"""netCDF4 I/O of labelled results: atomic saves and exact round trips.

netCDF attributes hold only strings, numbers and numeric arrays. :func:`save` encodes any other attr value
(bool, None, dict, list of mixed items) as a JSON string tagged ``"json:"``, and :func:`load` decodes it, so
``load(save(ds))`` equals ``ds`` with its attrs. The file is written to a temporary name in the same folder and
renamed into place: a crash or an error never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import xarray as xr

__all__ = ["save", "load", "encode_attrs", "decode_attrs"]

_TAG = "json:"


def _encode_value(v):
    if isinstance(v, (bool, np.bool_)) or v is None or isinstance(v, dict):
        return _TAG + json.dumps(v if not isinstance(v, np.bool_) else bool(v))
    if isinstance(v, str):
        return _TAG + json.dumps(v) if v.startswith(_TAG) else v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return v
    if isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.ndim <= 1:
        return v
    if isinstance(v, (list, tuple)):
        arr = np.asarray(v)
        if arr.ndim == 1 and arr.dtype.kind in "iuf" and len(v):
            return arr
    if isinstance(v, np.ndarray):
        v = v.tolist()
    return _TAG + json.dumps(v)


def encode_attrs(attrs: dict) -> dict:
    """netCDF-safe copy of ``attrs``: bool, None, dict and mixed lists become ``"json:..."`` strings.

    Parameters
    ----------
    attrs : dict

    Returns
    -------
    dict

    Examples
    --------
    >>> from rds.io import encode_attrs
    >>> encode_attrs({"ok": True, "n": 3})
    {'ok': 'json:true', 'n': 3}
    """
    return {str(k): _encode_value(v) for k, v in attrs.items()}


def decode_attrs(attrs: dict) -> dict:
    """Inverse of :func:`encode_attrs`.

    Parameters
    ----------
    attrs : dict

    Returns
    -------
    dict

    Examples
    --------
    >>> from rds.io import decode_attrs, encode_attrs
    >>> decode_attrs(encode_attrs({"ok": True, "cfg": {"a": None}}))
    {'ok': True, 'cfg': {'a': None}}
    """
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str) and v.startswith(_TAG):
            out[k] = json.loads(v[len(_TAG):])
        else:
            out[k] = v
    return out


def save(ds: xr.Dataset, path) -> str:
    """Save a Dataset to netCDF4, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        Any Dataset; attrs of the Dataset and of its variables are encoded (see :func:`encode_attrs`).
    path : str or os.PathLike
        Destination ``.nc`` file (its folder must exist). Replaced atomically if it exists.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rds, tempfile, os
    >>> ds = xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"flag": True, "cfg": {"k": 1}})
    >>> p = os.path.join(tempfile.mkdtemp(), "a.nc")
    >>> _ = rds.io.save(ds, p)
    >>> rds.io.load(p).attrs
    {'flag': True, 'cfg': {'k': 1}}
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"path: folder {folder!r} does not exist")
    enc = ds.copy(deep=False)
    enc.attrs = encode_attrs(ds.attrs)
    for name in enc.variables:
        enc[name].attrs = encode_attrs(ds[name].attrs)
    fd, tmp = tempfile.mkstemp(prefix=".rds-", suffix=".nc.tmp", dir=folder)
    os.close(fd)
    try:
        enc.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load(path) -> xr.Dataset:
    """Load a Dataset saved by :func:`save` (fully into memory; the file is closed), decoding attrs.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    See :func:`save`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    ds = xr.load_dataset(path, engine="netcdf4")
    ds.attrs = decode_attrs(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = decode_attrs(ds[name].attrs)
    return ds
