"""The NumPy backend: the reference, which evaluates the map as written.

Elementwise maps: a Python loop over steps, each step one call of the map per block of ``BLOCK`` members (the
update of :mod:`rds.backends._sources` with ``m`` a slice of members: the map's temporaries then stay in the CPU's
cache, twice as fast as whole-ensemble arrays at 10⁵ members). Vector maps: Python loops over steps and members calling
the one-member step. Nothing is recorded, rewritten or frozen: the map, as the user's Python sees it, is called at
every step (only the automatic complex-step Jacobian is a clone of the map, rebuilt whenever the map's identity
changes). Slow for long runs, which ``backend=None`` sends to the compiled backends.

Cost model (``backend=None``): ``repeats · steps · (s + (members − m) · MEMBER_STEP_S · w)``, where ``s`` is the
wall time of one step of ``m ≤ 32`` members *measured* on this map (two short runs, once per map identity, service
and ``k``; the Python overhead per step varies tenfold between a logistic map and a tangent step of a 4-variable
network) and ``w`` the cost of the service relative to evolve (a tangent step: ~nvar² k products). Runs whose
prior estimate (``STEP_S`` per step) is under :data:`PROBE_BELOW` seconds are not measured: they stay on NumPy
unless a compiled kernel is already in memory. Measured against compiled runs by ``benchmarks/cost_model.py``.
"""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np

from rds._codegen import make_function
from rds._complexstep import COMPLEX_STEP, casts_are_errors
from rds.backends._sources import evolve_source, exit_source, mgs_source, tangent_source, xi_of_source

__all__ = ["BACKEND", "NumpyKernels", "NumpyVectorKernels", "STEP_S", "MEMBER_STEP_S", "PROBE_BELOW"]

#: Cost model (seconds; a 2-core AVX2 machine): prior Python overhead per step (a logistic map ≈ 4e-6, the FA map
#: ≈ 2e-5, FA's 4×4 tangent step ≈ 2e-4; replaced by a measurement for runs worth one), and per member-step.
STEP_S = 1e-5
MEMBER_STEP_S = 4e-8
#: Members per call of an elementwise map (its temporaries, ~10 arrays of this length, fit in a 2 MB cache).
BLOCK = 16384
#: Runs estimated (prior) under this many seconds on NumPy are not probed.
PROBE_BELOW = 0.05
#: Steps of the probe run (timed against a 2-step run, so per-call overheads cancel).
PROBE_STEPS = 32
#: The least a measured NumPy step may cost (a one-variable map's Python overhead on a fast machine).
MIN_STEP_S = 2e-6
#: A vector map's reference evaluation: Python overhead per member-step.
VECTOR_MEMBER_STEP_S = 2e-5


def _blocks(M: int) -> list[slice]:
    """The member blocks of an ensemble of ``M`` members (one call of the map each)."""
    return [slice(b, min(b + BLOCK, M)) for b in range(0, M, BLOCK)] or [slice(0, 0)]


def _np_sel(ok, a):
    return np.where(ok, a, np.nan)


def _np_pick(cond, a, b):
    return np.where(cond, a, b)


