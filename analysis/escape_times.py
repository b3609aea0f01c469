"""Escape times from a region as right-censored survival data, and scans over the noise strength σ².

Sato, Tsutsui & Fujiwara (Physica D 430 (2022) 133095), §4.2 and Fig. 5: the mean escape time τ* from the
trapping region [−2, 2]² around the doubly degenerate subspace M_wv (eq. 18; the map on M_wv is eqs. 31–32) is
non-monotone in σ² — large near σ² = 0.004, smallest near σ² ≈ 0.07, large again near 0.15.

A run that is still inside the region when the simulation stops (``max_steps``) has *not* escaped: its escape time
is only known to exceed the cap (right censoring). Averaging the cap in as if it were an escape time, or dropping
the run, biases τ* downwards — by orders of magnitude when most runs are censored. Here every run gives a pair
(observed time T_i = min(escape step, cap), event indicator δ_i) and the summaries are survival estimators:

* Kaplan–Meier survival S(t) = P(escape step > t) with Greenwood pointwise intervals (``scipy.stats.ecdf`` on
  ``scipy.stats.CensoredData``), and its median (smallest t with S(t) ≤ ½; +inf if S stays above ½ up to the cap);
* the restricted mean ∫_0^cap S(t) dt = E[min(T, cap)] — a model-free *lower bound* on the mean escape time;
* the maximum-likelihood rate of an exponential (geometric, for a map) tail with censoring, λ̂ = Σδ_i / Σ T_i
  (events / total exposure), and its mean 1/λ̂ — the model-based estimate of τ* that extrapolates past the cap
  (exactly the MLE mean of a geometric law, mean 1/p; ``tail_from`` fits only the tail beyond a delay);
* percentile bootstrap intervals for all of these. Runs form a crossed design — every initial condition (member)
  is run under every noise path (realization), and with common noise all members of a realization share it — so
  the default resamples initial conditions and realizations independently (two-way "pigeonhole" bootstrap,
  Owen 2007: run (r, m) gets weight a_r·b_m); resampling only members, only realizations, or single runs (i.i.d.;
  right only for independent noise and distinct initial conditions) is available;
* the naive mean of the uncensored escape times alone, for contrast only (biased low under censoring).

Escape times are in steps (multiply by ``system.dt`` for time).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable

import numpy as np
import xarray as xr
from scipy import stats

import rds
from rds._checks import check_memory, integer, real, real_array
from rds.noise import check_seed
from rds.regions import Box, Region
from rds.sampling import initial_states, sample_box
from rds.timegrid import log_times

__all__ = ["censored_mean", "escape_times", "escape_time_scan", "sample_uniform", "survival_summary"]

_BOOTSTRAP = ("both", "members", "realizations", "runs")
_SCALARS = ("censored_fraction", "restricted_mean", "median", "exp_rate", "exp_mean")


# ---------------------------------------------------------------------------------------------- initial states
def sample_uniform(box: Box, members: int, variables, seed=0) -> np.ndarray:
    """Initial states drawn uniformly in a box over *all* the system's variables (each in ``(low, high]``).

    Parameters
    ----------
    box : rds.regions.Box
        Finite bounds for every variable in ``variables`` (the half-open ``(low, high]`` keeps e.g. the invariant
        line w = 0 out of ``(0, 2]``).
    members : int
        Number of states M ≥ 1.
    variables : sequence of str
        The system's variables (the column order of the result).
    seed : int
        Seed of :func:`rds.sampling.sampler_rng`, ``numpy.random.default_rng([seed, 7919])`` (a stream separate
        from the noise paths).

    Returns
    -------
    ndarray, shape (member, var)

    Examples
    --------
    >>> from rds.regions import Box
    >>> X = sample_uniform(Box([0, 0], [2, 2], ("w", "v")), 5, ("w", "v"), seed=1)
    >>> X.shape, bool((X > 0).all() and (X <= 2).all())
    ((5, 2), True)
    """
    if not isinstance(box, Box):
        raise TypeError(f"box must be an rds.regions.Box, got {type(box).__name__}")
    seed = check_seed(seed)
    if isinstance(variables, str):
        raise ValueError(f"variables must be a sequence of names such as ({variables!r},), not a string")
    try:
        variables = tuple(variables)
    except TypeError:
        raise TypeError(f"variables must be a sequence of names, got {variables!r}") from None
    if not all(isinstance(v, str) for v in variables):
        raise TypeError(f"variables must be names (strings), got {variables!r}")
    return sample_box(box, variables, members, seed)  # the one Box sampler, rds.sampling


def _initial_states(system, initial, members, seed):
    """States (member, var) and their description: :func:`rds.sampling.initial_states`, sampled with ``seed``."""
    return initial_states(initial, system.variables, members=members, sample_seed=seed)


# ---------------------------------------------------------------------------------------------- estimators
def _t_grid(max_steps: int, n: int = 200) -> np.ndarray:
    return log_times(max_steps, n, zero=True)  # the one log-spaced grid, rds.timegrid


def _weighted_stats(W, T, d, order, tail_from):
    """Summaries for each row of integer weights W (B, N) over units with times T and events d (sorted order)."""
    n = W.sum(axis=1).astype(float)
    ev = W @ d.astype(float)
    cens = 1.0 - ev / n
    rmst = (W @ T) / n
    tail_expo = np.maximum(T - tail_from, 0.0)
    tail_ev = (d & (T > tail_from)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (W @ tail_ev) / (W @ tail_expo)
    rate = np.where(np.isfinite(rate), rate, 0.0)
    with np.errstate(divide="ignore"):
        mean = 1.0 / rate
    cum = np.cumsum(W[:, order], axis=1)
    idx = np.argmax(cum >= n[:, None] / 2.0, axis=1)
    Ts, ds = T[order], d[order]
    med = np.where(ds[idx], Ts[idx], np.inf)
    return {"censored_fraction": cens, "restricted_mean": rmst, "median": med, "exp_rate": rate, "exp_mean": mean}


def censored_mean(T, censored, max_steps, *, tail_from=0) -> xr.Dataset:
    """Mean escape time under right censoring: Kaplan–Meier up to the cap plus a fitted exponential tail.

    The mean splits at the cap c = ``max_steps``: E[T] = E[min(T, c)] + P(T > c) · E[T − c | T > c]. The first
    part is the Kaplan–Meier restricted mean ∫_0^c S(t) dt (model-free); the second is S(c) / λ̂, the memoryless
    mean remaining time of an exponential (geometric, for a map) tail with the censored maximum-likelihood rate
    λ̂ = (escapes after ``tail_from``) / (exposure after ``tail_from``) (Cox & Oakes, *Analysis of Survival Data*,
    Chapman & Hall 1984, §3.2). When no run is censored the tail term is 0 and the estimate is the sample mean.

    The standard error is the delta method, written with each run's influence on the Kaplan–Meier hazards
    h_j = d_j / n_j and on λ̂ = D / E, so that their covariance (the same escapes enter both) is kept:
    ∂mean/∂h_j = −(A_j + S(c)/λ̂)/(1 − h_j) with A_j = ∫_{t_j}^c S(t) dt, and ∂mean/∂λ̂ = −S(c)/λ̂². Without
    censoring it reduces to the Kaplan–Meier restricted-mean variance (Klein & Moeschberger, *Survival Analysis*,
    Springer 2003, §4.5).

    Parameters
    ----------
    T : array_like of int, shape (n,)
        Observed times: the escape step, or ``max_steps`` for a censored run.
    censored : array_like of bool, shape (n,)
        True where the run was still inside at ``max_steps``.
    max_steps : int
        The cap c.
    tail_from : int, keyword-only
        Fit λ̂ only to the runs alive at this step, exposure counted from there (0 ≤ tail_from < max_steps).

    Returns
    -------
    xarray.Dataset
        Scalars ``mean`` and ``mean_se`` (steps), ``km_part`` (restricted mean), ``tail_part`` (S(c)/λ̂),
        ``survival_at_cap`` S(c), ``tail_rate`` λ̂ (1/steps), ``tail_events`` (escapes used for λ̂). ``mean`` is
        inf (and ``mean_se`` NaN) when runs are censored but none escaped after ``tail_from``.

    Examples
    --------
    Geometric escape times with mean 20, censored at 30:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> T = rng.geometric(0.05, 20000)
    >>> ds = censored_mean(np.minimum(T, 30), T > 30, 30)
    >>> bool(abs(float(ds["mean"]) - 20) < 3 * float(ds["mean_se"])), float(ds["mean_se"]) < 0.5
    (True, True)
    """
    T = real_array(T, "T", "a 1-D array of observed times")
    try:
        c = np.asarray(censored, dtype=bool)
    except (TypeError, ValueError):
        raise TypeError("censored must be a 1-D array of bools") from None
    max_steps = integer(max_steps, "max_steps", 1)
    tail_from = integer(tail_from, "tail_from", 0)
    if tail_from >= max_steps:
        raise ValueError(f"tail_from must be below max_steps = {max_steps}, got {tail_from}")
    if T.ndim != 1 or T.size == 0 or c.shape != T.shape:
        raise ValueError("T and censored must be non-empty 1-D arrays of the same length")
    if not np.all(np.isfinite(T)) or np.any(T[c] != max_steps) or np.any(T > max_steps) or np.any(T < 0):
        raise ValueError("T must be finite, in [0, max_steps], and equal to max_steps where censored")
    d = ~c
    times, inv = np.unique(T, return_inverse=True)
    deaths = np.bincount(inv, weights=d.astype(float))
    at_risk = T.size - np.concatenate([[0.0], np.cumsum(np.bincount(inv).astype(float))[:-1]])
    h = deaths / at_risk
    S = np.cumprod(1.0 - h)  # S just after each distinct time
    knots = np.concatenate([[0.0], times[times < max_steps], [float(max_steps)]])
    S_left = np.concatenate([[1.0], S[times < max_steps]])  # S on [knot_i, knot_{i+1})
    km = float(np.sum(S_left * np.diff(knots)))
    s_cap = float(S[-1]) if times[-1] >= max_steps else float(S_left[-1])
    tail_ev = float(np.sum(d & (T > tail_from)))
    expo = float(np.sum(np.maximum(T - tail_from, 0.0)))
    rate = tail_ev / expo if expo > 0 else np.nan
    if s_cap == 0.0:
        tail = 0.0
    elif tail_ev > 0:
        tail = s_cap / rate
    else:
        tail = np.inf
    # delta method on the hazards h_j and on the rate, by each run's influence (so their covariance is kept)
    cum_from = np.concatenate([np.cumsum((S_left * np.diff(knots))[::-1])[::-1], [0.0]])  # from knot i to cap
    A = cum_from[np.minimum(np.searchsorted(knots, times, side="right") - 1, knots.size - 1)]  # ∫_{t_j}^c S
    A = np.where(times < max_steps, A, 0.0)
    tail_f = tail if np.isfinite(tail) else 0.0
    S_before = np.concatenate([[1.0], S[:-1]])
    one_h = 1.0 - h
    with np.errstate(divide="ignore", invalid="ignore"):
        dm_dh = np.where(one_h > 0, -(A + tail_f) / one_h,  # dm/dh_j
                         -S_before * (max_steps - times) * (times < max_steps)
                         - (S_before / rate if tail_ev > 0 else 0.0))
    w = dm_dh * h / at_risk  # run i at risk at t_j contributes -h_j/n_j to dh_j; its own event +1/n_j
    infl = np.where(d, dm_dh[inv] / at_risk[inv], 0.0) - np.cumsum(w)[inv]
    if s_cap > 0 and tail_ev > 0:  # the rate lambda = D/E: influence (d_i - lambda e_i)/E, dm/dlambda = -S(c)/lambda^2
        infl = infl - s_cap / rate ** 2 * ((d & (T > tail_from)) - rate * np.maximum(T - tail_from, 0.0)) / expo
    var = float(np.sum(infl ** 2)) if np.isfinite(tail) else np.nan
    mean = km + tail
    ds = xr.Dataset()
    vals = {
        "mean": (mean, "mean escape time: Kaplan-Meier restricted mean to the cap + S(cap) x fitted exponential "
                       "mean remaining time", "steps"),
        "mean_se": (np.sqrt(var) if np.isfinite(mean) else np.nan,
                    "standard error of mean (delta method on the hazards and the tail rate)", "steps"),
        "km_part": (km, "Kaplan-Meier restricted mean to max_steps (integral of S)", "steps"),
        "tail_part": (tail, "S(max_steps) / tail_rate: the part of the mean beyond the cap", "steps"),
        "survival_at_cap": (s_cap, "Kaplan-Meier survival S(max_steps)", "1"),
        "tail_rate": (rate, f"censored ML exponential rate fitted to the runs alive at t = {tail_from}",
                      "1/steps"),
        "tail_events": (int(tail_ev), f"escapes after t = {tail_from} used for tail_rate", None),
    }
    for name, (v, ln, unit) in vals.items():
        ds[name] = v
        ds[name].attrs["long_name"] = ln
        if unit:
            ds[name].attrs["units"] = unit
    ds.attrs.update({"max_steps": int(max_steps), "tail_from": int(tail_from),
                     "estimator": "Kaplan-Meier restricted mean + exponential tail beyond the cap"})
    return ds


def survival_summary(T, censored, max_steps, realization=None, member=None, n_boot=1000, confidence=0.95,
                     bootstrap="both", tail_from=0, boot_seed=0, t_grid=None) -> xr.Dataset:
    """Survival estimators for right-censored escape times (the statistics behind :func:`escape_times`).

    Parameters
    ----------
    T : array_like of int, shape (n,)
        Observed times: the escape step, or ``max_steps`` for a censored run.
    censored : array_like of bool, shape (n,)
        True where the run was still inside at ``max_steps`` (no escape observed).
    max_steps : int
        The cap (restricted-mean horizon).
    realization, member : array_like of int, shape (n,) or None
        Realization and initial-condition index of each run (None: every run its own).
    n_boot : int
        Bootstrap replicates (0: no intervals).
    confidence : float
        Confidence level of all intervals, in (0, 1).
    bootstrap : {"both", "members", "realizations", "runs"}
        Resampling: initial conditions and realizations independently (two-way, default); initial conditions
        only (each with all its realizations); realizations only (each with all its members); single runs.
    tail_from : int
        Fit the exponential/geometric escape rate only to the tail: runs alive at ``tail_from``, exposure counted
        from there. 0 fits all runs.
    boot_seed : int or sequence of int
        Seed of the bootstrap generator.
    t_grid : array_like of int or None
        Times at which S(t) is reported (default: 0 and ~200 log-spaced steps up to the cap).

    Returns
    -------
    xarray.Dataset
        Scalars ``n_at_risk, n_events, n_censored, censored_fraction, restricted_mean, median, exp_rate,
        exp_mean, naive_mean_uncensored``; ``<name>_ci`` (ci) for the five estimators; ``survival`` (t) and
        ``survival_ci`` (t, ci) (Kaplan–Meier, Greenwood, linear, clipped to [0, 1]).

    Examples
    --------
    >>> ds = survival_summary([1, 2, 2, 5, 5, 5], [False, False, False, False, True, True], 5, n_boot=0)
    >>> float(ds["restricted_mean"]), float(ds["median"]), float(ds["exp_mean"])
    (3.3333333333333335, 2.0, 5.0)
    """
    T = real_array(T, "T", "a 1-D array of observed times")
    try:
        d = ~np.asarray(censored, dtype=bool)
    except (TypeError, ValueError):
        raise TypeError("censored must be a 1-D array of bools") from None
    max_steps = integer(max_steps, "max_steps", 1)
    n_boot = integer(n_boot, "n_boot", 0)
    confidence = real(confidence, "confidence")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not isinstance(bootstrap, str) or bootstrap not in _BOOTSTRAP:
        raise ValueError(f"bootstrap must be one of {_BOOTSTRAP}, got {bootstrap!r}")
    tail_from = integer(tail_from, "tail_from", 0)
    if T.ndim != 1 or T.size == 0 or d.shape != T.shape:
        raise ValueError("T and censored must be non-empty 1-D arrays of the same length")
    if not np.all(np.isfinite(T)):
        raise ValueError("T must be finite (found NaN or inf): censored runs have T == max_steps")
    for name, idx in (("realization", realization), ("member", member)):
        try:
            shape = None if idx is None else np.shape(idx)
        except ValueError:
            raise ValueError(f"{name} must be a 1-D array of indices, got a ragged sequence") from None
        if idx is not None and np.asarray(idx).dtype.kind not in "iub":
            raise TypeError(f"{name} must be integer indices, got {idx!r}"[:200])
        if idx is not None and shape != T.shape:
            raise ValueError(f"{name} must give one index per run: shape {T.shape} like T, got {np.shape(idx)}")
    if np.any(T[~d] != max_steps) or np.any(T > max_steps) or np.any(T < 0):
        raise ValueError("censored runs must have T == max_steps and all T in [0, max_steps]")
    grid = _t_grid(max_steps) if t_grid is None else np.asarray(t_grid, dtype=np.int64)
    N = T.size
    order = np.lexsort((~d, T))  # by time, events before censorings at ties (Kaplan–Meier convention)

    point = {k: float(v[0]) for k, v in _weighted_stats(np.ones((1, N), dtype=np.int64), T, d, order,
                                                        tail_from).items()}
    # Kaplan–Meier (scipy) for S(t), its Greenwood band, the median and the restricted mean
    alpha = 1.0 - confidence
    if np.any(d):
        sf = stats.ecdf(stats.CensoredData(uncensored=T[d], right=T[~d])).sf
        S = sf.evaluate(grid)
        with warnings.catch_warnings():  # undefined (0/0) where S = 0: the band collapses onto S there
            warnings.simplefilter("ignore", RuntimeWarning)
            band = sf.confidence_interval(confidence_level=confidence)
        S_ci = np.stack([band.low.evaluate(grid), band.high.evaluate(grid)], axis=-1)
        S_ci = np.where(np.isnan(S_ci), S[:, None], S_ci)
        q, p = sf.quantiles, sf.probabilities
        below = np.nonzero(p <= 0.5)[0]
        median = float(q[below[0]]) if below.size else np.inf
        knots = np.concatenate([[0.0], q[q < max_steps], [float(max_steps)]])
        rmst = float(np.sum(sf.evaluate(knots[:-1]) * np.diff(knots)))
    else:
        S = np.ones(grid.size)
        S_ci = np.ones((grid.size, 2))
        median, rmst = np.inf, float(max_steps)
    # the scipy estimators and the weighted (bootstrap) ones agree: same estimator, two implementations
    point["median"], point["restricted_mean"] = median, rmst

    ci = {k: np.full(2, np.nan) for k in _SCALARS}
    if n_boot:  # the replicates of every statistic are kept (for their quantiles): check before drawing them
        check_memory(16 * n_boot * len(_SCALARS), f"n_boot = {n_boot} bootstrap replicates of {len(_SCALARS)} "
                     "statistics", "use fewer replicates (n_boot = 1000-10000 gives the quantiles of a 95% interval)")
        rng = np.random.default_rng(boot_seed)
        idx_r = np.unique(np.arange(N) if realization is None else np.asarray(realization), return_inverse=True)[1]
        idx_m = np.unique(np.arange(N) if member is None else np.asarray(member), return_inverse=True)[1]
        nr, nm = int(idx_r.max()) + 1, int(idx_m.max()) + 1
        draws: dict[str, list] = {k: [] for k in _SCALARS}
        batch = max(1, int(2_000_000 // N))
        done = 0
        while done < n_boot:
            b = min(batch, n_boot - done)
            if bootstrap == "runs":
                W = rng.multinomial(N, np.full(N, 1.0 / N), size=b)
            else:
                W = np.ones((b, N), dtype=np.int64)
                if bootstrap in ("both", "realizations"):
                    W *= rng.multinomial(nr, np.full(nr, 1.0 / nr), size=b)[:, idx_r]
                if bootstrap in ("both", "members"):
                    W *= rng.multinomial(nm, np.full(nm, 1.0 / nm), size=b)[:, idx_m]
            for k, v in _weighted_stats(W, T, d, order, tail_from).items():
                draws[k].append(v)
            done += b
        for k in _SCALARS:
            v = np.sort(np.concatenate(draws[k]))
            ci[k] = np.array([np.quantile(v, alpha / 2, method="lower"),
                              np.quantile(v, 1 - alpha / 2, method="higher")])
    naive = float(T[d].mean()) if np.any(d) else np.nan

    ds = xr.Dataset(coords={"t": grid, "ci": ["low", "high"]})
    ds["n_at_risk"] = N
    ds["n_events"] = int(d.sum())
    ds["n_censored"] = int((~d).sum())
    for k in _SCALARS:
        ds[k] = point[k]
        ds[k + "_ci"] = ("ci", ci[k])
    ds["naive_mean_uncensored"] = naive
    ds["survival"] = ("t", S)
    ds["survival_ci"] = (("t", "ci"), S_ci)
    comb = censored_mean(T, ~d, max_steps, tail_from=min(tail_from, max_steps - 1))
    ds["combined_mean"], ds["combined_mean_se"] = comb["mean"], comb["mean_se"]
    _describe_summaries(ds, max_steps, tail_from, confidence, bootstrap, n_boot)
    return rds.labels.annotate(ds)  # long_name / units from rds.labels


def _describe_summaries(ds, max_steps, tail_from, confidence, bootstrap, n_boot):
    unit = "steps"
    ds["t"].attrs.update(long_name="steps since the start (elapsed, not absolute time)", units=unit)
    ds["ci"].attrs["long_name"] = f"{confidence:g} confidence interval bounds"
    ds["n_at_risk"].attrs["long_name"] = "runs used in the statistics (started inside the region)"
    ds["n_events"].attrs["long_name"] = "runs that escaped within max_steps (diverged runs count: they left)"
    ds["n_censored"].attrs["long_name"] = "runs still inside at max_steps (right-censored, NOT escapes)"
    ds["censored_fraction"].attrs["long_name"] = "fraction of runs still inside at max_steps"
    ds["restricted_mean"].attrs.update(
        long_name=f"restricted mean escape time: integral of Kaplan-Meier S(t) from 0 to max_steps={max_steps} "
                  "(= mean of min(T, cap)); a model-free lower bound on the mean", units=unit)
    ds["median"].attrs.update(long_name="Kaplan-Meier median escape time (smallest t with S(t) <= 1/2; "
                                        "inf: S stays above 1/2 up to max_steps)", units=unit)
    ds["exp_rate"].attrs.update(long_name=f"censored maximum-likelihood escape rate of an exponential/geometric "
                                          f"tail: events / total exposure beyond t={tail_from}", units=f"1/{unit}")
    if tail_from > 0:  # the rate of the tail beyond tail_from: its inverse is a remaining time, not the mean
        ds["exp_mean"].attrs.update(long_name=f"1/exp_rate: mean REMAINING escape time beyond t={tail_from} of the "
                                              "runs alive then, under the exponential/geometric tail model (not "
                                              "the mean from t=0; see combined_mean)", units=unit)
    else:
        ds["exp_mean"].attrs.update(long_name="1/exp_rate: mean escape time under the exponential/geometric tail "
                                              "model (the tau* estimate; inf when no run escaped)", units=unit)
    ds["combined_mean"].attrs.update(long_name="mean escape time: Kaplan-Meier restricted mean to max_steps + "
                                               "S(max_steps) x exponential mean remaining time (censored_mean)",
                                     units=unit)
    ds["combined_mean_se"].attrs.update(long_name="standard error of combined_mean (delta method)", units=unit)
    ds["naive_mean_uncensored"].attrs.update(
        long_name="naive mean of the uncensored escape times only (biased low; for contrast, do not use)",
        units=unit)
    ds["survival"].attrs["long_name"] = "Kaplan-Meier survival S(t) = P(escape step > t) (scipy.stats.ecdf)"
    ds["survival_ci"].attrs["long_name"] = ("Greenwood pointwise interval of S(t) (linear, clipped to [0, 1]); "
                                            "treats runs as independent, so it is too narrow when members share "
                                            "noise or initial conditions (see the bootstrap intervals)")
    for k in _SCALARS:
        ds[k + "_ci"].attrs["long_name"] = (f"{confidence:g} percentile bootstrap interval of {k} "
                                            f"({n_boot} replicates, resampling {bootstrap})")


# ---------------------------------------------------------------------------------------------- escape_times
def escape_times(system, initial, region, max_steps, *, seed=0, realizations=1, members=None, t0=0, n_boot=1000,
                 confidence=0.95, bootstrap="both", tail_from=0, backend=None, executor=None, chunk_size=None,
                 progress=None, keep_members=True, sample_seed=None) -> xr.Dataset:
    """First-exit (escape) times from a region, as right-censored survival data (Sato et al. 2022, §4.2, Fig. 5).

    Each initial state is evolved with :meth:`rds.RandomDynamicalSystem.first_exit` (stopping early once all
    members have left) for ``realizations`` independent noise paths (realization r = 0 … K−1, same initial states).
    The escape step is the number of steps after which the state was first outside the region; runs still inside
    after ``max_steps`` are right-censored (observed time = ``max_steps``, ``censored`` = True) and never counted
    as escapes. A run that diverges (NaN) leaves every :class:`~rds.regions.Box` and counts as an escape at that
    step (``diverged`` marks it).

    Initial states outside the region have escape time 0; they are excluded from all statistics and counted in
    ``n_started_outside`` (a ValueError if *all* are outside).

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
    initial : array_like, shape (member, var), or rds.regions.Box
        Initial states; or a Box over all the variables to sample ``members`` states uniformly in ``(low, high]``
        (:func:`sample_uniform`, seeded by ``sample_seed``), or a callable ``sampler(rng, members)``.
    region : rds.regions.Region or callable
        The trapping region (e.g. ``Box([-2, -2], [2, 2], ("w", "v"))``) or an elementwise predicate.
    max_steps : int
        The cap (≥ 1). The options after it are keyword-only.
    seed : int
        Noise seed (and seed of the initial sampling and of the bootstrap).
    realizations : int
        Number K ≥ 1 of independent noise paths.
    members : int or None
        Sample size when ``initial`` is a Box.
    t0 : int
        Absolute start time of every run.
    n_boot : int
        Bootstrap replicates for the intervals (0: none).
    confidence : float
        Level of all intervals.
    bootstrap : {"both", "members", "realizations", "runs"}
        Bootstrap resampling. "both" (default): initial conditions and realizations independently (run (r, m)
        weighted a_r·b_m), for the crossed design (same initial conditions in every realization, shared noise
        within a realization); "members": initial conditions only; "realizations": noise paths only (misses the
        spread over initial conditions); "runs": single runs i.i.d. (only for independent noise and distinct
        initial conditions; otherwise it understates the uncertainty).
    tail_from : int
        The exponential/geometric rate is fitted to the tail beyond this many steps (default 0: all runs).
    backend, executor, chunk_size, progress
        As in :meth:`rds.RandomDynamicalSystem.first_exit`.
    sample_seed : int or None
        Seed of the initial sampling from a Box or sampler (None: ``seed``, the convention of every analysis).
    keep_members : bool
        Keep the per-run arrays (``escape_time``, ``censored``, …); False keeps only the summaries.

    Returns
    -------
    xarray.Dataset
        Per run: ``escape_time`` (realization, member) int64 in steps (the escape step; ``max_steps`` when
        censored; 0 when started outside), ``censored`` (realization, member) bool, ``diverged`` (realization,
        member) bool, ``exit_state`` (realization, member, var) (state at exit or at the cap), ``started_outside``
        (member) bool, ``initial`` (member, var). Summaries over all runs that started inside (see
        :func:`survival_summary`): ``censored_fraction``, ``restricted_mean``, ``median``, ``exp_rate``,
        ``exp_mean`` (the τ* estimate), each with ``*_ci`` (ci); ``survival`` (t), ``survival_ci`` (t, ci);
        ``naive_mean_uncensored``; counts ``n_at_risk``, ``n_events``, ``n_censored``, ``n_started_outside``,
        ``n_diverged``. Attrs: the system's description, region, protocol, seed and all method settings.

    Examples
    --------
    Escape from [−2, 2]² on M_wv (eqs. 31–32), a tiny run:

    >>> import rds, analysis
    >>> from rds.regions import Box
    >>> red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    >>> ds = analysis.escape_times(red, Box([0, 0], [2, 2], ("w", "v")), Box([-2, -2], [2, 2], ("w", "v")),
    ...                            max_steps=200, members=20, n_boot=50, backend="numpy")
    >>> ds.escape_time.dims, float(ds.censored_fraction) <= 1
    (('realization', 'member'), True)
    """
    if not isinstance(system, rds.RandomDynamicalSystem):
        raise TypeError(f"system must be an rds.RandomDynamicalSystem, got {type(system).__name__}")
    max_steps = integer(max_steps, "max_steps", 1)
    realizations = integer(realizations, "realizations", 1)
    seed = integer(seed, "seed", 0)
    X, init_desc = _initial_states(system, initial, members, seed if sample_seed is None else sample_seed)
    return _escape_times(system, X, init_desc, region, max_steps, seed, realizations, t0, n_boot, confidence,
                         bootstrap, tail_from, backend, executor, chunk_size, progress, keep_members)


def _escape_times(system, X, init_desc, region, max_steps, seed, realizations, t0, n_boot, confidence, bootstrap,
                  tail_from, backend, executor, chunk_size, progress, keep_members, boot_seed=None):
    if not isinstance(region, Region) and not callable(region):
        raise TypeError(f"region must be an rds.regions.Region or a callable inside(state) -> bool, got {region!r}")
    if not isinstance(bootstrap, str) or bootstrap not in _BOOTSTRAP:
        raise ValueError(f"bootstrap must be one of {_BOOTSTRAP}, got {bootstrap!r}")
    check_memory(8 * realizations * X.shape[0] * (system.nvar + 3), f"realizations={realizations} x "
                 f"members={X.shape[0]} runs", "use fewer realizations or members")
    inside = np.broadcast_to(np.asarray(system.predicate(region)(tuple(X.T)), dtype=bool),
                             (X.shape[0],))
    if not np.any(inside):
        raise ValueError(f"initial: all {X.shape[0]} initial states lie outside the region {region!r} "
                         "(or the region is empty)")
    M, K = X.shape[0], realizations
    exit_step = np.empty((K, M), dtype=np.int64)
    exit_state = np.empty((K, M, system.nvar)) if keep_members else None
    diverged = np.empty((K, M), dtype=bool)
    used = None
    for r in range(K):
        out = system.first_exit(X, region, max_steps, seed=seed, t0=t0, realization=r, backend=backend,
                                executor=executor, chunk_size=chunk_size, progress=progress)
        exit_step[r], diverged[r] = out["exit_step"], out["diverged"]
        if keep_members:
            exit_state[r] = out["state"]
        used = out["backend"]
    censored = exit_step < 0
    escape = np.where(censored, max_steps, exit_step)
    sel = np.broadcast_to(inside, (K, M))
    T = escape[sel]
    r_idx = np.broadcast_to(np.arange(K)[:, None], (K, M))[sel]
    m_idx = np.broadcast_to(np.arange(M)[None, :], (K, M))[sel]
    if boot_seed is None:
        boot_seed = [seed, 0xB007]
    ds = survival_summary(T, censored[sel], max_steps, realization=r_idx, member=m_idx, n_boot=n_boot,
                          confidence=confidence, bootstrap=bootstrap, tail_from=tail_from, boot_seed=boot_seed)
    ds["n_started_outside"] = int((~inside).sum())
    ds["n_started_outside"].attrs["long_name"] = ("initial states outside the region (escape time 0; excluded "
                                                  "from all statistics), per realization")
    ds["n_diverged"] = int(diverged[sel].sum())
    ds["n_diverged"].attrs["long_name"] = "runs that diverged (NaN) before leaving; counted as escapes"
    if keep_members:
        ds = ds.assign_coords(realization=np.arange(K), member=np.arange(M), var=list(system.variables))
        ds["escape_time"] = (("realization", "member"), escape)
        ds["escape_time"].attrs.update(long_name="escape step (steps after which the state was first outside); "
                                                 "max_steps if censored; 0 if started outside", units="steps")
        ds["censored"] = (("realization", "member"), censored)
        ds["censored"].attrs["long_name"] = "still inside at max_steps: right-censored, not an escape"
        ds["diverged"] = (("realization", "member"), diverged)
        ds["exit_state"] = (("realization", "member", "var"), exit_state)
        ds["exit_state"].attrs["long_name"] = "state at the escape step (or at the cap if censored)"
        ds["started_outside"] = (("member",), ~inside)
        ds["initial"] = (("member", "var"), X)
    attrs = system.describe()
    attrs.update(_region_attrs(region))
    attrs.update({
        "analysis": "escape_times", "equations": "Sato et al. 2022 sec. 4.2, Fig. 5 (escape from the trapping region)",
        "seed": int(seed), "realizations": int(K), "members": int(M), "t0": int(t0), "max_steps": int(max_steps),
        "initial_states": init_desc, "n_boot": int(n_boot), "confidence": float(confidence),
        "bootstrap": bootstrap, "tail_from": int(tail_from), "backend": used or "",
        "time_unit": "steps (multiply by dt for time)",
        "censoring": "right-censored at max_steps; censored runs are never counted as escapes",
        "started_outside_policy": "escape time 0, excluded from statistics, counted in n_started_outside",
        "tau_star": "exp_mean (censored ML exponential/geometric tail); restricted_mean is a lower bound",
    })
    ds.attrs.update(attrs)
    return rds.labels.annotate(ds)  # long_name / units from rds.labels


def _region_attrs(region):
    if isinstance(region, Region):  # bounds as text: a length-1 array would come back from netCDF as a scalar
        return {k: (str(v.tolist()) if isinstance(v, np.ndarray) else v) for k, v in region.describe().items()}
    return {"region": f"predicate:{getattr(region, '__name__', 'callable')}"}


# ---------------------------------------------------------------------------------------------- scan over σ²
def escape_time_scan(make_system: Callable, sigma2, initial, region, max_steps, *, seed=0, store=None, progress=None,
                     realizations=1, members=None, t0=0, n_boot=1000, confidence=0.95, bootstrap="both",
                     tail_from=0, backend=None, executor=None, chunk_size=None, keep_members=True,
                     protocol="") -> xr.Dataset:
    """:func:`escape_times` for each noise strength σ² (Sato et al. 2022, Fig. 5), resumable.

    The same initial states (sampled once if ``initial`` is a Box), noise seed and realizations are used for every
    σ² (common random numbers: the Gaussian inputs are √σ² times the same standard normals).

    Parameters
    ----------
    make_system : callable
        ``make_system(sigma2) -> RandomDynamicalSystem``, e.g.
        ``lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2)``.
    sigma2 : array_like of float, shape (n,)
        Distinct noise strengths σ² ≥ 0.
    initial, region, max_steps, seed, realizations, members, t0, n_boot, confidence, bootstrap, tail_from,
    backend, executor, chunk_size, keep_members
        As in :func:`escape_times`; the options after ``max_steps`` are keyword-only.
    store : str or os.PathLike or None
        netCDF file. After each σ² the rows done so far are saved atomically (:func:`rds.io.save`); if the file
        exists, the scan resumes after its finished rows — provided it was made with the same settings (model,
        grid, region, initial states, seeds, method settings and the ``backend`` argument; stored in attrs
        ``scan_settings``), else ValueError. Each stored row carries a checksum (attr ``row_checksums``), and
        everything else — the variables without a σ² dim (``t``, ``initial``, …), the coordinates, every attr —
        another (``store_checksum``; :func:`rds.io.seal_store`), and its σ² must be the grid's: a store in which
        anything was edited is refused (ValueError), as is resuming with another ``backend`` (the backend each
        row used is the variable ``backend_used``). Checksums detect accidents, not deliberate forgery.
    progress : bool or None
        A tqdm bar over σ²; ``None`` (default) shows it for scans above 10⁹ member-steps in all.
    protocol : str
        Free-text description of the protocol, recorded in attrs.

    Returns
    -------
    xarray.Dataset
        The :func:`escape_times` variables with a leading dim ``sigma2`` (coordinate σ²), attrs common to all rows
        plus ``scan_settings``.

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> from rds.regions import Box
    >>> ds = analysis.escape_time_scan(lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2),
    ...                                [0.05, 0.1], Box([0, 0], [2, 2], ("w", "v")),
    ...                                Box([-2, -2], [2, 2], ("w", "v")), 100, members=10, n_boot=20,
    ...                                backend="numpy", progress=False)
    >>> ds.exp_mean.dims
    ('sigma2',)
    """
    from rds.system import PROGRESS_THRESHOLD, safe_tqdm

    if not callable(make_system):
        raise TypeError("make_system must be callable: make_system(sigma2) -> RandomDynamicalSystem")
    s2 = np.asarray(sigma2, dtype=float).ravel()
    if s2.size == 0 or not np.all(np.isfinite(s2)) or np.any(s2 < 0):
        raise ValueError(f"sigma2 must be a non-empty array of finite values >= 0, got {sigma2!r}")
    if np.unique(s2).size != s2.size:
        raise ValueError("sigma2 values must be distinct")
    max_steps = integer(max_steps, "max_steps", 1)
    realizations = integer(realizations, "realizations", 1)
    seed = integer(seed, "seed", 0)
    first = make_system(float(s2[0]))
    if not isinstance(first, rds.RandomDynamicalSystem):
        raise TypeError("make_system must return an rds.RandomDynamicalSystem")
    X, init_desc = _initial_states(first, initial, members, seed)
    model = {k: v for k, v in first.describe().items() if k not in ("noise_sigma2", "rds_version")}
    settings = {
        "model": json.loads(json.dumps(model, default=_jsonable)), "sigma2": s2.tolist(),
        "region": json.loads(json.dumps(_region_attrs(region), default=_jsonable)),
        "initial_sha256": hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest(),
        "initial_states": init_desc, "max_steps": max_steps, "seed": seed, "realizations": realizations,
        "t0": int(t0), "n_boot": int(n_boot), "confidence": float(confidence), "bootstrap": bootstrap,
        "tail_from": int(tail_from), "keep_members": bool(keep_members), "protocol": protocol,
        "backend": "auto" if backend is None else str(backend),
    }
    settings = json.loads(json.dumps(settings, default=_jsonable))  # the form it takes after a save/load
    rows = []
    if store is not None and os.path.exists(store):
        old = rds.io.load(store)
        if old.attrs.get("scan_settings") != settings:
            diff = _diff(old.attrs.get("scan_settings"), settings)
            raise ValueError(f"store: {store!r} was made with other settings ({diff}); refusing to resume — "
                             "use another file or delete it")
        _check_stored_rows(old, s2, store)
        rows = [old.isel(sigma2=[i]) for i in range(old.sizes["sigma2"])]
    done = len(rows)
    if progress is None:
        progress = s2.size * X.shape[0] * realizations * max_steps >= PROGRESS_THRESHOLD
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")
    bar = safe_tqdm(total=s2.size, initial=done, desc="escape-time scan (sigma2)", disable=not progress,
                    unit="sigma2")
    try:
        for i in range(done, s2.size):
            system = first if i == 0 else make_system(float(s2[i]))
            row = _escape_times(system, X, init_desc, region, max_steps, seed, realizations, t0, n_boot,
                                confidence, bootstrap, tail_from, backend, executor, chunk_size, False,
                                keep_members)
            row["backend_used"] = row.attrs.get("backend", "")
            row["backend_used"].attrs["long_name"] = "backend this row ran on"
            rows.append(row.expand_dims(sigma2=[float(s2[i])]))
            bar.update(1)
            if store is not None:
                rds.io.save(_combine(rows, settings), store)
    finally:
        bar.close()
    return _combine(rows, settings)


def _combine(rows, settings):
    # the realization/member/... coords are shared; attrs that differ between rows (noise_sigma2, backend) drop
    ds = xr.concat(rows, dim="sigma2", data_vars="all", coords="minimal", combine_attrs="drop_conflicts",
                   compat="override")
    for name in ("realization", "member", "var", "t", "ci", "started_outside", "initial"):
        if name in ds.variables and "sigma2" in ds[name].dims:
            ds[name] = ds[name].isel(sigma2=0, drop=True)
    ds["sigma2"].attrs.update(long_name="input variance sigma^2 (noise strength)")
    ds.attrs.pop("noise_sigma2", None)
    ds.attrs["analysis"] = "escape_time_scan"
    ds.attrs["scan_settings"] = settings
    ds.attrs["protocol"] = settings["protocol"]
    return rds.io.seal_store(rds.labels.annotate(ds), "sigma2")  # long_name / units; checksums of rows and rest


def _check_stored_rows(old, s2, store):
    """Refuse a store whose σ² coordinates are not the grid's first rows, or whose rows do not match their sums."""
    n = old.sizes.get("sigma2", 0)
    got = np.asarray(old["sigma2"].values, dtype=float) if "sigma2" in old.coords else np.array([])
    if n > s2.size or not np.array_equal(got, s2[:n]):
        raise ValueError(f"store: {store!r} holds rows for sigma2 = {got.tolist()}, which are not the first rows "
                         f"of the grid {s2.tolist()} (edited coordinates?); refusing to resume — use another file "
                         "or delete it")
    rds.io.verify_store(old, "sigma2", f"store: {store!r}")


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return str(v)


def _diff(a, b):
    if not isinstance(a, dict):
        return "no scan_settings in the file"
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: file {a.get(k)!r} vs now {b.get(k)!r}" for k in keys)
