"""JAX-native maps: a step written in ``jax.numpy`` on a pytree state, taken as it is, possibly depending on t.

A training step is usually written for a *pytree* (nested dicts, lists and named tuples of arrays: a Flax or
Equinox model's parameters, an optax optimizer state) with ``jax.numpy``, ``jax.grad`` and optax. Such a step is
run by rds as it is — never rewritten (:func:`rds.backends.jax.jaxify` is for maps written with NumPy) — as a
:class:`~rds.maps.VectorMap` with ``native=True``:

* the pytree state is flattened once into the vector θ of length D (leaves in JAX's flattening order, each leaf
  row-major, as :func:`jax.flatten_util.ravel_pytree` does, but keeping the run's float dtype); the ``var``
  coordinate of every Dataset names each entry by its path, e.g. ``params/Dense_0/kernel[3,7]`` or
  ``opt_state/0/mu/W[1,2]`` (:class:`PytreeLayout`), so every analysis works unchanged;
* the step runs only on the JAX backend (jit, vmap over members, a loop over steps, ``jvp`` tangents: the top-k
  Lyapunov exponents with k·D numbers, never the D × D Jacobian);
* it may depend on the absolute step t (learning-rate schedules, Adam's bias correction):
  ``step(state, xi, params, t)`` with ``t`` an int32 scalar.

Step-dependent maps and the cocycle
-----------------------------------
A map φ_t(θ, ξ) that depends on t is a random dynamical system over the *skew product* of time and noise: the
driving system is Θ_s(t, ω) = (t + s, θ_s ω) on Z × Ω, and the cocycle property reads

    φ(n + m, (t, ω)) = φ(n, Θ_m(t, ω)) ∘ φ(m, (t, ω)),

i.e. a run from t0 for m steps, continued from t0 + m for n steps, equals the run of n + m steps from t0 (exactly:
the noise and the time are regenerated from (seed, realisation, t) for any window). rds realises the skew product
literally: the noise sample the kernels see is ξ̃_t = (t, ξ_t) (:class:`TimeStamped`), so replay, chunking,
executors, pullbacks and tangents work as for any random map. What changes is the meaning of the
long-time limits: a pullback attractor at time t now depends on t (for a schedule that decays, the attractor of
the late-time map), and the Lyapunov exponents are those of the non-autonomous product of Jacobians; for maps
that become autonomous as t → ∞ (Adam's bias correction 1 − β^t → 1, a schedule that reaches its final value)
they converge to those of the limiting map.

Examples
--------
A linear map on a pytree whose contraction depends on t (a "schedule"):

>>> import numpy as np, jax.numpy as jnp, rds
>>> def step(state, xi, params, t):
...     rate = 0.5 + 0.25 * (t >= 10)
...     return {"a": rate * state["a"], "b": [state["b"][0] + xi[0]]}
>>> sys = rds.RandomDynamicalSystem.from_jax(step, {"a": np.ones(2), "b": [np.zeros(())]},
...                                          noise=rds.noise.Gaussian(1.0), time_dependent=True)
>>> sys.variables
('a[0]', 'a[1]', 'b/0')
>>> theta = sys.evolve(sys.pytree.flatten({"a": np.ones(2), "b": [np.zeros(())]}), 12)
>>> bool(np.allclose(theta[:2], 0.5**10 * 0.75**2, rtol=1e-14))
True
"""

from __future__ import annotations

import numpy as np

from rds._checks import INT64_MAX, integer
from rds.noise import NoiseSource

__all__ = ["PytreeLayout", "TimeStamped", "path_name", "native_system"]

#: Largest absolute step a step-dependent map can be given: int32 in float64, 2**24 in float32 (exact floats).
T_MAX = {"float64": 2**31 - 1, "float32": 2**24}


def _jax():
    try:
        import jax
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("JAX-native maps need JAX: pip install 'rds[jax]' (or pip install jax)") from None
    return jax


def _dtype_of(leaf) -> np.dtype:
    """The dtype of a pytree leaf (a NumPy or JAX array, or a Python number)."""
    dt = getattr(leaf, "dtype", None)
    return np.dtype(dt) if dt is not None else np.asarray(leaf).dtype


def path_name(path) -> str:
    """The name of a pytree leaf from its key path: keys joined by ``/``.

    Parameters
    ----------
    path : tuple of jax.tree_util key entries
        As given by :func:`jax.tree_util.tree_flatten_with_path`.

    Returns
    -------
    str

    Examples
    --------
    >>> import jax
    >>> [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path({"params": {"W": 1.0}, "m": [2.0]})[0]]
    ['m/0', 'params/W']
    """
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:  # pragma: no cover - a future key type
            parts.append(str(k))
    return "/".join(parts)


