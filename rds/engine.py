"""The ensemble engine: one map, two backends, three services, any executor.

A map ``step(state, xi, params)`` is written once, elementwise. The engine generates, from a single source text
per service, a *member update* that indexes the ensemble as ``X[i, m]``. Under the NumPy backend ``m`` is
``slice(None)`` and the update is vectorised over the whole ensemble; under the Numba backend ``m`` is an integer
inside a parallel loop over blocks of members. The same text, compiled twice, is what makes the two backends agree
to rounding.

Services (all members advance through the same absolute times, so the noise ξ_t is shared or per member as the
system says):

``evolve``
    advance the ensemble, optionally recording the state at chosen absolute times;
``tangent``
    advance the ensemble together with ``k`` tangent vectors per member, ``V ← J V``, re-orthonormalised by a
    (twice-iterated) modified Gram–Schmidt QR every ``qr_every`` steps while accumulating ``log |R_cc|``
    (the Benettin / QR method for Lyapunov exponents);
``exit``
    advance until each member first leaves a region, recording the exit step and freezing the member there.

A member whose state becomes non-finite is set to NaN (all variables) and counted as diverged; the others go on.

Layout: the ensemble is stored variable-major ``X[var, member]`` (struct of arrays) so the member loop vectorises;
tangent vectors are ``V[var, vector, member]`` and log-norms ``logr[vector, member]``.

Compiled backend: threads take blocks of :data:`BLOCK` members; inside a block the steps run in order and the
member loop is innermost, in its own compiled function with unsigned bounds, so that LLVM vectorises it (AVX2: 4
members at a time). For that the map is inlined with vectorisable elementary functions (:mod:`rds.fastmath`
replaces ``np.tanh``, ``np.exp``, ``np.log``, ``np.sin`` … in the compiled clone's globals; a few ulp), a short
1-D noise sample is a fixed-length vector (the map's batch loop unrolls), common noise is read once per step outside
the member loop (noise-only terms such as the FA target T(x) are hoisted), the tangent update and the QR are
unrolled into scalars and run on block-local buffers, and everything uses NumPy's error model. Results do not depend
on the block, chunk or thread a member lands in. Kernels are generated code: Numba's on-disk cache does not apply;
the first call of a service compiles it (≈3–7 s for evolve/exit, ≈10–20 s for a 4-variable tangent service on this
2-core machine), and kernels are then reused for every system with the same map and noise layout.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import Executor

import numpy as np

from rds._codegen import make_function, tuple_src
from rds._complexstep import COMPLEX_STEP, complex_step_jacobian_source  # noqa: F401 (the automatic Jacobian's home)
from rds.noise import NOISE_BLOCK

try:  # numba is a hard dependency, but keep a clean error if its import fails on an odd platform
    import numba as nb
except Exception:  # pragma: no cover
    nb = None

__all__ = ["BACKENDS", "run", "run_chunked", "kernels_for", "complex_step_jacobian_source"]

BACKENDS = ("numpy", "numba", "jax")
#: Members per block of the compiled member loop (a block's state stays in L1 cache).
BLOCK = 256
#: Below this many member-steps, ``backend=None`` uses NumPy unless the compiled kernels already exist.
AUTO_NUMBA_THRESHOLD = 2_000_000


# ---------------------------------------------------------------------------------------------------------------
# generated sources (one text per service, compiled for both backends)

def _xi_src(noise_ndim: int, independent: bool, vec_len: int | None = None) -> str:
    """Source of this step's noise sample ``xi`` inside an update, from ``nt = xi_of(noise, t)``.

    Common noise: ``nt`` is already the sample (loaded once per step, outside the member loop, so that terms that
    depend on the noise only are hoisted out of it). Independent noise: ``nt`` is the noise array and the member's
    sample is gathered. With ``vec_len`` (compiled backend, 1-D noise of a few samples) the sample is a
    fixed-length vector whose length is a compile-time constant (``rds.fastmath.nvec``), so a map's loop over the
    batch unrolls and the member loop around it vectorises; otherwise it is an array view.
    """
    if not independent:
        return "nt"
    if vec_len is not None:
        return "nvec(" + tuple_src(f"nt[t, {k}, m]" for k in range(vec_len)) + ")"
    return "nt[t, " + ", ".join([":"] * noise_ndim) + ", m]"


def xi_of_source(independent: bool, vec_len: int | None = None) -> str:
    """Source of ``xi_of(noise, t)``: the per-step noise argument ``nt`` of the updates (see :func:`_xi_src`)."""
    if independent:
        body = "noise"
    elif vec_len is not None:
        body = "nvec(" + tuple_src(f"noise[t, {k}]" for k in range(vec_len)) + ")"
    else:
        body = "noise[t]"
    return f"def xi_of(noise, t):\n    return {body}\n"


def _store_src(nvar: int, ind: str = "    ") -> str:
    """Check the new state ``n`` is finite; store it (NaN everywhere if not)."""
    lines = [ind + f"n{i} = n[{i}]" for i in range(nvar)]
    lines.append(ind + "ok = isfinite(" + " + ".join(f"n{i}" for i in range(nvar)) + ")")
    lines += [ind + f"a{i} = sel(ok, n{i})" for i in range(nvar)]
    lines += [ind + f"X[{i}, m] = a{i}" for i in range(nvar)]
    return "\n".join(lines)


def _load_src(nvar: int) -> str:
    return tuple_src(f"X[{i}, m]" for i in range(nvar))


def evolve_source(nvar, noise_ndim, independent, vec_len=None):
    return f"""
