"""Training a JAX model with an optax optimizer on a fixed dataset, as a random map on (parameters, optimizer state).

A model is any pytree of parameters p with a loss ``loss(p, X_batch, y_batch)`` written in ``jax.numpy`` (a plain
function, a Flax ``apply`` or an Equinox module call inside it); the optimizer is any
``optax.GradientTransformation`` (SGD, heavy-ball momentum, Nesterov, Adam, schedules, clipping chains …). One
training step on the minibatch I_t (S indices drawn uniformly with replacement, replayable by (seed, realisation,
t): :class:`rds.noise.Minibatches`; ``batch=None``: the whole dataset, full-batch GD) is

    g_t = ∇_p L(p_t; I_t),   (u_t, s_{t+1}) = update(g_t, s_t, p_t),   p_{t+1} = p_t + u_t,
    L(p; I) = loss(p, X[I], y[I]),

a random map on θ = (p, s), the parameters *and* the optimizer's state (momentum buffer, Adam's moments): the
state is flattened once (:mod:`rds.native`) and ``var`` names each entry by its path (``params/W[3,7]``,
``opt_state/0/mu/W[3,7]``). The optimizer's integer step counters (Adam's ``count`` for the bias correction
1 − β^t, a schedule's ``count``) are not dynamical variables: they are the absolute step t, so such optimizers are
step-dependent maps (a skew product over time and noise, :mod:`rds.native`), defined for t ≥ 0 — a run from t0
continues a training started at t = 0.

With ``optax.sgd(η)`` the map is θ ← θ − η ∇L(θ; I_t), the map of :func:`rds.models.dataset_sgd` for a two-layer
network with the same loss (the tests compare them to 1e-12 on one minibatch path). Heavy ball
(``optax.sgd(η, momentum=β)``: m ← g + β m, p ← p − η m) on a quadratic ½ pᵀHp is linear, with the eigenvalues of
the companion matrices [[1 + β − η h, −β], [1, 0]] over the eigenvalues h of H (Polyak 1964); stable iff
η h < 2 (1 + β) for all h.

References: Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput. Math. Math.
Phys. 4 (1964) 1–17; Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015; DeepMind et al.,
"The DeepMind JAX ecosystem" (optax), 2020.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from rds._checks import integer
from rds.native import _dtype_of, _unflatten
from rds.noise import FixedDataset, Minibatches, NoiseSource
from rds.system import RandomDynamicalSystem

__all__ = ["optax_training", "training_state", "training_states", "training_losses", "loss_region",
           "split_state", "TrainingState"]

#: The state of a training map: the model's parameters and the optimizer's state without its step counters.
TrainingState = namedtuple("TrainingState", ["params", "opt_state"])


def _require():
    try:
        import jax
        import optax
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("optax_training needs JAX and optax: pip install 'rds[jax]'") from None
    return jax, optax


def _check_xy(data, name="data"):
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (X, y) of arrays, got {type(data).__name__}") from None
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 1 or X.shape[0] == 0 or y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{name}: X and y must have the same first dimension n >= 1 (one row per sample), got "
                         f"shapes {X.shape} and {y.shape}")
    for arr, what in ((X, "X"), (y, "y")):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name}: {what} must be a real or integer array, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: {what} must be finite (found NaN or inf)")
    X = X.astype(float) if not np.issubdtype(X.dtype, np.integer) else X.astype(np.int32)
    y = y.astype(float) if not np.issubdtype(y.dtype, np.integer) else y.astype(np.int32)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _counters(optimizer, params):
    """The optimizer state's leaves: which are integer step counters (c0 + t), checked on one update."""
    jax, optax = _require()
    s0 = optimizer.init(params)
    leaves, treedef = jax.tree_util.tree_flatten(s0)
    is_int = tuple(not np.issubdtype(_dtype_of(leaf), np.inexact) for leaf in leaves)
    if any(is_int):
        zeros = jax.tree_util.tree_map(lambda p: np.zeros(np.shape(p)), params)
        s1 = optimizer.update(zeros, s0, params)[1]
        l1, td1 = jax.tree_util.tree_flatten(s1)
        for i, (a, b) in enumerate(zip(leaves, l1)):
            if is_int[i] and not np.array_equal(np.asarray(b), np.asarray(a) + 1):
                raise ValueError("optimizer: its state has an integer leaf that is not a step counter (it went "
                                 f"from {np.asarray(a)} to {np.asarray(b)} in one step, not +1); rds treats "
                                 "integer state as the step t and cannot run this optimizer")
    c0 = tuple(int(np.asarray(leaf)) if flag else 0 for leaf, flag in zip(leaves, is_int))
    dtypes = tuple(str(_dtype_of(leaf)) if flag else "" for leaf, flag in zip(leaves, is_int))
    return s0, treedef, is_int, c0, dtypes


