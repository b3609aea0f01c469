"""Finite-time pullback attractors and their diagnostics (Sato et al. 2022, Fig. 4 and App. C).

The pullback attractor A(t, ω) of a random dynamical system (θ, φ) attracts every bounded set B in the pullback
sense, lim_{τ→∞} dist(φ(τ, θ_{t−τ}ω) B, A(t, ω)) = 0 (eq. C.1, Hausdorff semi-distance). For a finite pullback
time τ the image

    Ã_τ(t, ω) = φ(τ, θ_{t−τ}ω) B                                                         (eq. C.2)

— the set B started at the absolute time t − τ and evolved to t under one noise path ω — is the *finite-time
pullback attractor* (τ-pullback attractor). Every member of B and every τ sees the same noise ξ_s at each absolute
time s: the core's noise paths are functions of (seed, realization, absolute time), so
``system.evolve(B, τ, t0=t − τ, seed=seed, realization=realization)`` replays exactly the segment
[t − τ, t) of one path and nothing is re-drawn.

Cost: each τ is a separate run from t − τ (the sets for different τ start at different times, so no run can be
shared), hence Σ_τ τ steps per member in total. This is inherent to the pullback construction; it is the forward
run from one start time that is cheap, and that gives a different object (the forward image, not the pullback).

:func:`pullback_diagnostics` works for any system: the spread, mean pairwise distance and diameter of each set,
and the Hausdorff distance between the sets of successive τ (which goes to 0 as Ã_τ converges to A(t, ω)). For the
Fukumizu–Amari network only (:func:`fukumizu_amari_theta`: the result says it comes from that model), it also
measures how far each member is from the degenerate subspaces M_w = {w1 = w2} (eq. 17) and
M_wv = {w1 = w2, v1 = v2} (eq. 18), and from the optimal set θ* (eq. 9) modulo the symmetries of the network.

Reference: Sato, Tsutsui, Fujiwara, *Noise-induced degeneration in online learning*, Physica D 430 (2022) 133095.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from rds._checks import integer, nonnegative
from rds.labels import annotate
from rds.regions import Box
from rds.sampling import initial_states
from rds.symmetry import canonical, orbit

__all__ = ["pullback_attractor", "pullback_diagnostics", "hausdorff_distance", "sample_initial",
           "network_distance", "fukumizu_amari_theta"]

_THETA = ("w1", "w2", "v1", "v2")
_PQRS = ("p", "q", "r", "s")
# The models whose sets are the Fukumizu–Amari network (Sato et al. 2022), with the variables they describe it in.
_FA_MODELS = {"fukumizu_amari": _THETA, "fukumizu_amari_pqrs": _PQRS}
# soft_committee(inputs=1, hidden=2, tanh) is the FA model when its teacher is T(x) = 2 tanh(x) - tanh(4x) (eq. 8)
_FA_TEACHER = (1.0, 4.0, 2.0, -1.0)  # (w*1, w*2, v*1, v*2)


# ---------------------------------------------------------------------------------------------------------------
# input handling

def _check_taus(taus) -> np.ndarray:
    arr = np.asarray(taus)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"taus must be a non-empty 1-D sequence of pullback times, got shape {np.shape(taus)}")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"taus must be integers (numbers of steps), got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TypeError(f"taus must be integers (numbers of steps), got {arr.tolist()}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"taus must be >= 0, got {arr.tolist()}")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"taus must be sorted strictly increasing (no repeats), got {arr.tolist()}")
    return arr


_EQUATIONS = ("Sato, Tsutsui & Fujiwara, Physica D 430 (2022) 133095, eq. C.2: "
              "A_tau(t, omega) = phi(tau, theta_{t-tau} omega) B; Fig. 4")


def sample_initial(sampler, variables, members, *, sample_seed=0):
    """Draw the initial set B from a sampler.

    Parameters
    ----------
    sampler : rds.regions.Box or callable
        A :class:`rds.regions.Box` with finite bounds on *every* variable (uniform sampling in the box, each
        coordinate in ``(low, high]``), or a callable ``sampler(rng, members) -> array (members, var)`` given a
        ``numpy.random.Generator`` (:mod:`rds.sampling`).
    variables : sequence of str
        The system's variables (the column order of the result).
    members : int
        Number of members (≥ 1).
    sample_seed : int
        Seed of the generator :func:`rds.sampling.sampler_rng` (independent of the noise seed of the dynamics).

    Returns
    -------
    ndarray, shape (members, var)

    Examples
    --------
    >>> from rds.regions import Box
    >>> box = Box([-1] * 4, [1] * 4, variables=("w1", "w2", "v1", "v2"))
    >>> sample_initial(box, ("w1", "w2", "v1", "v2"), 5, sample_seed=1).shape
    (5, 4)
    """
    variables = tuple(variables)
    if isinstance(sampler, Box) or (callable(sampler) and not isinstance(sampler, np.ndarray)):
        return initial_states(sampler, variables, members=integer(members, "members", 1), sample_seed=sample_seed)[0]
    raise TypeError(f"initial must be an array (member, var), an rds.regions.Box or a callable sampler, "
                    f"got {type(sampler).__name__}")


def _initial_set(system, initial, members, sample_seed):
    """(B, description) with B of shape (member, var), validated (:func:`rds.sampling.initial_states`)."""
    return initial_states(initial, system.variables, members=members, sample_seed=sample_seed, single=False)


# ---------------------------------------------------------------------------------------------------------------
# the analysis

def pullback_attractor(system, initial, taus, *, t=0, seed=0, realization=0, members=None, sample_seed=None,
                       backend=None, executor=None, chunk_size=None, progress=None) -> xr.Dataset:
    """Finite-time pullback attractors Ã_τ(t, ω) = φ(τ, θ_{t−τ}ω) B for several pullback times τ (eq. C.2).

    Each τ is one run of the whole set B from the absolute time t − τ to t under the noise path
    ω = (seed, realization). Every member and every τ uses the same ξ_s at each absolute time s (replayed, never
    re-drawn), so the sets for different τ are pullback images of one random dynamical system, and
    Ã_{τ+s}(t) = φ(s, θ_{t−s}ω) Ã_τ(t − s) holds (the cocycle property). Cost: Σ_τ τ steps per member, inherent
    to pullback (the start time changes with τ).

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        E.g. ``rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)``.
    initial : array_like (member, var), rds.regions.Box or callable
        The bounded set B: an array of initial conditions, or a sampler (a Box with finite bounds on every
        variable, sampled uniformly, or ``sampler(rng, members) -> (members, var)``), which needs ``members``.
        Must be finite and non-empty.
    taus : sequence of int
        Pullback times τ ≥ 0, strictly increasing. τ = 0 returns B itself.
    t : int
        The absolute time at which the sets are observed (the runs start at t − τ, possibly negative).
    seed, realization : int
        The noise path ω (common to all members when ``system.common_noise``, the RDS picture).
    members : int or None
        Number of members to draw when ``initial`` is a sampler (must match the rows of an array if given).
    sample_seed : int or None
        Seed for sampling B (:func:`rds.sampling.sampler_rng`, a stream apart from the noise); None: ``seed``.
    backend, executor, chunk_size, progress
        Passed to :meth:`rds.RandomDynamicalSystem.evolve`; the result does not depend on them (up to ~1e-12
        between the NumPy and Numba backends).

    Returns
    -------
    xarray.Dataset
        ``state`` (tau, member, var): Ã_τ(t, ω), member m started from B[m] at time t − τ;
        ``initial`` (member, var): B; ``diverged`` (tau, member): member became non-finite (its state is NaN);
        ``n_diverged`` (tau). Coordinates ``tau``, ``start_time`` (tau) = t − τ, ``member``, ``var``. Attrs:
        ``system.describe()`` plus ``t``, ``seed``, ``realization``, ``sigma2``, ``eta`` (when the model has
        them), ``initial_set``, ``sample_seed``, ``backend``, ``member_steps`` (= members · Σ τ), method and
        equation references.

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> box = rds.regions.Box([-1] * 4, [1] * 4, variables=fa.variables)
    >>> ds = analysis.pullback_attractor(fa, box, taus=[0, 10, 100], members=50, backend="numpy")
    >>> ds.state.dims, ds.sizes["tau"]
    (('tau', 'member', 'var'), 3)
    >>> bool(np.array_equal(ds.state.sel(tau=0), ds.initial))
    True
    """
    sample_seed = seed if sample_seed is None else sample_seed
    B, desc = _initial_set(system, initial, members, sample_seed)
    taus = _check_taus(taus)
    t = integer(t, "t")
    from rds._checks import time_window
    time_window(t - int(taus[-1]), int(taus[-1]), "t - taus[-1]", "taus[-1]")  # start times stay int64
    seed = integer(seed, "seed", 0)
    realization = integer(realization, "realization", 0)
    M = B.shape[0]
    states, backends = _pullback_runs(system, B, taus, t, dict(seed=seed, realization=realization, backend=backend,
                                                                executor=executor, chunk_size=chunk_size,
                                                                progress=progress))
    diverged = ~np.all(np.isfinite(states), axis=-1)
    ds = xr.Dataset(
        {"state": (("tau", "member", "var"), states),
         "initial": (("member", "var"), B),
         "diverged": (("tau", "member"), diverged),
         "n_diverged": (("tau",), diverged.sum(axis=1).astype(np.int64))},
        coords={"tau": taus, "start_time": ("tau", (t - taus).astype(np.int64)), "member": np.arange(M),
                "var": list(system.variables)},
    )
    attrs = dict(system.describe())
    if hasattr(system.noise, "sigma2"):
        attrs["sigma2"] = float(system.noise.sigma2)
    if "param_eta" in attrs:
        attrs["eta"] = attrs["param_eta"]
    attrs.update({
        "analysis": "pullback_attractor",
        "method": "finite-time pullback attractor: B evolved from t - tau to t under one shared noise path "
                  "(replayed by absolute time); one run per tau, cost members * sum(tau)",
        "equations": _EQUATIONS, "equation": _EQUATIONS,  # "equation": former name, kept
        "t": t, "seed": seed, "realization": realization, "initial_set": desc, "sample_seed": int(sample_seed),
        "members": int(M), "backend": ",".join(sorted(backends)) or "none",
        "member_steps": int(M) * int(taus.sum()),
    })
    ds.attrs.update(attrs)
    ds["state"].attrs["long_name"] = "finite-time pullback attractor phi(tau, theta_{t-tau} omega) B"
    ds["initial"].attrs["long_name"] = "initial set B"
    ds["tau"].attrs["long_name"] = "pullback time tau (steps)"
    ds["start_time"].attrs["long_name"] = "absolute start time t - tau"
    return annotate(ds)  # long_name / units from rds.labels


def _pullback_runs(system, B, taus, t, run):
    """One run of B per τ, from t − τ to t on the same noise path: states (tau, member, var), backends used."""
    states = np.empty((taus.size, B.shape[0], system.nvar))
    backends = set()
    for k, tau in enumerate(taus):
        if tau == 0:
            states[k] = B
            continue
        out = system.run(B, int(tau), t0=int(t - tau), **run)
        states[k] = out["state"]
        backends.add(out.backend)  # what ran
    return states, backends


# ---------------------------------------------------------------------------------------------------------------
# diagnostics

def hausdorff_distance(a, b, *, modulo_symmetry=False):
    """Hausdorff distance d_H(A, B) = max(sup_a inf_b |a − b|, sup_b inf_a |a − b|) between two finite sets.

    Uses ``scipy.spatial.cKDTree`` (O(M log M); fine for 10⁵ points). Non-finite rows are dropped.

    Parameters
    ----------
    a : array_like, shape (Ma, d)
    b : array_like, shape (Mb, d)
    modulo_symmetry : bool
        Use the quotient metric min_g |a − g b| over the neuron swaps and sign flips (rds.symmetry; d = 2N, rows
        (w1..wN, v1..vN)), so a set and its symmetric image are at distance 0.

    Returns
    -------
    float
        NaN if either set has no finite row.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> hausdorff_distance(a, a + [0.0, 0.25])
    0.25
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must be 2-D with the same number of columns, got {a.shape} and {b.shape}")
    a = a[np.all(np.isfinite(a), axis=1)]
    b = b[np.all(np.isfinite(b), axis=1)]
    if a.shape[0] == 0 or b.shape[0] == 0:
        return float("nan")
    if modulo_symmetry:
        # the orbit of B is symmetric under the group, so inf_{b,g} |a - g b| is a query against orbit(B)
        ob = orbit(b).reshape(-1, b.shape[1])
        oa = orbit(a).reshape(-1, a.shape[1])
        d_ab = cKDTree(ob).query(a)[0].max()
        d_ba = cKDTree(oa).query(b)[0].max()
    else:
        d_ab = cKDTree(b).query(a)[0].max()
        d_ba = cKDTree(a).query(b)[0].max()
    return float(max(d_ab, d_ba))


