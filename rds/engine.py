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
on the block, chunk or thread a member lands in; an ensemble of a single block runs in a serial twin of the kernel.
Tangent services with ``nvar * k > TANGENT_UNROLL_MAX`` use loops instead of unrolled scalars.

Kernel cache: each compiled kernel is a generated module written to a cache folder and imported from there, so
Numba's on-disk cache applies (:mod:`rds._kernel_cache`). The first call of a service on a machine compiles it
(≈3–7 s for evolve/exit, ≈10–20 s for a 4-variable tangent service on a 2-core machine); later processes load it
(≈0.05–0.15 s, plus Numba's one-time start-up of ≈0.5 s in a process's first call). The module's name is a hash of
its source, of the map's (and Jacobian's, region's) code, constants, closures and helpers, of the library versions
and of the CPU: a changed map compiles anew. Folder: ``$RDS_CACHE_DIR`` (``off`` disables the cache), else
``$XDG_CACHE_HOME/rds/kernels`` or ``~/.cache/rds/kernels``; an unwritable folder means in-memory compilation,
without error. Maps that close over objects the fingerprint cannot describe are compiled in memory
(``kernels_for(system, "numba").uncacheable`` says why). Kernels are reused for every system with the same map and
noise layout.

Backend choice (``backend=None``): :func:`choose_backend` compares the estimated time of the whole run on each
backend (:func:`estimated_seconds`: NumPy's per-step Python overhead and per-member-step cost against Numba's
per-member-step cost plus compiling, or loading from the cache, the service).
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from concurrent.futures import Executor

import numpy as np

from rds import _kernel_cache, _tape
from rds._codegen import make_function, tuple_src
from rds._complexstep import COMPLEX_STEP, complex_step_jacobian_source  # noqa: F401 (the automatic Jacobian's home)
from rds.noise import NOISE_BLOCK

try:  # numba is a hard dependency, but keep a clean error if its import fails on an odd platform
    import numba as nb
except Exception:  # pragma: no cover
    nb = None

__all__ = ["BACKENDS", "run", "run_chunked", "kernels_for", "choose_backend", "estimated_seconds",
           "complex_step_jacobian_source"]

BACKENDS = ("numpy", "numba", "jax")
#: Members per block of the compiled member loop (a block's state stays in L1 cache).
BLOCK = 256


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
    return np.logical_and(alive, np.logical_not(out))
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
    # a float64 array of its own (no view of the state) where all members are finite: itself, stored as is
    if type(a) is np.ndarray and a.base is None and a.dtype == np.float64 and ok.all():
        return a
    return np.where(ok, a, np.nan)


def _np_pick(cond, a, b):
    return np.where(cond, a, b)


class _NumpyKernels:
    """Vectorised reference kernels: a Python loop over steps, NumPy over members.

    The map and its Jacobian are called through :class:`rds._tape.TapedMap`: recorded once, then replayed with
    preallocated buffers and in-place ufuncs (bitwise the direct evaluation; maps it cannot record are evaluated
    directly). The buffers are freed at the end of each service call.
    """

    name = "numpy"

    def __init__(self, system):
        nvar = len(system.variables)
        nd = len(system.noise.shape)
        ind = system.independent_noise
        self._taped = (_tape.TapedMap(system.step, ind), _tape.TapedMap(system._jacobian_function(), ind))
        ns = {"step": self._taped[0], "jac": self._taped[1], "sel": _np_sel, "pick": _np_pick,
              "isfinite": np.isfinite}
        self._nvar, self._nd, self._ind = nvar, nd, ind
        self._evolve = make_function(evolve_source(nvar, nd, ind), "update", ns)
        self._xi_of = make_function(xi_of_source(ind), "xi_of")
        self._exit_src = exit_source(nvar, nd, ind)
        self._ns = ns
        self._exit_cache = {}
        self._tangent_cache = {}

    def _begin(self):
        for taped in self._taped:
            taped.refresh()

    def _release(self):
        for taped in self._taped:
            taped.release()

    def evolve(self, X, noise, params, nsteps):
        m = slice(None)
        self._begin()
        try:
            for t in range(nsteps):
                self._evolve(X, m, self._xi_of(noise, t), t, params)
        finally:
            self._release()

    def _tangent_update(self, k):
        if k not in self._tangent_cache:
            src = tangent_source(self._nvar, self._nd, self._ind, k)
            self._tangent_cache[k] = (make_function(src, "update", self._ns),
                                      make_function(mgs_source(self._nvar, k), "mgs"))
        return self._tangent_cache[k]

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        update, qr = self._tangent_update(V.shape[1])
        m = slice(None)
        self._begin()
        try:
            for t in range(nsteps):
                update(X, V, m, self._xi_of(noise, t), t, params)
                n = n0 + t + 1
                if n % qr_every == 0 or (t == nsteps - 1 and qr_final):
                    qr(V, logr, m)
        finally:
            self._release()

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside):
        update = self._exit_update(inside)
        m = slice(None)
        self._begin()
        try:
            for t in range(nsteps):
                update(X, exit_step, m, self._xi_of(noise, t), t, params, n0 + t + 1)
                if np.all(exit_step >= 0):
                    break
        finally:
            self._release()

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


