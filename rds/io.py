"""netCDF4 I/O of labelled results: atomic, durable saves and verified, exact round trips.

netCDF attributes hold only strings, numbers and numeric arrays. :func:`save` encodes any other attr value
(bool, None, dict, list, tuple, a numeric array of one element) as a JSON string tagged ``"json:"``, and
:func:`load` decodes it, so ``load(save(ds))`` equals ``ds`` with its attrs (a tuple comes back as a list).
Complex variables are stored as netCDF4 compound types (``auto_complex``) and come back exactly.

Safety of the file on disk:

* The file is written to a temporary name ``.rds-<pid>-<token>.nc.tmp`` in the destination's folder, flushed to
  disk (``fsync``), renamed into place and the folder is flushed: a crash, an error, Ctrl-C or ``SIGTERM`` never
  leaves a half-written file; the destination holds the old or the new contents, complete. The temporary file is
  removed on every exit path Python sees (errors, ``KeyboardInterrupt``, ``SIGTERM``/``SIGHUP`` during the save);
  after a ``kill -9`` it stays, and the next save into that folder removes it (its process is gone).
* Saving to a symbolic link writes the link's target (the link stays a link). A replaced file keeps its
  permission bits; a new file gets those of the umask (like ``open``).
* The file carries SHA-256 checksums (attr ``rds_checksums``) of every variable and coordinate (values, dims and
  attrs), of which variables are coordinates, and of the Dataset's attrs. :func:`load` verifies them and refuses a
  file in which any of these changed, or to which a variable was added (``verify=False`` reads it anyway); a file
  without a checksum table, or with an empty one, is read with an :class:`UnverifiedWarning` saying that its
  contents are unverified. Checksums detect accidents — damage, truncation, a file edited and saved by other
  tools — not deliberate forgery: whoever edits a file can recompute them.
* Ctrl-C during a save stops it at once: the file is written by a helper thread while the calling thread waits,
  so ``KeyboardInterrupt`` is raised within a fraction of a second even during a long HDF5 call, and the helper
  removes the temporary file when that call returns (the process exits after it). Writing through xarray's
  default locks could also deadlock when ``KeyboardInterrupt`` landed between the acquisition of two of them;
  rds holds only locks that cannot be left acquired by an interrupt.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import signal
import threading
import time
import warnings

import numpy as np
import xarray as xr

__all__ = ["save", "load", "encode_attrs", "decode_attrs", "checksum", "remove_stale_temp_files", "InvalidFileError",
           "CHECKSUM_ATTR", "UnverifiedWarning", "row_checksums", "content_checksum", "seal_store", "verify_store"]

_TAG = "json:"
_ARRAY_KEY = "__rds_ndarray__"
#: Name of the global attr holding the checksums of the variables (reserved: :func:`save` overwrites it).
CHECKSUM_ATTR = "rds_checksums"
_INT64 = (-2**63, 2**63 - 1)


class UnverifiedWarning(UserWarning):
    """:func:`load` could not verify a file (no checksum table, an empty one, or an older one that does not cover
    attrs): the contents are read as they are."""


class InvalidFileError(ValueError, OSError):
    """A file that :func:`load` cannot return faithfully: not netCDF4, truncated, damaged or edited.

    Both a :class:`ValueError` and an :class:`OSError`; the message names the file and what is wrong.
    """


# ---------------------------------------------------------------------------------------------- attrs
def _json_default(o):
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} {o!r} is not JSON-serialisable")


def _json(v, key):
    try:
        return _TAG + json.dumps(v, default=_json_default)
    except (TypeError, ValueError) as e:
        raise TypeError(f"attrs[{key!r}]: cannot store this value in a netCDF attribute ({e}); use numbers, "
                        "strings, bools, None, numeric arrays, and lists/dicts of those") from None


def _encode_value(v, key="?"):
    if isinstance(v, (bool, np.bool_)) or v is None or isinstance(v, (dict, list, tuple)):
        return _json(v, key)
    if isinstance(v, str):
        return _json(v, key) if v.startswith(_TAG) else v
    if isinstance(v, (int, np.integer)):
        return v if _INT64[0] <= int(v) <= _INT64[1] else _json(int(v), key)
    if isinstance(v, (float, np.floating)):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "iuf" and v.ndim == 1 and v.size >= 2:
            return v
        if v.dtype.kind in "biuf":  # netCDF returns a one-element attribute as a scalar: keep the array
            return _json({_ARRAY_KEY: v.tolist(), "dtype": v.dtype.str}, key)
    return _json(v, key)


def encode_attrs(attrs: dict) -> dict:
    """netCDF-safe copy of ``attrs``: bool, None, dict, list, tuple become ``"json:..."`` strings.

    Parameters
    ----------
    attrs : dict

    Returns
    -------
    dict

    Raises
    ------
    TypeError
        Naming the attr whose value cannot be stored (e.g. an arbitrary object).

    Examples
    --------
    >>> from rds.io import encode_attrs
    >>> encode_attrs({"ok": True, "n": 3, "l": [5]})
    {'ok': 'json:true', 'n': 3, 'l': 'json:[5]'}
    """
    return {str(k): _encode_value(v, k) for k, v in attrs.items()}


class _BadArray(ValueError):
    """A tagged array attr whose payload is not one :func:`encode_attrs` writes."""


def _decode_value(v):
    out = json.loads(v[len(_TAG):])
    if isinstance(out, dict) and set(out) == {_ARRAY_KEY, "dtype"}:
        try:
            dt = np.dtype(out["dtype"])
        except (TypeError, ValueError):
            raise _BadArray(f"its array's dtype {out['dtype']!r} is not a NumPy dtype") from None
        if dt.kind not in "biuf" or dt.itemsize > 16:  # what encode_attrs writes (and nothing to allocate GBs)
            raise _BadArray(f"its array's dtype {out['dtype']!r} is not a bool, integer or float type (rds stores "
                            "only those as tagged arrays)")
        try:
            return np.asarray(out[_ARRAY_KEY], dtype=dt)
        except (TypeError, ValueError, OverflowError) as e:
            raise _BadArray(f"its array's values do not fit dtype {out['dtype']!r} ({e})") from None
    return out


def decode_attrs(attrs: dict) -> dict:
    """Inverse of :func:`encode_attrs`.

    Parameters
    ----------
    attrs : dict

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        Naming the attr whose ``json:`` value is not valid JSON (or nested too deeply to decode).

    Examples
    --------
    >>> from rds.io import decode_attrs, encode_attrs
    >>> decode_attrs(encode_attrs({"ok": True, "cfg": {"a": None}}))
    {'ok': True, 'cfg': {'a': None}}
    """
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str) and v.startswith(_TAG):
            try:
                out[k] = _decode_value(v)
            except _BadArray as e:
                raise ValueError(f"attrs[{k!r}]: {e}") from None
            except (ValueError, TypeError, RecursionError) as e:
                what = "nested too deeply" if isinstance(e, RecursionError) else f"not valid JSON: {e}"
                raise ValueError(f"attrs[{k!r}]: its {_TAG} value is {what}") from None
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------- checksums
def checksum(values) -> str:
    """SHA-256 of an array's values as :func:`load` returns them (dtype kind, shape and bytes; NaN canonical).

    Strings and other objects are hashed by their text. Used for the per-variable checksums of :func:`save` and
    the per-row checksums of resumable scans.

    Parameters
    ----------
    values : array_like

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> import numpy as np
    >>> from rds.io import checksum
    >>> checksum(np.array([1.0, np.nan])) == checksum(np.array([1.0, -np.nan]))
    True
    """
    a = np.asarray(values)
    h = hashlib.sha256()
    kind = a.dtype.kind
    if kind in "fc":
        nan = np.isnan(a)
        if nan.any():
            a = np.where(nan, np.nan, a).astype(a.dtype)  # a NaN's payload is not data
    if kind in "biufc":
        h.update(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    elif kind in "mM":
        h.update(f"{kind}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a.astype(f"{kind}8[ns]")).tobytes())
    else:
        h.update(f"text|{a.shape}|".encode())
        h.update(json.dumps([str(x) for x in a.ravel().tolist()]).encode())
    return h.hexdigest()


def _canon(v):
    """A JSON-able canonical form of an encoded attr value (as written, and as netCDF reads it back)."""
    if isinstance(v, str):
        return ["s", v]
    a = np.asarray(v)
    if a.dtype.kind == "b":
        return ["b", [bool(x) for x in a.ravel()]]
    if a.dtype.kind in "iu":
        return ["i", [int(x) for x in a.ravel()]]
    if a.dtype.kind == "f":
        return ["f", ["nan" if x != x else float(x).hex() for x in a.ravel().tolist()]]
    return ["r", repr(v)]


def _attrs_digest(attrs, exclude=()) -> str:
    """SHA-256 of attrs as they are stored (:func:`encode_attrs`), keys sorted; ``exclude``: keys left out."""
    enc = encode_attrs({k: v for k, v in attrs.items() if k not in exclude})
    items = sorted([str(k), _canon(v)] for k, v in enc.items())
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def _variable_digest(var, values=True) -> str:
    """SHA-256 of a variable: its dims, its attrs and (``values``) the checksum of its values."""
    parts = [json.dumps([str(d) for d in var.dims]), _attrs_digest(var.attrs)]
    if values:
        parts.append(checksum(var.values))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _table(ds) -> dict:
    """The checksum table :func:`save` stores (version 2): every variable (values, dims, attrs), the names of the
    coordinates and the Dataset's attrs."""
    return {"version": 2,
            "variables": {str(n): _variable_digest(v) for n, v in ds.variables.items()},
            "coords": sorted(str(n) for n in ds.coords),
            "attrs": _attrs_digest(ds.attrs, exclude=(CHECKSUM_ATTR,))}


