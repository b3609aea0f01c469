"""Backends: one file per backend behind one declared contract, a registry and one function that chooses.

A backend runs the engine's services for a map: ``evolve`` (advance an ensemble), ``tangent`` (advance it with
``k`` tangent vectors, QR re-orthonormalised: the Benettin method), ``exit`` (advance each member until it leaves a
region) and ``jacobian`` (the Jacobian matrices at given states). The engine (:mod:`rds.engine`) cuts runs into
segments at noise blocks and recorded times and calls the backend's :class:`Kernels` on each; the backend never
sees chunks, executors or progress bars.

Built in:

========  ====================  ==========================================================================
name      forms                 what
========  ====================  ==========================================================================
numpy     elementwise, vector   the reference: evaluates the map as written (:mod:`rds.backends.numpy`)
numba     elementwise           compiled, vectorised member loops, on-disk kernel cache (:mod:`rds.backends.numba`)
jax       elementwise, vector   jit + vmap + jvp tangents, CPU or GPU (:mod:`rds.backends.jax`)
========  ====================  ==========================================================================

**One map, one contract.** Kernels are built for a map's *identity* (:mod:`rds._identity`: a digest of everything
the map reads) and a layout (form, variables, noise shape, precision …). The identity is computed at every service
call, so a map whose constants, arrays, closures, helpers or module attributes changed gets new kernels: every
backend always computes from the map as it is now. A map whose identity cannot be established gets fresh kernels
at each call (one :class:`~rds._identity.UnidentifiedMapWarning` says so).

**Adding a backend** is one file: a module with a ``BACKEND`` object satisfying :class:`Backend`, registered with
:func:`register` (see the docs page "Adding a backend").

**Choosing** (``backend=None``) happens in one place, :func:`choose`: the map is checked once on NumPy
(:meth:`rds.maps.Map.check`), maps that only run member by member go to a compiled backend, and otherwise the
backend with the smallest estimated time for the whole work (:meth:`Backend.estimate`, compilation included) is
taken. Every service reports the backend that ran (``RunResult.backend``, the ``backend`` attr of Datasets).
"""

from __future__ import annotations

import importlib
import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["BACKENDS", "Plan", "Kernels", "Backend", "register", "get", "available", "choose", "kernels_for",
           "estimated_seconds"]


@dataclass(frozen=True)
class Plan:
    """What a service call will do: the basis of the backend choice and of the cost estimates.

    Attributes
    ----------
    service : {"evolve", "tangent", "exit"}
    members : int
        Ensemble members of one run.
    steps : int
        Steps of one run.
    k : int or None
        Tangent vectors per member (``tangent``).
    inside : callable or None
        The region predicate (``exit``).
    repeats : int
        Runs of this size (e.g. the realisations of an analysis), counted together in the estimate.
    """

    service: str = "evolve"
    members: int = 1
    steps: int = 1
    k: int | None = None
    inside: Any = None
    repeats: int = 1

    @property
    def member_steps(self) -> int:
        return int(self.members) * max(int(self.steps), 1)

    @classmethod
    def of_run(cls, members, steps, run_kwargs, repeats=1) -> Plan:
        """The plan of an engine run with keyword arguments ``run_kwargs`` (``tangent=``, ``region=``)."""
        if run_kwargs.get("tangent") is not None:
            return cls("tangent", members, steps, k=int(np.shape(run_kwargs["tangent"])[-1]), repeats=repeats)
        if run_kwargs.get("region") is not None:
            return cls("exit", members, steps, inside=run_kwargs["region"], repeats=repeats)
        return cls("evolve", members, steps, repeats=repeats)