def _names(ds) -> tuple:
    return tuple(str(v) for v in ds["var"].values)


def _check_model(model):
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a model name (str, e.g. 'fukumizu_amari') or None, got {type(model).__name__}")
    return model


def _is_fa(attrs, names, model=None) -> bool:
    """Whether a result with these attrs and variables comes from the Fukumizu–Amari network (Sato et al. 2022)."""
    model = str(attrs.get("model", "")) if model is None else model
    if model in _FA_MODELS:
        return names == _FA_MODELS[model]
    if model == "soft_committee" and names == _THETA:  # the FA network as a vector map, on the FA teacher
        try:
            if (int(attrs["inputs"]), int(attrs["hidden"]), str(attrs["activation"])) != (1, 2, "tanh"):
                return False
            teacher = np.concatenate([np.ravel(attrs["teacher_W"]), np.ravel(attrs["teacher_v"])]).astype(float)
        except (KeyError, TypeError, ValueError):
            return False
        return teacher.shape == (4,) and bool(np.allclose(canonical(teacher), canonical(np.array(_FA_TEACHER))))
    return False


def _odd_network(attrs, names) -> bool:
    """Whether the variables are a tanh-like network (w1…wN, v1…vN) with one input that declares the neuron
    swaps and sign flips of :mod:`rds.symmetry` (FA, teacher_student and odd soft_committee/dataset_sgd, d = 1)."""
    N = len(names) // 2
    if N == 0 or names != tuple(f"w{i + 1}" for i in range(N)) + tuple(f"v{i + 1}" for i in range(N)):
        return False
    try:
        one_input = int(attrs.get("inputs", -1)) == 1
    except (TypeError, ValueError):
        return False
    declared = (str(attrs.get("network_symmetry", "")) == "neuron_permutation_sign"
                or str(attrs.get("model", "")) == "teacher_student")  # tanh students (rds.models.teacher_student)
    return one_input and declared