def store_matrix(Jb, m, J):
    """``Jb[i, j, m] = J[i][j]`` for a nested tuple ``J`` (a Jacobian), in compiled code only.

    Homogeneous tuples are stored by loops, so the code does not grow with the number of entries (256 unrolled
    stores of a 16-variable Jacobian cost Numba seconds to compile); a row or a matrix of mixed entry types
    (e.g. ``(1.0, 0)``) is unrolled over its entries.
    """
    raise NotImplementedError("store_matrix runs in compiled code only")


if nb is not None:
    @nb.extending.overload(store_matrix)
    def _ol_store_matrix(Jb, m, J):
        if isinstance(J, nb.types.UniTuple) and isinstance(J.dtype, nb.types.UniTuple):
            def impl(Jb, m, J):
                for i in range(len(J)):
                    row = J[i]
                    for j in range(len(row)):
                        Jb[i, j, m] = row[j]
            return impl
        lines = ["def impl(Jb, m, J):"]
        for i, row in enumerate(J):
            if isinstance(row, nb.types.UniTuple):
                lines += [f"    row = J[{i}]", "    for j in range(len(row)):", f"        Jb[{i}, j, m] = row[j]"]
            else:
                lines += [f"    Jb[{i}, {j}, m] = J[{i}][{j}]" for j in range(len(row))]
        # the generated function's module is this one: Numba's on-disk cache re-imports it by name on loading
        return make_function("\n".join(lines) + "\n", "impl", {"__name__": __name__})


_JITTED: dict = {}
#: Options of every compiled function: NumPy's error model (x/0 -> inf/nan like the NumPy backend, and no
#: exception branch in the member loop, which would stop it from vectorising).
NB_OPTS = {"error_model": "numpy"}
#: Longest 1-D noise sample passed to compiled maps as a fixed-length vector (longer: an array view).
MAX_VEC_NOISE = 16
#: Tangent services with ``nvar * k`` up to this are unrolled into scalars (fast to run, slow to compile); larger
#: ones use loops over variables and vectors around a vectorised member loop (compile time nearly flat in k, nvar).
TANGENT_UNROLL_MAX = 16


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


# Kernel modules. Each compiled kernel is one generated module: inlined helpers (the member updates, the noise
# access, the QR), a serial ``block`` (steps outside, the member loop of one block innermost: what LLVM
# vectorises; its bounds are unsigned so ``X[i, m]`` needs no negative-index wrap-around) and the parallel
# ``kernel`` that hands blocks to threads. ``step``, ``jac``, ``inside``, ``sel``, ``pick``, ``isfinite``,
# ``nvec``, ``np`` (rds.fastmath.fast_numpy), ``nb`` and ``CACHE`` are injected (rds._kernel_cache).

_INLINE = '@nb.njit(inline="always", error_model="numpy")\n'
_SERIAL = '@nb.njit(error_model="numpy")\n'
_PARALLEL = '@nb.njit(parallel=True, cache=CACHE, error_model="numpy")\n'


def _inline(src: str) -> str:
    return _INLINE + src.strip("\n") + "\n\n\n"