class PytreeLayout:
    """How a pytree state is laid out in the vector θ: leaf order, shapes, offsets and entry names.

    Parameters
    ----------
    template : pytree of arrays
        A state (any nested dicts, lists, tuples, named tuples, dataclasses registered with JAX …) whose leaves
        are floating arrays or numbers. Integer or boolean leaves are refused (a step counter is the time t:
        declare the map ``time_dependent``).

    Attributes
    ----------
    treedef : jax.tree_util.PyTreeDef
    shapes : tuple of tuple of int
        Shape of each leaf.
    offsets : tuple of int
        Start of each leaf in θ (length ``len(shapes) + 1``; the last is D).
    names : tuple of str
        One name per entry of θ: the leaf's path (:func:`path_name`) and, for arrays, the index
        (``"params/W[2,0]"``).
    size : int
        D.

    Examples
    --------
    >>> import numpy as np
    >>> lay = PytreeLayout({"W": np.zeros((2, 2)), "v": np.zeros(2)})
    >>> lay.names
    ('W[0,0]', 'W[0,1]', 'W[1,0]', 'W[1,1]', 'v[0]', 'v[1]')
    >>> theta = lay.flatten({"W": np.eye(2), "v": np.array([5.0, 6.0])})
    >>> theta.tolist(), lay.unflatten(theta)["v"].tolist()
    ([1.0, 0.0, 0.0, 1.0, 5.0, 6.0], [5.0, 6.0])
    """

    def __init__(self, template):
        jax = _jax()
        pairs, self.treedef = jax.tree_util.tree_flatten_with_path(template)
        if not pairs:
            raise ValueError("state must be a pytree with at least one array leaf, got an empty pytree")
        shapes, offsets, names = [], [0], []
        for path, leaf in pairs:
            name = path_name(path)
            dtype = _dtype_of(leaf)
            if not np.issubdtype(dtype, np.floating):
                raise ValueError(f"state: the leaf {name or '<root>'!r} has dtype {dtype}; the state of a JAX-native "
                                 "map holds floating arrays only (a step counter is the time t: declare the map "
                                 "time_dependent=True and compute it from t)")
            shape = tuple(int(s) for s in np.shape(leaf))
            shapes.append(shape)
            offsets.append(offsets[-1] + int(np.prod(shape, dtype=np.int64)))
            if shape:
                names.extend(f"{name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape))
            else:
                names.append(name or "theta")
        self.shapes, self.offsets, self.names = tuple(shapes), tuple(offsets), tuple(names)
        self.size = offsets[-1]

    def __repr__(self):
        return f"PytreeLayout(D={self.size}, leaves={len(self.shapes)})"

    def flatten(self, tree) -> np.ndarray:
        """θ (D,) float64 of a pytree with this layout (checked: structure and shapes).

        Parameters
        ----------
        tree : pytree
            Same structure and leaf shapes as the template.

        Returns
        -------
        ndarray, shape (D,)
        """
        jax = _jax()
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        if treedef != self.treedef:
            raise ValueError(f"tree must have the structure of the state template {self.treedef}, got {treedef}")
        for leaf, shape, name in zip(leaves, self.shapes, self._leaf_names()):
            if tuple(np.shape(leaf)) != shape:
                raise ValueError(f"tree: the leaf {name!r} must have shape {shape}, got {np.shape(leaf)}")
        if not leaves:
            return np.zeros(0)
        return np.concatenate([np.asarray(leaf, dtype=float).ravel() for leaf in leaves])

    def unflatten(self, theta):
        """The pytree of θ (..., D) (NumPy or JAX arrays, traced or not; the dtype of θ is kept).

        Returns
        -------
        pytree
            Leaves of shape ``theta.shape[:-1] + leaf shape``.
        """
        return _unflatten(theta, self.treedef, self.shapes, self.offsets)

    def _leaf_names(self):
        return [self.names[o].split("[")[0] for o in self.offsets[:-1]]


def _unflatten(theta, treedef, shapes, offsets):
    import jax
    lead = tuple(theta.shape[:-1])
    leaves = [theta[..., a:b].reshape(lead + s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _flatten_traced(tree, treedef, shapes, dtype, where):
    """θ' of the step's output pytree (traced), checked against the template's structure and shapes."""
    import jax
    import jax.numpy as jnp
    leaves, td = jax.tree_util.tree_flatten(tree)
    if td != treedef:
        raise ValueError(f"{where} must return a pytree with the structure of the state {treedef}, got {td}")
    for i, (leaf, shape) in enumerate(zip(leaves, shapes)):
        if tuple(jnp.shape(leaf)) != shape:
            raise ValueError(f"{where} must return leaves of the state's shapes: leaf {i} has shape "
                             f"{tuple(jnp.shape(leaf))}, expected {shape}")
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)).astype(dtype) for leaf in leaves])


def _make_step(user_step, treedef, shapes, offsets, time_dependent, inner_shape):
    """The vector step θ ↦ θ' of a pytree step (a closure over plain values only: it has an identity)."""
    def native_step(theta, xi, params):
        state = _unflatten(theta, treedef, shapes, offsets)
        if time_dependent:
            t = xi[0].astype("int32")
            new = user_step(state, xi[1:].reshape(inner_shape), params, t)
        else:
            new = user_step(state, xi, params)
        return _flatten_traced(new, treedef, shapes, theta.dtype, "step")
    native_step.__qualname__ = getattr(user_step, "__qualname__", "step")
    native_step.__name__ = getattr(user_step, "__name__", "step")
    return native_step