def fukumizu_amari_theta(ds, *, model=None) -> np.ndarray | None:
    """The sets of a pullback result in the Fukumizu–Amari coordinates (w1, w2, v1, v2); None for other systems.

    A result is taken to be the FA network (Sato et al. 2022, eqs. 4–16) only when it says so: its attr ``model``
    (from ``system.describe()``) is ``"fukumizu_amari"`` with variables (w1, w2, v1, v2), ``"fukumizu_amari_pqrs"``
    with variables (p, q, r, s) (converted by eq. 19), or ``"soft_committee"`` with one input, two tanh neurons and
    the FA teacher T(x) = 2 tanh(x) − tanh(4x) (eq. 8). Variable names alone never decide it: another map, or
    another network, called (w1, w2, v1, v2) is not the FA model, and its optimal set is not θ* of eq. 9.

    Parameters
    ----------
    ds : xarray.Dataset
        ``state`` with dims (tau, member, var) (a result of :func:`pullback_attractor`, or any Dataset with a
        ``var`` coordinate and ``state``).
    model : str or None
        The model the sets come from; None: ``ds.attrs["model"]``. Use it for hand-made Datasets without attrs.

    Returns
    -------
    ndarray, shape (tau, member, 4), or None

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"state": (("tau", "member", "var"), np.zeros((1, 2, 4)))},
    ...                 coords={"var": ["w1", "w2", "v1", "v2"]})
    >>> fukumizu_amari_theta(ds) is None                                 # no model named: nothing assumed
    True
    >>> fukumizu_amari_theta(ds, model="fukumizu_amari").shape
    (1, 2, 4)
    """
    if not isinstance(ds, xr.Dataset) or "state" not in ds or "var" not in ds["state"].dims:
        raise TypeError("ds must be an xarray.Dataset with a 'state' variable (tau, member, var)")
    model = _check_model(model)
    names = _names(ds)
    if not _is_fa(ds.attrs, names, model):
        return None
    arr = ds["state"].transpose("tau", "member", "var").values
    if names == _PQRS:
        from rds.coords import from_pqrs
        return from_pqrs(arr)
    return arr