def _parallel_kernel_src(args: str, blk: int) -> str:
    """``kernel`` (blocks in parallel) and ``kernel1`` (the same blocks in order, for a single block: starting a
    parallel region costs more than a small ensemble's work, and far more on a busy machine)."""
    return _PARALLEL + f"""def kernel({args}):
    M = X.shape[1]
    for b in nb.prange((M + {blk} - 1) // {blk}):
        block({args}, np.uint64(b * {blk}), np.uint64(min(b * {blk} + {blk}, M)))


""" + _PARALLEL.replace("parallel=True, ", "") + f"""def kernel1({args}):
    M = X.shape[1]
    for b in range((M + {blk} - 1) // {blk}):
        block({args}, np.uint64(b * {blk}), np.uint64(min(b * {blk} + {blk}, M)))
"""


def evolve_module_source(nvar, noise_ndim, independent, vec_len=None) -> str:
    """Source of the compiled evolve kernel module (see :func:`_parallel_kernel_src`)."""
    return ("# rds generated kernel: evolve\n" + _inline(xi_of_source(independent, vec_len))
            + _inline(evolve_source(nvar, noise_ndim, independent, vec_len)) + _SERIAL + """\
def block(X, noise, params, nsteps, lo, hi):
    for t in range(nsteps):
        nt = xi_of(noise, t)
        for m in range(lo, hi):
            update(X, m, nt, t, params)


""" + _parallel_kernel_src("X, noise, params, nsteps", BLOCK))


def exit_module_source(nvar, noise_ndim, independent, vec_len=None) -> str:
    """Source of the compiled first-exit kernel module.

    The block retires: it stops as soon as all its members have left (each member's region test is part of
    the vectorised member update, a member that left is frozen by a select).
    """
    return ("# rds generated kernel: exit\n" + _inline(xi_of_source(independent, vec_len))
            + _inline(exit_source(nvar, noise_ndim, independent, vec_len)) + _SERIAL + """\
def block(X, exit_step, noise, params, nsteps, n0, lo, hi):
    alive = 0
    for m in range(lo, hi):
        alive += exit_step[m] < 0
    for t in range(nsteps):
        if alive == 0:
            break
        nt = xi_of(noise, t)
        count = n0 + t + 1
        alive = 0
        for m in range(lo, hi):
            alive += update(X, exit_step, m, nt, t, params, count)


""" + _parallel_kernel_src("X, exit_step, noise, params, nsteps, n0", BLOCK))


def _tangent_block_size(nvar: int) -> int:
    """Members per block of the looped tangent kernel: the block's Jacobians (nvar² × block) stay in L2 cache."""
    b = BLOCK
    while b > 16 and nvar * nvar * b > 32768:
        b //= 2
    return b


def tangent_unrolled(nvar: int, k: int) -> bool:
    """Whether the compiled tangent service of ``nvar`` variables and ``k`` vectors is unrolled into scalars."""
    return nvar * k <= TANGENT_UNROLL_MAX


def jac_store_source(nvar, noise_ndim, independent, vec_len=None):
    """Source of ``jstore``: the member's Jacobian at its current state into ``Jb[:, :, m]`` (looped tangent).

    A function of its own, apart from the state step (the inlined, vectorised ``update``): with the step in the
    same function the whole Jacobian stays live across the map's code and LLVM's optimisation time explodes
    (teacher_student, 16 variables: 55 s for the combined function, 9 s for the Jacobian alone).
    """
    return f"""
def jstore(X, Jb, m, nt, t, params):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    store_matrix(Jb, m, jac({_load_src(nvar)}, xi, params))
"""


_TANGENT_COPY_IN = """\
    n = hi - lo
    Xb = np.empty((NVAR, TB))
    Vb = np.empty((NVAR, K, TB))
    Lb = np.empty((K, TB))
    for i in range(NVAR):
        for m in range(n):
            Xb[i, m] = X[i, lo + m]
        for c in range(K):
            for m in range(n):
                Vb[i, c, m] = V[i, c, lo + m]
    for c in range(K):
        for m in range(n):
            Lb[c, m] = logr[c, lo + m]
    nz = noise_slice(noise, lo, hi)
"""
_TANGENT_COPY_OUT = """\
    for i in range(NVAR):
        for m in range(n):
            X[i, lo + m] = Xb[i, m]
        for c in range(K):
            for m in range(n):
                V[i, c, lo + m] = Vb[i, c, m]
    for c in range(K):
        for m in range(n):
            logr[c, lo + m] = Lb[c, m]
"""