def update(X, m, nt, t, params):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    n = step({_load_src(nvar)}, xi, params)
{_store_src(nvar)}
"""


def tangent_source(nvar, noise_ndim, independent, k, vec_len=None):
    """Source of the tangent update: state step and ``V <- J V`` for ``k`` vectors, fully unrolled in scalars."""
    lines = []
    for c in range(k):
        for i in range(nvar):
            terms = " + ".join(f"J[{i}][{j}] * V[{j}, {c}, m]" for j in range(nvar))
            lines.append(f"    w{i}_{c} = {terms}")
    for c in range(k):
        for i in range(nvar):
            lines.append(f"    V[{i}, {c}, m] = w{i}_{c}")
    body = "\n".join(lines)
    return f"""
def update(X, V, m, nt, t, params):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    s = {_load_src(nvar)}
    J = jac(s, xi, params)
    n = step(s, xi, params)
{body}
{_store_src(nvar)}
"""


def exit_source(nvar, noise_ndim, independent, vec_len=None):
    return f"""
def update(X, exit_step, m, nt, t, params, count):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    alive = exit_step[m] < 0
    n = step({_load_src(nvar)}, xi, params)
    n = {tuple_src(f"pick(alive, n[{i}], X[{i}, m])" for i in range(nvar))}
{_store_src(nvar)}
    out = np.logical_and(alive, np.logical_not(inside({_load_src(nvar)})))
    exit_step[m] = pick(out, count, exit_step[m])
