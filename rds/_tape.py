"""Recorded in-place evaluation of an elementwise map under the NumPy backend (a *tape*).

Under the NumPy backend a map ``step(state, xi, params)`` runs on whole arrays over the members, so each of its
arithmetic operations allocates a temporary array. :class:`TapedMap` wraps the map: on the first call for a given
layout of the arguments it evaluates the map directly, then records it once by calling it with proxy objects for
the state variables, the noise sample and the parameters. Each operation on a proxy is computed on the real values
of the first few members (so the recording sees the real dtypes, and its intermediate values stay small) and
appended to a tape. The tape becomes a plain Python function in which

* every operation on member arrays is a ufunc writing into a preallocated buffer (``np.multiply(a, b, buf)``);
  buffers are reused as soon as a value is dead, in place where an operand dies at that operation;
* an operation on the noise sample and the parameters only (common noise: the same for all members) is the
  very expression the map evaluates, on the real per-step values, so these per-step scalars are bit for bit
  those of the direct evaluation;
* Python constants and parameters enter the ufuncs as the same Python scalars, in the order Python evaluates
  the map's expressions.

``ufunc(a, b, out=buf)`` computes what ``a op b`` computes, so the replayed results are bitwise those of the
direct evaluation. The recorded function is checked once, on its first use: its result on all members of the same
inputs must equal the direct result bit for bit, else the map is evaluated directly for that layout.

Anything the recording does not understand (a branch ``if``/``bool`` on a traced value, ``float()`` or ``math.*``
of a traced value, a function other than a ufunc or ``np.where`` applied to member arrays, in-place updates of
arrays, attributes of member arrays, outputs that are not a tuple of traced values, parameters that are not
ints/floats or (named) tuples of them …) makes the wrapper evaluate the map directly, as before, for that layout.
A layout is the number, dtype and shape of the state arrays, the type, shape and dtype of the noise sample and
the structure and leaf types of the parameters; each layout is recorded and checked on its own.

The recording keeps references to the objects the map reads besides its arguments (module constants, closure
arrays) as they were when it was recorded, and does not repeat Python-level side effects of the map; the engine
calls :meth:`TapedMap.refresh` at the start of each service call, which records afresh if any of them changed.
"""

from __future__ import annotations

import operator
import sys
import threading
import types
from typing import Any

import numpy as np

from rds._codegen import make_function, tuple_src
from rds._kernel_cache import Uncacheable, fingerprint

__all__ = ["TapedMap", "TapeError"]

#: Longest tape recorded (operations per call); longer maps are evaluated directly.
MAX_OPERATIONS = 20_000
#: Layouts remembered per map (the table is emptied when full).
MAX_LAYOUTS = 16
#: Fewer members than this: the map is evaluated directly (temporaries of one member cost little, and NumPy's
#: in-place ufuncs on one-element arrays are slower than new ones).
MIN_MEMBERS = 2
#: Members the map is recorded on (the first ones; the recording is then checked on all of them).
RECORD_MEMBERS = 16

_MEMBER, _SCALAR, _NOISE = "member", "scalar", "noise"  # kinds of traced values
_CONST_TYPES = (int, float, complex, bool, np.generic, np.ndarray)  # constants allowed next to member arrays
_MISSING = object()
#: Methods of per-step (noise or parameter) array values that are recorded (they do not modify the array).
_METHODS = frozenset(["all", "any", "argmax", "argmin", "astype", "clip", "conj", "copy", "cumprod", "cumsum", "dot",
                      "flatten", "item", "max", "mean", "min", "prod", "ravel", "reshape", "round", "squeeze", "std",
                      "sum", "tolist", "transpose", "var"])
#: NumPy functions that write into an argument (never recorded).
_WRITERS = frozenset([np.copyto, np.put, np.place, np.putmask, np.fill_diagonal, np.put_along_axis])


class TapeError(Exception):
    """The map does something the tape does not record (it is evaluated directly instead)."""


def _where_into(out, cond, a, b):
    """``np.where(cond, a, b)`` written into ``out`` (whose dtype is that of ``np.where``'s result)."""
    np.copyto(out, b)
    np.copyto(out, a, where=cond)
    return out


