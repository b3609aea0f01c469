"""The vector map form: one member's step on a 1-D parameter vector θ (length D), written with array operations.

``step(theta, xi, params) -> theta_new`` advances *one* member: ``theta`` has shape (D,), ``xi`` is this step's noise
sample for that member (shape ``noise.shape``, e.g. a minibatch of inputs), ``params`` the parameter tuple. Write it
with NumPy (``np.tanh``, ``W @ x``, ``np.mean`` …), functionally (no in-place assignment into ``theta``). Declared
by ``rds.RandomDynamicalSystem(step, noise=..., form="vector", dim=D)``; every service of the system then works on
it (``evolve``, ``trajectory``, ``propagate_tangent`` with any k ≤ D, ``first_exit``, ``apply``,
``jacobian_matrix``, ``noise_path``) with the same replayable noise, executors and Dataset conventions as the
elementwise form.

Backends
--------
``"jax"`` (default when JAX is installed; :mod:`rds.jax_backend`)
    the same function with ``np`` → ``jax.numpy``, jit + vmap over members + a loop over steps; tangents by
    ``jax.jvp`` of k vectors (exact; the D × D Jacobian is never formed). CPU or GPU, float64 by default.
``"numpy"`` (the reference)
    a Python loop over members calling the step as written; tangents by the system's analytic
    ``jacobian(theta, xi, params) -> (D, D)`` if it has one, else by complex-step differentiation of each
    direction, ``J v = |v| Im φ(θ + i h v/|v|) / h`` (exact to rounding for maps analytic in θ: use ``np.tanh``,
    ``scipy.special.erf``, ``np.logaddexp`` …, not ``abs``/``maximum``/comparisons of θ, for which only the JAX
    backend differentiates). Slow, for tests and small runs. Both use the same QR (Householder, with the sign of
    diag R made positive) every ``qr_every`` steps, so the two backends agree to rounding (≤ 1e-12).

Dataset conventions: the ``var`` dimension indexes the D parameters (it keeps its name, so that every analysis
works on both forms); its coordinate holds the parameter names given as ``variables`` (e.g. a model's
``("w1_1", …, "v1", …)``) or, by default, ``"theta0" … "theta{D-1}"``. Attrs carry ``form = "vector"``, ``dim = D``
and the backend and precision used.

Regions for :meth:`~rds.RandomDynamicalSystem.first_exit` on a vector map are predicates on one member's θ,
``inside(theta) -> bool``: a norm ball ``lambda th: np.sum(th**2) <= r**2``, a loss threshold, or a
:class:`rds.regions.Box` over named parameters (its predicate indexes ``theta[i]``).
Examples
--------
A random linear map θ ↦ (I + G_t/√D) θ with a Gaussian matrix G_t as the noise sample; the sum of its Lyapunov
exponents is the mean log|det| of the matrices:

>>> import numpy as np, rds, analysis
>>> D = 6
>>> def step(theta, xi, params):
...     return theta + xi @ theta / np.sqrt(D)
>>> lin = rds.RandomDynamicalSystem(step, noise=rds.noise.GaussianInputs(1.0, batch=D, dim=D), form="vector", dim=D)
>>> ds = analysis.lyapunov_spectrum(lin, np.ones(D), 50, qr_every=5, backend="numpy")
>>> mats = np.eye(D) + lin.noise_path(0, 50) / np.sqrt(D)
>>> bool(np.isclose(float(ds["sum"][0, 0]), np.mean(np.linalg.slogdet(mats)[1]), atol=1e-12))
True
"""

from __future__ import annotations

import numpy as np

from rds.engine import COMPLEX_STEP

__all__ = ["VECTOR_BACKENDS", "choose_backend", "kernels_for", "NumpyVectorKernels", "MemberPredicate",
           "default_names", "norm_ball"]

VECTOR_BACKENDS = ("numpy", "jax")
_KERNELS: dict = {}
_PREDICATES: dict = {}


def default_names(dim: int) -> tuple:
    """Default parameter names ``("theta0", …, "theta{D-1}")`` of a vector map.

    Examples
    --------
    >>> default_names(3)
    ('theta0', 'theta1', 'theta2')
    """
    return tuple(f"theta{i}" for i in range(dim))


def choose_backend(system, backend):
    """The backend of a run: ``None`` → ``"jax"`` for a vector map when JAX is installed, else ``"numpy"``.

    For an elementwise map ``None`` never selects JAX (Numba is faster on CPU for a few variables; ask for
    ``backend="jax"`` explicitly, e.g. on a GPU) — that choice is made by :func:`rds.engine.choose_backend`.
    """
    from rds import jax_backend
    if backend is None:
        return "jax" if jax_backend.available() else "numpy"
    if backend not in VECTOR_BACKENDS:
        raise ValueError(f"backend must be one of {VECTOR_BACKENDS} or None for a vector map (Numba compiles "
                         f"elementwise maps only), got {backend!r}")
    if backend == "jax" and not jax_backend.available():  # pragma: no cover - jax is installed in CI
        raise ValueError("backend='jax' needs the jax package (pip install jax)")
    return backend