def split_state(opt_state, is_int):
    """The optimizer state without its step counters (``None`` in their place): the part that is in θ.

    Parameters
    ----------
    opt_state : pytree
        An optax state.
    is_int : tuple of bool
        Per leaf (JAX flattening order), whether it is a step counter.

    Returns
    -------
    pytree
        ``opt_state`` with the counters replaced by ``None`` (an empty subtree).

    Examples
    --------
    >>> import numpy as np, optax
    >>> s = optax.adam(1e-3).init({"w": np.zeros(2)})
    >>> import jax
    >>> flags = tuple(np.issubdtype(np.asarray(x).dtype, np.integer) for x in jax.tree_util.tree_leaves(s))
    >>> len(jax.tree_util.tree_leaves(split_state(s, flags)))   # mu and nu; the count is the time t
    2
    """
    import jax
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    return jax.tree_util.tree_unflatten(treedef, [None if f else leaf for leaf, f in zip(leaves, is_int)])


def _join_state(float_state, treedef, is_int, c0, dtypes, t):
    """The full optimizer state from its float part (None at the counters) and the step t (traced)."""
    import jax
    import jax.numpy as jnp
    floats = iter(jax.tree_util.tree_leaves(float_state))
    leaves = [jnp.asarray(c + t, dtype=dt) if f else next(floats) for f, c, dt in zip(is_int, c0, dtypes)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _training_state(params, opt_state):
    return TrainingState(params, opt_state)


def _make_training_step(loss, optimizer, X, y, opt_treedef, is_int, c0, dtypes, hyper_names):
    def training_step(state, xi, params, t=0):
        import jax
        import jax.numpy as jnp
        import optax
        p = state[0]
        idx = xi.astype(jnp.int32)
        dtype = jax.tree_util.tree_leaves(p)[0].dtype
        Xa = jnp.asarray(X, dtype=dtype) if X.dtype.kind == "f" else jnp.asarray(X)
        ya = jnp.asarray(y, dtype=dtype) if y.dtype.kind == "f" else jnp.asarray(y)
        g = jax.grad(loss)(p, jnp.take(Xa, idx, axis=0), jnp.take(ya, idx, axis=0))
        s = _join_state(state[1], opt_treedef, is_int, c0, dtypes, t)
        opt = optimizer(**dict(zip(hyper_names, params))) if hyper_names else optimizer  # run-time values
        u, s_new = opt.update(g, s, p)
        return _training_state(optax.apply_updates(p, u), split_state(s_new, is_int))
    return training_step


def optax_training(loss, params, optimizer, data, batch: int | None = None, *, hyperparams=None, test=None,
                   precision: str = "float64", common_noise: bool = True, name: str | None = None,
                   symmetry: str = "none") -> RandomDynamicalSystem:
    """The random map of training ``params`` with ``optimizer`` on ``data``, minibatch by minibatch.

    Parameters
    ----------
    loss : callable
        ``loss(params, X_batch, y_batch) -> scalar``, written in ``jax.numpy`` (differentiable in ``params``).
        X_batch has shape (S,) + X.shape[1:], y_batch (S,) + y.shape[1:].
    params : pytree of float arrays
        The model's parameters (a template: their values are not used; see :func:`training_state`).
    optimizer : optax.GradientTransformation, or a callable returning one
        Any optax optimizer. Its float state (momentum, moments) is part of θ; its integer step counters are the
        absolute step t (the map is then step-dependent, defined for t ≥ 0). With ``hyperparams``: a factory
        such as ``optax.sgd``, called as ``optimizer(**hyperparams)`` inside the step.
    data : (X, y)
        The training set: n rows; float or integer arrays (integer labels stay integers).
    batch : int or None
        Minibatch size S ≥ 1 (indices drawn with replacement, i.i.d. per step: :class:`rds.noise.Minibatches`);
        None: full-batch training (the quenched noise ``FixedDataset(arange(n))``; with a step counter the map is
        still step-dependent).
    hyperparams : dict of str to float, or None, keyword-only
        Real hyperparameters of the optimizer factory (``{"learning_rate": 0.1, "momentum": 0.9}``): they become
        the system's ``params`` (run-time arguments), so that systems differing only in their values share one
        compiled kernel (a scan over η compiles once).
    test : (X_test, y_test) or None
        Held-out data for :func:`training_losses` (``"test"`` loss curve).
    precision : {"float64", "float32"}
        Floating point type of the run (JAX backend).
    common_noise : bool
        All members share the minibatch sequence (default: the random dynamical system picture).
    name : str or None
        Model name in attrs (default ``"optax_training"``).
    symmetry : str
        The network symmetry the model declares (recorded in the ``network_symmetry`` attr; ``"none"``).

    Returns
    -------
    RandomDynamicalSystem
        A JAX-native vector map (:mod:`rds.native`) on θ = (params, optimizer state), D entries named by path;
        ``system.pytree`` maps θ to ``TrainingState(params, opt_state)`` and back. Declared losses
        (:func:`training_losses`) are the default losses of :func:`analysis.loss_curves`.

    Raises
    ------
    ValueError
        Bad data, batch, precision, or an optimizer whose integer state is not a step counter.

    Notes
    -----
    The step is traced as written, in the system's precision; what the optimizer computes in its own dtype stays
    so (optax's schedules, e.g. ``exponential_decay``, return float32 learning rates even in a float64 run: write
    the schedule with ``count.astype(jnp.float64)`` for a float64 one). Adam with a tiny ``eps`` divides by
    √v̂ + ε, which amplifies rounding where a gradient component is ~0: two correct float64 evaluations of the
    same training (jit and eager) drift apart to ~1e-9 within tens of steps there.

    Examples
    --------
    Linear regression with Adam:

    >>> import numpy as np, jax.numpy as jnp, optax, rds
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 3)); y = X @ np.array([1.0, -2.0, 0.5])
    >>> def loss(p, Xb, yb):
    ...     return jnp.mean((Xb @ p["w"] + p["b"] - yb) ** 2)
    >>> params = {"w": np.zeros(3), "b": np.zeros(())}
    >>> sys = rds.models.optax_training(loss, params, optax.adam(0.05), data=(X, y), batch=16)
    >>> sys.nvar, sys.variables[:2], sys.variables[4]
    (12, ('params/b', 'params/w[0]'), 'opt_state/0/mu/b')
    >>> sys.attrs["step_counters"]   # Adam's count is the time t: a step-dependent map
    1
    >>> from rds.models.optax_training import training_state
    >>> theta = sys.evolve(training_state(sys, params), 500)
    >>> np.round(sys.pytree.unflatten(theta).params["w"], 3).tolist()
    [1.0, -2.0, 0.5]
    """
    jax, optax = _require()
    if not callable(loss):
        raise TypeError("loss must be callable: loss(params, X_batch, y_batch) -> scalar")
    hyper_names: tuple = ()
    hyper: tuple = ()
    if hyperparams is not None:
        if not isinstance(hyperparams, dict) or not hyperparams or not all(
                isinstance(k, str) and k.isidentifier() for k in hyperparams):
            raise ValueError(f"hyperparams must be a non-empty dict {{name: float}}, got {hyperparams!r}")
        if not callable(optimizer):
            raise TypeError("optimizer must be a callable optimizer(**hyperparams) -> GradientTransformation "
                            "when hyperparams are given")
        hyper_names = tuple(hyperparams)
        try:
            vals = [float(v) for v in hyperparams.values()]
        except (TypeError, ValueError):
            raise ValueError(f"hyperparams must map names to real numbers, got {hyperparams!r}") from None
        Hyper: Any = namedtuple("Hyperparams", hyper_names)  # type: ignore[misc]  # field names known at run time
        hyper = Hyper(*vals)
        opt0 = optimizer(**hyperparams)
    else:
        opt0 = optimizer
    if not (hasattr(opt0, "init") and hasattr(opt0, "update")):
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(opt0).__name__}")
    X, y = _check_xy(data)
    n = X.shape[0]
    if test is not None:
        Xt, yt = _check_xy(test, "test")
        if Xt.shape[1:] != X.shape[1:] or yt.shape[1:] != y.shape[1:]:
            raise ValueError(f"test: rows must have the shapes of the training rows {X.shape[1:]}, {y.shape[1:]}")
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    noise: NoiseSource = FixedDataset(np.arange(n, dtype=float)) if batch is None else \
        Minibatches(n, integer(batch, "batch", 1))
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=float), params)
        s0, opt_treedef, is_int, c0, dtypes = _counters(opt0, params64)
        template = TrainingState(params64, split_state(s0, is_int))
        step = _make_training_step(loss, optimizer, X, y, opt_treedef, is_int, c0, dtypes, hyper_names)
        stepdep = any(is_int)
        spec = {"loss": loss, "params": params, "optimizer": optimizer, "data": (X, y), "batch": batch,
                "test": test, "hyperparams": hyperparams, "precision": precision, "common_noise": common_noise,
                "name": name, "symmetry": symmetry}
        system = RandomDynamicalSystem.from_jax(
            step, template, noise=noise, params=hyper, time_dependent=stepdep,
            t_min=0 if stepdep else None, name=name or "optax_training", common_noise=common_noise,
            precision=precision, recipe=(optax_training, spec),
            attrs={"reference": "optax (DeepMind 2020); Polyak (1964); Kingma & Ba (2015)",
                   "equations": "p <- p + u, (u, s) = update(grad L(p; I_t), s, p), L(p; I) = loss(p, X[I], y[I])",
                   "n_data": n, "batch": 0 if batch is None else int(batch),
                   "optimizer_state_leaves": len(is_int), "step_counters": int(sum(is_int)),
                   "network_symmetry": str(symmetry)})
    system.name = name or "optax_training"
    return system


