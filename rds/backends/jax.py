"""The JAX backend: the same user map, with ``numpy`` replaced by ``jax.numpy``, jit-compiled for CPU or GPU.

A map is written once with NumPy (``np.tanh``, ``np.dot``, ``x @ W`` …). :func:`jaxify` clones it — and,
recursively, the plain Python functions it calls — with ``np`` (and ``math``, ``scipy.special``) replaced by their
JAX counterparts in the clone's globals, closure cells and default arguments, as :mod:`rds.fastmath` does for Numba.
Functions that take an array namespace argument ``xp`` (e.g. those of :mod:`rds.models.two_layer`) are called as
they are: a map passes them ``xp=np``, which in the clone is ``jax.numpy``. Functions the map reaches through an
object or a module (``gd.step(…)`` with ``gd`` a global, ``mymodule.helper(…)``) are cloned like those in closures.
Before tracing, a vector map is called once with NumPy (:meth:`rds.maps.VectorMap.check`: output shape and dtype,
indices within bounds, purity); an error while tracing names the map (or region predicate), its file and line.
The clone is traced by JAX: the map must be *functional* (no in-place assignment into arrays, no Python ``if`` on
array values; use ``np.where``).

One compiled program per service runs a whole segment of steps (the engine cuts runs at noise blocks and recorded
times): ``jax.vmap`` over members, a ``lax.fori_loop`` over steps, and for tangents ``jax.jvp`` of the one-member
step on k vectors (exact directional derivatives; the D × D Jacobian is never formed) with a Householder QR every
``qr_every`` steps (``lax.cond`` outside the member ``vmap``, so steps without QR do no QR work). Every segment's
noise is padded to one noise block (:data:`rds.noise.NOISE_BLOCK` steps, what the engine generates anyway) and the
number of steps is a run-time argument: one compilation per service and ensemble size, however a run is cut (the
log-spaced records of a Lyapunov history would otherwise compile up to 11 padded lengths, ~1 s each at D = 10).

Precision: float64 by default, inside ``jax.enable_x64(True)`` — the user's global JAX configuration is not
changed (arrays are converted back to NumPy float64 at the end of each call). ``precision="float32"`` on the
system runs in single precision: about 1e-7 relative error per step; trajectories then agree with the float64
reference only to ~1e-6 over contracting runs and are not suitable for bitwise reproducibility across backends.

Both map forms use this backend: a vector map is vmapped as it is; an elementwise map ``step(state_tuple, xi,
params)`` is called on the tuple of one member's scalars ``tuple(theta)``.
"""

from __future__ import annotations

import dis
import math
import os
import sys
import types

import numpy as np

from rds._identity import global_names
from rds.noise import NOISE_BLOCK

__all__ = ["BACKEND", "jaxify", "available", "JaxKernels", "member_step_for", "member_predicate_for"]

#: Cost model (seconds, CPU): per member-step of a vector map. Its cost grows with D, but only the comparison with
#: the NumPy reference matters, which is slower by orders of magnitude at every size: ``backend=None`` runs vector
#: maps on JAX whenever it is installed (tracing, ~1 s, is not counted).
MEMBER_STEP_S = 1e-7


def available() -> bool:
    """True when ``jax`` can be imported."""
    try:
        import jax  # noqa: F401
    except Exception:  # pragma: no cover - depends on the installation
        return False
    return True


#: What the JAX backend runs, for error messages.
JAX_SUPPORT = ("the JAX backend traces the map with numpy replaced by jax.numpy (math and scipy.special by their "
               "jax counterparts, also in the plain Python helpers it calls and the objects and modules it reads "
               "functions from): it must be a pure function of (theta, xi, params) written with NumPy functions "
               "that jax.numpy has, functional (no in-place assignment into arrays, no Python 'if' on array values: "
               "use np.where), without float()/int() of array values, returning an array of theta's shape (D,); "
               "backend='numpy' runs it as written")


def _unsupported(what: str, hint: str = ""):
    """A stand-in for a function with no JAX counterpart: an error in the user's terms if it is called."""
    def unsupported(*args, **kwargs):
        raise TypeError(f"{what} has no JAX counterpart{hint}; use backend='numpy' for this map, or a jax.numpy "
                        f"function")
    unsupported.__name__ = unsupported.__qualname__ = what
    return unsupported


