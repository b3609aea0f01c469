"""Persistent cache of the engine's generated kernels: compiled once per machine, reused by later processes.

The compiled kernels are generated code. To let Numba's on-disk cache (``cache=True``) apply, each kernel's
complete source is written as a module file into a cache folder and imported from there, under a name derived
from a hash (SHA-256) of

* the module's full generated source;
* the *identity* of every Python object it compiles in (:mod:`rds._identity`): the map, its Jacobian, the region
  predicate and the helper functions they call — their bytecode, constants, default arguments, closure cells and
  the globals and module attributes they read (numbers, strings, arrays, other functions, recursively);
* the sources of the engine, the Numba backend and :mod:`rds.fastmath`, the Python, NumPy, Numba and llvmlite
  versions and the host CPU.

A map whose source or constants change therefore gets a new module (and compiles anew); an unchanged one is
loaded from Numba's cache next to the module file in well under a second. Numba's own index also checks the
argument types, the CPU and the source file's contents.

Folder: ``$RDS_CACHE_DIR`` if set (an empty value, ``0`` or ``off`` turns the cache off), else
``$XDG_CACHE_HOME/rds/kernels``, else ``~/.cache/rds/kernels``. If the folder cannot be created or written (a
read-only or missing home), kernels are compiled in memory as before, without error. Writes are atomic
(a temporary file, then ``os.replace``), and the file for a given hash always has the same contents, so two
processes compiling the same kernel at once are safe; Numba writes its own cache files the same way.

Maps whose identity cannot be established (e.g. a map closing over an arbitrary Python object) are compiled in
memory at every call. Delete the folder to clear the cache.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import linecache
import os
import sys
import tempfile
import types

import numpy as np

__all__ = ["ENV_VAR", "cache_dir", "load_module", "is_on_disk", "flag", "flagged"]

#: Environment variable that sets the cache folder (empty, ``0``, ``off``, ``false`` or ``none``: no cache).
ENV_VAR = "RDS_CACHE_DIR"
_OFF = {"", "0", "off", "false", "none", "no"}
_DIR_OK: dict = {}


class Uncacheable(Exception):
    """An object compiled into a kernel cannot be fingerprinted reliably: compile that kernel in memory."""


def cache_dir() -> str | None:
    """The kernel cache folder, created if needed; None when caching is off or the folder is not writable.

    Returns
    -------
    str or None

    Examples
    --------
    >>> import os
    >>> from rds._kernel_cache import cache_dir
    >>> d = cache_dir()
    >>> d is None or os.path.isdir(d)
    True
    """
    env = os.environ.get(ENV_VAR)
    if env is not None:
        if env.strip().lower() in _OFF:
            return None
        base = os.path.expanduser(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        if not xdg:
            home = os.path.expanduser("~")
            if not home or home == "~":
                return None
            xdg = os.path.join(home, ".cache")
        base = os.path.join(xdg, "rds", "kernels")
    base = os.path.abspath(base)
    if base not in _DIR_OK:
        try:
            os.makedirs(base, exist_ok=True)
            tempfile.TemporaryFile(dir=base).close()  # writable?
            _DIR_OK[base] = True
        except OSError:
            _DIR_OK[base] = False
    return base if _DIR_OK[base] else None


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


#: The library sources a compiled kernel depends on (besides the map, whose identity is in ``parts``).
_SOURCES = (("engine.py",), ("fastmath.py",), ("_identity.py",), ("backends", "numba.py"), ("backends", "_sources.py"))


def _environment() -> tuple:
    import llvmlite
    import numba
    from llvmlite import binding as ll
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        cpu: tuple = (ll.get_host_cpu_name(), ll.get_host_cpu_features().flatten())
    except Exception:  # pragma: no cover
        cpu = ("unknown",)
    return (sys.version, np.__version__, numba.__version__, llvmlite.__version__, cpu,
            *(_file_digest(os.path.join(here, *f)) for f in _SOURCES), _file_digest(__file__))


_ENV: list = []


def _digest(source: str, parts) -> str:
    if not _ENV:
        _ENV.append(_environment())
    return hashlib.sha256(repr((source, parts, _ENV[0])).encode()).hexdigest()[:24]


try:  # at import: the digests are of the engine sources this process runs (not of a file edited later)
    _ENV.append(_environment())
except Exception:  # pragma: no cover - computed again (and raising) at the first kernel
    pass

# ------------------------------------------------------------------------------------------------ modules
_MODULES: dict = {}
_COUNT = [0]


def _module_name(name: str, digest: str) -> str:
    return f"rds_kernel_{name}_{digest}"


def load_module(name: str, source: str, namespace: dict, parts):
    """Import the generated kernel module ``source`` with ``namespace`` injected into its globals.

    ``parts``: the fingerprints of the injected objects, or None for an uncacheable kernel. With a cache folder
    and ``parts``, the source is written (once, atomically) to ``<folder>/rds_kernel_<name>_<hash>.py`` and
    imported from there with ``CACHE = True`` (the module's jitted functions use ``cache=CACHE``); otherwise it
    is executed in memory with ``CACHE = False``. Returns the module.
    """
    digest = _digest(source, parts)
    if parts is None:  # not identified by its source alone (the injected objects differ): a module of its own
        _COUNT[0] += 1
        digest = f"mem{_COUNT[0]}_{digest}"
    modname = _module_name(name, digest)
    if modname in _MODULES:
        return _MODULES[modname]
    folder = cache_dir() if parts is not None else None
    path = None
    if folder is not None:
        path = os.path.join(folder, modname + ".py")
        try:
            if not os.path.exists(path) or _read(path) != source:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=modname, suffix=".tmp")
                try:
                    with os.fdopen(fd, "w") as f:
                        f.write(source)
                    os.replace(tmp, path)  # atomic; every writer writes the same bytes
                except BaseException:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                    raise
        except OSError:
            path = None
    mod = types.ModuleType(modname, f"rds generated kernel {name}")
    mod.__dict__.update(namespace)
    mod.CACHE = path is not None  # type: ignore[attr-defined]
    if path is not None:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod.__file__ = path
        mod.__spec__ = spec
        filename = path
    else:
        filename = f"<rds-kernel {modname}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    sys.modules[modname] = mod  # Numba rebuilds a cached function's environment by importing its module
    try:
        exec(compile(source, filename, "exec"), mod.__dict__)
    except BaseException:
        del sys.modules[modname]
        raise
    if parts is not None:
        _MODULES[modname] = mod
    return mod


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def is_on_disk(name: str, source: str, parts, function: str = "kernel*") -> bool:
    """True when Numba's on-disk cache holds a compiled ``function`` (a glob pattern) of this kernel module."""
    if parts is None:
        return False
    folder = cache_dir()
    if folder is None:
        return False
    modname = _module_name(name, _digest(source, parts))
    return bool(glob.glob(os.path.join(folder, "__pycache__", f"{modname}.{function}-*.nbi")))


def _flag_path(name: str, parts) -> str | None:
    folder = cache_dir() if parts is not None else None
    if folder is None:
        return None
    return os.path.join(folder, f"rds_flag_{name}_{_digest('', parts)}")


_FLAGS: set = set()


def flag(name: str, parts) -> None:
    """Remember (in this process and on disk) a fact about a kernel, e.g. "the fixed-length noise vector fails"."""
    _FLAGS.add((name, repr(parts)))
    path = _flag_path(name, parts)
    if path is not None:
        try:
            with open(path, "w"):
                pass
        except OSError:
            pass


def flagged(name: str, parts) -> bool:
    """Whether :func:`flag` was called for ``(name, parts)`` (in this process or an earlier one)."""
    if (name, repr(parts)) in _FLAGS:
        return True
    path = _flag_path(name, parts)
    return path is not None and os.path.exists(path)
