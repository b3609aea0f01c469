"""Minibatch SGD (and full-batch GD) of a two-layer network on a fixed dataset, as a vector map.

A network f(x; W, v) = Σ_j v_j σ(w_j · x) (:mod:`rds.models.two_layer`, the one home of its output, loss and
derivatives) is trained on a fixed dataset (x_k, y_k), k = 1 … n. At step t a minibatch I_t of S indices is drawn
(uniformly, with replacement; the noise ξ_t = I_t is replayable by (seed, realisation, t), :class:`rds.noise.
Minibatches`) and

    θ_{t+1} = θ_t − η (∇L(θ_t; I_t) + μ θ_t),    L(θ; I) = c · (1/S) Σ_{k ∈ I} (f(x_k; θ) − y_k)²,

c = 1 (``"mean"``, the training error E_tr) or ½ (``"half_mean"``), and an optional weight decay μ ≥ 0 (default 0).
With ``batch=None`` the batch is the whole
dataset at every step (the quenched noise ``FixedDataset(arange(n))``): full-batch GD, a deterministic map. For d = 1
and c = 1 this is :func:`rds.models.teacher_student` (Maleknia & Sato, "Plateaus, optima and overfitting in
multi-layer perceptrons: a saddle–saddle–attractor scenario" (2026), eq. 1).

:func:`load_dataset` gives a real dataset shipped with scikit-learn (no download): Fisher's iris (a regression of
the petal width on the other three measurements) or the 8×8 digits (even/odd, ±1), standardised.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from rds._checks import check_parameter_count, integer, nonnegative, positive
from rds.models.two_layer import (
    ACTIVATIONS,
    as_float,
    check_data,
    gradient,
    hessian,
    loss,
    normalization_factor,
    pack,
    unpack,
    variables,
)
from rds.noise import FixedDataset, Minibatches, NoiseSource
from rds.system import RandomDynamicalSystem

__all__ = ["dataset_sgd", "load_dataset", "dataset_loss", "dataset_losses", "SGDParams"]

SGDParams = namedtuple("SGDParams", ["eta", "weight_decay"])

_DATASETS = ("iris", "digits")


def load_dataset(name: str = "iris"):
    """A real dataset from scikit-learn (bundled with the package; no download), standardised.

    Parameters
    ----------
    name : {"iris", "digits"}
        ``"iris"``: Fisher's iris as a regression, n = 150: inputs sepal length, sepal width and petal length
        (d = 3), target the petal width (a noisy smooth function of them: the loss has a genuine minimum).
        ``"digits"``: the 8×8 handwritten digits as a classification, n = 1797, d = 61 (the 64 pixels minus the
        constant ones), y = +1 for even digits, −1 for odd.

    Returns
    -------
    X : ndarray, shape (n, d)
        Features with zero mean and unit variance per column.
    y : ndarray, shape (n,)

    Examples
    --------
    >>> from rds.models.dataset_sgd import load_dataset
    >>> X, y = load_dataset("iris")
    >>> X.shape, bool(abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12)
    ((150, 3), True)
    """
    if name not in _DATASETS:
        raise ValueError(f"name must be one of {_DATASETS}, got {name!r}")
    from sklearn import datasets
    if name == "iris":
        data = datasets.load_iris().data.astype(float)
        X, y = data[:, :3], (data[:, 3] - data[:, 3].mean()) / data[:, 3].std()
    else:
        data = datasets.load_digits()
        X, y = data.data.astype(float), np.where(data.target % 2 == 0, 1.0, -1.0)
    sd = X.std(axis=0)
    X = X[:, sd > 0]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, y


@functools.cache
def _sgd_functions(N, d, activation, normalization, data_key):
    X, y = _DATA[data_key]
    eye = np.eye(N * d + N)

    def dataset_step(theta, xi, params):
        idx = xi.astype(np.int64)
        W, v = unpack(theta, N, d)
        gW, gv = gradient(W, v, np.take(X, idx, axis=0), np.take(y, idx), activation, normalization, xp=np)
        eta, mu = params[0], params[1]
        return pack(W - eta * (gW + mu * W), v - eta * (gv + mu * v), xp=np)

    def dataset_jacobian(theta, xi, params):
        idx = xi.astype(np.int64)
        W, v = unpack(theta, N, d)
        return eye - params[0] * (hessian(W, v, X[idx], y[idx], activation, normalization) + params[1] * eye)
    return dataset_step, dataset_jacobian


_DATA: dict = {}


def _data_key(X, y):
    import hashlib
    h = hashlib.sha1(np.ascontiguousarray(X).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
    key = (X.shape, h)
    if key not in _DATA:
        Xc, yc = X.copy(), y.copy()
        Xc.setflags(write=False)
        yc.setflags(write=False)
        _DATA[key] = (Xc, yc)
    return key


def dataset_sgd(X, y, hidden: int = 2, eta: float = 0.01, batch: int | None = None, activation: str = "tanh",
                normalization: str = "mean", weight_decay: float = 0.0, common_noise: bool = True,
                precision: str = "float64") -> RandomDynamicalSystem:
    """Minibatch SGD (``batch=S``) or full-batch GD (``batch=None``) of a two-layer network on a fixed dataset.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs (a 1-D array is one input per sample, d = 1).
    y : array_like, shape (n,)
        Targets.
    hidden : int
        Hidden neurons N ≥ 1 (D = N·d + N parameters).
    eta : float
        Learning rate η > 0.
    batch : int or None
        Minibatch size 1 ≤ S (indices drawn with replacement each step); None: full-batch GD (quenched).
    activation : {"tanh", "erf", "softplus"}
    normalization : {"mean", "half_mean"}
        c = 1 or ½ in L = c (1/S) Σ (f − y)².
    weight_decay : float
        μ ≥ 0: the step is θ ← θ − η (∇L + μ θ), i.e. SGD on L + (μ/2)|θ|² (isolates minima along the flat
        directions of an over-parameterised network). 0 by default.
    common_noise : bool
        All members share the minibatch sequence (default: the random dynamical system picture).
    precision : {"float64", "float32"}
        Of the JAX backend.

    Returns
    -------
    RandomDynamicalSystem
        ``form="vector"``; variables :func:`rds.models.two_layer.variables`; noise
        :class:`rds.noise.Minibatches` (ξ_t: S indices) or ``FixedDataset(arange(n))``; analytic Jacobian
        I − η ∇²L for the NumPy reference; attrs with the data size, activation, normalisation and symmetry.

    Examples
    --------
    >>> import numpy as np, rds
    >>> from rds.models.dataset_sgd import dataset_sgd, load_dataset
    >>> X, y = load_dataset("iris")
    >>> sgd = dataset_sgd(X, y, hidden=3, eta=0.05, batch=10)
    >>> sgd.nvar, sgd.noise.shape
    (12, (10,))
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {X.shape}")
    X, y = check_data(X, y, X.shape[1])
    n, d = X.shape
    N = integer(hidden, "hidden", 1)
    eta = positive(eta, "eta")
    weight_decay = nonnegative(weight_decay, "weight_decay")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    normalization_factor(normalization)
    if batch is None:
        noise: NoiseSource = FixedDataset(np.arange(n, dtype=float))
    else:
        noise = Minibatches(n, integer(batch, "batch", 1))
    check_parameter_count(N * d + N, f"hidden={N} with d={d} inputs", jacobian=True)
    step, jac = _sgd_functions(N, d, activation, normalization, _data_key(X, y))
    odd = activation in ("tanh", "erf")
    system = RandomDynamicalSystem(
        step, noise=noise, variables=variables(N, d), params=SGDParams(eta, weight_decay), jacobian=jac,
        name="dataset_gd" if batch is None else "dataset_sgd", common_noise=common_noise, form="vector",
        precision=precision,
        attrs={"reference": "Maleknia & Sato, Plateaus, optima and overfitting in multi-layer perceptrons (2026)",
               "equations": "theta <- theta - eta grad L(theta; I_t), L = c (1/S) sum_{k in I_t} (f(x_k) - y_k)^2",
               "hidden": N, "inputs": d, "n_data": n, "activation": activation, "normalization": normalization,
               "batch": 0 if batch is None else int(batch), "weight_decay": weight_decay,
               "network_symmetry": "neuron_permutation_sign" if odd else "neuron_permutation"})
    system._spec = (dataset_sgd, {"X": X, "y": y, "hidden": N, "eta": eta, "batch": batch,
                                  "weight_decay": weight_decay, "activation": activation,
                                  "normalization": normalization,
                                  "common_noise": common_noise, "precision": precision})
    return system