def _table_problems(ds, table) -> tuple[list, bool]:
    """What in ``ds`` does not match the checksum ``table`` (empty: all verified), and whether the table covered
    the attrs (a version-1 table, of rds <= 0.3, covers the variables' values only)."""
    names = {str(n) for n in ds.variables}
    problems = []
    if table.get("version") == 2:
        sums = table.get("variables")
        if not isinstance(sums, dict):
            return [f"attrs[{CHECKSUM_ATTR!r}] is malformed"], True
        bad = sorted(n for n in names & set(sums) if _variable_digest(ds[n]) != sums[n])
        if bad:
            problems.append(f"variables {bad} do not match their checksums (values, dims or attrs)")
        if table.get("coords") != sorted(str(n) for n in ds.coords):
            problems.append(f"the coordinates {sorted(str(n) for n in ds.coords)} are not those saved "
                            f"({table.get('coords')})")
        if table.get("attrs") != _attrs_digest(ds.attrs, exclude=(CHECKSUM_ATTR,)):
            problems.append("the Dataset's attrs do not match their checksum")
        covered = True
    else:
        sums = table.get("sha256")
        if not isinstance(sums, dict):
            return [f"attrs[{CHECKSUM_ATTR!r}] is malformed"], True
        bad = sorted(n for n in names & set(sums) if checksum(ds[n].values) != sums[n])
        if bad:
            problems.append(f"variables {bad} do not match their checksums")
        covered = False
    missing = sorted(set(sums) - names)
    added = sorted(names - set(sums))
    if missing:
        problems.append(f"variables {missing} are missing")
    if added:
        problems.append(f"variables {added} were not in the file when it was saved")
    return problems, covered


