"""Vectorisable elementary functions for the compiled (Numba) backend.

Numba lowers ``np.tanh``, ``np.exp``, … on scalars to calls into the C math library. A call cannot be vectorised
by LLVM, so a member loop around a map that calls ``np.tanh`` runs one member at a time at libm speed (≈60 M
tanh/s), several times slower than NumPy's SIMD ufuncs. This module provides branch-free, call-free
implementations (range reduction + polynomial, with bit manipulation of the IEEE representation) that LLVM inlines
and vectorises over the member loop, accurate to a few ulp (see ``benchmarks/engine.py`` / the tests for the
measured maximum error).

The maps themselves are not changed: when the engine compiles a map it gives the compiled clone a substitute
``np`` (and ``math``) namespace, :data:`fast_numpy` / :data:`fast_math`, in which these functions replace the
usual ones. They dispatch on the argument type at compile time: real scalars use the vectorisable code; complex
scalars (the complex-step Jacobian) and arrays fall back to Numba's normal implementation. Called from Python
they are the NumPy functions.

Note: Intel SVML (which lets Numba vectorise libm calls) needs an SVML-patched llvmlite; the llvmlite wheels on
PyPI are not patched (``python -m numba -s`` reports "SVML Operational: False" even with ``intel-cmplr-lib-rt``
installed), so SVML is not a route for a pip-installed library.
"""

from __future__ import annotations

import math
import operator
import types as pytypes

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, overload_attribute, register_model

__all__ = ["FAST_FUNCTIONS", "fast_numpy", "fast_math", "substitute_globals", "NoiseVecType", "nvec", "TRIG_MAX"]

_opts = dict(error_model="numpy", inline="always")


# ------------------------------------------------------------------------------------------------ bit casts
@intrinsic
def _f2i(typingctx, x):
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _i2f(typingctx, i):
    if i != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


# ------------------------------------------------------------------------------------------------ constants
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: (x + SHIFT) - SHIFT rounds x to the nearest integer
_SHIFT_BITS = 0x4338000000000000  # its bit pattern: bits(x + SHIFT) - _SHIFT_BITS = round(x) for |x| < 2**51
_INF = math.inf
_NAN = math.nan


@njit(error_model="numpy", inline="always")
def _where(cond, a, b):
    """``a if cond else b``: a tiny function LLVM inlines as a select (kept out of Numba-IR inlining, whose
    handling of branches in nested inlined functions is fragile)."""
    return a if cond else b


@njit(**_opts)
def _pow2(k):
    """2**k for integer k in [-1022, 1023] (as float64), by building the exponent field."""
    return _i2f((k + np.int64(1023)) << np.int64(52))


@njit(**_opts)
def _reduce_ln2(a):
    """a = k ln2 + r with |r| <= ln2/2; returns (k as int64, expm1(r))."""
    # round with the magic shift; k is read off the bits of the shifted value (AVX2 has no vector double->int64
    # conversion, so np.int64(kf) would be scalarised). NaN input: r is NaN, k is garbage but harmless.
    t = a * _INV_LN2 + _SHIFT
    kf = t - _SHIFT
    r = _fma(-kf, _LN2_LO, _fma(-kf, _LN2_HI, a))
    # expm1(r) by its Taylor series to r**13 (|r| <= 0.347: truncation < 2e-17 relative), Horner with FMA
    q = _fma(r, 1.0 / 6227020800.0, 1.0 / 479001600.0)
    q = _fma(r, q, 1.0 / 39916800.0)
    q = _fma(r, q, 1.0 / 3628800.0)
    q = _fma(r, q, 1.0 / 362880.0)
    q = _fma(r, q, 1.0 / 40320.0)
    q = _fma(r, q, 1.0 / 5040.0)
    q = _fma(r, q, 1.0 / 720.0)
    q = _fma(r, q, 1.0 / 120.0)
    q = _fma(r, q, 1.0 / 24.0)
    q = _fma(r, q, 1.0 / 6.0)
    q = _fma(r, q, 0.5)
    p = _fma(r * r, q, r)
    return _f2i(t) - _SHIFT_BITS, p


@njit(**_opts)
def _expm1_f(x):
    a = _where(x > 710.0, 710.0, x)
    a = _where(a < -40.0, -40.0, a)  # expm1(-40) rounds to -1
    k, p = _reduce_ln2(a)
    h = k >> np.int64(1)
    s1 = _pow2(h)
    s2 = _pow2(k - h)
    # 2**k p + (2**k - 1), scaled in two factors so that k = 1024 does not overflow early
    return _fma(p, s1, s1 - _pow2(h - k)) * s2