class _JaxMath:
    """``math`` for traced code: the functions of :mod:`math` a map may use, on JAX arrays."""

    def __init__(self):
        import jax.numpy as jnp
        import jax.scipy.special as jss
        self.pi, self.e, self.inf, self.nan, self.tau = math.pi, math.e, math.inf, math.nan, math.tau
        for name in ("sqrt", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                     "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "isfinite", "isnan", "isinf",
                     "floor", "ceil", "trunc", "log10", "log2", "exp2", "hypot", "copysign", "fmod", "degrees",
                     "radians", "cbrt"):
            setattr(self, name, getattr(jnp, name))
        self.asin, self.acos, self.atan, self.atan2 = jnp.arcsin, jnp.arccos, jnp.arctan, jnp.arctan2
        self.asinh, self.acosh, self.atanh = jnp.arcsinh, jnp.arccosh, jnp.arctanh
        self.fabs, self.pow, self.erf, self.erfc = jnp.abs, jnp.power, jss.erf, jss.erfc
        self.gamma, self.lgamma = jss.gamma, jss.gammaln

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if not hasattr(math, name):
            raise AttributeError(f"module 'math' has no attribute {name!r}")
        return _unsupported(f"math.{name}", " in rds's JAX backend (supported: "
                            + ", ".join(sorted(k for k in vars(self) if not k.startswith("_"))) + ")")


class _JaxAttributes:
    """An object or module a map reads functions from (``gd.step(…)``, ``mymodule.helper(…)``), as the JAX clone
    sees it: every attribute read through it is substituted like a global (functions cloned with numpy →
    jax.numpy), so a map works the same whether it reaches a function through a closure, a global or an object."""

    __slots__ = ("_obj", "_memo")

    def __init__(self, obj, memo):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_memo", memo)

    def __getattr__(self, name):
        return _substitute(getattr(self._obj, name), self._memo, attributes_only=True)

    def __repr__(self):
        return f"<JAX view of {self._obj!r}>"


def _scipy_special_name(obj):
    """The name of ``obj`` in scipy.special if it is one of its functions (SciPy's ufuncs are NumPy ufuncs, with no
    ``__module__``: they must be told from NumPy's before NumPy's are substituted), else None."""
    sp = sys.modules.get("scipy.special")
    name = getattr(obj, "__name__", None)
    if sp is None or not isinstance(name, str):
        return None
    return name if getattr(sp, name, None) is obj else None


def _plain_instance(obj) -> bool:
    """An instance of a user class (a system, a config object …) whose attributes a map may read functions from."""
    return (hasattr(obj, "__dict__") and not isinstance(obj, (type, types.FunctionType, types.MethodType,
                                                                types.BuiltinFunctionType, np.ndarray))
            and (type(obj).__module__ or "").split(".")[0] not in ("numpy", "jax", "jaxlib", "builtins", "scipy"))


def _substitute(obj, memo, attributes_only=False):
    """The JAX stand-in of a value a map reads (a global, a closure cell, a default, an attribute).

    ``attributes_only``: the map only reads attributes of it (``obj.f``), so a module or object may be replaced
    by a view (:class:`_JaxAttributes`) that substitutes what is read through it.
    """
    import jax.numpy as jnp
    if obj is np:
        return jnp
    if obj is math:
        return memo.setdefault("__math__", _JaxMath())
    mod = getattr(obj, "__name__", None)
    if isinstance(obj, types.ModuleType):
        if mod == "scipy" and attributes_only:  # scipy.special.erf(…): through a view
            return _JaxAttributes(obj, memo)
        if mod == "scipy.special":
            import jax.scipy.special as jss
            return jss
        if mod == "numpy.linalg":
            return jnp.linalg
        if attributes_only and not _library_module(mod):
            return _JaxAttributes(obj, memo)
        return obj
    sp_name = _scipy_special_name(obj) if callable(obj) else None
    if sp_name is not None:  # before NumPy's ufuncs: SciPy's are ufuncs too
        import jax.scipy.special as jss
        sub = getattr(jss, sp_name, None)
        return sub if sub is not None else _unsupported(f"scipy.special.{sp_name}", " in jax.scipy.special")
    if isinstance(obj, np.ufunc) or (callable(obj) and getattr(obj, "__module__", "") == "numpy"):
        name = getattr(obj, "__name__", "")
        sub = getattr(jnp, name, None)
        return sub if sub is not None else _unsupported(f"numpy.{name}", " in jax.numpy")
    if callable(obj) and getattr(obj, "__module__", "") == "numpy.linalg":
        sub = getattr(jnp.linalg, getattr(obj, "__name__", ""), None)
        return obj if sub is None else sub
    if isinstance(obj, types.FunctionType):
        return jaxify(obj, memo)
    if isinstance(obj, types.MethodType) and isinstance(obj.__func__, types.FunctionType):
        return types.MethodType(jaxify(obj.__func__, memo), _substitute(obj.__self__, memo, True))
    if attributes_only and _plain_instance(obj):
        return _JaxAttributes(obj, memo)
    return obj


