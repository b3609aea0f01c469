"""The random dynamical system θ_{t+1} = φ(θ_t, ξ_t) and its public interface."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import xarray as xr

from rds import _mapcheck, backends, engine, labels
from rds._checks import (
    check_memory,
    check_parameter_count,
    check_tangent_memory,
    integer,
    integer_times,
    real_array,
    tangent_vectors,
    time_window,
)
from rds._version import __version__
from rds.maps import make_map
from rds.noise import FixedDataset, NoiseSource, check_seed, resolve_dt

if TYPE_CHECKING:
    from rds.backends.jax import JaxKernels
    from rds.backends.numpy import NumpyVectorKernels

__all__ = ["RandomDynamicalSystem", "DivergenceWarning", "RunResult"]

RunResult = engine.RunResult

PROGRESS_THRESHOLD = 10**9  # member-steps above which progress=None shows a bar


class DivergenceWarning(RuntimeWarning):
    """Some ensemble members diverged (became non-finite); they were set to NaN and the others went on."""


class _NoNoise(FixedDataset):
    """The noise of a deterministic map: an empty sample every step."""

    def __init__(self):
        super().__init__(np.zeros(1))
        self.data = np.zeros(0)
        self.shape = (0,)

    def describe(self):
        return {"noise": "none"}

    def __repr__(self):
        return "None"


class RandomDynamicalSystem:
    """A random map θ_{t+1} = φ(θ_t, ξ_t) driven by a replayable noise path (ξ_t).

    The map is written once, elementwise, as ``step(state, xi, params) -> new_state``: ``state`` is a tuple of
    the state variables, ``xi`` the noise sample of this step (an array of shape ``noise.shape``), ``params`` the
    parameter tuple. Use NumPy functions (``np.tanh``, ``np.sin``, …) and plain arithmetic: the same function runs
    vectorised under NumPy (each variable an array over the ensemble) and compiled per member under Numba. Return
    a tuple of floats (write ``0.0``, not ``0``).

    Parameters
    ----------
    step : callable
        ``step(state, xi, params) -> tuple`` of ``len(variables)`` new values.
    noise : rds.noise.NoiseSource or None
        The noise source; ``None`` for a deterministic map (``xi`` is then an empty array).
    variables : sequence of str
        Names of the state variables, in the order of the last axis of every state array.
    params : tuple, namedtuple or mapping of float
        Parameters passed to ``step``. A namedtuple or a mapping (``{"a": 1.4, "b": 0.3}``, passed to ``step`` as a
        namedtuple: :func:`rds.labels.param_tuple`) gives them names in Dataset attrs (``param_a``); a plain tuple
        stores them as ``param_p0``, ``param_p1``, ….
    jacobian : callable or None
        Analytic Jacobian ``jacobian(state, xi, params)`` returning rows ``((∂f0/∂x0, ∂f0/∂x1, …), …)`` of the
        whole step map. ``None``: computed automatically, exact to rounding, by complex-step differentiation
        (``J e_j = Im φ(θ + i h e_j) / h``, never finite differences) of a clone of ``step`` in which piecewise
        functions act on real parts, so piecewise-smooth maps are differentiated exactly too (see Notes).
    name : str
        Model name recorded in Dataset attrs.
    dt : float or None
        Time per step (1 for a map; the integration step for a discretised flow). Lyapunov exponents are
        reported per unit time, i.e. divided by ``dt``; times in steps are marked so. None (default): taken from
        the noise (``Wiener(dt=)``) or from a parameter named ``dt``, else 1; where it is stated more than once
        the values must agree (:func:`rds.noise.resolve_dt`).
    common_noise : bool
        True (default): all members of a realisation share ξ_t (the RDS picture). False: each member draws its
        own noise (by absolute member index, independent of chunking).
    attrs : dict or None
        Extra attrs (equation references, …) copied into every Dataset this system produces.
    recipe : tuple (factory, kwargs) or None
        How to rebuild this system: ``factory(**kwargs)`` returns an equal system (models built by a function pass
        it, so that the system pickles by recipe and :meth:`replace` of ``common_noise`` rebuilds it).

    form : {"elementwise", "vector"}
        ``"vector"``: ``step(theta, xi, params) -> theta_new`` advances *one* member, ``theta`` a 1-D array of
        length ``dim``, written with array operations (see :mod:`rds.vector`); it runs on the JAX backend
        (default when installed) and a NumPy reference. Jacobians are exact: JAX differentiates the step
        (``jvp``); the NumPy reference uses ``jacobian(theta, xi, params) -> (D, D)`` if given, else the complex
        step.
    dim : int or None
        Length D of θ for a vector map (default: ``len(variables)``). ``variables`` then defaults to
        ``("theta0", …)``.
    precision : {"float64", "float32"}
        Floating point type of the JAX backend (float64 by default, without changing JAX's global
        configuration; float32: ~1e-7 relative error per step). The NumPy and Numba backends are float64.
    native : bool
        A vector map written with ``jax.numpy`` (traced as written, JAX backend only); usually built by
        :meth:`from_jax`, which also takes pytree states and step-dependent maps (:mod:`rds.native`).

    Notes
    -----
    The automatic Jacobian supports, besides arithmetic and the NumPy/math functions that are analytic
    (``exp``, ``log``, ``sin``, ``tanh``, ``sqrt``, ``power``, ``erf`` …): ``np.abs``/``absolute``/``fabs`` and
    ``abs()``; ``np.floor``, ``ceil``, ``trunc``, ``rint``, ``fix``, ``round``/``around`` and ``round()``;
    ``np.mod``/``remainder``, ``fmod``, ``divmod``, ``modf``, ``floor_divide`` and the operators ``%``, ``//``;
    ``np.where``, ``maximum``, ``minimum``, ``fmax``, ``fmin``, ``clip``, ``sign``, ``copysign``, ``heaviside``,
    ``min()``/``max()`` of two or three values; comparisons (``<``, ``np.greater`` …), ``np.logical_*``,
    ``isnan``/``isinf``/``isfinite``, ``signbit``; ``arctan2``, ``hypot``, ``cbrt``, ``logaddexp(2)``,
    ``deg2rad``/``rad2deg``; the same functions of ``math``; helper functions the map calls. At a kink the
    derivative is that of the branch the value selects (``abs`` at 0: +1). A NumPy function with no complex version
    outside this list (``np.ldexp``, ``np.nextafter``, bitwise functions …) raises a ``TypeError`` naming it: pass
    ``jacobian=`` then. The operators are rewritten from the map's source; a map whose source cannot be read (typed
    at ``python -c``) should use the function forms (``np.mod``, ``np.greater`` …).

    Before the first run the map (and the Jacobian or region predicate a service uses) is called once on a few
    members with NumPy and checked: it must take ``(state, xi, params)`` and return a tuple of ``len(variables)``
    real values, each a number or an array over the members; errors name the function, its file and line. A map
    that only runs member by member (``if x > 0:``, ``math.sin``) runs on the compiled backend when
    ``backend=None`` and is refused with ``backend="numpy"``; one the compiled backend cannot compile (a SciPy
    function, an ``import`` inside it) runs on NumPy when ``backend=None`` and is refused with ``backend="numba"``.

    Examples
    --------
    A noisy logistic map x → r x (1 − x) + ξ:

    >>> import numpy as np, rds
    >>> def step(state, xi, params):
    ...     (x,) = state
    ...     return (params[0] * x * (1.0 - x) + xi[0],)
    >>> sys = rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(sigma2=1e-6), variables=("x",),
    ...                                 params=(3.2,))
    >>> sys.evolve(np.array([[0.3], [0.6]]), 100, seed=1).shape
    (2, 1)

    The tent map, whose Lyapunov exponent is ln 2:

    >>> tent = rds.RandomDynamicalSystem(lambda s, xi, p: (1.0 - np.abs(1.0 - 2.0 * s[0]),), variables=("x",))
    >>> out = tent.propagate_tangent(np.array([[0.1234]]), 40, backend="numpy")
    >>> round(float(out["logr"][0, 0]) / 40, 6)
    0.693147
    """

    def __init__(self, step: Callable, noise: NoiseSource | None = None, variables: Sequence[str] | None = None,
                 params=(), jacobian: Callable | None = None, name: str | None = None, dt: float | None = None,
                 common_noise: bool = True, attrs: dict | None = None, recipe: tuple | None = None,
                 form: str = "elementwise", dim: int | None = None, precision: str = "float64",
                 native: bool = False):
        if not callable(step):
            raise TypeError("step must be callable: step(state, xi, params) -> tuple")
        if noise is None:
            noise = _NoNoise()
        if not isinstance(noise, NoiseSource):
            raise TypeError(f"noise must be an rds.noise.NoiseSource or None, got {type(noise).__name__}")
        if len(noise.shape) < 1:
            raise ValueError("noise.shape must have at least one axis")
        if isinstance(variables, str):
            raise ValueError(f"variables must be a sequence of names such as ({variables!r},), not a string "
                             f"(a string would be split into letters), got {variables!r}")
        if not isinstance(common_noise, (bool, np.bool_)):
            raise TypeError(f"common_noise must be True or False, got {common_noise!r}")
        if form not in ("elementwise", "vector"):
            raise ValueError(f"form must be 'elementwise' or 'vector', got {form!r}")
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
        if form == "vector":
            from rds.vector import default_names
            if dim is not None:
                dim = integer(dim, "dim", 1)
                check_parameter_count(dim, f"dim={dim}")
                if variables is not None and len(tuple(variables)) != dim:
                    raise ValueError(f"variables must have dim = {dim} names, got {len(tuple(variables))}")
            elif variables is None:
                raise ValueError("dim (the length of theta) is required for a vector map without variables")
            variables = default_names(dim) if variables is None else variables  # type: ignore[arg-type]
        elif dim is not None:
            raise ValueError("dim is only used with form='vector'")
        try:
            variables = ("x",) if variables is None else tuple(variables)
        except TypeError:
            raise TypeError(f"variables must be a sequence of names, got {variables!r}") from None
        if not variables or not all(isinstance(v, str) and v for v in variables):
            raise ValueError(f"variables must be a non-empty sequence of names, got {variables!r}")
        if len(set(variables)) != len(variables):
            raise ValueError(f"variables must be distinct, got {variables!r}")
        self.map = make_map(step, form, jacobian, len(variables), native=native)  # the form, decided once
        self.noise = noise
        self.variables = variables
        self.params = self._check_params(params)
        self.name = name or getattr(step, "__name__", "map")
        self.dt = resolve_dt(dt, noise, self.params)  # one dt: given here, by Wiener(dt=) or a param named dt
        self.common_noise = bool(common_noise)
        self.attrs = dict(attrs or {})
        self.precision = precision
        if recipe is not None and not (isinstance(recipe, tuple) and len(recipe) == 2 and callable(recipe[0])
                                       and isinstance(recipe[1], dict)):
            raise TypeError("recipe must be None or a tuple (factory, kwargs) with factory(**kwargs) -> this system")
        self._spec: tuple | None = recipe  # (factory, kwargs) for models: pickles by recipe
        self.pytree = None  # the PytreeLayout of a JAX-native map's state (rds.native), else None

    @classmethod
    def from_jax(cls, step: Callable, state, *, noise: NoiseSource | None = None, params=(),
                 time_dependent: bool = False, t_min: int | None = None, name: str | None = None,
                 common_noise: bool = True, precision: str = "float64", attrs: dict | None = None,
                 recipe: tuple | None = None) -> RandomDynamicalSystem:
        """A system whose step is written in ``jax.numpy`` on a pytree state, run as it is (:mod:`rds.native`).

        Parameters
        ----------
        step : callable
            ``step(state, xi, params) -> state`` (or ``step(state, xi, params, t)`` with ``time_dependent``): one
            member's step on a pytree ``state`` with the structure and leaf shapes of ``state``; ``xi`` is the
            noise sample (shape ``noise.shape``), ``t`` the absolute step (int32 scalar). Traced by JAX as written:
            use ``jax.numpy``, ``jax.grad``, optax …; no Python ``if`` on array values.
        state : pytree of float arrays
            A template of the state (its values are not used): θ is its flattening, D = total size, and the
            variables are the entries' paths (:class:`rds.native.PytreeLayout`, kept as ``system.pytree``: use
            ``system.pytree.flatten(tree)`` for initial states and ``system.pytree.unflatten(theta)`` to read
            results back).
        noise : rds.noise.NoiseSource or None
        params : tuple or namedtuple of float
            Run-time parameters passed to the step (changing them does not retrace).
        time_dependent : bool
            The step depends on t (schedules, bias correction): a random map over the skew product of time and
            noise (see :mod:`rds.native`); the noise is then :class:`rds.native.TimeStamped`.
        t_min : int or None
            With ``time_dependent``: the smallest t the map is defined for (e.g. 0 for an optimizer's counter).
        name, common_noise, precision, attrs, recipe
            As for the constructor.

        Returns
        -------
        RandomDynamicalSystem
            ``form="vector"``, a map with ``native=True`` (JAX backend only), ``pytree`` set.

        Examples
        --------
        >>> import numpy as np, jax.numpy as jnp, rds
        >>> def step(s, xi, p):
        ...     return {"x": s["x"] - p[0] * jnp.sin(s["x"]) + xi[0]}
        >>> sys = rds.RandomDynamicalSystem.from_jax(step, {"x": np.zeros(3)}, noise=rds.noise.Gaussian(0.01),
        ...                                          params=(0.5,))
        >>> sys.variables, sys.map.native, sys.evolve(np.ones(3), 10).shape
        (('x[0]', 'x[1]', 'x[2]'), True, (3,))
        """
        from rds.native import native_system
        return native_system(cls, step, state, noise=noise, params=params, time_dependent=time_dependent,
                             t_min=t_min, name=name, common_noise=common_noise, precision=precision, attrs=attrs,
                             recipe=recipe)

    # ------------------------------------------------------------------ basics
    @staticmethod
    def _check_params(params):
        if isinstance(params, Mapping):
            params = labels.param_tuple(params)
        if not isinstance(params, tuple):
            raise TypeError(f"params must be a tuple, namedtuple or mapping of numbers, got {type(params).__name__}")
        vals = []
        for i, p in enumerate(params):
            try:
                vals.append(float(p))
            except (TypeError, ValueError):
                raise TypeError(f"params[{i}] must be a real number, got {p!r}") from None
        return type(params)(*vals) if hasattr(params, "_fields") else tuple(vals)

    @property
    def step(self) -> Callable:
        """The step function (``self.map.step``)."""
        return self.map.step

    @property
    def jacobian(self) -> Callable | None:
        """The analytic Jacobian, or None (``self.map.jacobian``)."""
        return self.map.jacobian

    @property
    def form(self) -> str:
        """``"elementwise"`` or ``"vector"`` (``self.map.form``)."""
        return self.map.form

    @property
    def layout(self) -> tuple:
        """What kernels depend on besides the map's identity: form, variables, noise layout, precision and the
        parameters' type (their values are run-time arguments)."""
        cls = type(self.params)
        ptype = (cls.__module__, cls.__qualname__, tuple(getattr(cls, "_fields", ())), len(self.params))
        return (self.form, self.nvar, tuple(self.noise.shape), self.independent_noise, bool(self.noise.quenched),
                self.precision, ptype)

    @property
    def independent_noise(self) -> bool:
        """True when members draw independent noise (and the noise is not quenched)."""
        return not self.common_noise and not self.noise.quenched

    @property
    def nvar(self) -> int:
        """Number of state variables."""
        return len(self.variables)

    def __repr__(self):
        return (f"RandomDynamicalSystem({self.name!r}, variables={self.variables}, params={self.params}, "
                f"noise={self.noise!r}, common_noise={self.common_noise})")

    def _repr_html_(self) -> str:
        """A small table for Jupyter: name, variables, parameters, noise, time step, Jacobian, compiled kernels."""
        from html import escape
        names = getattr(self.params, "_fields", None) or [f"p{i}" for i in range(len(self.params))]
        rows = [("variables", ", ".join(self.variables)),
                ("params", ", ".join(f"{k} = {np.array2string(np.asarray(v), threshold=6, precision=4)}"
                                     for k, v in zip(names, self.params)) or "none"),
                ("noise", f"{self.noise!r} ({'common to all members' if self.common_noise else 'independent'})"),
                ("dt", f"{self.dt:g}"),
                ("Jacobian", "analytic" if self.jacobian is not None else "exact automatic (complex step)"),
                ("form", self.form)]
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(v)}"
                       "</td></tr>" for k, v in rows)
        return (f"<div><b>RandomDynamicalSystem</b> <code>{escape(str(self.name))}</code>"
                f"<table>{body}</table></div>")

    def __reduce__(self):
        if self._spec is not None:
            factory, kwargs = self._spec
            return (_rebuild, (factory, kwargs, self.common_noise))
        return super().__reduce__()

    def replace(self, **changes) -> RandomDynamicalSystem:
        """A copy with some constructor arguments changed.

        Parameters
        ----------
        **changes
            Any of the constructor's arguments (``step``, ``noise``, ``variables``, ``params``, ``jacobian``,
            ``name``, ``dt``, ``common_noise``, ``attrs``, ``recipe``).

        Returns
        -------
        RandomDynamicalSystem

        Examples
        --------
        >>> import rds
        >>> fa = rds.models.fukumizu_amari()
        >>> fa.replace(common_noise=False).common_noise, fa.replace(jacobian=None).jacobian is None
        (False, True)
        """
        if self._spec is not None and set(changes) <= {"common_noise"}:
            factory, kwargs = self._spec
            return _rebuild(factory, kwargs, changes.get("common_noise", self.common_noise))
        args = dict(step=self.step, noise=self.noise, variables=self.variables, params=self.params,
                    jacobian=self.jacobian, name=self.name, dt=self.dt, common_noise=self.common_noise,
                    attrs=self.attrs, form=self.form, precision=self.precision,
                    native=getattr(self.map, "native", False))
        args.update(changes)
        new = RandomDynamicalSystem(**args)
        if new.map.step is self.map.step:
            new.pytree = self.pytree
        return new

    def describe(self) -> dict:
        """Attrs describing this system: model, parameters, noise, dt, library version (netCDF-safe values).

        Returns
        -------
        dict

        Examples
        --------
        >>> import rds
        >>> d = rds.models.fukumizu_amari(eta=0.1, sigma2=0.5).describe()
        >>> d["model"], d["param_eta"], d["noise_sigma2"]
        ('fukumizu_amari', 0.1, 0.5)
        """
        attrs = {"model": self.name, "variables": ",".join(self.variables), "dt": self.dt,
                 "common_noise": int(self.common_noise), "rds_version": __version__, "form": self.form}
        if self.form == "vector":
            attrs.update({"dim": self.nvar, "precision": self.precision,
                          "native": int(getattr(self.map, "native", False))})
        names = getattr(self.params, "_fields", None) or [f"p{i}" for i in range(len(self.params))]
        for k, v in zip(names, self.params):
            attrs[f"param_{k}"] = float(v)
        attrs.update(self.noise.describe())
        attrs.update(self.attrs)
        return attrs

    # ------------------------------------------------------------------ input checks
    def _check_state(self, initial, name="initial"):
        X = real_array(initial, name, "a rectangular real array (..., var)")
        if X.ndim == 0 or X.shape[-1] != self.nvar:
            raise ValueError(f"{name} must have last axis of length {self.nvar} (variables {self.variables}), "
                             f"got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} must be finite (found NaN or inf)")
        return X

    def _prepare(self, initial, steps, seed, t0, realization):
        X = self._check_state(initial)
        if X.size == 0:
            raise ValueError(f"initial has no members (shape {X.shape}): give at least one state")
        steps = integer(steps, "steps", 0)
        t0 = integer(t0, "t0")
        time_window(t0, steps)
        check_seed(seed)
        check_seed(realization, "realization")
        return X, X.reshape(-1, self.nvar), steps, t0

    # ------------------------------------------------------------------ running
    def _run(self, X2, t0, steps, seed, realization, backend, executor, chunk_size, progress, **kw):
        ident = self.map.identity()  # everything the map reads, now: kernels are keyed by it
        plan = backends.Plan.of_run(X2.shape[0], steps, kw)
        backend = backends.choose(self, backend, X2, plan, ident=ident)
        kern = backends.kernels_for(self, backend, ident) if executor is None else None
        bar = _progress_bar(progress, X2.shape[0], steps, chunk_size)
        try:
            out = engine.run_chunked(self, X2, t0, steps, seed=seed, realization=realization, backend=backend,
                                     executor=executor, chunk_size=chunk_size, progress=bar, ident=ident,
                                     kernels=kern, **kw)
        except Exception as e:  # a compiled backend's error, in the user's terms (Numba's message chained)
            err = _mapcheck.compile_error(self, e, kw) if backend == "numba" else None
            if err is None:
                raise
            raise err from e
        finally:
            if bar is not None:
                bar.close()
        ndiv = int(out["diverged"].sum())
        if ndiv:
            warnings.warn(f"{ndiv} of {X2.shape[0]} members diverged (non-finite state); they are NaN from then "
                          "on and the others went on", DivergenceWarning, stacklevel=3)
        return out

    # ------------------------------------------------------------------ public running interface
    def evolve(self, initial, steps, *, seed=0, t0=0, realization=0, backend=None, executor=None, chunk_size=None,
               progress=None):
        """Evolve states from absolute time ``t0`` to ``t0 + steps``: θ(t0 + steps) = φ(steps, θ_{t0} ω) θ(t0).

        Parameters
        ----------
        initial : array_like, shape (..., var)
            Initial states; the last axis follows ``self.variables``. Must be finite.
        steps : int
            Number of steps (≥ 0).
        seed, realization : int
            The noise path ω (non-negative). ``realization`` indexes independent paths of one seed.
        t0 : int
            Absolute start time (may be negative): step t uses ξ_t, so the cocycle property
            ``evolve(evolve(u, s, t0=0), t, t0=s) == evolve(u, s + t, t0=0)`` holds exactly.
        backend : {"numpy", "numba", "jax"} or None
            ``None`` picks the one with the smaller estimated time for the total work
            (:func:`rds.backends.choose`): NumPy costs ≈3·10⁻⁵ s per step plus ≈4·10⁻⁸ s per member-step;
            Numba ≈3·10⁻⁹ s per member-step plus compiling the service once per machine (≈6 s; ≈15 s for a
            tangent service), ≈0.7 s to load it from the on-disk kernel cache, nothing once loaded in this process.
            So short runs stay on NumPy and long ones (even of a single member) go to Numba; the choice is
            returned / recorded in the ``backend`` attr. For a vector map ``None`` picks JAX (NumPy if JAX is
            not installed); ``"jax"`` runs either form with JAX (CPU or GPU). The backends agree per step to
            rounding (see the README on how chaotic dynamics amplifies it).
        executor : concurrent.futures.Executor or None
            Run chunks of members on it (a process pool, or ``dask.distributed.Client.get_executor()``).
        chunk_size : int or None
            Members per chunk (default: all in one chunk locally, 8 chunks on an executor).
        progress : bool or None
            Show a tqdm progress bar; ``None`` shows it for runs above 10⁹ member-steps.

        Returns
        -------
        ndarray, same shape as ``initial``
            The states at ``t0 + steps``. Members that diverged are NaN (a :class:`DivergenceWarning` says how
            many).

        Examples
        --------
        >>> import numpy as np, rds
        >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
        >>> u = np.array([0.5, -0.3, 0.2, 0.1])
        >>> a = fa.evolve(fa.evolve(u, 50, t0=0), 30, t0=50)
        >>> bool(np.allclose(a, fa.evolve(u, 80, t0=0), rtol=0, atol=1e-14))
        True
        """
        X = self._check_state(initial)
        return self.run(initial, steps, seed=seed, t0=t0, realization=realization, backend=backend,
                        executor=executor, chunk_size=chunk_size, progress=progress)["state"].reshape(X.shape)

    def run(self, initial, steps, *, seed=0, t0=0, realization=0, backend=None, executor=None, chunk_size=None,
            progress=None) -> RunResult:
        """:meth:`evolve`, returning what ran with the states: the general form of every service's result.

        Parameters
        ----------
        initial, steps, seed, t0, realization, backend, executor, chunk_size, progress
            As in :meth:`evolve`.

        Returns
        -------
        RunResult
            ``state`` (member, var) at ``t0 + steps``, ``diverged`` (member,) and ``backend``, the backend that ran
            (``backend=None`` resolved by :func:`rds.backends.choose`).

        Examples
        --------
        >>> import numpy as np, rds
        >>> out = rds.models.fukumizu_amari().run(np.zeros((3, 4)) + 0.5, 10, backend="numpy")
        >>> out.backend, out["state"].shape, out["diverged"].tolist()
        ('numpy', (3, 4), [False, False, False])
        """
        X, X2, steps, t0 = self._prepare(initial, steps, seed, t0, realization)
        return self._run(X2, t0, steps, seed, realization, backend, executor, chunk_size, progress)

    def trajectory(self, initial, steps, *, seed=0, t0=0, every=1, realization=0, times=None, backend=None,
                   executor=None, chunk_size=None, progress=None) -> xr.Dataset:
        """Evolve and record the states every ``every`` steps (or at given absolute ``times``).

        Parameters
        ----------
        initial : array_like, shape (member, var) or (var,)
            Initial states at time ``t0``.
        steps, seed, t0, realization, backend, executor, chunk_size, progress
            As in :meth:`evolve`.
        every : int
            Record at ``t0, t0 + every, …`` (and at ``t0 + steps``).
        times : array_like of int or None
            Absolute times in ``[t0, t0 + steps]`` to record instead of the regular grid (e.g. log-spaced).

        Returns
        -------
        xarray.Dataset
            ``state`` (time, member, var): the recorded states; ``diverged`` (member): True where the member
            became non-finite. Coordinates ``time`` (absolute step), ``member``, ``var``; attrs describe the model,
            parameters, noise, seed, realisation, backend and version.

        Examples
        --------
        >>> import numpy as np, rds
        >>> osc = rds.models.phase_oscillator(omega=1.0, sigma2=0.1, dt=0.01)
        >>> ds = osc.trajectory(np.array([[0.0], [1.0]]), 1000, every=100)
        >>> ds.state.dims, ds.sizes["time"]
        (('time', 'member', 'var'), 11)
        """
        X, X2, steps, t0 = self._prepare(initial, steps, seed, t0, realization)
        if times is None:
            every = integer(every, "every", 1)
            check_memory(16 * X2.size * (steps // every + 2), f"recording {steps // every + 2} times x "
                         f"{X2.shape[0]} members x {self.nvar} variables", "record fewer times (every, times) "
                         "or fewer members, or use evolve for the final state")
            rec = np.arange(t0, t0 + steps + 1, every, dtype=np.int64)
            if rec[-1] != t0 + steps:
                rec = np.append(rec, t0 + steps)
        else:
            rec = integer_times(times, "times")
            if rec.size == 0 or rec[0] < t0 or rec[-1] > t0 + steps:
                raise ValueError(f"times must be non-empty and within [t0, t0 + steps] = [{t0}, {t0 + steps}]")
            check_memory(16 * X2.size * rec.size, f"recording {rec.size} times x {X2.shape[0]} members x "
                         f"{self.nvar} variables", "record fewer times or fewer members")
        out = self._run(X2, t0, steps, seed, realization, backend, executor, chunk_size, progress,
                        record_times=rec)
        ds = xr.Dataset(
            {"state": (("time", "member", "var"), np.moveaxis(out["records"], 0, 1)),
             "diverged": (("member",), out["diverged"])},
            coords={"time": rec, "member": np.arange(X2.shape[0]), "var": list(self.variables)},
        )
        ds.attrs.update(self.describe())
        ds.attrs.update({"seed": int(seed), "realization": int(realization), "t0": int(t0), "steps": int(steps),
                         "backend": out["backend"], "n_diverged": int(out["diverged"].sum())})
        ds["time"].attrs["long_name"] = "absolute time step t"
        return labels.annotate(ds)  # long_name / units from rds.labels

    def propagate_tangent(self, initial, steps, *, tangent=None, seed=0, t0=0, realization=0, qr_every=1,
                          times=None, backend=None, executor=None, chunk_size=None, progress=None,
                          return_r=False) -> RunResult:
        """Evolve states with tangent vectors, QR re-orthonormalised (the engine service behind Lyapunov spectra).

        Parameters
        ----------
        initial : array_like, shape (member, var)
        steps : int
        tangent : array_like, shape (member, var, k) or (var, k) or None
            Initial tangent vectors (default: the identity, k = var).
        qr_every : int
            Steps between QR factorisations (≥ 1); one is also made at each of ``times`` and at the end.
        times : array_like of int or None
            Absolute times at which to record the accumulated log-norms.
        seed, t0, realization, backend, executor, chunk_size, progress
            As in :meth:`evolve`.
        return_r : bool
            Re-orthonormalise exactly at ``times`` and at the end (then ``qr_every`` must be 1: it is not used) and
            return the whole triangular factors ``r_records`` (member, time, k, k) and the orthonormal vectors
            ``v_records`` (member, time, var, k): J(t_{i-1} → t_i) Q(t_{i-1}) = Q(t_i) R(t_i) (positive diagonal;
            R is the identity at ``t0``). Covariant
            Lyapunov vectors are computed from them (:func:`analysis.covariant_vectors`).

        Returns
        -------
        RunResult
            ``state`` (member, var), ``V`` (member, var, k) orthonormal tangent vectors, ``logr`` (member, k):
            Σ log R_cc over the run, ``logr_records`` (member, time, k) at ``times``, ``diverged`` (member,),
            ``backend`` (the backend that ran). The finite-time exponents are ``logr / (steps · dt)``.

        Examples
        --------
        A linear map x → 2x, y → y/2 has exponents log 2 and −log 2:

        >>> import numpy as np, rds
        >>> lin = rds.RandomDynamicalSystem(lambda s, xi, p: (2.0 * s[0], 0.5 * s[1]), variables=("x", "y"))
        >>> out = lin.propagate_tangent(np.ones((1, 2)), 10, backend="numpy")
        >>> (out["logr"] / 10).round(6).tolist()
        [[0.693147, -0.693147]]
        """
        X, X2, steps, t0 = self._prepare(initial, steps, seed, t0, realization)
        qr_every = integer(qr_every, "qr_every", 1)
        if not isinstance(return_r, (bool, np.bool_)):
            raise TypeError(f"return_r must be True or False, got {return_r!r}")
        if return_r and (qr_every != 1 or times is None):
            raise ValueError("return_r=True re-orthonormalises at `times`: give times, and leave qr_every at 1")
        M = X2.shape[0]
        rec = None if times is None else integer_times(times, "times")
        if tangent is None:
            check_tangent_memory(1, M, self.nvar, self.nvar, 0 if rec is None else rec.size, "propagate_tangent: ",
                                 "k (tangent=None: all)")
            V = np.broadcast_to(np.eye(self.nvar), (M, self.nvar, self.nvar))
        else:
            V = tangent_vectors(tangent, M, self.nvar)
        if rec is not None and rec.size and (rec[0] < t0 or rec[-1] > t0 + steps):
            raise ValueError(f"times must lie within [t0, t0 + steps] = [{t0}, {t0 + steps}]")
        extra = {"return_r": True} if return_r else {}
        return self._run(X2, t0, steps, seed, realization, backend, executor, chunk_size, progress,
                         tangent=np.ascontiguousarray(V), qr_every=qr_every, record_times=rec, **extra)

    def first_exit(self, initial, region, max_steps, *, seed=0, t0=0, realization=0, backend=None, executor=None,
                   chunk_size=None, progress=None) -> RunResult:
        """Evolve each member until it first leaves ``region`` (the engine service behind escape times).

        Parameters
        ----------
        initial : array_like, shape (member, var)
        region : rds.regions.Region or callable
            A region (e.g. :class:`rds.regions.Box`) or an elementwise predicate ``inside(state) -> bool``.
        max_steps : int
            Cap on the number of steps (≥ 1); members still inside then are right-censored.
        seed, t0, realization, backend, executor, chunk_size, progress
            As in :meth:`evolve`.

        Returns
        -------
        RunResult
            ``exit_step`` (member,) int: the number of steps n ≥ 1 after which the member was first outside
            (0 if it started outside, −1 if it never left within ``max_steps``); ``state`` (member, var): the
            state at exit (or at the cap); ``diverged`` (member,); ``backend``.

        Examples
        --------
        >>> import numpy as np, rds
        >>> red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
        >>> box = rds.regions.Box([-2, -2], [2, 2], variables=("w", "v"))
        >>> out = red.first_exit(np.array([[0.5, 0.5], [1.0, 1.5]]), box, 1000, backend="numpy")
        >>> out["exit_step"].shape
        (2,)
        """
        time_window(integer(t0, "t0"), integer(max_steps, "max_steps", 1), "t0", "max_steps")
        X, X2, steps, t0 = self._prepare(initial, max_steps, seed, t0, realization)
        if steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        inside = self.predicate(region)
        return self._run(X2, t0, steps, seed, realization, backend, executor, chunk_size, progress,
                         region=inside)

    def predicate(self, region):
        """The predicate of ``region`` as the engine calls it: on the tuple of state columns, bool over members.

        Parameters
        ----------
        region : rds.regions.Region or callable
            Elementwise predicate on the state tuple; for a vector map, a predicate on one member's θ (1-D).

        Returns
        -------
        callable
            ``inside(state_tuple) -> bool array``.

        Examples
        --------
        >>> import numpy as np, rds
        >>> red = rds.models.fukumizu_amari_reduced()
        >>> box = rds.regions.Box([-2, -2], [2, 2], variables=("w", "v"))
        >>> red.predicate(box)((np.array([0.0, 3.0]), np.array([0.0, 0.0]))).tolist()
        [True, False]
        """
        from rds.regions import as_predicate
        if self.form == "vector":
            from rds.vector import member_predicate
            return member_predicate(region, self.variables)
        return as_predicate(region, self.variables)

    # ------------------------------------------------------------------ single steps (NumPy)
    def _noise_sample(self, xi, M):
        if xi is None:
            if not self.noise.quenched:
                raise ValueError("xi is required for a system with noise")
            return self.noise.block(0, 0, 0, 1)[0]
        xi = np.asarray(xi, dtype=float)
        if xi.shape != self.noise.shape:
            raise ValueError(f"xi must have shape {self.noise.shape} (one step's noise sample), got {xi.shape}")
        return xi

    def apply(self, state, xi=None) -> np.ndarray:
        """One step θ' = φ(θ, ξ) for given states and one noise sample (NumPy).

        Parameters
        ----------
        state : array_like, shape (..., var)
        xi : array_like, shape ``noise.shape`` or None
            The noise sample of this step (None for deterministic or quenched systems).

        Returns
        -------
        ndarray, shape (..., var)

        Examples
        --------
        >>> import numpy as np, rds
        >>> fa = rds.models.fukumizu_amari(eta=0.1)
        >>> fa.apply(rds.models.OPTIMA[0], np.array([0.7])).tolist()   # θ* is fixed for every input
        [1.0, 4.0, 2.0, -1.0]
        """
        X = self._check_state(state, "state")
        xi = self._noise_sample(xi, X.size // self.nvar)
        self.map.identity()  # refuses a map that draws its own random numbers
        if getattr(self.map, "native", False):  # a JAX-native map: JAX only
            flat = X.reshape(-1, self.nvar)
            jk = cast("JaxKernels", backends.kernels_for(self, "jax"))
            return jk.apply(flat, xi, self.params).reshape(X.shape)
        if self.form == "vector":  # the step as written, member by member
            kern = cast("NumpyVectorKernels", backends.kernels_for(self, "numpy"))
            flat = X.reshape(-1, self.nvar)
            out = [kern.step_one(th.copy(), xi, self.params).astype(float) for th in flat]
            return (np.stack(out) if out else np.empty((0, self.nvar))).reshape(X.shape)
        cols = tuple(np.moveaxis(X, -1, 0))
        out = self.step(cols, xi, self.params)
        _mapcheck.check_step_output(self, out, X.shape[:-1])
        return np.stack(np.broadcast_arrays(*[np.asarray(o, dtype=float) for o in out]), axis=-1)

    def jacobian_matrix(self, state, xi=None, *, backend=None) -> np.ndarray:
        """Jacobian ∂φ(θ, ξ)/∂θ of the whole step map (analytic if given, else exact: complex step or autodiff).

        Parameters
        ----------
        state : array_like, shape (..., var)
        xi : array_like, shape ``noise.shape`` or None
        backend : {"numpy", "jax"} or None
            Elementwise maps: NumPy (the analytic Jacobian, or the complex step). Vector maps: ``None`` takes JAX
            (``jax.jacfwd``) when installed, else NumPy (analytic, or complex step column by column).

        Returns
        -------
        ndarray, shape (..., var, var)
            ``J[..., i, j] = ∂θ'_i / ∂θ_j``.

        Examples
        --------
        >>> import numpy as np, rds
        >>> fa = rds.models.fukumizu_amari(eta=0.1)
        >>> fa.jacobian_matrix(np.zeros((3, 4)) + 0.5, np.array([0.7])).shape
        (3, 4, 4)
        """
        X = self._check_state(state, "state")
        xi = self._noise_sample(xi, X.size // self.nvar)
        ident = self.map.identity()
        if backend is None:
            backend = "jax" if self.form == "vector" and backends.available("jax") else "numpy"
        elif backend == "numpy" and getattr(self.map, "native", False):
            raise ValueError("backend='numpy': a JAX-native map (written with jax.numpy) runs on 'jax' only")
        elif backend not in ("numpy", "jax") or (backend == "jax" and self.form != "vector"):
            raise ValueError(f"backend must be 'numpy'{' or jax' if self.form == 'vector' else ''} or None for "
                             f"jacobian_matrix of {_a(self.form)} map, got {backend!r}")
        flat = X.reshape(-1, self.nvar)
        check_memory(8 * flat.shape[0] * self.nvar ** 2 * (3 if backend == "jax" else 2),
                     f"jacobian_matrix of {flat.shape[0]} states x D = {self.nvar} variables (D x D each)",
                     "ask for the Jacobian at fewer states, or for products J v (propagate_tangent, k vectors)")
        if self.form == "vector":  # checked on NumPy first (JAX would clamp an out-of-range index silently)
            self.map.check(self, flat, backends.Plan("tangent", flat.shape[0], 1), ident)
        if self.form == "elementwise" and self.jacobian is not None:  # the analytic Jacobian, checked
            J = self.jacobian(tuple(np.ascontiguousarray(flat.T)), xi, self.params)
            _mapcheck.check_jacobian_output(self, J, flat.shape[0])
        J = backends.kernels_for(self, backend, ident).jacobian(flat, xi, self.params)
        return J.reshape(X.shape + (self.nvar,))

    def noise_path(self, t0, t1, seed=0, realization=0, members=None) -> np.ndarray:
        """The noise samples ξ_t for t0 ≤ t < t1, exactly those the runs use.

        Parameters
        ----------
        t0, t1 : int
            Absolute times (may be negative), ``t0 <= t1``.
        seed, realization : int
        members : (int, int) or None
            Member range, used only with independent noise.

        Returns
        -------
        ndarray
            ``(t1 - t0,) + noise.shape`` (common noise), with a trailing member axis for independent noise.

        Examples
        --------
        >>> import rds
        >>> rds.models.fukumizu_amari(sigma2=1.0, batch=3).noise_path(-2, 2).shape
        (4, 3)
        """
        return self.noise.block(seed, realization, t0, t1,
                                members if (members is not None and self.independent_noise) else None)


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _rebuild(factory, kwargs, common_noise):
    system = factory(**kwargs)
    if system.common_noise != common_noise:
        system.common_noise = common_noise
    return system


def _progress_bar(progress, members, steps, chunk_size):
    if progress is None:
        progress = members * steps >= PROGRESS_THRESHOLD
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")
    if not progress:
        return None
    nchunks = 1 if not chunk_size else max(1, -(-members // chunk_size))
    return safe_tqdm(total=steps * nchunks, unit="step", desc="rds")


class _SafeBar:
    """A tqdm bar that turns itself off when its stream fails (e.g. a closed stderr) instead of raising."""

    def __init__(self, bar):
        self._bar = bar

    def update(self, n=1):
        if self._bar is not None:
            try:
                self._bar.update(n)
            except (OSError, ValueError):
                self._bar = None

    def close(self):
        if self._bar is not None:
            bar, self._bar = self._bar, None
            try:
                bar.close()
            except (OSError, ValueError):
                pass


def safe_tqdm(**kwargs):
    """A progress bar (tqdm) that falls back to no bar when it cannot write (closed or broken stderr)."""
    from tqdm.auto import tqdm
    try:
        return _SafeBar(tqdm(**kwargs))
    except (OSError, ValueError, AttributeError):
        return _SafeBar(None)
