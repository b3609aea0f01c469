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
``$XDG_CACHE_HOME/rds/kernels``, else ``~/.cache/rds/kernels``. Writes are atomic (a temporary file, then
``os.replace``), and the file for a given hash always has the same contents, so two processes compiling the same
kernel at once are safe; Numba writes its own cache files the same way.

**Trust.** Loading a cached kernel unpickles it, and unpickling runs code: whoever can write the folder can run
code in every process that uses it. The cache is therefore used only from a folder that only its user can write,
the rule ssh applies to ``~/.ssh`` (:func:`untrusted_reason`): the folder (and its ``__pycache__``, where Numba
keeps the compiled code) must be owned by the current user and not writable by group or others
(``mode & 0o022 == 0``); a symbolic link must itself be owned by the user and point to such a folder. A folder rds
creates is created with mode ``0o700``. A folder that breaks the rule is not used at all — nothing is read from or
written to it, kernels compile in memory — and a :class:`KernelCacheWarning` (once per folder and process) says why
and how to fix it. The same check applies to any other folder Numba would keep a kernel's compiled code in
(``NUMBA_CACHE_DIR``). On platforms without POSIX owners (Windows: no ``os.getuid``) the check is skipped.
``python -m rds`` reports whether the folder is used and, if not, why.

**Damage.** A cache entry that cannot be loaded (a truncated or garbage ``.nbi`` index or ``.nbc`` data file,
whatever the error) is deleted and the kernel compiled again, which writes a fresh entry; a generated ``.py``
module whose contents differ from the expected source (truncated, garbage) is rewritten before it is imported.