# ---------------------------------------------------------------------------------------------- locking
# xarray's own netCDF4 locks are Python-level wrappers around several locks: an interrupt that lands between their
# acquisitions leaves one held and the close that follows waits for it forever. rds takes instead the plain
# (C-level) lock under xarray's HDF5 lock — excluding every xarray netCDF4 access of other threads — and gives the
# store a fresh re-entrant lock of its own, which a stray interrupt cannot leave blocking the close.
def _hdf5_lock():
    from xarray.backends.locks import HDF5_LOCK
    return getattr(HDF5_LOCK, "lock", HDF5_LOCK)


def _open_store(path, mode):
    from xarray.backends import NetCDF4DataStore
    return NetCDF4DataStore.open(path, mode=mode, format="NETCDF4", lock=threading.RLock(), auto_complex=True)


# ---------------------------------------------------------------------------------------------- temp files
_TMP_RE = re.compile(r"^\.rds-(\d+)-[0-9a-f]+\.nc\.tmp$")
_LEGACY_TMP_RE = re.compile(r"^\.rds-[A-Za-z0-9_]{8}\.nc\.tmp$")  # mkstemp names of rds <= 0.1
_LEGACY_AGE = 600.0  # seconds without modification after which a legacy temp file counts as abandoned
_ACTIVE: set = set()  # temp files being written by this process (all threads)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, another user's
        return True
    return True


