"""The two-layer (one-hidden-layer) network: the one home of its output, loss, gradient and Hessians.

A network with ``d`` inputs, ``N`` hidden neurons and no biases,

    f(x; W, v) = Σ_j v_j σ(w_j · x),        W: (N, d) (row j is w_j),  v: (N,),

trained on a dataset ``X`` (n, d), ``y`` (n,) with residuals r_k = f(x_k) − y_k and the empirical loss

    L(W, v) = c · (1/n) Σ_k r_k²,      c = 1 ("mean") or c = ½ ("half_mean").

The normalisation is always explicit and recorded: ``"mean"`` is the training error E_tr of the overfitting study
(Maleknia & Sato, "Plateaus, optima and overfitting in multi-layer perceptrons: a saddle–saddle–attractor scenario",
2026, eq. 1) and of :func:`rds.models.teacher_student`; ``"half_mean"`` is the loss of the neuron-splitting study
("A geometric characterization of the stationary plateau for two-layer neural networks", eq. 2). The two differ
by the factor 2 in every derivative: ∇L = (2c/n) Σ_k r_k ∇f(x_k), ∇²L = (2c/n) Σ_k (∇f ∇fᵀ + r_k ∇²f).

Parameters are packed as ``theta = concatenate([W.ravel(), v])`` (W row-major, then v; :func:`pack`,
:func:`unpack`); for d = 1 this is θ = (w1…wN, v1…vN), the order of :func:`rds.models.teacher_student`.
Leading batch axes are allowed everywhere: W (..., N, d), v (..., N), theta (..., N·d + N).

:func:`forward`, :func:`loss` and :func:`gradient` also run on JAX arrays with ``xp=jax.numpy`` (JAX is imported
only then, never when :mod:`rds` is imported); :func:`hessian` and :func:`inner_hessian` are NumPy only.

Examples
--------
>>> import numpy as np
>>> from rds.models import two_layer
>>> W, v = np.array([[1.0], [0.5]]), np.array([2.0, -1.0])
>>> X = np.linspace(-1, 1, 5)[:, None]; y = two_layer.teacher(X[:, 0])
>>> two_layer.forward(W, v, X).shape
(5,)
>>> L1 = two_layer.loss(W, v, X, y, normalization="mean")
>>> L2 = two_layer.loss(W, v, X, y, normalization="half_mean")
>>> bool(np.isclose(L1, 2 * L2))
True
>>> two_layer.unpack(two_layer.pack(W, v), 2, 1)[1].tolist()
[2.0, -1.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from rds._checks import finite_array

__all__ = ["ACTIVATIONS", "NORMALIZATIONS", "activation_function", "forward", "loss", "gradient", "hessian",
           "inner_hessian", "teacher", "pack", "unpack", "variables", "check_network", "check_data",
           "normalization_factor"]

_SQRT_PI = math.sqrt(math.pi)

NORMALIZATIONS = {"mean": 1.0, "half_mean": 0.5}
"""Loss normalisations: name -> c in L = c · (1/n) Σ_k r_k² ("mean": E_tr; "half_mean": (1/2n) Σ r²)."""


def as_float(a) -> np.ndarray:
    """``a`` as a float64 array — or complex128 when it is complex, so that the complex step of an automatic
    Jacobian (:mod:`rds._complexstep`: ``J v = Im φ(θ + i h v) / h``) passes through this module's functions
    instead of losing its imaginary part (a map wrapping a built-in step would get the Jacobian 0).

    Examples
    --------
    >>> from rds.models.two_layer import as_float
    >>> as_float([1, 2]).dtype, as_float([1 + 1e-20j]).imag.tolist()
    (dtype('float64'), [1e-20])
    """
    a = np.asarray(a)
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64, copy=False)


def _special(xp):
    """The ``scipy.special`` of the array namespace ``xp`` (NumPy, or JAX imported lazily)."""
    if xp is np:
        from scipy import special

        return special
    if getattr(xp, "__name__", "").startswith("jax"):
        import jax.scipy.special as special

        return special
    raise TypeError(f"xp must be numpy or jax.numpy, got {getattr(xp, '__name__', xp)!r}")


# ------------------------------------------------------------------------------------------- activations

def _tanh(z, order, xp=np):
    t = xp.tanh(z)
    if order == 0:
        return t
    s1 = 1.0 - t * t
    if order == 1:
        return s1
    if order == 2:
        return -2.0 * t * s1
    return s1 * (6.0 * t * t - 2.0)


def _erf(z, order, xp=np):
    if order == 0:
        return _special(xp).erf(z)
    s1 = 2.0 / _SQRT_PI * xp.exp(-z * z)
    if order == 1:
        return s1
    if order == 2:
        return -2.0 * z * s1
    return (4.0 * z * z - 2.0) * s1


def _softplus(z, order, xp=np):
    if order == 0:
        return xp.logaddexp(0.0, z)
    s = _special(xp).expit(z) if not np.iscomplexobj(z) else 1.0 / (1.0 + xp.exp(-z))  # (expit: real only)
    if order == 1:
        return s
    if order == 2:
        return s * (1.0 - s)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


ACTIVATIONS: dict[str, Callable] = {"tanh": _tanh, "erf": _erf, "softplus": _softplus}
"""Built-in activations: name -> ``act(z, order, xp=numpy)`` giving σ^(order)(z) for order 0..3."""


def activation_function(activation="tanh", xp=np) -> Callable:
    """Resolve an activation to ``act(z, order)`` returning σ^(order)(z), order 0..3.

    Parameters
    ----------
    activation : {"tanh", "erf", "softplus"} or callable
        A built-in name, or a callable ``act(z, order)`` (returned unchanged).
    xp : module
        Array namespace of the built-ins: ``numpy`` or ``jax.numpy``.

    Returns
    -------
    callable

    Examples
    --------
    >>> from rds.models.two_layer import activation_function
    >>> float(activation_function("tanh")(0.0, 1))
    1.0
    """
    if callable(activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        fn = ACTIVATIONS[activation]
        return fn if xp is np else functools.partial(fn, xp=xp)
    raise ValueError(
        f"activation: unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)} "
        "or a callable act(z, order) returning the order-th derivative (order 0..3)"
    )


def normalization_factor(normalization) -> float:
    """The factor c of L = c · (1/n) Σ r² for a normalisation name (see :data:`NORMALIZATIONS`).

    Examples
    --------
    >>> from rds.models.two_layer import normalization_factor
    >>> normalization_factor("half_mean")
    0.5
    """
    if isinstance(normalization, str) and normalization in NORMALIZATIONS:
        return NORMALIZATIONS[normalization]
    raise ValueError(f"normalization: unknown normalisation {normalization!r}; use one of {sorted(NORMALIZATIONS)}")


# ------------------------------------------------------------------------------------------- checks, packing

def check_network(W, v, name_W="W", name_v="v", finite=True):
    """Validate a network: W (N, d) and v (N,), N ≥ 1, finite (leading batch axes allowed with equal shapes).

    Parameters
    ----------
    W : array_like, shape (..., N, d)
    v : array_like, shape (..., N)
    name_W, name_v : str
        Argument names used in error messages.
    finite : bool
        Also require finite weights. The functions of this module check shapes only (a diverged state gives a
        NaN loss, as data); analyses that need a finite network check it here.

    Returns
    -------
    (ndarray, ndarray)
        Float arrays (complex ones stay complex: :func:`as_float`).

    Examples
    --------
    >>> from rds.models.two_layer import check_network
    >>> check_network([[1.0]], [1.0, 2.0])
    Traceback (most recent call last):
    ...
    ValueError: v: length 2 disagrees with the number of neurons N = 1 (rows of W)
    """
    W = as_float(W)
    v = as_float(v)
    if W.ndim < 2:
        raise ValueError(f"{name_W}: must be a 2-d array (N, d) of input weights, got shape {W.shape}")
    if v.ndim < 1:
        raise ValueError(f"{name_v}: must be a 1-d array (N,) of output weights, got shape {v.shape}")
    if v.shape[-1] != W.shape[-2]:
        raise ValueError(
            f"{name_v}: length {v.shape[-1]} disagrees with the number of neurons N = {W.shape[-2]} "
            f"(rows of {name_W})"
        )
    if W.shape[-2] == 0:
        raise ValueError(f"{name_W}: the network needs at least one hidden neuron")
    if finite and not (np.all(np.isfinite(W)) and np.all(np.isfinite(v))):
        raise ValueError(f"{name_W}, {name_v}: weights must be finite")
    return W, v


def check_data(X, y, d):
    """Validate a dataset: X (n, d) and y (n,) finite, n ≥ 1, d columns (``y=None`` checks X only).

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,), or None
    d : int
        Number of inputs of the network (columns of W).

    Returns
    -------
    (ndarray, ndarray or None)

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.two_layer import check_data
    >>> check_data(np.ones((2, 3)), np.ones(2), 1)
    Traceback (most recent call last):
    ...
    ValueError: X: has 3 input columns but W has d = 1 columns
    """
    X = as_float(X)
    if X.ndim != 2:
        raise ValueError(f"X: must be a 2-d array (n, d) of inputs, got shape {X.shape}")
    if X.shape[1] != d:
        raise ValueError(f"X: has {X.shape[1]} input columns but W has d = {d} columns")
    if X.shape[0] == 0:
        raise ValueError("X: needs at least one sample")
    if y is not None:
        y = np.asarray(y, dtype=float)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y: must be a 1-d array of length n = {X.shape[0]} (rows of X), got shape {y.shape}")
        finite_array(y, "y")
    if not np.all(np.isfinite(X)):
        raise ValueError("X, y: data must be finite")
    return X, y


def pack(W, v, xp=np):
    """θ = concatenate([W.ravel(), v]) (W row-major, then v); leading batch axes kept.

    Parameters
    ----------
    W : array, shape (..., N, d)
    v : array, shape (..., N)
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array, shape (..., N·d + N)

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.two_layer import pack
    >>> pack(np.array([[1.0], [2.0]]), np.array([3.0, 4.0])).tolist()   # d = 1: (w1, w2, v1, v2)
    [1.0, 2.0, 3.0, 4.0]
    """
    W = xp.asarray(W)
    return xp.concatenate([xp.reshape(W, W.shape[:-2] + (-1,)), xp.asarray(v)], axis=-1)


def unpack(theta, N: int, d: int):
    """Inverse of :func:`pack`: θ (..., N·d + N) -> (W (..., N, d), v (..., N)).

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.two_layer import unpack
    >>> W, v = unpack(np.arange(6.0), 2, 2)
    >>> W.tolist(), v.tolist()
    ([[0.0, 1.0], [2.0, 3.0]], [4.0, 5.0])
    """
    if theta.shape[-1] != N * d + N:
        raise ValueError(f"theta: last axis must have N*d + N = {N * d + N} entries, got shape {theta.shape}")
    return theta[..., : N * d].reshape(theta.shape[:-1] + (N, d)), theta[..., N * d :]


def variables(N: int, d: int = 1) -> tuple:
    """Names of the packed parameters: ``("w1", …, "wN", "v1", …, "vN")`` for d = 1, else ``"w{j}_{a}"``.

    Examples
    --------
    >>> from rds.models.two_layer import variables
    >>> variables(2), variables(1, 2)
    (('w1', 'w2', 'v1', 'v2'), ('w1_1', 'w1_2', 'v1'))
    """
    if d == 1:
        ws = tuple(f"w{j + 1}" for j in range(N))
    else:
        ws = tuple(f"w{j + 1}_{a + 1}" for j in range(N) for a in range(d))
    return ws + tuple(f"v{j + 1}" for j in range(N))


def teacher(x, xp=np):
    """The teacher f*(x) = 2 tanh(x) of the overfitting study (one neuron, w = 1, v = 2). Shape kept.

    Examples
    --------
    >>> from rds.models.two_layer import teacher
    >>> float(teacher(0.0))
    0.0
    """
    return 2.0 * xp.tanh(as_float(x) if xp is np else x)


# ------------------------------------------------------------------------------------------- the network

def _parts(W, v, X, y, act, xp=np):
    """Pre-activations Z (..., n, N), σ(Z), output f (..., n) and residual r (None without y)."""
    Z = xp.matmul(X, xp.swapaxes(W, -1, -2))
    S = act(Z, 0)
    f = S @ v if v.ndim == 1 else xp.matmul(S, v[..., :, None])[..., 0]
    return Z, S, f, (None if y is None else f - y)


def _inputs(W, v, X, y, xp):
    if xp is not np:
        return W, v, X, y
    W, v = check_network(W, v, finite=False)
    X, y = check_data(X, y, W.shape[-1])
    return W, v, X, y


def forward(W, v, X, activation="tanh", xp=np):
    """Network output f(x_k; W, v) = Σ_j v_j σ(w_j · x_k) for every row x_k of X.

    Parameters
    ----------
    W : array, shape (..., N, d)
        Input weights, one row per hidden neuron.
    v : array, shape (..., N)
        Output weights.
    X : array, shape (n, d)
        Inputs, one row per sample.
    activation : {"tanh", "erf", "softplus"} or callable
        See :func:`activation_function`.
    xp : module
        ``numpy`` (inputs checked) or ``jax.numpy`` (traceable, no checks).

    Returns
    -------
    array, shape (..., n)

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.two_layer import forward
    >>> forward(np.array([[1.0], [1.0]]), np.array([1.0, 1.0]), np.array([[0.0], [1.0]])).round(4).tolist()
    [0.0, 1.5232]
    """
    W, v, X, _ = _inputs(W, v, X, None, xp)
    return _parts(W, v, X, None, activation_function(activation, xp), xp)[2]


def loss(W, v, X, y, activation="tanh", normalization="mean", xp=np):
    """Empirical loss L = c · (1/n) Σ_k (f(x_k) − y_k)², c from ``normalization``.

    Parameters
    ----------
    W : array, shape (..., N, d)
    v : array, shape (..., N)
    X : array, shape (n, d)
    y : array, shape (n,)
    activation : str or callable
    normalization : {"mean", "half_mean"}
        ``"mean"``: (1/n) Σ r² (the training error E_tr, eq. 1 of Maleknia & Sato 2026); ``"half_mean"``:
        (1/2n) Σ r² (eq. 2 of the stationary-plateau paper).
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array, shape (...)
        A 0-d array for a single network.

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.two_layer import loss
    >>> float(loss(np.zeros((1, 2)), np.ones(1), np.ones((3, 2)), np.ones(3), normalization="half_mean"))
    0.5
    """
    c = normalization_factor(normalization)
    W, v, X, y = _inputs(W, v, X, y, xp)
    r = _parts(W, v, X, y, activation_function(activation, xp), xp)[3]
    return c * xp.mean(r * r, axis=-1)


def gradient(W, v, X, y, activation="tanh", normalization="mean", xp=np):
    """Analytic gradient of :func:`loss`.

    ∂L/∂w_j = (2c/n) Σ_k r_k v_j σ'(w_j·x_k) x_k,   ∂L/∂v_j = (2c/n) Σ_k r_k σ(w_j·x_k).

    Parameters
    ----------
    W, v, X, y, activation, normalization, xp
        As in :func:`loss`.

    Returns
    -------
    gW : array, shape (..., N, d)
    gv : array, shape (..., N)

    Examples
    --------
    Agrees with central differences of the loss:

    >>> import numpy as np
    >>> from rds.models.two_layer import gradient, loss
    >>> rng = np.random.default_rng(0)
    >>> W, v, X, y = rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(7, 3)), rng.normal(size=7)
    >>> gW, gv = gradient(W, v, X, y)
    >>> h = 1e-6; e = np.zeros(2); e[0] = h
    >>> bool(np.isclose(gv[0], (loss(W, v + e, X, y) - loss(W, v - e, X, y)) / (2 * h)))
    True
    """
    scale = 2.0 * normalization_factor(normalization)
    W, v, X, y = _inputs(W, v, X, y, xp)
    act = activation_function(activation, xp)
    n = X.shape[0]
    Z, S, _, r = _parts(W, v, X, y, act, xp)
    A = r[..., :, None] * act(Z, 1) * v[..., None, :]          # (..., n, N)
    gW = xp.swapaxes(A, -1, -2) @ X / n
    gv = (S.T @ r if r.ndim == 1 else xp.matmul(xp.swapaxes(S, -1, -2), r[..., :, None])[..., 0]) / n
    return scale * gW, scale * gv


def hessian(W, v, X, y, activation="tanh", normalization="mean"):
    """Exact Hessian of :func:`loss` in the packed order θ = (W.ravel(), v): ∇²L = (2c/n) Σ_k (∇f ∇fᵀ + r_k ∇²f).

    The second derivatives of f are ∂²f/∂w_j∂w_jᵀ = v_j σ''(w_j·x) x xᵀ (giving the inner Hessian, see
    :func:`inner_hessian`), ∂²f/∂w_j∂v_j = σ'(w_j·x) x, all others 0. GD's Jacobian is I − η ∇²L.

    Parameters
    ----------
    W, v, X, y, activation, normalization
        As in :func:`loss` (NumPy arrays).

    Returns
    -------
    ndarray, shape (..., P, P), P = N·d + N
        Symmetric.

    Examples
    --------
    For d = 1, tanh and the "mean" normalisation this is the Hessian of E_tr(w1…wN, v1…vN):

    >>> import numpy as np
    >>> from rds.models.two_layer import hessian
    >>> H = hessian(np.array([[0.3], [-0.2]]), np.array([0.5, 0.4]), np.linspace(-1, 1, 9)[:, None], np.zeros(9))
    >>> H.shape, bool(np.allclose(H, H.T))
    ((4, 4), True)
    """
    scale = 2.0 * normalization_factor(normalization)
    W, v, X, y = _inputs(W, v, X, y, np)
    act = activation_function(activation)
    n, d = X.shape
    N = W.shape[-2]
    Z, S, _, r = _parts(W, v, X, y, act)
    S1, S2 = act(Z, 1), act(Z, 2)
    batch = Z.shape[:-2]
    JW = (S1 * v[..., None, :])[..., :, :, None] * X[:, None, :]       # (..., n, N, d): ∂f/∂w_j
    J = np.concatenate([JW.reshape(batch + (n, N * d)), S], axis=-1)  # (..., n, P)
    Hs = np.swapaxes(J, -1, -2) @ J / n
    for j in range(N):
        a = slice(j * d, (j + 1) * d)
        Hs[..., a, a] += np.swapaxes((r * v[..., j, None] * S2[..., j])[..., :, None] * X, -1, -2) @ X / n
        c = (r * S1[..., j]) @ X / n
        Hs[..., a, N * d + j] += c
        Hs[..., N * d + j, a] += c
    return scale * (0.5 * (Hs + np.swapaxes(Hs, -1, -2)))


def inner_hessian(W, v, X, y, j, activation="tanh", normalization="mean"):
    """Inner Hessian of neuron j: the residual term of ∂²L/∂w_j∂w_jᵀ, (2c/n) Σ_k r_k v_j σ''(w_j·x_k) x_k x_kᵀ.

    With ``normalization="half_mean"`` this is H_j of eq. 11 of "A geometric characterization of the stationary
    plateau for two-layer neural networks".

    Parameters
    ----------
    W : array, shape (N, d)
    v : array, shape (N,)
    X, y, activation, normalization
        As in :func:`loss`.
    j : int
        Neuron index, 0 ≤ j < N.

    Returns
    -------
    ndarray, shape (d, d)
        Symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> from rds.models.two_layer import inner_hessian
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> inner_hessian(np.array([[0.5, -0.5]]), np.array([1.0]), X, np.zeros(2), 0, normalization="half_mean").shape
    (2, 2)
    """
    scale = 2.0 * normalization_factor(normalization)
    W, v, X, y = _inputs(W, v, X, y, np)
    act = activation_function(activation)
    Z, _, _, r = _parts(W, v, X, y, act)
    w = r * v[j] * act(Z[:, j], 2) / X.shape[0]
    H = (w[:, None] * X).T @ X
    return scale * (0.5 * (H + H.T))