class NumpyKernels:
    """Vectorised reference kernels of an elementwise map: a Python loop over steps, NumPy over members."""

    name = "numpy"

    def __init__(self, system):
        nvar = system.nvar
        nd = len(system.noise.shape)
        ind = system.independent_noise
        ns = {"step": system.step, "jac": system.map.jacobian_function(), "sel": _np_sel, "pick": _np_pick,
              "isfinite": np.isfinite}
        self._nvar, self._nd, self._ind = nvar, nd, ind
        self._evolve = make_function(evolve_source(nvar, nd, ind), "update", ns)
        self._xi_of = make_function(xi_of_source(ind), "xi_of")
        self._exit_src = exit_source(nvar, nd, ind)
        self._ns = ns
        self._exit_cache: dict = {}
        self._tangent_cache: dict = {}
        self._jac = ns["jac"]
        self._step = system.step
        self._auto = system.map.jacobian is None

    def _strict(self):
        """Complex-step evaluations: a complex value cast to real is an error naming the map (not a wrong J)."""
        return casts_are_errors(self._step) if self._auto else contextlib.nullcontext()

    def evolve(self, X, noise, params, nsteps):
        blocks = _blocks(X.shape[1])
        for t in range(nsteps):
            nt = self._xi_of(noise, t)
            for m in blocks:
                self._evolve(X, m, nt, t, params)

    def _tangent_update(self, k):
        if k not in self._tangent_cache:
            src = tangent_source(self._nvar, self._nd, self._ind, k)
            self._tangent_cache[k] = (make_function(src, "update", self._ns),
                                      make_function(mgs_source(self._nvar, k), "mgs", self._ns))
        return self._tangent_cache[k]

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        update, qr = self._tangent_update(V.shape[1])
        blocks = _blocks(X.shape[1])
        with self._strict():
            for t in range(nsteps):
                nt = self._xi_of(noise, t)
                n = n0 + t + 1
                orth = n % qr_every == 0 or (t == nsteps - 1 and qr_final)
                for m in blocks:
                    update(X, V, m, nt, t, params)
                    if orth:
                        qr(V, logr, m)

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside, inside_key):
        entry = self._exit_cache.get(inside_key)
        if entry is None or entry[0] is not inside:
            entry = (inside, make_function(self._exit_src, "update", dict(self._ns, inside=inside)))
            self._exit_cache = {inside_key: entry}
        update = entry[1]
        blocks = _blocks(X.shape[1])
        for t in range(nsteps):
            nt = self._xi_of(noise, t)
            for m in blocks:
                update(X, exit_step, m, nt, t, params, n0 + t + 1)
            if np.all(exit_step >= 0):
                break

    def jacobian(self, X, xi, params):
        cols = tuple(np.ascontiguousarray(X.T))
        with self._strict():
            J = self._jac(cols, xi, params)
        M = X.shape[0]
        return np.stack([np.stack(np.broadcast_arrays(*[np.asarray(e, dtype=float) for e in row],
                                                      np.empty(M)), axis=-1)[..., :-1] for row in J], axis=-2)