class Kernels(Protocol):
    """The services of one backend for one map (its identity) and layout.

    Arrays are the engine's: ``X`` (var, member) states, ``V`` (var, k, member) tangent vectors, ``logr``
    (k, member) accumulated log-norms, ``exit_step`` (member,) int; all updated in place. ``noise`` is the segment's
    noise, ``(n,) + noise.shape`` (with a trailing member axis for independent noise). ``params`` is the
    parameter tuple (a run-time argument: kernels never bake it in). A member whose state becomes non-finite is set
    to NaN in every variable.
    """

    name: str

    def evolve(self, X, noise, params, nsteps) -> None:
        """Advance ``nsteps`` steps."""

    def tangent(self, X, V, logr, noise, params, nsteps, n0, qr_every, qr_final) -> None:
        """Advance with ``V ← J V``; QR every ``qr_every`` steps counted from ``n0`` (and at the end if
        ``qr_final``), adding ``log R_cc`` to ``logr``."""

    def exit(self, X, exit_step, noise, params, nsteps, n0, inside, inside_key) -> None:
        """Advance members with ``exit_step < 0``; one that leaves ``inside`` gets ``exit_step = n0 + t + 1``.
        ``inside_key``: the predicate's identity (kernels for it are cached under this key)."""

    def jacobian(self, X, xi, params) -> np.ndarray:
        """Jacobian matrices (member, var, var) at states ``X`` (member, var) for one noise sample ``xi``."""


class Backend(Protocol):
    """A backend: what it runs, whether it is installed, how it builds kernels and what a run would cost."""

    name: str
    forms: tuple

    def available(self) -> bool:
        """Whether the backend can run here (its packages import)."""

    def kernels(self, system) -> Kernels:
        """Build the kernels of ``system``'s map (called once per map identity and layout)."""

    def estimate(self, system, plan: Plan, kernels) -> float:
        """Estimated seconds of ``plan`` (compilation included); ``math.inf``: never chosen automatically.
        ``kernels`` is a callable returning this backend's kernels for the system (built only if needed)."""


#: Built-in backends: name -> module (imported when first used).
_MODULES = {"numpy": "rds.backends.numpy", "numba": "rds.backends.numba", "jax": "rds.backends.jax"}
_REGISTRY: dict = {}
BACKENDS = tuple(_MODULES)


def register(backend: Backend) -> None:
    """Register a backend object (see :class:`Backend`) under ``backend.name``.

    Examples
    --------
    >>> import rds.backends as B
    >>> B.get("numpy").name in B.BACKENDS
    True
    """
    global BACKENDS
    _REGISTRY[backend.name] = backend
    if backend.name not in BACKENDS:
        BACKENDS = BACKENDS + (backend.name,)


def get(name: str) -> Backend:
    """The registered backend ``name`` (a ``ValueError`` naming the known ones otherwise)."""
    if name not in _REGISTRY:
        if name not in _MODULES:
            raise ValueError(f"backend must be one of {BACKENDS} or None, got {name!r}")
        register(importlib.import_module(_MODULES[name]).BACKEND)
    return _REGISTRY[name]


def available(name: str) -> bool:
    """Whether backend ``name`` can run here."""
    try:
        return bool(get(name).available())
    except ImportError:  # pragma: no cover - a broken installation
        return False


# ----------------------------------------------------------------------------------------------------- kernels
_KERNELS: OrderedDict = OrderedDict()
#: Kernel sets kept in memory (least recently used dropped first; a dropped compiled kernel is reloaded from the
#: on-disk cache when needed again).
MAX_KERNEL_SETS = 64
_FRESH = itertools.count()


def kernels_for(system, backend: str, ident: str | None | bool = False) -> Kernels:
    """The kernels of ``system``'s map on ``backend``, for the map as it is now.

    Parameters
    ----------
    system : RandomDynamicalSystem
    backend : str
    ident : str, None or False
        The map's identity if the caller computed it this call (``None``: unidentifiable); ``False``: compute it.

    Returns
    -------
    Kernels
        Shared by every system with the same map identity and layout (parameters are run-time arguments, so a scan
        over σ² or η compiles once); built anew for an unidentifiable map.
    """
    if ident is False:
        ident = system.map.identity()
    if ident is None:
        return get(backend).kernels(system)
    key = (backend, ident, system.layout)
    kern = _KERNELS.get(key)
    if kern is None:
        kern = get(backend).kernels(system)
        _KERNELS[key] = kern
        while len(_KERNELS) > MAX_KERNEL_SETS:
            _KERNELS.popitem(last=False)
    else:
        _KERNELS.move_to_end(key)
    return kern