class _Recorder:
    """The tape of one call of the map: instructions on numbered slots, constants by name."""

    def __init__(self, members: int, full: int):
        self.members, self.full = members, full  # members recorded on, members of the call
        self.dtypes: list = []  # per slot: the dtype of a member value written into a buffer, else None
        self.code: list = []  # (slot, mode, format, operand refs); mode: input, scalar, ufunc, where, extern
        self.origin: list = []  # per slot: the map's source line that computed it (a comment in the replay)
        self.ns: dict = {"where_into": _where_into}
        self._names: dict = {}

    # -- slots and operands
    def new(self, kind, value, mode, fmt, refs, buffered=False):
        if len(self.code) >= MAX_OPERATIONS:
            raise TapeError("map too long to record")
        slot = len(self.dtypes)
        self.dtypes.append(value.dtype if buffered else None)
        self.code.append((slot, mode, fmt, refs))
        self.origin.append(_caller() if mode != "input" else "")
        return _Proxy(self, slot, kind, value)

    def const(self, obj) -> str:
        key = id(obj)
        if key not in self._names:
            name = f"k{len(self._names)}"
            self._names[key] = name
            self.ns[name] = obj
        return self._names[key]

    def ref(self, x):
        """The operand ``x`` in generated code, its real value and kind (None for a constant)."""
        if isinstance(x, _Proxy):
            if x._rec is not self:
                raise TapeError("a value of another recording")
            if x._kind == _NOISE:
                raise TapeError("an operation on a per-member noise sample as a whole")
            return f"v{x._slot}", x._value, x._kind
        if isinstance(x, (list, dict, set)) or (isinstance(x, tuple) and _has_proxy(x)):
            raise TapeError("a container argument")
        return self.const(x), x, None

    def is_member(self, value) -> bool:
        return type(value) is np.ndarray and value.shape == (self.members,)

    # -- operations
    def apply(self, expr, real, args, kwargs=None):
        """Record ``real(*args, **kwargs)``, written ``expr`` in the replay: a per-step scalar value, or a member
        array evaluated as written (into a new array) until :meth:`into_buffer` rewrites it."""
        kwargs = kwargs or {}
        refs, vals, kinds = [], [], []
        for a in list(args) + list(kwargs.values()):
            r, v, k = self.ref(a)
            refs.append(r)
            vals.append(v)
            kinds.append(k)
        n = len(args)
        value = real(*vals[:n], **dict(zip(kwargs, vals[n:])))
        if _MEMBER not in kinds:
            return self.new(_SCALAR, value, "scalar", expr, refs)
        if not self.is_member(value):
            raise TapeError("a member operation whose result is not a member array")
        for v, k in zip(vals, kinds):
            if k is None and not isinstance(v, _CONST_TYPES):
                raise TapeError("an unusual constant next to a member array")
        return self.new(_MEMBER, value, "extern", expr, refs)

    def into_buffer(self, proxy, mode, fmt):
        """Rewrite the member operation just recorded as ``fmt``, writing into a buffer (``{out}``)."""
        slot, _, _, refs = self.code[-1]
        self.code[-1] = (slot, mode, fmt, refs)
        self.dtypes[slot] = proxy._value.dtype
        return proxy

    def ufunc_call(self, ufunc, inputs, kwargs):
        if kwargs or ufunc.nout != 1:
            raise TapeError("ufunc with keywords or several outputs")
        name = self.const(ufunc)
        args = ", ".join(f"{{{i}}}" for i in range(len(inputs)))
        proxy = self.apply(f"{name}({args})", ufunc, inputs)
        if proxy._kind == _MEMBER:
            self.into_buffer(proxy, "ufunc", f"{name}({args}, out={{out}})")
        return proxy

    def operator(self, op, symbol, ufunc, args):
        expr = "(" + symbol.format(*(f"{{{i}}}" for i in range(len(args)))) + ")"
        proxy = self.apply(expr, op, args)
        if proxy._kind == _MEMBER and ufunc is not None:  # on arrays, ``a op b`` is ``ufunc(a, b)``
            name = self.const(ufunc)
            self.into_buffer(proxy, "ufunc", f"{name}(" + ", ".join(f"{{{i}}}" for i in range(len(args)))
                             + ", out={out})")
        return proxy

    def function(self, func, args, kwargs):
        if func in _WRITERS or "out" in kwargs:
            raise TapeError("a function that writes into its arguments")
        name = self.const(func)
        keys = list(kwargs)
        expr = f"{name}(" + ", ".join([f"{{{i}}}" for i in range(len(args))]
                                     + [f"{k}={{{len(args) + i}}}" for i, k in enumerate(keys)]) + ")"
        proxy = self.apply(expr, func, args, kwargs)
        if proxy._kind == _MEMBER:
            if func is not np.where or len(args) != 3 or kwargs:
                raise TapeError(f"{getattr(func, '__name__', func)} of member arrays")
            self.into_buffer(proxy, "where", "where_into({out}, {0}, {1}, {2})")
        return proxy