**Fall-backs.** If the folder cannot be created or written (a read-only or missing home), kernels are compiled in
memory, silently, as before. A write that fails once the folder is in use (a full disk, ``ENOSPC``, or any other
``OSError``, writing the module or Numba's index and data) makes that kernel compile in memory, with one
:class:`KernelCacheWarning` per folder and kind of error; a run never fails because of the cache.

Maps whose identity cannot be established (e.g. a map closing over an arbitrary Python object) are compiled in
memory at every call. Delete the folder to clear the cache.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import importlib.util
import linecache
import os
import stat
import sys
import tempfile
import types
import warnings

import numpy as np

__all__ = ["ENV_VAR", "KernelCacheWarning", "cache_dir", "cache_status", "untrusted_reason", "load_module",
           "is_on_disk", "flag", "flagged"]

#: Environment variable that sets the cache folder (empty, ``0``, ``off``, ``false`` or ``none``: no cache).
ENV_VAR = "RDS_CACHE_DIR"
_OFF = {"", "0", "off", "false", "none", "no"}
#: folder -> whether it is used as the cache (decided once per process; why not: _DIR_WHY)
_DIR_OK: dict = {}


def cache_dir() -> str | None:
    """The kernel cache folder, created if needed; None when caching is off or the folder is not writable.

    Also None when the folder is not trusted (:func:`untrusted_reason`), with a :class:`KernelCacheWarning`
    once per folder and process; a folder that cannot be created or written means None silently. Either way
    kernels compile in memory. The verdict on a folder is kept for the rest of the process.

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
    base = _configured_folder()
    if base is None:
        return None
    if base not in _DIR_OK:
        _DIR_OK[base], why, untrusted = _examine(base)
        _DIR_WHY[base] = (why, untrusted)
        if untrusted:
            _warn_once(("untrusted", base), _untrusted_message(base, why or ""))
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

# ------------------------------------------------------------------------------------------------ trust
#: folder -> (why it is not used, whether the trust rule refused it)
_DIR_WHY: dict[str, tuple[str | None, bool]] = {}
_WARNED: set = set()


class KernelCacheWarning(RuntimeWarning):
    """The kernel cache is not used (an untrusted folder) or could not be written (a full disk, …): the kernels
    concerned are compiled in memory, which is slower on first use but gives the same results."""


def _warn_once(key, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, KernelCacheWarning, stacklevel=3)


def _configured_folder() -> str | None:
    """The cache folder the environment asks for (absolute), or None when the cache is off or there is no home."""
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
    return os.path.abspath(base)


def untrusted_reason(path: str) -> str | None:
    """Why compiled code must not be loaded from the folder ``path``; None when it may.

    A folder is trusted when it (the folder itself, after following a symbolic link) is owned by the current
    user and not writable by group or others, and a symbolic link to it is owned by the user too: then only the
    user (and root) can have put files there. Always None where there are no POSIX owners (no ``os.getuid``).
    Raises ``OSError`` when ``path`` cannot be examined (e.g. it does not exist).

    Examples
    --------
    >>> import os, tempfile
    >>> from rds._kernel_cache import untrusted_reason
    >>> d = tempfile.mkdtemp()              # mode 0o700, owned by this user
    >>> untrusted_reason(d) is None
    True
    >>> os.chmod(d, 0o777)
    >>> untrusted_reason(d) if hasattr(os, "getuid") else "writable by group and others (mode 0o777)"
    'writable by group and others (mode 0o777)'
    >>> os.rmdir(d)
    """
    if not hasattr(os, "getuid"):  # Windows: no POSIX owners, and its mode bits say nothing about others
        return None
    uid = os.getuid()
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid != uid:
            return f"a symbolic link owned by uid {st.st_uid}, not by you (uid {uid})"
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    if st.st_uid != uid:
        return f"owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o022:
        who = {0o020: "group", 0o002: "others", 0o022: "group and others"}[st.st_mode & 0o022]
        return f"writable by {who} (mode {oct(stat.S_IMODE(st.st_mode))})"
    return None


def _untrusted_message(folder: str, why: str) -> str:
    path = os.path.join(folder, "__pycache__") if why.startswith("its __pycache__") else folder
    own = f"set {ENV_VAR} to a folder of your own"
    fix = (f"run `chmod go-w {path}` if it is yours, or {own}" if "writable by" in why else
           f"{own}, or have {path} removed (rds recreates it, private)")
    return (f"rds does not use the kernel cache folder {folder}: {why}. Cached kernels are loaded by "
            "unpickling, which runs code, so the cache is used only from a folder that only you can write (owned "
            "by you, not writable by group or others, like ~/.ssh). Kernels are compiled in memory instead (slower "
            f"first calls, same results). To fix it, {fix} ({ENV_VAR}=off turns the cache off and this warning "
            "with it).")


def _examine(base: str) -> tuple[bool, str | None, bool]:
    """``(usable, why not, refused by the trust rule)`` for the cache folder ``base``; creates it (mode 0o700)
    and its ``__pycache__`` (mode 0o700, where Numba keeps the compiled code) if they are missing."""
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
    except OSError as e:
        return False, f"it cannot be created ({e.strerror or e})", False
    try:
        why = untrusted_reason(base)
        if why is not None:
            return False, f"it is {why}", True
        pycache = os.path.join(base, "__pycache__")
        if not os.path.lexists(pycache):
            os.makedirs(pycache, mode=0o700, exist_ok=True)
        why = untrusted_reason(pycache)
        if why is not None:
            return False, f"its __pycache__ is {why}", True
        tempfile.TemporaryFile(dir=base).close()  # writable?
    except OSError as e:
        return False, f"it is not writable ({e.strerror or e})", False
    return True, None, False


def cache_status() -> dict:
    """Where the kernel cache is and whether it is used, without warning (for ``python -m rds``).

    Returns
    -------
    dict
        ``folder`` (the configured folder, None when the cache is off), ``used`` (bool), ``trusted`` (bool, or
        None when the folder could not be examined), ``reason`` (why it is not used, or None).

    Examples
    --------
    >>> from rds._kernel_cache import cache_status
    >>> s = cache_status()
    >>> s["used"] == (s["reason"] is None and s["folder"] is not None)
    True
    """
    base = _configured_folder()
    if base is None:
        return {"folder": None, "used": False, "trusted": None, "reason": f"turned off ({ENV_VAR}) or no home folder"}
    ok, why, untrusted = (_DIR_OK[base], *_DIR_WHY[base]) if base in _DIR_OK else _examine(base)
    return {"folder": base, "used": ok, "trusted": (False if untrusted else True if ok else None),
            "reason": why}


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

    Numba's cache of each jitted function of a cached module is guarded (:func:`_guard_numba_cache`): an entry
    that fails to load is deleted and compiled anew, a failed write leaves the function compiled in memory, and
    compiled code is never loaded from a folder that :func:`untrusted_reason` refuses. If the module file cannot
    be written (or Numba finds no usable folder for its cache), the module is executed in memory instead, with a
    :class:`KernelCacheWarning`.
    """
    digest = _digest(source, parts)
    if parts is None:  # not identified by its source alone (the injected objects differ): a module of its own
        _COUNT[0] += 1
        digest = f"mem{_COUNT[0]}_{digest}"
    modname = _module_name(name, digest)
    if modname in _MODULES:
        return _MODULES[modname]
    folder = cache_dir() if parts is not None else None
    mod = None
    if folder is not None:
        path = os.path.join(folder, modname + ".py")
        try:
            _write_source(folder, path, modname, source)
        except OSError as e:  # a full disk, a quota, …: this kernel compiles in memory
            _write_failed(folder, e, f"the kernel module {modname}.py")
        else:
            try:
                mod = _exec_module(modname, name, source, namespace, path)
                _guard_numba_cache(mod)
            except Exception as e:  # Numba's cache locators found no writable folder (raised while decorating)
                mod = _exec_module(modname, name, source, namespace, None)  # a genuine error raises here again
                _write_failed(folder, e, f"Numba's cache of {modname}")
    if mod is None:
        mod = _exec_module(modname, name, source, namespace, None)
    if parts is not None:
        _MODULES[modname] = mod
    return mod


def _write_source(folder: str, path: str, modname: str, source: str) -> None:
    """Write ``source`` to ``path`` unless it holds exactly that (a truncated or garbage file is replaced)."""
    data = source.encode("utf-8")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=modname, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic; every writer writes the same bytes
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _exec_module(modname: str, name: str, source: str, namespace: dict, path: str | None):
    """Execute ``source`` as the module ``modname``, backed by the file ``path`` (``CACHE = True``) or in memory."""
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
    return mod


def _write_failed(folder: str, exc: BaseException, what: str) -> None:
    """One :class:`KernelCacheWarning` per folder and kind of error: ``what`` could not be written."""
    code = getattr(exc, "errno", None)
    full = code is not None and code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    hint = "Free some disk space" if full else "Check the folder"
    _warn_once(("write", folder, code if code is not None else type(exc).__name__),
               f"rds could not write {what} to the kernel cache folder {folder} ({type(exc).__name__}: {exc}); "
               "that kernel is compiled in memory instead (slower first calls, same results). "
               f"{hint}, or set {ENV_VAR} to another folder ({ENV_VAR}=off turns the cache off).")


# ------------------------------------------------------------------------------------------------ Numba's cache
_GUARDED: list = []
_PATH_TRUST: dict[str, str | None] = {}


def _guarded_cache_class():
    """Numba's ``FunctionCache`` (the on-disk cache of one jitted function), made safe for the kernel cache:

    * loading: any error (a truncated or garbage index or data file gives ``UnpicklingError``, ``EOFError``,
      ``ValueError``, …) deletes the function's index and data files and reports a miss, so the function is
      compiled again and the fresh entry written in their place;
    * saving: any error (a full disk: ``OSError(ENOSPC)``) turns the cache of that function off — it stays
      compiled in memory — with a :class:`KernelCacheWarning`.

    None when Numba (or the class) is not there: the cache is then used unguarded.
    """
    if not _GUARDED:
        try:
            from numba.core.caching import FunctionCache
        except Exception:  # pragma: no cover - numba is a dependency
            _GUARDED.append(None)
            return None

        class GuardedFunctionCache(FunctionCache):
            def load_overload(self, sig, target_context):
                try:
                    return super().load_overload(sig, target_context)
                except Exception:  # a damaged entry: delete it, compile anew (save_overload then replaces it)
                    _discard_entry(self)
                    return None

            def save_overload(self, sig, data):
                try:
                    super().save_overload(sig, data)
                except Exception as e:  # a full disk, …: keep the function compiled in memory only
                    self.disable()
                    _write_failed(self.cache_path, e, f"Numba's compiled code ({self._name})")

        _GUARDED.append(GuardedFunctionCache)
    return _GUARDED[0]


def _discard_entry(cache) -> None:
    """Delete the index (``.nbi``) and data files (``.nbc``) of one function in Numba's cache."""
    try:
        base = os.path.join(cache.cache_path, cache._impl.filename_base)
    except Exception:  # pragma: no cover - Numba's internals changed: nothing to delete, compile anyway
        return
    for p in [base + ".nbi", *glob.glob(glob.escape(base) + ".*.nbc")]:
        try:
            os.unlink(p)
        except OSError:
            pass


def _guard_numba_cache(mod) -> None:
    """Guard the Numba cache of every jitted function ``mod`` defines (see :func:`_guarded_cache_class`), and turn
    it off where the folder Numba chose (``<folder>/__pycache__``, or under ``NUMBA_CACHE_DIR``) is not trusted."""
    guarded = _guarded_cache_class()
    if guarded is None:  # pragma: no cover
        return
    for obj in list(vars(mod).values()):
        cache = getattr(obj, "_cache", None)
        if cache is None or type(cache) is not guarded.__bases__[0]:
            continue
        if getattr(obj.py_func, "__module__", None) != mod.__name__:  # injected (step, jac, …): not cached
            continue
        cache.__class__ = guarded  # same state, guarded methods
        where = cache.cache_path
        if where not in _PATH_TRUST:
            try:
                _PATH_TRUST[where] = untrusted_reason(where)
            except OSError as e:
                _PATH_TRUST[where] = f"not examinable ({e.strerror or e})"
        why = _PATH_TRUST[where]
        if why is not None:
            cache.disable()
            _warn_once(("untrusted", where), _untrusted_message(where, f"it is {why}"))


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
