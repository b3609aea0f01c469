"""The Numba backend: elementwise maps compiled into vectorised, parallel member loops.

Threads take blocks of :data:`BLOCK` members; inside a block the steps run in order and the member loop is
innermost, in its own compiled function with unsigned bounds, so that LLVM vectorises it (AVX2: 4 members at a
time). For that the map is inlined with vectorisable elementary functions (:mod:`rds.fastmath` replaces
``np.tanh``, ``np.exp``, ``np.log``, ``np.sin`` … in the compiled clone's globals; a few ulp), a short 1-D noise
sample is a fixed-length vector (the map's batch loop unrolls), common noise is read once per step outside the
member loop (noise-only terms such as the FA target T(x) are hoisted), the tangent update and the QR are unrolled
into scalars and run on block-local buffers, and everything uses NumPy's error model. Results do not depend on the
block, chunk or thread a member lands in; an ensemble of a single block runs in a serial twin of the kernel.
Tangent services with ``nvar * k > TANGENT_UNROLL_MAX`` use loops instead of unrolled scalars.

Kernel cache: each compiled kernel is a generated module written to a cache folder and imported from there, so
Numba's on-disk cache applies (:mod:`rds._kernel_cache`). The first call of a service on a machine compiles it
(≈1–4 s for evolve/exit, ≈2–3 s for a 1–2-variable tangent service, ≈9–12 s for 4 variables, on a quiet 2-core
machine); later processes load it
(≈0.05–0.15 s, plus Numba's one-time start-up of ≈0.5 s in a process's first call). The module's name is a hash of
its source, of the map's identity (:mod:`rds._identity`: its code, constants, closures, helpers, the globals and
module attributes it reads), of the library versions and of the CPU: a changed map compiles anew. Maps whose
identity cannot be established are compiled in memory (``kernels.uncacheable`` says why).

Cost model (``backend=None``): ``c + repeats · member_steps · MEMBER_STEP_S · w`` with ``w`` the cost of the
service relative to evolve (a tangent step: ~nvar k) and ``c`` the fixed cost: 0 when the kernel is in memory;
loading it from the on-disk cache (``LOAD_S``, plus Numba's start-up ``START_S`` if no kernel has run in this
process yet); else compiling it (:func:`compile_seconds`, fitted to first calls measured by
``benchmarks/cost_model.py`` and ``benchmarks/first_call.py``; plus ``START_S`` likewise). A process that has paid
for Numba once therefore keeps choosing it for runs it would have compiled for anyway.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import warnings

import numpy as np

from rds import _kernel_cache
from rds._codegen import make_function
from rds._identity import Unidentifiable
from rds.backends._sources import (
    evolve_source,
    exit_source,
    jac_store_source,
    mgs_source,
    noise_slice_source,
    tangent_source,
    xi_of_source,
)

try:  # numba is a hard dependency, but keep a clean error if its import fails on an odd platform
    import numba as nb
except Exception:  # pragma: no cover
    nb = None

__all__ = ["BACKEND", "NumbaKernels", "BLOCK", "jit_map_function", "store_matrix", "UNROLL_THRESHOLD",
           "tangent_unrolled", "evolve_module_source", "tangent_module_source", "exit_module_source"]

#: Members per block of the compiled member loop (a block's state stays in L1 cache).
BLOCK = 256
#: Cost model (seconds; a 2-core AVX2 machine): per member-step, loading a kernel from disk, Numba's start-up in a
#: process (its first compiled call), and compiling (:func:`compile_seconds`).
MEMBER_STEP_S = 3e-9
LOAD_S = 0.05
START_S = 0.3
_started = False  # a compiled kernel has run in this process


def compile_seconds(service: str, nvar: int, k: int | None = None) -> float:
    """Estimated time to compile a service's kernel for a map with ``nvar`` variables (``k`` tangent vectors).

    Fitted on a 2-core x86-64 machine (numba 0.6x) to first calls measured in fresh processes: evolve 0.6 s
    (1 variable) to 1.9 s (the 4-variable FA map); tangent 2.1 s (1 variable), 3.0 s (2), 9 s (4 × 4), 8–12 s for
    the looped kernels of 8–16 variables and 36 s for 32 (``benchmarks/cost_model.py``, ``benchmarks/first_call.py``).

    Parameters
    ----------
    service : {"evolve", "exit", "tangent"}
    nvar : int
    k : int or None
        Tangent vectors (``tangent``; None: ``nvar``).

    Returns
    -------
    float
        Seconds, Numba's start-up (``START_S``) excluded.

    Examples
    --------
    >>> from rds.backends.numba import compile_seconds
    >>> compile_seconds("evolve", 1) < compile_seconds("tangent", 1) < compile_seconds("tangent", 4)
    True
    """
    if service != "tangent":
        return 0.3 + 0.4 * nvar
    k = nvar if k is None else k
    if nvar * k <= TANGENT_UNROLL_MAX:  # unrolled scalars
        return 1.5 + 0.5 * nvar * k
    return 6.0 + 0.03 * nvar * k  # looped


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


#: Options of every compiled function: NumPy's error model (x/0 -> inf/nan like the NumPy backend, and no
#: exception branch in the member loop, which would stop it from vectorising).
NB_OPTS = {"error_model": "numpy"}
#: Longest 1-D noise sample passed to compiled maps as a fixed-length vector (longer: an array view).
MAX_VEC_NOISE = 16
#: Tangent services with ``nvar * k`` up to this are unrolled into scalars (fast to run, slow to compile); larger
#: ones use loops over variables and vectors around a vectorised member loop (compile time nearly flat in k, nvar).
TANGENT_UNROLL_MAX = 16


def jit_map_function(func, memo=None):
    """Compile a map (or a predicate, or a Jacobian) for Numba, together with the plain functions it calls.

    Helper functions referenced as globals by ``func`` (e.g. a shared formula) are compiled too, recursively, so a
    map may call other elementwise Python functions. The compiled clone sees ``numpy`` / ``math`` through
    :mod:`rds.fastmath`: ``np.tanh``, ``np.exp``, ``np.log``, ``np.sin`` … on real scalars are inlined, vectorisable
    implementations (complex arguments, e.g. of the complex-step Jacobian, use Numba's usual ones). Returns a Numba
    dispatcher inlined at call sites.

    The clone copies the globals the map reads *now*: it is made once per kernel set, and kernel sets are made per
    map identity (:func:`rds.backends.kernels_for`), so a changed map is cloned and compiled again. ``memo`` maps
    functions to their clones within one kernel set (shared helpers compile once).
    """
    import types

    from rds.fastmath import substitute_globals
    if isinstance(func, nb.core.dispatcher.Dispatcher):
        return func
    memo = {} if memo is None else memo
    if func in memo:
        return memo[func]
    glb = substitute_globals(func.__globals__, func.__code__.co_names)
    for name in func.__code__.co_names:
        obj = glb.get(name)
        if isinstance(obj, types.FunctionType) and obj is not func:
            glb[name] = jit_map_function(obj, memo)
    clone = types.FunctionType(func.__code__, glb, func.__name__, func.__defaults__, func.__closure__)
    memo[func] = nb.njit(inline="always", **NB_OPTS)(clone)
    return memo[func]


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
            if D[m] == 0.0:  # a collapsed vector: log 0 = -inf, and it stays 0 (see mgs_source)
                logr[c, m] = logr[c, m] - np.inf  # NaN stays NaN
                D[m] = 1.0
            else:
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


class NumbaKernels:
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
        self._system = system
        self._nvar = len(system.variables)
        self._nd = len(system.noise.shape)
        self._ind = system.independent_noise
        shape = system.noise.shape
        self._vec_len = shape[0] if (len(shape) == 1 and 1 <= shape[0] <= MAX_VEC_NOISE) else None
        jit = nb.njit(inline="always", **NB_OPTS)
        self._memo: dict = {}
        self._ns = {"step": jit_map_function(system.step, self._memo),
                    "jac": jit_map_function(system.map.jacobian_function(), self._memo),
                    "store_matrix": store_matrix,
                    "sel": jit(_nb_sel), "pick": jit(_nb_pick), "isfinite": math.isfinite,
                    "nvec": fastmath.nvec, "np": fastmath.fast_numpy, "nb": nb}
        self.uncacheable = None
        try:  # the on-disk cache is keyed by the map's identity (everything it reads) and the params' type
            self._parts = (system.map.identity(strict=True), _params_type_key(system.params))
        except Unidentifiable as e:
            self._parts = None
            self.uncacheable = str(e)
        self._cache: dict = {}

    # -- sources, one per service (and noise-sample form vl)
    def _source(self, service, vl, k=None):
        if service == "evolve":
            return evolve_module_source(self._nvar, self._nd, self._ind, vl)
        if service == "tangent":
            return tangent_module_source(self._nvar, self._nd, self._ind, k, vl)
        return exit_module_source(self._nvar, self._nd, self._ind, vl)

    def _parts_for(self, inside_key=None):
        if self._parts is None or inside_key is None:
            return self._parts
        if inside_key.startswith("unidentified"):
            return None
        return self._parts + (inside_key,)

    def _build(self, service, k=None, inside=None, inside_key=None):
        """``build(vl)`` for :meth:`_kernel`: load (or compile) the kernel module and return its ``kernel``."""
        ns = self._ns if inside is None else dict(self._ns, inside=jit_map_function(inside, dict(self._memo)))
        parts = self._parts_for(inside_key)

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
        global _started
        entry = self._kernel(key, make)
        _started = True
        with _serialised(), warnings.catch_warnings():
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

    def status(self, service, k=None, inside_key=None):
        """Where the kernel of ``service`` is: ``"memory"`` (compiled in this process), ``"disk"`` (in the
        on-disk cache) or ``None`` (it would have to be compiled)."""
        key = self._key(service, k, inside_key)
        if key in self._cache and self._cache[key][0].signatures:
            return "memory"
        parts = self._parts_for(inside_key)
        if parts is None:
            return None
        flag = self._vec_flag(key, parts)
        vec = self._vec_len is not None and not _kernel_cache.flagged(*flag)
        src = self._source(service, self._vec_len if vec else None, k)
        return "disk" if _kernel_cache.is_on_disk(service, src, parts) else None

    @staticmethod
    def _key(service, k=None, inside_key=None):
        if service == "tangent":
            return ("tangent", k)
        if service == "exit":
            return ("exit", inside_key)
        return "evolve"

    def evolve(self, X, noise, params, nsteps):
        self._call("evolve", lambda: self._build("evolve"), X, noise, params, nsteps)

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        k = V.shape[1]
        self._call(("tangent", k), lambda: self._build("tangent", k=k), X, V, logr, noise, params, nsteps, n0,
                   qr_every, qr_final)

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside, inside_key):
        key = ("exit", inside_key)
        self._call(key, lambda: self._build("exit", inside=inside, inside_key=inside_key), X, exit_step, noise,
                   params, nsteps, n0)

    def jacobian(self, X, xi, params):
        """Jacobian matrices (member, var, var): the NumPy reference's (single steps are not compiled)."""
        from rds.backends import kernels_for
        return kernels_for(self._system, "numpy").jacobian(X, xi, params)


# Numba's "workqueue" threading layer aborts the process when two threads enter parallel kernels at once (it is
# not thread-safe). Under it, kernels called from several threads take turns; other layers (omp, tbb) run freely.
_WORKQUEUE_LOCK = threading.RLock()


def _workqueue_layer() -> bool:
    if nb is None:  # pragma: no cover
        return False
    if nb.config.THREADING_LAYER == "workqueue":
        return True
    try:
        return nb.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet: the layer is chosen by the first one
        return True


def _serialised():
    return _WORKQUEUE_LOCK if _workqueue_layer() else contextlib.nullcontext()


def _params_type_key(params):
    """The parameter tuple's type, as far as compiled code depends on it (a namedtuple's class and fields)."""
    cls = type(params)
    if cls is tuple:
        return ("tuple", len(params))
    if "<locals>" in cls.__qualname__:
        raise Unidentifiable(f"parameters of a local namedtuple class {cls.__qualname__}")
    return (cls.__module__, cls.__qualname__, tuple(getattr(cls, "_fields", ())), len(params))


class _NumbaBackend:
    """The Numba backend (see the module docstring)."""

    name = "numba"
    forms = ("elementwise",)

    def available(self) -> bool:
        return nb is not None

    def kernels(self, system):
        return NumbaKernels(system)

    def estimate(self, system, plan, kernels) -> float:
        nvar = system.nvar
        if plan.service == "tangent":
            w = 1.0 + nvar * (nvar if plan.k is None else plan.k) / 4.0
        else:
            w = 1.2 if plan.service == "exit" else 1.0
        inside_key = None
        if plan.service == "exit":
            from rds.backends import region_key
            inside_key = region_key(plan.inside)
        status = kernels().status(plan.service, k=plan.k, inside_key=inside_key)
        if status == "memory":
            fixed = 0.0
        else:
            fixed = (0.0 if _started else START_S) + (
                LOAD_S if status == "disk" else compile_seconds(plan.service, nvar, plan.k))
        return fixed + plan.repeats * plan.member_steps * MEMBER_STEP_S * w


BACKEND = _NumbaBackend()