"""


def mgs_source(nvar: int, k: int) -> str:
    """Source of :func:`mgs` unrolled for ``nvar`` variables and ``k`` vectors (same arithmetic, in scalars)."""
    L = ["def mgs(V, logr, m):"]
    for c in range(k):
        for i in range(nvar):
            L.append(f"    v{i}_{c} = V[{i}, {c}, m]")
    for c in range(k):
        for _ in range(2):
            for d in range(c):
                L.append("    dot = " + " + ".join(f"v{i}_{d} * v{i}_{c}" for i in range(nvar)))
                for i in range(nvar):
                    L.append(f"    v{i}_{c} = v{i}_{c} - dot * v{i}_{d}")
        L.append("    sq = " + " + ".join(f"v{i}_{c} * v{i}_{c}" for i in range(nvar)))
        L.append("    norm = np.sqrt(sq)")
        L.append(f"    logr[{c}, m] = logr[{c}, m] + np.log(norm)")
        for i in range(nvar):
            L.append(f"    v{i}_{c} = v{i}_{c} / norm")
    for c in range(k):
        for i in range(nvar):
            L.append(f"    V[{i}, {c}, m] = v{i}_{c}")
    return "\n".join(L) + "\n"


def mgs(V, logr, m):
    """Twice-iterated modified Gram–Schmidt QR of the tangent vectors of member(s) ``m``, in place.

    Accumulates ``log R_cc`` (the column norms after orthogonalisation) into ``logr[c, m]``. Written once for both
    backends: ``m`` is an integer under Numba and ``slice(None)`` under NumPy.
    """
    nvar = V.shape[0]
    for c in range(V.shape[1]):
        for _ in range(2):
            for d in range(c):
                dot = 0.0
                for i in range(nvar):
                    dot = dot + V[i, d, m] * V[i, c, m]
                for i in range(nvar):
                    V[i, c, m] = V[i, c, m] - dot * V[i, d, m]
        sq = 0.0
        for i in range(nvar):
            sq = sq + V[i, c, m] * V[i, c, m]
        norm = np.sqrt(sq)
        logr[c, m] = logr[c, m] + np.log(norm)
        for i in range(nvar):
            V[i, c, m] = V[i, c, m] / norm


# ---------------------------------------------------------------------------------------------------------------
# backend namespaces

def _np_sel(ok, a):
    return np.where(ok, a, np.nan)


def _np_pick(cond, a, b):
    return np.where(cond, a, b)


class _NumpyKernels:
    """Vectorised reference kernels: a Python loop over steps, NumPy over members."""

    name = "numpy"

    def __init__(self, system):
        nvar = len(system.variables)
        nd = len(system.noise.shape)
        ind = system.independent_noise
        ns = {"step": system.step, "jac": system._jacobian_function(), "sel": _np_sel, "pick": _np_pick,
              "isfinite": np.isfinite}
        self._nvar, self._nd, self._ind = nvar, nd, ind
        self._evolve = make_function(evolve_source(nvar, nd, ind), "update", ns)
        self._xi_of = make_function(xi_of_source(ind), "xi_of")
        self._exit_src = exit_source(nvar, nd, ind)
        self._ns = ns
        self._exit_cache = {}
        self._tangent_cache = {}

    def evolve(self, X, noise, params, nsteps):
        m = slice(None)
        for t in range(nsteps):
            self._evolve(X, m, self._xi_of(noise, t), t, params)

    def _tangent_update(self, k):
        if k not in self._tangent_cache:
            src = tangent_source(self._nvar, self._nd, self._ind, k)
            self._tangent_cache[k] = (make_function(src, "update", self._ns),
                                      make_function(mgs_source(self._nvar, k), "mgs"))
        return self._tangent_cache[k]

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        update, qr = self._tangent_update(V.shape[1])
        m = slice(None)
        for t in range(nsteps):
            update(X, V, m, self._xi_of(noise, t), t, params)
            n = n0 + t + 1
            if n % qr_every == 0 or (t == nsteps - 1 and qr_final):
                qr(V, logr, m)

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside):
        update = self._exit_update(inside)
        m = slice(None)
        for t in range(nsteps):
            update(X, exit_step, m, self._xi_of(noise, t), t, params, n0 + t + 1)
            if np.all(exit_step >= 0):
                break

    def _exit_update(self, inside):
        key = id(inside)
        if key not in self._exit_cache:
            ns = dict(self._ns, inside=inside)
            self._exit_cache[key] = (inside, make_function(self._exit_src, "update", ns))
        return self._exit_cache[key][1]


def _nb_sel(ok, a):  # compiled below
    return a if ok else np.nan


def _nb_pick(cond, a, b):
    return a if cond else b


_JITTED: dict = {}
#: Options of every compiled function: NumPy's error model (x/0 -> inf/nan like the NumPy backend, and no
#: exception branch in the member loop, which would stop it from vectorising).
NB_OPTS = {"error_model": "numpy"}
#: Longest 1-D noise sample passed to compiled maps as a fixed-length vector (longer: an array view).
MAX_VEC_NOISE = 16


def jit_map_function(func):
    """Compile a map (or a predicate, or a Jacobian) for Numba, together with the plain functions it calls.

    Helper functions referenced as globals by ``func`` (e.g. a shared formula) are compiled too, recursively, so a
    map may call other elementwise Python functions. The compiled clone sees ``numpy`` / ``math`` through
    :mod:`rds.fastmath`: ``np.tanh``, ``np.exp``, ``np.log``, ``np.sin`` … on real scalars are inlined, vectorisable
    implementations (complex arguments, e.g. of the complex-step Jacobian, use Numba's usual ones). Returns a Numba
    dispatcher inlined at call sites.
    """
    import types

    from rds.fastmath import substitute_globals
    if isinstance(func, nb.core.dispatcher.Dispatcher):
        return func
    if func in _JITTED:
        return _JITTED[func]
    glb = substitute_globals(func.__globals__, func.__code__.co_names)
    for name in func.__code__.co_names:
        obj = glb.get(name)
        if isinstance(obj, types.FunctionType) and obj is not func:
            glb[name] = jit_map_function(obj)
    clone = types.FunctionType(func.__code__, glb, func.__name__, func.__defaults__, func.__closure__)
    _JITTED[func] = nb.njit(inline="always", **NB_OPTS)(clone)
    return _JITTED[func]


class _NumbaKernels:
    """Compiled kernels: a parallel loop over blocks of members, steps inside, members innermost.

    The member loop is what LLVM vectorises: the state is struct-of-arrays ``X[var, member]``, the map and its
    elementary functions are inlined (see :mod:`rds.fastmath`), a short 1-D noise sample is a fixed-length vector so
    the map's loop over the batch unrolls, and the tangent update and QR are unrolled into scalars. If a map uses
    its noise sample in a way the fixed-length vector does not support, the kernels fall back to array samples.
    """

    name = "numba"

    def __init__(self, system):
        if nb is None:  # pragma: no cover
            raise RuntimeError("numba is not importable here; use backend='numpy'")
        from rds import fastmath
        self._nvar = len(system.variables)
        self._nd = len(system.noise.shape)
        self._ind = system.independent_noise
        shape = system.noise.shape
        self._vec_len = shape[0] if (len(shape) == 1 and 1 <= shape[0] <= MAX_VEC_NOISE) else None
        jit = nb.njit(inline="always", **NB_OPTS)
        self._ns = {"step": jit_map_function(system.step), "jac": jit_map_function(system._jacobian_function()),
                    "sel": jit(_nb_sel), "pick": jit(_nb_pick), "isfinite": math.isfinite,
                    "nvec": fastmath.nvec, "np": fastmath.fast_numpy}
        self._cache = {}

    def _xi_of(self, vec_len):
        return nb.njit(inline="always", **NB_OPTS)(make_function(xi_of_source(self._ind, vec_len), "xi_of", self._ns))

    def _update(self, src, ns=None):
        return nb.njit(inline="always", **NB_OPTS)(make_function(src, "update", ns or self._ns))

    def _kernel(self, key, build):
        """The compiled kernel ``key``; ``build(vec_len)`` makes it (vec_len None: array noise samples)."""
        if key not in self._cache:
            self._cache[key] = [build(self._vec_len), build, self._vec_len is not None]
        return self._cache[key]

    def _call(self, key, build, *args):
        entry = self._kernel(key, build)
        with warnings.catch_warnings():
            # Numba's pedantic SSA check misfires on the nested inlined selects of rds.fastmath (the code is
            # correct: tests compare with NumPy); it only runs while compiling
            warnings.simplefilter("ignore", nb.core.errors.NumbaIRAssumptionWarning)
            try:
                return entry[0](*args)
            except nb.core.errors.TypingError:
                if not entry[2]:
                    raise
                entry[0] = build(None)  # the map does more with xi than a fixed-length vector supports
                entry[2] = False
                return entry[0](*args)

    def evolve(self, X, noise, params, nsteps):
        def build(vl):
            return _nb_evolve_kernel(self._update(evolve_source(self._nvar, self._nd, self._ind, vl)),
                                     self._xi_of(vl))
        self._call("evolve", build, X, noise, params, nsteps)

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        k = V.shape[1]

        def build(vl):
            upd = self._update(tangent_source(self._nvar, self._nd, self._ind, k, vl))
            qr = nb.njit(inline="always", **NB_OPTS)(make_function(mgs_source(self._nvar, k), "mgs", self._ns))
            sl = nb.njit(inline="always", **NB_OPTS)(make_function(noise_slice_source(self._nd, self._ind),
                                                                    "noise_slice"))
            return _nb_tangent_kernel(upd, qr, self._nvar, k, sl, self._xi_of(vl))
        self._call(("tangent", k), build, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final)

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside):
        def build(vl):
            ns = dict(self._ns, inside=jit_map_function(inside))
            return _nb_exit_kernel(self._update(exit_source(self._nvar, self._nd, self._ind, vl), ns), self._xi_of(vl))
        key = ("exit", id(inside))
        if key in self._cache and self._cache[key][3] is not inside:  # id reused by a new predicate
            del self._cache[key]
        if key not in self._cache:
            self._kernel(key, build).append(inside)  # keep the predicate alive: its id stays valid
        self._call(key, build, X, exit_step, noise, params, nsteps, n0)


_KERNELS: dict = {}


def _kernel_key(system, backend):
    return (backend, system.step, system._jacobian_function(), system.nvar, tuple(system.noise.shape),
            system.independent_noise)


def kernels_for(system, backend):
    """The kernels of ``system`` on ``backend``, shared by all systems with the same map and noise layout.

    Parameters are run-time arguments, so a scan over σ² or η compiles once. Compilation happens at the first
    call of each service (a few seconds; kernels are generated code, so Numba's on-disk cache does not apply).
    """
    if backend == "jax" or getattr(system, "form", "elementwise") == "vector":  # rds.vector / rds.jax_backend
        from rds import vector
        return vector.kernels_for(system, backend)
    key = _kernel_key(system, backend)
    if key not in _KERNELS:
        cls = _NumbaKernels if backend == "numba" else _NumpyKernels
        _KERNELS[key] = cls(system)
    return _KERNELS[key]


# The member loop of a block lives in its own (serial) compiled function: LLVM vectorises it there. Its bounds are
# unsigned so that ``X[i, m]`` needs no negative-index wrap-around (which would stop vectorisation); the parallel
# kernel only hands blocks to threads.

def _nb_evolve_kernel(update, xi_of):
    @nb.njit(**NB_OPTS)
    def block(X, noise, params, nsteps, lo, hi):
        for t in range(nsteps):
            nt = xi_of(noise, t)
            for m in range(lo, hi):
                update(X, m, nt, t, params)

    @nb.njit(parallel=True, **NB_OPTS)
    def kernel(X, noise, params, nsteps):
        M = X.shape[1]
        for b in nb.prange((M + BLOCK - 1) // BLOCK):
            block(X, noise, params, nsteps, np.uint64(b * BLOCK), np.uint64(min(b * BLOCK + BLOCK, M)))
    kernel.block = block
    return kernel


def _nb_tangent_kernel(update, mgs_nb, nvar, k, noise_slice, xi_of):
    # The block works on local copies with compile-time shapes: with the strides of V known, LLVM sees that
    # members do not overlap and vectorises (on the caller's arrays it would need too many run-time alias checks).
    @nb.njit(**NB_OPTS)
    def block(X, V, logr, noise, params, nsteps, n0, qr_every, qr_final, lo, hi):
        n = hi - lo
        Xb = np.empty((nvar, BLOCK))
        Vb = np.empty((nvar, k, BLOCK))
        Lb = np.empty((k, BLOCK))
        for i in range(nvar):
            for m in range(n):
                Xb[i, m] = X[i, lo + m]
            for c in range(k):
                for m in range(n):
                    Vb[i, c, m] = V[i, c, lo + m]
        for c in range(k):
            for m in range(n):
                Lb[c, m] = logr[c, lo + m]
        nz = noise_slice(noise, lo, hi)
        for t in range(nsteps):
            nt = xi_of(nz, t)
            for m in range(n):
                update(Xb, Vb, m, nt, t, params)
            s = n0 + t + 1
            if s % qr_every == 0 or (t == nsteps - 1 and qr_final):
                for m in range(n):
                    mgs_nb(Vb, Lb, m)
        for i in range(nvar):
            for m in range(n):
                X[i, lo + m] = Xb[i, m]
            for c in range(k):
                for m in range(n):
                    V[i, c, lo + m] = Vb[i, c, m]
        for c in range(k):
            for m in range(n):
                logr[c, lo + m] = Lb[c, m]

    @nb.njit(parallel=True, **NB_OPTS)
    def kernel(X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        M = X.shape[1]
        for b in nb.prange((M + BLOCK - 1) // BLOCK):
            block(X, V, logr, noise, params, nsteps, n0, qr_every, qr_final, np.uint64(b * BLOCK),
                  np.uint64(min(b * BLOCK + BLOCK, M)))
    kernel.block = block
    return kernel


def noise_slice_source(noise_ndim: int, independent: bool) -> str:
    """Source of ``noise_slice(noise, lo, hi)``: the block's members of independent noise (common: all of it)."""
    body = "noise[" + ", ".join([":"] * (noise_ndim + 1)) + ", lo:hi]" if independent else "noise"
    return f"def noise_slice(noise, lo, hi):\n    return {body}\n"


def _nb_exit_kernel(update, xi_of):
    @nb.njit(**NB_OPTS)
    def block(X, exit_step, noise, params, nsteps, n0, lo, hi):
        for t in range(nsteps):
            alive = 0
            for m in range(lo, hi):
                alive += exit_step[m] < 0
            if alive == 0:
                break
            nt = xi_of(noise, t)
            for m in range(lo, hi):
                update(X, exit_step, m, nt, t, params, n0 + t + 1)

    @nb.njit(parallel=True, **NB_OPTS)
    def kernel(X, exit_step, noise, params, nsteps, n0):
        M = X.shape[1]
        for b in nb.prange((M + BLOCK - 1) // BLOCK):
            block(X, exit_step, noise, params, nsteps, n0, np.uint64(b * BLOCK), np.uint64(min(b * BLOCK + BLOCK, M)))
    kernel.block = block
    return kernel


# ---------------------------------------------------------------------------------------------------------------
# the driver: cut [t0, t1) at noise blocks and requested times, call the kernels

def choose_backend(system, backend, member_steps):
    """Validate ``backend``; ``None`` picks Numba for large runs (or when already compiled), else NumPy.

    ``None`` never picks JAX for an elementwise map; for a vector map it picks JAX (see :mod:`rds.vector`).
    """
    if getattr(system, "form", "elementwise") == "vector":
        from rds import vector
        return vector.choose_backend(system, backend)
    if backend is None:
        if nb is None:  # pragma: no cover
            return "numpy"
        if _kernel_key(system, "numba") in _KERNELS or member_steps >= AUTO_NUMBA_THRESHOLD:
            return "numba"
        return "numpy"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    return backend


def run(system, X0, t0, steps, *, seed=0, realization=0, member_offset=0, backend="numpy",
        record_times=None, tangent=None, qr_every=1, region=None, progress=None):
    """Run one chunk of members through ``steps`` steps from absolute time ``t0``.

    Parameters
    ----------
    system : RandomDynamicalSystem
    X0 : ndarray, shape (member, var)
        Initial states (validated by the caller).
    t0, steps : int
        Absolute start time and number of steps.
    seed, realization : int
        The noise path.
    member_offset : int
        Absolute index of the first member (selects independent noise; irrelevant for common noise).
    backend : {"numpy", "numba"}
    record_times : sorted 1-D int array or None
        Absolute times in ``[t0, t0 + steps]`` at which to record the state (and ``logr`` with ``tangent``).
    tangent : ndarray, shape (member, var, k) or None
        Initial tangent vectors: run the tangent service.
    qr_every : int
        Steps between QR re-orthonormalisations (tangent service); a QR is also done at every recorded time and
        at the end.
    region : callable or None
        Elementwise predicate ``inside(state) -> bool``: run the first-exit service.
    progress : tqdm-like or None
        Updated with the number of steps done.

    Returns
    -------
    dict of ndarray, member axis first
        ``state`` (member, var); ``records`` (member, time, var) when recording; ``V`` (member, var, k),
        ``logr`` (member, k) and ``logr_records`` (member, time, k) for the tangent service; ``exit_step``
        (member,) for the exit service (-1: did not exit); ``diverged`` (member,) bool.
    """
    kern = system._get_kernels(backend)
    params = system._params_for_kernels()
    X = np.array(np.asarray(X0, dtype=float).T, order="C", copy=True)  # (var, member); never a view of X0
    M = X.shape[1]
    t1 = t0 + steps
    members = None if not system.independent_noise else (member_offset, member_offset + M)
    rec = np.asarray([] if record_times is None else record_times, dtype=np.int64)
    out = {}
    if rec.size:
        records = np.empty((rec.size, X.shape[0], M))
        out_rec_logr = None
    if tangent is not None:
        V = np.array(np.moveaxis(np.asarray(tangent, dtype=float), 0, -1), order="C", copy=True)  # (var, k, member)
        logr = np.zeros((V.shape[1], M))
        if rec.size:
            out_rec_logr = np.empty((rec.size, V.shape[1], M))
    if region is not None:
        exit_step = np.full(M, -1, dtype=np.int64)
        # a member already outside at t0 has exit step 0
        inside0 = np.broadcast_to(np.asarray(region(tuple(X)), dtype=bool), (M,))
        exit_step[~inside0] = 0

    # cut points: noise blocks, recorded times, and the ends
    cuts = set(range((t0 // NOISE_BLOCK + 1) * NOISE_BLOCK, t1, NOISE_BLOCK))
    cuts.update(int(r) for r in rec if t0 < r < t1)
    cuts = [t0] + sorted(cuts) + [t1] if steps > 0 else [t0]
    ri = 0
    while ri < rec.size and rec[ri] == t0:  # records at the start time
        records[ri] = X
        if tangent is not None:
            out_rec_logr[ri] = logr
        ri += 1
    blk_start, noise_blk = None, None
    for a, b in zip(cuts[:-1], cuts[1:]):
        bs = (a // NOISE_BLOCK) * NOISE_BLOCK
        if bs != blk_start:
            blk_start = bs
            noise_blk = system.noise.block(seed, realization, bs, bs + NOISE_BLOCK, members)
        nz = noise_blk[a - bs:b - bs]
        n = b - a
        is_rec = ri < rec.size and rec[ri] == b
        if tangent is not None:
            kern.tangent(X, V, logr, nz, params, n, a - t0, qr_every, bool(is_rec or b == t1))
        elif region is not None:
            kern.exit(X, exit_step, nz, params, n, a - t0, region)
        else:
            kern.evolve(X, nz, params, n)
        if progress is not None:
            progress.update(n)
        while ri < rec.size and rec[ri] == b:
            records[ri] = X
            if tangent is not None:
                out_rec_logr[ri] = logr
            ri += 1
        if region is not None and np.all(exit_step >= 0):
            break
    out["state"] = X.T.copy()
    out["diverged"] = ~np.all(np.isfinite(X), axis=0)
    if rec.size:
        out["records"] = np.moveaxis(records, -1, 0).copy()  # (member, time, var)
    if tangent is not None:
        out["V"] = np.moveaxis(V, -1, 0).copy()
        out["logr"] = logr.T.copy()
        if rec.size:
            out["logr_records"] = np.moveaxis(out_rec_logr, -1, 0).copy()
    if region is not None:
        out["exit_step"] = exit_step
    return out


def run_chunked(system, X0, t0, steps, *, executor=None, chunk_size=None, progress=None, tangent=None,
                **kwargs):
    """:func:`run` over chunks of members, locally or on a ``concurrent.futures.Executor``.

    Chunks are contiguous ranges of members; each carries its absolute member offset, so the results are the
    same whatever the chunk size, the executor or the thread count. Outputs are concatenated along members.
    """
    M = X0.shape[0]
    if chunk_size is None:
        chunk_size = M if executor is None else max(1, -(-M // 8))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    bounds = [(lo, min(lo + chunk_size, M)) for lo in range(0, max(M, 1), chunk_size)] if M else [(0, 0)]
    offset = kwargs.pop("member_offset", 0)

    def args(lo, hi):
        kw = dict(kwargs, member_offset=offset + lo,
                  tangent=None if tangent is None else tangent[lo:hi])
        return (system, X0[lo:hi], t0, steps), kw

    if executor is None:
        parts = []
        for lo, hi in bounds:
            a, kw = args(lo, hi)
            parts.append(run(*a, progress=progress, **kw))
    else:
        futures = []
        for lo, hi in bounds:
            a, kw = args(lo, hi)
            futures.append(executor.submit(run, *a, **kw))
        parts = []
        for f in futures:
            parts.append(f.result())
            if progress is not None:
                progress.update(steps)
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