def _key(system, backend):
    return (backend, system.form, system.step, system.nvar, tuple(system.noise.shape), system.independent_noise,
            bool(system.noise.quenched), getattr(system, "precision", "float64"))


def kernels_for(system, backend):
    """Kernels of a vector map on ``backend``, or of an elementwise map on ``"jax"`` (shared per layout)."""
    key = _key(system, backend)
    if key not in _KERNELS:
        if backend == "jax":
            from rds.jax_backend import JaxKernels
            _KERNELS[key] = JaxKernels(system)
        else:
            _KERNELS[key] = NumpyVectorKernels(system)
    return _KERNELS[key]


# ---------------------------------------------------------------------------------------------------------------
# predicates

class MemberPredicate:
    """A predicate ``inside(theta) -> bool`` on one member's θ, callable like an elementwise one.

    The engine (and :mod:`analysis.escape_times`) call predicates on the tuple of state columns
    ``(theta_0[members], …, theta_{D-1}[members])``; this wrapper evaluates the member predicate on each member and
    returns a bool array over members. ``member`` is the predicate as written (the JAX kernels vmap it).
    """

    def __init__(self, member):
        self.member = member

    def __call__(self, state):
        cols = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in state])
        X = np.stack(cols, axis=-1)
        flat = X.reshape(-1, X.shape[-1])
        out = np.fromiter((bool(self.member(th)) for th in flat), dtype=bool, count=flat.shape[0])
        return out.reshape(X.shape[:-1])


def member_predicate(region, variables):
    """The :class:`MemberPredicate` of a region (Box, Predicate) or callable, for a vector map (cached)."""
    from rds.regions import as_predicate
    inside = as_predicate(region, variables)
    key = id(inside)
    if key not in _PREDICATES or _PREDICATES[key][0] is not inside:
        _PREDICATES[key] = (inside, MemberPredicate(inside))
    return _PREDICATES[key][1]


def norm_ball(radius: float, center=None):
    """A region for vector maps: the closed ball ``|θ − center| ≤ radius`` (NaN is outside).

    Parameters
    ----------
    radius : float
        Radius > 0.
    center : array_like, shape (D,), or None
        Centre (default the origin).

    Returns
    -------
    rds.regions.Predicate

    Examples
    --------
    >>> import numpy as np
    >>> ball = norm_ball(1.0)
    >>> bool(ball.inside(np.array([0.6, 0.6]))), bool(ball.inside(np.array([0.8, 0.8])))
    (True, False)
    """
    from rds._checks import positive
    from rds.regions import Predicate
    r2 = positive(radius, "radius") ** 2
    c = None if center is None else np.asarray(center, dtype=float)

    if c is None:
        def inside(theta):
            return np.sum(theta * theta) <= r2
    else:
        def inside(theta):
            d = theta - c
            return np.sum(d * d) <= r2
    return Predicate(inside, name=f"norm_ball(r={float(radius)!r})")


# ---------------------------------------------------------------------------------------------------------------
# the NumPy reference

def _qr(V, logr):
    """Householder QR of (D, k) with positive diag R: returns Q and adds log|R_cc| to ``logr`` (in place)."""
    Q, R = np.linalg.qr(V)
    d = np.diagonal(R).copy()
    s = np.where(d < 0, -1.0, 1.0)
    logr += np.log(np.abs(d))
    return Q * s


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

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside):
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


# ---------------------------------------------------------------------------------------------------------------
# single steps of a vector map (the system's apply / jacobian_matrix)

def apply(system, X, xi):
    """One step for states (..., D) and one noise sample (NumPy, member by member)."""
    flat = X.reshape(-1, system.nvar)
    kern = kernels_for(system, "numpy")
    out = np.stack([kern._call(th.copy(), xi, system._params_for_kernels()).astype(float) for th in flat]) \
        if flat.shape[0] else np.empty((0, system.nvar))
    return out.reshape(X.shape)


def jacobian_matrix(system, X, xi, backend=None):
    """Jacobians (..., D, D) of a vector map: ``jax.jacfwd`` (backend "jax") or complex step (backend "numpy")."""
    backend = choose_backend(system, backend)
    flat = X.reshape(-1, system.nvar)
    kern = kernels_for(system, backend)
    if backend == "jax":
        J = kern.jacobian(flat, xi)
    else:
        J = kern.jacobian(flat, xi, system._params_for_kernels())
    return J.reshape(X.shape + (system.nvar,))
