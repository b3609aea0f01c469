"""Lyapunov exponents over a parameter grid with standard errors, and the zero crossing of the top exponent.

The sign change of the top Lyapunov exponent λ₁ as a parameter p moves is the stochastic (dynamical, "D-")
bifurcation of a random dynamical system (Arnold 1998, *Random Dynamical Systems*, Springer, ch. 9): for λ₁ < 0
nearby trajectories driven by the same noise path converge (synchronisation by noise, a random point attractor;
Sato, Tsutsui & Fujiwara 2022, Theorem 1 and App. D), for λ₁ > 0 they separate. :func:`lyapunov_scan` computes the
exponents at every grid value with :func:`analysis.lyapunov_spectrum` and attaches standard errors by **batch
means**; :func:`exponent_root` locates the crossing λ₁(p*) = 0 with a confidence interval, refining the grid
adaptively.

Batch means (Flegal & Jones 2010, *Ann. Statist.* 38, 1034): the measuring window of n steps is cut into B blocks of
equal length; for each noise path (realisation) r and block b the block exponent is the growth of log R_cc over the
block divided by its duration, e_{rb}. With K independent noise paths the K·B block means are the batches, and

    λ̂ = (1/KB) Σ_{r,b} e_{rb},    se(λ̂) = sd(e_{rb}) / √(KB).

Blocks within one path are nearly independent once they are longer than the correlation time of the local
expansion rates; the lag-1 autocorrelation of consecutive block means is reported (and a warning is given when it
is large, which means the error is underestimated: use fewer, longer blocks). Members of one realisation share the
noise (common noise), so they are averaged within each (r, b) before the batches are formed; with independent
noise per member every (r, member, b) triple is a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import xarray as xr
from scipy import stats

from analysis.lyapunov import generic_tangents, lyapunov_spectrum
from rds._checks import integer, real
from rds.labels import annotate, units_of
from rds.sampling import initial_states

__all__ = ["lyapunov_scan", "exponent_root", "batch_means"]

#: Lag-1 autocorrelation of consecutive block means above which the batch-means error is flagged as too small.
AUTOCORRELATION_WARN = 0.3


def batch_means(blocks: np.ndarray, independent_members: bool):
    """Mean, batch-means standard error, number of batches and lag-1 autocorrelation of block exponents.

    Parameters
    ----------
    blocks : ndarray, shape (realization, member, block, exponent)
        Exponents of each time block (NaN where a member diverged: dropped).
    independent_members : bool
        True when members draw independent noise: each (realisation, member, block) is then a batch; otherwise
        members are averaged within each (realisation, block) first (they share the noise path).

    Returns
    -------
    mean, stderr : ndarray (exponent,)
        λ̂ = mean of the batches, and sd(batches) / √(number of batches).
    n_batches : int
    autocorrelation : ndarray (exponent,)
        Lag-1 autocorrelation of consecutive block means within a path (pooled over paths; NaN with < 3 blocks).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> m, se, n, rho = batch_means(rng.normal(0.5, 1.0, (4, 1, 25, 1)), False)
    >>> n, bool(abs(m[0] - 0.5) < 3 * se[0]), bool(abs(se[0] - 0.1) < 0.03)
    (100, True, True)
    """
    paths = _paths(blocks, independent_members)
    paths = paths[np.all(np.isfinite(paths), axis=(1, 2))]
    P, B, k = paths.shape
    nan = np.full(k, np.nan)
    if P * B == 0:
        return nan, nan.copy(), 0, nan.copy()
    batches = paths.reshape(P * B, k)
    mean = batches.mean(axis=0)
    se = batches.std(axis=0, ddof=1) / np.sqrt(P * B) if P * B >= 2 else nan.copy()
    if B >= 3:
        d = paths - paths.mean(axis=1, keepdims=True)
        num = np.sum(d[:, 1:] * d[:, :-1], axis=(0, 1))
        den = np.sum(d * d, axis=(0, 1))
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    else:
        rho = nan.copy()
    return mean, se, int(P * B), rho


def _paths(blocks, independent_members):
    """Block exponents per independent path (path, block, exponent): members averaged when they share the noise.

    Paths keep their position (NaN where every member diverged; a diverged member is dropped from the average),
    so the batches of two grid values, which use the same noise paths, stay paired.
    """
    if independent_members:
        return blocks.reshape(-1, blocks.shape[-2], blocks.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        return np.nanmean(blocks, axis=1)


def _block_ends(n, blocks):
    blocks = integer(blocks, "blocks", 1)
    if blocks > n:
        raise ValueError(f"blocks must be <= steps - transient = {n} (each block needs at least one step), "
                         f"got {blocks}")
    return (np.arange(1, blocks + 1, dtype=np.int64) * n) // blocks


def _grid(grid, name="grid"):
    try:
        g = np.atleast_1d(np.asarray(grid, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 1-D array of real parameter values, got {grid!r}") from None
    if g.ndim != 1 or g.size == 0 or not np.all(np.isfinite(g)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite values, got {grid!r}")
    if np.unique(g).size != g.size:
        raise ValueError(f"{name} must not repeat values, got {g.tolist()}")
    return g


def _common_attrs(systems):
    """Attrs shared by all systems of the scan (those that vary with the parameter are listed, not kept)."""
    descs = [s.describe() for s in systems]
    first = descs[0]
    same = {key: val for key, val in first.items() if all(d.get(key) == val for d in descs[1:])}
    varying = sorted(set().union(*descs) - set(same))
    return same, varying


def lyapunov_scan(make_system: Callable, grid, initial, steps, *, k=1, realizations=None, blocks=10, transient=0,
                  seed=0, qr_every=1, parameter="parameter", confidence=0.95, tangent=None, backend=None,
                  executor=None, chunk_size=None, t0=0, progress=None, members=None,
                  sample_seed=None) -> xr.Dataset:
    """Top-k Lyapunov exponents over a parameter grid, with batch-means standard errors.

    For each grid value p, ``make_system(p)`` builds the system and :func:`analysis.lyapunov_spectrum` measures
    its top ``k`` exponents over ``steps − transient`` steps, recording the accumulated log R_cc at the ends of
    ``blocks`` equal time blocks. The same initial states, seed and noise paths are used at every p (common random
    numbers: differences between neighbouring grid values are estimated with less noise than the values).
    Standard errors are batch means over noise paths and time blocks (see the module docstring and
    :func:`batch_means`).

    Parameters
    ----------
    make_system : callable
        ``make_system(p) -> rds.RandomDynamicalSystem`` (either map form), the same variables for every p.
    grid : array_like (parameter,)
        Parameter values (finite, distinct); the result is ordered as given.
    initial : array_like (member, var) or (var,), rds.regions.Box, or callable
        Initial states at ``t0`` (drawn once, with ``members`` and ``sample_seed``, when a Box or sampler).
    steps : int
        Total steps per run, ``transient`` included.
    k : int, keyword-only
        Number of exponents (largest first), 1 ≤ k ≤ var. As are all the options below.
    realizations : int or None
        Independent noise paths K per grid value (None: 4 for a system with noise, 1 without or with quenched
        noise, whose single path is then cut into blocks only).
    blocks : int
        Time blocks B per path (1 ≤ B ≤ steps − transient). Each block should be longer than the correlation time
        of the local expansion rates (see ``block_autocorrelation``).
    transient : int
        Steps discarded before the tangent vectors start.
    tangent : array_like (var, k) or (member, var, k), or None
        Initial tangent vectors (None: k random orthonormal vectors drawn from ``seed``, :func:`generic_tangents`:
        the identity's first column can lie in an invariant direction and miss the top exponent).
    seed, qr_every, backend, executor, chunk_size, t0, progress, members, sample_seed
        As in :func:`analysis.lyapunov_spectrum` (``executor`` runs chunks of members of every run).
    parameter : str
        Name of the parameter dimension (e.g. ``"sigma2"``, ``"eta"``).
    confidence : float
        Level of the confidence intervals ``ci_low``, ``ci_high`` (0 < confidence < 1): mean ± t·se, t the
        Student quantile with (batches − 1) degrees of freedom.

    Returns
    -------
    xarray.Dataset over dim ``parameter`` (named by ``parameter``)
        ``mean_exponents``, ``stderr``, ``ci_low``, ``ci_high`` (parameter, exponent): λ̂ per unit time with its
        batch-means error and interval; ``n_batches`` (parameter); ``block_autocorrelation`` (parameter,
        exponent); ``stderr_realizations`` (parameter, exponent): the error from the K path means alone (NaN for
        K = 1), a cross-check; ``exponents`` (parameter, realization, member, exponent): each run's exponent;
        ``block_exponents`` (parameter, realization, member, block, exponent); ``n_diverged`` (parameter).
        Attrs: the systems' shared description, ``varying_attrs`` (attrs that change with p), the method
        settings and ``stderr_method``.

    Raises
    ------
    ValueError
        Bad ``grid``, ``blocks``, ``confidence``; the errors of :func:`analysis.lyapunov_spectrum`.
    TypeError
        ``make_system`` not callable or not returning a system.

    Warns
    -----
    RuntimeWarning
        When consecutive block means are strongly correlated (lag-1 autocorrelation > 0.3 and beyond three times
        its sampling error 1/√(paths·(blocks − 1))): the error is then underestimated.

    Examples
    --------
    x ↦ a e^ξ x with ξ ~ N(0, 1) has λ = ln a exactly:

    >>> import numpy as np, rds, analysis
    >>> def make(a):
    ...     return rds.RandomDynamicalSystem(lambda s, xi, p: (np.mod(p[0] * np.exp(xi[0]) * s[0], 1.0),),
    ...                                      noise=rds.noise.Gaussian(1.0), variables=("x",), params=(a,))
    >>> ds = analysis.lyapunov_scan(make, [0.5, 1.0, 2.0], np.full(1, 0.3), 2000, backend="numpy")
    >>> z = (ds.mean_exponents.sel(exponent=1) - np.log([0.5, 1.0, 2.0])) / ds.stderr.sel(exponent=1)
    >>> bool(np.all(np.abs(z) < 4)), ds.stderr.dims
    (True, ('parameter', 'exponent'))
    """
    if not callable(make_system):
        raise TypeError("make_system must be callable: make_system(p) -> rds.RandomDynamicalSystem")
    if not isinstance(parameter, str) or not parameter.isidentifier():
        raise ValueError(f"parameter must be a name such as 'sigma2', got {parameter!r}")
    confidence = real(confidence, "confidence")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    g = _grid(grid)
    steps = integer(steps, "steps", 1)
    transient = integer(transient, "transient", 0)
    if steps <= transient:
        raise ValueError(f"steps must be > transient (steps counts the transient too), got steps={steps}, "
                         f"transient={transient}")
    ends = _block_ends(steps - transient, blocks)
    systems = [make_system(float(p)) for p in g]
    for s in systems:
        if not hasattr(s, "propagate_tangent"):
            raise TypeError(f"make_system must return an rds.RandomDynamicalSystem, got {type(s).__name__}")
        if tuple(s.variables) != tuple(systems[0].variables):
            raise ValueError(f"make_system must return systems with the same variables for every parameter, got "
                             f"{systems[0].variables} and {s.variables}")
    deterministic = systems[0].noise.quenched or int(np.prod(systems[0].noise.shape)) == 0
    if realizations is None:
        realizations = 1 if deterministic else 4
    X, _ = initial_states(initial, systems[0].variables, members=members,
                          sample_seed=seed if sample_seed is None else sample_seed)
    start = "given" if tangent is not None else "random orthonormal (from seed)"
    if tangent is None:
        tangent = generic_tangents(systems[0].nvar, k, seed)
    run = dict(k=k, realizations=realizations, transient=transient, seed=seed, qr_every=qr_every, tangent=tangent,
               backend=backend, executor=executor, chunk_size=chunk_size, t0=t0, progress=progress, history=ends)
    per = [lyapunov_spectrum(s, X, steps, **run) for s in systems]
    out = _scan_dataset(per, systems, g, ends, parameter=parameter, confidence=confidence, blocks=int(ends.size))
    out.attrs["tangent_start"] = start
    return out


def _scan_dataset(per, systems, g, ends, *, parameter, confidence, blocks):
    """Stack the runs over the grid and attach the batch-means statistics."""
    indep = systems[0].independent_noise
    dt = float(systems[0].dt)
    exps = np.stack([d.exponents.values for d in per])  # (p, r, m, e)
    cum = np.stack([d.history.values for d in per]) * (ends * dt)[None, None, None, :, None]  # Σ log R up to end_b
    dur = np.diff(np.concatenate([[0], ends])) * dt
    blk = np.diff(np.concatenate([np.zeros_like(cum[:, :, :, :1]), cum], axis=3), axis=3) / dur[:, None]
    stats_ = [batch_means(b, indep) for b in blk]
    mean = np.stack([s[0] for s in stats_])
    se = np.stack([s[1] for s in stats_])
    nb = np.array([s[2] for s in stats_], dtype=np.int64)
    rho = np.stack([s[3] for s in stats_])
    tq = stats.t.ppf(0.5 + confidence / 2, np.maximum(nb - 1, 1))[:, None]
    se_real = np.stack([d.stderr.values if d.sizes["realization"] > 1 else np.full(d.sizes["exponent"], np.nan)
                        for d in per])
    # flag only correlations that are both large and beyond the estimate's own noise, ~1/sqrt(paths (blocks - 1))
    paths = np.maximum(nb // blocks, 1)
    noise = 3.0 / np.sqrt(paths * max(blocks - 1, 1))
    flagged = np.isfinite(rho) & (rho > AUTOCORRELATION_WARN) & (rho > noise[:, None])
    worst = float(np.max(rho[flagged])) if np.any(flagged) else np.nan
    if np.isfinite(worst):
        warnings.warn(f"consecutive block means are correlated (lag-1 autocorrelation up to {worst:.2f}): the "
                      "batch-means standard error is underestimated; use fewer, longer blocks (blocks=) or more "
                      "steps", RuntimeWarning, stacklevel=3)
    d0 = per[0]
    dims_pe = (parameter, "exponent")
    ds = xr.Dataset(
        {"mean_exponents": (dims_pe, mean), "stderr": (dims_pe, se),
         "ci_low": (dims_pe, mean - tq * se), "ci_high": (dims_pe, mean + tq * se),
         "n_batches": ((parameter,), nb), "block_autocorrelation": (dims_pe, rho),
         "stderr_realizations": (dims_pe, se_real),
         "exponents": ((parameter, "realization", "member", "exponent"), exps),
         "block_exponents": ((parameter, "realization", "member", "block", "exponent"), blk),
         "n_diverged": ((parameter,), np.array([int(d.diverged.sum()) for d in per], dtype=np.int64))},
        coords={parameter: g, "realization": d0.realization.values, "member": d0.member.values,
                "exponent": d0.exponent.values, "block": np.arange(1, blocks + 1),
                "block_end": ("block", d0.t_start + ends)},
    )
    units = d0.attrs["units"]
    rate = units_of("exponents", dt)
    for name, text in (("mean_exponents", "Lyapunov exponent (mean of the batch means)"),
                       ("stderr", "batch-means standard error of the exponent"),
                       ("ci_low", f"lower end of the {confidence:.0%} confidence interval"),
                       ("ci_high", f"upper end of the {confidence:.0%} confidence interval"),
                       ("stderr_realizations", "standard error from the realization means alone"),
                       ("block_exponents", "exponent over each time block"),
                       ("exponents", "Lyapunov exponent of each run")):
        ds[name].attrs.update(long_name=text, units=rate)
    ds["block_autocorrelation"].attrs.update(long_name="lag-1 autocorrelation of consecutive block exponents",
                                             units="1")
    ds["n_batches"].attrs["long_name"] = "number of batches (independent noise paths x time blocks)"
    ds["n_diverged"].attrs["long_name"] = "number of diverged runs"
    ds["block"].attrs["long_name"] = "time block index"
    ds["block_end"].attrs.update(long_name="absolute time step at which the block ends", units="steps")
    ds[parameter].attrs.setdefault("long_name", f"scanned parameter {parameter}")
    same, varying = _common_attrs(systems)
    ds.attrs.update(same)
    batches = ("(realization, member, block)" if indep else "(realization, block), members averaged within each "
               "(they share the noise path)")
    ds.attrs.update({
        "analysis": "lyapunov_scan", "parameter": parameter, "varying_attrs": ",".join(varying),
        "method": d0.attrs["method"], "units": units, "seed": d0.attrs["seed"], "t0": d0.attrs["t0"],
        "steps": d0.attrs["steps"], "transient": d0.attrs["transient"], "t_start": d0.attrs["t_start"],
        "qr_every": d0.attrs["qr_every"], "k": d0.attrs["k"], "realizations": d0.attrs["realizations"],
        "blocks": int(blocks), "confidence": float(confidence), "independent_noise": int(indep),
        "backend": d0.attrs["backend"],
        "tangent_start": d0.attrs["tangent_start"],
        "stderr_method": (f"batch means over {batches}: se = sd(batches) / sqrt(n_batches); confidence interval "
                          "mean +- t * se with Student t, n_batches - 1 degrees of freedom"),
        "reference": "Benettin et al. (1980); batch means: Flegal & Jones (2010), Ann. Statist. 38, 1034",
    })
    annotate(ds)
    ds[parameter].attrs.setdefault("units", "1")  # a parameter the label table does not know: dimensionless
    return ds


# ------------------------------------------------------------------------------------------------- zero crossing
def _crossings(x, y, direction):
    """Indices j with a sign change of y between x[j] and x[j+1] in the wanted direction."""
    s = np.sign(y)
    j = np.flatnonzero(np.isfinite(y[:-1]) & np.isfinite(y[1:]) & (s[:-1] != s[1:]) & (s[:-1] != 0))
    if direction == "up":
        j = j[y[j] < y[j + 1]]
    elif direction == "down":
        j = j[y[j] > y[j + 1]]
    return j


def _fieller(x, batches, centre, q):
    """Weighted line y = a + b (x − c) through the batch means and Fieller's interval for its root.

    ``batches`` (batch, value) are paired across the values (the same noise paths and blocks), so the covariance
    of the means is estimated from them, Σ = cov(batches) / n, and propagated exactly through the linear
    estimator, (a, b) = W ȳ ⇒ Cov(a, b) = W Σ Wᵀ: common random numbers make neighbouring values' errors
    strongly correlated, and treating them as independent would understate the error of the level a.
    """
    n = batches.shape[0]
    y = batches.mean(axis=0)
    sigma = np.atleast_2d(np.cov(batches, rowvar=False)) / n
    w = 1.0 / np.diag(sigma)
    A = np.column_stack([np.ones_like(x), x - centre])
    W = np.linalg.solve(A.T @ (A * w[:, None]), (A * w[:, None]).T)  # (2, value): the weighted estimator
    a, b = W @ y
    cov = W @ sigma @ W.T
    resid = y - (a + b * (x - centre))
    dof = x.size - 2
    chi2 = float(np.sum(w * resid ** 2) / dof) if dof > 0 else np.nan
    if np.isfinite(chi2) and chi2 > 1:
        cov = cov * chi2  # lack of fit (curvature): widen, never narrow
    vaa, vab, vbb = cov[0, 0], cov[0, 1], cov[1, 1]
    root = centre - a / b if b != 0 else np.nan
    qa = b * b - q * q * vbb
    qb = 2 * (a * b - q * q * vab)
    qc = a * a - q * q * vaa
    disc = qb * qb - 4 * qa * qc
    if qa > 0 and disc >= 0:
        u = np.sort([(-qb - np.sqrt(disc)) / (2 * qa), (-qb + np.sqrt(disc)) / (2 * qa)])
        lo, hi = centre + u[0], centre + u[1]
    else:
        lo = hi = np.nan  # the slope is not significantly non-zero: the confidence set is unbounded
    return {"root": root, "low": lo, "high": hi, "slope": b, "slope_se": np.sqrt(max(vbb, 0.0)), "chi2": chi2}


def _significant_bracket(x, y, s, nb, guess, y_below, confidence):
    """Nearest values below and above ``guess`` whose exponent differs from zero at the level, with the signs of the
    two sides (``y_below``'s sign below, the opposite above); NaN where there is none."""
    tq = stats.t.ppf(0.5 + confidence / 2, np.maximum(nb - 1, 1))
    sig = np.isfinite(y) & (np.abs(y) > tq * s)
    below = np.flatnonzero(sig & (x < guess) & (np.sign(y) == np.sign(y_below)))
    above = np.flatnonzero(sig & (x > guess) & (np.sign(y) == -np.sign(y_below)))
    return (float(x[below[-1]]) if below.size else np.nan), (float(x[above[0]]) if above.size else np.nan)


def exponent_root(make_system: Callable, grid, initial, steps, *, exponent=1, rounds=4, points=3, xtol=0.0,
                  direction="either", fit_points=5, confidence=0.95, parameter="parameter",
                  **scan_options) -> xr.Dataset:
    """Where a Lyapunov exponent crosses zero as the parameter moves, with a confidence interval.

    A grid scan (:func:`lyapunov_scan`) brackets the first sign change of λ_e (``exponent`` e = 1: the top
    exponent) between neighbouring grid values; each refinement round scans ``points`` new equally spaced values
    inside the current bracket (the same initial states and noise paths: common random numbers) and keeps the
    sub-bracket where the sign changes. Refinement stops after ``rounds`` rounds, when the bracket is narrower
    than ``xtol``, or when both bracket ends are within the confidence interval of zero (the resolution is then
    limited by the noise, not by the grid). The crossing p* is then estimated from the ``fit_points`` evaluated
    values nearest to it by a weighted least-squares line λ_e(p) ≈ a + b (p − c) (weights 1/se²; its covariance
    is inflated by the reduced χ² when the line fits worse than the errors say), with **Fieller's** confidence
    interval for the root −a/b (Fieller 1954, *J. R. Stat. Soc. B* 16, 175):

        { p : (a + b (p − c))² ≤ t² Var(a + b (p − c)) },

    bounded exactly when the slope is significantly non-zero. When it is not (a kink, e.g. where a maximum over
    directions changes branch), or when it would extend beyond the fitted values (extrapolating the line), the
    interval runs instead from the nearest evaluated value below the crossing to the nearest above whose exponents
    differ from zero at the level (model-free; it assumes a single crossing between them); when there are no such
    values either, an unbounded interval is NaN (the crossing is not resolved). The status says which.

    Parameters
    ----------
    make_system, grid, initial, steps
        As in :func:`lyapunov_scan`; ``grid`` must bracket the crossing.
    exponent : int, keyword-only
        Which exponent (1 = the largest); ``k`` of the scans is at least this. As are all the options below.
    rounds : int
        Maximum number of refinement rounds (≥ 0).
    points : int
        New values per round (≥ 1).
    xtol : float
        Stop refining when the bracket is narrower than this (≥ 0).
    direction : {"either", "up", "down"}
        Which sign changes count: any, − to + with increasing p, or + to −. The first (lowest p) one is taken;
        ``attrs["n_sign_changes"]`` says how many the initial grid had.
    fit_points : int
        Number of evaluated values nearest the crossing used for the line (≥ 3).
    confidence : float
        Level of the interval (0 < confidence < 1); t is the Student quantile with the smallest batch count − 1
        degrees of freedom.
    parameter : str
        Name of the parameter dimension.
    **scan_options
        Passed to :func:`lyapunov_scan` (``realizations``, ``blocks``, ``transient``, ``seed``, ``k``, ``backend``,
        ``executor`` …).

    Returns
    -------
    xarray.Dataset
        The merged scan of every evaluated value (:func:`lyapunov_scan`'s variables, ``parameter`` sorted
        ascending, ``round`` (parameter): 0 for the initial grid, then the refinement round), and scalars
        ``root``, ``root_low``, ``root_high`` (the crossing and its confidence interval; NaN when not found or
        not resolved), ``slope``, ``slope_stderr`` (dλ_e/dp at the crossing). Attrs: ``status`` (in words),
        ``root_interval`` ("Fieller", "significant bracket" or "none"),
        ``bracket_low``, ``bracket_high``, ``rounds_done``, ``n_sign_changes``, ``fit_chi2_reduced``,
        ``root_method``.

    Raises
    ------
    ValueError
        Bad options (``rounds``, ``points``, ``xtol``, ``direction``, ``fit_points``, ``exponent``).

    Warns
    -----
    RuntimeWarning
        When the grid has no sign change or the crossing is not resolved (root or interval NaN).

    Examples
    --------
    x ↦ a e^ξ x, ξ ~ N(0, 1), has λ = ln a: the crossing is at a = 1.

    >>> import numpy as np, rds, analysis
    >>> def growth(s, xi, p):
    ...     return (np.mod(p[0] * np.exp(xi[0]) * s[0], 1.0),)
    >>> def make(a):
    ...     return rds.RandomDynamicalSystem(growth, noise=rds.noise.Gaussian(1.0), variables=("x",), params=(a,))
    >>> ds = analysis.exponent_root(make, [0.5, 0.8, 1.3, 2.0], np.full(1, 0.3), 2000, rounds=2, backend="numpy")
    >>> bool(ds.root_low < 1.0 < ds.root_high), ds.attrs["status"].split(":")[0]
    (True, 'resolved')
    """
    exponent = integer(exponent, "exponent", 1)
    rounds = integer(rounds, "rounds", 0)
    points = integer(points, "points", 1)
    fit_points = integer(fit_points, "fit_points", 3)
    xtol = real(xtol, "xtol")
    if xtol < 0:
        raise ValueError(f"xtol must be >= 0, got {xtol}")
    if direction not in ("either", "up", "down"):
        raise ValueError(f"direction must be 'either', 'up' or 'down', got {direction!r}")
    confidence = real(confidence, "confidence")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    k = scan_options.pop("k", exponent)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < exponent:
        raise ValueError(f"k must be an integer >= exponent = {exponent}, got {k!r}")
    g = np.sort(_grid(grid))
    if g.size < 2:
        raise ValueError(f"grid must have at least 2 values to bracket a crossing, got {g.tolist()}")
    opts = dict(scan_options, k=k, parameter=parameter, confidence=confidence)

    def scan(values, rnd):
        part = lyapunov_scan(make_system, values, initial, steps, **opts)
        return part.assign_coords(round=(parameter, np.full(len(values), rnd, dtype=np.int64)))

    ds = scan(g, 0)
    sel = {"exponent": exponent}
    y0 = ds.mean_exponents.sel(sel).values
    first = _crossings(g, y0, direction)
    n_changes = int(first.size)
    status, bracket, done = "", (np.nan, np.nan), 0
    if n_changes == 0:
        status = (f"no sign change of exponent {exponent} over the grid [{g[0]:g}, {g[-1]:g}] "
                  f"(direction {direction!r}): widen the grid")
    else:
        bracket = (float(g[first[0]]), float(g[first[0] + 1]))
        for rnd in range(1, rounds + 1):
            x = ds[parameter].values
            y = ds.mean_exponents.sel(sel).values
            s = ds.stderr.sel(sel).values
            i0, i1 = np.searchsorted(x, bracket)
            tq = stats.t.ppf(0.5 + confidence / 2, max(int(ds.n_batches.min()) - 1, 1))
            if bracket[1] - bracket[0] <= xtol:
                break
            if abs(y[i0]) <= tq * s[i0] and abs(y[i1]) <= tq * s[i1]:
                break  # both ends indistinguishable from zero: refining further only follows the noise
            new = np.linspace(bracket[0], bracket[1], points + 2)[1:-1]
            ds = xr.concat([ds, scan(new, rnd)], dim=parameter, data_vars="minimal", coords="minimal",
                           compat="override", join="override").sortby(parameter)
            done = rnd
            x = ds[parameter].values
            y = ds.mean_exponents.sel(sel).values
            lo, hi = np.searchsorted(x, bracket)
            j = _crossings(x[lo:hi + 1], y[lo:hi + 1], direction)
            if j.size == 0:  # noise moved the sign change out of the bracket's interior: keep the bracket
                break
            bracket = (float(x[lo + j[0]]), float(x[lo + j[0] + 1]))
    return _root_dataset(ds, bracket, status, sel, parameter=parameter, fit_points=fit_points,
                         confidence=confidence, done=done, n_changes=n_changes)


def _root_dataset(ds, bracket, status, sel, *, parameter, fit_points, confidence, done, n_changes):
    res = {"root": np.nan, "low": np.nan, "high": np.nan, "slope": np.nan, "slope_se": np.nan, "chi2": np.nan}
    interval = "none"
    if not status:
        x = ds[parameter].values
        y = ds.mean_exponents.sel(sel).values
        s = ds.stderr.sel(sel).values
        ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
        i0 = np.searchsorted(x, bracket[0])
        y0, y1 = y[i0], y[i0 + 1]
        guess = bracket[0] + (bracket[1] - bracket[0]) * y0 / (y0 - y1)  # linear interpolation in the bracket
        idx = np.flatnonzero(ok)
        idx = np.sort(idx[np.argsort(np.abs(x[idx] - guess), kind="stable")[:fit_points]])
        indep = bool(ds.attrs["independent_noise"])
        bat = np.empty((0, 0))
        if idx.size >= 3:
            blk = ds.block_exponents.sel(sel).values[idx]  # (value, realization, member, block)
            bat = np.stack([_paths(b[..., None], indep)[..., 0].ravel() for b in blk], axis=1)  # (batch, value)
            bat = bat[np.all(np.isfinite(bat), axis=1)]
        if idx.size < 3 or bat.shape[0] < 2:
            status = ("not resolved: fewer than 3 values with a positive standard error near the crossing "
                      "(a deterministic system needs blocks >= 2)")
        else:
            q = float(stats.t.ppf(0.5 + confidence / 2, bat.shape[0] - 1))
            res = _fieller(x[idx], bat, guess, q)
            lo_b, hi_b = _significant_bracket(x, y, s, ds.n_batches.values, guess, y0, confidence)
            if not np.isfinite(res["low"]) and np.isfinite(lo_b) and np.isfinite(hi_b):
                res.update(root=guess, low=lo_b, high=hi_b)
                interval = "significant bracket"
                status = (f"resolved by bracketing: the line through the values nearest the crossing does not "
                          f"determine its slope (a kink?), so the interval runs from the nearest value below the "
                          f"crossing to the nearest above whose exponents differ from zero at the "
                          f"{confidence:.0%} level, [{lo_b:g}, {hi_b:g}] (model-free, assumes one crossing between "
                          "them); the root is interpolated in the final bracket")
            elif not np.isfinite(res["low"]):
                status = ("not resolved: the slope of the exponent is not significantly non-zero near the crossing "
                          "(the confidence set is unbounded) and no significantly signed values bracket it; use "
                          "more steps or realizations")
            elif (res["low"] < x[idx[0]] or res["high"] > x[idx[-1]]) and np.isfinite(lo_b) and np.isfinite(hi_b):
                res.update(low=lo_b, high=hi_b)  # the line's interval would extrapolate: the data bound it instead
                interval = "significant bracket"
                status = (f"resolved by bracketing: the line's interval extends beyond the fitted values, so the "
                          f"interval runs from the nearest value below the crossing to the nearest above whose "
                          f"exponents differ from zero at the {confidence:.0%} level, [{lo_b:g}, {hi_b:g}] "
                          "(model-free, assumes one crossing between them); the root is the line's")
            else:
                interval = "Fieller"
                status = (f"resolved: {confidence:.0%} Fieller interval from a weighted line through {idx.size} "
                          f"values in [{x[idx[0]]:g}, {x[idx[-1]]:g}]")
                if res["low"] < x[idx[0]] or res["high"] > x[idx[-1]]:
                    status += " (the interval extends beyond the fitted values: extrapolated)"
    if not status.startswith("resolved"):
        warnings.warn(f"exponent_root: {status}", RuntimeWarning, stacklevel=3)
    out = ds.assign(root=res["root"], root_low=res["low"], root_high=res["high"], slope=res["slope"],
                    slope_stderr=res["slope_se"])
    out["root"].attrs["long_name"] = f"parameter value where exponent {sel['exponent']} crosses zero"
    out["root_low"].attrs["long_name"] = f"lower end of the {confidence:.0%} confidence interval of the crossing"
    out["root_high"].attrs["long_name"] = f"upper end of the {confidence:.0%} confidence interval of the crossing"
    out["slope"].attrs["long_name"] = "slope of the exponent against the parameter at the crossing (fitted line)"
    out["slope_stderr"].attrs["long_name"] = "standard error of the slope"
    out["round"].attrs["long_name"] = "refinement round that evaluated the value (0: the initial grid)"
    punits = out[parameter].attrs.get("units", "1")
    rate = units_of("exponents", out.attrs.get("dt", 1.0))
    for name in ("root", "root_low", "root_high"):
        out[name].attrs["units"] = punits
    for name in ("slope", "slope_stderr"):
        out[name].attrs["units"] = rate if punits == "1" else f"({rate})/({punits})"
    out.attrs.update({
        "analysis": "exponent_root", "root_exponent": int(sel["exponent"]), "status": status,
        "bracket_low": float(bracket[0]), "bracket_high": float(bracket[1]), "rounds_done": int(done),
        "n_sign_changes": n_changes, "fit_chi2_reduced": float(res["chi2"]), "confidence": float(confidence),
        "root_interval": interval,
        "root_method": ("bracketing on the grid, refined by rounds of equally spaced scans inside the bracket; "
                        "weighted least-squares line through the values nearest the crossing (covariance inflated "
                        "by the reduced chi^2 when > 1); Fieller (1954) interval for the root; when the line does not "
                        "determine the slope, the interval between the nearest values on either side whose "
                        "exponents differ significantly from zero"),
    })
    return out