def pullback_diagnostics(ds, *, threshold=0.05, optimum_threshold=0.05, symmetry=True, model=None) -> xr.Dataset:
    """Where the finite-time pullback attractors lie: spread, convergence, and for FA the degenerate subspaces.

    For any system (elementwise or vector maps, any variables): the spread of the set (RMS distance to its
    centroid), the mean pairwise distance and the diameter of the set (both → 0 when the ensemble synchronises on one
    random point), the centroid and standard deviation per variable, and the Hausdorff distance between the sets of
    successive τ (eq. C.1: it tends to 0 as Ã_τ approaches the random attractor A(t, ω)).

    For networks that declare their symmetry: two-layer networks with attrs ``network_symmetry``, ``hidden``,
    ``inputs`` (:func:`rds.models.soft_committee`, :func:`rds.models.dataset_sgd`) also get the pairwise distances
    modulo neuron permutations and sign flips (:func:`network_distance`); tanh networks with one input in the layout
    (w1…wN, v1…vN) (the FA model, :func:`rds.models.teacher_student`, or a declared sign symmetry) also get the spread
    of the canonical representatives and the Hausdorff distance modulo symmetry (:mod:`rds.symmetry`).

    For the Fukumizu–Amari network only (the result says it comes from that model, :func:`fukumizu_amari_theta`;
    variables (w1, w2, v1, v2), or (p, q, r, s) converted by eq. 19):

    * |w1 − w2| (= 2|r|) and |v1 − v2| (= 2|s|): distances that vanish on M_w = {w1 = w2} (eq. 17) and
      M_wv = {w1 = w2, v1 = v2} (eq. 18). A member is *on M_w* if |w1 − w2| < threshold, *on M_wv* if also
      |v1 − v2| < threshold. Flipping one neuron maps M_wv to {w1 = −w2, v1 = −v2}, which realises the same
      degenerate function 2v tanh(wx) (eq. 10); the ``*_sym`` fractions count both images.
      ``frac_Mwv_positive`` counts only the image with w = w1 ≈ w2 > 0 and v = v1 ≈ v2 > 0 (the attracting region
      on M_wv of Figs. 4–5; the four symmetric images ±(w, w, v, v), ±(w, −w, v, −v) hold equal shares on average).
    * the Euclidean distance to the optimal set θ* (eq. 9, ``rds.models.OPTIMA``, closed under the symmetries)
      modulo symmetry, and the fraction within ``optimum_threshold``.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`pullback_attractor`: ``state`` with dims (tau, member, var).
    threshold : float
        FA only: distance below which a member counts as on M_w / M_wv (default 0.05).
    optimum_threshold : float
        FA only: distance below which a member counts as at θ* (default 0.05).
    symmetry : bool
        Also compute the Hausdorff distance modulo the network symmetries (8× more points in the trees), for
        networks with that symmetry.
    model : str or None
        The model the sets come from; None (default): ``ds.attrs["model"]`` (set by :func:`pullback_attractor`
        from ``system.describe()``). Name it for a hand-made Dataset, e.g. ``model="fukumizu_amari"``; a model
        whose variables do not match raises a ValueError.

    Returns
    -------
    xarray.Dataset
        Any system: per tau ``frac_diverged``, ``n_finite``, ``spread``, ``hausdorff`` (distance to the set of the
        previous τ; NaN for the first), ``pairwise_mean``, ``diameter``; per (tau, var) ``mean``, ``std``.
        Coordinate ``previous_tau`` (tau). Fractions are over all members (diverged ones are counted as nowhere).
        Networks with a declared symmetry: ``pairwise_mean_symmetric``, ``diameter_symmetric``; tanh networks
        (w1…wN, v1…vN): ``spread_canonical``, ``hausdorff_symmetric`` (with ``symmetry``).
        FA only: per (tau, member) ``abs_dw`` = |w1 − w2|, ``abs_dv`` = |v1 − v2|, ``abs_sw`` = |w1 + w2|,
        ``abs_sv`` = |v1 + v2|, ``dist_optimum`` (modulo symmetry); per tau ``frac_Mw``, ``frac_Mwv``,
        ``frac_Mwv_positive``, ``frac_Mw_sym``, ``frac_Mwv_sym``, ``frac_optimum``, ``median_abs_dw``,
        ``median_abs_dv``, ``median_dist_optimum``. Attrs: those of ``ds``, ``diagnostics``, ``symmetry``,
        ``diagnostics_equations``, and for FA the thresholds.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> on = np.array([[[0.5, 0.5, 1.0, 1.0], [-2.0, -2.0, 0.3, 0.3]]])        # two members on M_wv
    >>> ds = xr.Dataset({"state": (("tau", "member", "var"), on)},
    ...                 coords={"tau": [10], "var": ["w1", "w2", "v1", "v2"]}, attrs={"model": "fukumizu_amari"})
    >>> float(pullback_diagnostics(ds).frac_Mwv[0])
    1.0
    >>> x = xr.Dataset({"state": (("tau", "member", "var"), [[[0.1], [0.4]], [[0.2], [0.2]]])},
    ...                coords={"tau": [0, 5], "var": ["x"]})                  # any system: a 1-D map
    >>> dg = pullback_diagnostics(x)
    >>> dg.diameter.values.round(12).tolist(), "frac_Mwv" in dg
    ([0.3, 0.0], False)
    """
    if not isinstance(ds, xr.Dataset) or "state" not in ds:
        raise TypeError("ds must be an xarray.Dataset with a 'state' variable (tau, member, var)")
    state = ds["state"]
    if set(state.dims) != {"tau", "member", "var"}:
        raise ValueError(f"ds.state must have dims (tau, member, var), got {state.dims}")
    threshold = nonnegative(threshold, "threshold")
    optimum_threshold = nonnegative(optimum_threshold, "optimum_threshold")
    model = _check_model(model)
    names = _names(ds)
    if model is not None and model in _FA_MODELS and names != _FA_MODELS[model]:
        raise ValueError(f"model={model!r} has the variables {_FA_MODELS[model]}, but ds.state has {names}")
    state = state.transpose("tau", "member", "var")
    X = state.values
    T, M, d = X.shape
    finite = np.all(np.isfinite(X), axis=-1)  # (tau, member)
    tau = state["tau"].values
    theta = fukumizu_amari_theta(ds, model=model)
    attrs = dict(ds.attrs) if model is None else {**ds.attrs, "model": model}
    out = {}
    if theta is not None:
        out.update(_fa_diagnostics(theta, finite, threshold, optimum_threshold))
    is_net = theta is not None or _odd_network(attrs, names)
    out.update(_set_diagnostics(X, finite, theta if theta is not None else X, is_net, symmetry))
    out.update(_network_symmetry_diagnostics(X, finite, attrs))
    coords = {"tau": tau, "member": state["member"].values if "member" in state.coords else np.arange(M),
              "var": state["var"].values,
              "previous_tau": ("tau", np.concatenate([[-1], tau[:-1]]).astype(np.int64))}
    res = xr.Dataset({k: xr.Variable(v[0], v[1], v[2]) for k, v in out.items()}, coords=coords)
    if "start_time" in ds.coords:
        res = res.assign_coords(start_time=ds["start_time"])
    res["previous_tau"].attrs["long_name"] = "tau of the set the Hausdorff distance is measured to (-1: none)"
    res.attrs.update(attrs)
    res.attrs.update({"diagnostics": "pullback_diagnostics", "symmetry": int(bool(symmetry)),
                      "diagnostics_equations": "Hausdorff distance between successive tau: eq. C.1"})
    if theta is not None:
        res.attrs.update({"threshold": float(threshold), "optimum_threshold": float(optimum_threshold),
                          "diagnostics_equations": "M_w eq. 17, M_wv eq. 18, theta* eq. 9, Hausdorff eq. C.1"})
    return annotate(res)  # long_name / units from rds.labels