@njit(**_opts)
def _exp_f(x):
    a = _where(x > 710.0, 710.0, x)
    a = _where(a < -746.0, -746.0, a)
    k, p = _reduce_ln2(a)
    h = k >> np.int64(1)
    s1 = _pow2(h)
    s2 = _pow2(k - h)
    return _fma(s1, p, s1) * s2


@njit(**_opts)
def _tanh_f(x):
    a = _where(x > 20.0, 20.0, x)  # tanh(±20) rounds to ±1
    a = _where(a < -20.0, -20.0, a)
    k, p = _reduce_ln2(2.0 * a)  # |k| <= 58: one scale factor
    s = _pow2(k)
    e = _fma(p, s, s - 1.0)  # expm1(2a)
    return e / (e + 2.0)


@njit(**_opts)
def _sinh_f(x):
    # 2 sinh a = E + E / (E + 1) with E = expm1(a) (no cancellation for small a); for a > 709, where E overflows
    # first, sinh a = (h / 2) h with h = exp(a / 2)
    a = abs(x)
    big = a > 709.0
    e = _expm1_f(_where(big, 0.5 * a, a))
    h = e + 1.0
    r = _where(big, (0.5 * h) * h, 0.5 * (e + e / h))
    return _where(x == x, math.copysign(r, x), x)


@njit(**_opts)
def _cosh_f(x):
    a = abs(x)
    big = a > 709.0
    e = _exp_f(_where(big, 0.5 * a, a))
    return _where(big, (0.5 * e) * e, 0.5 * (e + 1.0 / e))


_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@njit(**_opts)
def _log_f(x):
    # fdlibm e_log.c, with the branches turned into selects
    sub = x < 2.2250738585072014e-308
    xs = _where(sub, x * 18014398509481984.0, x)  # 2**54
    hx = _f2i(xs)
    k = (hx >> np.int64(52)) - np.int64(1023)
    k = _where(sub, k - np.int64(54), k)
    m = _i2f((hx & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))  # mantissa in [1, 2)
    big = m > 1.4142135623730951
    m = _where(big, 0.5 * m, m)
    k = _where(big, k + np.int64(1), k)
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    R = t2 + t1
    dk = _i2f(k + _SHIFT_BITS) - _SHIFT  # float(k) without a (scalarised) int64->double conversion
    res = dk * _LN2_HI - ((hfsq - (s * (hfsq + R) + dk * _LN2_LO)) - f)
    res = _where(x < _INF, res, x)  # +inf -> inf, NaN -> NaN
    special = _where(x == 0.0, -_INF, _NAN)
    return _where(x > 0.0, res, special)


_P0 = 1.5707963267948966  # pi/2 = _P0 + _P1 + _P2 + _P3 to ~210 bits
_P1 = 6.123233995736766e-17
_P2 = -1.4973849048591698e-33
_P3 = 5.562271104316826e-50
_INV_PIO2 = 6.36619772367581382433e-01
#: Largest |x| for which sin/cos/tan are computed (accurately); above it (and for inf/NaN) they return NaN.
TRIG_MAX = 2.0 ** 50

_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11


@intrinsic
def _fma(typingctx, a, b, c):
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, sig, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(**_opts)
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(**_opts)
def _sincos_reduced(x):
    """(sin, cos) of x (NaN for |x| >= TRIG_MAX or non-finite): fdlibm kernels after an exact reduction.

    x = k pi/2 + r, with k x pi/2 evaluated in double-double (FMA products, pi/2 to ~210 bits), so r is accurate
    to a few ulp for every |x| < 2**50.
    """
    ok = abs(x) < TRIG_MAX
    xc = _where(ok, x, 0.0)
    tk = xc * _INV_PIO2 + _SHIFT
    kf = tk - _SHIFT
    h = kf * _P0
    e = _fma(kf, _P0, -h)          # kf * P0 = h + e exactly
    r0 = xc - h                    # exact (Sterbenz)
    t = kf * _P1
    et = _fma(kf, _P1, -t)
    s1, e1 = _two_sum(r0, -e)
    s2, e2 = _two_sum(s1, -t)
    lo = ((e1 + e2) - et) - (kf * _P2 + kf * _P3)
    # for |x| > ~1e14 the rounding of x * 2/pi can leave |s2| up to ~0.95 > pi/4: one more (exact) step
    tk2 = s2 * _INV_PIO2 + _SHIFT
    k2 = tk2 - _SHIFT
    s3 = s2 - k2 * _P0  # exact (k2 in {-1, 0, 1}, Sterbenz)
    lo = lo - (k2 * _P1 + k2 * _P2)
    r = s3 + lo
    tail = lo - (r - s3)
    n = (_f2i(tk) + _f2i(tk2)) & np.int64(3)  # the low bits of the shifted values are k, k2 mod 4
    # __kernel_sin(r, tail)
    z = r * r
    v = z * r
    q = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    ks = r - ((z * (0.5 * tail - v * q) - tail) - v * _S1)
    # __kernel_cos(r, tail)
    q = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    ar = abs(r)
    qx = _i2f((_f2i(ar) - np.int64(0x0020000000000000)) & np.int64(-4294967296))  # ~ |r|/4, high word only
    qx = _where(ar > 0.78125, 0.28125, qx)
    qx = _where(ar < 0.3, 0.0, qx)
    hz = 0.5 * z - qx
    kc = (1.0 - qx) - (hz - (z * q - r * tail))
    odd = (n & np.int64(1)) != 0
    s = _where(odd, kc, ks)
    c = _where(odd, ks, kc)
    s = _where((n & np.int64(2)) != 0, -s, s)
    c = _where(((n + np.int64(1)) & np.int64(2)) != 0, -c, c)
    s = _where(ok, s, _NAN)
    c = _where(ok, c, _NAN)
    return s, c


