"""Checks of the user's functions — maps, Jacobians, region predicates — before they run or compile.

A broken map otherwise fails deep inside generated code (``<rds-generated update …>`` line 6), as a raw Numba
typing error, or not at all: a map that returns a bare value instead of a 1-tuple silently gives every member the
value of member 0 on the NumPy backend. So each function is called once, on a few members with NumPy, before the
first run of a system, and what it returns is checked against what the engine expects; before compiling, its code
is checked for what the compiled backend cannot do. Errors name the function, its file and line, what was expected
and what to do instead; the original error (NumPy's or Numba's) is chained for experts.

The checks are reusable for any elementwise user function: :func:`check_callable`, :func:`call_members`,
:func:`check_values`, :func:`check_compilable` and :func:`compile_error` take the function and a role ("map",
"Jacobian", "region predicate", …).
"""

from __future__ import annotations

import builtins
import dis
import inspect
import os
import re
import types as pytypes
import warnings

import numpy as np

__all__ = ["check_step", "check_jacobian", "check_region", "check_vector_step", "check_vector_jacobian",
           "check_vector_region", "numpy_refusal", "check_step_output",
           "check_jacobian_output", "describe", "check_callable", "call_members", "check_values", "check_compilable",
           "compile_error", "COMPILED_SUPPORT"]

#: What the compiled backend supports, for error messages.
COMPILED_SUPPORT = ("the compiled backend (Numba) compiles a plain Python function (def or lambda) of scalars: "
                    "arithmetic, comparisons, if/for/while, tuples, NumPy and math functions (np.tanh, np.exp, "
                    "np.where, np.floor, math.erf, …) and other plain Python functions, which it compiles too (a "
                    "helper is passed by calling it from the map: define it with def at module level); not: "
                    "imports inside the function, SciPy functions, Python objects, exceptions with f-strings")

_CHECKED: dict = {}


def describe(func, role: str = "map") -> str:
    """``map 'tent' (file.py, line 12)``: how errors name a user function."""
    py = getattr(func, "__func__", func)
    py = getattr(py, "py_func", py)
    name = getattr(py, "__name__", None) or type(func).__name__
    code = getattr(py, "__code__", None)
    if code is None:
        return f"{role} {name!r}"
    return f"{role} {name!r} ({code.co_filename}, line {code.co_firstlineno})"


def check_callable(func, nargs: int, role: str, signature: str):
    """Raise a TypeError in the user's terms unless ``func`` can be called with ``nargs`` positional arguments."""
    if not callable(func):
        raise TypeError(f"the {role} must be callable as {signature}, got {type(func).__name__}")
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*range(nargs))
    except TypeError:
        raise TypeError(f"{describe(func, role)} must accept {nargs} positional arguments, {signature}; it is "
                        f"defined as {getattr(func, '__name__', role)}{sig}") from None


def _sample(system, X2):
    """A few members (never as many as there are variables, so a bare value is told from a tuple) and one noise
    sample of the layout the NumPy kernels pass: ``(states (M, var), xi)``."""
    M = 3 if system.nvar != 3 else 4
    X = np.resize(np.asarray(X2, dtype=float), (M, system.nvar)) if X2.shape[0] else np.full((M, system.nvar), 0.5)
    if system.noise.quenched:
        xi = system.noise.block(0, 0, 0, 1, (0, M) if system.independent_noise else None)[0]
    else:
        xi = np.zeros(tuple(system.noise.shape) + ((M,) if system.independent_noise else ()))
    return X, xi


def _member_xi(system, xi, m):
    return xi[..., m] if system.independent_noise else xi


