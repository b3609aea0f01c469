"""The ensemble engine: the driver between the services of a system and its backend's kernels.

:func:`run` advances one chunk of members from absolute time ``t0``: it cuts ``[t0, t0 + steps)`` at noise blocks
(:data:`rds.noise.NOISE_BLOCK`) and at the recorded times, regenerates each block's noise from (seed, realisation,
t) and calls the backend's kernels (:mod:`rds.backends`) on each piece. :func:`run_chunked` cuts an ensemble into
chunks of members, each carrying its absolute member index, and runs them locally or on any
``concurrent.futures.Executor`` (a process pool, a ``dask.distributed`` cluster): results do not depend on the
chunking, the executor, the thread count or the backend beyond rounding.

Services (all members advance through the same absolute times, so the noise ξ_t is shared or per member as the
system says):

``evolve``
    advance the ensemble, optionally recording the state at chosen absolute times;
``tangent``
    advance the ensemble together with ``k`` tangent vectors per member, ``V ← J V``, re-orthonormalised by a QR
    every ``qr_every`` steps while accumulating ``log |R_cc|`` (the Benettin / QR method for Lyapunov exponents);
``exit``
    advance until each member first leaves a region, recording the exit step and freezing the member there.
    Members that have left are retired: each noise block steps, and draws the independent noise of, only the
    members still inside (:data:`RETIRE`), so a run costs about the sum of the exit times, not members × the
    slowest exit; the results are the same bit for bit.

A member whose state becomes non-finite is set to NaN (all variables) and counted as diverged; the others go on.
Every run returns a :class:`RunResult`, which names the backend that ran.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from rds import backends
from rds.backends.numpy import qr_positive
from rds.noise import MEMBER_GROUP, NOISE_BLOCK

__all__ = ["RunResult", "run", "run_chunked", "check_fork_safe"]


class RunResult(dict):
    """What a service returns: arrays by name (member axis first) and the backend that ran.

    A ``dict`` of arrays — ``state`` (member, var), ``diverged`` (member,), and per service ``records``,
    ``V``, ``logr``, ``logr_records``, ``exit_step`` — with :attr:`backend` (also ``result["backend"]``).

    Examples
    --------
    >>> import numpy as np, rds
    >>> out = rds.models.fukumizu_amari_reduced().run(np.array([[0.5, 0.5]]), 10, backend="numpy")
    >>> out.backend, out["state"].shape
    ('numpy', (1, 2))
    """

    def __init__(self, *args, backend: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self["backend"] = backend

    @property
    def backend(self) -> str:
        """The backend that ran (``"numpy"``, ``"numba"``, ``"jax"``, …)."""
        return self["backend"]

    def __reduce__(self):
        return (_rebuild_result, (dict(self),))


def _rebuild_result(items):
    return RunResult({k: v for k, v in items.items() if k != "backend"}, backend=items["backend"])


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


#: Retire members that have left the region in the first-exit service: each noise block steps (and, for
#: independent noise, generates the noise of) only the members still inside, so a run costs the sum of the exit
#: times rather than members × the slowest exit. The results are the same bit for bit (each member's arithmetic
#: and noise do not depend on the others); ``RDS_RETIRE=0`` in the environment turns it off (to compare).
RETIRE = os.environ.get("RDS_RETIRE", "1").strip() not in ("0", "false", "False", "no")


def _live_noise(system, seed, realization, bs, members, live):
    """The independent noise of block ``[bs, bs + NOISE_BLOCK)`` for the live members only (member axis last).

    ``live``: local indices (sorted) of the chunk whose absolute member range is ``members``. Only the generator
    groups (:data:`rds.noise.MEMBER_GROUP` members) holding a live member are drawn, through the source's own
    :meth:`~rds.noise.NoiseSource.block`, so each member's numbers are those of a full run.
    """
    t1 = bs + NOISE_BLOCK
    if members is None:
        return system.noise.block(seed, realization, bs, t1, None)
    if live.size == 0:
        return system.noise.block(seed, realization, bs, t1, (members[0], members[0]))
    G = MEMBER_GROUP
    absm = members[0] + live
    grp = absm // G
    groups = np.unique(grp)
    runs = np.split(groups, np.flatnonzero(np.diff(groups) != 1) + 1)  # contiguous runs of groups
    parts = [system.noise.block(seed, realization, bs, t1, (int(r[0]) * G, int(r[-1] + 1) * G)) for r in runs]
    if any(p.strides[-1] == 0 for p in parts):  # the same sample for every member (a quenched dataset): a view
        return _same_for(parts[0], live.size)
    full = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
    return full[..., np.searchsorted(groups, grp) * G + absm % G]


def _same_for(noise, m):
    """A noise array whose samples are the same for every member (zero stride), as a view for ``m`` members."""
    return np.broadcast_to(noise[..., :1], noise.shape[:-1] + (m,))


def _exit_live(kern, X, exit_step, nz, noise_cols, live, independent, params, n, n0, region, inside_key):
    """One first-exit segment for the live members only: gathered, advanced by the kernel, scattered back."""
    M = X.shape[1]
    if live.size == M:  # (independent noise contiguous, as when compacted: one compiled signature)
        nz = np.ascontiguousarray(nz) if independent and nz.strides[-1] != 0 else nz
        kern.exit(X, exit_step, nz, params, n, n0, region, inside_key)
        return
    if live.size == 0:
        return
    if independent and nz.strides[-1] == 0:
        nz = _same_for(nz, live.size)
    elif independent:
        cols = live if noise_cols is None else np.searchsorted(noise_cols, live)
        if noise_cols is None or cols.size != noise_cols.size:
            nz = nz[..., cols]
        nz = np.ascontiguousarray(nz)
    Xl = X[:, live]
    el = exit_step[live]
    kern.exit(Xl, el, nz, params, n, n0, region, inside_key)
    X[:, live] = Xl
    exit_step[live] = el


def run(system, X0, t0, steps, *, seed=0, realization=0, member_offset=0, backend="numpy",
        record_times=None, tangent=None, qr_every=1, region=None, progress=None, ident=False, kernels=None,
        return_r=False):
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
    backend : str
        A registered backend (:mod:`rds.backends`), already chosen and checked.
    record_times : sorted 1-D int array or None
        Absolute times in ``[t0, t0 + steps]`` at which to record the state (and ``logr`` with ``tangent``).
    tangent : ndarray, shape (member, var, k) or None
        Initial tangent vectors: run the tangent service.
    qr_every : int
        Steps between QR re-orthonormalisations (tangent service); a QR is also done at every recorded time and
        at the end.
    region : callable or None
        Elementwise predicate ``inside(state) -> bool``: run the first-exit service.
    return_r : bool
        Tangent service only: re-orthonormalise exactly at the recorded times and at the end (``qr_every`` is not
        used), by a Householder QR here with positive diagonal, and record the whole triangular factors
        ``r_records`` (member, time, k, k) and the orthonormal vectors ``v_records`` (member, time, var, k)
        (covariant Lyapunov vectors need both).
    progress : tqdm-like or None
        Updated with the number of steps done.
    ident : str, None or False
        The map's identity if the caller computed it for this call (False: computed here).
    kernels : Kernels or None
        The kernels to use (the caller's, in the same process); None: :func:`rds.backends.kernels_for`.

    Returns
    -------
    dict of ndarray, member axis first
        ``state`` (member, var); ``records`` (member, time, var) when recording; ``V`` (member, var, k),
        ``logr`` (member, k), ``logr_records`` (member, time, k) and with ``return_r`` ``r_records`` (member,
        time, k, k) and ``v_records`` (member, time, var, k) for the tangent service; ``exit_step``
        (member,) for the exit service (-1: did not exit); ``diverged`` (member,) bool.
    """
    kern = kernels if kernels is not None else backends.kernels_for(system, backend, ident)
    params = system.params
    X = np.array(np.asarray(X0, dtype=float).T, order="C", copy=True)  # (var, member); never a view of X0
    M = X.shape[1]
    t1 = t0 + steps
    members = None if not system.independent_noise else (member_offset, member_offset + M)
    rec = np.asarray([] if record_times is None else record_times, dtype=np.int64)
    if rec.size:
        records = np.empty((rec.size, X.shape[0], M))
        out_rec_logr = None
    if tangent is not None:
        V = np.array(np.moveaxis(np.asarray(tangent, dtype=float), 0, -1), order="C", copy=True)  # (var, k, member)
        logr = np.zeros((V.shape[1], M))
        if rec.size:
            out_rec_logr = np.empty((rec.size, V.shape[1], M))
        if return_r:
            R = np.broadcast_to(np.eye(V.shape[1])[:, :, None], (V.shape[1], V.shape[1], M))
            out_rec_r = np.empty((rec.size, V.shape[1], V.shape[1], M))
            out_rec_v = np.empty((rec.size,) + V.shape)
    if region is not None:
        inside_key = backends.region_key(region)
        exit_step = np.full(M, -1, dtype=np.int64)
        # a member already outside at t0 has exit step 0
        inside0 = np.broadcast_to(np.asarray(region(tuple(X)), dtype=bool), (M,))
        exit_step[~inside0] = 0

    ri = 0
    while ri < rec.size and rec[ri] == t0:  # records at the start time
        records[ri] = X
        if tangent is not None:
            out_rec_logr[ri] = logr
        if return_r:
            out_rec_r[ri] = R
            out_rec_v[ri] = V
        ri += 1
    blk_start, noise_blk, noise_cols = None, None, None
    retire = region is not None and RETIRE
    for a, b in _segments(t0, t1, rec):  # cut at noise blocks and recorded times
        bs = (a // NOISE_BLOCK) * NOISE_BLOCK
        live = np.flatnonzero(exit_step < 0) if retire else None
        if bs != blk_start:
            blk_start = bs
            if retire and live.size < M:  # noise only for the members still inside
                noise_blk, noise_cols = _live_noise(system, seed, realization, bs, members, live), live
            else:
                noise_blk, noise_cols = system.noise.block(seed, realization, bs, bs + NOISE_BLOCK, members), None
        nz = noise_blk[a - bs:b - bs]
        n = b - a
        is_rec = ri < rec.size and rec[ri] == b
        if tangent is not None and return_r:  # no QR in the kernel (steps + 1 never divides), one here at b
            kern.tangent(X, V, logr, nz, params, n, a - t0, steps + 1, False)
            if is_rec or b == t1:
                R = _qr_here(V, logr)
        elif tangent is not None:
            kern.tangent(X, V, logr, nz, params, n, a - t0, qr_every, bool(is_rec or b == t1))
        elif retire:
            _exit_live(kern, X, exit_step, nz, noise_cols, live, members is not None, params, n, a - t0, region,
                       inside_key)
        elif region is not None:  # (not retiring: the same arrays as when retiring, one compiled signature)
            nz = np.ascontiguousarray(nz) if members is not None and nz.strides[-1] != 0 else nz
            kern.exit(X, exit_step, nz, params, n, a - t0, region, inside_key)
        else:
            kern.evolve(X, nz, params, n)
        if progress is not None:
            progress.update(n)
        while ri < rec.size and rec[ri] == b:
            records[ri] = X
            if tangent is not None:
                out_rec_logr[ri] = logr
            if return_r:
                out_rec_r[ri] = R
                out_rec_v[ri] = V
            ri += 1
        if region is not None and np.all(exit_step >= 0):
            break
    out = RunResult(backend=backend)
    out["state"] = X.T.copy()
    out["diverged"] = ~np.all(np.isfinite(X), axis=0)
    if rec.size:
        out["records"] = np.moveaxis(records, -1, 0).copy()  # (member, time, var)
    if tangent is not None:
        out["V"] = np.moveaxis(V, -1, 0).copy()
        out["logr"] = logr.T.copy()
        if rec.size:
            out["logr_records"] = np.moveaxis(out_rec_logr, -1, 0).copy()
        if return_r:
            out["r_records"] = np.moveaxis(out_rec_r, -1, 0).copy()
            out["v_records"] = np.moveaxis(out_rec_v, -1, 0).copy()
    if region is not None:
        out["exit_step"] = exit_step
    return out


def _threads_started() -> list:
    """The libraries that have started thread pools in this process which a forked child inherits broken."""
    out = []
    jax_bridge = sys.modules.get("jax._src.xla_bridge")
    if jax_bridge is not None:
        try:
            started = jax_bridge.backends_are_initialized()
        except Exception:  # another JAX version: JAX imported counts as started
            started = True
        if started:
            out.append("JAX (XLA's thread pools; e.g. after backend='jax')")
    par = sys.modules.get("numba.np.ufunc.parallel")
    if par is not None and getattr(par, "_is_initialized", False):
        import numba
        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = "?"
        if layer != "tbb":  # only TBB is fork-safe (Numba's "forksafe" layers: tbb, and omp but GNU OpenMP)
            out.append(f"Numba's parallel threads ({layer} threading layer; e.g. after backend='numba')")
    return out


def check_fork_safe(executor) -> None:
    """Refuse a process pool that would fork this process after JAX or Numba started their threads.

    A child forked from a process with running thread pools inherits their locks but not their threads, and can
    wait forever (a deadlock, no error). ``concurrent.futures.ProcessPoolExecutor`` forks by default on Linux
    (Python < 3.14); one made with ``mp_context=multiprocessing.get_context("spawn")`` (or ``"forkserver"``)
    starts clean workers.

    Parameters
    ----------
    executor : concurrent.futures.Executor or None
        Anything but a forking ``ProcessPoolExecutor`` passes.

    Raises
    ------
    ValueError
        Naming the library whose threads are running, and the fix.

    Examples
    --------
    >>> import multiprocessing
    >>> from concurrent.futures import ProcessPoolExecutor
    >>> from rds.engine import check_fork_safe
    >>> with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
    ...     check_fork_safe(ex)   # a spawning pool is always safe
    """
    if not isinstance(executor, ProcessPoolExecutor):
        return
    ctx = getattr(executor, "_mp_context", None)
    method = (ctx if ctx is not None else multiprocessing.get_context()).get_start_method()
    if method != "fork":
        return
    started = _threads_started()
    if started:
        raise ValueError(
            "executor: this ProcessPoolExecutor starts its workers by fork, and this process already runs "
            f"{' and '.join(started)}; a forked worker can then hang forever. Create the pool with a safe start "
            "method: ProcessPoolExecutor(n, mp_context=multiprocessing.get_context('spawn')) (or 'forkserver'), "
            "in a script under `if __name__ == \"__main__\":`, or use a dask.distributed Client")


def _qr_here(V, logr):
    """QR of the engine's tangent vectors V (var, k, member) in place (V ← Q, positive diagonal R); adds log R_cc to
    ``logr`` (k, member) and returns R (k, k, member)."""
    Q, R = qr_positive(np.moveaxis(V, -1, 0))
    V[...] = np.moveaxis(Q, 0, -1)
    with np.errstate(divide="ignore"):  # R_cc = 0: a collapsed direction, log 0 = -inf
        logr += np.log(np.abs(np.diagonal(R, axis1=-2, axis2=-1))).T
    return np.moveaxis(R, 0, -1)


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
    check_fork_safe(executor)
    bounds = [(lo, min(lo + chunk_size, M)) for lo in range(0, max(M, 1), chunk_size)] if M else [(0, 0)]
    offset = kwargs.pop("member_offset", 0)
    kernels = kwargs.pop("kernels", None)  # this process's kernels: used locally, rebuilt by each remote worker

    def args(lo, hi):
        kw = dict(kwargs, member_offset=offset + lo,
                  tangent=None if tangent is None else tangent[lo:hi])
        return (system, X0[lo:hi], t0, steps), kw

    if executor is None:
        parts = []
        for lo, hi in bounds:
            a, kw = args(lo, hi)
            parts.append(run(*a, progress=progress, kernels=kernels, **kw))
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
    return RunResult({k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0] if k != "backend"},
                     backend=parts[0].backend)