def _spec(system) -> dict:
    spec = getattr(system, "_spec", None)
    if not spec or spec[0] is not optax_training:
        raise ValueError("system must come from rds.models.optax_training")
    return spec[1]


def training_state(system, params) -> np.ndarray:
    """θ (D,) of a training system at its start: the parameters and the optimizer's initial state.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`optax_training`.
    params : pytree
        Parameters with the structure of the template.

    Returns
    -------
    ndarray, shape (D,)
        ``system.pytree.flatten(TrainingState(params, optimizer.init(params)))`` without the step
        counters (they are t).
    """
    jax, _ = _require()
    spec = _spec(system)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=float), params)
        opt = spec["optimizer"] if spec["hyperparams"] is None else spec["optimizer"](**spec["hyperparams"])
        s0, _, is_int, _, _ = _counters(opt, p64)
        return system.pytree.flatten(TrainingState(p64, split_state(s0, is_int)))


def training_states(system, init, seeds) -> np.ndarray:
    """Initial states (member, D) from a model's ``init(key) -> params``, one member per seed.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`optax_training`.
    init : callable
        ``init(jax.random.PRNGKey(seed)) -> params`` (e.g. a Flax ``model.init`` wrapped, an Equinox constructor).
    seeds : int or sequence of int
        The seeds (an int n: seeds 0 … n − 1).

    Returns
    -------
    ndarray, shape (member, D)

    Examples
    --------
    >>> import numpy as np, jax, jax.numpy as jnp, optax, rds
    >>> from rds.models.optax_training import optax_training, training_states
    >>> def init(key):
    ...     return {"w": jax.random.normal(key, (3,))}
    >>> sys = optax_training(lambda p, X, y: jnp.mean((X @ p["w"] - y) ** 2), init(jax.random.PRNGKey(0)),
    ...                      optax.sgd(0.1, momentum=0.9), data=(np.ones((4, 3)), np.zeros(4)))
    >>> training_states(sys, init, 5).shape
    (5, 6)
    """
    jax, _ = _require()
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = range(integer(seeds, "seeds", 1))
    rows = [training_state(system, init(jax.random.PRNGKey(int(s)))) for s in seeds]
    if not rows:
        raise ValueError("seeds must name at least one seed")
    return np.stack(rows)