# The looped QR: the same arithmetic as :func:`mgs` (sums from 0.0 in variable order), member loop innermost.
_MGS_LOOPED = _SERIAL + """\
def mgs_block(V, logr, D, n):
    NV, KV = V.shape[0], V.shape[1]
    for c in range(KV):
        for _ in range(2):
            for d in range(c):
                for m in range(n):
                    D[m] = 0.0
                for i in range(NV):
                    for m in range(n):
                        D[m] = D[m] + V[i, d, m] * V[i, c, m]
                for i in range(NV):
                    for m in range(n):
                        V[i, c, m] = V[i, c, m] - D[m] * V[i, d, m]
        for m in range(n):
            D[m] = 0.0
        for i in range(NV):
            for m in range(n):
                D[m] = D[m] + V[i, c, m] * V[i, c, m]
        for m in range(n):
            D[m] = np.sqrt(D[m])
            logr[c, m] = logr[c, m] + np.log(D[m])
        for i in range(NV):
            for m in range(n):
                V[i, c, m] = V[i, c, m] / D[m]


"""


def tangent_module_source(nvar, noise_ndim, independent, k, vec_len=None) -> str:
    """Source of the compiled tangent kernel module.

    Small cases (``nvar * k <= TANGENT_UNROLL_MAX``): the tangent update ``V <- J V`` and the QR are unrolled in
    scalars inside the member update. Larger ones: the member update stores its Jacobian in a block buffer and the
    product and the QR are loops over vectors and variables around vectorised member loops, so the generated code
    grows like nvar² (the Jacobian itself), not nvar² k + nvar k².

    The block works on local copies with compile-time shapes: with the strides known, LLVM sees that members do
    not overlap and vectorises (on the caller's arrays it would need too many run-time alias checks).
    """
    head = ("# rds generated kernel: tangent\n" + _inline(xi_of_source(independent, vec_len))
            + _inline(noise_slice_source(noise_ndim, independent)))
    args = "X, V, logr, noise, params, nsteps, n0, qr_every, qr_final"
    if tangent_unrolled(nvar, k):
        tb = BLOCK
        gen = _inline(tangent_source(nvar, noise_ndim, independent, k, vec_len)) + _inline(mgs_source(nvar, k))
        loop = """\
    for t in range(nsteps):
        nt = xi_of(nz, t)
        for m in range(n):
            update(Xb, Vb, m, nt, t, params)
        s = n0 + t + 1
        if s % qr_every == 0 or (t == nsteps - 1 and qr_final):
            for m in range(n):
                mgs(Vb, Lb, m)
"""
    else:
        tb = _tangent_block_size(nvar)
        # jstore is a function of its own (not inlined into the block): Numba's front end is superlinear in the
        # size of a function with many loops, and the Jacobian is the big part; the state step is the evolve
        # kernel's update, inlined into its own vectorised member loop
        gen = (_SERIAL + jac_store_source(nvar, noise_ndim, independent, vec_len).strip("\n") + "\n\n\n"
               + _inline(evolve_source(nvar, noise_ndim, independent, vec_len)) + _MGS_LOOPED)
        loop = """\
    Jb = np.empty((NVAR, NVAR, TB))
    W = np.empty((NVAR, TB))
    D = np.empty(TB)
    for t in range(nsteps):
        nt = xi_of(nz, t)
        for m in range(n):
            jstore(Xb, Jb, m, nt, t, params)
        for m in range(n):
            update(Xb, m, nt, t, params)
        for c in range(K):
            for i in range(NVAR):
                for m in range(n):
                    W[i, m] = 0.0
                for j in range(NVAR):
                    for m in range(n):
                        W[i, m] = W[i, m] + Jb[i, j, m] * Vb[j, c, m]
            for i in range(NVAR):
                for m in range(n):
                    Vb[i, c, m] = W[i, m]
        s = n0 + t + 1
        if s % qr_every == 0 or (t == nsteps - 1 and qr_final):
            mgs_block(Vb, Lb, D, n)
"""
    blk = _SERIAL + f"def block({args}, lo, hi):\n" + _TANGENT_COPY_IN + loop + _TANGENT_COPY_OUT + "\n\n"
    if not tangent_unrolled(nvar, k):
        blk = blk.replace("lo, hi):\n", "lo, hi):\n    NV, KV = X.shape[0], V.shape[1]\n", 1)
        return _substitute(head + gen, NVAR=nvar) + _substitute(blk, NVAR="NV", K="KV", TB=tb) \
            + _parallel_kernel_src(args, tb)
    return _substitute(head + gen, NVAR=nvar, K=k) + _substitute(blk, NVAR=nvar, TB=tb, K=k) \
        + _parallel_kernel_src(args, tb)