def call_members(func, args_of, M: int, role: str, vector_hint: str):
    """Call ``func(*args_of(None))`` on all members at once (NumPy arrays); if that raises, member by member
    (``args_of(m)``, scalars). Returns ``(output, scalar_only, vector_error)``; ``output`` is the list of the
    per-member outputs when ``scalar_only``. A function failing both ways raises its error in the user's terms.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return func(*args_of(None)), False, None
        except Exception as e:  # the user's code: anything
            vec_error = e
        try:
            outs = [func(*args_of(m)) for m in range(M)]
        except Exception:
            raise _user_error(vec_error, f"{describe(func, role)} raised {type(vec_error).__name__}: {vec_error} "
                                         f"(called on {M} members at once, and on each alone)") from vec_error
    return outs, True, vec_error


def _user_error(e, msg):
    try:
        return type(e)(msg)
    except Exception:  # an exception class with another constructor
        return TypeError(msg)


def check_values(values, count, M, func, role, what, scalar):
    """Check a returned sequence of ``count`` real values, each a scalar or an array over the members.

    ``M`` is the number of members (or the shape of the member axes); ``scalar``: called for one member."""
    shape = (M,) if isinstance(M, (int, np.integer)) else tuple(M)
    where = describe(func, role)
    if values is None:
        raise TypeError(f"{where} returned None; it must return {what} (is a 'return' missing?)")
    if isinstance(values, np.ndarray) and values.ndim >= 1 and len(values) == count and not scalar:
        values = list(values)
    if not isinstance(values, (tuple, list)):
        shape = f" of shape {np.shape(values)}" if np.ndim(values) else ""
        hint = " (for one value write (value,) with the trailing comma)" if count == 1 else ""
        raise TypeError(f"{where} returned {_a(type(values).__name__)}{shape}; it must return {what}{hint}")
    if len(values) != count:
        raise ValueError(f"{where} returned {len(values)} values; it must return {what}")
    for k, v in enumerate(values):
        a = np.asarray(v) if not isinstance(v, (str, bytes)) else None
        if a is None or a.dtype.kind not in "biuf":
            kind = "complex" if a is not None and a.dtype.kind == "c" else type(v).__name__
            raise TypeError(f"{where} returned {_a(kind)} as value {k}; it must return {what}, of real numbers")
        if scalar and a.ndim:
            raise ValueError(f"{where} returned an array of shape {a.shape} as value {k} for one member; it must "
                             f"return {what}, each a number")
        if not scalar and not _broadcasts(a.shape, shape):
            raise ValueError(f"{where} returned an array of shape {a.shape} as value {k} for members of shape "
                             f"{shape}; each value must be a number or an array over the members, shape {shape}")


def _broadcasts(a, shape) -> bool:
    try:
        return np.broadcast_shapes(a, shape) == shape
    except ValueError:
        return False


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" or noun.startswith("nd") else "a ") + noun


def _what_step(system):
    n = system.nvar
    return f"a tuple of {n} value{'s' if n > 1 else ''}, one per variable {system.variables}"


def check_step_output(system, out, M):
    """Check what ``system.step`` returned for ``M`` members (NumPy arrays)."""
    check_values(out, system.nvar, M, system.step, "map", _what_step(system), scalar=False)


def check_jacobian_output(system, J, M, scalar=False):
    """Check what an analytic Jacobian returned: ``nvar`` rows of ``nvar`` entries."""
    what = (f"{system.nvar} rows ((∂f0/∂x0, ∂f0/∂x1, …), …) of {system.nvar} entries, for the variables "
            f"{system.variables}")
    if not isinstance(J, (tuple, list, np.ndarray)) or len(J) != system.nvar:
        size = f" of length {len(J)}" if hasattr(J, "__len__") else ""
        raise TypeError(f"{describe(system.jacobian, 'Jacobian')} returned {type(J).__name__}{size}; it must return "
                        f"{what}")
    for row in J:
        check_values(row, system.nvar, M, system.jacobian, "Jacobian", what, scalar=scalar)


_VECTOR_HINT = ("on the NumPy backend each variable is an array over the members; write the function elementwise: "
                "np.where(x > 0, a, b) instead of 'if x > 0:', np.maximum instead of max, np.sin instead of math.sin, "
                "np.logical_and instead of 'and'")


def _step_args(system, X, xi, params):
    def args_of(m):
        if m is None:
            return tuple(np.ascontiguousarray(X.T)), xi, params
        return tuple(float(v) for v in X[m]), _member_xi(system, xi, m), params
    return args_of


def check_step(system, X2, ident):
    """Call the map once on a few members (all at once, else one by one) and check what it returns; returns
    ``(scalar_only, vector_error)``. Remembered per map identity ``ident`` (None: checked at every call)."""
    key = ("step", ident, system.layout)
    if ident is not None and key in _CHECKED:
        return _CHECKED[key]
    check_callable(system.step, 3, "map", "step(state, xi, params) -> tuple")
    X, xi = _sample(system, X2)
    params = system.params
    out, scalar_only, vec_error = call_members(system.step, _step_args(system, X, xi, params), len(X), "map",
                                               _VECTOR_HINT)
    if scalar_only:
        for o in out:
            check_values(o, system.nvar, 1, system.step, "map", _what_step(system), scalar=True)
    else:
        check_step_output(system, out, len(X))
    _CHECKED[key] = (scalar_only, vec_error)
    return _CHECKED[key]


def check_jacobian(system, X2, scalar_only, ident):
    """Evaluate the Jacobian (analytic, or the automatic complex step) once and check it (per identity)."""
    key = ("jac", ident, system.layout)
    if ident is not None and key in _CHECKED:
        return
    jac = system.map.jacobian_function()
    X, xi = _sample(system, X2)
    params = system.params
    args_of = _step_args(system, X, xi, params)
    role = "Jacobian" if system.jacobian is not None else "map"
    func = system.jacobian if system.jacobian is not None else system.step
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            outs = [jac(*args_of(m)) for m in range(len(X))] if scalar_only else [jac(*args_of(None))]
    except np.exceptions.ComplexWarning as e:
        from rds._complexstep import cast_error
        raise cast_error(func, e, role) from e
    except Exception as e:
        if system.jacobian is not None:
            raise _user_error(e, f"{describe(func, role)} raised {type(e).__name__}: {e}") from e
        from rds._complexstep import unsafe_operators
        m = re.search(r"ufunc '(\w+)' not supported", str(e))
        detail = (f"it applies {m.group(1)}, which has no complex version" if m else f"{type(e).__name__}: {e}")
        ops = unsafe_operators(system.step)
        if ops:
            detail += (f" (its source could not be read, so the operators {', '.join(ops)} could not be made "
                       f"complex-step safe: write np.mod, np.floor_divide, np.greater … instead)")
        raise TypeError(f"the automatic (complex-step) Jacobian of {describe(func, role)} failed: {detail}. The "
                        f"functions it supports are listed in RandomDynamicalSystem's docstring; pass an analytic "
                        f"jacobian= for others") from e
    if system.jacobian is not None:
        for J in outs:
            check_jacobian_output(system, J, 1 if scalar_only else len(X), scalar=scalar_only)
    _CHECKED[key] = True


def check_region(system, inside, X2, region_key):
    """Call the region predicate once on a few members and check it returns bools (per predicate identity)."""
    key = ("region", region_key, system.nvar)
    if key in _CHECKED:
        return
    check_callable(inside, 1, "region predicate", "inside(state) -> bool")
    X, _ = _sample(system, X2)
    where = describe(inside, "region predicate")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            r = inside(tuple(np.ascontiguousarray(X.T)))
        except Exception as e:
            raise _user_error(e, f"{where} raised {type(e).__name__}: {e} ({_VECTOR_HINT}; a region predicate is "
                                 f"always called on all members at once)") from e
    a = np.asarray(r) if not isinstance(r, (str, bytes, tuple, list)) else None
    if a is None or a.dtype.kind not in "biu":
        raise TypeError(f"{where} returned {type(r).__name__}; it must return a bool (or an array of bools over the "
                        f"members), e.g. np.logical_and(s[0] > 0, s[1] < 1)")
    if a.shape not in ((), (1,), (len(X),)):
        raise ValueError(f"{where} returned an array of shape {a.shape} for {len(X)} members; it must return one "
                         f"bool per member")
    _CHECKED[key] = True


# ------------------------------------------------------------------------------------------------ vector maps
_VECTOR_WHY = ("checked once with NumPy before any backend runs it: JAX would silently clamp an out-of-range index "
               "such as theta[5] with dim=3 or xi[3] with a batch of 2")


def _vector_sample(system, X2):
    """One member's θ (D,) and its noise sample (``noise.shape``), as the NumPy vector kernels pass them."""
    X, xi = _sample(system, X2)
    # a JAX-native map runs in the system's precision (float32 arrays for precision="float32")
    dtype = np.float32 if getattr(system.map, "native", False) and system.precision == "float32" else float
    return np.array(X[0], dtype=dtype), _member_xi(system, xi, 0)


