"""Rare events of random maps by generalised adaptive multilevel splitting (AMS).

A random map θ_{n+1} = φ(θ_n, ξ_n) with i.i.d. noise is a discrete-time Markov chain. For a *score* (reaction
coordinate) ``score(θ)``, a *target* level ``z_max`` (the set B = {score ≥ z_max}) and a stopping rule — return to
a start set A (``start=``), or a horizon T (``horizon=``), or both — adaptive multilevel splitting estimates

    p = P(the path from θ_0 reaches B before it is stopped),

even when p is far too small for direct sampling (10⁻⁸, 10⁻²⁰, …). It keeps ``n_clones`` paths; at each iteration
the level Z is the ``n_kill``-th smallest maximum of the score over the paths, every path whose maximum is ≤ Z is
killed (*all ties* killed), and each killed path is replaced by a copy of a survivor, drawn uniformly, up to the
first time the survivor's score exceeds Z, continued on fresh noise. When Z ≥ z_max,

    p̂ = Π_j (1 − K_j / n) · (number of paths that reached B) / n,

with K_j the number killed at iteration j. Bréhier, Gazeau, Goudenège, Lelièvre & Rousset (Ann. Appl. Probab. 26
(2016) 3559–3601) prove that this *generalised* AMS is unbiased, E[p̂] = p, for discrete-time Markov chains, any
score, any n and any K, ties included — exactly the random maps of :mod:`rds`. The same weights make
(p̂ / N_B) Σ_{reached} f(path) an unbiased estimate of E[f(path); B reached] for any path functional f.

**Mean first-passage time.** With a start set A and no horizon, each path from θ_0 is one *cycle*: it ends when it
returns to A (a loop) or reaches B (a reactive path). If each cycle restarts from the law of θ_0, the number of
cycles until B is geometric and, by Wald's identity,

    E[T_B] = E[τ] / p = (1 − p)/p · E[τ | loop] + E[τ | reactive],

(Cérou, Guyader, Lelièvre & Pommier, J. Chem. Phys. 134 (2011) 054108; Lestang, Ragone, Bréhier, Herbert &
Bouchet, J. Stat. Mech. (2018) 043213), where E[τ; loop] comes from the first generation (direct paths) and
E[τ; reactive] from the final clones with the AMS weights. The identity is exact when every return to A restarts
from the initial law (e.g. a 1-D diffusion restarted on the boundary point of A); otherwise it is the renewal
approximation, good when A is small around an attractor (the result's attrs say so).

**Replay.** Clones run as one vectorised ensemble per iteration through
:meth:`rds.RandomDynamicalSystem.trajectory` (up to 32 repeats together), on *independent* noise per member:
branch j of iteration k of repeat r runs on the noise path (seed, realization ⌊r/32⌋·2³² + k, member
(r mod 32)·n + j) from the absolute time ``t0`` (the system's
noise is i.i.d. in time, so a branch's law does not depend on where its noise is taken from). Branch points are
the exact states at which the survivor first passed the level (the running-maximum records of each path are kept,
no re-simulation). The parents are drawn by a generator seeded with (seed, repeat). A run is therefore
reproducible bit for bit from its seed, and every branch's (realization, member, start time) is in the result.

**Standard errors.** Within a run, from the genealogy: the final clones are grouped by their ancestor in the
first generation (their *eve*), and the variance is that of the n eve sums (the estimator of Chan & Lai, Ann.
Statist. 41 (2013) 2877–2904, for interacting particle systems, as used for AMS by Cérou, Guyader & Rousset, Chaos
29 (2019) 043108). It is reliable while the final clones descend from many eves (``n_eves``); with few eves left
it underestimates — use ``repeats=``, whose spread gives a second, independent standard error.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np
import xarray as xr

import rds
from rds._checks import check_memory, integer, real
from rds.noise import check_seed
from rds.regions import Region
from rds.sampling import initial_states

__all__ = ["multilevel_splitting", "splitting_mean_time"]

#: Repeats run in groups of REPEAT_GROUP, one vectorised ensemble per group: batch k of repeat r runs on the
#: realization ``(r // REPEAT_GROUP) * REPEAT_STRIDE + k``, members from ``(r % REPEAT_GROUP) * n_clones``.
REPEAT_STRIDE = 2**32
REPEAT_GROUP = 32
#: Elements (time x member x var) of one recorded window: bounds the memory of a window (~32 MB).
_WINDOW_ELEMENTS = 4_000_000
_FEW_EVES = 10


class _Problem:
    """The stopped Markov chain of one splitting study (picklable when the system, score and start are)."""

    def __init__(self, system, score, target, start, horizon, max_steps, seed, t0, backend):
        self.system = system  # with independent noise per member
        self.score_fn = score
        self.target = target
        self.start = start
        self.start_pred = None
        if start is not None and not isinstance(start, float):
            self.start_pred = system.predicate(start)
        self.horizon = horizon
        self.max_steps = max_steps
        self.seed = seed
        self.t0 = t0
        self.backend = backend

    def score(self, X):
        """Scores of states X (..., var) -> (...), checked."""
        s = np.asarray(self.score_fn(X), dtype=float)
        if s.shape != X.shape[:-1]:
            try:
                s = np.broadcast_to(s, X.shape[:-1])
            except ValueError:
                raise ValueError(f"score must map states of shape (..., var) = {X.shape} to scores of shape "
                                 f"{X.shape[:-1]}, got shape {s.shape}") from None
        return s

    def in_start(self, X, s):
        """Membership of the start set A for states X (..., var) with scores s."""
        if self.start is None:
            return np.zeros(s.shape, dtype=bool)
        if self.start_pred is None:
            return s <= self.start
        out = self.start_pred(tuple(np.moveaxis(X, -1, 0)))
        return np.broadcast_to(np.asarray(out, dtype=bool), s.shape)

    @property
    def cap(self):
        return self.horizon if self.horizon is not None else self.max_steps


def _simulate(prob: _Problem, S, offsets, realization, idle):
    """Run paths from states S (m, var), already ``offsets`` (m,) steps old, on noise (seed, realization, member
    0..m-1) from absolute time t0, until each is stopped (``idle`` members: padding, not run). Returns the maxima,
    segment lengths, outcomes, the running-maximum records (the ladder) and the steps run."""
    system = prob.system
    m, nvar = S.shape
    s0 = prob.score(S)
    cap = prob.cap - offsets  # steps this path may still take
    reached = (s0 >= prob.target) & ~idle
    at_start = (offsets > 0) & prob.in_start(S, s0) & ~reached
    active = ~(reached | at_start | (cap <= 0) | ~np.isfinite(s0) | idle)
    seg = np.zeros(m, dtype=np.int64)
    diverged = np.zeros(m, dtype=bool)
    runmax = np.where(np.isfinite(s0), s0, -np.inf)
    live = np.flatnonzero(~idle)
    lad = {"clone": [live], "score": [runmax[live]], "time": [np.zeros(live.size, dtype=np.int64)],
           "state": [S[live]]}
    wmax = max(16, min(4096, _WINDOW_ELEMENTS // max(1, m * nvar)))
    w_next = min(128, wmax)
    X = S.copy()
    t = 0
    work = 0
    backend = None
    while active.any():
        w = int(min(w_next, int(cap[active].max()) - t))
        X[~active] = S[~active]  # stopped paths idle on a finite state (their noise is their own: no effect)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rds.system.DivergenceWarning)
            ds = system.trajectory(X, w, seed=prob.seed, t0=prob.t0 + t, realization=realization,
                                   backend=prob.backend, progress=False)
        backend = ds.attrs["backend"]
        recs = ds["state"].values[1:]  # (w, m, var): the states after steps t+1 .. t+w
        work += w * m
        sc = prob.score(recs)
        steps = t + 1 + np.arange(w)[:, None]
        bad = ~np.isfinite(sc)
        hit = (sc >= prob.target) & ~bad
        stop = (hit | bad | (steps >= cap[None, :]) | prob.in_start(recs, sc)) & active[None, :]
        anystop = stop.any(axis=0)
        first = np.argmax(stop, axis=0)
        last = np.where(anystop, first, w - 1)
        valid = (np.arange(w)[:, None] <= last[None, :]) & active[None, :] & ~bad
        scv = np.where(valid, sc, -np.inf)
        prev = np.maximum.accumulate(np.concatenate([runmax[None, :], scv], axis=0), axis=0)
        jj, ii = np.nonzero(scv > prev[:-1])  # new running-maximum records
        if jj.size:
            lad["clone"].append(ii)
            lad["score"].append(sc[jj, ii])
            lad["time"].append(t + 1 + jj)
            lad["state"].append(recs[jj, ii])
        runmax = prev[-1]
        idx = np.arange(m)
        done = active & anystop
        seg[done] = t + 1 + first[done]
        reached[done] = hit[first, idx][done]
        diverged[done] = bad[first, idx][done]
        active &= ~anystop
        X = recs[-1].copy()
        t += w
        w_next = min(2 * w_next, wmax)
    ladder = {k: np.concatenate(v) for k, v in lad.items()}
    return {"max": runmax, "seg": seg, "reached": reached, "diverged": diverged, "ladder": ladder, "work": work,
            "steps": t, "backend": backend}


def _censor_check(prob, res):
    if prob.horizon is None:
        off = res["offsets"]
        hit_cap = (~res["reached"]) & (res["seg"] + off >= prob.max_steps) & ~res["diverged"]
        if np.any(hit_cap):
            raise RuntimeError(f"{int(hit_cap.sum())} path(s) neither returned to the start set nor reached the "
                               f"target within max_steps = {prob.max_steps} steps: the estimate would be biased. "
                               "Raise max_steps, enlarge the start set, or give a horizon (the probability of "
                               "reaching the target before it)")


def _noise_of(repeat, k, n):
    """(realization, first member) of the noise of batch k of repeat ``repeat`` with n clones."""
    return (repeat // REPEAT_GROUP) * REPEAT_STRIDE + k, (repeat % REPEAT_GROUP) * n


def _run_group(prob: _Problem, X0, n_kill, repeats, max_iterations):
    """The AMS runs ``repeats`` (all in one group of :data:`REPEAT_GROUP`) as one vectorised ensemble per
    iteration: run r's batch k takes the members (r mod G)·n … on realization (r div G)·2³² + k, so that its
    numbers are those it would have alone."""
    n = X0.shape[0]
    gens = {r: _ams_run(prob, X0, n_kill, r, max_iterations) for r in repeats}
    reqs = {r: next(g) for r, g in gens.items()}
    results = {}
    k = 0
    while reqs:
        base = {r: _noise_of(r, k, n)[1] for r in reqs}
        realization = _noise_of(next(iter(reqs)), k, n)[0]
        M = max(base[r] + reqs[r][0].shape[0] for r in reqs)
        S = np.repeat(X0[:1], M, axis=0)
        off = np.zeros(M, dtype=np.int64)
        idle = np.ones(M, dtype=bool)
        for r, (Sr, offr) in reqs.items():
            sl = slice(base[r], base[r] + Sr.shape[0])
            S[sl], off[sl], idle[sl] = Sr, offr, False
        sim = _simulate(prob, S, off, realization, idle)
        lc = sim["ladder"]["clone"]
        nxt = {}
        for r, (Sr, offr) in reqs.items():
            lo, m = base[r], Sr.shape[0]
            sel = (lc >= lo) & (lc < lo + m)
            part = {key: sim[key][lo:lo + m] for key in ("max", "seg", "reached", "diverged")}
            part["ladder"] = {key: v[sel] for key, v in sim["ladder"].items()}
            part["ladder"]["clone"] = part["ladder"]["clone"] - lo
            part["work"] = m * sim["steps"]
            part["backend"], part["offsets"], part["realization"] = sim["backend"], offr, realization
            _censor_check(prob, part)
            try:
                nxt[r] = gens[r].send(part)
            except StopIteration as stop:
                results[r] = stop.value
        reqs = nxt
        k += 1
    return [results[r] for r in repeats]


def _ams_run(prob: _Problem, X0, n_kill, repeat, max_iterations):
    """One AMS run (repeat index ``repeat``), as a generator: it yields each batch to simulate, ``(states,
    offsets)``, receives its result, and returns the run's results (driven by :func:`_run_group`)."""
    n = X0.shape[0]
    rng = np.random.default_rng([prob.seed, repeat, 0xA35])
    zero = np.zeros(n, dtype=np.int64)
    res = yield (X0, zero)
    maxs, seg, reached, div = res["max"].copy(), res["seg"].copy(), res["reached"].copy(), res["diverged"].copy()
    off = zero.copy()
    eve = np.arange(n)
    tau0, reached0 = seg.copy(), reached.copy()
    lad = res["ladder"]
    work, backend = res["work"], res["backend"]
    levels, kills = [], []
    br_iter, br_slot, br_parent, br_member, br_time, br_state = [], [], [], [], [], []
    log_c = 0.0
    extinct = False
    k = 0
    while True:
        Z = float(np.partition(maxs, n_kill - 1)[n_kill - 1])
        if Z >= prob.target:
            break
        if k >= max_iterations:
            raise RuntimeError(f"multilevel_splitting: {max_iterations} iterations (max_iterations) without "
                               f"reaching the target (level {Z:.6g} < target {prob.target:.6g}); raise "
                               "max_iterations or n_kill, or check that the target can be reached")
        killed = maxs <= Z  # all ties killed
        K = int(killed.sum())
        levels.append(Z)
        kills.append(K)
        if K == n:  # every path at or below the level: extinction, p-hat = 0
            log_c, extinct = -math.inf, True
            break
        log_c += math.log1p(-K / n)
        survivors = np.flatnonzero(~killed)
        parents = survivors[rng.integers(0, survivors.size, K)]
        # prune the ladder: records of killed paths, and records at or below Z (never needed again: levels grow)
        keep = ~killed[lad["clone"]] & (lad["score"] > Z)
        lad = {key: v[keep] for key, v in lad.items()}
        order = np.lexsort((lad["time"], lad["clone"]))
        cl_sorted = lad["clone"][order]
        uniq, first_pos = np.unique(cl_sorted, return_index=True)
        first_entry = np.full(n, -1, dtype=np.int64)
        first_entry[uniq] = order[first_pos]
        e = first_entry[parents]
        if np.any(e < 0):  # pragma: no cover - a survivor has max > Z, so a record above Z
            raise AssertionError("internal error: a survivor has no record above the level")
        bp_state, bp_time = lad["state"][e], lad["time"][e]
        new_off = off[parents] + bp_time
        k += 1
        sim = yield (bp_state, new_off)
        slots = np.flatnonzero(killed)
        maxs[slots], seg[slots], reached[slots], div[slots] = sim["max"], sim["seg"], sim["reached"], \
            sim["diverged"]
        off[slots] = new_off
        eve[slots] = eve[parents]
        sl = sim["ladder"]
        lad = {"clone": np.concatenate([lad["clone"], slots[sl["clone"]]]),
               "score": np.concatenate([lad["score"], sl["score"]]),
               "time": np.concatenate([lad["time"], sl["time"]]),
               "state": np.concatenate([lad["state"], sl["state"]])}
        work += sim["work"]
        br_iter.append(np.full(K, k))
        br_slot.append(slots)
        br_parent.append(parents)
        br_member.append(_noise_of(repeat, k, n)[1] + np.arange(K))
        br_time.append(new_off)
        br_state.append(bp_state)
    C = math.exp(log_c)
    dur = off + seg
    n_b = int(reached.sum())
    p = C * n_b / n
    # per-eve sums (Chan & Lai): P_e = C #reached, B_e = C sum of reactive durations, A_e = loop duration of eve
    P_e = C * np.bincount(eve, weights=reached.astype(float), minlength=n)
    B_e = C * np.bincount(eve, weights=np.where(reached, dur, 0.0), minlength=n)
    A_e = np.where(reached0, 0.0, tau0.astype(float))
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    return {
        "p": p, "log_c": log_c, "n_reached": n_b, "extinct": extinct, "iterations": k, "work": work,
        "levels": np.asarray(levels), "kills": np.asarray(kills, dtype=np.int64),
        "P_e": P_e, "B_e": B_e, "A_e": A_e, "max": maxs, "reached": reached, "duration": dur, "eve": eve,
        "diverged": div, "n_eves": int(np.unique(eve[reached]).size),
        "br_iter": cat(br_iter, (0,)).astype(np.int64), "br_slot": cat(br_slot, (0,)).astype(np.int64),
        "br_parent": cat(br_parent, (0,)).astype(np.int64), "br_member": cat(br_member, (0,)).astype(np.int64),
        "br_time": cat(br_time, (0,)).astype(np.int64), "br_state": cat(br_state, (0, X0.shape[1])),
        "direct_p": float(reached0.mean()), "backend": backend or "",
    }