def _substitute(src: str, **consts) -> str:
    """Replace the whole-word names ``consts`` in the template ``src`` by their integer values."""
    return re.sub(r"\b(" + "|".join(consts) + r")\b", lambda mt: str(consts[mt.group(1)]), src)


class _BlockView:
    """``kernel.block`` of a kernel module, for inspection (``inspect_asm``) and tests.

    A kernel loaded from Numba's on-disk cache never compiled its block in this process (its machine code is
    inside the cached kernel); ``inspect_asm`` then compiles an in-memory copy of the module for the signature
    the kernel was called with.
    """

    def __init__(self, name, source, namespace, module):
        self._args = (name, source, namespace)
        self._module = module

    def inspect_asm(self, signature=None):
        blk = self._module.block
        if not blk.signatures:
            mod = _kernel_cache.load_module(self._args[0] + "_inspect", self._args[1], self._args[2], None)
            used = self._module.kernel.signatures or self._module.kernel1.signatures
            mod.kernel1.compile(used[0])
            blk = mod.block
        return blk.inspect_asm(signature)

    def __getattr__(self, name):
        return getattr(self._module.block, name)


def _block_members(service, nvar, k):
    return _tangent_block_size(nvar) if service == "tangent" and not tangent_unrolled(nvar, k) else BLOCK


class _Kernel:
    """A compiled kernel of a kernel module: the parallel ``kernel``, or ``kernel1`` for a single block."""

    def __init__(self, module, block, members_per_block):
        self._mod = module
        self.block = block
        self._one = members_per_block

    @property
    def signatures(self):
        return self._mod.kernel.signatures + self._mod.kernel1.signatures

    def __call__(self, X, *args):
        fn = self._mod.kernel1 if X.shape[1] <= self._one else self._mod.kernel
        if fn.signatures:
            return fn(X, *args)
        with _llvm_unroll_threshold(UNROLL_THRESHOLD):  # compiling (or loading from the on-disk cache)
            return fn(X, *args)


#: LLVM's full-unroll threshold at -O3 while a kernel compiles (LLVM's default: 300). A map's loop over a batch of
#: noise samples (a compile-time length up to MAX_VEC_NOISE, :func:`rds.fastmath.nvec`) must be unrolled for the
#: member loop around it to vectorise. FA evolve, 10⁵ members, M member-steps/s with the default → with this value:
#: batch 2: 40 → 470, batch 8: 11 → 160, batch 16: 6 → 86 (``python benchmarks/engine.py``), for the same compile
#: time. Only the engine's kernels compile with it (other code compiled in the process is not affected).
UNROLL_THRESHOLD = 4000
_LLVM_UNROLL_DEFAULT = 300


@contextlib.contextmanager
def _llvm_unroll_threshold(value):
    """LLVM's ``-unroll-threshold-aggressive`` (the -O3 full-unroll threshold) set to ``value``, then restored."""
    import llvmlite.binding as llvm
    llvm.set_option("rds", f"-unroll-threshold-aggressive={int(value)}")
    try:
        yield
    finally:
        llvm.set_option("rds", f"-unroll-threshold-aggressive={_LLVM_UNROLL_DEFAULT}")