@njit(**_opts)
def _sin_f(x):
    return _sincos_reduced(x)[0]


@njit(**_opts)
def _cos_f(x):
    return _sincos_reduced(x)[1]


@njit(**_opts)
def _tan_f(x):
    s, c = _sincos_reduced(x)
    return s / c


@njit(**_opts)
def _log1p_f(x):
    # log1p(x) = log(u) + (x - (u - 1)) / u with u = 1 + x (Goldberg's correction, exact for u != 1)
    u = 1.0 + x
    d = u - 1.0
    corr = (x - d) / u
    r = _log_f(u) + _where(u < _INF, corr, 0.0)
    return _where(d == 0.0, x, r)


# ------------------------------------------------------------------------------------------------ dispatch
def _make(name, real_impl, np_func):
    """A Python function (NumPy's, from Python) with a Numba overload: fast for reals, usual otherwise."""

    def stub(x):
        return np_func(x)
    stub.__name__ = name
    stub.__qualname__ = f"fast_{name}"
    stub.__doc__ = f"Vectorisable ``{name}`` under Numba for real scalars (NumPy's ``{name}`` otherwise)."

    @overload(stub, inline="always")
    def _ol(x):
        if isinstance(x, (types.Float, types.Integer, types.Boolean)):
            def impl(x):
                return real_impl(np.float64(x))
            return impl
        if isinstance(x, (types.Complex, types.Array)):
            def impl(x):
                return np_func(x)
            return impl
        return None
    return stub


#: name -> (vectorisable real implementation, the NumPy ufunc it replaces, the math function it replaces)
_TABLE = {
    "tanh": (_tanh_f, np.tanh, math.tanh),
    "exp": (_exp_f, np.exp, math.exp),
    "expm1": (_expm1_f, np.expm1, math.expm1),
    "log": (_log_f, np.log, math.log),
    "log1p": (_log1p_f, np.log1p, math.log1p),
    "sinh": (_sinh_f, np.sinh, math.sinh),
    "cosh": (_cosh_f, np.cosh, math.cosh),
    "sin": (_sin_f, np.sin, math.sin),
    "cos": (_cos_f, np.cos, math.cos),
    "tan": (_tan_f, np.tan, math.tan),
}

FAST_FUNCTIONS = {name: _make(name, impl, npf) for name, (impl, npf, _) in _TABLE.items()}


def _namespace(modname, base, replacements):
    mod = pytypes.ModuleType(modname, f"{base.__name__} with vectorisable elementary functions for Numba")
    mod.__dict__.update({k: v for k, v in vars(base).items() if not k.startswith("__")})
    mod.__dict__.update(replacements)
    return mod


#: A stand-in for ``numpy`` in the globals of compiled maps: ``np.tanh`` etc. are the fast versions.
fast_numpy = _namespace("rds._fast_numpy", np, FAST_FUNCTIONS)
#: A stand-in for ``math`` in the globals of compiled maps.
fast_math = _namespace("rds._fast_math", math, {n: FAST_FUNCTIONS[n] for n in _TABLE if hasattr(math, n)})

_REPLACEMENTS = [(obj, FAST_FUNCTIONS[name]) for name, (_impl, npf, mf) in _TABLE.items() for obj in (npf, mf)]