def _library_module(name) -> bool:
    root = (name or "").split(".")[0]
    return root in ("numpy", "math", "scipy", "jax", "jaxlib", "builtins", "functools", "itertools", "operator",
                    "collections", "optax", "flax", "equinox")


def _attribute_only_names(code) -> set:
    """Names (globals and free variables) that ``code`` (and the code nested in it) only reads attributes from."""
    uses: dict = {}
    for c in _codes(code):
        ins = list(dis.get_instructions(c))
        for a, b in zip(ins, ins[1:] + [None]):
            if a.opname in ("LOAD_GLOBAL", "LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_NAME"):
                attr = b is not None and b.opname in ("LOAD_ATTR", "LOAD_METHOD")
                uses[a.argval] = uses.get(a.argval, True) and attr
    return {n for n, only in uses.items() if only}


def _codes(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _codes(c)


def _substitute_module(obj):
    if obj is np:
        import jax.numpy as jnp
        return jnp
    return obj


def jaxify(func, _memo=None):
    """A clone of ``func`` that runs under JAX tracing: ``numpy`` → ``jax.numpy`` in its globals (recursively).

    Parameters
    ----------
    func : callable
        A map, predicate or helper written with NumPy. Non-function callables are returned unchanged.

    Returns
    -------
    callable
        The clone. It copies the globals the function reads *now*; kernels are rebuilt (and the map cloned again)
        whenever the map's identity changes (:func:`rds.backends.kernels_for`).

    Examples
    --------
    >>> import numpy as np, jax.numpy as jnp
    >>> def f(x):
    ...     return np.tanh(x) * 2.0
    >>> g = jaxify(f)
    >>> round(float(g(jnp.asarray(0.5))), 5), round(float(f(0.5)), 5)   # JAX's default float32 here
    (0.92423, 0.92423)
    """
    if not isinstance(func, types.FunctionType):
        return func
    memo = {} if _memo is None else _memo
    if id(func) in memo:  # a recursive reference: the clone under construction
        return memo[id(func)]
    code = func.__code__
    if "xp" in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        # array-namespace-aware (takes ``xp``): called as it is, only a default ``xp=numpy`` becomes jax.numpy
        clone = types.FunctionType(code, func.__globals__, func.__name__,
                                   None if func.__defaults__ is None else
                                   tuple(_substitute_module(d) for d in func.__defaults__), func.__closure__)
        if func.__kwdefaults__:
            clone.__kwdefaults__ = {k: _substitute_module(v) for k, v in func.__kwdefaults__.items()}
        memo[id(func)] = clone
        return clone
    attr_only = _attribute_only_names(code)
    closure = None
    if func.__closure__:
        closure = tuple(types.CellType(_substitute(c.cell_contents, memo, name in attr_only)) if _cell_ok(c) else c
                        for name, c in zip(code.co_freevars, func.__closure__))
    glb = dict(func.__globals__)
    clone = types.FunctionType(func.__code__, glb, func.__name__, None, closure)
    memo[id(func)] = clone
    for name in global_names(func.__code__):
        if name in glb:
            glb[name] = _substitute(glb[name], memo, name in attr_only)
    if func.__defaults__ is not None:
        clone.__defaults__ = tuple(_substitute(d, memo) for d in func.__defaults__)
    if func.__kwdefaults__:
        clone.__kwdefaults__ = {k: _substitute(v, memo) for k, v in func.__kwdefaults__.items()}
    clone.__doc__, clone.__qualname__ = func.__doc__, func.__qualname__
    return clone


def _cell_ok(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # empty cell
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# one-member functions

def member_step_for(system):
    """``f(theta, xi, params) -> theta'`` for one member (1-D ``theta``), traced by JAX, for either map form."""
    import jax.numpy as jnp
    step = system.step if _native(system) else jaxify(system.step)  # a JAX-native map is traced as written
    nvar = system.nvar
    if system.form == "vector":
        def g(theta, xi, params):
            out = jnp.asarray(step(theta, xi, params))
            if out.shape != theta.shape:
                from rds._mapcheck import describe
                raise ValueError(f"{describe(system.step)} returned an array of shape {out.shape}; it must return "
                                 f"an array of shape ({nvar},), the vector theta of one member")
            return out.astype(theta.dtype)  # an int or float32 result would change the loop carry's type
        return g

    def f(theta, xi, params):
        out = step(tuple(theta[i] for i in range(nvar)), xi, params)
        return jnp.stack([jnp.asarray(o, dtype=theta.dtype) for o in jnp.broadcast_arrays(*out)])
    return f


def _native(system) -> bool:
    """Whether the system's map is JAX-native (:mod:`rds.native`): traced as written, never jaxified."""
    return bool(getattr(system.map, "native", False))


def member_predicate_for(system, inside):
    """``g(theta) -> bool`` for one member: a vector predicate as written, an elementwise one on ``tuple(theta)``."""
    fn = getattr(inside, "member", inside)
    fn = fn if _native(system) else jaxify(fn)
    if system.form == "vector" or hasattr(inside, "member"):
        return fn
    nvar = system.nvar
    return lambda theta: fn(tuple(theta[i] for i in range(nvar)))


# ---------------------------------------------------------------------------------------------------------------
# the kernels

def _bucket(n: int) -> int:
    """Padded segment length: one noise block (the engine's segments are at most NOISE_BLOCK long), so that the
    compiled kernels see a single noise shape."""
    return max(NOISE_BLOCK, n)


def _bucket_members(m: int, last: int) -> int:
    """Padded member count of the first-exit kernel, given the last one: a run's first block is not padded; as
    members retire the live set keeps the last size until it falls to half of it, then the next power of two
    (so a run compiles for at most 1 + log2(members) sizes)."""
    if m > last:
        return m
    if 2 * m > last:
        return last
    return 1 << max(m - 1, 0).bit_length()


class JaxKernels:
    """Engine kernels (``evolve``, ``tangent``, ``exit``) of one system layout on JAX.

    The engine passes ``X`` (var, member), ``V`` (var, k, member) and ``logr`` (k, member) and expects them
    updated in place; the noise of a segment is ``(n,) + noise.shape`` (common), with a trailing member axis
    (independent), or the quenched dataset. Members that become non-finite are set to NaN (all variables).
    """

    name = "jax"

    def __init__(self, system):
        import jax
        import jax.numpy as jnp
        self._jax, self._jnp = jax, jnp
        self.form = system.form
        self.precision = getattr(system, "precision", "float64")
        self._x64 = self.precision == "float64"
        self._dtype = np.float64 if self._x64 else np.float32
        self._quenched = bool(system.noise.quenched)
        self._independent = bool(system.independent_noise)
        self._f = member_step_for(system)
        self._system = system
        self._cache: dict = {}

    # ----------------------------------------------------------- helpers
    def _xi_axis(self):
        return -1 if self._independent else None

    def _vstep(self):
        return self._jax.vmap(self._f, in_axes=(0, self._xi_axis(), None))

    def _xi_of(self, noise, t):
        return noise if self._quenched else noise[t]

    def _noise(self, noise, n):
        if self._quenched:
            return np.asarray(noise[0], dtype=self._dtype)
        L = _bucket(n)
        if noise.shape[0] == L:
            return np.asarray(noise, dtype=self._dtype)
        out = np.zeros((L,) + noise.shape[1:], dtype=self._dtype)
        out[:n] = noise[:n]
        return out

    def _params(self, params):
        return tuple(float(p) for p in params)

    def _finite(self, new):
        """Members whose new state is not finite become NaN: ``new + (s − s)`` with s the sum over the state.

        s − s is +0 for a finite sum and NaN otherwise (the engine's test, ``isfinite(Σ θ_i)``); one fused reduction
        and add, ~3× cheaper at D = 2550 than ``where(all(isfinite(new)))``. Returns (state, nan_or_zero (member,)).
        """
        s = self._jnp.sum(new, axis=-1)
        z = s - s
        return new + z[:, None], z

    def _compiled(self, key, build):
        if key not in self._cache:
            self._cache[key] = self._jax.jit(build())
        return self._cache[key]

    def _call(self, fn, *args, inside=None):
        """``fn(*args)``; an error while JAX traces the user's functions is raised in the user's terms."""
        try:
            return fn(*args)
        except _TRACE_ERRORS as e:
            raise trace_error(self._system, e, inside) from e

    def _ctx(self):
        return self._jax.enable_x64(self._x64)

    # ----------------------------------------------------------- services
    def evolve_fn(self):
        jax = self._jax
        vstep = self._vstep()

        def run(theta, noise, params, nsteps):
            def body(t, th):
                return self._finite(vstep(th, self._xi_of(noise, t), params))[0]
            return jax.lax.fori_loop(0, nsteps, body, theta)
        return run

    def evolve(self, X, noise, params, nsteps):
        if nsteps <= 0:
            return
        fn = self._compiled("evolve", self.evolve_fn)
        with self._ctx():
            out = self._call(fn, np.asarray(X.T, dtype=self._dtype), self._noise(noise, nsteps),
                             self._params(params), np.int32(nsteps))
            X[...] = np.asarray(out, dtype=float).T

    def tangent_fn(self):
        jax, jnp = self._jax, self._jnp
        f = self._f
        xa = self._xi_axis()

        def member(theta, Vm, xi, params):
            g = lambda th: f(th, xi, params)  # noqa: E731
            new, JV = jax.vmap(lambda v: jax.jvp(g, (theta,), (v,)), in_axes=1, out_axes=(None, 1))(Vm)
            return new, JV

        vmember = jax.vmap(member, in_axes=(0, 0, xa, None))

        def qr(V, logr):
            Q, R = jnp.linalg.qr(V)
            d = jnp.diagonal(R, axis1=-2, axis2=-1)
            s = jnp.where(d < 0, -1.0, 1.0).astype(V.dtype)
            return Q * s[:, None, :], logr + jnp.log(jnp.abs(d))

        def run(theta, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
            def body(t, c):
                th, V, logr = c
                new, JV = vmember(th, V, self._xi_of(noise, t), params)
                new, z = self._finite(new)
                JV = JV + z[:, None, None]
                do = ((n0 + t + 1) % qr_every == 0) | ((t == nsteps - 1) & qr_final)
                JV, logr = jax.lax.cond(do, qr, lambda a, b: (a, b), JV, logr)
                return new, JV, logr
            return jax.lax.fori_loop(0, nsteps, body, (theta, V, logr))
        return run

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        if nsteps <= 0:
            return
        fn = self._compiled("tangent", self.tangent_fn)
        dt = self._dtype
        with self._ctx():
            th, Vn, lr = self._call(fn, np.asarray(X.T, dtype=dt), np.asarray(np.moveaxis(V, -1, 0), dtype=dt),
                                    np.asarray(logr.T, dtype=dt), self._noise(noise, nsteps), self._params(params),
                                    np.int32(nsteps), np.int64(n0), np.int64(qr_every), bool(qr_final))
            X[...] = np.asarray(th, dtype=float).T
            V[...] = np.moveaxis(np.asarray(Vn, dtype=float), 0, -1)
            logr[...] = np.asarray(lr, dtype=float).T

    def exit_fn(self, inside):
        jax, jnp = self._jax, self._jnp
        vstep = self._vstep()
        vin = jax.vmap(member_predicate_for(self._system, inside))

        def run(theta, exit_step, noise, params, nsteps, n0):
            def cond(c):
                t, _, es = c
                return (t < nsteps) & jnp.any(es < 0)

            def body(c):
                t, th, es = c
                alive = es < 0
                new = vstep(th, self._xi_of(noise, t), params)
                new = self._finite(jnp.where(alive[:, None], new, th))[0]
                out = alive & ~vin(new).astype(bool)
                return t + 1, new, jnp.where(out, n0 + t + 1, es)
            return jax.lax.while_loop(cond, body, (jnp.int32(0), theta, exit_step))[1:]
        return run

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside, inside_key):
        if nsteps <= 0:
            return
        key = ("exit", inside_key)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != "exit"}  # one region at a time
            self._cache[key] = self._jax.jit(self.exit_fn(inside))
        fn = self._cache[key]
        # the engine retires members that left (rds.engine.RETIRE): pad the live set to a power of two with
        # members that have already left (frozen, never alive), so that the kernel compiles for a few sizes only
        M = X.shape[1]
        P = self._exit_size = _bucket_members(M, getattr(self, "_exit_size", 0))
        th0 = np.asarray(X.T, dtype=self._dtype)
        es0 = np.asarray(exit_step, dtype=np.int64)
        nz = self._noise(noise, nsteps)
        if P != M:
            th0 = np.concatenate([th0, np.zeros((P - M, th0.shape[1]), dtype=self._dtype)])
            es0 = np.concatenate([es0, np.zeros(P - M, dtype=np.int64)])
            if self._independent and not self._quenched:
                nz = np.concatenate([nz, np.zeros(nz.shape[:-1] + (P - M,), dtype=nz.dtype)], axis=-1)
            elif self._independent:
                nz = np.broadcast_to(nz[..., :1], nz.shape[:-1] + (P,))
        with self._ctx():
            th, es = self._call(fn, th0, es0, nz, self._params(params), np.int32(nsteps), np.int64(n0), inside=inside)
            X[...] = np.asarray(th, dtype=float)[:M].T
            exit_step[...] = np.asarray(es)[:M]

    # ----------------------------------------------------------- single steps
    def jacobian(self, theta, xi, params):
        """Jacobian matrices (member, D, D) by forward-mode autodiff (``jax.jacfwd``) at states (member, D)."""
        jax = self._jax
        key = "jacobian"
        if key not in self._cache:
            f = self._f
            self._cache[key] = jax.jit(jax.vmap(lambda th, x, p: jax.jacfwd(f)(th, x, p), in_axes=(0, None, None)))
        with self._ctx():
            return np.asarray(self._call(self._cache[key], np.asarray(theta, dtype=self._dtype),
                                         np.asarray(xi, dtype=self._dtype), self._params(params)), dtype=float)

    def apply(self, theta, xi, params):
        """One step at states (member, D) for one noise sample (``apply`` of JAX-native maps)."""
        jax = self._jax
        if "apply" not in self._cache:
            self._cache["apply"] = jax.jit(jax.vmap(self._f, in_axes=(0, None, None)))
        with self._ctx():
            return np.asarray(self._call(self._cache["apply"], np.asarray(theta, dtype=self._dtype),
                                         np.asarray(xi, dtype=self._dtype), self._params(params)), dtype=float)


#: Errors of tracing (the user's code under JAX), as opposed to run-time errors of XLA (RuntimeError).
_TRACE_ERRORS = (TypeError, AttributeError, IndexError, ValueError, NameError, KeyError, NotImplementedError)


def trace_error(system, exc, inside=None) -> TypeError:
    """The error, in the user's terms, for an exception ``exc`` raised while JAX traced ``system``'s map (or the
    region predicate ``inside``): names the function, the file and line where it failed, and what JAX runs."""
    from rds._mapcheck import describe
    funcs = [(system.step, "map")]
    if inside is not None:
        funcs.append((getattr(inside, "member", inside), "region predicate"))
    files: dict = {}
    for f, role in funcs:
        code = getattr(getattr(f, "py_func", f), "__code__", None)
        if code is not None:
            files.setdefault(code.co_filename, (f, role))
    culprit, at, tb = funcs[0], "", exc.__traceback__
    library = (os.sep + "jax" + os.sep, os.sep + "jaxlib" + os.sep, os.path.dirname(os.path.abspath(__file__)))
    while tb is not None:  # the innermost frame of the user's code (the clones keep the user's file and lines)
        fname = tb.tb_frame.f_code.co_filename
        if not any(p in fname for p in library) and not fname.startswith("<frozen"):
            at = f" at {fname}, line {tb.tb_lineno}"
            culprit = files.get(fname, culprit)
        tb = tb.tb_next
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    if "TracerArrayConversion" in type(exc).__name__ or "Concretization" in type(exc).__name__:
        first += (" (a NumPy-only function or a conversion of a traced array, e.g. float(x), np.asarray(x) in a "
                  "library function or a function held by an object JAX cannot see through)")
    if first.startswith(describe(*culprit)):  # already in the user's terms (the output check of member_step_for)
        return TypeError(f"{first}. {JAX_SUPPORT}")
    return TypeError(f"the JAX backend could not run {describe(*culprit)}{at}: {type(exc).__name__}: {first}. "
                     f"{JAX_SUPPORT}")


class _JaxBackend:
    """The JAX backend (see the module docstring)."""

    name = "jax"
    forms = ("elementwise", "vector")

    def available(self) -> bool:
        return available()

    def kernels(self, system):
        return JaxKernels(system)

    def estimate(self, system, plan, kernels) -> float:
        if system.map.form != "vector":  # Numba is faster on CPU for a few variables: JAX only when asked for
            return math.inf
        w = 1.0 if plan.service != "tangent" else 1.0 + (plan.k or system.nvar)
        return plan.repeats * w * plan.member_steps * MEMBER_STEP_S


BACKEND = _JaxBackend()
