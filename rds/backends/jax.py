"""The JAX backend: the same user map, with ``numpy`` replaced by ``jax.numpy``, jit-compiled for CPU or GPU.

A map is written once with NumPy (``np.tanh``, ``np.dot``, ``x @ W`` …). :func:`jaxify` clones it — and,
recursively, the plain Python functions it calls — with ``np`` (and ``math``, ``scipy.special``) replaced by their
JAX counterparts in the clone's globals, closure cells and default arguments, as :mod:`rds.fastmath` does for Numba.
Functions that take an array namespace argument ``xp`` (e.g. those of :mod:`rds.models.two_layer`) are called as
they are: a map passes them ``xp=np``, which in the clone is ``jax.numpy``.
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

import math
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


class _JaxMath:
    """``math`` for traced code: the functions of :mod:`math` a map may use, on JAX arrays."""

    def __init__(self):
        import jax.numpy as jnp
        import jax.scipy.special as jss
        self.pi, self.e, self.inf, self.nan, self.tau = math.pi, math.e, math.inf, math.nan, math.tau
        for name in ("sqrt", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                     "arcsin", "arccos", "arctan", "isfinite", "isnan", "floor", "ceil", "log10", "log2"):
            setattr(self, name, getattr(jnp, name))
        self.asin, self.acos, self.atan, self.atan2 = jnp.arcsin, jnp.arccos, jnp.arctan, jnp.arctan2
        self.fabs, self.pow, self.erf, self.erfc = jnp.abs, jnp.power, jss.erf, jss.erfc


def _substitute(obj, memo):
    import jax.numpy as jnp
    if obj is np:
        return jnp
    if obj is math:
        return memo.setdefault("__math__", _JaxMath())
    mod = getattr(obj, "__name__", None)
    if isinstance(obj, types.ModuleType):
        if mod == "scipy.special":
            import jax.scipy.special as jss
            return jss
        return obj
    if isinstance(obj, np.ufunc) or (callable(obj) and getattr(obj, "__module__", "") == "numpy"):
        sub = getattr(jnp, getattr(obj, "__name__", ""), None)
        return obj if sub is None else sub
    if callable(obj) and getattr(obj, "__module__", "") == "numpy.linalg":
        sub = getattr(jnp.linalg, getattr(obj, "__name__", ""), None)
        return obj if sub is None else sub
    if callable(obj) and getattr(obj, "__module__", "") == "scipy.special._ufuncs":
        import jax.scipy.special as jss
        return getattr(jss, obj.__name__, obj)
    if isinstance(obj, types.FunctionType):
        return jaxify(obj, memo)
    return obj


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
    closure = None
    if func.__closure__:
        closure = tuple(types.CellType(_substitute(c.cell_contents, memo)) if _cell_ok(c) else c
                        for c in func.__closure__)
    glb = dict(func.__globals__)
    clone = types.FunctionType(func.__code__, glb, func.__name__, None, closure)
    memo[id(func)] = clone
    for name in global_names(func.__code__):
        if name in glb:
            glb[name] = _substitute(glb[name], memo)
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
    if system.form == "vector":
        return step
    nvar = system.nvar

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
            out = fn(np.asarray(X.T, dtype=self._dtype), self._noise(noise, nsteps), self._params(params),
                     np.int32(nsteps))
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
            th, Vn, lr = fn(np.asarray(X.T, dtype=dt), np.asarray(np.moveaxis(V, -1, 0), dtype=dt),
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
        with self._ctx():
            th, es = fn(np.asarray(X.T, dtype=self._dtype), np.asarray(exit_step, dtype=np.int64),
                        self._noise(noise, nsteps), self._params(params), np.int32(nsteps), np.int64(n0))
            X[...] = np.asarray(th, dtype=float).T
            exit_step[...] = np.asarray(es)

    # ----------------------------------------------------------- single steps
    def jacobian(self, theta, xi, params):
        """Jacobian matrices (member, D, D) by forward-mode autodiff (``jax.jacfwd``) at states (member, D)."""
        jax = self._jax
        key = "jacobian"
        if key not in self._cache:
            f = self._f
            self._cache[key] = jax.jit(jax.vmap(lambda th, x, p: jax.jacfwd(f)(th, x, p), in_axes=(0, None, None)))
        with self._ctx():
            return np.asarray(self._cache[key](np.asarray(theta, dtype=self._dtype),
                                               np.asarray(xi, dtype=self._dtype),
                                               self._params(params)), dtype=float)


    def apply(self, theta, xi, params):
        """One step at states (member, D) for one noise sample (``apply`` of JAX-native maps)."""
        jax = self._jax
        if "apply" not in self._cache:
            self._cache["apply"] = jax.jit(jax.vmap(self._f, in_axes=(0, None, None)))
        with self._ctx():
            return np.asarray(self._cache["apply"](np.asarray(theta, dtype=self._dtype),
                                                   np.asarray(xi, dtype=self._dtype), self._params(params)),
                              dtype=float)


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