def substitute_globals(glb: dict, names) -> dict:
    """Replace, in a copy of a function's globals, ``numpy``/``math`` and their elementary functions by fast ones.

    Only the global ``names`` the function uses are looked at (``func.__code__.co_names``).
    """
    out = dict(glb)
    for name in names:
        obj = glb.get(name)
        if obj is np:
            out[name] = fast_numpy
        elif obj is math:
            out[name] = fast_math
        else:
            for orig, fast in _REPLACEMENTS:
                if obj is orig:
                    out[name] = fast
    return out


# ------------------------------------------------------------------------------------------------ noise vectors
class NoiseVecType(types.Type):
    """One step's noise sample of fixed length ``n`` (a compile-time constant) under Numba.

    Supports what a map does with an array sample — ``xi[k]``, ``xi.shape``, ``xi.size``, ``xi.ndim``,
    ``len(xi)`` — with the same meaning; anything else is a typing error, and the engine then falls back to an array
    sample. Its length being a constant lets LLVM unroll a map's loop over the batch, so the member loop around the
    map vectorises.
    """

    def __init__(self, n):
        self.n = int(n)
        super().__init__(name=f"NoiseVec({self.n})")


@register_model(NoiseVecType)
class _NoiseVecModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("data", types.UniTuple(types.float64, fe_type.n))])


@intrinsic
def nvec(typingctx, tup):
    """Wrap a tuple of floats as a :class:`NoiseVecType` (no copy)."""
    if not (isinstance(tup, types.UniTuple) and tup.dtype == types.float64):
        return None
    rtype = NoiseVecType(tup.count)

    def codegen(context, builder, sig, args):
        nv = cgutils.create_struct_proxy(rtype)(context, builder)
        nv.data = args[0]
        return nv._getvalue()
    return rtype(tup), codegen


@intrinsic
def _nvec_data(typingctx, nv):
    if not isinstance(nv, NoiseVecType):
        return None
    ttype = types.UniTuple(types.float64, nv.n)

    def codegen(context, builder, sig, args):
        return cgutils.create_struct_proxy(nv)(context, builder, value=args[0]).data
    return ttype(nv), codegen


@overload(operator.getitem, inline="always")
def _nvec_getitem(nv, k):
    if isinstance(nv, NoiseVecType) and isinstance(k, types.Integer):
        def impl(nv, k):
            return _nvec_data(nv)[k]
        return impl
    return None


@overload(len, inline="always")
def _nvec_len(nv):
    if isinstance(nv, NoiseVecType):
        n = nv.n
        return lambda nv: n
    return None


@overload_attribute(NoiseVecType, "shape", inline="always")
def _nvec_shape(nv):
    n = nv.n
    return lambda nv: (n,)


@overload_attribute(NoiseVecType, "size", inline="always")
def _nvec_size(nv):
    n = nv.n
    return lambda nv: n


@overload_attribute(NoiseVecType, "ndim", inline="always")
def _nvec_ndim(nv):
    return lambda nv: 1


# ------------------------------------------------------------------------------------------------ piecewise (scalars)
# Maps written elementwise use np.where and np.clip on scalars under Numba, where np.where of scalars returns a 0-d
# array and np.clip takes arrays only. These stand-ins give scalars for scalars (arrays: NumPy's). Their
# complex-step versions, for the automatic Jacobian, are in rds._complexstep.
def _where_scalar(condition, x=None, y=None):
    return np.where(condition) if x is None and y is None else np.where(condition, x, y)


def _clip_scalar(a, a_min=None, a_max=None):
    return np.clip(a, a_min, a_max)


def _is_scalar(*ts) -> bool:
    return all(isinstance(t, (types.Number, types.Boolean)) for t in ts)


def _is_none(t) -> bool:
    return t is None or isinstance(t, (types.NoneType, types.Omitted))


@overload(_where_scalar, inline="always")
def _where_scalar_ol(condition, x=None, y=None):
    if _is_scalar(condition, x, y):
        return lambda condition, x=None, y=None: x if condition else y
    return lambda condition, x=None, y=None: np.where(condition, x, y)


@overload(_clip_scalar, inline="always")
def _clip_scalar_ol(a, a_min=None, a_max=None):
    if not isinstance(a, (types.Number, types.Boolean)):
        return lambda a, a_min=None, a_max=None: np.clip(a, a_min, a_max)
    if _is_none(a_max):
        return lambda a, a_min=None, a_max=None: a if a >= a_min or a != a else a_min
    if _is_none(a_min):
        return lambda a, a_min=None, a_max=None: a if a <= a_max or a != a else a_max

    def impl(a, a_min=None, a_max=None):
        lo = a if a >= a_min or a != a else a_min
        return lo if lo <= a_max or lo != lo else a_max
    return impl


fast_numpy.where = _where_scalar
fast_numpy.clip = _clip_scalar