def remove_stale_temp_files(folder) -> list:
    """Remove the temporary files of interrupted saves in ``folder`` (their process is gone).

    :func:`save` calls this before each save. Files of live processes are left alone.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    list of str
        The paths removed.

    Examples
    --------
    >>> import tempfile
    >>> remove_stale_temp_files(tempfile.mkdtemp())
    []
    """
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        path = os.path.join(folder, name)
        m = _TMP_RE.match(name)
        if m:
            pid = int(m.group(1))
            stale = (not _pid_alive(pid)) or (pid == os.getpid() and path not in _ACTIVE)
        elif _LEGACY_TMP_RE.match(name):
            try:
                stale = now - os.stat(path).st_mtime > _LEGACY_AGE
            except OSError:
                continue
        else:
            continue
        if stale:
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(path)
    return removed


class _Terminated(BaseException):
    """Raised by rds's SIGTERM/SIGHUP handler inside a save, so that the temporary file is removed."""


@contextlib.contextmanager
def _signals_clean_up():
    """During a save (main thread): turn SIGTERM/SIGHUP into an exception, then re-deliver the signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []

    def handler(signum, frame):
        got.append(signum)
        raise _Terminated(signum)

    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        prev = signal.getsignal(sig)
        if prev is signal.SIG_IGN or prev is None:
            continue
        old[sig] = prev
        signal.signal(sig, handler)
    try:
        yield
    except _Terminated:
        pass
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)
    if got:
        signal.raise_signal(got[0])  # the previous disposition: by default the process ends here
        raise InterruptedError(errno.EINTR, f"save interrupted by signal {got[0]}")


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, hence only the fallback
    os.umask(mask)
    return mask


def _fsync(path, directory=False):
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _destination(path) -> str:
    """The file a save to ``path`` writes: ``path`` itself, or the final target of a symbolic link."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if path == "" or path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise ValueError(f"path must name a file, got {path!r}")
    target = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
    if os.path.isdir(target):
        raise ValueError(f"path {path!r} is a folder; give a file name such as {os.path.join(path, 'out.nc')!r}")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise ValueError(f"path: folder {folder!r} does not exist")
    return target


