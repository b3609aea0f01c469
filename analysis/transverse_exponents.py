"""Transverse Lyapunov exponents of the degenerate subspaces M_wv and M_w of the FA model (Sato et al. 2022, §3).

In the coordinates of eq. 19, p = (w1+w2)/2, q = (v1+v2)/2, r = (w1−w2)/2, s = (v1−v2)/2, the doubly degenerate
subspace M_wv = {r = s = 0} (eq. 18) is invariant under the SGD map for every input x (eqs. 20–24: r' = s' = 0 when
r = s = 0). Hence on M_wv the step Jacobian in (p, q, r, s) is block triangular — in fact block diagonal, because
the map commutes with the neuron swap (w1, v1) ↔ (w2, v2), whose fixed set is M_wv and whose (−1)-eigenspace is the
(r, s) plane:

    J = [[A(p, q; x), 0], [0, C(p, q; x)]].

The **transverse exponents** of M_wv are the Lyapunov exponents of the products of the (r, s) block C along a
trajectory on M_wv. They are computed exactly with the full 4-D map: the trajectory starts on M_wv (and stays on it:
the two neurons receive bit-identical updates), and two tangent vectors e_r ∝ (1, −1, 0, 0), e_s ∝ (0, 0, 1, −1)
(original coordinates) are propagated with the full Jacobian. The transverse plane is invariant under the tangent
map, so the QR method on those two vectors gives the two transverse exponents; two more vectors e_p ∝ (1, 1, 0, 0),
e_q ∝ (0, 0, 1, 1), orthogonalised against them, give the **tangential** exponents (those of the reduced map on
M_wv, eqs. 31–35). Both invariances are checked and reported (``off_subspace``, ``leak``).

A negative largest transverse exponent means that M_wv attracts nearby trajectories along almost every noise path
(noise-induced synchronisation of the two hidden neurons, the analogue of Sato et al. 2022, Theorem 1 and App. D).

M_w = {r = 0} (eq. 17) is **not** invariant (r' ≠ 0 when s ≠ 0), so it has no transverse exponent in the sense of
the multiplicative ergodic theorem: the r-direction of the tangent map is not invariant either, and a tangent vector
started along e_r turns towards the most unstable direction of the full map. For ``subspace="M_w"`` we therefore
compute the *conditional* (Pecora–Carroll) transverse exponent

    λ_r = (1 / n) Σ_t log |J_rr(θ_t, x_t)|,   J_rr = e_rᵀ J e_r = (J11 − J12 − J21 + J22) / 2,

the growth rate of an r-perturbation when its coupling to the other directions is cut, along trajectories of the
full map started on M_w (which may drift off it: the final distance |w1 − w2| is reported as ``off_subspace``).
On M_wv itself λ_r is the (r, r) entry's contribution only, not a transverse exponent of M_wv.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.lyapunov import lyapunov_spectrum, standard_error
from rds._checks import integer
from rds.coords import from_pqrs, to_pqrs
from rds.labels import annotate
from rds.models import PQRS_BASIS, conditional_r_system, pqrs_system  # derived systems: homes in rds.models

__all__ = ["transverse_exponents", "subspace_tangents", "conditional_r_system", "pqrs_system"]

SUBSPACES = ("M_wv", "M_w")
#: Tangent directions of (p, q, r, s) in the original coordinates (w1, w2, v1, v2), unit length: the columns of
#: :data:`rds.models.PQRS_BASIS` (eq. 19).
E_P, E_Q, E_R, E_S = (PQRS_BASIS[:, k].copy() for k in range(4))


def subspace_tangents(subspace: str = "M_wv") -> np.ndarray:
    """Initial tangent vectors (var, k) in (w1, w2, v1, v2) coordinates.

    ``"M_wv"``: columns (e_r, e_s, e_p, e_q) — transverse first, then tangential. ``"M_w"``: the single column e_r.

    Examples
    --------
    >>> subspace_tangents("M_wv").shape
    (4, 4)
    """
    if subspace == "M_wv":
        return np.column_stack([E_R, E_S, E_P, E_Q])
    if subspace == "M_w":
        return E_R[:, None].copy()
    raise ValueError(f"subspace must be one of {SUBSPACES}, got {subspace!r}")


def _lift(initial, subspace):
    """Initial states (member, 4) on the subspace, and the largest projection distance applied."""
    X = np.asarray(initial, dtype=float)
    if X.ndim == 1:
        X = X[None, :]
    want = {"M_wv": 2, "M_w": 3}[subspace]
    if X.ndim != 2 or X.shape[1] not in (want, 4):
        raise ValueError(f"initial must have shape (member, {want}) (coordinates on {subspace}: "
                         f"{'(w, v)' if subspace == 'M_wv' else '(w, v1, v2)'}) or (member, 4) (w1, w2, v1, v2), "
                         f"got {np.shape(initial)}")
    if not np.all(np.isfinite(X)):
        raise ValueError("initial must be finite (found NaN or inf)")
    if X.shape[1] == 4:
        w = 0.5 * (X[:, 0] + X[:, 1])
        if subspace == "M_wv":
            v = 0.5 * (X[:, 2] + X[:, 3])
            out = np.column_stack([w, w, v, v])
        else:
            out = np.column_stack([w, w, X[:, 2], X[:, 3]])
        return out, float(np.max(np.abs(out - X))) if X.size else 0.0
    if subspace == "M_wv":
        return np.column_stack([X[:, 0], X[:, 0], X[:, 1], X[:, 1]]), 0.0
    return np.column_stack([X[:, 0], X[:, 0], X[:, 1], X[:, 2]]), 0.0


def transverse_exponents(make_system, sigma2, initial, steps, *, subspace="M_wv", seed=0, transient=0, qr_every=1,
                         realizations=1, num_history=30, coordinates="pqrs", backend=None, executor=None,
                         chunk_size=None, t0=0, progress=None) -> xr.Dataset:
    """Transverse Lyapunov exponents of M_wv (or the conditional exponent of M_w) over a scan of σ².

    For each σ², ``make_system(sigma2)`` builds the 4-variable map (w1, w2, v1, v2); trajectories start on the
    subspace, run ``transient`` steps, and the exponents are measured over the remaining ``steps − transient``
    steps by :func:`analysis.lyapunov_spectrum` with tangent vectors started in the transverse directions (see the
    module docstring: exact for the invariant M_wv, eq. 18; conditional for the non-invariant M_w, eq. 17).

    Parameters
    ----------
    make_system : callable
        ``make_system(sigma2) -> rds.RandomDynamicalSystem`` with variables (w1, w2, v1, v2), e.g.
        ``lambda s2: rds.models.fukumizu_amari(eta=0.1, sigma2=s2)``. It must map the subspace into itself for the
        M_wv exponents to be transverse exponents (checked: ``off_subspace``).
    sigma2 : float or array_like (sigma2,)
        Input variances σ² > 0 to scan.
    initial : array_like, shape (member, 2) | (member, 3) | (member, 4)
        Starting points: (w, v) on M_wv, (w, v1, v2) on M_w, or full states (w1, w2, v1, v2), which are projected
        onto the subspace (w1, w2 → their mean; for M_wv also v1, v2); ``attrs["projection_distance"]`` says how far.
    steps : int
        Total steps per run, transient included (> transient).
    subspace : {"M_wv", "M_w"}, keyword-only
        As are all the options below.
    coordinates : {"pqrs", "original"}
        M_wv only. ``"pqrs"`` (default) runs the same map in (p, q, r, s) coordinates (:func:`pqrs_system`), where
        the transverse plane is invariant bit for bit. ``"original"`` propagates e_r ∝ (1, −1, 0, 0),
        e_s ∝ (0, 0, 1, −1) with the (w1, w2, v1, v2) Jacobian: the plane is invariant in exact arithmetic, but
        the matrix–vector products are not exactly antisymmetric in floating point, so a ~1e-16 leak into (p, q)
        is injected every step and grows like exp((λ_tangential,1 − λ_transverse,2) t) when the second
        transverse exponent lies below the top tangential one (σ² = 1: the leak reaches O(1) within ~2·10⁴ steps
        and the second exponent is then wrong). ``leak`` reports it.
    seed, transient, qr_every, realizations, num_history, backend, executor, chunk_size, t0, progress
        As in :func:`analysis.lyapunov_spectrum` (the same seed and realisations at every σ²).

    Returns
    -------
    xarray.Dataset over dim ``sigma2``
        ``exponents`` (sigma2, realization, member, exponent): transverse exponents per unit time (M_wv: exponent
        = 1, 2, largest first; M_w: exponent = 1, the conditional λ_r); ``mean_exponents``, ``stderr`` (sigma2,
        exponent); ``history`` (sigma2, realization, member, time, exponent): finite-time values;
        ``off_subspace`` (sigma2, realization, member): final max(|w1 − w2|, |v1 − v2|) for M_wv, |w1 − w2| for
        M_w; ``state`` (sigma2, realization, member, var): final states; ``diverged``; ``collapsed`` (sigma2,
        realization, member): transverse exponents that are −∞ (tangent vectors collapsed to zero, see
        :func:`analysis.lyapunov_spectrum`). For M_wv also
        ``tangential`` (…, tangential_exponent) with ``tangential_mean``/``tangential_stderr`` (the exponents
        within M_wv) and ``leak`` (sigma2, realization, member): largest (p, q)-component of the final transverse
        tangent vectors (0 = the transverse plane is invariant). Attrs: model, method settings, ``subspace``,
        ``units``.

    Raises
    ------
    ValueError
        Unknown ``subspace``, σ² ≤ 0 or non-finite, bad ``initial`` shape, and the errors of
        :func:`analysis.lyapunov_spectrum`.

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> make = lambda s2: rds.models.fukumizu_amari(eta=0.1, sigma2=s2)
    >>> ds = analysis.transverse_exponents(make, [0.1, 1.0], np.array([[0.5, 0.5]]), 2000, transient=500,
    ...                                    backend="numpy")
    >>> ds.exponents.dims
    ('sigma2', 'realization', 'member', 'exponent')
    >>> float(abs(ds.off_subspace).max())
    0.0
    """
    if not callable(make_system):
        raise TypeError("make_system must be callable: make_system(sigma2) -> RandomDynamicalSystem")
    if subspace not in SUBSPACES:
        raise ValueError(f"subspace must be one of {SUBSPACES}, got {subspace!r}")
    s2 = np.atleast_1d(np.asarray(sigma2, dtype=float))
    if s2.ndim != 1 or s2.size == 0 or not np.all(np.isfinite(s2)) or np.any(s2 <= 0):
        raise ValueError(f"sigma2 must be a non-empty 1-D array of finite values > 0, got {sigma2!r}")
    if coordinates not in ("pqrs", "original"):
        raise ValueError(f"coordinates must be 'pqrs' or 'original', got {coordinates!r}")
    steps = integer(steps, "steps", 1)
    X, proj = _lift(initial, subspace)
    use_pqrs = subspace == "M_wv" and coordinates == "pqrs"
    if use_pqrs:
        X = to_pqrs(X)  # exact: r = (w1 - w2)/2 = 0.0 and s = 0.0 on M_wv
        tangent = np.eye(4)[:, [2, 3, 0, 1]]  # e_r, e_s, e_p, e_q in (p, q, r, s)
    else:
        tangent = subspace_tangents(subspace)

    run = {"seed": seed, "transient": transient, "qr_every": qr_every, "realizations": realizations,
           "num_history": num_history, "backend": backend, "executor": executor, "chunk_size": chunk_size, "t0": t0,
           "tangent": tangent, "progress": progress}
    per = [_run_one(make_system(float(val)), X, steps, subspace, use_pqrs, run) for val in s2]
    data, system0, ds0 = _combine(per, subspace, use_pqrs)
    return _transverse_dataset(data, s2, system0, ds0, subspace=subspace, coordinates=coordinates, proj=proj)


def _run_one(system, X, steps, subspace, use_pqrs, run):
    """The Lyapunov run at one σ²: the conditional system on M_w, the (p, q, r, s) system or the map on M_wv."""
    if tuple(getattr(system, "variables", ())) != ("w1", "w2", "v1", "v2") and len(system.variables) != 4:
        raise ValueError(f"make_system must return a system with 4 variables (w1, w2, v1, v2), got "
                         f"{system.variables}")
    if subspace == "M_w":
        run_sys = conditional_r_system(system)
    else:
        run_sys = pqrs_system(system) if use_pqrs else system
    return system, lyapunov_spectrum(run_sys, X, steps, **run)


def _combine(per, subspace, use_pqrs):
    """Stack the runs over σ²: transverse (and tangential) exponents, statistics, distances, leak."""
    system0, ds0 = per[0]
    exps = np.stack([d.exponents.values for _, d in per])
    hist = np.stack([d.history.values for _, d in per])
    state = np.stack([d.state.values for _, d in per])
    if use_pqrs:
        state = from_pqrs(state)
    div = np.stack([d.diverged.values for _, d in per])
    if subspace == "M_wv":
        off = np.maximum(np.abs(state[..., 0] - state[..., 1]), np.abs(state[..., 2] - state[..., 3]))
        vecs = np.stack([d.vectors.values for _, d in per])  # (sigma2, realization, member, var, exponent)
        pq = np.eye(4)[:2] if use_pqrs else np.stack([E_P, E_Q])  # (p, q) directions, (2, var)
        leak = np.abs(np.einsum("jv,...vc->...jc", pq, vecs[..., :2])).max(axis=(-1, -2))
        trans, tang = exps[..., :2], exps[..., 2:]
        hist = hist[..., :2]
    else:
        off = np.abs(state[..., 0] - state[..., 1])
        trans, tang, leak = exps, None, None
    indep = system0.independent_noise
    stats = [standard_error(t, indep) for t in trans]
    data = {
        "exponents": (("sigma2", "realization", "member", "exponent"), trans),
        "mean_exponents": (("sigma2", "exponent"), np.stack([s[0] for s in stats])),
        "stderr": (("sigma2", "exponent"), np.stack([s[1] for s in stats])),
        "n_samples": (("sigma2",), np.array([s[2] for s in stats], dtype=np.int64)),
        "history": (("sigma2", "realization", "member", "time", "exponent"), hist),
        "off_subspace": (("sigma2", "realization", "member"), off),
        "state": (("sigma2", "realization", "member", "var"), state),
        "diverged": (("sigma2", "realization", "member"), div),
        # tangent vectors that collapsed to zero (exponent -inf on that orbit, analysis.lyapunov_spectrum)
        "collapsed": (("sigma2", "realization", "member"), np.sum(trans == -np.inf, axis=-1)),
    }
    if tang is not None:
        tstats = [standard_error(t, indep) for t in tang]
        data["tangential"] = (("sigma2", "realization", "member", "tangential_exponent"), tang)
        data["tangential_mean"] = (("sigma2", "tangential_exponent"), np.stack([s[0] for s in tstats]))
        data["tangential_stderr"] = (("sigma2", "tangential_exponent"), np.stack([s[1] for s in tstats]))
        data["leak"] = (("sigma2", "realization", "member"), leak)
    return data, system0, ds0


def _transverse_dataset(data, s2, system0, ds0, *, subspace, coordinates, proj):
    """The Dataset of :func:`transverse_exponents`: coordinates, long names and attrs around the stacked data."""
    tangential = "tangential" in data
    coords = {"sigma2": s2, "realization": ds0.realization.values, "member": ds0.member.values,
              "exponent": np.arange(1, data["exponents"][1].shape[-1] + 1), "time": ds0.time.values,
              "elapsed": ("time", ds0.elapsed.values), "var": list(system0.variables)}
    if tangential:
        coords["tangential_exponent"] = np.arange(1, 3)
    out = xr.Dataset(data, coords=coords)
    units = ds0.attrs["units"]
    out["exponents"].attrs.update(units=units, long_name=(
        "transverse Lyapunov exponents of M_wv (r, s block)" if subspace == "M_wv"
        else "conditional transverse exponent of M_w: time average of log|J_rr|"))
    out["off_subspace"].attrs["long_name"] = "final distance from the subspace (max |w1-w2|, |v1-v2|)"
    out["collapsed"].attrs["long_name"] = "number of exponents equal to -inf (tangent vectors collapsed to zero)"
    if tangential:
        out["tangential"].attrs.update(units=units, long_name="Lyapunov exponents within M_wv (p, q block)")
        out["leak"].attrs["long_name"] = "largest (p, q)-component of the final transverse tangent vectors"
    out["sigma2"].attrs["long_name"] = "input variance sigma^2"
    attrs = dict(system0.describe())
    for key in [k for k in attrs if k.startswith("sigma2") or k == "noise_sigma2"]:
        attrs.pop(key)
    attrs.update({k: ds0.attrs[k] for k in ("units", "seed", "t0", "steps", "transient", "t_start", "t_end",
                                             "qr_every", "realizations", "stderr_method", "backend")})
    attrs.update({
        "analysis": "transverse_exponents", "subspace": subspace,
        "method": ("QR method with the full 4-D map on the invariant M_wv; tangent vectors (e_r, e_s) transverse, "
                   "then (e_p, e_q) tangential" if subspace == "M_wv" else
                   "conditional (Pecora-Carroll) exponent: time average of log|e_r^T J e_r| along the full map "
                   "started on M_w (M_w is not invariant)"),
        "projection_distance": proj, "n_diverged": int(data["diverged"][1].sum()),
        "n_collapsed": int(np.sum(data["collapsed"][1] > 0)),
        "tangent_coordinates": coordinates if subspace == "M_wv" else "original",
        "equations": "Sato et al. 2022: eqs. 17-24 (M_w, M_wv, pqrs map), 31-35 (map on M_wv); Theorem 1, App. D",
    })
    out.attrs.update(attrs)
    return annotate(out)  # long_name / units from rds.labels
