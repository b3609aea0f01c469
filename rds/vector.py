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
``"jax"`` (default when JAX is installed; :mod:`rds.backends.jax`)
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

__all__ = ["MemberPredicate", "member_predicate", "default_names", "norm_ball"]

_PREDICATES: dict = {}


def default_names(dim: int) -> tuple:
    """Default parameter names ``("theta0", …, "theta{D-1}")`` of a vector map.

    Examples
    --------
    >>> default_names(3)
    ('theta0', 'theta1', 'theta2')
    """
    return tuple(f"theta{i}" for i in range(dim))


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