def training_losses(system, test=None) -> dict:
    """The losses of a training system along training: the full training set and held-out data.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`optax_training`.
    test : (X_test, y_test) or None
        Held-out data (default: the system's ``test``).

    Returns
    -------
    dict of str to callable
        ``{"train": ℓ, "test": ℓ_test}``: each maps θ (..., D) to loss(params(θ), X, y) of shape (...), computed
        by JAX in the system's precision (float64 by default). The default losses of :func:`analysis.loss_curves`.

    Examples
    --------
    >>> import numpy as np, jax.numpy as jnp, optax, rds
    >>> from rds.models.optax_training import optax_training, training_losses
    >>> sys = optax_training(lambda p, X, y: jnp.mean((X @ p["w"] - y) ** 2), {"w": np.zeros(2)},
    ...                      optax.sgd(0.1), data=(np.eye(2), np.ones(2)), test=(np.eye(2), np.zeros(2)))
    >>> {k: f(np.zeros((3, sys.nvar))).tolist() for k, f in training_losses(sys).items()}
    {'train': [1.0, 1.0, 1.0], 'test': [0.0, 0.0, 0.0]}
    """
    spec = _spec(system)
    test = spec["test"] if test is None else test
    out = {"train": _full_loss(system, *spec["data"])}
    if test is not None:
        out["test"] = _full_loss(system, *_check_xy(test, "test"))
    return out