def _call_user(func, args, role, why):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return func(*args)
        except Exception as e:  # the user's code: anything
            raise _user_error(e, f"{describe(func, role)} raised {type(e).__name__}: {e} ({why})") from e


def check_vector_step(system, X2, ident):
    """Call a vector map once with NumPy on one member and check it: it returns a real array of shape (D,), it
    indexes θ and ξ within their bounds (NumPy raises where JAX would clamp), and it is pure (the same output for
    the same input, twice). Remembered per map identity ``ident`` (None: checked at every call).

    Raises
    ------
    TypeError, ValueError
        In the user's terms: the map, its file and line, what it returned and what is expected.
    rds._identity.ImpureMapError
        Two calls with the same (θ, ξ, params) differ: the map draws its own random numbers or keeps state.
    """
    key = ("vstep", ident, system.layout)
    if ident is not None and key in _CHECKED:
        return
    check_callable(system.step, 3, "map", "step(theta, xi, params) -> theta_new")
    theta, xi = _vector_sample(system, X2)
    D, where = system.nvar, describe(system.step)
    shape = f"one member's theta of shape ({D},) and its noise sample of shape {np.shape(xi)}"
    out = _call_user(system.step, (theta.copy(), xi, system.params), "map", f"called with {shape}, {_VECTOR_WHY}")
    what = f"an array of shape ({D},), the new theta of this member"
    if out is None:
        raise TypeError(f"{where} returned None; it must return {what} (is a 'return' missing?)")
    try:
        a = np.asarray(out)
    except Exception as e:
        raise TypeError(f"{where} returned {type(out).__name__}; it must return {what}") from e
    if a.dtype.kind not in "biuf":
        kind = "complex" if a.dtype.kind == "c" else type(out).__name__ if a.dtype.kind == "O" else str(a.dtype)
        raise TypeError(f"{where} returned {_a(kind)} array for a real theta; it must return {what}, of real numbers")
    if a.shape != (D,):
        hint = " (a scalar: did it reduce over theta, e.g. np.sum?)" if a.ndim == 0 else ""
        raise ValueError(f"{where} returned an array of shape {a.shape}{hint}: the step must return {what}")
    again = np.asarray(_call_user(system.step, (theta.copy(), xi, system.params), "map", _VECTOR_WHY))
    # equal to rounding (a BLAS may sum in another order for another alignment); random draws differ by far more
    tol = 1e-9 * float(np.max(np.abs(a), initial=0.0, where=np.isfinite(a)))
    if again.shape != a.shape or not np.allclose(a, again, rtol=1e-9, atol=tol, equal_nan=True):
        from rds._identity import ImpureMapError
        raise ImpureMapError(f"{where} returned different values for the same (theta, xi, params): it draws its own "
                             f"random numbers (numpy.random, a Generator held by an object …) or keeps state between "
                             f"calls. A map must be a pure function of (theta, xi, params) — its randomness comes "
                             f"from the noise ξ, which rds replays by (seed, realization, t); JAX would freeze such a "
                             f"number into one constant for every step and member. Put it into the noise source "
                             f"(rds.noise) instead")
    _CHECKED[key] = True


