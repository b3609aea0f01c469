"""``python -m rds``: the version, the backends available on this machine and where caches live.

The first thing to paste into a bug report. ``python -m rds --json`` prints the same as JSON.

Kernel cache: compiled kernels are kept in ``$RDS_CACHE_DIR`` (``off`` turns it off), else
``$XDG_CACHE_HOME/rds/kernels`` or ``~/.cache/rds/kernels``. Loading a cached kernel unpickles it, which runs code,
so the folder is used only if it is owned by you and not writable by group or others (like ``~/.ssh``; rds creates
it with mode 0700); otherwise kernels compile in memory and this report says why. A damaged cache entry is compiled
again, and a full disk or another write error compiles in memory: the cache never fails a run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def _numba_info() -> dict[str, Any]:
    try:
        import numba
    except Exception as exc:  # pragma: no cover - numba is a dependency
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    config = numba.config
    info: dict[str, Any] = {"available": True, "version": numba.__version__,
                            "threads": int(getattr(config, "NUMBA_NUM_THREADS", 0)),
                            "threading_layer_requested": str(getattr(config, "THREADING_LAYER", "default"))}
    try:  # the layer actually used is known only once a parallel kernel has run
        @numba.njit(parallel=True, cache=False)
        def _probe(n):
            s = 0.0
            for i in numba.prange(n):
                s += i
            return s

        _probe(4)
        info["threading_layer"] = numba.threading_layer()
    except Exception as exc:
        info["threading_layer"] = f"unavailable ({type(exc).__name__}: {exc})"
    try:
        from numba.misc.numba_sysinfo import get_sysinfo  # CPU name and features as Numba sees them

        si = get_sysinfo()
        info["cpu"] = si.get("CPU Name")
        info["cpu_count"] = si.get("CPU Count")
    except Exception:
        info["cpu_count"] = os.cpu_count()
    return info


def _jax_info() -> dict[str, Any]:
    try:
        import jax
    except Exception:
        return {"available": False}
    info: dict[str, Any] = {"available": True, "version": jax.__version__}
    try:
        info["devices"] = [str(d) for d in jax.devices()]
        info["default_backend"] = jax.default_backend()
    except Exception as exc:
        info["devices"] = f"unavailable ({type(exc).__name__}: {exc})"
    try:
        import importlib

        jax_backend = importlib.import_module("rds.backends.jax")  # the JAX backend, where there is one
        info["rds_backend"] = bool(jax_backend.available())
    except Exception:
        info["rds_backend"] = False
    return info


def _cache_info() -> dict[str, Any]:
    import importlib

    try:
        _kernel_cache = importlib.import_module("rds._kernel_cache")  # the persistent kernel cache, where there is one
    except Exception:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return {"kernel_cache": None, "kernel_cache_note": "no persistent kernel cache in this version",
                "default_location": os.path.join(base, "rds")}
    var = getattr(_kernel_cache, "ENV_VAR", "RDS_CACHE_DIR")
    env = os.environ.get(var)
    status = getattr(_kernel_cache, "cache_status", None)
    if status is None:  # a version without the trust rule
        folder = _kernel_cache.cache_dir()
        return {"kernel_cache": folder, var: env,
                "kernel_cache_note": f"set {var} to move it, {var}=off to disable; delete the folder "
                                     "to clear it" if folder else "off or not writable: kernels compile in memory"}
    s = status()
    if s["used"]:
        checked = "owned by you, not writable by group or others" if hasattr(os, "getuid") else \
            "ownership not checked on this platform"
        note = f"used ({checked}); set {var} to move it, {var}=off to disable; delete the folder to clear it"
    elif s["folder"] is None:
        note = (f"turned off by {var}={env}" if env is not None else "no home folder") + \
            ": kernels compile in memory"
    elif s["trusted"] is False:
        note = (f"NOT USED, not trusted: {s['reason']}. Cached kernels are unpickled, which runs code, so the "
                "cache is used only from a folder owned by you and not writable by group or others. Kernels "
                f"compile in memory. Fix: `chmod go-w` it if it is yours, remove it (rds recreates it with mode "
                f"0700), or set {var} to a folder of your own")
    else:
        note = f"not used: {s['reason']}; kernels compile in memory"
    return {"kernel_cache": s["folder"], var: env, "kernel_cache_used": s["used"],
            "kernel_cache_trusted": s["trusted"], "kernel_cache_reason": s["reason"], "kernel_cache_note": note}


def info() -> dict[str, Any]:
    """Everything ``python -m rds`` prints, as a dict.

    Returns
    -------
    dict
        ``rds``, ``python``, ``platform``, ``numpy``, ``numba``, ``jax``, ``caches``, ``backends``.

    Examples
    --------
    >>> from rds.__main__ import info
    >>> d = info()
    >>> "numpy" in d["backends"] and d["rds"]["version"] == __import__("rds").__version__
    True
    """
    import numpy

    import rds

    numba_info = _numba_info()
    jax_info = _jax_info()
    backends = ["numpy"] + (["numba"] if numba_info.get("available") else [])
    if jax_info.get("rds_backend"):
        backends.append("jax")
    return {
        "rds": {"version": rds.__version__, "location": os.path.dirname(os.path.abspath(rds.__file__))},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "backends": backends,
        "numba": numba_info,
        "jax": jax_info,
        "caches": _cache_info(),
    }


def _format(d: dict[str, Any]) -> str:
    lines = [f"rds {d['rds']['version']}  ({d['rds']['location']})",
             f"python {d['python']} on {d['platform']}; numpy {d['numpy']}",
             f"backends available: {', '.join(d['backends'])}"]
    nb = d["numba"]
    if nb.get("available"):
        lines.append(f"  numba {nb['version']}: {nb['threads']} threads, threading layer {nb['threading_layer']}"
                     + (f", CPU {nb['cpu']}" if nb.get("cpu") else ""))
    else:
        lines.append(f"  numba: not available ({nb.get('error', '')})")
    jx = d["jax"]
    if jx.get("available"):
        lines.append(f"  jax {jx['version']}: devices {jx.get('devices')}"
                     + ("" if jx.get("rds_backend") else " (no rds JAX backend in this version)"))
    else:
        lines.append("  jax: not installed")
    c = d["caches"]
    lines.append(f"kernel cache: {c.get('kernel_cache') or c.get('default_location') or 'off'}  "
                 f"({c['kernel_cache_note']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if argv and argv[0] not in ("--json",):
        print(f"unknown argument {argv[0]!r}; use --json or --help", file=sys.stderr)
        return 2
    d = info()
    print(json.dumps(d, indent=2) if argv else _format(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