class TimeStamped(NoiseSource):
    """The noise of a step-dependent map: ξ̃_t = (t, ξ_t), the skew product of time and the noise ``inner``.

    The sample is flat, shape ``(1 + P,)`` with P the size of one sample of ``inner``: entry 0 is the absolute step
    t (an exact float), the rest ξ_t raveled. A step-dependent native map receives t and ξ_t separately
    (:mod:`rds.native`). Never quenched: even full-batch GD with a schedule changes with t.

    Parameters
    ----------
    inner : rds.noise.NoiseSource
        The noise proper (e.g. :class:`rds.noise.Minibatches`).
    t_min : int or None
        Smallest step the map is defined for (e.g. 0: optax's step counter, Adam's bias correction 1 − β^t);
        earlier windows raise ``ValueError``.
    t_max : int
        Largest step representable exactly (:data:`T_MAX`).

    Examples
    --------
    >>> from rds.noise import Minibatches
    >>> ts = TimeStamped(Minibatches(n_data=10, batch=3), t_min=0)
    >>> ts.block(0, 0, 5, 7)[:, 0].tolist(), ts.shape
    ([5.0, 6.0], (4,))
    """

    quenched = False

    def __init__(self, inner: NoiseSource, t_min: int | None = None, t_max: int = INT64_MAX):
        if not isinstance(inner, NoiseSource):
            raise TypeError(f"inner must be an rds.noise.NoiseSource, got {type(inner).__name__}")
        self.inner = inner
        self.inner_shape = tuple(inner.shape)
        self.t_min = None if t_min is None else integer(t_min, "t_min")
        self.t_max = integer(t_max, "t_max")
        self.shape = (1 + int(np.prod(self.inner_shape, dtype=np.int64)),)

    def block(self, seed, realization, t0, t1, members=None):
        if self.t_min is not None and t0 < self.t_min:
            raise ValueError(f"t0: this map depends on the absolute step t and is defined for t >= {self.t_min} "
                             f"(e.g. an optimizer's step counter), got a window starting at t = {t0}")
        if t1 - 1 > self.t_max:
            raise ValueError(f"t1: steps beyond t = {self.t_max} cannot be given to a step-dependent map exactly "
                             f"in this precision, got t1 = {t1}")
        z = np.asarray(self.inner.block(seed, realization, t0, t1, members), dtype=float)
        n = t1 - t0
        t = np.arange(t0, t1, dtype=np.int64).astype(float)
        if members is None:
            return np.concatenate([t[:, None], z.reshape(n, -1)], axis=1)
        m = z.shape[-1]
        z = z.reshape(n, -1, m)
        return np.concatenate([np.broadcast_to(t[:, None, None], (n, 1, m)), z], axis=1)

    def describe(self):
        d = dict(self.inner.describe())
        d.update({"noise_time_stamped": 1, "noise_t_min": "none" if self.t_min is None else self.t_min})
        return d

    def __repr__(self):
        return f"TimeStamped({self.inner!r}, t_min={self.t_min})"


def native_system(cls, step, state, *, noise=None, params=(), time_dependent=False, t_min=None, name=None,
                  common_noise=True, precision="float64", attrs=None, recipe=None):
    """Build the system of a JAX-native pytree step (the body of :meth:`rds.RandomDynamicalSystem.from_jax`)."""
    jax = _jax()
    import jax.numpy as jnp
    if not callable(step):
        raise TypeError("step must be callable: step(state, xi, params[, t]) -> state")
    if not isinstance(time_dependent, (bool, np.bool_)):
        raise TypeError(f"time_dependent must be True or False, got {time_dependent!r}")
    if t_min is not None and not time_dependent:
        raise ValueError("t_min is only used with time_dependent=True")
    if precision not in T_MAX:
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    layout = PytreeLayout(state)
    from rds.system import _NoNoise
    inner = _NoNoise() if noise is None else noise
    if not isinstance(inner, NoiseSource):
        raise TypeError(f"noise must be an rds.noise.NoiseSource or None, got {type(noise).__name__}")
    fn = _make_step(step, layout.treedef, layout.shapes, layout.offsets, bool(time_dependent), tuple(inner.shape))
    used_noise = TimeStamped(inner, t_min, T_MAX[precision]) if time_dependent else inner
    # check the step once, abstractly (no computation): signature, output structure and shapes
    ptuple = cls._check_params(params)
    spec = jax.ShapeDtypeStruct((layout.size,), jnp.float32)
    xspec = jax.ShapeDtypeStruct(tuple(used_noise.shape), jnp.float32)
    try:
        jax.eval_shape(lambda th, xi: fn(th, xi, ptuple), spec, xspec)
    except ValueError as e:
        if str(e).startswith("step must"):
            raise ValueError(f"step {getattr(step, '__qualname__', step)!r}: {e}") from None
        raise
    system = cls(fn, noise=used_noise, variables=layout.names, params=params, name=name or fn.__name__,
                 common_noise=common_noise, form="vector", precision=precision, native=True, attrs=attrs,
                 recipe=recipe)
    system.pytree = layout
    system.attrs.setdefault("time_dependent", int(bool(time_dependent)))
    return system