class _NumbaKernels:
    """Compiled kernels: a parallel loop over blocks of members, steps inside, members innermost.

    The member loop is what LLVM vectorises: the state is struct-of-arrays ``X[var, member]``, the map and its
    elementary functions are inlined (see :mod:`rds.fastmath`), a short 1-D noise sample is a fixed-length vector so
    the map's loop over the batch unrolls, and the tangent update and QR are unrolled into scalars (small cases) or
    looped around vectorised member loops. If a map uses its noise sample in a way the fixed-length vector does not
    support, the kernels fall back to array samples.

    Each kernel is a generated module, persisted by :mod:`rds._kernel_cache` so that Numba's on-disk cache applies:
    a later process loads it instead of compiling (``self.uncacheable`` says why not, when not).
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
        jac = system._jacobian_function()
        self._ns = {"step": jit_map_function(system.step), "jac": jit_map_function(jac),
                    "store_matrix": store_matrix,
                    "sel": jit(_nb_sel), "pick": jit(_nb_pick), "isfinite": math.isfinite,
                    "nvec": fastmath.nvec, "np": fastmath.fast_numpy, "nb": nb}
        self.uncacheable = None
        try:
            self._parts = (_kernel_cache.fingerprint(system.step), _kernel_cache.fingerprint(jac),
                           _kernel_cache.fingerprint(_nb_sel), _kernel_cache.fingerprint(_nb_pick),
                           _params_type_key(system.params))
        except _kernel_cache.Uncacheable as e:
            self._parts = None
            self.uncacheable = str(e)
        self._cache = {}

    # -- sources, one per service (and noise-sample form vl)
    def _source(self, service, vl, k=None):
        if service == "evolve":
            return evolve_module_source(self._nvar, self._nd, self._ind, vl)
        if service == "tangent":
            return tangent_module_source(self._nvar, self._nd, self._ind, k, vl)
        return exit_module_source(self._nvar, self._nd, self._ind, vl)

    def _parts_for(self, inside=None):
        if self._parts is None or inside is None:
            return self._parts
        try:
            return self._parts + (_kernel_cache.fingerprint(inside),)
        except _kernel_cache.Uncacheable:
            return None

    def _build(self, service, k=None, inside=None):
        """``build(vl)`` for :meth:`_kernel`: load (or compile) the kernel module and return its ``kernel``."""
        ns = self._ns if inside is None else dict(self._ns, inside=jit_map_function(inside))
        parts = self._parts_for(inside)

        def build(vl):
            src = self._source(service, vl, k)
            mod = _kernel_cache.load_module(service, src, ns, parts)
            return _Kernel(mod, _BlockView(service, src, ns, mod), _block_members(service, self._nvar, k))
        return build, parts

    def _vec_flag(self, key, parts):
        return None if parts is None else (repr(key[0]) + "_novec", parts)

    def _kernel(self, key, make):
        """The entry ``[kernel, build, vec, flag, ...]`` of ``key``; ``make()`` gives ``(build, parts)``, where
        ``build(vec_len)`` compiles or loads the kernel (vec_len None: array noise samples)."""
        if key not in self._cache:
            build, parts = make()
            flag = self._vec_flag(key, parts)
            vec = self._vec_len is not None and not (flag is not None and _kernel_cache.flagged(*flag))
            self._cache[key] = [build(self._vec_len if vec else None), build, vec, flag]
        return self._cache[key]

    def _call(self, key, make, *args):
        entry = self._kernel(key, make)
        with warnings.catch_warnings():
            # Numba's pedantic SSA check misfires on the nested inlined selects of rds.fastmath (the code is
            # correct: tests compare with NumPy); it only runs while compiling
            warnings.simplefilter("ignore", nb.core.errors.NumbaIRAssumptionWarning)
            try:
                return entry[0](*args)
            except nb.core.errors.TypingError:
                if not entry[2]:
                    raise
                entry[0] = entry[1](None)  # the map does more with xi than a fixed-length vector supports
                entry[2] = False
                if entry[3] is not None:
                    _kernel_cache.flag(*entry[3])
                return entry[0](*args)

    def status(self, service, k=None, inside=None):
        """Where the kernel of ``service`` is: ``"memory"`` (compiled in this process), ``"disk"`` (in the
        on-disk cache) or ``None`` (it would have to be compiled)."""
        key = self._key(service, k, inside)
        if key in self._cache and self._cache[key][0].signatures:
            return "memory"
        parts = self._parts_for(inside)
        if parts is None:
            return None
        flag = self._vec_flag(key, parts)
        vec = self._vec_len is not None and not _kernel_cache.flagged(*flag)
        src = self._source(service, self._vec_len if vec else None, k)
        return "disk" if _kernel_cache.is_on_disk(service, src, parts) else None

    @staticmethod
    def _key(service, k=None, inside=None):
        if service == "tangent":
            return ("tangent", k)
        if service == "exit":
            return ("exit", id(inside))
        return "evolve"

    def evolve(self, X, noise, params, nsteps):
        self._call("evolve", lambda: self._build("evolve"), X, noise, params, nsteps)

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        k = V.shape[1]
        self._call(("tangent", k), lambda: self._build("tangent", k=k), X, V, logr, noise, params, nsteps, n0,
                   qr_every, qr_final)

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside):
        key = ("exit", id(inside))
        if key in self._cache and self._cache[key][4] is not inside:  # id reused by a new predicate
            del self._cache[key]
        if key not in self._cache:
            self._kernel(key, lambda: self._build("exit", inside=inside)).append(inside)  # keeps its id valid
        self._call(key, None, X, exit_step, noise, params, nsteps, n0)


def _params_type_key(params):
    """The parameter tuple's type, as far as compiled code depends on it (a namedtuple's class and fields)."""
    cls = type(params)
    if cls is tuple:
        return ("tuple", len(params))
    if "<locals>" in cls.__qualname__:
        raise _kernel_cache.Uncacheable(f"parameters of a local namedtuple class {cls.__qualname__}")
    return (cls.__module__, cls.__qualname__, tuple(getattr(cls, "_fields", ())), len(params))


_KERNELS: dict = {}


def _kernel_key(system, backend):
    return (backend, system.step, system._jacobian_function(), system.nvar, tuple(system.noise.shape),
            system.independent_noise)


def kernels_for(system, backend):
    """The kernels of ``system`` on ``backend``, shared by all systems with the same map and noise layout.

    Parameters are run-time arguments, so a scan over σ² or η compiles once. Compiled kernels are also kept on
    disk (:mod:`rds._kernel_cache`, folder ``$RDS_CACHE_DIR``): the first call of a service compiles it once per
    machine; later processes load it.
    """
    if backend == "jax" or getattr(system, "form", "elementwise") == "vector":  # rds.vector / rds.jax_backend
        from rds import vector
        return vector.kernels_for(system, backend)
    key = _kernel_key(system, backend)
    if key not in _KERNELS:
        cls = _NumbaKernels if backend == "numba" else _NumpyKernels
        _KERNELS[key] = cls(system)
    return _KERNELS[key]


def noise_slice_source(noise_ndim: int, independent: bool) -> str:
    """Source of ``noise_slice(noise, lo, hi)``: the block's members of independent noise (common: all of it)."""
    body = "noise[" + ", ".join([":"] * (noise_ndim + 1)) + ", lo:hi]" if independent else "noise"
    return f"def noise_slice(noise, lo, hi):\n    return {body}\n"


