"""Full-batch gradient descent on a fixed noisy dataset: a quenched random map (papers 000/001).

Student f(x; θ) = Σ_j v_j tanh(w_j x) with N hidden neurons and no bias (the FA network for N = 2), trained on
a dataset (x_k, y_k), k = 1…n, drawn once. Training error (paper 000, eq. 1)

    E_tr(θ) = (1/n) Σ_k (f(x_k; θ) − y_k)²,

and one GD step θ ← θ − η ∇E_tr(θ). The noise is frozen in the data, so the map is deterministic; the dataset
is the system's :class:`rds.noise.FixedDataset` (ξ_t = (x, y) for every t).

The map is generated for each N from one template (a tuple of 2N scalars per member, so that it runs vectorised
under NumPy and compiled under Numba), with its analytic Jacobian I − η ∇²E_tr.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from rds._checks import finite_array, integer, positive
from rds._codegen import make_function, tuple_src
from rds.noise import FixedDataset
from rds.system import RandomDynamicalSystem

__all__ = ["teacher_student", "check_dataset", "student_variables", "network_output", "training_error"]

GDParams = namedtuple("GDParams", ["eta"])


def student_variables(hidden: int) -> tuple:
    """Variable names ``("w1", …, "wN", "v1", …, "vN")`` of a student with ``hidden`` neurons.

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
    return tuple(f"w{j + 1}" for j in range(hidden)) + tuple(f"v{j + 1}" for j in range(hidden))


@functools.cache
def _gd_functions(hidden: int):
    """Generate the elementwise GD step and its analytic Jacobian for ``hidden`` neurons (cached per N)."""
    N = hidden
    W = [f"w{j}" for j in range(N)]
    V = [f"v{j}" for j in range(N)]
    head = [f"    {', '.join(W + V)}, = state", "    eta = params[0]", "    n = xi.shape[1]",
            "    z = 0.0 * (" + " + ".join(W + V) + ")"]
    loop = ["    for k in range(n):", "        x = xi[0, k]", "        y = xi[1, k]"]
    loop += [f"        t{j} = np.tanh(w{j} * x)" for j in range(N)]
    loop += [f"        s{j} = 1.0 - t{j} * t{j}" for j in range(N)]
    loop.append("        r = " + " + ".join(f"v{j} * t{j}" for j in range(N)) + " - y")

    # step: θ ← θ − (2η/n) Σ r ∇f
    step = ["def gd_step(state, xi, params):"] + head
    step += [f"    gw{j} = z" for j in range(N)] + [f"    gv{j} = z" for j in range(N)]
    step += loop
    step += [f"        gw{j} = gw{j} + r * v{j} * x * s{j}" for j in range(N)]
    step += [f"        gv{j} = gv{j} + r * t{j}" for j in range(N)]
    step.append("    c = 2.0 * eta / n")
    step.append("    return " + tuple_src([f"w{j} - c * gw{j}" for j in range(N)] +
                                          [f"v{j} - c * gv{j}" for j in range(N)]))

    # Jacobian: I − (2η/n) Σ (∇f ∇fᵀ + r ∇²f); ∇f = (v_j x s_j, t_j); ∇²f: ww_jj = −2 v_j x² s_j t_j, wv_jj = x s_j
    grad = [f"v{j} * x * s{j}" for j in range(N)] + [f"t{j}" for j in range(N)]
    P = 2 * N
    jac = ["def gd_jacobian(state, xi, params):"] + head
    jac += [f"    a{a}_{b} = z" for a in range(P) for b in range(a, P)]
    jac += loop
    for a in range(P):
        for b in range(a, P):
            extra = ""
            if a == b and a < N:
                extra = f" - 2.0 * r * v{a} * x * x * s{a} * t{a}"
            elif a < N and b == a + N:
                extra = f" + r * x * s{a}"
            jac.append(f"        a{a}_{b} = a{a}_{b} + ({grad[a]}) * ({grad[b]}){extra}")
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


def network_output(theta, x):
    """Student output f(x; θ) = Σ_j v_j tanh(w_j x).

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
        Parameters ordered (w1…wN, v1…vN).
    x : array_like, shape (n,)

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
    theta = np.asarray(theta, dtype=float)
    N = theta.shape[-1] // 2
    w, v = theta[..., :N], theta[..., N:]
    return np.einsum("...j,...jk->...k", v, np.tanh(w[..., :, None] * np.asarray(x, dtype=float)))


def training_error(theta, x, y):
    """Training error E_tr(θ) = (1/n) Σ_k (f(x_k; θ) − y_k)² (paper 000, eq. 1).

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
    x, y : array_like, shape (n,)

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
    r = network_output(theta, x) - np.asarray(y, dtype=float)
    return np.mean(r * r, axis=-1)


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
    """Full-batch GD on E_tr for a tanh student with ``hidden`` neurons on a fixed dataset (papers 000/001).

    Parameters
    ----------
    x, y : array_like, shape (n,)
        The dataset, drawn once (e.g. x_k ~ N(0, 1), y_k = 2 tanh(x_k) + ε_k). Finite, equal lengths, n ≥ 1.
    hidden : int
        Number of hidden neurons N ≥ 1.
    eta : float
        Learning rate η > 0 (paper: 0.01).

    Returns
    -------
    RandomDynamicalSystem
        Variables ``("w1", …, "wN", "v1", …, "vN")``; quenched noise (the dataset); analytic Jacobian
        I − η ∇²E_tr, so ``(I − J) / η`` is the Hessian of E_tr.

    Examples
    --------
    >>> import numpy as np, rds
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(100); y = 2 * np.tanh(x) + 0.1 * rng.standard_normal(100)
    >>> gd = rds.models.teacher_student(x, y, hidden=2, eta=0.01)
    >>> gd.variables
    ('w1', 'w2', 'v1', 'v2')
    >>> theta = gd.evolve(np.array([-0.13, 0.13, 0.16, -0.15]), 1000)
    """
    x, y = check_dataset(x, y)
    hidden = integer(hidden, "hidden", 1)
    eta = positive(eta, "eta")
    step, jac = _gd_functions(hidden)
    system = RandomDynamicalSystem(
        step, noise=FixedDataset(np.stack([x, y])), variables=student_variables(hidden), params=GDParams(eta),
        jacobian=jac, name="teacher_student",
        attrs={"reference": "Maleknia, Sato, Plateaus, optima and overfitting in MLPs (2026)",
               "equations": "E_tr = (1/n) sum_k (f(x_k) - y_k)^2; theta <- theta - eta grad E_tr",
               "hidden": hidden, "n_data": int(x.size)})
    system._spec = (teacher_student, {"x": x, "y": y, "hidden": hidden, "eta": eta})
    return system
