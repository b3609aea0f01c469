"""Online SGD of a two-layer network on a teacher network with Gaussian inputs (the soft committee machine).

A student f(x; W, v) = Σ_j v_j σ(w_j · x) with d inputs and N hidden neurons (:mod:`rds.models.two_layer`, the one
home of the network's output, loss and derivatives) learns a teacher f*(x) = Σ_m v*_m σ(w*_m · x) from fresh
Gaussian inputs x ~ N(0, σ² I_d), S per step (the soft committee machine of the statistical mechanics of on-line
learning; Saad & Solla, Phys. Rev. E 52 (1995) 4225, with trainable output weights). One SGD step on the batch
B_t = (x_1 … x_S) drawn at time t is

    θ_{t+1} = θ_t − η ∇L(θ_t; B_t),    L = c · (1/S) Σ_k (f(x_k; θ) − f*(x_k))²,

with c = ½ (``"half_mean"``, default, the loss l = ½ (f − T)² of the Fukumizu–Amari model) or c = 1 (``"mean"``).
θ = (W.ravel(), v) has D = N·d + N entries: a *vector map* (:mod:`rds.vector`), run by JAX (or the NumPy
reference, whose Jacobian I − η ∇²L is analytic).

For d = 1, N = 2, tanh, the teacher w* = (1, 4), v* = (2, −1) (T(x) = 2 tanh x − tanh 4x) and c = ½ this is
:func:`rds.models.fukumizu_amari` (Sato, Tsutsui & Fujiwara, "Noise-induced degeneration in online learning",
Physica D 430 (2022) 133095, eqs. 12–16), with the same noise path.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from rds._checks import check_parameter_count, integer, nonnegative, positive
from rds.models.two_layer import (
    ACTIVATIONS,
    activation_function,
    as_float,
    check_network,
    forward,
    gradient,
    hessian,
    loss,
    normalization_factor,
    pack,
    unpack,
    variables,
)
from rds.noise import GaussianInputs
from rds.system import RandomDynamicalSystem

__all__ = ["soft_committee", "generalization_losses", "SCMParams"]

SCMParams = namedtuple("SCMParams", ["eta"])


@functools.cache
def _scm_functions(N, d, activation, normalization, teacher):
    """The step and its analytic Jacobian for one layout and teacher (cached: kernels compile once)."""
    tW = np.array(teacher[0], dtype=float).reshape(-1, d)
    tv = np.array(teacher[1], dtype=float)
    eye = np.eye(N * d + N)

    def scm_step(theta, xi, params):
        W, v = unpack(theta, N, d)
        y = forward(tW, tv, xi, activation, xp=np)
        gW, gv = gradient(W, v, xi, y, activation, normalization, xp=np)
        return pack(W - params[0] * gW, v - params[0] * gv, xp=np)

    def scm_jacobian(theta, xi, params):
        W, v = unpack(theta, N, d)
        y = forward(tW, tv, xi, activation)
        return eye - params[0] * hessian(W, v, xi, y, activation, normalization)
    return scm_step, scm_jacobian


def soft_committee(inputs: int = 1, hidden: int = 2, teacher_W=None, teacher_v=None, eta: float = 0.1,
                   sigma2: float = 1.0, batch: int = 1, activation: str = "tanh", normalization: str = "half_mean",
                   common_noise: bool = True, precision: str = "float64") -> RandomDynamicalSystem:
    """Online SGD of a two-layer student on a two-layer teacher with Gaussian inputs, as a vector map.

    Parameters
    ----------
    inputs : int
        Input dimension d ≥ 1.
    hidden : int
        Student hidden neurons N ≥ 1 (D = N·d + N parameters).
    teacher_W : array_like, shape (M, d), or None
        Teacher input weights (default: the FA teacher w* = (1, 4) for d = 1; else rows e_1 … e_M, M = N).
    teacher_v : array_like, shape (M,), or None
        Teacher output weights (default (2, −1) for d = 1, else ones).
    eta : float
        Learning rate η > 0.
    sigma2 : float
        Input variance σ² ≥ 0 (each component; 1/d gives pre-activations of unit variance).
    batch : int
        Batch size S ≥ 1 (S = 1: online learning).
    activation : {"tanh", "erf", "softplus"}
        σ of both networks.
    normalization : {"half_mean", "mean"}
        c = ½ or 1 in L = c (1/S) Σ (f − f*)².
    common_noise : bool
        All members share the inputs (default).
    precision : {"float64", "float32"}
        Of the JAX backend.

    Returns
    -------
    RandomDynamicalSystem
        ``form="vector"``, variables :func:`rds.models.two_layer.variables` (``w1…wN, v1…vN`` for d = 1, else
        ``w{j}_{a}, v{j}``); noise :class:`rds.noise.GaussianInputs` (ξ_t of shape (S, d)); attrs declare the
        symmetry (neuron permutations; sign flips (w_j, v_j) → −(w_j, v_j) for odd σ).

    Examples
    --------
    >>> import numpy as np, rds
    >>> scm = rds.models.soft_committee(inputs=1, hidden=2, eta=0.1, sigma2=1.0)   # = fukumizu_amari()
    >>> u = np.array([0.5, -0.3, 0.2, 0.1])
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> bool(np.allclose(scm.evolve(u, 200, backend="numpy"), fa.evolve(u, 200, backend="numpy"), atol=1e-12))
    True
    """
    d = integer(inputs, "inputs", 1)
    N = integer(hidden, "hidden", 1)
    eta = positive(eta, "eta")
    nonnegative(sigma2, "sigma2")
    if activation not in ACTIVATIONS:
        activation_function(activation)  # raises the ValueError naming the argument
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} (a name), got {activation!r}")
    normalization_factor(normalization)
    if teacher_W is None:
        teacher_W = np.array([[1.0], [4.0]]) if d == 1 else np.eye(N, d)
    if teacher_v is None:
        teacher_v = np.array([2.0, -1.0]) if d == 1 else np.ones(np.shape(teacher_W)[0])
    tW, tv = check_network(teacher_W, teacher_v, "teacher_W", "teacher_v")
    if tW.ndim != 2 or tW.shape[1] != d:
        raise ValueError(f"teacher_W must have shape (M, d) = (M, {d}), got {tW.shape}")
    check_parameter_count(N * d + N, f"inputs={d}, hidden={N}", jacobian=True)
    step, jac = _scm_functions(N, d, activation, normalization, (tuple(tW.ravel()), tuple(tv)))
    odd = activation in ("tanh", "erf")
    system = RandomDynamicalSystem(
        step, noise=GaussianInputs(sigma2, batch, d), variables=variables(N, d), params=SCMParams(eta),
        jacobian=jac, name="soft_committee", common_noise=common_noise, form="vector", precision=precision,
        attrs={"reference": "Saad & Solla, Phys. Rev. E 52 (1995) 4225 (soft committee machine); Sato, Tsutsui & "
                            "Fujiwara, Physica D 430 (2022) 133095 (d = 1, N = 2)",
               "equations": "theta <- theta - eta grad L, L = c (1/S) sum_k (f(x_k) - f*(x_k))^2, x ~ N(0, s2 I)",
               "hidden": N, "inputs": d, "activation": activation, "normalization": normalization,
               "teacher_W": tW.ravel().copy(), "teacher_v": tv.copy(),
               "network_symmetry": "neuron_permutation_sign" if odd else "neuron_permutation"})
    system._spec = (soft_committee, {"inputs": d, "hidden": N, "teacher_W": tW, "teacher_v": tv, "eta": eta,
                                     "sigma2": sigma2, "batch": batch, "activation": activation,
                                     "normalization": normalization, "common_noise": common_noise,
                                     "precision": precision})
    return system


def generalization_losses(system, n_test: int = 4096, seed: int = 0) -> dict:
    """The generalisation error of a :func:`soft_committee` student, estimated on a fixed Gaussian test set.

    ε_g(θ) = c · E_x[(f(x; θ) − f*(x))²], x ~ N(0, σ² I_d), by the mean over ``n_test`` inputs drawn once
    (``numpy.random.default_rng(seed)``): the same inputs for every θ, so curves along a trajectory are smooth and
    comparable (statistical error ~ 1/√n_test relative).

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`soft_committee`.
    n_test : int
        Test inputs (≥ 1).
    seed : int
        Seed of the test inputs.

    Returns
    -------
    dict of str to callable
        ``{"generalization": ε_g}``, θ of shape (..., D) to shape (...). The default loss of
        :func:`analysis.loss_curves` for this model.

    Examples
    --------
    >>> import numpy as np, rds
    >>> from rds.models.soft_committee import generalization_losses
    >>> scm = rds.models.soft_committee(inputs=4, hidden=2)
    >>> eg = generalization_losses(scm)["generalization"]
    >>> teacher = np.concatenate([np.eye(2, 4).ravel(), np.ones(2)])   # the student equal to the teacher
    >>> float(eg(teacher))
    0.0
    """
    if getattr(system, "_spec", (None,))[0] is not soft_committee:
        raise ValueError("system must come from rds.models.soft_committee")
    spec: dict = system._spec[1]
    n_test = integer(n_test, "n_test", 1)
    N, d = spec["hidden"], spec["inputs"]
    x = np.random.default_rng(seed).normal(0.0, np.sqrt(spec["sigma2"]), (n_test, d))
    y = forward(spec["teacher_W"], spec["teacher_v"], x, spec["activation"])

    def generalization(theta):
        W, v = unpack(as_float(theta), N, d)
        return loss(W, v, x, y, spec["activation"], spec["normalization"])
    return {"generalization": generalization}