# ---------------------------------------------------------------------------------------------------------------
# the driver: cut [t0, t1) at noise blocks and requested times, call the kernels

#: Cost model of ``backend=None`` (seconds; measured on a 2-core AVX2 machine, only the ratios matter much).
#: NumPy: a Python loop over steps, each a few dozen ufunc calls over the members.
NUMPY_STEP_S = 3e-5
NUMPY_MEMBER_STEP_S = 4e-8
#: Compiled: per member-step, plus compiling the service once (or loading it from the on-disk cache).
NUMBA_MEMBER_STEP_S = 3e-9
COMPILE_S = {"evolve": 6.0, "exit": 6.0, "tangent": 15.0}
LOAD_S = 0.7
#: Kept for compatibility: the member-step count above which the old rule picked Numba (no longer used).
AUTO_NUMBA_THRESHOLD = 2_000_000


def estimated_seconds(system, backend, member_steps, steps=None, service="evolve", k=None, repeats=1,
                      status=None):
    """Estimated wall time of ``repeats`` runs of ``member_steps`` member-steps (``steps`` steps) on ``backend``.

    NumPy: ``repeats · steps · NUMPY_STEP_S · w + repeats · member_steps · NUMPY_MEMBER_STEP_S · w``; compiled:
    ``c + repeats · member_steps · NUMBA_MEMBER_STEP_S · w'``, with ``c`` the compile time of the service
    (``COMPILE_S``; ``LOAD_S`` when it is in the on-disk cache, 0 when compiled in this process) and ``w``, ``w'``
    the cost of the service relative to evolve (a tangent step costs ~nvar² k products under NumPy, ~nvar k under
    Numba). ``status``: where the compiled kernel is (``"memory"``, ``"disk"`` or None).
    """
    nvar = system.nvar
    steps = member_steps if steps is None else max(int(steps), 1)
    if service == "tangent":
        kk = nvar if k is None else k
        w_np, w_nb = 1.0 + nvar * nvar * kk / 8.0, 1.0 + nvar * kk / 4.0
    else:
        w_np = w_nb = 1.2 if service == "exit" else 1.0
    if backend == "numpy":
        return repeats * w_np * (steps * NUMPY_STEP_S + member_steps * NUMPY_MEMBER_STEP_S)
    fixed = {"memory": 0.0, "disk": LOAD_S}.get(status, COMPILE_S.get(service, COMPILE_S["evolve"]))
    return fixed + repeats * member_steps * NUMBA_MEMBER_STEP_S * w_nb


