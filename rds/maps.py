"""Map types: what a map is, decided once — its form, its checks, its derivatives and its identity.

A :class:`~rds.RandomDynamicalSystem` holds one map object:

:class:`ElementwiseMap`
    ``step(state_tuple, xi, params) -> tuple`` over a few scalar variables, written elementwise with NumPy
    functions; it runs vectorised under NumPy, compiled per member under Numba and traced under JAX. Its Jacobian
    is the analytic ``jacobian(state, xi, params)`` if given, else exact by complex step
    (:mod:`rds._complexstep`).
:class:`VectorMap`
    ``step(theta, xi, params) -> theta_new`` for one member's 1-D vector θ (:mod:`rds.vector`); it runs under JAX
    (``jvp`` tangents) and a NumPy reference (analytic ``jacobian`` or complex step).

Both own the map's **identity** (:mod:`rds._identity`): a digest of everything the step and its Jacobian read,
computed at every service call, on which every backend keys its kernels — so a result never comes from a map
other than the one the user has now. Maps must be pure (randomness only from ξ): a map that reads a random number
generator is refused (:class:`rds._identity.ImpureMapError`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

from rds import _mapcheck
from rds._identity import Unidentifiable, identity, warn_unidentified

__all__ = ["Map", "ElementwiseMap", "VectorMap", "make_map"]


class Checked(NamedTuple):
    """The outcome of :meth:`Map.check`: whether the map runs only member by member, and why."""

    scalar_only: bool
    vector_error: BaseException | None
    system: object = None

    def numpy_refusal(self) -> TypeError:
        return _mapcheck.numpy_refusal(self.system, self.vector_error)


class Map:
    """A map of a random dynamical system: the step, its optional analytic Jacobian, and its form.

    Parameters
    ----------
    step : callable
        The step function (see the subclasses for its signature).
    jacobian : callable or None
        Analytic Jacobian of the step, or None (automatic, exact).
    nvar : int
        Number of state variables (the length of θ for a vector map).

    Examples
    --------
    >>> import rds
    >>> fa = rds.models.fukumizu_amari()
    >>> fa.map.form, len(fa.map.identity())
    ('elementwise', 64)
    """

    form = ""

    def __init__(self, step: Callable, jacobian: Callable | None = None, nvar: int = 1):
        if not callable(step):
            raise TypeError("step must be callable: step(state, xi, params) -> tuple")
        if jacobian is not None and not callable(jacobian):
            raise TypeError("jacobian must be callable or None")
        self.step = step
        self.jacobian = jacobian
        self.nvar = int(nvar)

    def __repr__(self):
        return f"{type(self).__name__}({getattr(self.step, '__qualname__', self.step)!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.step is self.step and other.jacobian is self.jacobian

    def __hash__(self):
        return hash((type(self), id(self.step), id(self.jacobian)))

    def identity(self, strict: bool = False) -> str | None:
        """The digest of everything the step and its Jacobian read now (:func:`rds._identity.identity`).

        Parameters
        ----------
        strict : bool
            True: raise :class:`~rds._identity.Unidentifiable` when it cannot be established; False: warn once
            (:class:`~rds._identity.UnidentifiedMapWarning`) and return None.

        Returns
        -------
        str or None

        Raises
        ------
        rds._identity.ImpureMapError
            The map (or its Jacobian) reads a random number generator.
        """
        role = _mapcheck.describe(self.step)
        try:
            return identity(self.form, self.step, self.jacobian, role=role)
        except Unidentifiable as e:
            if strict:
                raise
            warn_unidentified(self.step, f"{role} cannot be identified ({e})")
            return None

    # the subclasses' services
    def jacobian_function(self) -> Callable | None:
        """The function computing the Jacobian (made anew at each call: callers cache it per identity); None where
        the backends differentiate the step themselves."""
        raise NotImplementedError

    def check(self, system, X2, plan, ident=False) -> Checked:
        """Check the map (and the Jacobian / region predicate ``plan`` uses) before a run; see the subclasses."""
        raise NotImplementedError

    def compilable(self, system, plan, strict: bool = False, ident=False) -> bool:
        """Whether the compiled (Numba) backend can compile what ``plan`` runs; ``strict``: raise if not."""
        return False


class ElementwiseMap(Map):
    """An elementwise map ``step(state_tuple, xi, params) -> tuple`` (see :class:`rds.RandomDynamicalSystem`)."""

    form = "elementwise"

    def jacobian_function(self) -> Callable:
        """The analytic Jacobian if given, else the exact complex-step Jacobian of a clone of the step as it is now.

        Examples
        --------
        >>> import numpy as np, rds
        >>> tent = rds.RandomDynamicalSystem(lambda s, xi, p: (1.0 - np.abs(1.0 - 2.0 * s[0]),), variables=("x",))
        >>> [float(tent.map.jacobian_function()((x,), None, ())[0][0]) for x in (0.2, 0.7)]
        [2.0, -2.0]
        """
        if self.jacobian is not None:
            return self.jacobian
        from rds._complexstep import jacobian_function
        return jacobian_function(self.step, self.nvar)

    def check(self, system, X2, plan, ident=False) -> Checked:
        """Call the map once on a few members with NumPy (all at once, else member by member) and check its output;
        likewise the Jacobian for the tangent service and the region predicate for the exit service. Errors name
        the function, its file and line. Remembered per identity.

        Returns
        -------
        Checked
            ``scalar_only``: the map runs only member by member (it branches on the state, calls ``math.sin``).
        """
        if ident is False:
            ident = self.identity()
        if X2.shape[0] == 0:
            return Checked(False, None, system)
        scalar_only, vec_error = _mapcheck.check_step(system, X2, ident)
        if plan.service == "tangent":
            _mapcheck.check_jacobian(system, X2, scalar_only, ident)
        if plan.service == "exit":
            from rds.backends import region_key
            _mapcheck.check_region(system, plan.inside, X2, region_key(plan.inside))
        return Checked(scalar_only, vec_error, system)

    def compilable(self, system, plan, strict: bool = False, ident=False) -> bool:
        """Whether Numba can compile the map (and the Jacobian / predicate ``plan`` uses): no imports inside, no
        SciPy ufuncs, no unknown objects. ``strict``: raise the error in the user's terms instead of False."""
        if ident is False:
            ident = self.identity()
        try:
            _mapcheck.check_compilable(self.step, "map", ident=ident)
            if self.jacobian is not None and plan.service == "tangent":
                _mapcheck.check_compilable(self.jacobian, "Jacobian", ident=ident)
            if plan.service == "exit":
                _mapcheck.check_compilable(plan.inside, "region predicate")
        except (TypeError, NameError):
            if strict:
                raise
            return False
        return True


