"""Persistent cache of the engine's generated kernels: compiled once per machine, reused by later processes.

The compiled kernels are generated code. To let Numba's on-disk cache (``cache=True``) apply, each kernel's
complete source is written as a module file into a cache folder and imported from there, under a name derived
from a hash (SHA-256) of

* the module's full generated source;
* a *fingerprint* of every Python object it compiles in: the map, its Jacobian, the region predicate and the
  helper functions they call — their bytecode, constants, default arguments, closure cells and the globals they
  refer to (numbers, strings, arrays, other functions, recursively);
* the sources of :mod:`rds.engine` and :mod:`rds.fastmath`, the Python, NumPy, Numba and llvmlite versions and the
  host CPU.

A map whose source or constants change therefore gets a new module (and compiles anew); an unchanged one is
loaded from Numba's cache next to the module file in well under a second. Numba's own index also checks the
argument types, the CPU and the source file's contents.

Folder: ``$RDS_CACHE_DIR`` if set (an empty value, ``0`` or ``off`` turns the cache off), else
``$XDG_CACHE_HOME/rds/kernels``, else ``~/.cache/rds/kernels``. If the folder cannot be created or written (a
read-only or missing home), kernels are compiled in memory as before, without error. Writes are atomic
(a temporary file, then ``os.replace``), and the file for a given hash always has the same contents, so two
processes compiling the same kernel at once are safe; Numba writes its own cache files the same way.

Objects that cannot be fingerprinted reliably (e.g. a map closing over an arbitrary Python object, or one that
looks up a global the fingerprint cannot follow) make the kernel *uncacheable*: it is compiled in memory, as
before. Delete the folder to clear the cache.
"""

from __future__ import annotations

import builtins
import glob
import hashlib
import importlib.util
import linecache
import os
import sys
import tempfile
import types

import numpy as np

__all__ = ["ENV_VAR", "cache_dir", "fingerprint", "Uncacheable", "load_module", "is_on_disk", "flag", "flagged"]

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


# ------------------------------------------------------------------------------------------------ fingerprints
_PLAIN = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis))


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _code_parts(code, out: list, seen: set, glb: dict, depth: int):
    out.append(("code", code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                code.co_argcount, code.co_kwonlyargcount, code.co_flags))
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_parts(c, out, seen, glb, depth)
        else:
            out.append(("const", _value(c, seen, depth)))
    for name in code.co_names:
        if name in glb:
            out.append(("global", name, _value(glb[name], seen, depth, names=code.co_names)))
        elif hasattr(builtins, name):
            out.append(("builtin", name))


def _value(obj, seen: set, depth: int, names=()):
    """A hashable description of ``obj`` that changes whenever what Numba compiles from it may change."""
    if depth > 50:
        raise Uncacheable("objects nested too deeply")
    if isinstance(obj, _PLAIN):
        return (type(obj).__name__, repr(obj))
    if isinstance(obj, (np.integer, np.floating, np.bool_, np.complexfloating)):
        return ("np", obj.dtype.str, repr(obj.item()))
    if isinstance(obj, (tuple, list, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, frozenset) else obj
        return (type(obj).__name__, tuple(_value(o, seen, depth + 1) for o in items))
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest())
    if isinstance(obj, types.ModuleType):
        # a module: its name, and the functions of it this code refers to as attributes (mod.helper(...))
        attrs = []
        if obj.__name__ not in ("numpy", "math", "cmath", "numba") and not obj.__name__.startswith("rds._fast"):
            for n in names:
                a = getattr(obj, n, None)
                if isinstance(a, types.FunctionType) or _is_dispatcher(a):
                    attrs.append((n, _value(a, seen, depth + 1)))
        return ("module", obj.__name__, tuple(attrs))
    if isinstance(obj, np.ufunc):
        return ("ufunc", obj.__name__)
    if _is_dispatcher(obj):
        return ("dispatcher", repr(sorted(obj.targetoptions.items(), key=repr)), _value(obj.py_func, seen, depth + 1))
    if isinstance(obj, types.BuiltinFunctionType):
        return ("builtin", getattr(obj, "__module__", None), obj.__qualname__)
    if isinstance(obj, types.FunctionType):
        if id(obj) in seen:
            return ("recursive", obj.__qualname__)
        seen.add(id(obj))
        parts: list = [("function", obj.__module__, obj.__qualname__)]
        _code_parts(obj.__code__, parts, seen, obj.__globals__, depth + 1)
        parts.append(("defaults", _value(obj.__defaults__, seen, depth + 1)))
        if obj.__closure__:
            try:
                cells = tuple(c.cell_contents for c in obj.__closure__)
            except ValueError:  # an empty cell
                raise Uncacheable(f"{obj.__qualname__} closes over an unassigned variable") from None
            parts.append(("closure", _value(cells, seen, depth + 1)))
        return tuple(parts)
    if isinstance(obj, type):
        mod = getattr(obj, "__module__", "")
        if "<locals>" in obj.__qualname__:
            raise Uncacheable(f"{obj.__qualname__} is a local class")
        return ("type", mod, obj.__qualname__)
    raise Uncacheable(f"cannot fingerprint an object of type {type(obj).__name__}")


def _is_dispatcher(obj) -> bool:
    return hasattr(obj, "py_func") and hasattr(obj, "targetoptions")


def fingerprint(obj) -> str:
    """SHA-256 hex digest of what Numba compiles from ``obj`` (a function, with what it calls and closes over).

    Raises :class:`Uncacheable` for objects that cannot be described reliably.

    Examples
    --------
    >>> from rds._kernel_cache import fingerprint
    >>> def f(s, xi, p):
    ...     return (2.0 * s[0],)
    >>> def g(s, xi, p):
    ...     return (3.0 * s[0],)
    >>> fingerprint(f) == fingerprint(f), fingerprint(f) == fingerprint(g)
    (True, False)
    """
    return hashlib.sha256(repr(_value(obj, set(), 0)).encode()).hexdigest()


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
            _file_digest(os.path.join(here, "engine.py")), _file_digest(os.path.join(here, "fastmath.py")),
            _file_digest(__file__))


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