def choose_backend(system, backend, member_steps, *, steps=None, service="evolve", k=None, inside=None,
                   repeats=1):
    """Validate ``backend``; ``None`` picks the backend with the smaller estimated time for the total work.

    The estimate (:func:`estimated_seconds`) counts ``repeats`` runs (e.g. the realisations of an analysis) of
    ``member_steps`` member-steps over ``steps`` steps of ``service`` (``"evolve"``, ``"tangent"`` with ``k``
    vectors, ``"exit"`` for the region ``inside``), and whether the compiled kernel is already in memory, in the
    on-disk cache or still to be compiled. Short runs stay on NumPy; long ones (many steps even with few members:
    NumPy pays a Python loop per step) go to Numba. ``None`` never picks JAX for an elementwise map; for a vector
    map it picks JAX (see :mod:`rds.vector`).
    """
    if getattr(system, "form", "elementwise") == "vector":
        from rds import vector
        return vector.choose_backend(system, backend)
    if backend is None:
        if nb is None:  # pragma: no cover
            return "numpy"
        try:
            status = kernels_for(system, "numba").status(service, k=k, inside=inside)
        except Exception:  # a map the compiled backend cannot even set up: NumPy
            return "numpy"
        kw = dict(steps=steps, service=service, k=k, repeats=repeats)
        t_np = estimated_seconds(system, "numpy", member_steps, **kw)
        t_nb = estimated_seconds(system, "numba", member_steps, status=status, **kw)
        return "numba" if t_nb < t_np else "numpy"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    return backend


def service_of(run_kwargs) -> dict:
    """The service arguments of :func:`choose_backend` for the keyword arguments of a :func:`run` call."""
    if run_kwargs.get("tangent") is not None:
        return {"service": "tangent", "k": int(np.shape(run_kwargs["tangent"])[-1])}
    if run_kwargs.get("region") is not None:
        return {"service": "exit", "inside": run_kwargs["region"]}
    return {"service": "evolve"}


def _segments(t0, t1, rec):
    """The pieces ``(a, b)`` of ``[t0, t1)``, cut at noise-block boundaries and at the recorded times ``rec``
    (sorted), generated one at a time (a run of 2**62 steps never materialises its cut points)."""
    inner = (int(r) for r in rec if t0 < r < t1)
    nxt = next(inner, None)
    a = t0
    while a < t1:
        b = min((a // NOISE_BLOCK + 1) * NOISE_BLOCK, t1)
        if nxt is not None and nxt <= b:
            b = nxt
            while nxt is not None and nxt <= b:
                nxt = next(inner, None)
        yield a, b
        a = b


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

    ri = 0
    while ri < rec.size and rec[ri] == t0:  # records at the start time
        records[ri] = X
        if tangent is not None:
            out_rec_logr[ri] = logr
        ri += 1
    blk_start, noise_blk = None, None
    for a, b in _segments(t0, t1, rec):  # cut at noise blocks and recorded times
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


# Numba's "workqueue" threading layer aborts the process when two threads enter parallel kernels at once (it is
# not thread-safe). Under it, compiled runs from several threads take turns; other layers (omp, tbb) run freely.
_WORKQUEUE_LOCK = __import__("threading").RLock()
_run_unserialized = run


def _workqueue_layer() -> bool:
    if nb is None:  # pragma: no cover
        return False
    if nb.config.THREADING_LAYER == "workqueue":
        return True
    try:
        return nb.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet: the layer is chosen by the first one
        return True


def run(system, X0, t0, steps, *, backend="numpy", **kwargs):  # type: ignore[no-redef]  # noqa: F811 - serialised wrapper of run above
    if backend == "numba" and _workqueue_layer():
        with _WORKQUEUE_LOCK:
            return _run_unserialized(system, X0, t0, steps, backend=backend, **kwargs)
    return _run_unserialized(system, X0, t0, steps, backend=backend, **kwargs)


run.__doc__ = _run_unserialized.__doc__