def _fa_diagnostics(theta, finite, threshold, optimum_threshold):
    """Fukumizu–Amari diagnostics per (tau, member) and per tau: distances to M_w, M_wv (eqs. 17–18) and θ*."""
    T, M = finite.shape
    out = {}
    w1, w2, v1, v2 = (theta[..., i] for i in range(4))
    dw, dv = np.abs(w1 - w2), np.abs(v1 - v2)
    sw, sv = np.abs(w1 + w2), np.abs(v1 + v2)
    from rds.models import OPTIMA
    opt = np.unique(orbit(OPTIMA).reshape(-1, 4), axis=0)
    dist_opt = np.full((T, M), np.nan)
    dist_opt[finite] = cKDTree(opt).query(theta[finite])[0]
    with np.errstate(invalid="ignore"):
        on_w, on_wv = dw < threshold, (dw < threshold) & (dv < threshold)
        on_w_sym = on_w | (sw < threshold)
        on_wv_sym = on_wv | ((sw < threshold) & (sv < threshold))
        at_opt = dist_opt < optimum_threshold
        on_wv_pos = on_wv & (w1 + w2 > 0) & (v1 + v2 > 0)
    pm = ("tau", "member")
    out.update({
        "abs_dw": (pm, dw, {"long_name": "|w1 - w2| (distance to M_w, eq. 17, times sqrt 2)"}),
        "abs_dv": (pm, dv, {"long_name": "|v1 - v2|"}),
        "abs_sw": (pm, sw, {"long_name": "|w1 + w2| (the flipped image of M_w)"}),
        "abs_sv": (pm, sv, {"long_name": "|v1 + v2|"}),
        "dist_optimum": (pm, dist_opt, {"long_name": "distance to the optimal set (eq. 9) modulo symmetry"}),
        "frac_Mw": (("tau",), on_w.mean(axis=1), {"long_name": "fraction with |w1-w2| < threshold"}),
        "frac_Mwv": (("tau",), on_wv.mean(axis=1),
                     {"long_name": "fraction with |w1-w2| < threshold and |v1-v2| < threshold"}),
        "frac_Mwv_positive": (("tau",), on_wv_pos.mean(axis=1),
                              {"long_name": "fraction on M_wv with w > 0 and v > 0 (the region of Figs. 4-5)"}),
        "frac_Mw_sym": (("tau",), on_w_sym.mean(axis=1),
                        {"long_name": "fraction on M_w or its flipped image w1 = -w2"}),
        "frac_Mwv_sym": (("tau",), on_wv_sym.mean(axis=1),
                         {"long_name": "fraction on M_wv or its flipped image (w1, v1) = -(w2, v2)"}),
        "frac_optimum": (("tau",), at_opt.mean(axis=1),
                         {"long_name": "fraction within optimum_threshold of theta* modulo symmetry"}),
        "median_abs_dw": (("tau",), _nanmedian(dw), {"long_name": "median |w1 - w2| over finite members"}),
        "median_abs_dv": (("tau",), _nanmedian(dv), {"long_name": "median |v1 - v2| over finite members"}),
        "median_dist_optimum": (("tau",), _nanmedian(dist_opt),
                                {"long_name": "median distance to theta* modulo symmetry (finite members)"}),
    })
    return out


