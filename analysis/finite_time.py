"""Finite-time Lyapunov exponents: their distribution over noise paths, variance growth and generalised exponents.

For a tangent vector v and a horizon of n steps (duration T = n dt) the **finite-time exponent** along the noise path
ω is

    λ_n(ω) = (1 / T) ln ‖Dφⁿ(θ, ω) v‖ ,

which tends to the top Lyapunov exponent λ₁ for almost every ω; its fluctuations are a large-deviation problem
(Ellis 1985; for products of random matrices Crisanti, Paladin & Vulpiani 1993, *Products of Random Matrices in
Statistical Physics*, Springer, ch. 3). Their variance shrinks like Var λ_n ≈ Δ / T, Δ = lim T·Var λ_n (the
"diffusion coefficient" of ln ‖Dφⁿ v‖, whose variance grows like Δ T), and the **generalised Lyapunov exponents**

    L(q) = lim_{n→∞} (1 / T) ln E ‖Dφⁿ v‖^q       (Benzi, Paladin, Parisi & Vulpiani 1985, J. Phys. A 18, 2157)

measure the rare paths: L(0) = 0, L'(0) = λ₁, L''(0) = Δ, and L(q) / q ≥ λ₁ grows with q. For i.i.d. scalar maps
x ↦ a_t x the limit is reached at every n: L(q) = ln E|a|^q.

Estimation bias. L(q) is estimated at each horizon by the log of a sample mean,

    L̂_n(q) = (1 / T) ln ( (1/N) Σ_i ‖Dφⁿ v‖_i^q ) ,

which is biased low (Jensen): to first order the bias is −(E Y² / (E Y)² − 1) / (2 N T) with Y = ‖Dφⁿ v‖^q, i.e.
−(e^{T (L(2q) − 2 L(q))} − 1) / (2 N T), which grows exponentially with the horizon: for large T the mean is carried
by a few rare samples and N must grow like e^{T (L(2q) − 2 L(q))}. The result reports the jackknife estimate of the
bias (Quenouille 1956; leaving out one independent group: a noise path, or a member with independent noise) and the
jackknife standard error, and the effective number of samples N_eff = (Σ Y)² / Σ Y² that carry the mean. A sample
cannot show the rare paths it has not drawn (its N_eff and jackknife then look fine while the estimate is far too
low), so an estimate is flagged reliable only when also the paths that carry E Y were drawn: under the parabolic
(Gaussian) approximation of L(q) the mean of Y is carried by log-norms near μ + q s² (μ, s the sample mean and
standard deviation of ln ‖Dφⁿ v‖), beyond which a fraction Φ̄(|q| s) of the paths lie; ``reliable`` requires
N_eff ≥ 10 and N Φ̄(|q| s) ≥ 10.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import norm

from analysis.lyapunov import generic_tangents, lyapunov_spectrum
from rds._checks import integer, integer_times
from rds.labels import annotate, units_of

__all__ = ["finite_time_exponents", "generalized_exponents"]

#: Effective number of samples below which a generalised-exponent estimate is flagged unreliable.
MIN_EFFECTIVE_SAMPLES = 10.0


def generalized_exponents(log_norms, q, duration, groups=None):
    """Generalised exponents L̂(q) = (1/T) ln mean(‖·‖^q) of log-norm samples, with jackknife bias and error.

    Parameters
    ----------
    log_norms : array_like (sample,)
        ln ‖Dφⁿ v‖ of independent (or grouped) samples at one horizon; NaN samples are dropped.
    q : array_like (q,)
        Moments.
    duration : float
        T = n dt (> 0).
    groups : array_like of int (sample,) or None
        Independent groups for the jackknife (e.g. the noise path of each sample); None: every sample its own.

    Returns
    -------
    dict of ndarray (q,)
        ``estimate``, ``bias`` (jackknife estimate of E L̂ − L), ``stderr`` (jackknife), ``effective_samples``
        N_eff = (Σ Y)² / Σ Y², Y = ‖·‖^q; ``n_groups`` (int).

    Examples
    --------
    Log-norms of a two-valued product: L(q) = ln E|a|^q exactly; the sample gives it up to its error.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> n = 20
    >>> N = rng.binomial(n, 0.5, 4000)
    >>> out = generalized_exponents(N * np.log(2.0) + (n - N) * np.log(0.5), [1.0], float(n))
    >>> exact = np.log(0.5 * 2.0 + 0.5 * 0.5)
    >>> bool(abs(out["estimate"][0] - out["bias"][0] - exact) < 4 * out["stderr"][0])
    True
    """
    ln = np.asarray(log_norms, dtype=float).ravel()
    qv = np.atleast_1d(np.asarray(q, dtype=float))
    g = np.arange(ln.size) if groups is None else np.asarray(groups).ravel()
    ok = np.isfinite(ln)
    ln, g = ln[ok], g[ok]
    _, g = np.unique(g, return_inverse=True)
    G = int(g.max()) + 1 if g.size else 0
    nanq = np.full(qv.size, np.nan)
    if ln.size == 0:
        return {"estimate": nanq, "bias": nanq.copy(), "stderr": nanq.copy(), "effective_samples": nanq.copy(),
                "n_groups": 0}
    z = qv[:, None] * ln[None, :]  # (q, sample): ln Y
    S = logsumexp(z, axis=1)
    est = (S - np.log(ln.size)) / duration
    ess = np.exp(2 * S - logsumexp(2 * z, axis=1))
    bias = se = nanq.copy()
    if G >= 2:
        Sg = np.stack([logsumexp(np.where(g[None, :] == j, z, -np.inf), axis=1) for j in range(G)], axis=1)
        cnt = np.bincount(g, minlength=G)
        with np.errstate(divide="ignore", invalid="ignore"):
            rest = S[:, None] + np.log1p(-np.exp(np.minimum(Sg - S[:, None], 0.0)))  # ln Σ over the other groups
            loo = (rest - np.log(ln.size - cnt)[None, :]) / duration  # leave-one-group-out estimates
            mloo = loo.mean(axis=1)
            bias = (G - 1) * (mloo - est)
            se = np.sqrt((G - 1) / G * np.sum((loo - mloo[:, None]) ** 2, axis=1))
    return {"estimate": est, "bias": bias, "stderr": se, "effective_samples": ess, "n_groups": G}


def finite_time_exponents(system, initial, horizons, *, q=(-2.0, -1.0, 1.0, 2.0), k=1, realizations=None,
                          transient=0, seed=0, qr_every=1, tangent=None, backend=None, executor=None,
                          chunk_size=None, t0=0, progress=None, members=None, sample_seed=None) -> xr.Dataset:
    """Distribution of the n-step (finite-time) Lyapunov exponents over noise paths, and generalised exponents.

    After ``transient`` steps, ``k`` tangent vectors are propagated (:func:`analysis.lyapunov_spectrum`, QR
    method) and the finite-time exponents are recorded at each horizon n; the first one is λ_n = ln‖Dφⁿ v‖ / (n dt)
    of the first tangent vector v (the QR does not change the first vector's direction). Every (realisation,
    member) pair is one sample of the distribution; see the module docstring for the variance growth, the
    generalised exponents L(q) and their bias.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        Either map form.
    initial : array_like (member, var) or (var,), rds.regions.Box, or callable
        Initial states at ``t0`` (``members``, ``sample_seed`` as in :func:`analysis.lyapunov_spectrum`).
    horizons : array_like of int
        Horizons n ≥ 1 in steps after the transient (increasing after sorting, distinct).
    q : array_like of float, keyword-only
        Moments of the generalised exponents. As are all the options below.
    k : int
        Number of finite-time exponents per sample (the generalised exponents use the first).
    realizations : int or None
        Independent noise paths (None: 100 for common noise, 1 with independent noise per member — then every
        member is an independent sample — or without noise, where the samples are the initial states).
    tangent : array_like (var, k) or (member, var, k), or None
        Initial tangent vectors; the first is v (None: k random orthonormal vectors drawn from ``seed``,
        :func:`analysis.lyapunov.generic_tangents` — a generic v, as the limit L(q) needs).
    transient, seed, qr_every, backend, executor, chunk_size, t0, progress, members, sample_seed
        As in :func:`analysis.lyapunov_spectrum`.

    Returns
    -------
    xarray.Dataset
        ``exponents`` (realization, member, horizon, exponent): λ_n per unit time; ``mean``, ``variance``
        (horizon, exponent) over the samples; ``variance_rate`` (horizon, exponent) = T·Var λ_n, the growth rate
        of Var ln‖Dφⁿ v‖ (tends to the diffusion coefficient Δ); ``generalized`` (horizon, q): L̂_n(q);
        ``generalized_bias``, ``generalized_stderr`` (horizon, q): jackknife bias and error (subtract the bias for
        a first-order corrected value); ``effective_samples`` (horizon, q); ``reliable`` (horizon, q): N_eff ≥ 10
        and the paths that carry the mean were drawn (module docstring); ``n_samples`` (horizon). Coordinates
        ``horizon`` (steps), ``duration`` (= n dt), ``q``.
        Attrs: the system, the settings, ``jackknife_groups``, ``bias``.

    Raises
    ------
    ValueError
        Bad ``horizons`` or ``q``; the errors of :func:`analysis.lyapunov_spectrum`.

    Examples
    --------
    x ↦ a_t x with a_t = 2 or 1/2 with probability 1/2 each: L(q) = ln((2^q + 2^-q) / 2).

    >>> import numpy as np, rds, analysis
    >>> def two_valued(s, xi, p):
    ...     return (np.mod(np.where(xi[0] > 0.0, 2.0, 0.5) * s[0], 1.0),)
    >>> sys = rds.RandomDynamicalSystem(two_valued, noise=rds.noise.Gaussian(1.0), variables=("x",),
    ...                                 common_noise=False)
    >>> ds = analysis.finite_time_exponents(sys, np.full((2000, 1), 0.3), [5, 10], q=[1.0], backend="numpy")
    >>> corrected = ds.generalized - ds.generalized_bias
    >>> exact = np.log((2.0 + 0.5) / 2)
    >>> bool(np.all(np.abs(corrected - exact) < 4 * ds.generalized_stderr))
    True
    """
    hz = integer_times(horizons, "horizons")
    if hz.size == 0 or hz[0] < 1:
        raise ValueError(f"horizons must be steps n >= 1, got {np.asarray(horizons).tolist()}")
    try:
        qv = np.atleast_1d(np.asarray(q, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"q must be a 1-D array of real moments, got {q!r}") from None
    if qv.ndim != 1 or qv.size == 0 or not np.all(np.isfinite(qv)) or np.unique(qv).size != qv.size:
        raise ValueError(f"q must be a non-empty 1-D array of distinct finite moments, got {q!r}")
    transient = integer(transient, "transient", 0)
    if realizations is None:
        deterministic = system.noise.quenched or int(np.prod(system.noise.shape)) == 0
        realizations = 1 if (deterministic or system.independent_noise) else 100
    steps = transient + int(hz[-1])
    start = "given" if tangent is not None else "random orthonormal (from seed)"
    if tangent is None:
        tangent = generic_tangents(system.nvar, k, seed)
    ds = lyapunov_spectrum(system, initial, steps, k=k, realizations=realizations, transient=transient, seed=seed,
                           qr_every=qr_every, tangent=tangent, backend=backend, executor=executor,
                           chunk_size=chunk_size, t0=t0, progress=progress, members=members,
                           sample_seed=sample_seed, history=hz)
    lam = ds.history.values  # (realization, member, horizon, exponent)
    R, M = lam.shape[:2]
    dur = hz * float(system.dt)
    if system.independent_noise or R == 1:
        groups = np.arange(R * M).reshape(R, M)
        gname = ("each (realization, member) sample (independent noise per member)" if system.independent_noise
                 else "each member (one noise path: the samples are the initial states)")
    else:
        groups = np.repeat(np.arange(R)[:, None], M, axis=1)
        gname = "each noise path (realization): members share the noise"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN horizons stay NaN
        flat = lam.reshape(R * M, hz.size, -1)
        mean = np.nanmean(flat, axis=0)
        var = np.nanvar(flat, axis=0, ddof=1)
    gen = [generalized_exponents(lam[:, :, i, 0] * dur[i], qv, dur[i], groups) for i in range(hz.size)]
    pick = lambda key: np.stack([g[key] for g in gen])  # noqa: E731
    nsamp = np.sum(np.isfinite(flat[:, :, 0]), axis=0)
    spread = np.sqrt(var[:, 0]) * dur  # sd of ln|D phi^n v| (horizon,)
    drawn = nsamp[:, None] * norm.sf(np.abs(qv)[None, :] * spread[:, None])  # paths beyond the tilted mean
    reliable = (pick("effective_samples") >= MIN_EFFECTIVE_SAMPLES) & (drawn >= MIN_EFFECTIVE_SAMPLES)
    out = xr.Dataset(
        {"exponents": (("realization", "member", "horizon", "exponent"), lam),
         "mean": (("horizon", "exponent"), mean), "variance": (("horizon", "exponent"), var),
         "variance_rate": (("horizon", "exponent"), var * dur[:, None]),
         "generalized": (("horizon", "q"), pick("estimate")),
         "generalized_bias": (("horizon", "q"), pick("bias")),
         "generalized_stderr": (("horizon", "q"), pick("stderr")),
         "effective_samples": (("horizon", "q"), pick("effective_samples")),
         "reliable": (("horizon", "q"), reliable),
         "n_samples": (("horizon",), nsamp.astype(np.int64))},
        coords={"realization": ds.realization.values, "member": ds.member.values, "horizon": hz,
                "duration": ("horizon", dur), "exponent": ds.exponent.values, "q": qv},
    )
    units = ds.attrs["units"]
    rate = units_of("exponents", system.dt)
    for name in ("exponents", "mean", "generalized", "generalized_bias", "generalized_stderr", "variance_rate"):
        out[name].attrs["units"] = rate
    out["variance"].attrs.update(long_name="variance of the finite-time exponent over the samples",
                                 units=f"({rate})^2")
    out["mean"].attrs["long_name"] = "mean of the finite-time exponent over the samples"
    out["effective_samples"].attrs["units"] = "1"
    out["n_samples"].attrs["long_name"] = "number of (realization, member) samples that did not diverge"
    out["q"].attrs.update(long_name="moment q of the generalized exponent", units="1")
    out["duration"].attrs["units"] = "steps" if float(system.dt) == 1.0 else "time"
    out["horizon"].attrs["units"] = "steps"
    out["exponents"].attrs["long_name"] = "finite-time Lyapunov exponent over the horizon"
    out["variance_rate"].attrs["long_name"] = "duration * variance of the finite-time exponent (-> diffusion coef.)"
    out["generalized"].attrs["long_name"] = "generalized Lyapunov exponent L(q) estimated at the horizon"
    out["generalized_bias"].attrs["long_name"] = "jackknife estimate of the bias of `generalized` (subtract it)"
    out["generalized_stderr"].attrs["long_name"] = "jackknife standard error of `generalized`"
    out["effective_samples"].attrs["long_name"] = "(sum Y)^2 / sum Y^2, Y = |D phi^n v|^q: samples carrying the mean"
    out["reliable"].attrs["long_name"] = (f"effective_samples >= {MIN_EFFECTIVE_SAMPLES:g} and n_samples * "
                                          f"sf(|q| sd(ln norm)) >= {MIN_EFFECTIVE_SAMPLES:g}")
    out["horizon"].attrs["long_name"] = "horizon n (steps after the transient)"
    out["duration"].attrs["long_name"] = "horizon in time units, n * dt"
    out.attrs.update(system.describe())
    out.attrs.update({k_: ds.attrs[k_] for k_ in ("seed", "t0", "transient", "t_start", "qr_every", "k",
                                                   "realizations", "backend", "method")})
    out.attrs["tangent_start"] = start
    out.attrs.update({
        "analysis": "finite_time_exponents", "units": units, "n_diverged": int(ds.diverged.sum()),
        "jackknife_groups": gname,
        "bias": ("L(q) is estimated by (1/T) ln of a sample mean: biased low (Jensen), to first order by "
                 "-(exp(T (L(2q) - 2 L(q))) - 1) / (2 N T); `generalized_bias` is the jackknife estimate over the "
                 "independent groups; `reliable` is False where fewer than 10 effective samples carry the mean or "
                 "where the paths that carry it (Gaussian approximation) were not drawn"),
        "equations": "lambda_n = ln|D phi^n v| / (n dt); L(q) = lim (1/T) ln E|D phi^n v|^q",
        "reference": ("Benzi, Paladin, Parisi & Vulpiani (1985), J. Phys. A 18, 2157; Crisanti, Paladin & Vulpiani "
                      "(1993), Products of Random Matrices in Statistical Physics, Springer; Quenouille (1956)"),
    })
    return annotate(out)