def check_vector_jacobian(system, X2, ident):
    """Call a vector map's analytic Jacobian once and check it returns a real (D, D) matrix (per identity)."""
    key = ("vjac", ident, system.layout)
    if system.jacobian is None or (ident is not None and key in _CHECKED):
        return
    theta, xi = _vector_sample(system, X2)
    D, where = system.nvar, describe(system.jacobian, "Jacobian")
    J = np.asarray(_call_user(system.jacobian, (theta.copy(), xi, system.params), "Jacobian", _VECTOR_WHY))
    if J.dtype.kind not in "biuf" or J.shape != (D, D):
        raise ValueError(f"{where} returned {_a(str(J.dtype))} array of shape {J.shape}; it must return the real "
                         f"(D, D) = ({D}, {D}) matrix J[i, j] = ∂theta_new[i]/∂theta[j]")
    _CHECKED[key] = True


def check_vector_region(system, inside, X2, region_key):
    """Call a vector map's region predicate once on one member's θ and check it returns a bool (per predicate):
    a float would be taken as True by the compiled loops (every member "never exits")."""
    pred = getattr(inside, "member", inside)
    key = ("vregion", region_key, system.nvar)
    if key in _CHECKED:
        return
    check_callable(pred, 1, "region predicate", "inside(theta) -> bool")
    theta, _ = _vector_sample(system, X2)
    where = describe(pred, "region predicate")
    r = _call_user(pred, (theta.copy(),), "region predicate", f"called with one member's theta of shape "
                   f"({system.nvar},), {_VECTOR_WHY}")
    a = np.asarray(r) if not isinstance(r, (str, bytes, tuple, list)) else None
    if a is None or a.dtype.kind != "b" or a.shape not in ((), (1,)):
        got = type(r).__name__ if a is None else f"{_a(str(a.dtype))} of shape {a.shape}"
        raise TypeError(f"{where} returned {got}; it must return one bool for the member's theta, e.g. "
                        f"np.sum(theta ** 2) <= 1.0 (a number is not taken as True or False)")
    _CHECKED[key] = True


