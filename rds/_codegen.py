"""Small source-generation helpers shared by the engine and the models.

Generated functions are plain Python that run under NumPy (variables are arrays) and under Numba (scalars).
They are created with :func:`make_function`, which keeps the source in ``linecache`` so that tracebacks and
``inspect.getsource`` work, and which Numba can compile like any other function.
"""

from __future__ import annotations

import hashlib
import linecache

import numpy as np

_CACHE: dict = {}


def make_function(source: str, name: str, namespace: dict | None = None):
    """Compile ``source`` (defining ``name``) and return the function object.

    The same source with the same namespace objects returns the same function object, so compiled kernels that
    are cached by function identity are reused.
    """
    key = (source, name, tuple(sorted((k, id(v)) for k, v in (namespace or {}).items())))
    if key in _CACHE:
        return _CACHE[key][0]
    tag = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<rds-generated {name} {tag}>"
    glb = {"np": np, "__name__": f"rds._generated_{tag}"}
    if namespace:
        glb.update(namespace)
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, glb)
    _CACHE[key] = (glb[name], tuple((namespace or {}).values()))  # keep the namespace alive: ids stay valid
    return glb[name]


def tuple_src(items) -> str:
    """Source of a tuple literal (with the trailing comma a 1-tuple needs)."""
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