def qr_positive(V):
    """Householder QR of a stack of (D, k) matrices with R's diagonal made non-negative: ``(Q, R)``, V = Q R.

    Examples
    --------
    >>> import numpy as np
    >>> Q, R = qr_positive(np.array([[[0.0, 1.0], [-2.0, 0.0]]]))
    >>> np.diagonal(R[0]).tolist(), bool(np.allclose(Q @ R, [[0.0, 1.0], [-2.0, 0.0]]))
    ([2.0, 1.0], True)
    """
    Q, R = np.linalg.qr(V)
    s = np.where(np.diagonal(R, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    return Q * s[..., None, :], R * s[..., :, None]


def _qr(V, logr):
    """Householder QR of (D, k) with positive diag R: returns Q and adds log|R_cc| to ``logr`` (in place)."""
    Q, R = qr_positive(V)
    with np.errstate(divide="ignore"):  # R_cc = 0: a collapsed direction, log 0 = -inf (Q stays orthonormal)
        logr += np.log(np.abs(np.diagonal(R)))
    return Q


class NumpyVectorKernels:
    """Reference kernels of a vector map: Python loops over steps and members, the step as written.

    Tangents by complex-step differentiation (exact to rounding for analytic maps; a complex value cast to real
    inside the map is a :class:`rds._complexstep.ComplexStepError`); QR as the JAX kernels.
    """

    name = "numpy"

    def __init__(self, system):
        self._step = system.step
        self._jac = system.jacobian
        self._nvar = system.nvar
        self._independent = bool(system.independent_noise)

    def _xi(self, noise, t, m):
        return noise[t][..., m] if self._independent else noise[t]

    def step_one(self, theta, xi, params):
        """One member's step as written, its output's shape checked: ``theta`` (D,) → (D,)."""
        out = np.asarray(self._step(theta, xi, params))
        if out.shape != (self._nvar,):
            raise ValueError(f"step must return an array of shape ({self._nvar},) (the vector theta of one member), "
                             f"got shape {out.shape}")
        return out

    def _advance(self, theta, xi, params):
        new = self.step_one(theta.copy(), xi, params).astype(float)
        return new if np.isfinite(np.sum(new)) else np.full(self._nvar, np.nan)  # the engine's test

    def evolve(self, X, noise, params, nsteps):
        for t in range(nsteps):
            for m in range(X.shape[1]):
                X[:, m] = self._advance(X[:, m], self._xi(noise, t, m), params)

    def jvp(self, theta, v, xi, params):
        """J(θ, ξ) v by complex step (exact to rounding for maps analytic in θ)."""
        nv = np.sqrt(np.sum(v * v))
        if not np.isfinite(nv):
            return np.full(self._nvar, np.nan)
        if nv == 0.0:
            return np.zeros(self._nvar)
        h = COMPLEX_STEP
        c = np.asarray(self._step(theta + (1j * h / nv) * v, xi, params))
        return nv * (c.imag / h)

    def _strict(self):
        return casts_are_errors(self._step) if self._jac is None else contextlib.nullcontext()

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        with self._strict():
            self._tangent(X, V, logr, noise, params, nsteps, n0, qr_every, qr_final)

    def _tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        M, k = X.shape[1], V.shape[1]
        for t in range(nsteps):
            do_qr = (n0 + t + 1) % qr_every == 0 or (t == nsteps - 1 and qr_final)
            for m in range(M):
                th, xi = X[:, m].copy(), self._xi(noise, t, m)
                new = self._advance(th, xi, params)
                if not np.isfinite(np.sum(new)):
                    W = np.full((self._nvar, k), np.nan)
                elif self._jac is not None:
                    W = np.asarray(self._jac(th, xi, params), dtype=float) @ V[:, :, m]
                else:
                    W = np.stack([self.jvp(th, V[:, c, m], xi, params) for c in range(k)], axis=1)
                X[:, m] = new
                if do_qr:
                    lr = logr[:, m].copy()
                    W = _qr(W, lr)
                    logr[:, m] = lr
                V[:, :, m] = W

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside, inside_key):
        pred = getattr(inside, "member", inside)
        for t in range(nsteps):
            alive = np.flatnonzero(exit_step < 0)
            if alive.size == 0:
                break
            for m in alive:
                X[:, m] = self._advance(X[:, m], self._xi(noise, t, m), params)
                if not bool(pred(X[:, m])):
                    exit_step[m] = n0 + t + 1

    def jacobian(self, theta, xi, params):
        """Jacobian matrices (member, D, D): the analytic one if given, else complex step column by column."""
        if self._jac is not None:
            return np.stack([np.asarray(self._jac(th, xi, params), dtype=float) for th in theta])
        eye = np.eye(self._nvar)
        with self._strict():
            return np.stack([np.stack([self.jvp(th, eye[:, j], xi, params) for j in range(self._nvar)], axis=1)
                             for th in theta])


class _NumpyBackend:
    """The NumPy reference backend (see the module docstring)."""

    name = "numpy"
    forms = ("elementwise", "vector")

    def available(self) -> bool:
        return True

    def kernels(self, system):
        return NumpyVectorKernels(system) if system.map.form == "vector" else NumpyKernels(system)

    def estimate(self, system, plan, kernels) -> float:
        nvar = system.nvar
        if system.map.form == "vector":
            w = 1.0 if plan.service != "tangent" else 1.0 + (plan.k or nvar)
            return plan.repeats * w * plan.member_steps * VECTOR_MEMBER_STEP_S
        k = nvar if plan.k is None else plan.k
        if plan.service == "tangent":
            w = 1.0 + nvar * nvar * k / 8.0
        else:
            w = 1.2 if plan.service == "exit" else 1.0
        steps = max(plan.steps, 1)
        prior = plan.repeats * w * (steps * STEP_S + plan.member_steps * MEMBER_STEP_S)
        if prior < PROBE_BELOW:
            return prior
        m = 1 << (min(max(int(plan.members), 1), 32).bit_length() - 1)  # 1, 2, 4, …, 32: few probes per map
        per_step = _probe(system, kernels(), "tangent" if plan.service == "tangent" else "evolve", k, m)
        if per_step is None:
            return prior
        if plan.service == "exit":
            per_step *= 1.2
        return plan.repeats * steps * (per_step + max(plan.members - m, 0) * MEMBER_STEP_S * w)


def _probe(system, kern, service, k, m):
    """Measured wall time of one NumPy step of ``service`` for ``m`` members (cached on the kernels), or None."""
    cache = kern.__dict__.setdefault("_probe", {})
    key = (service, k if service == "tangent" else None, m)
    if key not in cache:
        X = np.full((m, system.nvar), 0.1)
        if service == "tangent":
            V = np.zeros((system.nvar, k))
            V[np.arange(k), np.arange(k)] = 1.0
            run = lambda n: system.propagate_tangent(X, n, tangent=V, backend="numpy", progress=False)
        else:
            run = lambda n: system.evolve(X, n, backend="numpy", progress=False)
        def timed(n):
            t = time.perf_counter()
            run(n)
            return time.perf_counter() - t

        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                run(1)  # first-call set-up
                # best of 3 (a busy machine only adds time), per-call overheads cancel in the difference
                short = min(timed(2) for _ in range(3))
                long = min(timed(2 + PROBE_STEPS) for _ in range(3))
            cache[key] = max((long - short) / PROBE_STEPS, MIN_STEP_S)
        except Exception:  # a map the probe cannot run (the real run will say why): use the prior
            cache[key] = None
    return cache[key]


BACKEND = _NumpyBackend()
