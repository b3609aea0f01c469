"""Exact automatic Jacobians by complex-step differentiation, for smooth and piecewise-smooth maps.

The automatic Jacobian of a map φ is ``J e_j = Im φ(θ + i h e_j) / h`` with h = 1e-20: no subtraction, so it is
exact to rounding wherever φ is differentiable (the h² terms are 1e-40 relative). That needs φ to be evaluated
with complex arguments *as the analytic extension of a real function*. Polynomials, ``np.exp``, ``np.tanh``,
``np.sin`` … are; the piecewise functions a user reaches for (``np.abs``, ``np.floor``, ``%``, ``np.where``,
comparisons …) are not: NumPy's ``abs`` of a complex number is its modulus (derivative lost), ``np.floor`` and ``%``
refuse complex numbers, and Numba cannot compare them.

So the Jacobian never calls the user's map itself but a *clone* of it (:func:`complex_step_clone`) that computes
the same real function with complex-step-safe pieces:

* its globals see ``numpy`` / ``math`` through :data:`complex_numpy` / :data:`complex_math`: NumPy (or math) with
  the functions of :data:`SUPPORTED` replaced by versions that act on the real part where the function is piecewise
  constant (``floor(z) = floor(Re z)``), select by the real part where it is piecewise (``abs(z) = z·sign(Re z)``,
  ``maximum``, ``where``, ``clip`` …), and carry the derivative where NumPy has no complex loop
  (``mod(z, a) = mod(Re z, a) + i Im z``, ``arctan2``, ``hypot``, ``cbrt`` …). The builtins ``abs``, ``min``,
  ``max``, ``round`` and ``divmod`` are shadowed the same way, and helper functions the map calls are cloned too;
* its source is rewritten (an AST transform) so that the operators ``<  <=  >  >=  ==  !=``, ``%`` and ``//``
  act on real parts (:data:`ops`).

Every substitute runs on NumPy arrays (NumPy backend) and has a Numba overload for scalars (compiled backend), so
both backends differentiate the same clone. At a kink the derivative is the one-sided one of the branch the real
part selects (``abs`` at 0: 0). A function of NumPy with no complex loop that is not in :data:`SUPPORTED` raises
a ``TypeError`` naming it; pass an analytic ``jacobian=`` for such maps. The clone reads the map's module globals
once, when it is made (as the compiled backend does).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import dis
import inspect
import linecache
import math
import threading
import types as pytypes
import warnings

import numpy as np
from numba import types
from numba.core import errors as nb_errors
from numba.extending import overload

from rds import fastmath
from rds._codegen import make_function, tuple_src
from rds._identity import global_names

__all__ = ["COMPLEX_STEP", "SUPPORTED", "complex_numpy", "complex_math", "ops", "complex_step_clone",
           "complex_step_jacobian_source", "jacobian_function", "ComplexStepError", "casts_are_errors",
           "cast_error"]

#: Complex-step size of the automatic Jacobian: J e_j = Im f(x + i h e_j) / h, exact to rounding.
COMPLEX_STEP = 1e-20

_ol = dict(inline="always")


class ComplexStepError(TypeError):
    """The automatic (complex-step) Jacobian cannot differentiate a map: it casts its complex argument to real,
    dropping the imaginary part that carries the derivative (the Jacobian would silently be wrong)."""


def cast_error(func, exc, role: str = "map") -> ComplexStepError:
    """The error, in the user's terms, for a ``ComplexWarning`` ``exc`` raised while differentiating ``func``.

    Names the function (file, line) and the line of the cast, found in the warning's traceback.
    """
    from rds._mapcheck import describe
    tb, at = exc.__traceback__, ""
    while tb is not None:  # the innermost Python frame: the line that cast (in the map or a helper it calls)
        at = f" at {tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return ComplexStepError(
        f"the automatic (complex-step) Jacobian of {describe(func, role)} cannot differentiate it: complex values "
        f"were cast to real{at} (np.asarray(x, dtype=float), x.astype(float), float(x), np.float64(x) or storing "
        f"into a float array drop the imaginary part that carries the derivative, so the Jacobian would be wrong). "
        f"Keep those values as they are (complex), pass an analytic jacobian=, or use backend='jax' for a vector "
        f"map")


_CASTS_LOCK = threading.RLock()


@contextlib.contextmanager
def casts_are_errors(func, role: str = "map"):
    """Context: a ``ComplexWarning`` (a complex value cast to real) while evaluating the complex step of ``func``
    is a :class:`ComplexStepError` naming the map and the line of the cast, never a silently wrong Jacobian.

    The warnings filter is process-wide (Python's ``warnings.catch_warnings``), so evaluations under it are
    serialised by a lock (they are Python-bound reference evaluations; the compiled backends do not use it).

    Examples
    --------
    >>> import numpy as np
    >>> from rds._complexstep import casts_are_errors, ComplexStepError
    >>> def lossy(s, xi, p):
    ...     return (np.asarray(s[0], dtype=float) * 2.0,)
    >>> try:
    ...     with casts_are_errors(lossy):
    ...         lossy((np.array([1.0 + 1e-20j]),), None, ())
    ... except ComplexStepError as e:
    ...     print(str(e)[:70])
    the automatic (complex-step) Jacobian of map 'lossy' (<doctest rds._co
    """
    with _CASTS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            yield
        except np.exceptions.ComplexWarning as e:
            raise cast_error(func, e, role) from e


def complex_step_jacobian_source(nvar: int) -> str:
    """Source of the automatic Jacobian ``jac(s, xi, params)`` by complex-step differentiation.

    ``J[i][j] = Im(step(s + i h e_j))_i / h`` with h = 1e-20: no subtractive cancellation, so it is exact to
    rounding. ``step`` must be the complex-step-safe clone of the map (:func:`jacobian_function` binds it).
    """
    h = repr(COMPLEX_STEP)
    lines = ["def jac(s, xi, params):"]
    for j in range(nvar):
        arg = tuple_src(f"s[{i}] + {h}j" if i == j else f"s[{i}] + 0j" for i in range(nvar))
        lines.append(f"    c{j} = step({arg}, xi, params)")
    rows = [tuple_src(f"c{j}[{i}].imag / {h}" for j in range(nvar)) for i in range(nvar)]
    lines.append("    return " + tuple_src(rows))
    return "\n".join(lines) + "\n"


def jacobian_function(step, nvar: int):
    """The automatic Jacobian ``jac(state, xi, params)`` of ``step``: rows ``((∂f0/∂x0, …), …)``, exact.

    Made once per map identity by the backends (:meth:`rds.maps.ElementwiseMap.jacobian_function`).

    Examples
    --------
    >>> import numpy as np
    >>> from rds._complexstep import jacobian_function
    >>> tent = lambda s, xi, p: (1.0 - np.abs(1.0 - 2.0 * s[0]),)
    >>> jac = jacobian_function(tent, 1)
    >>> [float(jac((x,), None, ())[0][0]) for x in (0.2, 0.7)]
    [2.0, -2.0]
    """
    return make_function(complex_step_jacobian_source(nvar), "jac", {"step": complex_step_clone(step)})


# ------------------------------------------------------------------------------------------------ primitives
def _is_complex(x) -> bool:
    return isinstance(x, complex) or getattr(getattr(x, "dtype", None), "kind", None) == "c"


def _any_complex(*args) -> bool:
    return any(_is_complex(a) for a in args)


def _re(x):
    """Real part of a complex value; other values unchanged (tuples, arrays of reals, strings …)."""
    return x.real if _is_complex(x) else x


def _im(x):
    return x.imag if _is_complex(x) else 0.0


def _cplx(re, im):
    """``re + i im`` built from the parts (so that a NaN imaginary part does not leak into the real one)."""
    if np.ndim(re) == 0 and np.ndim(im) == 0:
        return complex(float(re), float(im))
    re, im = np.asarray(re, dtype=float), np.asarray(im, dtype=float)
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), dtype=complex)
    out.real = re
    out.imag = im
    return out


def _sel(cond, a, b):
    """``a`` where ``cond`` else ``b`` (elementwise on arrays; a scalar stays a scalar)."""
    if np.ndim(cond) == 0 and np.ndim(a) == 0 and np.ndim(b) == 0:
        return a if cond else b
    return np.where(cond, a, b)


def _truth(c):
    return _re(c) != 0 if _is_complex(c) else c


@overload(_re, **_ol)
def _re_ol(x):
    if isinstance(x, types.Complex) or (isinstance(x, types.Array) and isinstance(x.dtype, types.Complex)):
        return lambda x: x.real
    return lambda x: x


@overload(_im, **_ol)
def _im_ol(x):
    if isinstance(x, types.Complex) or (isinstance(x, types.Array) and isinstance(x.dtype, types.Complex)):
        return lambda x: x.imag
    return lambda x: 0.0


@overload(_cplx, **_ol)
def _cplx_ol(re, im):
    if isinstance(re, types.Number) and isinstance(im, types.Number):
        return lambda re, im: complex(re, im)
    return None


@overload(_sel, **_ol)
def _sel_ol(cond, a, b):
    if isinstance(cond, (types.Boolean, types.Number)):
        return lambda cond, a, b: a if cond else b
    return lambda cond, a, b: np.where(cond, a, b)


@overload(_truth, **_ol)
def _truth_ol(c):
    if isinstance(c, types.Complex):
        return lambda c: c.real != 0
    return lambda c: c


def _copy_function(f):
    return pytypes.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)


def _is_complex_type(t) -> bool:
    return isinstance(t, types.Complex) or (isinstance(t, types.Array) and isinstance(t.dtype, types.Complex))


def _dual(name, real, cplx, nargs):
    """A substitute ``name``: NumPy's/math's ``real`` on real arguments, ``cplx`` (the complex-step extension)
    as soon as one argument is complex, on NumPy arrays and (by a Numba overload) on compiled scalars."""
    if nargs == 1:
        def stub(x):
            return cplx(x) if _is_complex(x) else real(x)
    else:
        def stub(x, y):  # type: ignore[misc]
            return cplx(x, y) if _any_complex(x, y) else real(x, y)
    stub.__name__ = stub.__qualname__ = name
    stub.__doc__ = f"Complex-step-safe ``{name}`` (see :mod:`rds._complexstep`)."
    _same(cplx)

    def typer(*args):
        c = any(_is_complex_type(a) for a in args)
        if nargs == 1:
            return (lambda x: cplx(x)) if c else (lambda x: real(x))
        return (lambda x, y: cplx(x, y)) if c else (lambda x, y: real(x, y))
    typer.__signature__ = inspect.signature(stub)
    overload(stub, **_ol)(typer)
    return stub


_REGISTERED: set = set()


def _same(py, nargs=None):
    """A substitute whose one Python body (built from the primitives above) also compiles under Numba."""
    if py in _REGISTERED:
        return py
    _REGISTERED.add(py)
    body = _copy_function(py)

    def typer(*args):
        return body
    typer.__signature__ = inspect.signature(py)
    overload(py, **_ol)(typer)
    return py


# ------------------------------------------------------------------------------------------------ substitutes
# piecewise constant: the function of the real part (derivative 0)
def _of_real(f, name):
    def g(x):
        return f(_re(x))
    g.__name__ = g.__qualname__ = name
    return _same(g, 1)


def _of_real2(f, name):
    def g(x, y):
        return f(_re(x), _re(y))
    g.__name__ = g.__qualname__ = name
    return _same(g, 2)


def _abs(x):
    return _sel(_re(x) >= 0, x, -x)  # at 0 the right derivative, +1: the tent map's floating-point orbit hits 0.5


def _maximum(a, b):
    ra, rb = _re(a), _re(b)
    return _sel(np.logical_or(ra >= rb, ra != ra), a, b)


def _minimum(a, b):
    ra, rb = _re(a), _re(b)
    return _sel(np.logical_or(ra <= rb, ra != ra), a, b)


def _fmax(a, b):
    ra, rb = _re(a), _re(b)
    return _sel(np.logical_or(ra >= rb, rb != rb), a, b)


def _fmin(a, b):
    ra, rb = _re(a), _re(b)
    return _sel(np.logical_or(ra <= rb, rb != rb), a, b)


def _where(cond, a, b):
    return _sel(_truth(cond), a, b)


def _copysign(x, s):
    return _abs(x) * _sel(np.signbit(_re(s)), -1.0, 1.0)


def _mod_c(x, a):
    rx, ra = _re(x), _re(a)
    return _cplx(np.mod(rx, ra), _im(x) - _im(a) * np.floor_divide(rx, ra))


def _fmod_c(x, a):
    rx, ra = _re(x), _re(a)
    return _cplx(np.fmod(rx, ra), _im(x) - _im(a) * np.trunc(rx / ra))


def _arctan2_c(y, x):
    ry, rx = _re(y), _re(x)
    return _cplx(np.arctan2(ry, rx), (rx * _im(y) - ry * _im(x)) / (rx * rx + ry * ry))


def _hypot_c(a, b):
    ra, rb = _re(a), _re(b)
    r = np.hypot(ra, rb)
    return _cplx(r, (ra * _im(a) + rb * _im(b)) / r)


def _logaddexp_c(a, b):
    ra, rb = _re(a), _re(b)
    r = np.logaddexp(ra, rb)
    return _cplx(r, _im(a) * np.exp(ra - r) + _im(b) * np.exp(rb - r))


def _logaddexp2_c(a, b):
    ra, rb = _re(a), _re(b)
    r = np.logaddexp2(ra, rb)
    return _cplx(r, _im(a) * np.exp2(ra - r) + _im(b) * np.exp2(rb - r))


def _cbrt_c(x):
    r = np.cbrt(_re(x))
    return _cplx(r, _im(x) / (3.0 * r * r))


def _deg2rad_c(x):
    return x * (math.pi / 180.0)


def _rad2deg_c(x):
    return x * (180.0 / math.pi)


def _erf_c(x):
    r = _re(x)
    return _cplx(math.erf(r), _im(x) * (2.0 / math.sqrt(math.pi)) * math.exp(-r * r))


def _erfc_c(x):
    r = _re(x)
    return _cplx(math.erfc(r), -_im(x) * (2.0 / math.sqrt(math.pi)) * math.exp(-r * r))


def _identity(x):
    return x


def _zero_like(x):
    return 0.0 * _re(x)


def _angle(x):
    return np.angle(_re(x))


def _real_round(x, decimals=0):
    return np.round(_re(x), decimals)


@overload(_real_round, **_ol)
def _real_round_ol(x, decimals=0):
    def impl(x, decimals=0):
        return np.round(_re(x), decimals)
    return impl


def _clip(a, a_min=None, a_max=None):
    if a_min is not None:
        a = _maximum(a, a_min)
    if a_max is not None:
        a = _minimum(a, a_max)
    return a


@overload(_clip, **_ol)
def _clip_ol(a, a_min=None, a_max=None):
    if _none(a_min) and _none(a_max):
        return lambda a, a_min=None, a_max=None: a
    if _none(a_min):
        return lambda a, a_min=None, a_max=None: _minimum_s(a, a_max)
    if _none(a_max):
        return lambda a, a_min=None, a_max=None: _maximum_s(a, a_min)
    return lambda a, a_min=None, a_max=None: _minimum_s(_maximum_s(a, a_min), a_max)


def _none(t) -> bool:
    return t is None or isinstance(t, (types.NoneType, types.Omitted))


def _divmod_np(a, b):
    if _any_complex(a, b):
        return np.floor_divide(_re(a), _re(b)), _mod_c(a, b)
    return np.divmod(a, b)


@overload(_divmod_np, **_ol)
def _divmod_np_ol(a, b):
    if _is_complex_type(a) or _is_complex_type(b):
        return lambda a, b: (np.floor_divide(_re(a), _re(b)), _mod_c(a, b))
    return lambda a, b: (np.floor_divide(a, b), np.mod(a, b))


def _modf(x):
    if _is_complex(x):
        t = np.trunc(_re(x))
        return x - t, t
    return np.modf(x)


@overload(_modf, **_ol)
def _modf_ol(x):
    if _is_complex_type(x):
        def impl(x):
            t = np.trunc(_re(x))
            return x - t, t
        return impl
    return lambda x: (x - np.trunc(x), np.trunc(x))


for _f in (_abs, _maximum, _minimum, _fmax, _fmin, _where, _copysign, _mod_c, _fmod_c, _arctan2_c, _hypot_c,
           _logaddexp_c, _logaddexp2_c, _cbrt_c, _deg2rad_c, _rad2deg_c, _erf_c, _erfc_c, _identity, _zero_like,
           _angle):
    _same(_f)
_abs_s = _abs
_maximum_s, _minimum_s, _where_s = _maximum, _minimum, _where

_PIECEWISE_CONSTANT = {n: _of_real(getattr(np, n), n) for n in
                       ("floor", "ceil", "trunc", "rint", "fix", "sign", "signbit", "isnan", "isinf", "isfinite",
                        "logical_not")}
_PIECEWISE_CONSTANT2 = {n: _of_real2(getattr(np, n), n) for n in
                        ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and",
                         "logical_or", "logical_xor", "heaviside", "floor_divide")}

#: name -> substitute in :data:`complex_numpy` (the functions the automatic Jacobian supports beyond the analytic
#: ones NumPy computes on complex numbers: ``exp``, ``log``, ``sin``, ``tanh``, ``sqrt``, ``power`` …).
SUPPORTED: dict = {
    **_PIECEWISE_CONSTANT, **_PIECEWISE_CONSTANT2,
    "abs": _abs_s, "absolute": _abs_s, "fabs": _abs_s,
    "maximum": _maximum_s, "minimum": _minimum_s, "fmax": _fmax, "fmin": _fmin,
    "clip": _clip, "where": _where_s, "copysign": _copysign,
    "round": _real_round, "around": _real_round,
    "mod": _dual("mod", np.mod, _mod_c, 2), "remainder": _dual("remainder", np.remainder, _mod_c, 2),
    "fmod": _dual("fmod", np.fmod, _fmod_c, 2),
    "arctan2": _dual("arctan2", np.arctan2, _arctan2_c, 2),
    "divmod": _divmod_np, "modf": _modf, "hypot": _dual("hypot", np.hypot, _hypot_c, 2),
    "logaddexp": _dual("logaddexp", np.logaddexp, _logaddexp_c, 2),
    "logaddexp2": _dual("logaddexp2", np.logaddexp2, _logaddexp2_c, 2),
    "cbrt": _dual("cbrt", np.cbrt, _cbrt_c, 1),
    "deg2rad": _dual("deg2rad", np.deg2rad, _deg2rad_c, 1), "radians": _dual("radians", np.radians, _deg2rad_c, 1),
    "rad2deg": _dual("rad2deg", np.rad2deg, _rad2deg_c, 1), "degrees": _dual("degrees", np.degrees, _rad2deg_c, 1),
    "real": _identity, "conj": _identity, "conjugate": _identity, "imag": _zero_like, "angle": _angle,
}
for _alias, _name in (("round_", "round"), ("atan2", "arctan2")):
    if _alias in vars(np):
        SUPPORTED[_alias] = SUPPORTED[_name]


def _denied(name, ufunc):
    """A stand-in for a NumPy ufunc with no complex loop and no substitute: itself on reals, a clear error on the
    complex arguments of the automatic Jacobian."""
    msg = (f"np.{name} has no complex-step extension, so the automatic Jacobian cannot differentiate a map that "
           f"applies it to the state; pass an analytic jacobian= to RandomDynamicalSystem, or use a supported "
           f"function (see RandomDynamicalSystem's docstring)")

    if ufunc.nin == 1:
        def stub(x):
            if _is_complex(x):
                raise TypeError(msg)
            return ufunc(x)
    else:
        def stub(x, y):  # type: ignore[misc]
            if _any_complex(x, y):
                raise TypeError(msg)
            return ufunc(x, y)
    stub.__name__ = stub.__qualname__ = name

    def typer(*args):
        if any(_is_complex_type(a) for a in args):
            raise nb_errors.TypingError(msg)
        return (lambda x: ufunc(x)) if ufunc.nin == 1 else (lambda x, y: ufunc(x, y))
    typer.__signature__ = inspect.signature(stub)
    overload(stub, **_ol)(typer)
    return stub


def _has_complex_loop(u) -> bool:
    return any(t.split("->")[0].count(c) for t in u.types for c in "FDG")


_DENIED = {n: _denied(n, u) for n, u in vars(np).items()
           if isinstance(u, np.ufunc) and n not in SUPPORTED and u.nin in (1, 2) and not _has_complex_loop(u)}


def _namespace(modname, base, replacements):
    mod = pytypes.ModuleType(modname, f"{base.__name__} with complex-step-safe functions (rds._complexstep)")
    mod.__dict__.update({k: v for k, v in vars(base).items() if not k.startswith("__")})
    mod.__dict__.update(replacements)
    return mod


#: Stand-in for ``numpy`` in the globals of the Jacobian's clone of a map (its fast elementary functions on reals).
complex_numpy = _namespace("rds._complex_numpy", fastmath.fast_numpy, {**_DENIED, **SUPPORTED})

_MATH = {"floor": SUPPORTED["floor"], "ceil": SUPPORTED["ceil"], "trunc": SUPPORTED["trunc"],
         "fabs": _abs_s, "copysign": SUPPORTED["copysign"], "fmod": SUPPORTED["fmod"],
         "atan2": SUPPORTED["arctan2"], "hypot": SUPPORTED["hypot"], "isnan": SUPPORTED["isnan"],
         "isinf": SUPPORTED["isinf"], "isfinite": SUPPORTED["isfinite"], "degrees": SUPPORTED["degrees"],
         "radians": SUPPORTED["radians"], "cbrt": SUPPORTED["cbrt"],
         "erf": _dual("erf", math.erf, _erf_c, 1), "erfc": _dual("erfc", math.erfc, _erfc_c, 1),
         "pow": fastmath.fast_numpy.power}
for _n in ("sqrt", "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan",
           "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "exp2"):
    _np_name = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh", "acosh": "arccosh",
                "atanh": "arctanh"}.get(_n, _n)
    if hasattr(math, _n):
        _MATH[_n] = getattr(fastmath.fast_numpy, _np_name)
#: Stand-in for ``math`` in the globals of the Jacobian's clone (math functions that accept complex numbers).
complex_math = _namespace("rds._complex_math", math, _MATH)


# builtins shadowed in the clone's globals
def _abs_builtin(x):
    return _abs(x) if _is_complex(x) else builtins.abs(x)


def _max_builtin(a, b=None, c=None):
    if b is None:
        return builtins.max(a, key=_re)
    return builtins.max((a, b) if c is None else (a, b, c), key=_re)


def _min_builtin(a, b=None, c=None):
    if b is None:
        return builtins.min(a, key=_re)
    return builtins.min((a, b) if c is None else (a, b, c), key=_re)


def _round_builtin(x, ndigits=None):
    return builtins.round(_re(x)) if ndigits is None else builtins.round(_re(x), ndigits)


def _divmod_builtin(a, b):
    if _any_complex(a, b):
        return np.floor_divide(_re(a), _re(b)), _mod_c(a, b)
    return builtins.divmod(a, b)


@overload(_abs_builtin, **_ol)
def _abs_builtin_ol(x):
    if isinstance(x, types.Complex):
        return lambda x: x if x.real >= 0 else -x
    return lambda x: abs(x)


@overload(_max_builtin, **_ol)
def _max_builtin_ol(a, b=None, c=None):
    if _none(b):
        return None  # max(iterable): Numba's own
    if _none(c):
        return lambda a, b=None, c=None: b if _re(b) > _re(a) else a

    def impl(a, b=None, c=None):
        m = b if _re(b) > _re(a) else a
        return c if _re(c) > _re(m) else m
    return impl


@overload(_min_builtin, **_ol)
def _min_builtin_ol(a, b=None, c=None):
    if _none(b):
        return None
    if _none(c):
        return lambda a, b=None, c=None: b if _re(b) < _re(a) else a

    def impl(a, b=None, c=None):
        m = b if _re(b) < _re(a) else a
        return c if _re(c) < _re(m) else m
    return impl


@overload(_round_builtin, **_ol)
def _round_builtin_ol(x, ndigits=None):
    if ndigits is None or isinstance(ndigits, (types.NoneType, types.Omitted)):
        return lambda x, ndigits=None: round(_re(x))
    return lambda x, ndigits=None: round(_re(x), ndigits)


@overload(_divmod_builtin, **_ol)
def _divmod_builtin_ol(a, b):
    if _is_complex_type(a) or _is_complex_type(b):
        return lambda a, b: (np.floor_divide(_re(a), _re(b)), _mod_c(a, b))
    return lambda a, b: divmod(a, b)


_impl = pytypes.ModuleType("rds._complex_impl", "Implementations behind the forwarders of rds._complexstep.")


def _forwarder(name, impl):
    """A plain function ``name`` calling ``impl`` through a module attribute: bound as a global of a clone, it is
    compiled by the engine like any helper, and the call inside it resolves to ``impl``'s Numba overload."""
    key = f"f{len(vars(_impl))}_{name}"
    setattr(_impl, key, impl)
    sig = inspect.signature(impl)
    params = ", ".join(sig.parameters)
    ns = {"_rds_impl": _impl}
    exec(f"def {name}{sig}:\n    return _rds_impl.{key}({params})\n", ns)
    fwd = ns[name]
    fwd.__doc__ = f"Complex-step-safe ``{name}`` (see :mod:`rds._complexstep`)."
    return fwd


_BUILTINS = {name: _forwarder(name, f) for name, f in
             (("abs", _abs_builtin), ("max", _max_builtin), ("min", _min_builtin), ("round", _round_builtin),
              ("divmod", _divmod_builtin))}


# operators, for the AST transform
def _lt(a, b):
    return _re(a) < _re(b)


def _le(a, b):
    return _re(a) <= _re(b)


def _gt(a, b):
    return _re(a) > _re(b)


def _ge(a, b):
    return _re(a) >= _re(b)


def _eq(a, b):
    return _re(a) == _re(b)


def _ne(a, b):
    return _re(a) != _re(b)


def _mod_op(a, b):
    return _mod_c(a, b) if _any_complex(a, b) else a % b


def _floordiv_op(a, b):
    return np.floor_divide(_re(a), _re(b)) if _any_complex(a, b) else a // b


@overload(_mod_op, **_ol)
def _mod_op_ol(a, b):
    if _is_complex_type(a) or _is_complex_type(b):
        return lambda a, b: _mod_c(a, b)
    return lambda a, b: a % b


@overload(_floordiv_op, **_ol)
def _floordiv_op_ol(a, b):
    if _is_complex_type(a) or _is_complex_type(b):
        return lambda a, b: np.floor_divide(_re(a), _re(b))
    return lambda a, b: a // b


ops = pytypes.ModuleType("rds._complex_ops", "Operators on real parts, for the complex-step clone of a map.")
for _name, _f in (("lt", _lt), ("le", _le), ("gt", _gt), ("ge", _ge), ("eq", _eq), ("ne", _ne)):
    ops.__dict__[_name] = _same(_f, 2)
ops.mod = _mod_op  # type: ignore[attr-defined]
ops.floordiv = _floordiv_op  # type: ignore[attr-defined]

_OPS_NAME = "_rds_complex_ops"
_CMP = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_BINOPS = {ast.Mod: "mod", ast.FloorDiv: "floordiv"}


class _RealPartOperators(ast.NodeTransformer):
    """Rewrite ``a < b`` (…), ``a % b`` and ``a // b`` (and ``%=``, ``//=``) into calls of :data:`ops`."""

    def _call(self, name, args, node):
        fn = ast.Attribute(value=ast.Name(id=_OPS_NAME, ctx=ast.Load()), attr=name, ctx=ast.Load())
        return ast.copy_location(ast.Call(func=fn, args=args, keywords=[]), node)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if type(node.op) in _BINOPS:
            return self._call(_BINOPS[type(node.op)], [node.left, node.right], node)
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        if type(node.op) not in _BINOPS:
            return node
        load = copy.deepcopy(node.target)
        for n in ast.walk(load):
            if hasattr(n, "ctx"):
                n.ctx = ast.Load()
        value = self._call(_BINOPS[type(node.op)], [load, node.value], node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)

    def visit_Compare(self, node):
        self.generic_visit(node)
        if not all(type(op) in _CMP for op in node.ops):
            return node
        terms, left = [], node.left
        for op, right in zip(node.ops, node.comparators):
            terms.append(self._call(_CMP[type(op)], [left, right], node))
            left = right
        if len(terms) == 1:
            return terms[0]
        return ast.copy_location(ast.BoolOp(op=ast.And(), values=terms), node)


# ------------------------------------------------------------------------------------------------ the clone
_SUBST_BY_ID: dict = {}


def _substitutes_by_id():
    """id(original function) -> (original, forwarder to its substitute), for globals bound to single functions."""
    if not _SUBST_BY_ID:
        for base, table in ((np, {**_DENIED, **SUPPORTED}), (math, _MATH)):
            for name, sub in table.items():
                obj = getattr(base, name, None)
                if obj is not None and id(obj) not in _SUBST_BY_ID:
                    _SUBST_BY_ID[id(obj)] = (obj, _forwarder(name, sub))
    return _SUBST_BY_ID


def _ours(obj) -> bool:
    return any(obj is f for f in fastmath.FAST_FUNCTIONS.values()) or getattr(obj, "__globals__", None) in (
        globals(), vars(fastmath)) or getattr(obj, "__globals__", {}).get("_rds_impl") is _impl


def _substitute(obj, memo):
    """The complex-step-safe stand-in of a global or closure value of a map (itself if it needs none)."""
    if _ours(obj):
        return obj
    if obj is np or obj is fastmath.fast_numpy:
        return complex_numpy
    if obj is math or obj is fastmath.fast_math:
        return complex_math
    if isinstance(obj, (pytypes.FunctionType, pytypes.MethodType)) or hasattr(obj, "py_func"):
        return complex_step_clone(obj, memo)
    hit = _substitutes_by_id().get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    return obj


def complex_step_clone(func, _memo=None):
    """The complex-step-safe clone of a map (or of a helper it calls): same real function, exact derivatives.

    See the module docstring. Functions that are not plain Python functions (builtins, callable objects) are
    returned unchanged. The clone copies the globals the map reads *now*; the backends make it once per map
    identity (:func:`rds.backends.kernels_for`), so a changed map is cloned again.

    Examples
    --------
    >>> import numpy as np
    >>> from rds._complexstep import complex_step_clone
    >>> def doubling(s, xi, p):
    ...     return ((2.0 * s[0]) % 1.0,)
    >>> z = complex_step_clone(doubling)((0.7 + 1e-20j,), None, ())[0]
    >>> round(z.real, 12), z.imag / 1e-20
    (0.4, 2.0)
    """
    memo = {} if _memo is None else _memo
    if func in memo:
        return memo[func]
    if isinstance(func, pytypes.MethodType):
        out = pytypes.MethodType(complex_step_clone(func.__func__, memo), func.__self__)
        memo[func] = out
        return out
    py = getattr(func, "py_func", func)  # a Numba dispatcher: clone its Python function
    if not isinstance(py, pytypes.FunctionType):
        return func
    glb = dict(py.__globals__)
    clone = pytypes.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)
    memo[func] = clone  # before the recursion: a recursive helper refers to its own clone
    try:
        code = _transformed_code(py)
    except Exception:  # never let reading the source break a run: the clone then keeps the operators as they are
        code = None
    glb[_OPS_NAME] = ops
    for name, sub in _BUILTINS.items():
        if name not in glb:
            glb[name] = sub
    for name in global_names(code or py.__code__):
        if name in py.__globals__:
            glb[name] = _substitute(py.__globals__[name], memo)
    closure = py.__closure__
    if closure:
        closure = tuple(_substituted_cell(c, memo) for c in closure)
    new = pytypes.FunctionType(code or py.__code__, glb, py.__name__, py.__defaults__, closure)
    new.__kwdefaults__ = py.__kwdefaults__
    new.__doc__ = py.__doc__
    new.__module__ = py.__module__
    new.__qualname__ = py.__qualname__
    new.__wrapped__ = py
    memo[func] = new
    glb.update({k: new for k, v in glb.items() if v is clone})  # a recursive function calls its own clone
    return new


def _substituted_cell(cell, memo):
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return cell
    sub = _substitute(value, memo)
    return cell if sub is value else pytypes.CellType(sub)


def _transformed_code(py):
    """The code of ``py`` with operators acting on real parts (None where the source cannot be found)."""
    node = _find_node(py)
    if node is None:
        return None
    freevars = py.__code__.co_freevars
    node = _RealPartOperators().visit(copy.deepcopy(node))
    code = _compile_in_factory(node, freevars, py.__code__.co_filename, py.__name__)
    if code is None or code.co_freevars != freevars:
        return None
    return code


def _compile_in_factory(node, freevars, filename, name):
    """Compile a function node inside a factory whose parameters are ``freevars`` (so they stay free variables);
    return the function's code object."""
    if isinstance(node, ast.Lambda):
        stmt = ast.Assign(targets=[ast.Name(id="__rds_f__", ctx=ast.Store())], value=node)
        ast.copy_location(stmt, node)
    else:
        stmt = node
        stmt.decorator_list = []
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=v) for v in freevars], kwonlyargs=[], kw_defaults=[],
                         defaults=[])
    extra = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    factory = ast.FunctionDef(name="__rds_factory__", args=args, body=[stmt], decorator_list=[], returns=None,
                              **extra)
    ast.copy_location(factory, node)
    module = ast.fix_missing_locations(ast.Module(body=[factory], type_ignores=[]))
    try:
        mod_code = compile(module, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, TypeError):
        return None
    fcode = next(c for c in mod_code.co_consts if isinstance(c, pytypes.CodeType))
    target = "<lambda>" if isinstance(node, ast.Lambda) else name
    for c in fcode.co_consts:
        if isinstance(c, pytypes.CodeType) and c.co_name == target:
            return c
    return None