def _set_diagnostics(X, finite, net, is_net, symmetry):
    """Generic diagnostics of the sets Ã_τ: centroid, spread, pairwise distances, Hausdorff distance to the previous τ.

    ``net`` is X in network coordinates (w1…wN, v1…vN) for the symmetry-reduced spread and Hausdorff distance.
    """
    T, M, d = X.shape
    out = {}
    n_finite = finite.sum(axis=1)
    mean = np.full((T, d), np.nan)
    std = np.full((T, d), np.nan)
    spread = np.full(T, np.nan)
    spread_can = np.full(T, np.nan)
    haus = np.full(T, np.nan)
    haus_sym = np.full(T, np.nan)
    for k in range(T):
        Y = X[k][finite[k]]
        if Y.shape[0] == 0:
            continue
        mean[k], std[k] = Y.mean(axis=0), Y.std(axis=0)
        spread[k] = np.sqrt(np.mean(np.sum((Y - mean[k]) ** 2, axis=1)))
        if is_net:
            C = canonical(net[k][finite[k]])
            spread_can[k] = np.sqrt(np.mean(np.sum((C - C.mean(axis=0)) ** 2, axis=1)))
        if k > 0:
            haus[k] = hausdorff_distance(X[k - 1], X[k])
            if symmetry and is_net:
                haus_sym[k] = hausdorff_distance(net[k - 1], net[k], modulo_symmetry=True)
    out.update({
        "frac_diverged": (("tau",), 1.0 - n_finite / M, {"long_name": "fraction of members that diverged"}),
        "n_finite": (("tau",), n_finite.astype(np.int64), {"long_name": "members with a finite state"}),
        "mean": (("tau", "var"), mean, {"long_name": "centroid of the finite members"}),
        "std": (("tau", "var"), std, {"long_name": "standard deviation of each variable"}),
        "spread": (("tau",), spread, {"long_name": "RMS distance of the members to the centroid"}),
        "hausdorff": (("tau",), haus,
                      {"long_name": "Hausdorff distance to the set of the previous tau (eq. C.1)"}),
    })
    if is_net:
        out["spread_canonical"] = (("tau",), spread_can,
                                   {"long_name": "spread of the canonical representatives modulo symmetry"})
        if symmetry:
            out["hausdorff_symmetric"] = (("tau",), haus_sym,
                                          {"long_name": "Hausdorff distance to the previous tau modulo symmetry"})
    out.update(_pairwise(X, finite))
    return out