def region_key(inside) -> str:
    """The identity of a region predicate (a fresh key, never reused, if it cannot be established)."""
    from rds._identity import Unidentifiable, identity
    try:
        return identity(inside, role="region predicate")
    except Unidentifiable:
        return f"unidentified-{next(_FRESH)}"


# ----------------------------------------------------------------------------------------------------- choice
def estimated_seconds(system, backend: str, plan: Plan, ident: str | None | bool = False) -> float:
    """The estimated wall time of ``plan`` on ``backend`` (:meth:`Backend.estimate`).

    Examples
    --------
    >>> import rds
    >>> from rds.backends import Plan, estimated_seconds
    >>> fa = rds.models.fukumizu_amari()
    >>> small = Plan("evolve", members=10, steps=100)
    >>> estimated_seconds(fa, "numpy", small) < 0.1
    True
    """
    return get(backend).estimate(system, plan, lambda: kernels_for(system, backend, ident))


def choose(system, backend, X2, plan: Plan, ident: str | None | bool = False) -> str:
    """The backend that runs ``plan``: ``backend`` validated, or the fastest one for ``backend=None``.

    The one place where a backend is chosen (services and analyses call it; results record its answer). The map
    (and the Jacobian or region predicate the service uses) is checked first, once per identity, on a few members
    with NumPy (:meth:`rds.maps.Map.check`). Then:

    * a map that runs only member by member (``if x > 0:``, ``math.sin``) goes to the compiled backend when
      ``backend`` is None and is refused with ``backend="numpy"``;
    * ``None`` takes the available backend of the map's form with the smallest :meth:`Backend.estimate` for the
      whole work (NumPy's per-step Python overhead against Numba's compilation or loading from the cache; JAX for
      vector maps; JAX is never chosen automatically for elementwise maps);
    * a map the compiled backend cannot compile (a SciPy function, an ``import`` inside) runs on NumPy when
      ``backend`` is None and is refused with ``backend="numba"``.

    Parameters
    ----------
    system : RandomDynamicalSystem
    backend : str or None
    X2 : ndarray, shape (member, var)
        The initial states (a few of them are used for the check).
    plan : Plan
    ident : str, None or False
        The map's identity if the caller computed it this call (False: computed here).

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np, rds
    >>> from rds.backends import Plan, choose
    >>> halve = rds.RandomDynamicalSystem(lambda s, xi, p: (0.5 * s[0] + 0.25,), variables=("x",))
    >>> X = np.zeros((10, 1))
    >>> choose(halve, None, X, Plan("evolve", members=10, steps=50))     # short: not worth compiling
    'numpy'
    >>> choose(halve, None, X, Plan("evolve", members=10**5, steps=10**4)), choose(halve, "numba", X, Plan())
    ('numba', 'numba')
    """
    mp = system.map
    if ident is False:
        ident = mp.identity()
    if getattr(mp, "native", False):  # written with jax.numpy: JAX only (rds.native)
        if backend not in (None, "jax"):
            raise ValueError(f"backend={backend!r}: a JAX-native map (written with jax.numpy) runs on backend='jax' "
                             "or None only")
        backend = "jax"
    if backend is not None:
        b = get(backend)
        if mp.form not in b.forms:
            raise ValueError(f"backend {backend!r} runs {' and '.join(b.forms)} maps, not {mp.form} maps; use one "
                             f"of {[n for n in BACKENDS if mp.form in get(n).forms]} or None")
        if not b.available():
            raise ValueError(f"backend={backend!r} is not available here (pip install {backend})")
    checked = mp.check(system, X2, plan, ident)
    if checked.scalar_only:
        if backend == "numpy":
            raise checked.numpy_refusal() from checked.vector_error
        if backend is None:
            backend = "numba"
    if backend is None:
        costs = {}
        for name in BACKENDS:
            b = get(name)
            if mp.form in b.forms and b.available():
                try:
                    costs[name] = estimated_seconds(system, name, plan, ident)
                except Exception:  # a map a backend cannot even set up: not that one
                    costs[name] = math.inf
        chosen = min(costs, key=lambda n: costs[n])
        if chosen == "numba" and not mp.compilable(system, plan, ident=ident):
            chosen = "numpy"
        return chosen
    if backend == "numba":
        mp.compilable(system, plan, strict=True, ident=ident)
    return backend
