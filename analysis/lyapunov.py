"""Lyapunov spectra of random dynamical systems along one noise path (QR / Benettin method).

For a random map θ_{t+1} = φ(θ_t, ξ_t) the multiplicative ergodic theorem gives, for almost every noise path ω and
almost every initial condition, the limits

    λ_i = lim_{n→∞} (1 / (n dt)) log σ_i( J(θ_{n-1}, ξ_{n-1}) ⋯ J(θ_0, ξ_0) ),

the Lyapunov exponents (σ_i the singular values, J = ∂φ/∂θ the Jacobian of one step, dt the time per step). They
are computed here by the QR method (Benettin et al. 1980; Shimada & Nagashima 1979): k tangent vectors are
propagated with the exact Jacobian, V ← J V, and re-orthonormalised every ``qr_every`` steps by V = Q R; the
exponents are the time averages of log R_cc. The propagation is done by the engine service
:meth:`rds.RandomDynamicalSystem.propagate_tangent` (NumPy, compiled Numba or JAX, the same numbers). For a vector
map (a network with D parameters, :mod:`rds.vector`) ``k`` ≪ D tangent vectors are propagated by exact
Jacobian-vector products (``jax.jvp``), never forming the D × D Jacobian: the top-k exponents, e.g. the top
exponent of linearised SGD at a minimum, negative exactly when the minimum is stable under SGD.

A negative top exponent along a common noise path is noise-induced synchronisation (Sato et al. 2022, Theorem 1 and
App. D; for the phase oscillator λ ≈ −σ²/4, eq. D.6).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

import rds.backends
from rds._checks import check_tangent_memory, integer, integer_times, tangent_vectors
from rds.labels import annotate
from rds.noise import check_seed
from rds.sampling import initial_states
from rds.timegrid import log_times

__all__ = ["lyapunov_spectrum", "history_times", "standard_error", "generic_tangents", "TangentCollapseWarning"]


class TangentCollapseWarning(RuntimeWarning):
    """Tangent vectors collapsed to zero on some orbits (λ = −∞ there), or became non-finite on a finite orbit."""


def history_times(n: int, num: int) -> np.ndarray:
    """Log-spaced distinct integer durations in ``[1, n]`` (always including ``n``), at most ``num`` of them.

    Parameters
    ----------
    n : int
        Length of the measuring window in steps (≥ 1).
    num : int
        Wanted number of points (≥ 1).

    Returns
    -------
    ndarray of int64, shape (≤ num,)
        Increasing durations; the finite-time exponents are recorded after each of them.

    Examples
    --------
    >>> history_times(1000, 4).tolist()
    [1, 10, 100, 1000]
    """
    return log_times(int(n), max(int(num), 1))  # the one log-spaced grid, rds.timegrid


def standard_error(values: np.ndarray, independent_members: bool):
    """Mean and standard error of exponents with dims (realization, member, exponent), NaNs (diverged) dropped.

    An exponent −∞ (a collapsed tangent: the orbit hit a state where the Jacobian kills that direction) is a value,
    not a failure: it is kept, so the mean is −∞ (and its standard error NaN) when any orbit collapsed.

    Members of one realisation driven by common noise are not independent (they feel the same ξ_t and usually
    converge to the same random attractor), so with common noise and ≥ 2 realisations the error is taken across the
    realisation means; with independent noise per member every (realisation, member) pair counts as a sample;
    with common noise and a single realisation it falls back to the spread across members (a lower bound on the
    true error, flagged in the returned method string).

    Returns
    -------
    mean, stderr, n_samples : ndarray (exponent,), ndarray (exponent,), int
    method : str
    """
    K = values.shape[0]
    if independent_members:
        samples = values.reshape(-1, values.shape[-1])
        method = "across realizations and members (independent noise per member)"
    elif K >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN realisations stay NaN and are dropped
            samples = np.nanmean(values, axis=1)
        method = "across realizations (member means within each realization; members share the noise)"
    else:
        samples = values[0]
        method = ("across members of one realization (members share the noise: not independent, "
                  "use realizations >= 2 for an honest error)")
    ok = ~np.any(np.isnan(samples), axis=-1)  # NaN: diverged, dropped; -inf: collapsed, kept
    samples = samples[ok]
    n = int(samples.shape[0])
    if n == 0:
        nanv = np.full(values.shape[-1], np.nan)
        return nanv, nanv.copy(), 0, method
    with np.errstate(invalid="ignore"):  # -inf samples: mean -inf, standard error NaN
        mean = samples.mean(axis=0)
        se = samples.std(axis=0, ddof=1) / np.sqrt(n) if n >= 2 else np.full(values.shape[-1], np.nan)
    return mean, se, n, method


def _check_system(system):
    for attr in ("propagate_tangent", "evolve", "variables", "dt", "noise"):
        if not hasattr(system, attr):
            raise TypeError(f"system must be an rds.RandomDynamicalSystem, got {type(system).__name__}")


def lyapunov_spectrum(system, initial, steps, *, seed=0, transient=0, qr_every=1, realizations=1, k=None,
                      num_history=50, backend=None, executor=None, chunk_size=None, t0=0, tangent=None,
                      progress=None, members=None, sample_seed=None, history=None) -> xr.Dataset:
    """Lyapunov spectrum along random trajectories by the QR (Benettin) method.

    The system is first evolved for ``transient`` steps from absolute time ``t0`` (:meth:`evolve`, no tangent
    vectors), then ``k`` tangent vectors are propagated with the exact Jacobian for the remaining
    ``steps − transient`` steps (:meth:`propagate_tangent`) and re-orthonormalised every ``qr_every`` steps.
    With n = steps − transient,

        λ_c = (1 / (n · dt)) Σ log R_cc,   c = 1 … k     (per unit time; dt = ``system.dt``),

    which converges to the Lyapunov exponents of the multiplicative ergodic theorem. The tangent vectors start as
    the identity for the whole spectrum, and as k random orthonormal vectors drawn from ``seed``
    (:func:`generic_tangents`) for the top k < nvar: the identity's first columns can span an invariant subspace
    (a coordinate subspace of a symmetric model, e1 of triangular Jacobians) and would then give that subspace's
    exponents instead of the top k. Without ``tangent`` they are returned sorted largest first for each member
    (tangent vectors and finite-time history in the same order); from given ``tangent`` vectors, in the order of
    those vectors. Each realisation r = 0 … K−1 is an independent noise path ω_r (``realization=r`` of ``seed``);
    all members of a realisation share it when ``system.common_noise`` (the RDS picture: Sato, Tsutsui & Fujiwara
    2022, App. D, eq. D.6).

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        The map; its Jacobian is the analytic one if given, else exact (complex step).
    initial : array_like (member, var) or (var,), rds.regions.Box, or callable
        Initial states at time ``t0`` (finite), or how to draw ``members`` of them (:mod:`rds.sampling`).
    steps : int
        Total number of steps, transient included (must exceed ``transient``).
    seed : int
        Noise seed (≥ 0).
    transient : int
        Steps discarded before the tangent vectors start (0 ≤ transient < steps).
    qr_every : int
        Steps between QR re-orthonormalisations (≥ 1). A QR is also made at each history time and at the end.
        Larger values are faster but can overflow when exponents are large (|λ| dt qr_every ≳ 700).
    realizations : int
        Number K ≥ 1 of independent noise paths. A system without noise, or with quenched noise (a fixed dataset),
        has a single path: K > 1 raises ValueError.
    k : int or None
        Number of exponents (1 ≤ k ≤ nvar); default all. Tangent vectors start as the identity (k = nvar), k
        random orthonormal vectors drawn from ``seed`` (k < nvar), or the first k columns of ``tangent``.
    num_history : int
        Number of log-spaced times (≥ 1) at which the finite-time exponents are recorded.
    backend : {"numpy", "numba", "jax"} or None
        Engine backend (None: automatic; JAX for vector maps). They agree to rounding.
    executor : concurrent.futures.Executor or None
        Run chunks of members on it.
    chunk_size : int or None
        Members per chunk; results do not depend on it.
    t0 : int
        Absolute start time (selects the noise ξ_t).
    tangent : array_like, shape (var, k) or (member, var, k), or None
        Initial tangent vectors instead of the identity (e.g. directions transverse to an invariant subspace);
        they are orthonormalised first. With ``k`` given, the first k columns are used.
    progress : bool or None
        Progress bar (None: automatic for very long runs).
    members, sample_seed : int or None
        Number of states to draw when ``initial`` is a Box or sampler, and the sampling seed (None: ``seed``).
    history : array_like of int or None
        Durations (steps after the transient, increasing, in [1, steps − transient]) at which to record the
        finite-time exponents instead of ``num_history`` log-spaced ones (e.g. regular block ends for batch means,
        :func:`analysis.lyapunov_scan`, or chosen horizons, :func:`analysis.finite_time_exponents`).

    Returns
    -------
    xarray.Dataset
        ``exponents`` (realization, member, exponent): λ per unit time; ``history`` (realization, member, time,
        exponent): finite-time exponents after ``elapsed`` = (time − t_start)·dt, ``time`` the absolute step
        (log-spaced); ``mean_exponents`` and ``stderr`` (exponent): mean and standard error (see attrs
        ``stderr_method``), ``n_samples``; ``sum`` (realization, member): Σ λ_c; ``vectors`` (realization,
        member, var, exponent): final orthonormal tangent vectors (Gram–Schmidt vectors); ``state``
        (realization, member, var): final states; ``diverged`` (realization, member). Diverged members are NaN.
        ``collapsed`` (realization, member): the number of exponents that are −∞ on that orbit — its tangent
        vectors collapsed to zero (the orbit reached a state where the Jacobian has a zero direction, e.g. an
        absorbing state of ``np.clip``); ``n_collapsed`` (realization): orbits with a collapse. The mean of
        exponents including −∞ is −∞ (a :class:`TangentCollapseWarning` says how many orbits collapsed).
        Tangent vectors that become non-finite on a finite orbit (a Jacobian with inf or NaN entries) are
        marked diverged (NaN) with a warning.
        Attrs: the system's description, seed, steps, transient, qr_every, k, t_start, t_end, units, backend.

    Raises
    ------
    ValueError
        ``steps <= transient``, ``qr_every < 1``, ``realizations > 1`` for a system without (or with quenched)
        noise, ``k`` out of range, bad ``tangent``.

    Examples
    --------
    A linear map x → A x has exponents log|eig(A)|:

    >>> import numpy as np, rds, analysis
    >>> def step(state, xi, params):
    ...     x, y = state
    ...     return (2.0 * x + 0.0 * y, 0.5 * y + 0.0 * x)
    >>> lin = rds.RandomDynamicalSystem(step, noise=None, variables=("x", "y"))
    >>> ds = analysis.lyapunov_spectrum(lin, np.zeros(2), 100, backend="numpy")
    >>> np.allclose(ds.exponents.values.ravel(), np.log([2.0, 0.5]), atol=1e-12)
    True
    """
    _check_system(system)
    steps, transient, qr_every, realizations, num_history, t0 = _check_options(
        system, steps, transient, qr_every, realizations, num_history, t0, seed)
    X, _ = initial_states(initial, system.variables, members=members,
                          sample_seed=seed if sample_seed is None else sample_seed)
    n = steps - transient
    kk = (system.nvar if k is None else k) if tangent is None else np.shape(tangent)[-1]
    if isinstance(kk, (int, np.integer)) and not isinstance(kk, bool):  # (a bad k is refused below)
        nrec = min(num_history, n) if history is None else np.size(history)
        check_tangent_memory(realizations, X.shape[0], system.nvar, kk, nrec, "lyapunov_spectrum: ",
                             "k (None: all)" if k is None else "k")
    V0 = _initial_tangents(system.nvar, X.shape[0], k, tangent, seed)
    dur = history_times(n, num_history) if history is None else _check_history(history, n)
    if backend is None:  # one choice for all realisations, by their total work (the one chooser, rds.backends)
        backend = rds.backends.choose(system, None, X, rds.backends.Plan("tangent", X.shape[0], steps,
                                                                         k=V0.shape[2], repeats=realizations))
    run = dict(seed=seed, backend=backend, executor=executor, chunk_size=chunk_size, progress=progress)
    res = _run_realizations(system, X, V0, realizations=realizations, t0=t0, transient=transient, n=n,
                            dur=dur, qr_every=qr_every, run=run)
    return _spectrum_dataset(system, res, dur=dur, seed=seed, t0=t0, steps=steps, transient=transient,
                             qr_every=qr_every, realizations=realizations, given_tangent=tangent is not None)


def _check_options(system, steps, transient, qr_every, realizations, num_history, t0, seed):
    """Validated (steps, transient, qr_every, realizations, num_history, t0)."""
    steps = integer(steps, "steps", 1)
    transient = integer(transient, "transient", 0)
    if steps <= transient:
        raise ValueError(f"steps must be > transient (steps counts the transient too), got steps={steps}, "
                         f"transient={transient}")
    if isinstance(qr_every, bool) or not isinstance(qr_every, (int, np.integer)):
        raise TypeError(f"qr_every must be an integer, got {qr_every!r}")
    if qr_every < 1:
        raise ValueError(f"qr_every must be >= 1, got {qr_every}")
    realizations = integer(realizations, "realizations", 1)
    num_history = integer(num_history, "num_history", 1)
    t0 = integer(t0, "t0")
    check_seed(seed)
    deterministic = system.noise.quenched or int(np.prod(system.noise.shape)) == 0
    if realizations > 1 and deterministic:
        kind = "quenched (fixed-dataset)" if system.noise.quenched else "no"
        raise ValueError(f"realizations must be 1 for a system with {kind} noise: it has a single noise path, "
                         f"got realizations={realizations}")
    return steps, transient, int(qr_every), realizations, num_history, t0


def _check_history(history, n):
    """Recording durations: distinct increasing integers in [1, n]."""
    dur = integer_times(history, "history")
    if dur.size == 0 or dur[0] < 1 or dur[-1] > n or np.any(np.diff(dur) <= 0):
        raise ValueError(f"history must be increasing durations in [1, steps - transient] = [1, {n}], "
                         f"got {np.asarray(history).tolist()}")
    return dur


def _check_k(k, kmax, what):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer or None, got {k!r}")
    if not 1 <= k <= kmax:
        raise ValueError(f"k must satisfy 1 <= k <= {kmax} ({what}), got {k}")
    return int(k)


def generic_tangents(nvar, k, seed):
    """k random orthonormal tangent vectors (var, k), drawn from ``seed``: a generic start for the QR method.

    The identity's columns are not generic: when a coordinate direction is invariant (e1 for triangular Jacobians,
    a coordinate subspace of a symmetric model) the first column never turns towards the most unstable direction,
    and the "top" exponent comes out as the exponent of that direction instead.

    Parameters
    ----------
    nvar : int
        Number of variables (≥ 1).
    k : int or None
        Number of vectors, 1 ≤ k ≤ nvar (None: nvar).
    seed : int
        Seed of the draw (the analysis' noise seed: reruns give the same start).

    Returns
    -------
    ndarray, shape (nvar, k)
        Orthonormal columns.

    Examples
    --------
    >>> import numpy as np
    >>> from analysis.lyapunov import generic_tangents
    >>> V = generic_tangents(4, 2, 0)
    >>> V.shape, bool(np.allclose(V.T @ V, np.eye(2)))
    ((4, 2), True)
    """
    k = nvar if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= nvar:
        raise ValueError(f"k must satisfy 1 <= k <= {nvar} (the number of variables), got {k!r}")
    Q, R = np.linalg.qr(np.random.default_rng([int(seed), 130601]).standard_normal((nvar, int(k))))
    return Q * np.where(np.diagonal(R) < 0, -1.0, 1.0)


def _initial_tangents(nvar, M, k, tangent, seed=0):
    """Orthonormal initial tangent vectors (member, var, k): the identity for the whole spectrum, k generic
    (random orthonormal, from ``seed``) vectors for k < nvar, or ``tangent``."""
    if tangent is None:
        kk = nvar if k is None else _check_k(k, nvar, "the number of variables")
        if kk < nvar:  # the identity's first k columns may span an invariant subspace: not the top k exponents
            E = generic_tangents(nvar, kk, seed)
        else:
            E = np.eye(nvar)
        return np.array(np.broadcast_to(E, (M, nvar, kk)), dtype=float, order="C")
    V0 = tangent_vectors(tangent, M, nvar)  # real, finite, full column rank (rds._checks)
    if k is not None:
        V0 = V0[:, :, :_check_k(k, V0.shape[2], "the number of tangent vectors")]
    Q, R = np.linalg.qr(V0)
    V0 = Q * np.sign(np.diagonal(R, axis1=-2, axis2=-1))[:, None, :]
    return np.array(V0, dtype=float, order="C")  # a writable copy (the engine updates tangents in place)


def _run_realizations(system, X, V0, *, realizations, t0, transient, n, dur, qr_every, run):
    """The loop: per realisation, a transient (evolve) then the tangent propagation. NaN where diverged."""
    M, nvar, kk = V0.shape
    scale = 1.0 / system.dt
    t_start = t0 + transient
    out_arrays = {"exps": np.empty((realizations, M, kk)), "hist": np.empty((realizations, M, dur.size, kk)),
                  "vecs": np.empty((realizations, M, nvar, kk)), "final": np.empty((realizations, M, nvar)),
                  "div": np.zeros((realizations, M), dtype=bool), "coll": np.zeros((realizations, M), dtype=np.int64),
                  "tan_div": 0, "backend": None}
    for r in range(realizations):  # independent noise paths (a handful): the member and time loops are compiled
        common = dict(run, realization=r)
        Xs = system.evolve(X, transient, t0=t0, **common) if transient else X
        bad0 = ~np.all(np.isfinite(Xs), axis=-1)
        Xs = np.where(bad0[:, None], 0.0, Xs)  # diverged in the transient: run from 0 and mark NaN below
        out = system.propagate_tangent(Xs, n, tangent=V0.copy(), t0=t_start, qr_every=qr_every,
                                       times=t_start + dur, **common)
        logr = np.asarray(out["logr"])
        tan_div = ~(out["diverged"] | bad0) & np.any(np.isnan(logr) | (logr == np.inf), axis=-1)
        d = out["diverged"] | bad0 | tan_div
        out_arrays["tan_div"] += int(tan_div.sum())
        out_arrays["coll"][r] = np.where(d, 0, np.sum(logr == -np.inf, axis=-1))
        out_arrays["backend"] = out["backend"]
        out_arrays["div"][r] = d
        for key, val in (("exps", out["logr"] * (scale / n)),
                         ("hist", out["logr_records"] * (scale / dur)[None, :, None]),
                         ("vecs", out["V"]), ("final", out["state"])):
            val = np.array(val, dtype=float)
            val[d] = np.nan
            out_arrays[key][r] = val
    return out_arrays


def _spectrum_dataset(system, res, *, dur, seed, t0, steps, transient, qr_every, realizations, given_tangent):
    if not given_tangent:
        # identity start: largest first per member (a finite run's QR order can differ, e.g. from an invariant
        # start direction); history columns and tangent vectors follow; diverged (NaN) rows keep theirs. Given
        # tangent vectors keep their order: their columns mean something (e.g. transverse directions first)
        order = np.argsort(-np.nan_to_num(res["exps"], nan=-np.inf), axis=-1, kind="stable")
        res = dict(res, exps=np.take_along_axis(res["exps"], order, -1),
                   hist=np.take_along_axis(res["hist"], order[:, :, None, :], -1),
                   vecs=np.take_along_axis(res["vecs"], order[:, :, None, :], -1))
    exps = res["exps"]
    M, kk = exps.shape[1], exps.shape[2]
    _warn_tangents(res, M * realizations)
    t_start = t0 + transient
    mean, se, nsamp, method = standard_error(exps, system.independent_noise)
    ds = xr.Dataset(
        {"exponents": (("realization", "member", "exponent"), exps),
         "history": (("realization", "member", "time", "exponent"), res["hist"]),
         "mean_exponents": (("exponent",), mean),
         "stderr": (("exponent",), se),
         "sum": (("realization", "member"), exps.sum(axis=-1)),
         "vectors": (("realization", "member", "var", "exponent"), res["vecs"]),
         "state": (("realization", "member", "var"), res["final"]),
         "diverged": (("realization", "member"), res["div"]),
         "collapsed": (("realization", "member"), res["coll"]),
         "n_collapsed": (("realization",), np.sum(res["coll"] > 0, axis=1))},
        coords={"realization": np.arange(realizations), "member": np.arange(M), "exponent": np.arange(1, kk + 1),
                "time": t_start + dur, "elapsed": ("time", dur * float(system.dt)), "var": list(system.variables)},
    )
    units = "per unit time (sum of log R_cc divided by (steps - transient) * dt)"
    ds["exponents"].attrs.update(long_name="Lyapunov exponents", comment=units)  # CF units from rds.labels
    ds["history"].attrs.update(long_name="finite-time Lyapunov exponents after `elapsed`", comment=units)
    ds["mean_exponents"].attrs.update(long_name="mean exponent over realizations and members (diverged dropped)")
    ds["stderr"].attrs.update(long_name="standard error of the mean exponent", method=method)
    ds["time"].attrs["long_name"] = "absolute time step t at which the finite-time exponent is recorded"
    ds["elapsed"].attrs["long_name"] = "time since the tangent vectors started, (t - t_start) * dt"
    ds["vectors"].attrs["long_name"] = "final orthonormalised tangent vectors (columns)"
    ds["collapsed"].attrs["long_name"] = "number of exponents equal to -inf (tangent vectors collapsed to zero)"
    ds["n_collapsed"].attrs["long_name"] = "orbits of the realization whose tangent vectors collapsed (-inf)"
    ds.attrs.update(system.describe())
    householder = getattr(system, "form", "elementwise") == "vector" or res["backend"] == "jax"
    method_name = ("QR (Benettin) method, Householder QR of jvp-propagated vectors" if householder
                   else "QR (Benettin) method, twice-iterated modified Gram-Schmidt")
    ds.attrs.update({
        "analysis": "lyapunov_spectrum", "method": method_name,
        "units": units, "seed": int(seed), "t0": int(t0), "steps": int(steps), "transient": int(transient),
        "t_start": int(t_start), "t_end": int(t0 + steps), "qr_every": int(qr_every), "k": int(kk),
        "realizations": int(realizations),
        "tangent_start": "given" if given_tangent else ("identity" if kk == system.nvar else "generic"),
        "n_samples": int(nsamp), "stderr_method": method, "n_diverged": int(res["div"].sum()),
        "n_collapsed": int(np.sum(res["coll"] > 0)),
        "backend": str(res["backend"]),
        "reference": "; ".join(r for r in (ds.attrs.get("reference"), "Benettin et al. (1980)") if r),
    })
    return annotate(ds)  # long_name / units from rds.labels


def _warn_tangents(res, total):
    """Say when tangent vectors collapsed (λ = −∞ on an orbit) or became non-finite on a finite orbit."""
    ncoll = int(np.sum(res["coll"] > 0))
    if ncoll:
        warnings.warn(f"the tangent vectors of {ncoll} of {total} orbits collapsed to zero: the orbit reached a "
                      f"state where the Jacobian has a zero direction (an absorbing state, e.g. where np.clip or "
                      f"np.maximum is flat), so the exponents there are -inf (their count per orbit is `collapsed`), "
                      f"and means over them are -inf; `exponents.where(collapsed == 0)` keeps the other orbits",
                      TangentCollapseWarning, stacklevel=4)
    if res["tan_div"]:
        warnings.warn(f"the tangent vectors of {res['tan_div']} of {total} orbits became non-finite (inf or NaN) "
                      f"while the state stayed finite: the Jacobian is not finite there (e.g. sqrt or log at 0); "
                      f"those orbits are marked diverged (NaN)", TangentCollapseWarning, stacklevel=4)