def _pairwise(X, finite):
    """Mean pairwise distance and diameter of the finite members of each set (synchronisation: both → 0)."""
    T = X.shape[0]
    mean_d, diam = np.full(T, np.nan), np.full(T, np.nan)
    from scipy.spatial.distance import pdist
    for k in range(T):
        Y = X[k][finite[k]]
        if Y.shape[0] >= 2:
            dist = pdist(Y)
            mean_d[k], diam[k] = dist.mean(), dist.max()
        elif Y.shape[0] == 1:
            mean_d[k] = diam[k] = 0.0
    return {"pairwise_mean": (("tau",), mean_d, {"long_name": "mean Euclidean distance between pairs of members"}),
            "diameter": (("tau",), diam, {"long_name": "largest distance between two members (0: synchronised)"})}


def network_distance(a, b, hidden, inputs, signs=True):
    """Distance between two-layer networks modulo neuron permutations (and sign flips for odd activations).

    For θ = (W.ravel(), v) (:func:`rds.models.two_layer.pack`) the network is unchanged by permuting the hidden
    neurons (rows (w_j, v_j)) and, for odd σ (tanh, erf), by (w_j, v_j) → −(w_j, v_j). The quotient distance

        d([a], [b]) = min_{π, s} ( Σ_j |a_j − s_j b_{π(j)}|² )^{1/2}

    is exact: the cost decomposes over neuron pairs, so the optimal permutation is a linear assignment
    (``scipy.optimize.linear_sum_assignment``) on the pair costs min_s |a_j − s b_i|².

    Parameters
    ----------
    a, b : array_like, shape (N·d + N,)
    hidden, inputs : int
        N and d.
    signs : bool
        Also quotient by the sign flips.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([1.0, 2.0, 3.0, 4.0])            # d = 1: (w1, w2, v1, v2)
    >>> network_distance(a, np.array([-2.0, 1.0, -4.0, 3.0]), 2, 1)   # swap + flip of neuron 2
    0.0
    """
    from scipy.optimize import linear_sum_assignment
    N, d = int(hidden), int(inputs)
    A = _neurons(np.asarray(a, dtype=float), N, d)
    B = _neurons(np.asarray(b, dtype=float), N, d)
    C = np.sum((A[:, None, :] - B[None, :, :]) ** 2, axis=-1)
    if signs:
        C = np.minimum(C, np.sum((A[:, None, :] + B[None, :, :]) ** 2, axis=-1))
    r, c = linear_sum_assignment(C)
    return float(np.sqrt(C[r, c].sum()))