def numpy_refusal(system, vec_error):
    """The error for ``backend='numpy'`` and a map that runs only one member at a time."""
    return TypeError(f"{describe(system.step)} runs only one member at a time: on all members at once it raised "
                     f"{type(vec_error).__name__}: {vec_error}. {_VECTOR_HINT[0].upper()}{_VECTOR_HINT[1:]}; or use "
                     f"backend='numba' (or None), which calls it per member")


# ------------------------------------------------------------------------------------------------ compiled backend
_SAFE_MODULES = ("numpy", "math", "cmath", "builtins", "operator", "_operator", "numba", "rds")


def check_compilable(func, role, _seen=None, ident=None):
    """Raise in the user's terms if ``func`` (or a helper it calls) uses what the compiled backend cannot compile:
    imports inside the function, undefined names, SciPy (non-NumPy) ufuncs, non-function callables. Remembered per
    identity ``ident`` of what it reads (None: checked at every call)."""
    key = ("compilable", ident, role)
    if ident is not None and key in _CHECKED:
        return
    _seen = set() if _seen is None else _seen
    if func in _seen:
        return
    _seen.add(func)
    py = getattr(func, "py_func", func)
    if not isinstance(py, pytypes.FunctionType):
        if hasattr(func, "py_func"):
            return  # already a Numba dispatcher
        raise TypeError(f"{describe(func, role)} is a {type(func).__name__}; {COMPILED_SUPPORT}. Use backend='numpy', "
                        f"or write it as a def")
    where = describe(func, role)
    for code in _codes(py.__code__):
        for ins in dis.get_instructions(code):
            line = ins.positions.lineno if ins.positions else None
            at = f" (line {line})" if line else ""
            if ins.opname in ("IMPORT_NAME", "IMPORT_FROM"):
                raise TypeError(f"{where} imports {ins.argval!r} inside the function{at}; the compiled backend cannot "
                                f"import: import it at module level")
            if ins.opname != "LOAD_GLOBAL":
                continue
            name = ins.argval
            if name in py.__globals__:
                _check_global(py.__globals__[name], name, where, at, _seen)
            elif not hasattr(builtins, name):
                raise NameError(f"{where} uses the name {name!r}{at}, which is not defined (in the function's module "
                                f"{py.__module__!r} nor a builtin)")
    for name, cell in zip(py.__code__.co_freevars, py.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: Numba reports it
            continue
        _check_global(value, name, where, " (a variable it closes over)", _seen)
    if ident is not None:
        _CHECKED[key] = True


def _codes(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, pytypes.CodeType):
            yield from _codes(c)


def _check_global(obj, name, where, at, seen):
    if isinstance(obj, pytypes.ModuleType):
        return
    if isinstance(obj, type) and not _numba_knows(obj):
        raise TypeError(f"{where} reads the Python class {name}{at}, which the compiled backend cannot compile (it "
                        f"compiles numbers, arrays, tuples, functions and module attributes); use backend='numpy', or "
                        f"read the value from a module-level constant or a module attribute")
    if not callable(obj) and not _plain_value(obj) and not _numba_knows(obj):
        raise TypeError(f"{where} reads {name}{at}, {_a(type(obj).__name__)} object, which the compiled backend cannot "
                        f"compile (it compiles numbers, arrays, tuples, functions and module attributes); use "
                        f"backend='numpy', or pass the value as a number, an array or a module attribute")
    if isinstance(obj, pytypes.FunctionType):
        check_compilable(obj, f"helper of the {where}", seen)
        return
    if isinstance(obj, np.ufunc):
        if getattr(np, obj.__name__, None) is not obj:
            raise TypeError(f"{where} calls {name} ({_origin(obj)}){at}, a ufunc the compiled backend cannot "
                            f"compile; use backend='numpy', or a math/NumPy function (e.g. math.erf for scipy's "
                            f"erf, in a helper function). {COMPILED_SUPPORT}")
        return
    module = getattr(obj, "__module__", None) or ""
    if callable(obj) and not isinstance(obj, type) and module.split(".")[0] not in _SAFE_MODULES \
            and not hasattr(obj, "py_func") and not _numba_knows(obj):
        raise TypeError(f"{where} calls {name} ({_origin(obj)}){at}, which the compiled backend cannot compile; use "
                        f"backend='numpy'. {COMPILED_SUPPORT}")


def _plain_value(obj) -> bool:
    if isinstance(obj, (bool, int, float, complex, str, np.ndarray, np.generic)):
        return True
    return isinstance(obj, tuple) and all(_plain_value(o) or callable(o) for o in obj)


def _numba_knows(obj) -> bool:
    try:
        from numba.core.typing import typeof
        typeof.typeof(obj, typeof.Purpose.constant)
        return True
    except Exception:
        return False


def _origin(obj) -> str:
    mod = getattr(obj, "__module__", None)
    name = getattr(obj, "__name__", type(obj).__name__)
    return f"{mod}.{name}" if mod else name


_FILE_LINE = re.compile(r'File "([^"]+)", line (\d+)')


def compile_error(system, exc, kw):
    """The error to raise, in the user's terms, for an exception ``exc`` of the compiled backend (or None to
    re-raise it as is). The Numba message is chained by the caller."""
    import numba
    if isinstance(exc, SystemError) and "exception set" in str(exc):
        return RuntimeError(f"the compiled code of {describe(system.step)} raised an exception inside the parallel "
                            f"loop over members, which Numba cannot report; run it with backend='numpy' to see it")
    if not isinstance(exc, numba.core.errors.NumbaError):
        return None
    funcs = [(system.step, "map")]
    if kw.get("tangent") is not None:
        funcs.append((system.jacobian, "Jacobian") if system.jacobian is not None else (system.step, "map"))
    if kw.get("region") is not None:
        funcs.append((kw["region"], "region predicate"))
    msg = str(exc)
    culprit, at = funcs[0], ""
    for fname, line in _FILE_LINE.findall(msg):
        if fname.startswith("<rds-generated") or "/rds/" in fname or "numba" in fname:
            continue
        fname = fname if fname.startswith("<") else os.path.abspath(fname)
        at = f" at {fname}, line {line}"
        for f, role in funcs:
            code = getattr(getattr(f, "py_func", f), "__code__", None)
            if code is not None and code.co_filename in (fname, os.path.relpath(fname)):
                culprit = (f, role)
        break
    first = next((ln.strip() for ln in msg.splitlines() if ln.strip() and not ln.startswith("Failed in")), "")
    return TypeError(f"the compiled backend could not compile {describe(*culprit)}{at}: {first}. {COMPILED_SUPPORT}. "
                     f"Use backend='numpy' to run it without compiling; Numba's full message is chained above")