# ---------------------------------------------------------------------------------------------- save / load
def save(ds: xr.Dataset, path) -> str:
    """Save a Dataset to netCDF4, atomically and durably, with checksums of its variables.

    Parameters
    ----------
    ds : xarray.Dataset
        Any Dataset; attrs of the Dataset and of its variables are encoded (see :func:`encode_attrs`); complex
        variables are stored as netCDF4 compound types.
    path : str or os.PathLike
        Destination file (its folder must exist). Replaced atomically if it exists, keeping its permission bits;
        a symbolic link is followed (its target is replaced, the link stays).

    Returns
    -------
    str
        The path written (as given).

    Raises
    ------
    ValueError
        ``path`` is empty, ends with a separator, is a folder, or its folder does not exist; or an attr is named
        ``coordinates``, which netCDF readers (xarray's CF decoding) take as the list of coordinate variables and
        would not give back as an attr.
    TypeError
        ``ds`` is not a Dataset, or an attr cannot be stored (the message names it).

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
    for owner, attrs in [("ds.attrs", ds.attrs)] + [(f"ds[{str(n)!r}].attrs", ds[n].attrs) for n in ds.variables]:
        if "coordinates" in attrs:
            raise ValueError(f"{owner}['coordinates']: netCDF reserves this attr name for the list of coordinate "
                             f"variables (CF conventions), so it would not be read back; rename it")
    given = os.fsdecode(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) else path
    target = _destination(path)
    folder = os.path.dirname(target)
    enc = ds.copy(deep=False)
    enc.attrs = encode_attrs(ds.attrs)
    for name in enc.variables:
        enc[name].attrs = encode_attrs(ds[name].attrs)
    enc.attrs[CHECKSUM_ATTR] = _TAG + json.dumps(_table(ds))
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    remove_stale_temp_files(folder)
    tmp = os.path.join(folder, f".rds-{os.getpid()}-{secrets.token_hex(6)}.nc.tmp")
    _ACTIVE.add(tmp)
    writer = _Writer(enc, tmp, mode)
    if threading.current_thread() is not threading.main_thread():
        writer.run()  # no signals reach this thread: write here
    with _signals_clean_up():
        try:
            if threading.current_thread() is threading.main_thread():
                writer.start()
                # an Event, not Thread.join: an interrupted join can mark a live thread as stopped (CPython
                # bpo-45274's fix), and then neither this save nor the interpreter's exit would wait for it
                while not writer.finished.wait(0.05):  # a wait with a timeout lets Ctrl-C through at once
                    pass
            if writer.error is not None:
                raise writer.error
            os.replace(tmp, target)
            _ACTIVE.discard(tmp)
            _fsync(folder, directory=True)
        except BaseException as e:
            writer.cancel()  # the temp file goes now, or when the writer's current call returns
            if isinstance(e, _Terminated) and writer.ident is not None:
                writer.finished.wait()  # finish the clean-up before the signal ends the process
            raise
    return given


class _Writer(threading.Thread):
    """Writes the temporary file. HDF5 calls cannot be interrupted, so the main thread waits for this one and
    stays responsive to Ctrl-C; a cancelled writer removes its temporary file as soon as its call returns."""

    def __init__(self, enc, tmp, mode):
        super().__init__(name="rds.io.save", daemon=False)
        self.enc, self.tmp, self.mode = enc, tmp, mode
        self.error = None
        self._state = threading.Lock()
        self._done = self._cancelled = False
        self.finished = threading.Event()

    def run(self):
        try:
            with _hdf5_lock():
                store = _open_store(self.tmp, "w")
                try:
                    xr.backends.writers.dump_to_store(self.enc, store)
                finally:
                    store.close()
            os.chmod(self.tmp, self.mode)
            _fsync(self.tmp)
        except BaseException as e:  # re-raised by save() in the calling thread
            self.error = e
        finally:
            self.enc = None
            with self._state:
                self._done = True
                if self._cancelled or self.error is not None:
                    self._remove()
            self.finished.set()

    def cancel(self):
        with self._state:
            self._cancelled = True
            if self._done:
                self._remove()

    def _remove(self):
        with contextlib.suppress(OSError):
            os.remove(self.tmp)
        _ACTIVE.discard(self.tmp)


def _check_size(ds, path):
    """Refuse, before reading, a file whose variables need more memory than is available (a few KB of netCDF can
    declare terabytes: unwritten chunks take no room on disk)."""
    from rds._checks import memory_available
    need = sum(int(np.prod(v.shape, dtype=object)) * v.dtype.itemsize for v in ds.variables.values())
    avail = memory_available()
    if need > avail:
        big = max(ds.variables.items(), key=lambda kv: int(np.prod(kv[1].shape, dtype=object)) * kv[1].dtype.itemsize)
        raise InvalidFileError(f"{path!r}: its variables need {need / 1e9:.3g} GB in memory (the largest, "
                               f"{str(big[0])!r}, has shape {tuple(big[1].shape)} of {big[1].dtype}), more than "
                               f"the {avail / 1e9:.3g} GB available; open it lazily with xarray.open_dataset instead")


def load(path, verify: bool = True) -> xr.Dataset:
    """Load a Dataset saved by :func:`save` (fully into memory; the file is closed), decoding attrs.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, default True
        Check the file against the checksums :func:`save` stored: every variable and coordinate (values, dims,
        attrs), the set of variables and coordinates, and the Dataset's attrs. A file without checksums (written by
        other tools) or with an empty table is read with an :class:`UnverifiedWarning`. False skips the check,
        e.g. to inspect a damaged file.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    FileNotFoundError
        No such file.
    InvalidFileError
        (a ValueError and an OSError) The file is empty, truncated or not netCDF4, a ``json:`` attr does not
        decode, or the contents do not match their checksums (a variable, its attrs, the Dataset's attrs, an
        added or missing variable); the message names the file and what is wrong.

    Warns
    -----
    UnverifiedWarning
        The file has no checksum table, an empty one, or one of an older rds that does not cover attrs.

    Notes
    -----
    Checksums detect accidents (damage, truncation, edits by other tools), not deliberate forgery: a table
    recomputed by hand is accepted.

    Examples
    --------
    See :func:`save`.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a netCDF file", path)
    if os.path.getsize(path) == 0:
        raise InvalidFileError(f"{path!r} is empty (0 bytes), not a netCDF4 file")
    try:
        with _hdf5_lock():
            store = _open_store(path, "r")
            try:
                ds = xr.open_dataset(store)
                _check_size(ds, path)
                ds = ds.load()
            finally:
                store.close()
    except InvalidFileError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        raise InvalidFileError(f"{path!r} cannot be read as a netCDF4 file (truncated, damaged or another "
                               f"format): {type(e).__name__}: {e}") from e
    try:
        sums = ds.attrs.pop(CHECKSUM_ATTR, None)
        ds.attrs = decode_attrs(ds.attrs)
        for name in ds.variables:
            try:
                ds[name].attrs = decode_attrs(ds[name].attrs)
            except ValueError as e:
                raise ValueError(f"variable {str(name)!r}: {e}") from None
        if sums is not None:
            sums = _decode_value(sums) if isinstance(sums, str) and sums.startswith(_TAG) else None
            if not isinstance(sums, dict):
                raise ValueError(f"attrs[{CHECKSUM_ATTR!r}] is malformed")
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        raise InvalidFileError(f"{path!r}: {e}") from None
    if not verify:
        return ds
    empty = sums is None or not any(sums.get(k) for k in ("variables", "sha256", "attrs"))
    if empty:
        warnings.warn(f"{path!r} has {'no' if sums is None else 'an empty'} checksum table (attr "
                      f"{CHECKSUM_ATTR!r}): its contents are unverified (a file not written by rds.io.save, or "
                      "whose table was removed)", UnverifiedWarning, stacklevel=2)
        return ds
    problems, covered = _table_problems(ds, sums)
    if problems:
        raise InvalidFileError(f"{path!r}: {'; '.join(problems)} — the file was damaged or edited after it was "
                               "saved. rds.io.load(path, verify=False) reads it anyway.")
    if not covered:
        warnings.warn(f"{path!r} was saved by an older rds whose checksums cover the variables' values only: its "
                      "attrs are unverified (save it again to checksum them)", UnverifiedWarning, stacklevel=2)
    return ds


