"""A map's identity: a digest of everything it reads, checked at every service call.

Every backend that compiles or traces a map freezes what the map reads at that moment: Numba compiles module
constants, global arrays, closure cells and module attributes into the machine code; JAX bakes them into the traced
program; the complex-step Jacobian and the JAX clone copy the map's globals. So a compiled kernel is valid only for
the map *as it was*. The identity of a map is a SHA-256 digest of

* its bytecode, constants, names, default and keyword-default arguments, closure cells;
* the globals its code reads — numbers, strings, arrays (their bytes), tuples/lists/dicts of these, other
  functions (recursively, with what *they* read), modules and classes together with the attributes the code reads
  from them (``cfg.SCALE``, ``Cfg.table``, ``two_layer.forward``: any value, recursively);
* bound methods (function and instance), ``functools.partial`` objects and Numba dispatchers (their Python
  function);

and every kernel cache keys on it (:mod:`rds.backends`): a changed constant, array entry, closure cell, helper or
module attribute gives a new identity, so the map is compiled or traced again and every backend computes from the
map as it is now. Objects the walk cannot describe (an instance of an arbitrary class, a file handle) make the map
*unidentifiable* (:class:`Unidentifiable`): it is then not cached across calls (recompiled at every call, with one
:class:`UnidentifiedMapWarning`).

Maps must be pure: randomness comes only from the noise ξ. A map that reads ``numpy.random``, the :mod:`random`
module, a NumPy ``Generator``/``RandomState`` or a ``random.Random`` is refused (:class:`ImpureMapError`). Impurity
hidden inside an object the walk cannot see (e.g. a generator stored in an arbitrary instance) cannot be detected.

Cost: one walk of the map's code and what it reads, plus hashing its arrays; a few tens of µs for the built-in
models (``python benchmarks/identity.py``).
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import random as _stdlib_random
import types
import warnings

import numpy as np

__all__ = ["identity", "Unidentifiable", "ImpureMapError", "UnidentifiedMapWarning", "warn_unidentified",
           "global_names", "FIXED_MODULES"]


class Unidentifiable(Exception):
    """An object a map reads cannot be described reliably: the map cannot be cached across calls."""


class ImpureMapError(TypeError):
    """A map draws its own random numbers (its randomness must come from the noise ξ)."""


class UnidentifiedMapWarning(RuntimeWarning):
    """A map reads an object whose state cannot be fingerprinted: it is recompiled (not cached) at every call."""


#: Modules whose contents are fixed library code (their attributes are not part of a map's identity). ``rds``'s own
#: modules are walked like a user's (a built-in model's helpers and constants are part of its identity).
FIXED_MODULES = ("numpy", "math", "cmath", "scipy", "numba", "jax", "jaxlib", "builtins", "operator", "_operator",
                 "functools", "itertools", "collections", "llvmlite", "optax", "flax", "equinox")
_RANDOM_MODULES = ("numpy.random", "random", "secrets", "jax.random")
_PLAIN = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis), slice, range)
_MAX_DEPTH = 60


def _fixed(modname: str) -> bool:
    root = modname.split(".")[0]
    return root in FIXED_MODULES or modname.startswith("rds._fast") or modname == "rds.fastmath"


def _is_random_module(modname: str) -> bool:
    return any(modname == m or modname.startswith(m + ".") for m in _RANDOM_MODULES)


def _impure(where: str, what: str):
    raise ImpureMapError(f"{where} draws its own random numbers ({what}): a map must be a pure function of "
                         f"(state, xi, params) — all its randomness comes from the noise ξ, which rds replays by "
                         f"(seed, realization, t). Put the random input into the noise source (rds.noise) instead")


class _Walk:
    """One walk over the objects a function reads, producing a hashable, repr-able description."""

    def __init__(self, role: str):
        self.role = role
        self.seen: dict = {}
        self.where = role

    def value(self, obj, depth: int, names=()):
        if depth > _MAX_DEPTH:
            raise Unidentifiable("objects nested too deeply")
        if isinstance(obj, _PLAIN):
            return (type(obj).__name__, repr(obj))
        if isinstance(obj, (np.integer, np.floating, np.bool_, np.complexfloating)):
            return ("np", obj.dtype.str, repr(obj.item()))
        if isinstance(obj, np.dtype):
            return ("dtype", obj.str)
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                return ("objarray", obj.shape, tuple(self.value(o, depth + 1) for o in obj.ravel()))
            return ("array", obj.dtype.str, obj.shape,
                    hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest())
        if isinstance(obj, (tuple, list, frozenset, set)):
            items = sorted(obj, key=repr) if isinstance(obj, (frozenset, set)) else obj
            fields = getattr(type(obj), "_fields", None)
            return (type(obj).__qualname__ if fields else type(obj).__name__, fields,
                    tuple(self.value(o, depth + 1) for o in items))
        if isinstance(obj, dict):
            return ("dict", tuple((repr(k), self.value(v, depth + 1)) for k, v in sorted(obj.items(), key=repr)))
        if isinstance(obj, types.ModuleType):
            return self.module(obj, depth, names)
        if isinstance(obj, (np.random.Generator, np.random.RandomState, np.random.BitGenerator,
                            _stdlib_random.Random)):
            _impure(self.where, f"a {type(obj).__name__} object")
        if isinstance(obj, np.ufunc):
            return ("ufunc", obj.__name__)
        if hasattr(obj, "py_func") and hasattr(obj, "targetoptions"):  # a Numba dispatcher
            return ("dispatcher", repr(sorted(obj.targetoptions.items(), key=repr)),
                    self.value(obj.py_func, depth + 1))
        if isinstance(obj, types.BuiltinFunctionType):
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, (np.random.Generator, np.random.RandomState, _stdlib_random.Random)) or \
                    _is_random_module(getattr(obj, "__module__", None) or ""):
                _impure(self.where, f"{getattr(obj, '__module__', '')}.{obj.__name__}")
            if owner is not None and not isinstance(owner, types.ModuleType) and owner is not builtins:
                return ("builtin method", obj.__name__, self.value(owner, depth + 1))
            return ("builtin", getattr(obj, "__module__", None), obj.__qualname__)
        if isinstance(obj, types.FunctionType):
            return self.function(obj, depth)
        if isinstance(obj, types.MethodType):
            return ("method", self.value(obj.__func__, depth + 1), self.value(obj.__self__, depth + 1))
        if isinstance(obj, functools.partial):
            return ("partial", self.value(obj.func, depth + 1), self.value(obj.args, depth + 1),
                    self.value(obj.keywords, depth + 1))
        if isinstance(obj, type):
            return self.cls(obj, depth, names)
        if _is_array_like(obj):  # JAX and other array types: their values
            return ("arraylike", type(obj).__module__, self.value(np.asarray(obj), depth + 1))
        mod = type(obj).__module__ or ""
        if _fixed(mod) and not _is_random_module(mod):  # an object of fixed library code (e.g. np.float64 type)
            return ("libobject", mod, type(obj).__qualname__, repr(obj)[:200])
        raise Unidentifiable(f"{self.where} reads an object of type {type(obj).__qualname__} whose state cannot "
                             f"be fingerprinted")

    def module(self, mod, depth, names):
        name = mod.__name__
        if _is_random_module(name):
            _impure(self.where, f"the module {name}")
        if _fixed(name):
            if name == "numpy" and "random" in names:
                _impure(self.where, "numpy.random")
            return ("module", name)
        attrs = []
        for n in names:  # the attributes the code reads from it: any value, recursively
            if n in mod.__dict__:
                attrs.append((n, self.value(mod.__dict__[n], depth + 1, names)))
        return ("module", name, tuple(attrs))

    def cls(self, cls, depth, names):
        mod = cls.__module__ or ""
        if _fixed(mod):
            return ("type", mod, cls.__qualname__)
        key = id(cls)
        if key in self.seen:
            return ("recursive", cls.__qualname__)
        self.seen[key] = cls
        attrs = []
        for n in names:
            for base in cls.__mro__:
                if n in base.__dict__ and base is not object:
                    v = base.__dict__[n]
                    if isinstance(v, (staticmethod, classmethod)):
                        v = v.__func__
                    if isinstance(v, property):
                        v = v.fget
                    attrs.append((n, self.value(v, depth + 1, names)))
                    break
        fields = getattr(cls, "_fields", None)
        return ("type", mod, cls.__qualname__, fields, tuple(attrs))

    def function(self, f, depth):
        if id(f) in self.seen:
            return ("recursive", f.__qualname__)
        self.seen[id(f)] = f
        parts: list = [("function", f.__module__, f.__qualname__)]
        self.code(f.__code__, parts, f.__globals__, depth + 1)
        parts.append(("defaults", self.value(f.__defaults__, depth + 1)))
        parts.append(("kwdefaults", self.value(f.__kwdefaults__, depth + 1)))
        if f.__closure__:
            cells = []
            for name, c in zip(f.__code__.co_freevars, f.__closure__):
                try:
                    contents = c.cell_contents
                except ValueError:  # an empty cell (a variable not assigned yet): described as such, and
                    cells.append((name, ("empty cell",)))  # re-read at every call like any other cell
                    continue
                cells.append((name, self.value(contents, depth + 1, _all_names(f.__code__))))
            parts.append(("closure", tuple(cells)))
        return tuple(parts)

    def code(self, code, out, glb, depth):
        names = _all_names(code)
        out.append(("code", code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                    code.co_argcount, code.co_kwonlyargcount, code.co_flags))
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                self.code(c, out, glb, depth)
            else:
                out.append(("const", self.value(c, depth)))
        for name in code.co_names:
            if name in glb:
                out.append(("global", name, self.value(glb[name], depth, names)))
            elif hasattr(builtins, name):
                out.append(("builtin", name))


def _all_names(code) -> tuple:
    return tuple(sorted(global_names(code)))


def _is_array_like(obj) -> bool:
    return hasattr(obj, "__array__") and hasattr(obj, "shape") and hasattr(obj, "dtype")


def global_names(code) -> set:
    """The names a code object (and the code objects nested in it) looks up: globals and attributes.

    Examples
    --------
    >>> def f(x):
    ...     return np.tanh(x) + cfg.SCALE
    >>> sorted(global_names(f.__code__))
    ['SCALE', 'cfg', 'np', 'tanh']
    """
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= global_names(c)
    return names


def identity(*objs, role: str = "map") -> str:
    """SHA-256 hex digest of everything the functions ``objs`` read (see the module docstring).

    Parameters
    ----------
    *objs
        Functions (maps, Jacobians, predicates), parameter tuples, or any values the walk describes; ``None`` is
        allowed (e.g. no analytic Jacobian).
    role : str
        How errors name the object (``"map 'step' (file.py, line 3)"``).

    Returns
    -------
    str
        64 hex digits; equal for equal maps, different when anything the map reads changed.

    Raises
    ------
    Unidentifiable
        An object cannot be described (the caller then does not cache across calls).
    ImpureMapError
        The map reads a random number generator.

    Examples
    --------
    >>> def make(a):
    ...     def f(s, xi, p):
    ...         return (a * s[0],)
    ...     return f
    >>> identity(make(1.0)) == identity(make(1.0)), identity(make(1.0)) == identity(make(2.0))
    (True, False)
    """
    walk = _Walk(role)
    return hashlib.sha256(repr(tuple(walk.value(o, 0) for o in objs)).encode()).hexdigest()


_WARNED: set = set()


def warn_unidentified(func, reason: str, stacklevel: int = 4) -> None:
    """Warn once per function object that it is not cached across calls (it reads what cannot be fingerprinted)."""
    key = (id(func), getattr(func, "__qualname__", None))
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(f"{reason}; rds cannot tell when it changes, so its kernels are rebuilt at every call (slower "
                  f"on the compiled backends) instead of possibly running a stale copy. Read plain numbers, arrays, "
                  f"functions and modules instead to have it cached", UnidentifiedMapWarning, stacklevel=stacklevel)