def _caller() -> str:
    """``"  # file:line"`` of the map's code that called into the recording (shown with warnings of the replay)."""
    f: types.FrameType | None = sys._getframe(1)
    while f is not None and f.f_code.co_filename == __file__:
        f = f.f_back
    if f is None:
        return ""
    return f"  # {f.f_code.co_filename}:{f.f_lineno}".replace("\n", " ").replace("\r", " ")


def _has_proxy(obj) -> bool:
    if isinstance(obj, _Proxy):
        return True
    if isinstance(obj, (tuple, list)):
        return any(_has_proxy(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_proxy(o) for o in obj.values())
    return False


def _check_index(index):
    if isinstance(index, tuple):
        for i in index:
            _check_index(i)
    elif not (index is None or index is Ellipsis or isinstance(index, (int, np.integer, slice))):
        raise TapeError("an index that is not a constant")
    if isinstance(index, slice) and _has_proxy((index.start, index.stop, index.step)):
        raise TapeError("an index that is not a constant")


class _Proxy:
    """A traced value: its slot in the recording, its kind and its real value."""

    __slots__ = ("_rec", "_slot", "_kind", "_value")
    __hash__ = None  # type: ignore[assignment]  # unhashable, like an array

    def __init__(self, rec, slot, kind, value):
        self._rec, self._slot, self._kind, self._value = rec, slot, kind, value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            raise TapeError(f"ufunc method {method}")
        return self._rec.ufunc_call(ufunc, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return self._rec.function(func, args, kwargs)

    def __array__(self, *args, **kwargs):
        raise TapeError("conversion of a traced value to an array")

    def _refuse(self, *args, **kwargs):
        raise TapeError("a traced value used as a Python number, truth value or text")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __round__ = __trunc__ = __floor__ = __ceil__ = _refuse
    __repr__ = __str__ = __format__ = _refuse  # (a map that prints its values is evaluated directly)

    def __setitem__(self, key, value):
        raise TapeError("item assignment")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._value, name)
        if name in ("shape", "ndim", "size", "dtype"):
            if self._kind == _SCALAR or name == "dtype":
                return value
            shape = self._value.shape[:-1] + (self._rec.full,)  # as in the call (recorded on fewer members)
            return {"shape": shape, "ndim": len(shape), "size": int(np.prod(shape))}[name]
        if self._kind != _SCALAR or not name.isidentifier():
            raise TapeError(f"attribute {name} of a member value")
        if callable(value):
            if name not in _METHODS:
                raise TapeError(f"method {name}")
            return _Method(self, name)
        return self._rec.apply(f"{{0}}.{name}", lambda v: getattr(v, name), (self,))

    def __len__(self):
        return len(self._value) if self._kind == _SCALAR or self._value.ndim > 1 else self._rec.full

    def __iter__(self):
        if self._kind == _MEMBER:
            raise TapeError("iteration over members")
        return (self[i] for i in range(len(self._value)))

    def __getitem__(self, index):
        if self._kind == _MEMBER:
            raise TapeError("indexing a member array")
        _check_index(index)
        rec = self._rec
        value = self._value[index]
        name = rec.const(index)
        if self._kind == _NOISE:  # independent noise: a view of member values
            if not rec.is_member(value):
                raise TapeError("a noise value that is not one per member")
            return rec.new(_MEMBER, value, "extern", f"{{0}}[{name}]", [f"v{self._slot}"])
        return rec.new(_SCALAR, value, "scalar", f"{{0}}[{name}]", [f"v{self._slot}"])


class _Method:
    """A bound method of a per-step (scalar) traced value, recorded when called."""

    def __init__(self, proxy, name):
        self._proxy, self._name = proxy, name

    def __call__(self, *args, **kwargs):
        name = self._name
        keys = list(kwargs)
        expr = f"{{0}}.{name}(" + ", ".join([f"{{{i + 1}}}" for i in range(len(args))]
                                           + [f"{k}={{{len(args) + 1 + i}}}" for i, k in enumerate(keys)]) + ")"

        def real(obj, *a):
            return getattr(obj, name)(*a[:len(args)], **dict(zip(keys, a[len(args):])))

        proxy = self._proxy._rec.apply(expr, real, (self._proxy, *args, *kwargs.values()))
        if proxy._kind == _MEMBER:
            raise TapeError(f"method {name} with member arguments")
        return proxy


def _operator(op, symbol, ufunc, reflected=False, inplace=False):
    if inplace:  # ``a += b`` rebinds ``a`` for an immutable value, and updates an array in place (not recorded)
        def method(self, other):
            if self._kind != _SCALAR or isinstance(self._value, np.ndarray):
                raise TapeError("an in-place update of an array")
            return self._rec.operator(op, symbol, ufunc, (self, other))
    elif reflected:
        def method(self, other):
            return self._rec.operator(op, symbol, ufunc, (other, self))
    else:
        def method(self, *others):  # type: ignore[misc]  # unary and binary operators
            return self._rec.operator(op, symbol, ufunc, (self, *others))
    return method


_name: str
_op: Any
_sym: str
_uf: Any


for _name, _op, _sym, _uf in [
        ("add", operator.add, "{} + {}", np.add), ("sub", operator.sub, "{} - {}", np.subtract),
        ("mul", operator.mul, "{} * {}", np.multiply), ("truediv", operator.truediv, "{} / {}", np.true_divide),
        ("floordiv", operator.floordiv, "{} // {}", np.floor_divide), ("mod", operator.mod, "{} % {}", np.remainder),
        ("pow", operator.pow, "{} ** {}", None), ("matmul", operator.matmul, "{} @ {}", None),
        ("lshift", operator.lshift, "{} << {}", np.left_shift), ("rshift", operator.rshift, "{} >> {}", np.right_shift),
        ("and", operator.and_, "{} & {}", np.bitwise_and), ("or", operator.or_, "{} | {}", np.bitwise_or),
        ("xor", operator.xor, "{} ^ {}", np.bitwise_xor)]:
    setattr(_Proxy, f"__{_name}__", _operator(_op, _sym, _uf))
    setattr(_Proxy, f"__r{_name}__", _operator(_op, _sym, _uf, reflected=True))
    setattr(_Proxy, f"__i{_name}__", _operator(_op, _sym, _uf, inplace=True))
for _name, _op, _sym, _uf in [
        ("lt", operator.lt, "{} < {}", np.less), ("le", operator.le, "{} <= {}", np.less_equal),
        ("eq", operator.eq, "{} == {}", np.equal), ("ne", operator.ne, "{} != {}", np.not_equal),
        ("gt", operator.gt, "{} > {}", np.greater), ("ge", operator.ge, "{} >= {}", np.greater_equal),
        ("neg", operator.neg, "-{}", np.negative), ("pos", operator.pos, "+{}", np.positive),
        ("abs", operator.abs, "abs({})", np.absolute), ("invert", operator.invert, "~{}", np.invert)]:
    setattr(_Proxy, f"__{_name}__", _operator(_op, _sym, _uf))
del _name, _op, _sym, _uf


# ---------------------------------------------------------------------------------------------------------------
# a recorded tape as a function

class _Tape:
    """A recorded map as a replay function ``replay(state, xi, params, buffers)`` and its buffers' dtypes."""

    def __init__(self, replay, dtypes, members):
        self.replay, self.dtypes, self.members = replay, dtypes, members

    def buffers(self):
        return tuple(np.empty(self.members, dtype) for dtype in self.dtypes)


def _param_leaves(params, path="params"):
    """``(source path, value)`` of each parameter leaf; raises TapeError unless ints/floats in (named) tuples."""
    if type(params) in (int, float):
        return [(path, params)]
    if isinstance(params, tuple) and (type(params) is tuple or hasattr(type(params), "_fields")):
        return [leaf for i, p in enumerate(params) for leaf in _param_leaves(p, f"{path}[{i}]")]
    raise TapeError(f"parameters of type {type(params).__name__}")


def _leaf_types(params):
    """The structure and leaf types of the parameters (None unless ints/floats in (named) tuples)."""
    if type(params) in (int, float):
        return type(params)
    if isinstance(params, tuple) and (type(params) is tuple or hasattr(type(params), "_fields")):
        leaves = tuple(_leaf_types(p) for p in params)
        return None if None in leaves else (type(params), leaves)
    return None


def _rebuild(params, proxies):
    if type(params) in (int, float):
        return next(proxies)
    items = [_rebuild(p, proxies) for p in params]
    return tuple(items) if type(params) is tuple else type(params)(*items)


def record(func, state, xi, params, independent: bool) -> _Tape:
    """Record ``func(state, xi, params)`` (real arguments) as a :class:`_Tape`; raises on anything unsupported."""
    members = state[0].shape[0]
    m = min(members, RECORD_MEMBERS)  # recorded on the first members: intermediate values stay small
    rec = _Recorder(m, members)
    lines = []
    inputs = [rec.new(_MEMBER, s[:m], "input", "", []) for s in state]
    lines.append("    " + ", ".join(f"v{p._slot}" for p in inputs) + ", = state")
    if independent:  # the sample's last axis is the members'
        xi_proxy = rec.new(_MEMBER if xi.ndim == 1 else _NOISE, xi[..., :m], "input", "", [])
    else:
        xi_proxy = rec.new(_SCALAR, xi, "input", "", [])
    lines.append(f"    v{xi_proxy._slot} = xi")
    leaves = _param_leaves(params)
    leaf_proxies = []
    for path, value in leaves:
        p = rec.new(_SCALAR, value, "input", "", [])
        lines.append(f"    v{p._slot} = {path}")
        leaf_proxies.append(p)
    out = func(tuple(inputs), xi_proxy, _rebuild(params, iter(leaf_proxies)))
    out_src = _outputs_source(out, rec)

    # buffers: a member value gets a free buffer of its dtype; a buffer is free after its value's last use
    # (before the operation for a ufunc, so that a dying operand is overwritten in place)
    last = {}
    for i, (_, _, _, refs) in enumerate(rec.code):
        for r in refs:
            if r[0] == "v":
                last[int(r[1:])] = i
    pinned = {int(r[1:]) for r in _output_refs(out)}
    free: dict = {}
    buf_of: dict = {}
    dtypes: list = []

    def release(slots):
        for s in slots:
            if s in buf_of and s not in pinned:
                free.setdefault(dtypes[buf_of[s]], []).append(buf_of[s])

    for i, (slot, mode, fmt, refs) in enumerate(rec.code):
        if mode == "input":
            continue
        dying = sorted({int(r[1:]) for r in refs if r[0] == "v" and last.get(int(r[1:])) == i})
        if mode == "ufunc":
            release(dying)
        out_name = None
        if mode in ("ufunc", "where"):
            dtype = rec.dtypes[slot]
            pool = free.get(dtype)
            if pool:
                buf_of[slot] = pool.pop()
            else:
                buf_of[slot] = len(dtypes)
                dtypes.append(dtype)
            out_name = f"b{buf_of[slot]}"
        if mode != "ufunc":
            release(dying)
        if slot not in last:
            release([slot])
        lines.append(f"    v{slot} = " + fmt.format(*refs, out=out_name) + rec.origin[slot])

    head = ["def replay(state, xi, params, B):"]
    if dtypes:
        head.append("    " + ", ".join(f"b{j}" for j in range(len(dtypes))) + ", = B")
    source = "\n".join(head + lines + [f"    return {out_src}"]) + "\n"
    return _Tape(make_function(source, "replay", rec.ns), tuple(dtypes), members)


def _outputs_source(out, rec):
    if type(out) is not tuple or not out:
        raise TapeError("the map's result is not a tuple")
    items = []
    for o in out:
        if type(o) is tuple:
            items.append(_outputs_source(o, rec))
        elif isinstance(o, _Proxy) and o._rec is rec and o._kind != _NOISE:
            items.append(f"v{o._slot}")
        else:
            raise TapeError("a result that is not traced")
    return tuple_src(items)


def _output_refs(out):
    for o in out:
        if type(o) is tuple:
            yield from _output_refs(o)
        else:
            yield f"v{o._slot}"


def same(a, b) -> bool:
    """Bitwise equality of two results (tuples of arrays and scalars; NaNs equal when their bits are)."""
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (float, complex)):
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if isinstance(a, int):
        return a == b
    return False