def dataset_loss(system, theta, X, y):
    """The full-dataset loss L(θ) = c (1/n) Σ_k (f(x_k; θ) − y_k)² of a :func:`dataset_sgd` network, per state.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`dataset_sgd` (its ``hidden``, ``activation`` and ``normalization`` attrs are used).
    theta : array_like, shape (..., D)
    X : array_like, shape (n, d)
    y : array_like, shape (n,)

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.dataset_sgd import dataset_sgd, dataset_loss, load_dataset
    >>> X, y = load_dataset("iris")
    >>> gd = dataset_sgd(X, y, hidden=2)
    >>> round(float(dataset_loss(gd, np.zeros(gd.nvar), X, y)), 12)   # f = 0: the mean of y² = 1
    1.0
    """
    N, d = int(system.attrs["hidden"]), int(system.attrs["inputs"])
    W, v = unpack(as_float(theta), N, d)  # complex stays complex (a complex-step Jacobian passes through)
    X = as_float(X).reshape(-1, d)
    return loss(W, v, X, y, system.attrs["activation"], system.attrs["normalization"])



def dataset_losses(system, test=None) -> dict:
    """The losses of a :func:`dataset_sgd` network to follow along training: on its own data, and on test data.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`dataset_sgd`.
    test : (X_test, y_test) or None
        Held-out data (same d); adds a ``"test"`` loss.

    Returns
    -------
    dict of str to callable
        ``{"train": L_train}`` (and ``"test"``): each maps θ of shape (..., D) to the full-dataset loss
        :func:`dataset_loss`, shape (...). The default losses of :func:`analysis.loss_curves`.

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.dataset_sgd import dataset_sgd, dataset_losses, load_dataset
    >>> X, y = load_dataset("iris")
    >>> gd = dataset_sgd(X[:100], y[:100], hidden=2)
    >>> losses = dataset_losses(gd, test=(X[100:], y[100:]))
    >>> sorted(losses), losses["train"](np.zeros((3, gd.nvar))).shape
    (['test', 'train'], (3,))
    """
    if getattr(system, "_spec", (None,))[0] is not dataset_sgd:
        raise ValueError("system must come from rds.models.dataset_sgd")
    spec: dict = system._spec[1]
    X, y = spec["X"], spec["y"]
    out = {"train": lambda theta: dataset_loss(system, theta, X, y)}
    if test is not None:
        Xt, yt = check_data(np.asarray(test[0], dtype=float).reshape(-1, X.shape[1]), test[1], X.shape[1])
        out["test"] = lambda theta: dataset_loss(system, theta, Xt, yt)
    return out