# ---------------------------------------------------------------------------------------------- stores
#: attrs of a resumable store (:func:`seal_store`): the checksum of each row, and of everything else.
ROWS_ATTR, REST_ATTR = "row_checksums", "store_checksum"


def row_checksums(ds, dim) -> list:
    """SHA-256 of each row of ``ds`` along ``dim``: the values of every variable (coordinate included) with that
    dim, at that index.

    Parameters
    ----------
    ds : xarray.Dataset
    dim : str

    Returns
    -------
    list of str
        One 64-hex-digit checksum per index along ``dim``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from rds.io import row_checksums
    >>> ds = xr.Dataset({"a": ("s", [1.0, 2.0])}, coords={"s": [0.1, 0.2]})
    >>> len(row_checksums(ds, "s")), row_checksums(ds, "s") == row_checksums(ds.isel(s=[0, 1]), "s")
    (2, True)
    """
    names = sorted(str(n) for n, v in ds.variables.items() if dim in v.dims)
    out = []
    for i in range(ds.sizes.get(dim, 0)):
        parts = [n + ":" + checksum(ds[n].isel({dim: i}).values) for n in names]
        out.append(hashlib.sha256("|".join(parts).encode()).hexdigest())
    return out


def content_checksum(ds, *, exclude_attrs=(), rows=None) -> str:
    """SHA-256 of a Dataset: every variable and coordinate (values, dims, attrs), which are coordinates, and the
    Dataset's attrs (but ``exclude_attrs``). With ``rows=dim`` the values of the variables along ``dim`` are left
    out (their rows are covered by :func:`row_checksums`), so that the first rows of a store have the same
    checksum as the whole.

    The same on a Dataset and on its :func:`save`/:func:`load` round trip.

    Parameters
    ----------
    ds : xarray.Dataset
    exclude_attrs : iterable of str
        Dataset attrs not covered (e.g. the attr that will hold this checksum).
    rows : str or None
        A dim whose variables' values are left out.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> import xarray as xr
    >>> from rds.io import content_checksum
    >>> ds = xr.Dataset({"a": ("x", [1.0, 2.0])}, attrs={"k": 1})
    >>> content_checksum(ds) == content_checksum(ds.assign_attrs(k=2))
    False
    """
    table = {"variables": {str(n): _variable_digest(v, values=rows is None or rows not in v.dims)
                           for n, v in ds.variables.items()},
             "coords": sorted(str(n) for n in ds.coords),
             "attrs": _attrs_digest(ds.attrs, exclude=tuple(exclude_attrs) + (CHECKSUM_ATTR,))}
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def seal_store(ds, dim) -> xr.Dataset:
    """Set the checksums of a resumable store of rows along ``dim`` (in place; returns ``ds``).

    ``attrs["row_checksums"]``: :func:`row_checksums` (one per row); ``attrs["store_checksum"]``:
    :func:`content_checksum` of everything else (variables without ``dim``, every coordinate, dims and attrs of
    every variable, the Dataset's attrs). Its first rows (``ds.isel({dim: slice(0, n)})`` with the first ``n``
    row checksums) verify as well: what an interrupted scan leaves. Checked by :func:`verify_store`.

    Parameters
    ----------
    ds : xarray.Dataset
    dim : str

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> import xarray as xr
    >>> from rds.io import seal_store, verify_store
    >>> ds = seal_store(xr.Dataset({"a": ("s", [1.0, 2.0])}, coords={"s": [0.1, 0.2]}), "s")
    >>> verify_store(ds, "s", "store")
    """
    ds.attrs[ROWS_ATTR] = row_checksums(ds, dim)
    ds.attrs[REST_ATTR] = content_checksum(ds, exclude_attrs=(ROWS_ATTR, REST_ATTR), rows=dim)
    return ds