def _full_loss(system, X, y):
    jax, _ = _require()
    import jax.numpy as jnp
    loss, layout = _spec(system)["loss"], system.pytree
    x64 = system.precision == "float64"
    dt = np.float64 if x64 else np.float32

    def one(theta):
        Xa = jnp.asarray(X, dtype=theta.dtype) if X.dtype.kind == "f" else jnp.asarray(X)
        ya = jnp.asarray(y, dtype=theta.dtype) if y.dtype.kind == "f" else jnp.asarray(y)
        return loss(layout.unflatten(theta).params, Xa, ya)
    with jax.enable_x64(x64):
        fn = jax.jit(jax.vmap(one))

    def full_loss(theta):
        th = np.asarray(theta, dtype=float)
        flat = th.reshape(-1, layout.size)
        with jax.enable_x64(x64):
            return np.asarray(fn(flat.astype(dt)), dtype=float).reshape(th.shape[:-1])
    return full_loss


def loss_region(system, below: float = np.inf, *, above: float = -np.inf, data=None):
    """The region {θ : above ≤ L(θ) < below} of a training system, for escape times (:func:`analysis.escape_times`).

    A member leaves it when its full-data loss L reaches ``below`` (a blow-up) or drops under ``above`` (training
    got there): the first-exit time is then the time to reach a loss level.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`optax_training`.
    below : float
        Upper loss threshold (default ∞).
    above : float, keyword-only
        Lower loss threshold (default −∞).
    data : (X, y) or None, keyword-only
        The data the loss is computed on (default: the training set).

    Returns
    -------
    rds.regions.Predicate
        Whose predicate ``inside(theta)`` on one member's θ is traced by JAX (NaN is outside).

    Examples
    --------
    >>> import numpy as np, jax.numpy as jnp, optax, rds
    >>> from rds.models.optax_training import optax_training, loss_region
    >>> sys = optax_training(lambda p, X, y: jnp.mean((X @ p["w"] - y) ** 2), {"w": np.zeros(2)},
    ...                      optax.sgd(2.5), data=(np.eye(2), np.ones(2)))
    >>> out = sys.first_exit(np.full(2, 0.9), loss_region(sys, 10.0), 100)   # η too large: it diverges
    >>> int(out["exit_step"][0]) > 0
    True
    """
    from rds._checks import real_array
    from rds.regions import Predicate
    spec = _spec(system)
    hi, lo = float(real_array(below, "below")), float(real_array(above, "above"))
    if np.isnan(hi) or np.isnan(lo) or not lo < hi:
        raise ValueError(f"above and below must satisfy above < below, got above={above!r}, below={below!r}")
    X, y = spec["data"] if data is None else _check_xy(data)
    loss, lay = spec["loss"], system.pytree
    treedef, shapes, offsets = lay.treedef, lay.shapes, lay.offsets  # plain values: the predicate has an identity

    def loss_between(theta):
        import jax.numpy as jnp
        theta = jnp.asarray(theta)
        Xa = jnp.asarray(X, dtype=theta.dtype) if X.dtype.kind == "f" else jnp.asarray(X)
        ya = jnp.asarray(y, dtype=theta.dtype) if y.dtype.kind == "f" else jnp.asarray(y)
        L = loss(_unflatten(theta, treedef, shapes, offsets)[0], Xa, ya)
        return (L >= lo) & (L < hi)
    return Predicate(loss_between, name=f"{lo!r} <= loss < {hi!r}")