def _eve_stats(P_e, B_e, A_e, horizon_given):
    """Point estimates and eve-based standard errors of p, E[tau; loop] + E[tau; reactive] and the MFPT."""
    N = P_e.size
    p = P_e.mean()
    p_se = np.sqrt(np.sum((P_e - p) ** 2)) / N
    if horizon_given or p <= 0:
        return p, p_se, np.nan, np.nan
    num = A_e.mean() + B_e.mean()
    T = num / p
    infl = (A_e + B_e) / p - T * P_e / p
    T_se = np.sqrt(np.sum((infl - infl.mean()) ** 2)) / N
    return p, p_se, T, T_se


def multilevel_splitting(system, initial, score: Callable, *, target, n_clones=100, n_kill=1, start=None,
                         horizon=None, max_steps=10**7, repeats=1, seed=0, t0=0, max_iterations=10**6,
                         backend=None, executor=None, progress=None, sample_seed=None) -> xr.Dataset:
    """Probability of reaching a target level, and the mean first-passage time, by adaptive multilevel splitting.

    Generalised AMS (Bréhier, Gazeau, Goudenège, Lelièvre & Rousset, Ann. Appl. Probab. 26 (2016) 3559–3601) on
    the random map ``system``: unbiased for any score, any ``n_clones`` and ``n_kill``, ties included. Paths start
    from ``initial`` and are stopped at the first step n ≥ 1 at which they are in the start set A (``start``), or
    reach the target B = {score ≥ target} (B wins if both), or at the horizon ``horizon``. See the module
    docstring for the algorithm, the replayable noise of the branches and the standard errors.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        A map with noise (either form, any backend). Its clones run on *independent* noise per member
        (``system.replace(common_noise=False)``); a deterministic or quenched map is refused (ValueError).
    initial : array_like, shape (var,) or (n_clones, var), rds.regions.Box, or callable
        The initial state θ_0 (one state: every clone starts there) or states (member, var): one per clone,
        drawn from the initial law; or a Box / sampler to draw ``n_clones`` states (seeded by ``sample_seed``).
    score : callable
        ``score(states) -> scores``: states (..., var) → (...) floats, vectorised over the leading axes (for a
        vector map, states are θ vectors of length D). The reaction coordinate: ties (a score constant on a set)
        are allowed. Any score gives an unbiased estimate; the variance is small when the score climbs to the
        target in many small steps (a rare event made of one large jump of ξ gains little from splitting).
    target : float
        The target level z_max: B = {score ≥ target}.
    n_clones : int
        Number n ≥ 2 of clones (paths) kept.
    n_kill : int
        The level of each iteration is the ``n_kill``-th smallest path maximum (1 ≤ n_kill < n_clones); all the
        paths at or below it are killed (so more than ``n_kill`` with ties). Larger values do fewer, larger
        vectorised iterations; the estimator stays unbiased.
    start : float, rds.regions.Region, callable or None
        The start set A: a level (A = {score ≤ start}, below ``target``), a region or elementwise predicate like
        :meth:`~rds.RandomDynamicalSystem.first_exit`'s; None: no start set (give ``horizon``).
    horizon : int or None
        Stop every path after this many steps (the trajectory-adaptive variant): estimates P(reach B within
        ``horizon`` steps [before A]). None: no horizon (give ``start``).
    max_steps : int
        Safety cap on a path without horizon: a path still running after it raises RuntimeError (the estimate
        would be biased), never truncated silently.
    repeats : int
        Independent runs; their spread gives a second standard error. Up to 32 repeats run as one vectorised
        ensemble (repeat r's batch k on realization ⌊r/32⌋·2³² + k, members from (r mod 32)·n_clones).
    seed : int
        Noise seed; also seeds the choice of parents. The whole result is reproducible bit for bit from it.
    t0 : int
        Absolute time of the noise of every path's first step.
    max_iterations : int
        RuntimeError after this many iterations without reaching the target.
    backend : {"numpy", "numba", "jax"} or None
        As in :meth:`~rds.RandomDynamicalSystem.trajectory`.
    executor : concurrent.futures.Executor or None
        Run the repeats on it (the system and score must pickle).
    progress : bool or None
        A tqdm bar over the repeats (None: only with several repeats and an executor).
    sample_seed : int or None
        Seed of the initial sampling from a Box or sampler (None: ``seed``).

    Returns
    -------
    xarray.Dataset
        Scalars: ``probability`` p̂ (mean over repeats; each run's p̂ is unbiased), ``probability_se`` (within
        runs, genealogical), ``probability_se_repeats`` (spread of the repeats / √R; NaN for one repeat),
        ``mfpt`` (mean first-passage time to B in steps, E[τ]/p, with ``mfpt_se``, ``mfpt_se_repeats``; NaN with
        a horizon), ``mfpt_time`` (× dt), ``loop_mean`` and ``reactive_mean`` (mean durations of loops and of
        reactive paths, steps), ``work`` (member-steps simulated in all), ``iterations`` (total).
        Per repeat (dim ``repeat``): ``run_probability``, ``run_probability_se``, ``run_mfpt``,
        ``run_iterations``, ``run_work``, ``run_n_eves`` (eves of the paths that reached B), ``run_extinct``,
        ``direct_probability`` (fraction of the first generation that reached B: plain Monte Carlo).
        Levels history (repeat, iteration): ``level``, ``n_killed``. Final clones (repeat, clone):
        ``clone_max_score``, ``clone_reached``, ``clone_duration``, ``clone_eve``. Branches (repeat, branch),
        padded with −1: ``branch_iteration`` (k ≥ 1), ``branch_realization`` (⌊r/32⌋·2³² + k), ``branch_member``,
        ``branch_start`` (the path's age in steps at the branch point), ``branch_state`` (repeat, branch, var).
        Attrs: the system's description, the settings, ``backend``, ``equations``, ``mfpt_assumption``.

    Examples
    --------
    A Gaussian AR(1) map x → 0.9 x + ξ, ξ ~ N(0, 0.09): the probability that x exceeds 2 within 15 steps from 0
    (exactly 5.59e-3 by the transition kernel):

    >>> import numpy as np, rds, analysis
    >>> ar = rds.RandomDynamicalSystem(lambda s, xi, p: (p[0] * s[0] + xi[0],),
    ...                                noise=rds.noise.Gaussian(0.09), variables=("x",), params=(0.9,))
    >>> ds = analysis.multilevel_splitting(ar, [0.0], lambda X: X[..., 0], target=2.0, n_clones=50, n_kill=10,
    ...                                    horizon=15, backend="numpy")
    >>> 0.001 < float(ds.probability) < 0.03, int(ds.iterations) > 0
    (True, True)
    """
    if not isinstance(system, rds.RandomDynamicalSystem):
        raise TypeError(f"system must be an rds.RandomDynamicalSystem, got {type(system).__name__}")
    if system.noise.quenched:
        raise ValueError("system: a deterministic (or quenched-noise) map follows one path from each state; "
                         "splitting needs noise (give the system a noise source)")
    if not callable(score):
        raise TypeError("score must be callable: score(states (..., var)) -> scores (...)")
    target = real(target, "target")
    if not np.isfinite(target):
        raise ValueError(f"target must be finite, got {target}")
    n_clones = integer(n_clones, "n_clones", 2)
    n_kill = integer(n_kill, "n_kill", 1)
    if n_kill >= n_clones:
        raise ValueError(f"n_kill must be smaller than n_clones = {n_clones}, got {n_kill}")
    repeats = integer(repeats, "repeats", 1)
    seed = check_seed(seed)
    t0 = integer(t0, "t0")
    max_steps = integer(max_steps, "max_steps", 1)
    max_iterations = integer(max_iterations, "max_iterations", 1)
    if horizon is not None:
        horizon = integer(horizon, "horizon", 1)
    if start is None and horizon is None:
        raise ValueError("start and horizon are both None: paths would never stop; give a start set (start=) "
                         "and/or a horizon (horizon=)")
    if start is not None:
        if isinstance(start, (int, float, np.integer, np.floating)) and not isinstance(start, bool):
            start = real(start, "start")
            if not start < target:
                raise ValueError(f"start level must be below target = {target}, got {start}")
        elif not isinstance(start, Region) and not callable(start):
            raise TypeError(f"start must be a level (float), an rds.regions.Region, a predicate or None, got "
                            f"{start!r}")
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    drawn = isinstance(initial, Region) or (callable(initial) and not isinstance(initial, np.ndarray))
    X, init_desc = initial_states(initial, system.variables, members=n_clones if drawn else None,
                                  sample_seed=seed if sample_seed is None else sample_seed)
    if X.shape[0] == 1:
        X = np.repeat(X, n_clones, axis=0)
    elif X.shape[0] != n_clones:
        raise ValueError(f"initial must be one state (var,) or n_clones = {n_clones} states, got {X.shape[0]}")
    check_memory(8 * n_clones * (system.nvar + 8) * 64, f"n_clones = {n_clones} paths", "use fewer clones")
    ind = system if system.independent_noise else system.replace(common_noise=False)
    prob = _Problem(ind, score, target, start, horizon, max_steps, seed, t0, backend)
    s0 = prob.score(X)
    if not np.all(np.isfinite(s0)):
        raise ValueError("score must be finite at the initial states (found NaN or inf)")

    from rds.system import safe_tqdm
    show = bool(progress) if progress is not None else (executor is not None and repeats > 1)
    bar = safe_tqdm(total=repeats, unit="run", desc="AMS") if show else None
    try:
        groups = [list(range(g, min(g + REPEAT_GROUP, repeats))) for g in range(0, repeats, REPEAT_GROUP)]
        runs = []
        if executor is None:
            for grp in groups:
                runs.extend(_run_group(prob, X, n_kill, grp, max_iterations))
                if bar is not None:
                    bar.update(len(grp))
        else:
            futs = [executor.submit(_run_group, prob, X, n_kill, grp, max_iterations) for grp in groups]
            for grp, f in zip(groups, futs):
                runs.extend(f.result())
                if bar is not None:
                    bar.update(len(grp))
    finally:
        if bar is not None:
            bar.close()
    return _dataset(system, prob, runs, X, init_desc, n_clones, n_kill, repeats, start, max_iterations)


