"""The NumPy backend: the reference, which evaluates the map as written.

Elementwise maps: a Python loop over steps, each step one call of the map on whole arrays of members (the update
of :mod:`rds.backends._sources` with ``m = slice(None)``). Vector maps: Python loops over steps and members calling
the one-member step. Nothing is recorded, rewritten or frozen: the map, as the user's Python sees it, is called at
every step (only the automatic complex-step Jacobian is a clone of the map, rebuilt whenever the map's identity
changes). Slow for long runs, which ``backend=None`` sends to the compiled backends.

Cost model (``backend=None``): ``repeats · w · (steps · STEP_S + member_steps · MEMBER_STEP_S)`` with ``w`` the
cost of the service relative to evolve (a tangent step: ~nvar² k products).
"""

from __future__ import annotations

import numpy as np

from rds._codegen import make_function
from rds._complexstep import COMPLEX_STEP
from rds.backends._sources import evolve_source, exit_source, mgs_source, tangent_source, xi_of_source

__all__ = ["BACKEND", "NumpyKernels", "NumpyVectorKernels", "STEP_S", "MEMBER_STEP_S"]

#: Cost model (seconds; a 2-core AVX2 machine): Python overhead per step, and per member-step.
STEP_S = 3e-5
MEMBER_STEP_S = 4e-8
#: A vector map's reference evaluation: Python overhead per member-step.
VECTOR_MEMBER_STEP_S = 2e-5


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

    def evolve(self, X, noise, params, nsteps):
        m = slice(None)
        for t in range(nsteps):
            self._evolve(X, m, self._xi_of(noise, t), t, params)

    def _tangent_update(self, k):
        if k not in self._tangent_cache:
            src = tangent_source(self._nvar, self._nd, self._ind, k)
            self._tangent_cache[k] = (make_function(src, "update", self._ns),
                                      make_function(mgs_source(self._nvar, k), "mgs"))
        return self._tangent_cache[k]

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
        update, qr = self._tangent_update(V.shape[1])
        m = slice(None)
        for t in range(nsteps):
            update(X, V, m, self._xi_of(noise, t), t, params)
            n = n0 + t + 1
            if n % qr_every == 0 or (t == nsteps - 1 and qr_final):
                qr(V, logr, m)

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside, inside_key):
        entry = self._exit_cache.get(inside_key)
        if entry is None or entry[0] is not inside:
            entry = (inside, make_function(self._exit_src, "update", dict(self._ns, inside=inside)))
            self._exit_cache = {inside_key: entry}
        update = entry[1]
        m = slice(None)
        for t in range(nsteps):
            update(X, exit_step, m, self._xi_of(noise, t), t, params, n0 + t + 1)
            if np.all(exit_step >= 0):
                break

    def jacobian(self, X, xi, params):
        cols = tuple(np.ascontiguousarray(X.T))
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
    logr += np.log(np.abs(np.diagonal(R)))
    return Q


class NumpyVectorKernels:
    """Reference kernels of a vector map: Python loops over steps and members, the step as written.

    Tangents by complex-step differentiation (exact to rounding for analytic maps); QR as the JAX kernels.
    """

    name = "numpy"

    def __init__(self, system):
        self._step = system.step
        self._jac = system.jacobian
        self._nvar = system.nvar
        self._independent = bool(system.independent_noise)

    def _xi(self, noise, t, m):
        return noise[t][..., m] if self._independent else noise[t]

    def _call(self, theta, xi, params):
        out = np.asarray(self._step(theta, xi, params))
        if out.shape != (self._nvar,):
            raise ValueError(f"step must return an array of shape ({self._nvar},) (the vector theta of one member), "
                             f"got shape {out.shape}")
        return out

    def _advance(self, theta, xi, params):
        new = self._call(theta.copy(), xi, params).astype(float)
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

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final):
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
        if plan.service == "tangent":
            w = 1.0 + nvar * nvar * (nvar if plan.k is None else plan.k) / 8.0
        else:
            w = 1.2 if plan.service == "exit" else 1.0
        return plan.repeats * w * (max(plan.steps, 1) * STEP_S + plan.member_steps * MEMBER_STEP_S)


BACKEND = _NumpyBackend()