# ---------------------------------------------------------------------------------------------------------------
# the wrapper

class TapedMap:
    """An elementwise map evaluated through recorded tapes with preallocated buffers (see the module docstring).

    Called like the map, ``taped(state, xi, params)``, it returns bit for bit what the map returns. Member arrays
    of the result are buffers of the calling thread, overwritten by that thread's next call: use (copy) them
    before calling again. :meth:`release` frees the calling thread's buffers.

    Parameters
    ----------
    func : callable
        The map ``func(state, xi, params)``: a tuple of 1-D member arrays, the noise sample, the parameters.
    independent : bool
        Whether the noise is per member (the sample's last axis is the member axis).
    """

    #: False: every call evaluates the map directly (the reference the tapes are compared with).
    enabled = True

    def __init__(self, func, independent: bool):
        self.func, self.independent = func, independent
        self._tapes: dict = {}  # layout -> _Tape, or None: evaluated directly
        self._local = threading.local()
        self._params_seen = (_MISSING, None)
        self._fingerprint = None

    def __call__(self, state, xi, params):
        key = self._layout(state, xi, params) if self.enabled else None
        tape = self._tapes.get(key, _MISSING) if key is not None else None
        if tape is None:
            return self.func(state, xi, params)
        if tape is _MISSING:
            return self._first(key, state, xi, params)
        bufs = self._local.__dict__.setdefault("buffers", {})
        b = bufs.get(key)
        if b is None or b[0] is not tape:
            b = bufs[key] = (tape, tape.buffers())
        return tape.replay(state, xi, params, b[1])

    def refresh(self):
        """Forget the tapes if the map changed since they were recorded.

        Changed means its code, constants, closures or the globals it reads (a module constant set anew between two
        runs): :func:`rds._kernel_cache.fingerprint`, about 30 µs. A map that cannot be fingerprinted is recorded
        afresh. Called at the start of each service call, so a run sees the map as the direct evaluation would.
        """
        try:
            fp = fingerprint(self.func)
        except Uncacheable:
            fp = None
        if fp is None or fp != self._fingerprint:
            self._tapes.clear()
            self._fingerprint = fp

    def release(self):
        """Free the calling thread's buffers (they are allocated again by the next call)."""
        self._local.__dict__.pop("buffers", None)

    def _layout(self, state, xi, params):
        if type(state) is not tuple or not state or type(xi) is not np.ndarray:
            return None
        lay = []
        for s in state:
            if type(s) is not np.ndarray or s.ndim != 1 or s.shape[0] < MIN_MEMBERS:
                return None
            lay.append((s.dtype, s.shape))
        seen = self._params_seen  # (the same parameters object on every step of a run: immutable leaves)
        if seen[0] is not params:
            seen = self._params_seen = (params, _leaf_types(params))
        return None if seen[1] is None else (tuple(lay), xi.shape, xi.dtype, seen[1])

    def _first(self, key, state, xi, params):
        result = self.func(state, xi, params)  # the direct evaluation: its errors are the caller's
        tape = None
        try:
            with np.errstate(all="ignore"):
                tape = record(self.func, state, xi, params, self.independent)
                if not same(result, tape.replay(state, xi, params, tape.buffers())):
                    tape = None
        except Exception:  # anything the recording does not support: evaluate directly
            tape = None
        if len(self._tapes) >= MAX_LAYOUTS:
            self._tapes.clear()
        self._tapes[key] = tape
        return result
