"""Full-batch gradient descent on a fixed noisy dataset: a quenched random map.

The model of Maleknia & Sato, "Plateaus, optima and overfitting in multi-layer perceptrons: a
saddle–saddle–attractor scenario" (2026). Student f(x; θ) = Σ_j v_j tanh(w_j · x) with N hidden neurons and no
bias (the FA network for N = 2 and one input), from :mod:`rds.models.two_layer`, trained on a dataset
(x_k, y_k), k = 1…n, drawn once. Training error (eq. 1; ``normalization="mean"`` of the two-layer module)

    E_tr(θ) = (1/n) Σ_k (f(x_k; θ) − y_k)²,

and one GD step θ ← θ − η ∇E_tr(θ). The noise is frozen in the data, so the map is deterministic; the dataset
is the system's :class:`rds.noise.FixedDataset` (ξ_t = (x, y) for every t).

The map is generated for each (N, d) from one template (a tuple of N·d + N scalars per member, so that it runs
vectorised under NumPy and compiled under Numba), with its analytic Jacobian I − η ∇²E_tr; it is the elementwise
form of :func:`rds.models.two_layer.gradient` and :func:`rds.models.two_layer.hessian`, checked against them.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from rds._checks import finite_array, integer, positive
from rds._codegen import make_function, tuple_src
from rds.models import two_layer
from rds.noise import FixedDataset
from rds.system import RandomDynamicalSystem

__all__ = ["teacher_student", "check_dataset", "student_variables", "network_output", "training_error"]

GDParams = namedtuple("GDParams", ["eta"])


def student_variables(hidden: int) -> tuple:
    """Variable names ``("w1", …, "wN", "v1", …, "vN")`` of a student with ``hidden`` neurons and one input.

    Parameters
    ----------
    hidden : int

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> from rds.models import student_variables
    >>> student_variables(2)
    ('w1', 'w2', 'v1', 'v2')
    """
    return two_layer.variables(hidden, 1)


@functools.cache
def _gd_functions(hidden: int, inputs: int = 1):
    """Generate the elementwise GD step and its analytic Jacobian for ``hidden`` neurons, ``inputs`` inputs.

    The generated code is the elementwise (per-member scalar) form of :func:`rds.models.two_layer.gradient` and
    :func:`rds.models.two_layer.hessian` for tanh and the ``"mean"`` normalisation, parameters in the packed
    order of :func:`rds.models.two_layer.pack`; the tests check it against those functions.
    """
    N, d = hidden, inputs
    W = [[f"w{j}" if d == 1 else f"w{j}_{a}" for a in range(d)] for j in range(N)]
    Wf = [name for row in W for name in row]
    V = [f"v{j}" for j in range(N)]
    xs = ["x"] if d == 1 else [f"x{a}" for a in range(d)]
    head = [f"    {', '.join(Wf + V)}, = state", "    eta = params[0]", "    n = xi.shape[1]",
            "    z = 0.0 * (" + " + ".join(Wf + V) + ")"]
    loop = ["    for k in range(n):"] + [f"        {xs[a]} = xi[{a}, k]" for a in range(d)]
    loop += [f"        y = xi[{d}, k]"]
    loop += [f"        t{j} = np.tanh(" + " + ".join(f"{W[j][a]} * {xs[a]}" for a in range(d)) + ")"
             for j in range(N)]
    loop += [f"        s{j} = 1.0 - t{j} * t{j}" for j in range(N)]
    loop.append("        r = " + " + ".join(f"v{j} * t{j}" for j in range(N)) + " - y")

    # step: θ ← θ − (2η/n) Σ r ∇f
    step = ["def gd_step(state, xi, params):"] + head
    step += [f"    g{w} = z" for w in Wf] + [f"    gv{j} = z" for j in range(N)]
    step += loop
    step += [f"        g{W[j][a]} = g{W[j][a]} + r * v{j} * {xs[a]} * s{j}" for j in range(N) for a in range(d)]
    step += [f"        gv{j} = gv{j} + r * t{j}" for j in range(N)]
    step.append("    c = 2.0 * eta / n")
    step.append("    return " + tuple_src([f"{w} - c * g{w}" for w in Wf] + [f"v{j} - c * gv{j}" for j in range(N)]))

    # Jacobian: I − (2η/n) Σ (∇f ∇fᵀ + r ∇²f); ∇f = (v_j x_a s_j, t_j);
    # ∇²f: (w_ja, w_jb) = −2 v_j x_a x_b s_j t_j, (w_ja, v_j) = x_a s_j
    grad = [f"v{j} * {xs[a]} * s{j}" for j in range(N) for a in range(d)] + [f"t{j}" for j in range(N)]
    P = N * d + N
    neuron = [p // d for p in range(N * d)] + list(range(N))    # the neuron of each parameter
    comp = [p % d for p in range(N * d)]                         # the input of each w parameter
    jac = ["def gd_jacobian(state, xi, params):"] + head
    jac += [f"    a{a}_{b} = z" for a in range(P) for b in range(a, P)]
    jac += loop
    # per data point: the gradient entries g_a, and the neuron factors of the second derivatives, once each
    jac += [f"        g{a} = {grad[a]}" for a in range(P)]
    jac += [f"        h{j} = 2.0 * r * v{j} * s{j} * t{j}" for j in range(N)]
    jac += [f"        e{j} = r * s{j}" for j in range(N)]
    for a in range(P):
        for b in range(a, P):
            extra = ""
            j = neuron[a]
            if a < N * d and b < N * d and neuron[b] == j:
                extra = f" - h{j} * {xs[comp[a]]} * {xs[comp[b]]}"
            elif a < N * d and b == N * d + j:
                extra = f" + e{j} * {xs[comp[a]]}"
            jac.append(f"        a{a}_{b} = a{a}_{b} + g{a} * g{b}{extra}")
    jac.append("    c = 2.0 * eta / n")
    rows = []
    for a in range(P):
        row = []
        for b in range(P):
            i, j = min(a, b), max(a, b)
            row.append(("1.0 - " if a == b else "-") + f"c * a{i}_{j}")
        rows.append(tuple_src(row))
    jac.append("    return " + tuple_src(rows))
    return (make_function("\n".join(step) + "\n", "gd_step"), make_function("\n".join(jac) + "\n", "gd_jacobian"))


def _as_inputs(x):
    """x of shape (n,) (d = 1) or (n, d) -> X (n, d)."""
    x = two_layer.as_float(x)
    return x[:, None] if x.ndim == 1 else x


def _split_theta(theta, x):
    """θ (..., N·d + N) and inputs x (n,) or (n, d) -> (W (..., N, d), v (..., N), X (n, d))."""
    theta = two_layer.as_float(theta)  # complex stays complex (a complex-step Jacobian passes through)
    X = _as_inputs(x)
    d = X.shape[1]
    if theta.ndim == 0 or theta.shape[-1] == 0 or theta.shape[-1] % (d + 1):
        raise ValueError(f"theta must have a last axis of N*(d + 1) entries for d = {d} inputs, got shape "
                         f"{theta.shape}")
    W, v = two_layer.unpack(theta, theta.shape[-1] // (d + 1), d)
    return W, v, X


def network_output(theta, x):
    """Student output f(x; θ) = Σ_j v_j tanh(w_j · x) (:func:`rds.models.two_layer.forward`).

    Parameters
    ----------
    theta : array_like, shape (..., N·d + N)
        Parameters ordered as :func:`rds.models.two_layer.pack`: (w1…wN, v1…vN) for d = 1.
    x : array_like, shape (n,) or (n, d)

    Returns
    -------
    ndarray, shape (..., n)

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models import network_output
    >>> network_output([1.0, 1.0, 1.0, 1.0], np.array([0.0, 1.0])).round(4).tolist()
    [0.0, 1.5232]
    """
    W, v, X = _split_theta(theta, x)
    return two_layer.forward(W, v, X)


def training_error(theta, x, y):
    """Training error E_tr(θ) = (1/n) Σ_k (f(x_k; θ) − y_k)² (Maleknia & Sato 2026, eq. 1).

    :func:`rds.models.two_layer.loss` with ``normalization="mean"``.

    Parameters
    ----------
    theta : array_like, shape (..., N·d + N)
    x : array_like, shape (n,) or (n, d)
    y : array_like, shape (n,)

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models import training_error
    >>> x = np.linspace(-1, 1, 5)
    >>> float(training_error([1.0, 1.0, 1.0, 1.0], x, 2 * np.tanh(x)))   # on the optimal set O
    0.0
    """
    W, v, X = _split_theta(theta, x)
    return two_layer.loss(W, v, X, y, normalization="mean")


def check_dataset(x, y):
    """Validate a 1-D dataset: finite x and y of equal, non-zero length.

    Parameters
    ----------
    x, y : array_like, shape (n,)

    Returns
    -------
    (ndarray, ndarray)
        float copies of x and y.

    Examples
    --------
    >>> from rds.models.teacher_student import check_dataset
    >>> check_dataset([0.0, 1.0], [1.0])
    Traceback (most recent call last):
    ...
    ValueError: x and y must have the same length, got 2 and 1
    """
    x = finite_array(x, "x", ndim=1)
    y = finite_array(y, "y", ndim=1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 1:
        raise ValueError("x must hold at least one data point")
    return x, y


def teacher_student(x, y, hidden: int = 2, eta: float = 0.01):
    """Full-batch GD on E_tr for a tanh student with ``hidden`` neurons on a fixed dataset.

    The model of Maleknia & Sato, "Plateaus, optima and overfitting in multi-layer perceptrons: a
    saddle–saddle–attractor scenario" (2026): θ ← θ − η ∇E_tr(θ) with E_tr = (1/n) Σ_k (f(x_k; θ) − y_k)² (eq. 1),
    f from :mod:`rds.models.two_layer` (tanh, ``normalization="mean"``), here also for d > 1 inputs.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, d)
        The inputs, drawn once (e.g. x_k ~ N(0, 1)). Finite, n ≥ 1.
    y : array_like, shape (n,)
        The targets (e.g. y_k = 2 tanh(x_k) + ε_k). Finite.
    hidden : int
        Number of hidden neurons N ≥ 1.
    eta : float
        Learning rate η > 0 (paper: 0.01).

    Returns
    -------
    RandomDynamicalSystem
        Variables ``("w1", …, "wN", "v1", …, "vN")`` for d = 1 (:func:`rds.models.two_layer.variables`: the order
        of :func:`rds.models.two_layer.pack`); quenched noise (the dataset, ξ_t of shape (d + 1, n): the d input
        rows then y); analytic Jacobian I − η ∇²E_tr, so ``(I − J) / η`` is the Hessian of E_tr.

    Examples
    --------
    >>> import numpy as np, rds
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(100); y = 2 * np.tanh(x) + 0.1 * rng.standard_normal(100)
    >>> gd = rds.models.teacher_student(x, y, hidden=2, eta=0.01)
    >>> gd.variables
    ('w1', 'w2', 'v1', 'v2')
    >>> theta = gd.evolve(np.array([-0.13, 0.13, 0.16, -0.15]), 1000)
    >>> rds.models.teacher_student(rng.standard_normal((50, 3)), y[:50], hidden=1).variables
    ('w1_1', 'w1_2', 'w1_3', 'v1')
    """
    if np.ndim(x) == 2:
        y = finite_array(y, "y", ndim=1)
        x = finite_array(x, "x", ndim=2)
        X, y = two_layer.check_data(x, y, x.shape[1])
    else:
        x, y = check_dataset(x, y)
        X = x[:, None]
    d = X.shape[1]
    hidden = integer(hidden, "hidden", 1)
    eta = positive(eta, "eta")
    step, jac = _gd_functions(hidden, d)
    system = RandomDynamicalSystem(
        step, noise=FixedDataset(np.vstack([X.T, y[None, :]])), variables=two_layer.variables(hidden, d),
        params=GDParams(eta), jacobian=jac, name="teacher_student",
        attrs={"reference": "Maleknia, Sato, Plateaus, optima and overfitting in multi-layer perceptrons: "
                            "a saddle-saddle-attractor scenario (2026)",
               "equations": "E_tr = (1/n) sum_k (f(x_k) - y_k)^2 (eq. 1); theta <- theta - eta grad E_tr",
               "normalization": "mean", "hidden": hidden, "inputs": d, "n_data": int(y.size)},
        recipe=(teacher_student, {"x": x, "y": y, "hidden": hidden, "eta": eta}))
    return system
