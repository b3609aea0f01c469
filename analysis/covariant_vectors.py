"""Covariant Lyapunov vectors along a noise path (Ginelli et al. 2007), and the angles between their subspaces.

The multiplicative ergodic theorem (Oseledets 1968; Arnold 1998, *Random Dynamical Systems*, Springer, Thm. 3.4.11)
splits the tangent space along almost every trajectory θ_t of a random map into covariant subspaces,
Dφ(θ_t, ξ_t) E_i(t) = E_i(t + 1), on which vectors grow at the exponent λ_i forward *and* backward in time. Their
unit vectors v_i(t) — the **covariant Lyapunov vectors** (CLVs) — are computed by the method of Ginelli, Poggi,
Turchi, Chaté, Livi & Politi (2007), *Phys. Rev. Lett.* 99, 130601:

1. **Forward pass**: k tangent vectors are propagated and re-orthonormalised every ``qr_every`` steps,
   J_j Q_{j−1} = Q_j R_j (J_j the product of the step Jacobians over the interval, R_j upper triangular with
   positive diagonal). After a forward transient the Q_j are the backward (Gram–Schmidt) Lyapunov vectors.
2. **Backward pass**: in the basis Q_j the CLVs are the columns of an upper-triangular C_j, and
   C_{j−1} = R_j⁻¹ C_j D_j (D_j normalises the columns); started from C = I beyond the end of the window and
   iterated backward through a backward transient, C_j converges and v_i(t_j) = Q_j c_{i,j}.

The backward pass must replay *the same* noise path: the noise ξ_t is a function of (seed, realisation, t), so any
segment is recomputed exactly from a stored state. Memory is bounded by **checkpointing**: the forward pass keeps
only (θ, Q) every ``checkpoint`` intervals; the backward pass recomputes each segment's R_j and Q_j from its
checkpoint (twice the forward work, memory O(checkpoint · var · k + intervals / checkpoint · var · k) per member
instead of O(intervals · var · k)). The results do not depend on the checkpoint length.

The growth of v_i over an interval, |J_j v_i(t_{j−1})| = 1 / |R_j⁻¹ c_{i,j}|, gives the **local covariant
exponents**, whose time average is λ_i. The angle between the unstable subspace span(v_1 … v_u) and the stable one
span(v_{u+1} … v_k) (smallest principal angle) measures hyperbolicity: near-tangencies (angles near 0) are where
a perturbation along the stable directions is turned into the unstable ones (Ginelli et al. 2007; Kuptsov &
Parlitz 2012, *J. Nonlinear Sci.* 22, 727). For a vector map only the top k ≪ D vectors are computed (``k``), so
the stable subspace is the span of the computed CLVs u+1 … k.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

import rds.backends
from analysis.lyapunov import _check_system, _initial_tangents, generic_tangents
from rds._checks import check_memory, integer
from rds.labels import annotate, units_of
from rds.noise import check_seed
from rds.sampling import initial_states

__all__ = ["covariant_vectors", "subspace_angle"]


def subspace_angle(A, B):
    """Smallest principal angle between span(A) and span(B), for stacks of column sets.

    Parameters
    ----------
    A : ndarray, shape (..., var, a)
    B : ndarray, shape (..., var, b)
        Column vectors (each set linearly independent).

    Returns
    -------
    ndarray, shape (...)
        Angle in radians, in [0, π/2] (Björck & Golub 1973, *Math. Comp.* 27, 579: arccos of the largest singular
        value of Q_Aᵀ Q_B).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(np.degrees(subspace_angle(np.array([[1.0], [0.0]]), np.array([[1.0], [1.0]])))), 9)
    45.0
    """
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    s = np.linalg.svd(np.swapaxes(qa, -1, -2) @ qb, compute_uv=False)
    return np.arccos(np.clip(s[..., 0], 0.0, 1.0))


def _multiple(value, name, qr_every, default):
    value = default if value is None else integer(value, name, 0)
    if value % qr_every:
        raise ValueError(f"{name} must be a multiple of qr_every = {qr_every}, got {value}")
    return value


def covariant_vectors(system, initial, steps, *, k=None, seed=0, realizations=1, transient=None,
                      backward_transient=None, qr_every=1, record_every=1, split=None, checkpoint=None,
                      tangent=None, t0=0, backend=None, executor=None, chunk_size=None, members=None,
                      sample_seed=None) -> xr.Dataset:
    """Covariant Lyapunov vectors, local covariant exponents and unstable–stable angles along noise paths.

    The time line (absolute steps) is: ``t0`` → forward transient (``transient`` steps, tangent vectors
    converging to the backward Lyapunov vectors) → the **window** of ``steps`` steps, where the results are
    reported → backward transient (``backward_transient`` steps, run forward and then backward so that the CLVs
    converge in the window). See the module docstring for the method (Ginelli et al. 2007).

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        Either map form (for a vector map choose ``k`` ≪ D: the top-k CLVs).
    initial : array_like (member, var) or (var,), rds.regions.Box, or callable
        Initial states at ``t0`` (``members``, ``sample_seed`` as in :func:`analysis.lyapunov_spectrum`).
    steps : int
        Length of the window (a positive multiple of ``qr_every``).
    k : int or None, keyword-only
        Number of CLVs (the top k; default all variables). As are all the options below.
    seed, realizations : int
        Noise seed and number of independent noise paths (1 for a system without or with quenched noise).
    transient, backward_transient : int or None
        Forward and backward transients in steps (multiples of ``qr_every``; None: ``steps``). The CLVs converge
        like e^{−(λ_i − λ_{i+1}) T}: give several times the inverse gap of the exponents.
    qr_every : int
        Steps between QR factorisations (≥ 1); the CLVs are reported at these times.
    record_every : int
        Keep the vectors every ``record_every`` QR times of the window (0: no vectors, only angles and exponents).
    split : int or None
        Number u of unstable CLVs for the angle (1 ≤ u < k; None: the number of positive exponents, at least 1
        and at most k − 1). With k = 1 there is no angle.
    checkpoint : int or None
        QR intervals per checkpointed segment (None: about the square root of the number of intervals).
    tangent : array_like or None
        Initial tangent vectors (var, k) or (member, var, k), orthonormalised (default: k random orthonormal
        vectors drawn from ``seed`` — a generic start; the identity's columns can lie in an invariant subspace,
        e.g. e1 of a triangular map, and would never turn towards the top directions).
    t0 : int
        Absolute start time.
    backend : {"numpy", "numba", "jax"} or None
        Engine backend (None: chosen once for the whole work).
    executor, chunk_size
        Run chunks of members on a ``concurrent.futures.Executor`` (as in :func:`analysis.lyapunov_spectrum`).

    Notes
    -----
    Cost: both passes re-orthonormalise in the engine at every QR time (≈ 0.2–0.4 ms of Python per QR interval,
    shared by all members), so choose ``qr_every`` as large as the exponents allow (|λ| dt qr_every ≲ 700) and many
    members per call; the backward pass is a loop over QR intervals with the members vectorised.

    Returns
    -------
    xarray.Dataset
        ``vectors`` (realization, member, time_recorded, var, clv): unit CLVs (sign arbitrary); ``angle``
        (realization, member, time): smallest angle (radians) between span(v_1..v_u) and span(v_{u+1}..v_k);
        ``local_exponents`` (realization, member, time, clv): growth rate of v_i over [t, t + qr_every) per unit
        time; ``covariant_exponents`` (realization, member, clv): their time averages; ``exponents``
        (realization, member, clv): the forward QR exponents over the window (the same limits);
        ``diverged`` (realization, member). ``time`` is the absolute step of each QR time in the window.
        Attrs: the system, ``split``, ``transient``, ``backward_transient``, ``checkpoint``, ``qr_every``,
        ``backend``, ``method``.

    Raises
    ------
    ValueError
        Lengths not multiples of ``qr_every``, ``split`` out of range, the errors of
        :func:`analysis.lyapunov_spectrum` (``k``, ``tangent``, ``realizations``).

    Examples
    --------
    Without noise the CLVs of a constant matrix are its eigenvectors (here (1, 0) and (1, −1)/√2):

    >>> import numpy as np, rds, analysis
    >>> def shear(s, xi, p):
    ...     return (2.0 * s[0] + 1.5 * s[1], 0.5 * s[1])
    >>> lin = rds.RandomDynamicalSystem(shear, variables=("x", "y"))
    >>> ds = analysis.covariant_vectors(lin, np.zeros(2), 20, transient=20, backward_transient=40,
    ...                                 backend="numpy")
    >>> v = ds.vectors.isel(realization=0, member=0, time_recorded=0).values
    >>> np.abs(v).round(6).tolist()
    [[1.0, 0.707107], [0.0, 0.707107]]
    >>> round(float(np.degrees(ds.angle.mean())), 6)
    45.0
    """
    _check_system(system)
    qr_every = integer(qr_every, "qr_every", 1)
    steps = integer(steps, "steps", 1)
    if steps % qr_every:
        raise ValueError(f"steps must be a multiple of qr_every = {qr_every}, got {steps}")
    transient = _multiple(transient, "transient", qr_every, steps)
    backward_transient = _multiple(backward_transient, "backward_transient", qr_every, steps)
    record_every = integer(record_every, "record_every", 0)
    realizations = integer(realizations, "realizations", 1)
    t0 = integer(t0, "t0")
    check_seed(seed)
    deterministic = system.noise.quenched or int(np.prod(system.noise.shape)) == 0
    if realizations > 1 and deterministic:
        raise ValueError(f"realizations must be 1 for a system without (or with quenched) noise: it has a single "
                         f"noise path, got realizations={realizations}")
    X, _ = initial_states(initial, system.variables, members=members,
                          sample_seed=seed if sample_seed is None else sample_seed)
    if tangent is None:  # a generic start: the identity's columns may lie in an invariant subspace
        V0 = _initial_tangents(system.nvar, X.shape[0], None, generic_tangents(system.nvar, k, seed))
    else:
        V0 = _initial_tangents(system.nvar, X.shape[0], k, tangent)
    M, D, kk = V0.shape
    if split is not None:
        if kk < 2:
            raise ValueError("split needs k >= 2 (an unstable and a stable direction)")
        if isinstance(split, bool) or not isinstance(split, (int, np.integer)) or not 1 <= split < kk:
            raise ValueError(f"split (the number of unstable directions) must be an integer in [1, k - 1] = "
                             f"[1, {kk - 1}], got {split!r}")
        split = int(split)
    j_a = transient // qr_every
    nwin = steps // qr_every
    J = j_a + nwin + backward_transient // qr_every
    seg = max(1, int(np.ceil(np.sqrt(J)))) if checkpoint is None else integer(checkpoint, "checkpoint", 1)
    rec_idx = np.arange(0, nwin, record_every) if record_every else np.zeros(0, dtype=np.int64)
    check_memory(8 * realizations * M * rec_idx.size * D * kk, f"recording {rec_idx.size} times x {M} members x "
                 f"{D} variables x {kk} vectors", "record fewer vectors (record_every, or 0 for none)")
    check_memory(8 * M * (J // seg + 2 + 2 * seg) * D * kk, f"checkpoints and one segment of {seg} intervals "
                 f"for {M} members", "choose checkpoint closer to the square root of the number of intervals")
    if backend is None:
        backend = rds.backends.choose(system, None, X, rds.backends.Plan("tangent", M, J * qr_every, k=kk,
                                                                         repeats=2 * realizations))
    ctx = dict(system=system, seed=seed, t0=t0, qr_every=qr_every, backend=backend, seg=seg, J=J, j_a=j_a,
               nwin=nwin, rec_idx=rec_idx, executor=executor, chunk_size=chunk_size)
    forward = [_forward(X, V0, r, ctx) for r in range(realizations)]
    if split is None and kk >= 2:  # the number of positive exponents, in [1, k - 1]
        with np.errstate(invalid="ignore"):
            lam = np.nanmean(np.stack([f["logr"] for f in forward]), axis=(0, 1))
        split = min(max(int(np.sum(lam > 0)), 1), kk - 1)
    runs = [_backward(f, r, ctx, split) for r, f in enumerate(forward)]
    return _clv_dataset(system, runs, ctx, split=split, steps=steps, transient=transient,
                        backward_transient=backward_transient, given_tangent=tangent is not None)


def _segment(system, X, Q, t_start, n, ctx, realization):
    """Replay n QR intervals from (X, Q) at t_start: ``r_records`` (member, n, k, k), ``v_records`` (member, n,
    var, k) (Q after each), the final state and vectors."""
    q = ctx["qr_every"]
    return system.propagate_tangent(X, n * q, tangent=Q, seed=ctx["seed"], t0=t_start, realization=realization,
                                    times=t_start + q * np.arange(1, n + 1), return_r=True, backend=ctx["backend"],
                                    executor=ctx["executor"], chunk_size=ctx["chunk_size"], progress=False)


def _forward(X, V0, r, ctx):
    """Forward pass of one noise path: checkpoints (state, Q) of the segments that reach the window, the window's
    Σ log R_cc, and which members diverged."""
    system, q, seg, J, j_a, nwin = (ctx[k] for k in ("system", "qr_every", "seg", "J", "j_a", "nwin"))
    M, D, kk = V0.shape
    checkpoints = {}
    Xs, Qs = X, V0
    logr = np.zeros((M, nwin, kk))  # log R_cc of each window interval (summed at the end: any segmentation)
    diverged = np.zeros(M, dtype=bool)
    backend = ctx["backend"]
    for s0 in range(0, J, seg):
        n = min(seg, J - s0)
        if s0 + n > j_a:
            checkpoints[s0] = (Xs, Qs)
        out = _segment(system, Xs, Qs, ctx["t0"] + s0 * q, n, ctx, r)
        backend = out["backend"]
        diverged |= out["diverged"]
        lr = np.log(np.abs(np.diagonal(out["r_records"], axis1=-2, axis2=-1)))  # (member, n, k)
        j = s0 + 1 + np.arange(n)  # interval j ends at QR time j
        inw = (j > j_a) & (j <= j_a + nwin)
        logr[:, j[inw] - j_a - 1] = lr[:, inw]
        Xs = np.where(np.isfinite(out["state"]), out["state"], 0.0)  # diverged members go on from 0, marked
        Qs = np.where(np.isfinite(out["V"]), out["V"], np.eye(D, kk))
    return {"checkpoints": checkpoints, "logr": logr.sum(axis=1), "diverged": diverged, "backend": backend}


def _backward(fw, r, ctx, split):
    """Backward pass of one noise path, segment by segment from the checkpoints, newest first."""
    system, q, seg, J, j_a, nwin = (ctx[k] for k in ("system", "qr_every", "seg", "J", "j_a", "nwin"))
    checkpoints = fw["checkpoints"]
    M, D, kk = next(iter(checkpoints.values()))[1].shape
    rec_pos = np.full(nwin, -1)
    rec_pos[ctx["rec_idx"]] = np.arange(ctx["rec_idx"].size)
    C = np.broadcast_to(np.eye(kk), (M, kk, kk)).copy()
    vec = np.full((M, ctx["rec_idx"].size, D, kk), np.nan)
    loc = np.full((M, nwin, kk), np.nan)
    ang = np.full((M, nwin), np.nan)
    diverged = fw["diverged"].copy()
    for s0 in sorted(checkpoints, reverse=True):
        n = min(seg, J - s0)
        Xc, Qc = checkpoints.pop(s0)  # freed as soon as it is used
        out = _segment(system, Xc, Qc, ctx["t0"] + s0 * q, n, ctx, r)
        diverged |= out["diverged"]
        Rs = out["r_records"]  # R_j for j = s0+1 … s0+n
        Cs = np.empty((M, n, kk, kk))
        for i in range(n - 1, -1, -1):  # C_{j-1} = R_j^{-1} C_j D_j; a loop over QR intervals, members vectorised
            with np.errstate(invalid="ignore", divide="ignore"):
                W = np.linalg.solve(Rs[:, i], C)
                norms = np.linalg.norm(W, axis=1)  # (member, k)
                C = W / norms[:, None, :]
            C = np.where(np.isfinite(C), C, np.eye(kk))  # a diverged member restarts (it is marked NaN)
            Cs[:, i] = C  # C at QR time s0 + i
            w = s0 + i - j_a  # window index of QR time s0 + i
            if 0 <= w < nwin:
                with np.errstate(divide="ignore"):
                    loc[:, w] = -np.log(norms) / (q * system.dt)
        win = np.arange(s0, s0 + n) - j_a
        inw = (win >= 0) & (win < nwin)
        if not np.any(inw):
            continue
        Qall = np.concatenate([Qc[:, None], out["v_records"][:, :-1]], axis=1)  # Q_j for j = s0 … s0+n-1
        V = np.einsum("mivk,mikc->mivc", Qall[:, inw], Cs[:, inw])  # the CLVs at the window's times
        if split is not None:
            with np.errstate(invalid="ignore"):
                ang[:, win[inw]] = subspace_angle(V[..., :split], V[..., split:])
        p = rec_pos[win[inw]]
        hit = p >= 0
        vec[:, p[hit]] = V[:, hit]
    return {"vectors": vec, "local": loc, "angle": ang, "logr": fw["logr"], "diverged": diverged,
            "backend": fw["backend"]}


def _clv_dataset(system, runs, ctx, *, split, steps, transient, backward_transient, given_tangent):
    q, nwin, j_a = ctx["qr_every"], ctx["nwin"], ctx["j_a"]
    scale = 1.0 / (steps * system.dt)
    exps = np.stack([r["logr"] for r in runs]) * scale  # (realization, member, k)
    loc = np.stack([r["local"] for r in runs])
    div = np.stack([r["diverged"] for r in runs])
    kk = exps.shape[-1]
    R, M = exps.shape[:2]
    times = ctx["t0"] + (j_a + np.arange(nwin)) * q
    data = {"vectors": (("realization", "member", "time_recorded", "var", "clv"),
                        np.stack([r["vectors"] for r in runs])),
            "local_exponents": (("realization", "member", "time", "clv"), loc),
            "covariant_exponents": (("realization", "member", "clv"), np.mean(loc, axis=2)),
            "exponents": (("realization", "member", "clv"), exps),
            "diverged": (("realization", "member"), div)}
    if split is not None:
        data["angle"] = (("realization", "member", "time"), np.stack([r["angle"] for r in runs]))
    for key in ("vectors", "local_exponents", "covariant_exponents", "exponents", "angle"):
        if key in data:
            arr = data[key][1]
            arr[div] = np.nan
    ds = xr.Dataset(data, coords={
        "realization": np.arange(R), "member": np.arange(M), "clv": np.arange(1, kk + 1), "time": times,
        "time_recorded": times[ctx["rec_idx"]], "var": list(system.variables)})
    units = units_of("exponents", system.dt)
    ds["vectors"].attrs.update(long_name="covariant Lyapunov vectors (unit columns, sign arbitrary)", units="1")
    ds["clv"].attrs["long_name"] = "covariant Lyapunov vector index (largest exponent first)"
    ds["local_exponents"].attrs.update(long_name="growth rate of each CLV over [time, time + qr_every)",
                                       units=units)
    ds["covariant_exponents"].attrs.update(long_name="time average of the local covariant exponents", units=units)
    ds["exponents"].attrs.update(long_name="Lyapunov exponents over the window (forward QR)", units=units)
    if split is not None:
        ds["angle"].attrs.update(long_name=f"smallest angle between span(v_1..v_{split}) and "
                                           f"span(v_{split + 1}..v_{kk})", units="rad")
    ds["time"].attrs["long_name"] = "absolute time step (QR times in the window)"
    ds["time_recorded"].attrs["long_name"] = "absolute time steps at which the vectors are kept"
    ds.attrs.update(system.describe())
    ds.attrs.update({
        "analysis": "covariant_vectors", "seed": int(ctx["seed"]), "t0": int(ctx["t0"]), "steps": int(steps),
        "transient": int(transient), "backward_transient": int(backward_transient), "qr_every": int(q),
        "checkpoint": int(ctx["seg"]), "k": int(kk), "split": int(split) if split is not None else 0,
        "realizations": int(R), "t_window_start": int(times[0]), "t_window_end": int(times[0] + steps),
        "tangent_start": "given" if given_tangent else "random orthonormal (from seed)", "n_diverged": int(div.sum()),
        "backend": str(runs[0]["backend"]),
        "method": ("Ginelli et al. forward QR (Householder, positive diagonal) / backward R^-1 iteration from the "
                   "identity, replaying the same noise from checkpoints"),
        "reference": ("Ginelli, Poggi, Turchi, Chate, Livi & Politi (2007), Phys. Rev. Lett. 99, 130601; Kuptsov & "
                      "Parlitz (2012), J. Nonlinear Sci. 22, 727"),
    })
    return annotate(ds)