def _find_node(py):
    """The AST node of ``py`` in its source file, checked against its bytecode (None if it cannot be found)."""
    code = py.__code__
    lines = linecache.getlines(code.co_filename, py.__globals__)
    if not lines:
        return None
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return None
    want_lambda = code.co_name == "<lambda>"
    candidates = []
    for node in ast.walk(tree):
        if want_lambda and isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno:
            candidates.append(node)
        elif (not want_lambda and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
              and node.name == code.co_name
              and min([node.lineno] + [d.lineno for d in node.decorator_list]) == code.co_firstlineno):
            candidates.append(node)
    for node in candidates:  # the one whose own compilation matches this code (not a later edit of the file)
        c = _compile_in_factory(copy.deepcopy(node), code.co_freevars, code.co_filename, code.co_name)
        if c is not None and _signature_of(c) == _signature_of(code):
            return node
    return None


def _signature_of(code):
    """What a recompilation of the same source must reproduce (the exact bytecode may differ, e.g. the method-call
    optimisation of CPython 3.11)."""
    consts = tuple(_signature_of(c) if isinstance(c, pytypes.CodeType) else repr(c) for c in code.co_consts
                   if c is not None)
    return (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_varnames, code.co_names,
            code.co_freevars, code.co_cellvars, consts, sorted({ln for _, _, ln in code.co_lines() if ln}))


def _uses_operators(code) -> list:
    """Operators the clone cannot make safe without the source (for an error message)."""
    found = set()
    for ins in dis.get_instructions(code):
        if ins.opname == "COMPARE_OP":
            found.add("comparisons")
        elif ins.opname == "BINARY_OP" and ins.argrepr in ("%", "//", "%=", "//="):
            found.add(ins.argrepr.rstrip("="))
    return sorted(found)


def unsafe_operators(func) -> list:
    """The operators (``%``, ``//``, comparisons) the clone of ``func`` could not rewrite, its source being
    unavailable (e.g. a lambda typed at ``python -c``); empty when the source was found."""
    py = getattr(func, "__func__", func)
    py = getattr(py, "py_func", py)
    if not isinstance(py, pytypes.FunctionType) or _find_node(py) is not None:
        return []
    return _uses_operators(py.__code__)