def _pad(arrs, fill, dtype):
    L = max([a.shape[0] for a in arrs] + [0])
    out = np.full((len(arrs), L) + arrs[0].shape[1:], fill, dtype=dtype)
    for i, a in enumerate(arrs):
        out[i, :a.shape[0]] = a
    return out


def _dataset(system, prob, runs, X, init_desc, n, n_kill, R, start, max_iterations):
    horizon_given = prob.horizon is not None
    P_all = np.concatenate([r["P_e"] for r in runs])
    B_all = np.concatenate([r["B_e"] for r in runs])
    A_all = np.concatenate([r["A_e"] for r in runs])
    p, p_se, T, T_se = _eve_stats(P_all, B_all, A_all, horizon_given)
    per = [_eve_stats(r["P_e"], r["B_e"], r["A_e"], horizon_given) for r in runs]
    run_p = np.array([r["p"] for r in runs])
    if R > 1:
        p_se_rep = float(run_p.std(ddof=1) / np.sqrt(R))
        if horizon_given or p <= 0:
            T_se_rep = np.nan
        else:
            num_r = np.array([r["A_e"].mean() + r["B_e"].mean() for r in runs])
            infl = num_r / p - T * run_p / p
            T_se_rep = float(infl.std(ddof=1) / np.sqrt(R))
    else:
        p_se_rep = T_se_rep = np.nan
    n_reached_w = B_all.sum()
    loops = np.concatenate([r["A_e"] for r in runs])
    loop_mask = np.concatenate([r["A_e"] > 0 for r in runs])
    loop_mean = float(loops[loop_mask].mean()) if loop_mask.any() and not horizon_given else np.nan
    reactive_mean = float(n_reached_w / P_all.sum()) if P_all.sum() > 0 else np.nan
    ds = xr.Dataset(coords={"repeat": np.arange(R), "iteration": np.arange(1, max(1, max(len(r["levels"])
                                                                                     for r in runs)) + 1),
                            "clone": np.arange(n), "var": list(system.variables)})
    scal = {
        "probability": (p, "probability of reaching the target before the path is stopped (AMS, mean over "
                           "repeats; unbiased)", "1"),
        "probability_se": (p_se, "standard error of probability within the runs (genealogy: eve sums, "
                              "Chan & Lai 2013)", "1"),
        "probability_se_repeats": (p_se_rep, "standard error of probability from the spread of the repeats "
                                             "(NaN for one repeat)", "1"),
        "mfpt": (T, "mean first-passage time to the target, E[tau]/p (Cerou et al. 2011), renewal at the "
                    "initial law; NaN with a horizon", "steps"),
        "mfpt_se": (T_se, "standard error of mfpt within the runs (delta method on eve sums)", "steps"),
        "mfpt_se_repeats": (T_se_rep, "standard error of mfpt from the spread of the repeats", "steps"),
        "mfpt_time": (T * system.dt, "mean first-passage time to the target in time units (mfpt x dt)", "time"),
        "loop_mean": (loop_mean, "mean duration of a loop (path back to the start set), first generation",
                      "steps"),
        "reactive_mean": (reactive_mean, "mean duration of a reactive path (reaching the target), AMS weights",
                          "steps"),
        "work": (int(sum(r["work"] for r in runs)), "member-steps simulated in all (including idle members of "
                                                     "a batch)", "steps"),
        "iterations": (int(sum(r["iterations"] for r in runs)), "AMS iterations in all repeats", None),
    }
    for name, (val, ln, unit) in scal.items():
        ds[name] = val
        ds[name].attrs["long_name"] = ln
        if unit:
            ds[name].attrs["units"] = unit
    rep = {
        "run_probability": (run_p, "probability estimate of each run"),
        "run_probability_se": (np.array([x[1] for x in per]), "within-run standard error of each run"),
        "run_mfpt": (np.array([x[2] for x in per]), "mean first-passage time estimate of each run (steps)"),
        "run_iterations": (np.array([r["iterations"] for r in runs], dtype=np.int64), "iterations of each run"),
        "run_weight": (np.array([math.exp(r["log_c"]) for r in runs]),
                       "product of (1 - K_j/n) over the iterations: each final path carries weight run_weight/n"),
        "run_work": (np.array([r["work"] for r in runs], dtype=np.int64), "member-steps of each run"),
        "run_n_eves": (np.array([r["n_eves"] for r in runs], dtype=np.int64),
                       "distinct first-generation ancestors (eves) of the paths that reached the target; few "
                       "eves: the within-run standard error is unreliable"),
        "run_extinct": (np.array([int(r["extinct"]) for r in runs], dtype=np.int8),
                        "1 where all clones were killed at once (estimate 0)"),
        "direct_probability": (np.array([r["direct_p"] for r in runs]),
                               "fraction of the first generation (plain Monte Carlo paths) that reached the target"),
    }
    rep_units = {"run_probability": "1", "run_probability_se": "1", "run_mfpt": "steps", "run_work": "steps",
                 "run_weight": "1", "direct_probability": "1"}
    for name, (val, ln) in rep.items():
        ds[name] = ("repeat", val)
        ds[name].attrs["long_name"] = ln
        if name in rep_units:
            ds[name].attrs["units"] = rep_units[name]
    ds["level"] = (("repeat", "iteration"), _pad([r["levels"] for r in runs], np.nan, float)
                   if any(len(r["levels"]) for r in runs) else np.full((R, 1), np.nan))
    ds["level"].attrs.update(long_name="AMS level of each iteration (n_kill-th smallest path maximum)",
                             units="1")
    ds["n_killed"] = (("repeat", "iteration"), _pad([r["kills"] for r in runs], -1, np.int64)
                      if any(len(r["kills"]) for r in runs) else np.full((R, 1), -1, dtype=np.int64))
    ds["n_killed"].attrs["long_name"] = "paths killed at each iteration (all ties at the level; -1: padding)"
    for name, key, ln in (("clone_max_score", "max", "maximum of the score along each final path"),
                          ("clone_duration", "duration", "length of each final path in steps")):
        ds[name] = (("repeat", "clone"), np.stack([r[key] for r in runs]))
        ds[name].attrs.update(long_name=ln, units="1" if key == "max" else "steps")
    ds["clone_reached"] = (("repeat", "clone"), np.stack([r["reached"] for r in runs]).astype(np.int8))
    ds["clone_reached"].attrs["long_name"] = "1 where the final path reached the target"
    ds["clone_eve"] = (("repeat", "clone"), np.stack([r["eve"] for r in runs]))
    ds["clone_eve"].attrs["long_name"] = "first-generation ancestor (eve) of each final path"
    nb = max(r["br_iter"].size for r in runs)
    ds = ds.assign_coords(branch=np.arange(nb))
    br_it = _pad([r["br_iter"] for r in runs], -1, np.int64) if nb else np.zeros((R, 0), dtype=np.int64)
    ds["branch_iteration"] = (("repeat", "branch"), br_it)
    ds["branch_iteration"].attrs["long_name"] = "iteration k at which the branch was made (-1: padding)"
    real_ = np.where(br_it >= 0, (np.arange(R)[:, None] // REPEAT_GROUP) * REPEAT_STRIDE + br_it, -1)
    ds["branch_realization"] = (("repeat", "branch"), real_.astype(np.int64))
    ds["branch_realization"].attrs["long_name"] = ("noise realization of the branch ((repeat // 32) * 2**32 + "
                                                   "iteration; independent noise, member branch_member)")
    for name, key, ln in (("branch_member", "br_member", "noise member index of the branch"),
                          ("branch_start", "br_time", "age of the path in steps at the branch point")):
        ds[name] = (("repeat", "branch"), _pad([r[key] for r in runs], -1, np.int64) if nb
                    else np.zeros((R, 0), dtype=np.int64))
        ds[name].attrs["long_name"] = ln + " (-1: padding)"
    ds["branch_state"] = (("repeat", "branch", "var"), _pad([r["br_state"] for r in runs], np.nan, float) if nb
                          else np.zeros((R, 0, system.nvar)))
    ds["branch_state"].attrs.update(long_name="state at the branch point (where the parent first passed the level)",
                                    units="1")
    for name, ln in (("repeat", "independent AMS run"), ("iteration", "AMS iteration (1, 2, ...)"),
                     ("clone", "clone (path) of the final generation"), ("branch", "branch made by the run")):
        ds[name].attrs["long_name"] = ln
    attrs = system.describe()
    attrs["common_noise"] = 0  # the clones ran on independent noise
    if start is None:
        start_desc = "none"
    elif isinstance(start, float):
        start_desc = f"score <= {start!r}"
    elif isinstance(start, Region):
        start_desc = repr(start)
    else:
        start_desc = f"predicate:{getattr(start, '__name__', 'callable')}"
    attrs.update({
        "analysis": "multilevel_splitting", "score": getattr(prob.score_fn, "__name__", "callable"),
        "target": float(prob.target), "start_set": start_desc, "horizon": -1 if prob.horizon is None else
        int(prob.horizon), "max_steps": int(prob.max_steps), "n_clones": int(n), "n_kill": int(n_kill),
        "repeats": int(R), "seed": int(prob.seed), "t0": int(prob.t0), "max_iterations": int(max_iterations),
        "initial_states": init_desc, "backend": runs[0]["backend"],
        "requested_backend": "auto" if prob.backend is None else str(prob.backend),
        "noise_layout": "independent per member; batch k of repeat r on realization (r//32)*2**32+k, members "
                        "from (r%32)*n_clones (the first generation is k = 0)",
        "stopping": "first step n >= 1 in the start set or with score >= target (target wins), or the horizon",
        "equations": "generalised AMS: Brehier, Gazeau, Goudenege, Lelievre & Rousset, Ann. Appl. Probab. 26 "
                     "(2016) 3559; MFPT = E[tau]/p: Cerou, Guyader, Lelievre & Pommier, J. Chem. Phys. 134 (2011) "
                     "054108, Lestang et al., J. Stat. Mech. (2018) 043213; SE: Chan & Lai, Ann. Statist. 41 "
                     "(2013) 2877",
        "mfpt_assumption": "renewal: each return to the start set restarts from the initial law (exact for a "
                           "restart on one point; otherwise an approximation, good for a small start set)",
        "time_unit": "steps (multiply by dt for time)",
        "min_eves": int(min(r["n_eves"] for r in runs)),
    })
    ds.attrs.update(attrs)
    if min(r["n_eves"] for r in runs) < _FEW_EVES and p > 0:
        ds.attrs["warning"] = (f"some runs' reactive paths descend from fewer than {_FEW_EVES} first-generation "
                               "paths: the within-run standard error is unreliable; use repeats= and "
                               "probability_se_repeats, or more clones")
    return rds.labels.annotate(ds)


def splitting_mean_time(ds: xr.Dataset, *, tail_from=None) -> xr.Dataset:
    """Mean time to reach the target from a horizon-limited splitting run: weighted Kaplan–Meier part + tail.

    With a horizon H, the final clones of :func:`multilevel_splitting` carry weight w = ``run_weight`` / n each,
    and the weighted reactive paths estimate the whole law of the first-passage time τ up to H without bias:
    F(t) = P(τ ≤ t) = Σ_{reached, duration ≤ t} w for every t ≤ H. From it, as in
    :func:`analysis.censored_mean` for direct runs,

        E[τ] = ∫_0^H S(t) dt + S(H)/λ̂,   λ̂ = (F(H) − F(t_f)) / ∫_{t_f}^H S(t) dt,

    the restricted mean plus an exponential (geometric) tail beyond H whose rate is the escape rate observed on
    [t_f, H] (events / exposure, the censored maximum-likelihood rate). The tail is a model: it assumes the
    escape rate stays constant after t_f (quasi-stationary escape), which is checked where direct runs also
    work. Each repeat's linear statistics are averaged and the standard error is the jackknife over repeats.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`multilevel_splitting` result with a horizon and, for a standard error, ``repeats`` ≥ 2.
    tail_from : int or None, keyword-only
        t_f, 0 ≤ t_f < H (default H // 2).

    Returns
    -------
    xarray.Dataset
        ``mean`` and ``mean_se`` (steps; inf/NaN when no path reached the target after t_f), ``km_part``,
        ``tail_part``, ``survival_at_horizon`` S(H), ``tail_rate`` λ̂ (1/steps); per repeat ``run_mean``.

    Examples
    --------
    A geometric first-passage time (each step reaches the target with probability 0.01, mean 100), horizon 40:

    >>> import numpy as np, rds, analysis
    >>> kick = rds.RandomDynamicalSystem(lambda s, xi, p: (s[0] + (xi[0] > 2.3263478740408408) * 1.0,),
    ...                                  noise=rds.noise.Gaussian(1.0), variables=("x",))
    >>> ds = analysis.multilevel_splitting(kick, [0.0], lambda X: X[..., 0], target=1.0, n_clones=200,
    ...                                    n_kill=20, horizon=40, repeats=4, backend="numpy")
    >>> m = analysis.splitting_mean_time(ds)
    >>> bool(abs(float(m["mean"]) - 100) < 4 * float(m["mean_se"]))
    True
    """
    if not isinstance(ds, xr.Dataset) or ds.attrs.get("analysis") != "multilevel_splitting":
        raise TypeError("ds must be a Dataset returned by analysis.multilevel_splitting")
    H = int(ds.attrs["horizon"])
    if H < 1:
        raise ValueError("ds: the splitting run has no horizon (horizon=); its mean first-passage time is ds.mfpt")
    tf = H // 2 if tail_from is None else integer(tail_from, "tail_from", 0)
    if tf >= H:
        raise ValueError(f"tail_from must be below the horizon {H}, got {tf}")
    n = ds.sizes["clone"]
    w = (ds["run_weight"].values / n)[:, None] * ds["clone_reached"].values.astype(bool)
    dur = ds["clone_duration"].values.astype(float)
    stats_r = np.stack([
        H - np.sum(w * (H - dur), axis=1),  # restricted mean
        1.0 - w.sum(axis=1),  # S(H)
        np.sum(w * (dur > tf), axis=1),  # F(H) - F(tf)
        (H - tf) - np.sum(w * (H - np.maximum(dur, tf)), axis=1),  # integral of S over [tf, H]
    ], axis=1)

    def combine(st):
        km, s_h, ev, expo = st
        if s_h <= 0:
            return km, 0.0, np.nan
        if ev <= 0:
            return np.inf, np.inf, 0.0
        rate = ev / expo
        return km + s_h / rate, s_h / rate, rate

    mean, tail, rate = combine(stats_r.mean(axis=0))
    R = stats_r.shape[0]
    if R > 1 and np.isfinite(mean):
        jack = np.array([combine(np.delete(stats_r, i, axis=0).mean(axis=0))[0] for i in range(R)])
        # a leave-one-out mean without events in the tail window is infinite: no finite standard error then
        se = float(np.sqrt((R - 1) / R * np.sum((jack - jack.mean()) ** 2))) if np.all(np.isfinite(jack)) \
            else np.inf
    else:
        se = np.nan
    out = xr.Dataset(coords={"repeat": ds["repeat"].values})
    vals = {
        "mean": (mean, "mean first-passage time: weighted restricted mean to the horizon + exponential tail",
                 "steps"),
        "mean_se": (se, "standard error of mean (jackknife over repeats)", "steps"),
        "km_part": (float(stats_r[:, 0].mean()), "restricted mean to the horizon (integral of S)", "steps"),
        "tail_part": (tail, "S(horizon) / tail_rate: the part beyond the horizon", "steps"),
        "survival_at_horizon": (float(stats_r[:, 1].mean()), "S(horizon) = 1 - probability", "1"),
        "tail_rate": (rate, f"escape rate fitted on [{tf}, {H}] (events / exposure)", "1/steps"),
    }
    for name, (v, ln, unit) in vals.items():
        out[name] = v
        out[name].attrs.update(long_name=ln, units=unit)
    out["run_mean"] = ("repeat", np.array([combine(st)[0] for st in stats_r]))
    out["run_mean"].attrs.update(long_name="mean estimate of each repeat", units="steps")
    out["repeat"].attrs["long_name"] = "independent AMS run"
    out.attrs.update({k: v for k, v in ds.attrs.items() if k != "warning"})
    out.attrs.update({"analysis": "splitting_mean_time", "tail_from": int(tf),
                      "tail_model": "constant escape rate after tail_from (quasi-stationary escape)"})
    return out