class VectorMap(Map):
    """A vector map ``step(theta, xi, params) -> theta_new`` on one member's 1-D θ (see :mod:`rds.vector`).

    ``native=True``: the step is written with ``jax.numpy`` (a JAX-native map, :mod:`rds.native`): it is traced as
    it is (never rewritten from NumPy) and runs on the JAX backend only.
    """

    form = "vector"

    def __init__(self, step: Callable, jacobian: Callable | None = None, nvar: int = 1, native: bool = False):
        super().__init__(step, jacobian, nvar)
        if native and jacobian is not None:
            raise ValueError("jacobian: a JAX-native map is differentiated by JAX (jvp); give no jacobian")
        self.native = bool(native)

    def jacobian_function(self) -> Callable | None:
        """The analytic Jacobian ``jacobian(theta, xi, params) -> (D, D)`` if given; None: the backends
        differentiate the step (JAX: ``jvp``/``jacfwd``; NumPy: complex step)."""
        return self.jacobian

    def check(self, system, X2, plan, ident=False) -> Checked:
        """Call the map once with NumPy on one member before any backend runs or traces it, and check it: a real
        array of shape (D,) comes back, indices of θ and ξ are within bounds (NumPy raises where JAX would clamp),
        two calls agree (a map that draws its own random numbers is refused); likewise the analytic Jacobian
        ((D, D)) for the tangent service and the region predicate (a bool) for the exit service. Errors name the
        function, its file and line. Remembered per identity.

        Examples
        --------
        >>> import numpy as np, rds
        >>> from rds.backends import Plan
        >>> bad = rds.RandomDynamicalSystem(lambda th, xi, p: 0.5 * th + th[5], form="vector", dim=3)
        >>> bad.map.check(bad, np.zeros((1, 3)), Plan())
        Traceback (most recent call last):
        ...
        IndexError: map '<lambda>' (<doctest ...>, line 1) raised IndexError: index 5 is out of bounds ...
        """
        if ident is False:
            ident = self.identity()
        if X2.shape[0] == 0:
            return Checked(False, None, system)
        if self.native:  # a JAX-native map is checked in the precision it will run in (as the JAX backend does)
            import jax
            ctx = jax.enable_x64(system.precision == "float64")
        else:
            ctx = contextlib.nullcontext()
        with ctx:
            _mapcheck.check_vector_step(system, X2, ident)
            if plan.service == "tangent":
                _mapcheck.check_vector_jacobian(system, X2, ident)
            if plan.service == "exit":
                from rds.backends import region_key
                _mapcheck.check_vector_region(system, plan.inside, X2, region_key(plan.inside))
        return Checked(False, None, system)


def make_map(step: Callable, form: str = "elementwise", jacobian: Callable | None = None, nvar: int = 1,
             native: bool = False) -> Map:
    """The map object of ``step`` in ``form`` (``"elementwise"`` or ``"vector"``; ``native``: a vector map written
    with ``jax.numpy``, :mod:`rds.native`).

    Examples
    --------
    >>> make_map(lambda s, xi, p: (s[0],), nvar=1).form
    'elementwise'
    """
    if form not in ("elementwise", "vector"):
        raise ValueError(f"form must be 'elementwise' or 'vector', got {form!r}")
    if form == "vector":
        return VectorMap(step, jacobian, nvar, native=native)
    if native:
        raise ValueError("native: only vector maps (form='vector') can be JAX-native")
    return ElementwiseMap(step, jacobian, nvar)