def _neurons(theta, N, d):
    """Rows (w_j, v_j) of a packed network, shape (N, d + 1)."""
    return np.concatenate([theta[:N * d].reshape(N, d), theta[N * d:N * d + N, None]], axis=1)


def _network_symmetry_diagnostics(X, finite, attrs):
    """Pairwise distances modulo the symmetry a model declares (attrs ``network_symmetry``, ``hidden``, ``inputs``)."""
    sym = str(attrs.get("network_symmetry", ""))
    if not sym.startswith("neuron_permutation") or "hidden" not in attrs or "inputs" not in attrs:
        return {}
    N, d = int(attrs["hidden"]), int(attrs["inputs"])
    if X.shape[-1] != N * d + N:
        return {}
    signs = sym == "neuron_permutation_sign"
    T = X.shape[0]
    mean_d, diam = np.full(T, np.nan), np.full(T, np.nan)
    for k in range(T):
        Y = X[k][finite[k]]
        dist = [network_distance(Y[i], Y[j], N, d, signs) for i in range(len(Y)) for j in range(i + 1, len(Y))]
        if dist:
            mean_d[k], diam[k] = float(np.mean(dist)), float(np.max(dist))
        elif len(Y) == 1:
            mean_d[k] = diam[k] = 0.0
    what = "neuron permutations and sign flips" if signs else "neuron permutations"
    return {"pairwise_mean_symmetric": (("tau",), mean_d,
                                        {"long_name": f"mean pairwise distance modulo {what}"}),
            "diameter_symmetric": (("tau",), diam, {"long_name": f"largest pairwise distance modulo {what}"})}


def _nanmedian(a):
    out = np.full(a.shape[0], np.nan)
    for k in range(a.shape[0]):
        row = a[k][np.isfinite(a[k])]
        if row.size:
            out[k] = np.median(row)
    return out