def verify_store(ds, dim, where) -> None:
    """Refuse (ValueError) a store that does not match the checksums of :func:`seal_store`.

    Parameters
    ----------
    ds : xarray.Dataset
        As loaded (:func:`load` has already checked the file against its own checksums).
    dim : str
        The dim of the rows.
    where : str
        How the message names the store (e.g. ``"store: 'scan.nc'"``).

    Raises
    ------
    ValueError
        Naming what does not match: rows (by their coordinate along ``dim``), or the rest of the store; or a
        store without these checksums.

    Notes
    -----
    Checksums detect accidents — an edited, truncated, mixed-up or damaged store — not deliberate forgery: whoever
    edits a store can recompute them.

    Examples
    --------
    See :func:`seal_store`.
    """
    n = ds.sizes.get(dim, 0)
    sums = ds.attrs.get(ROWS_ATTR)
    if not isinstance(sums, list) or len(sums) != n or not isinstance(ds.attrs.get(REST_ATTR), str):
        raise ValueError(f"{where} has no checksum for each of its {n} rows and for the rest (attrs {ROWS_ATTR}, "
                         f"{REST_ATTR}; written by an older rds, or edited); refusing to resume — use another file "
                         "or delete it")
    got = row_checksums(ds, dim)
    bad = [ds[dim].values[i].item() if dim in ds.coords else i for i in range(n) if got[i] != sums[i]]
    problems = [f"the stored rows for {dim} = {bad} do not match their checksums"] if bad else []
    if content_checksum(ds, exclude_attrs=(ROWS_ATTR, REST_ATTR), rows=dim) != ds.attrs[REST_ATTR]:
        problems.append(f"the variables without a {dim} dim, the coordinates or the attrs do not match their "
                        "checksum")
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)} (edited after the scan wrote them); refusing to resume "
                         "— use another file or delete it")
