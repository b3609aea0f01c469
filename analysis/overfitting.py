"""Overfitting on a fixed noisy dataset: learning curves, Hessian spectra and the overfitting point.

Reference: Maleknia & Sato, "Plateaus, optima and overfitting in multi-layer perceptrons: a saddle–saddle–attractor
scenario" (2026); equation numbers below are its own.

Full-batch gradient descent on a dataset drawn once is a *quenched* random map: the noise sits in the data.
Teacher f*(x) = 2 tanh(x); student f(x; θ) = Σ_j v_j tanh(w_j x), θ = (w1…wN, v1…vN) (N = 2 in the paper).

* training error (Maleknia & Sato 2026, eq. 1)      E_tr(θ)  = (1/n) Σ_k (f(x_k; θ) − y_k)²,
* GD (Maleknia & Sato 2026, eq. GD)                  θ ← θ − η ∇E_tr(θ),
* generalisation error (Maleknia & Sato 2026, eq. 2) E_gen(θ) = E_{x~N(0,1)}[(f(x; θ) − f*(x))²],
* eq. 3: E_{x,ε}[(f − y)²] = E_gen + σ_ε².

The normalisation 1/n (not 1/(2n)) and the plain gradient of that E_tr are those of the authors' public code
(github.com/alexmare2/Dynamical-structure-of-MLP-with-overfitting, ``main.jl``: ``grad_1``/``grad_2`` carry the
factor 2 and are averaged over the n points; the step is ``θ .-= η .* grad``), which fix
the normalisation of eq. 1. The authors' "Jacobian" whose positive eigenvalues they count is −(1/n) Σ (∇f∇fᵀ + r∇²f)
= −½ ∇²E_tr, so "k positive eigenvalues" there is ``n_unstable = k`` negative eigenvalues of ∇²E_tr here.

Regions used below (all invariant under the symmetry group of :mod:`rds.symmetry`):

* the singular region S = {θ : f(·; θ) ≡ 0} (each neuron has w_j = 0 or v_j = 0): θ = 0 is a critical point of
  E_tr and the plateau of the paper's run is spent next to it;
* the optimal region O = {θ : f(·; θ) = f*} (Definition 1), for N = 2 the images of the lines
  {w1 = w2 = 1, v1 + v2 = 2}, {w1 = 1, v1 = 2, v2 = 0} and {w1 = 1, w2 = 0, v1 = 2};
* the overfitting point θ_ovf, the minimiser of E_tr (Definition 2; unique modulo symmetry, Theorem 3.1).

Distance to O: the primary measure is E_gen itself, the squared L²(N(0,1)) distance between f(·; θ) and f*. It is
zero exactly on O, needs no choice of a component of O nor a metric on parameters, and is what the paper plots.
:func:`distance_to_optimal_set` adds the Euclidean distance in parameter space to the set O (exact: the minimum
over symmetry images of the distances to the three lines above), useful for the (w, v) trajectory pictures.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

import rds
from rds import quadrature
from rds._checks import finite_array, integer, nonnegative, positive
from rds.labels import annotate
from rds.models import two_layer
from rds.models.teacher_student import check_dataset
from rds.sampling import initial_states
from rds.symmetry import canonical, orbit
from rds.timegrid import log_times

__all__ = ["make_dataset", "load_dataset", "teacher", "network_output", "training_error", "training_gradient",
           "training_hessian", "generalization_error", "function_distance", "distance_to_optimal_set",
           "count_unstable", "overfitting_point", "learning_curves", "convergence_modulo_symmetry", "END_KINDS",
           "optimal_set_sample", "PHASES"]

PHASES = ("plateau", "near_optimal", "overfitting")
"""Phase labels; the ``phase`` variable of :func:`learning_curves` holds indices into this tuple."""


# --------------------------------------------------------------------------------------------------- data

teacher = two_layer.teacher
"""Teacher f*(x) = 2 tanh(x) (Sec. 4), :func:`rds.models.two_layer.teacher`."""


def make_dataset(n: int = 100, noise_std: float = 0.2, seed: int = 0):
    """Draw the paper's dataset once: x_k ~ N(0, 1), y_k = 2 tanh(x_k) + ε_k, ε_k ~ N(0, σ_ε²) (Sec. 4).

    Parameters
    ----------
    n : int
        Number of points (paper: 100), n ≥ 1.
    noise_std : float
        σ_ε ≥ 0 (0 gives the noise-free dataset with the same inputs for the same seed). The paper does not print
        σ_ε; the residuals y − 2 tanh(x) of the authors' file have standard deviation ≈ 0.20, hence the default.
    seed : int
        Seed of ``numpy.random.default_rng``; the inputs are drawn first, so two calls with the same seed and
        different ``noise_std`` share x.

    Returns
    -------
    x, y : ndarray, shape (n,)

    Examples
    --------
    >>> x, y = make_dataset(100, noise_std=0.2, seed=1)
    >>> x.shape, y.shape
    ((100,), (100,))
    """
    n = integer(n, "n", 1)
    noise_std = nonnegative(noise_std, "noise_std")
    seed = integer(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    eps = rng.standard_normal(n)
    return x, teacher(x) + noise_std * eps


def load_dataset(path):
    """Load a two-column text file of rows ``x y`` (the authors' format, e.g. ``overfitting_dataset.dat``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    x, y : ndarray, shape (n,)

    Raises
    ------
    ValueError
        If the file does not hold exactly two columns of finite numbers, or is empty.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "data.dat")
    ...     np.savetxt(path, [[0.5, 0.92], [-1.0, -1.55], [2.0, 1.93]])
    ...     x, y = load_dataset(path)
    >>> x.shape, y.tolist()
    ((3,), [0.92, -1.55, 1.93])
    """
    try:
        data = np.loadtxt(path, dtype=float, ndmin=2)
    except ValueError as err:
        raise ValueError(f"path {str(path)!r}: not a two-column numeric text file ({err})") from None
    if data.size == 0 or data.shape[1] != 2:
        raise ValueError(f"path {str(path)!r} must hold rows of exactly two numbers 'x y', got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"path {str(path)!r} holds non-finite values (NaN or inf)")
    return data[:, 0].copy(), data[:, 1].copy()


def _check_theta(theta, name="theta"):
    theta = np.asarray(theta, dtype=float)
    if theta.ndim == 0 or theta.shape[-1] % 2 or theta.shape[-1] == 0:
        raise ValueError(f"{name} must have an even, non-zero last axis (w1..wN, v1..vN), got shape {theta.shape}")
    return theta


# --------------------------------------------------------------------------------------------------- E_tr
# The network, E_tr and its derivatives live in rds.models.two_layer (normalization="mean", d = 1): these are the
# θ = (w1..wN, v1..vN) views of that module used by this study.

def _net(theta, x):
    theta = _check_theta(theta)
    W, v = two_layer.unpack(theta, theta.shape[-1] // 2, 1)
    return W, v, np.asarray(x, dtype=float)[:, None]


def network_output(theta, x):
    """f(x; θ) = Σ_j v_j tanh(w_j x) (:func:`rds.models.two_layer.forward`). θ shape (..., 2N), x (K,) → (..., K)."""
    W, v, X = _net(theta, x)
    return two_layer.forward(W, v, X)


def training_error(theta, x, y):
    """E_tr(θ) = (1/n) Σ_k (f(x_k; θ) − y_k)² (eq. 1; :func:`rds.models.two_layer.loss`, "mean"). → (...)."""
    x, y = check_dataset(x, y)
    W, v, X = _net(theta, x)
    return two_layer.loss(W, v, X, y, normalization="mean")


def training_gradient(theta, x, y):
    """∇E_tr(θ) = (2/n) Σ_k r_k ∇f(x_k; θ), r_k = f(x_k; θ) − y_k (eq. 5; :func:`rds.models.two_layer.gradient`).

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
    x, y : array_like, shape (n,)

    Returns
    -------
    ndarray, shape (..., 2N)

    Examples
    --------
    Agrees with central differences of E_tr (eq. 1); a stack of θ (rows of the identity here) is one call:

    >>> import numpy as np
    >>> x, y = make_dataset(20, noise_std=0.1, seed=0)
    >>> theta, h, I = np.array([0.3, -0.2, 0.5, 0.4]), 1e-6, np.eye(4)
    >>> fd = (training_error(theta + h * I, x, y) - training_error(theta - h * I, x, y)) / (2 * h)
    >>> bool(np.allclose(training_gradient(theta, x, y), fd, atol=1e-8))
    True
    """
    x, y = check_dataset(x, y)
    W, v, X = _net(theta, x)
    return two_layer.pack(*two_layer.gradient(W, v, X, y, normalization="mean"))


def training_hessian(theta, x, y):
    """Analytic Hessian ∇²E_tr(θ) = (2/n) Σ_k (∇f ∇fᵀ + r_k ∇²f) (:func:`rds.models.two_layer.hessian`).

    With t = tanh(w_j x), s = 1 − t²: ∂f/∂w_j = v_j x s, ∂f/∂v_j = t, ∂²f/∂w_j² = −2 v_j x² s t,
    ∂²f/∂w_j∂v_j = x s, all other second derivatives 0. GD's Jacobian is I − η ∇²E_tr.

    Parameters
    ----------
    theta : array_like, shape (..., 2N)
    x, y : array_like, shape (n,)

    Returns
    -------
    ndarray, shape (..., 2N, 2N), symmetric

    Examples
    --------
    Agrees with central differences of :func:`training_gradient`:

    >>> import numpy as np
    >>> x, y = make_dataset(20, noise_std=0.1, seed=0)
    >>> theta, h, I = np.array([0.3, -0.2, 0.5, 0.4]), 1e-6, np.eye(4)
    >>> fd = (training_gradient(theta + h * I, x, y) - training_gradient(theta - h * I, x, y)) / (2 * h)
    >>> H = training_hessian(theta, x, y)
    >>> H.shape, bool(np.allclose(H, fd, atol=1e-7))
    ((4, 4), True)
    """
    x, y = check_dataset(x, y)
    W, v, X = _net(theta, x)
    return two_layer.hessian(W, v, X, y, normalization="mean")


def count_unstable(hessian, rtol: float = 1e-9):
    """Number of negative eigenvalues of a Hessian (unstable directions of GD for small η).

    Eigenvalues with |λ| ≤ rtol · max(1, max|λ|) count as zero (flat directions, e.g. along O for noise-free
    data), not as unstable.

    Parameters
    ----------
    hessian : array_like, shape (..., P, P), symmetric
    rtol : float

    Returns
    -------
    n_unstable : ndarray of int, shape (...)
    eigenvalues : ndarray, shape (..., P), ascending

    Examples
    --------
    >>> import numpy as np
    >>> n, lam = count_unstable(np.diag([-1.0, 0.0, 2.0]))   # the zero eigenvalue is flat, not unstable
    >>> int(n), lam.tolist()
    (1, [-1.0, 0.0, 2.0])

    θ = 0 (the singular region S) is a saddle of E_tr:

    >>> x, y = make_dataset(20, noise_std=0.1, seed=0)
    >>> int(count_unstable(training_hessian(np.zeros(4), x, y))[0])
    2
    """
    hessian = np.asarray(hessian, dtype=float)
    if hessian.ndim < 2 or hessian.shape[-1] != hessian.shape[-2]:
        raise ValueError(f"hessian must be square matrices, shape (..., P, P), got shape {hessian.shape}")
    lam = np.linalg.eigvalsh(hessian)
    scale = np.maximum(1.0, np.max(np.abs(lam), axis=-1, keepdims=True))
    return np.sum(lam < -rtol * scale, axis=-1), lam


# --------------------------------------------------------------------------------------------------- E_gen

def _normal_rule(wmax, half_width=10.0):
    """E_{x~N(0,1)} rule for tanh networks: :func:`rds.quadrature.normal_rule` (24 Gauss–Legendre nodes a panel)."""
    return quadrature.normal_rule(wmax, half_width)


def function_distance(theta_a, theta_b=None):
    """Squared L²(N(0,1)) distance E_x[(f(x; θ_a) − g(x))²], g = f(·; θ_b) or the teacher 2 tanh if θ_b is None.

    Parameters
    ----------
    theta_a, theta_b : array_like, shape (..., 2N) (broadcast against each other; N may differ)

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    Two parameter vectors of the same function (two neurons sharing the teacher) are at distance 0; the zero
    network is at distance E_x[4 tanh(x)²] ≈ 1.577 from the teacher:

    >>> float(function_distance([1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 2.0, 0.0]))
    0.0
    >>> round(float(function_distance([0.0, 0.0, 0.0, 0.0])), 4)
    1.5772
    """
    theta_a = _check_theta(theta_a, "theta_a")
    ws_all = [np.abs(theta_a[..., : theta_a.shape[-1] // 2]).max(initial=0.0), 1.0]
    if theta_b is not None:
        theta_b = _check_theta(theta_b, "theta_b")
        ws_all.append(np.abs(theta_b[..., : theta_b.shape[-1] // 2]).max(initial=0.0))
    if not np.all(np.isfinite(ws_all)):
        return np.full(np.broadcast_shapes(theta_a.shape[:-1], () if theta_b is None else theta_b.shape[:-1]),
                       np.nan)
    xs, ws = _normal_rule(max(ws_all))
    g = teacher(xs) if theta_b is None else network_output(theta_b, xs)
    d = network_output(theta_a, xs) - g
    return np.sum(ws * d * d, axis=-1)


def generalization_error(theta):
    """E_gen(θ) = E_{x~N(0,1)}[(f(x; θ) − 2 tanh(x))²] (Maleknia & Sato 2026, eq. 2), by quadrature accurate to ~1e-14.

    Parameters
    ----------
    theta : array_like, shape (..., 2N)

    Returns
    -------
    ndarray, shape (...)

    Notes
    -----
    The quadrature is a graded composite Gauss–Legendre rule against the normal density (see ``_normal_rule``);
    Gauss–Hermite would not be accurate to 1e-12 once |w| ≳ 2 (tanh(w x) has poles at
    x = ±iπ/(2w)). Tested against ``scipy.integrate.quad``.

    Examples
    --------
    >>> float(generalization_error([1.0, 1.0, 1.5, 0.5]))   # a point of O
    0.0
    """
    return function_distance(theta)


def distance_to_optimal_set(theta):
    """Euclidean distance in parameter space from θ to the optimal region O = {θ : f(·; θ) = 2 tanh} (N = 2).

    O is the union of the symmetry images of the lines A = {(1, 1, a, 2 − a)}, B = {(1, b, 2, 0)} and
    C = {(1, 0, 2, c)} (θ = (w1, w2, v1, v2)); the distance is the minimum over the 8 images of θ of the distances
    to A, B, C (closed form).

    Parameters
    ----------
    theta : array_like, shape (..., 4)

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> distance_to_optimal_set([[1.0, 1.0, 0.5, 1.5], [0.0, 0.0, 0.0, 0.0]]).tolist()   # on line A; θ = 0
    [0.0, 2.0]
    """
    theta = _check_theta(theta)
    if theta.shape[-1] != 4:
        raise ValueError(f"theta must have last axis 4 (w1, w2, v1, v2) for the N = 2 optimal set, got {theta.shape}")
    g = orbit(theta)
    w1, w2, v1, v2 = np.moveaxis(g, -1, 0)
    dA = (w1 - 1) ** 2 + (w2 - 1) ** 2 + 0.5 * (v1 + v2 - 2) ** 2
    dB = (w1 - 1) ** 2 + (v1 - 2) ** 2 + v2 ** 2
    dC = (w1 - 1) ** 2 + w2 ** 2 + (v1 - 2) ** 2
    return np.sqrt(np.min(np.minimum(np.minimum(dA, dB), dC), axis=0))


def optimal_set_sample(num: int = 60, span: float = 3.0):
    """Points of O for N = 2 (each line A, B, C of :func:`distance_to_optimal_set` sampled), shape (3·num, 4).

    Parameters
    ----------
    num : int
        Points per line, num ≥ 1.
    span : float
        The free coordinate of each line (a, b or c) runs over ``linspace(-span, span, num)``, span > 0.

    Returns
    -------
    ndarray, shape (3·num, 4)
        Rows (w1, w2, v1, v2): first the ``num`` points of A, then B, then C (one representative of each line;
        apply :func:`rds.symmetry.orbit` for all symmetry images).

    Examples
    --------
    >>> O = optimal_set_sample(5)
    >>> O.shape, float(generalization_error(O).max()) < 1e-20, float(distance_to_optimal_set(O).max())
    ((15, 4), True, 0.0)
    """
    num = integer(num, "num", 1)
    span = positive(span, "span")
    a = np.linspace(-span, span, num)
    one, zero, two = np.ones(num), np.zeros(num), 2.0 * np.ones(num)
    A = np.stack([one, one, a, 2 - a], -1)
    B = np.stack([one, a, two, zero], -1)
    C = np.stack([one, zero, two, a], -1)
    return np.concatenate([A, B, C])


# --------------------------------------------------------------------------------------------------- Newton

def overfitting_point(x, y, start, tol: float = 1e-12, max_iter: int = 200):
    """Polish a GD end point into the nearby local minimum of E_tr by Newton's method with the analytic Hessian.

    Each step solves (|H| + μI) δ = −∇E_tr, |H| = Q|Λ|Qᵀ the Hessian with its eigenvalues made positive (so the
    step always descends, also next to a saddle or in a long flat valley), and is accepted if E_tr does not increase
    (then μ ← μ/10, else μ ← 10μ). Once H > 0 near the minimum and μ → 0 this is plain Newton, θ ← θ − H⁻¹∇E_tr,
    with quadratic convergence. Started from a GD end point it finds the overfitting point θ_ovf (Definition 2),
    a strict local minimum when ``n_unstable == 0`` and the smallest eigenvalue is > 0.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        The dataset.
    start : array_like, shape (2N,)
    tol : float
        Stop when ‖∇E_tr‖_∞ ≤ tol.
    max_iter : int

    Returns
    -------
    dict
        ``theta`` (2N,), ``canonical`` (2N,), ``grad_norm`` (Euclidean), ``eigenvalues`` (2N,) of ∇²E_tr,
        ``n_unstable``, ``E_tr``, ``E_gen``, ``iterations``, ``converged`` (bool: ‖∇E_tr‖_∞ ≤ tol).

    Examples
    --------
    >>> x, y = make_dataset(30, noise_std=0.2, seed=1)
    >>> p = overfitting_point(x, y, [0.5, 1.5, 1.5, 0.5])
    >>> p["converged"], p["n_unstable"], bool(p["eigenvalues"][0] > 0)   # a strict local minimum of E_tr
    (True, 0, True)
    """
    x, y = check_dataset(x, y)
    theta = finite_array(start, "start", ndim=1).copy()
    _check_theta(theta, "start")
    tol = positive(tol, "tol")
    max_iter = integer(max_iter, "max_iter", 1)
    g = training_gradient(theta, x, y)
    E = training_error(theta, x, y)
    mu, it = 0.0, 0
    while it < max_iter and np.max(np.abs(g)) > tol:
        it += 1
        lam, Q = np.linalg.eigh(training_hessian(theta, x, y))
        lam_abs = np.maximum(np.abs(lam), 1e-300)
        new = theta - Q @ ((Q.T @ g) / (lam_abs + mu))
        E_new, g_new = training_error(new, x, y), training_gradient(new, x, y)
        ok = E_new < E or (E_new <= E + 4 * np.finfo(float).eps * abs(E)
                           and np.linalg.norm(g_new) < np.linalg.norm(g))
        if ok:
            theta, g, E = new, g_new, E_new
            mu = 0.0 if mu < 1e-14 else mu / 10.0
        else:
            mu = max(10.0 * mu, 1e-10 * max(1.0, float(np.max(np.abs(lam)))))
            if mu > 1e12:
                break
    n_unst, lam = count_unstable(training_hessian(theta, x, y))
    return {"theta": theta, "canonical": canonical(theta), "grad_norm": float(np.linalg.norm(g)),
            "eigenvalues": lam, "n_unstable": int(n_unst), "E_tr": float(E),
            "E_gen": float(generalization_error(theta)), "iterations": it,
            "converged": bool(np.max(np.abs(g)) <= tol)}


# --------------------------------------------------------------------------------------------------- GD runs

def _dataset_of(gd):
    if not isinstance(gd, rds.RandomDynamicalSystem) or gd.name != "teacher_student":
        raise TypeError(f"gd must be a system from rds.models.teacher_student, got {gd!r}")
    x, y = gd.noise.data
    return np.asarray(x), np.asarray(y), gd.nvar // 2, float(gd.params[0])


def log_spaced_times(steps: int, num: int = 200):
    """Integer times 0 and ≈ num log-spaced steps in [1, steps] (:func:`rds.timegrid.log_times`), int64 ascending."""
    return log_times(integer(steps, "steps", 1), integer(num, "num", 1), zero=True)


def learning_curves(gd, initial, steps, *, num: int = 200, backend=None, unstable_rtol: float = 1e-9,
                    polish: bool = True, sample_seed: int = 0):
    """Learning curves of full-batch GD on a fixed dataset: E_tr, E_gen, Hessian spectrum and phases (Maleknia & Sato).

    The trajectory is recorded at t = 0 and ``num`` log-spaced steps up to ``steps`` by the core engine
    (``gd.trajectory(..., times=...)``). At each record: E_tr (eq. 1), E_gen (eq. 2), |∇E_tr|, the Hessian of E_tr
    (analytic; equal to (I − J)/η with J = ``gd.jacobian_matrix``), its eigenvalues and ``n_unstable``, the number of
    negative ones (unstable directions of GD; the paper counts positive eigenvalues of −∇²E_tr).

    Phases (defined without the Hessian, so that the Hessian counts can be compared with them). Three landmark
    functions: S (f ≡ 0, the singular region next to which the plateau is spent), O (f = f*), and the overfitting
    function f(·; θ_ovf), θ_ovf = Newton polish of the end point; squared L²(N(0,1)) distances ``d_singular`` = ‖f‖²,
    ``E_gen``, ``d_overfit``. A record is *plateau* if f(·; θ_t) is nearer to S than to O; otherwise *overfitting*
    if it comes after the step of minimal E_gen (``t_min_gen``, the usual onset of overfitting: E_gen rises while
    E_tr still falls) and is nearer to f(·; θ_ovf) than to O; otherwise *near_optimal*. With noise-free labels
    E_gen keeps falling, θ_ovf ∈ O, and there is no overfitting phase.

    Parameters
    ----------
    gd : RandomDynamicalSystem
        From ``rds.models.teacher_student(x, y, hidden, eta)``.
    initial : array_like, shape (2N,) or (1, 2N); rds.regions.Box or callable
        θ_0 = (w1…wN, v1…vN): one run (a Box or sampler draws one state, seeded by ``sample_seed``;
        :mod:`rds.sampling`).
    steps : int
        Number of GD steps (paper: 3·10⁶).
    num : int, keyword-only
        Number of log-spaced record times (:func:`rds.timegrid.log_times`; t = 0 is added).
    backend : {"numba", "numpy", "jax", None}, keyword-only
        Engine backend; None (default) picks the fastest for the total work.
    unstable_rtol : float, keyword-only
        Relative tolerance of :func:`count_unstable`.
    sample_seed : int, keyword-only
        Seed of the sampling when ``initial`` is a Box or sampler.
    polish : bool, keyword-only
        Newton-polish the end point into θ_ovf (needed for the overfitting label; if False the end point is used).

    Returns
    -------
    xarray.Dataset
        Over dim ``time`` (absolute step): ``state`` (time, var), ``E_tr``, ``E_gen``, ``grad_norm``,
        ``d_singular``, ``d_overfit``, ``distance_O`` (parameter-space distance to O, N = 2 only, else NaN),
        ``hessian`` (time, var, var_b), ``hessian_eigenvalues`` (time, eig), ``n_unstable`` (time), ``phase`` (time,
        index into :data:`PHASES`, flag_meanings in attrs); scalars ``overfitting_point`` (var), ``overfit_canonical``
        (var), ``t_min_gen``, ``E_gen_min``, ``E_gen_final``, ``E_tr_final``. Attrs: ``gd.describe()``, steps, num,
        method settings, phase and n_unstable step ranges (``phase_ranges``, ``unstable_ranges``, as
        "label:first-last" strings over recorded times).

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> x, y = analysis.make_dataset(30, noise_std=0.1, seed=0)
    >>> gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    >>> ds = analysis.learning_curves(gd, [-0.13, 0.13, 0.16, -0.15], 2000, num=20, backend="numpy")
    >>> ds.E_gen.dims
    ('time',)
    """
    x, y, N, eta = _dataset_of(gd)
    X0, _ = initial_states(initial, gd.variables, members=1 if _is_sampler(initial) else None,
                           sample_seed=sample_seed)
    if X0.shape[0] != 1:
        raise ValueError(f"initial: learning_curves follows one run; give one state ({gd.nvar},), got {X0.shape}")
    initial = X0[0]
    steps = integer(steps, "steps", 1)
    times = log_spaced_times(steps, num)
    unstable_rtol = nonnegative(unstable_rtol, "unstable_rtol")
    tr = gd.trajectory(X0, steps, times=times, backend=backend, progress=False)
    rec = _record_quantities(tr.state.values[:, 0, :], x, y, unstable_rtol, polish)
    ds = _learning_curves_dataset(rec, times, gd.variables)
    ds.attrs.update(gd.describe())
    ds.attrs.update({
        "analysis": "learning_curves", "steps": steps, "num": int(num), "backend": tr.attrs["backend"],
        "initial": initial, "unstable_rtol": unstable_rtol, "n_diverged": int(tr.attrs["n_diverged"]),
        "polish_converged": int(rec["converged"]), "phases": " ".join(PHASES),
        "phase_ranges": _ranges([PHASES[p] if p >= 0 else "diverged" for p in rec["phase"]], times),
        "unstable_ranges": _ranges([str(int(k)) for k in rec["n_unst"]], times, rec["finite"]),
        "quadrature": "composite Gauss-Legendre vs N(0,1) density, graded panels, |x| <= 10",
        "equations": "Maleknia & Sato (2026): eq. 1 (E_tr), eq. GD, eq. 2 (E_gen); Hessian = (I - J)/eta"})
    return annotate(ds)  # long_name / units from rds.labels


def _is_sampler(initial):
    return isinstance(initial, rds.regions.Box) or (callable(initial) and not isinstance(initial, np.ndarray))


def _record_quantities(S, x, y, unstable_rtol, polish):
    """E_tr, E_gen, |∇E_tr|, Hessian spectrum, landmark distances and phases at each record of S (time, var)."""
    N = S.shape[1] // 2
    finite = np.all(np.isfinite(S), axis=-1)
    Sf = np.where(finite[:, None], S, 0.0)
    E_gen = np.where(finite, generalization_error(Sf), np.nan)
    H = training_hessian(Sf, x, y)
    H[~finite] = np.nan
    n_unst, lam = count_unstable(np.where(finite[:, None, None], H, 0.0), unstable_rtol)
    lam[~finite] = np.nan
    if finite[-1] and polish:
        pol = overfitting_point(x, y, S[-1])
        theta_ovf, converged = pol["theta"], pol["converged"]
    else:
        theta_ovf, converged = S[-1], False
    d_sing = function_distance(Sf, np.zeros(2 * N))
    d_ovf = function_distance(Sf, theta_ovf) if np.all(np.isfinite(theta_ovf)) else np.full(len(S), np.nan)
    i_min = int(np.nanargmin(E_gen)) if np.any(finite) else 0
    after = np.arange(len(S)) > i_min
    phase = np.where(d_sing < E_gen, 0, np.where(after & (d_ovf < E_gen), 2, 1))
    return {"S": S, "finite": finite, "E_tr": np.where(finite, training_error(Sf, x, y), np.nan), "E_gen": E_gen,
            "grad": np.where(finite, np.linalg.norm(training_gradient(Sf, x, y), axis=-1), np.nan),
            "H": H, "lam": lam, "n_unst": n_unst, "theta_ovf": theta_ovf, "converged": converged,
            "d_sing": np.where(finite, d_sing, np.nan), "d_ovf": np.where(finite, d_ovf, np.nan), "i_min": i_min,
            "phase": np.where(finite, phase, -1).astype(np.int8),
            "dO": np.where(finite, distance_to_optimal_set(Sf) if N == 2 else np.nan, np.nan)}


def _learning_curves_dataset(rec, times, variables):
    """The Dataset of :func:`learning_curves` from the recorded quantities (without the run's attrs)."""
    finite, i_min, E_gen, E_tr = rec["finite"], rec["i_min"], rec["E_gen"], rec["E_tr"]
    var = list(variables)
    ds = xr.Dataset(
        {"state": (("time", "var"), rec["S"]), "E_tr": ("time", E_tr), "E_gen": ("time", E_gen),
         "grad_norm": ("time", rec["grad"]), "d_singular": ("time", rec["d_sing"]),
         "d_overfit": ("time", rec["d_ovf"]), "distance_O": ("time", rec["dO"]),
         "hessian": (("time", "var", "var_b"), rec["H"]), "hessian_eigenvalues": (("time", "eig"), rec["lam"]),
         "n_unstable": ("time", np.where(finite, rec["n_unst"], -1).astype(np.int64)),
         "phase": ("time", rec["phase"]),
         "overfitting_point": ("var", rec["theta_ovf"]), "overfit_canonical": ("var", canonical(rec["theta_ovf"])),
         "t_min_gen": ((), int(times[i_min])), "E_gen_min": ((), float(E_gen[i_min])),
         "E_gen_final": ((), float(E_gen[-1])), "E_tr_final": ((), float(E_tr[-1]))},
        coords={"time": times, "var": var, "var_b": var, "eig": np.arange(len(var))},
    )
    ds["phase"].attrs.update({"flag_values": np.arange(len(PHASES), dtype=np.int8),
                              "flag_meanings": " ".join(PHASES), "missing_value_meaning": "-1: diverged"})
    ds["E_tr"].attrs["long_name"] = "training error (1/n) sum (f(x_k) - y_k)^2, eq. 1"
    ds["E_gen"].attrs["long_name"] = "generalisation error E_x[(f - 2 tanh)^2], x ~ N(0,1), eq. 2"
    ds["n_unstable"].attrs["long_name"] = "number of negative eigenvalues of the Hessian of E_tr (-1: diverged)"
    ds["d_singular"].attrs["long_name"] = "E_x[f(x)^2]: squared L2 distance to the singular region f = 0"
    ds["d_overfit"].attrs["long_name"] = "E_x[(f(x) - f(x; theta_ovf))^2]"
    ds["distance_O"].attrs["long_name"] = "Euclidean distance in parameter space to the optimal set O (N = 2)"
    return ds


def _ranges(labels, times, mask=None):
    """Run-length encode labels over recorded times: "a:t0-t1;b:t2-t3"."""
    out, start = [], None
    for i, lab in enumerate(labels):
        if mask is not None and not mask[i]:
            lab = "diverged"
        if start is None:
            start, cur = i, lab
        elif lab != cur:
            out.append(f"{cur}:{times[start]}-{times[i - 1]}")
            start, cur = i, lab
    if start is not None:
        out.append(f"{cur}:{times[start]}-{times[len(labels) - 1]}")
    return ";".join(out)


END_KINDS = ("strict_min", "degenerate_min", "saddle", "not_critical")
"""Labels of the ``kind`` variable of :func:`convergence_modulo_symmetry`."""


def convergence_modulo_symmetry(gd, initial, steps, backend=None, polish: bool = True,
                                unstable_rtol: float = 1e-9, critical_tol: float = 1e-10, *, members=None,
                                sample_seed: int = 0):
    """Run GD from many initial conditions and compare the end points modulo symmetry (Theorem 3.1).

    Parameters
    ----------
    gd : RandomDynamicalSystem
        From ``rds.models.teacher_student``.
    initial : array_like (member, 2N) or (2N,), rds.regions.Box, or callable
        Initial states, or how to draw ``members`` of them (seeded by ``sample_seed``; :mod:`rds.sampling`).
    steps : int
        GD steps before (optional) Newton polishing.
    backend : {"numba", "numpy", "jax", None}
        Engine backend; None (default) picks the fastest for the total work.
    polish : bool
        Newton-polish each end point (:func:`overfitting_point`).
    unstable_rtol : float
        Relative tolerance for zero Hessian eigenvalues (:func:`count_unstable`).
    critical_tol : float
        |∇E_tr| below which an end point counts as critical.
    members, sample_seed : int, keyword-only
        Number of states to draw when ``initial`` is a Box or sampler, and the sampling seed.

    Returns
    -------
    xarray.Dataset
        ``end`` (member, var) GD end points, ``canonical`` (member, var) their canonical forms (after polishing if
        ``polish``), ``E_tr``, ``E_gen``, ``grad_norm``, ``n_unstable``, ``min_eig`` (member), ``converged``
        (member, Newton), ``kind`` (member; index into :data:`END_KINDS`: strict minimum, degenerate minimum — a
        zero Hessian eigenvalue, e.g. on a line of synchronised neurons w1 = w2 where only v1 + v2 matters —,
        saddle, not critical), ``spread`` (scalar): max over members of the Euclidean distance between canonical
        end points and their median, ``spread_minima`` (the same over strict minima), ``function_spread``: max
        L²(N(0,1)) distance between the functions of all minima (strict or degenerate) — Theorem 3.1's uniqueness
        is of the function, and a degenerate line of minima is one function. Attrs: the system, steps, counts.

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> x, y = analysis.make_dataset(30, noise_std=0.05, seed=0)
    >>> gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    >>> starts = np.random.default_rng(1).uniform(-1, 1, (4, 4))
    >>> ds = analysis.convergence_modulo_symmetry(gd, starts, 5000, backend="numpy")
    >>> ds.canonical.dims
    ('member', 'var')
    """
    x, y, N, eta = _dataset_of(gd)
    initial, _ = initial_states(initial, gd.variables, members=members, sample_seed=sample_seed)
    steps = integer(steps, "steps", 1)
    end = gd.evolve(initial, steps, backend=backend, progress=False)
    M = end.shape[0]
    pts = end.copy()
    conv = np.zeros(M, dtype=bool)
    if polish:
        for m in range(M):          # a handful of Newton solves on converged end points, not a time loop
            if np.all(np.isfinite(end[m])):
                p = overfitting_point(x, y, end[m])
                pts[m], conv[m] = p["theta"], p["converged"]
    finite = np.all(np.isfinite(pts), axis=-1)
    P = np.where(finite[:, None], pts, 0.0)
    n_unst, lam = count_unstable(training_hessian(P, x, y), unstable_rtol)
    flat = np.abs(lam[:, 0]) <= unstable_rtol * np.maximum(1.0, np.max(np.abs(lam), axis=-1))
    gnorm = np.linalg.norm(training_gradient(P, x, y), axis=-1)
    critical = finite & (gnorm <= critical_tol)
    kind = np.select([~critical, n_unst > 0, flat], [3, 2, 1], 0)
    kind = np.where(finite, kind, -1).astype(np.int8)
    can = canonical(pts)
    med = np.nanmedian(can, axis=0)
    dev = np.linalg.norm(can - med, axis=-1)
    strict = kind == 0
    minima = (kind == 0) | (kind == 1)
    if np.any(minima):
        Cm = can[minima]
        fspread = float(np.sqrt(np.max(function_distance(Cm[:, None, :], Cm[None, :, :]))))
    else:
        fspread = np.nan
    ds = xr.Dataset(
        {"end": (("member", "var"), end), "canonical": (("member", "var"), can),
         "E_tr": ("member", np.where(finite, training_error(P, x, y), np.nan)),
         "E_gen": ("member", np.where(finite, generalization_error(P), np.nan)),
         "grad_norm": ("member", np.where(finite, gnorm, np.nan)),
         "n_unstable": ("member", np.where(finite, n_unst, -1).astype(np.int64)),
         "min_eig": ("member", np.where(finite, lam[:, 0], np.nan)),
         "converged": ("member", conv.astype(np.int8)),
         "kind": ("member", kind),
         "function_spread": ((), fspread),
         "spread": ((), float(np.nanmax(dev)) if np.any(finite) else np.nan),
         "spread_minima": ((), float(np.max(np.linalg.norm(can[strict] - np.median(can[strict], 0), axis=-1)))
                           if np.any(strict) else np.nan)},
        coords={"member": np.arange(M), "var": list(gd.variables)})
    ds["kind"].attrs.update({"flag_values": np.arange(4, dtype=np.int8), "flag_meanings": " ".join(END_KINDS),
                             "missing_value_meaning": "-1: diverged"})
    ds.attrs.update(gd.describe())
    ds.attrs.update({"analysis": "convergence_modulo_symmetry", "unstable_rtol": unstable_rtol,
                     "critical_tol": critical_tol, "n_strict_min": int(strict.sum()),
                     "n_degenerate_min": int((kind == 1).sum()), "steps": steps, "polish": int(polish),
                     "n_diverged": int((~finite).sum()), "reference": "Maleknia & Sato 2026, Theorem 3.1"})
    return annotate(ds)  # long_name / units from rds.labels
