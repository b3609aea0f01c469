"""Regions of state space, for first-exit (escape-time) studies.

A region is anything with an elementwise predicate ``inside(state) -> bool`` over the state tuple, written like a
map (NumPy functions and comparisons only) so that it runs vectorised under NumPy and compiled under Numba.
:class:`Box` builds one from bounds on some of the variables.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence

import numpy as np

from rds._checks import real_array
from rds._codegen import make_function

__all__ = ["Region", "Box", "Predicate", "as_predicate"]


class Region:
    """Base class of regions: a region makes an elementwise predicate ``inside(state) -> bool`` for the variables
    of a system (:meth:`predicate`) and describes itself in netCDF-safe attrs (:meth:`describe`).

    Subclass it for a new kind of region; see :class:`Box` and :class:`Predicate`.

    Examples
    --------
    >>> from rds.regions import Box, Region
    >>> isinstance(Box([0], [1], ("x",)), Region)
    True
    """

    def predicate(self, variables: Sequence[str]) -> Callable:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"region": repr(self)}


class Box(Region):
    """An axis-aligned box ``low <= state[var] <= high`` over some variables (closed; NaN is outside).

    Parameters
    ----------
    low, high : array_like of float, shape (k,)
        Bounds, ``low < high`` elementwise (``-inf`` / ``inf`` allowed).
    variables : sequence of str of length k, optional
        The variables the bounds apply to; the others are unconstrained. Omitted (None): the bounds apply to every
        variable of the system the Box is used with, in the order of ``system.variables`` (k must then equal the
        number of variables; :meth:`bind` names them).

    Examples
    --------
    The trapping region of Sato et al. 2022, Fig. 5 (on M_wv: (w, v) in [−2, 2]²):

    >>> from rds.regions import Box
    >>> box = Box(low=[-2, -2], high=[2, 2], variables=("w", "v"))
    >>> import numpy as np
    >>> box.contains(np.array([[0.5, 1.0], [2.5, 0.0]]), ("w", "v"))
    array([ True, False])

    Without ``variables`` a Box bounds all the variables of the system it is used with:

    >>> import rds
    >>> red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    >>> Box(low=[-2, -2], high=[2, 2]).bind(red.variables)
    Box(low=[-2.0, -2.0], high=[2.0, 2.0], variables=('w', 'v'))
    """

    def __init__(self, low, high, variables: Sequence[str] | None = None):
        low, high = _bounds(low, "low"), _bounds(high, "high")
        if variables is not None:
            try:
                variables = (variables,) if isinstance(variables, str) else tuple(str(v) for v in variables)
            except TypeError:
                raise TypeError(f"variables must be a sequence of variable names, got {variables!r}") from None
            if not all(v for v in variables):
                raise TypeError(f"variables must be names (non-empty strings), got {variables!r}")
        if low.ndim != 1 or low.shape != high.shape or (variables is not None and low.size != len(variables)):
            raise ValueError(f"low, high and variables must have the same length, got {low.size}, {high.size}, "
                             f"{'(omitted)' if variables is None else len(variables)}")
        if low.size == 0:
            raise ValueError("region must constrain at least one variable")
        if np.any(np.isnan(low)) or np.any(np.isnan(high)):
            raise ValueError("low and high must not be NaN")
        if not np.all(low < high):
            raise ValueError(f"region is empty: need low < high elementwise, got low={low}, high={high}")
        if variables is not None and len(set(variables)) != len(variables):
            raise ValueError(f"variables must be distinct, got {variables}")
        self.low, self.high, self.variables = low, high, variables

    def bind(self, variables) -> Box:
        """This Box with its variables named: itself if it names them, else the Box over all of ``variables``.

        Parameters
        ----------
        variables : sequence of str
            The variables of the system the Box is used with, in the order of ``system.variables``.

        Returns
        -------
        Box

        Raises
        ------
        ValueError
            If the Box omits its variables and its bounds do not have one entry per variable.
        """
        if self.variables is not None:
            return self
        variables = (variables,) if isinstance(variables, str) else tuple(str(v) for v in variables)
        if self.low.size != len(variables):
            raise ValueError(f"Box(low, high) without variables bounds every variable of the system: low and high "
                             f"need {len(variables)} entries (variables {variables}), got {self.low.size}; or name "
                             f"the bounded variables with variables=")
        return Box(self.low, self.high, variables)

    def predicate(self, variables):
        variables = tuple(variables)
        if self.variables is None:
            return self.bind(variables).predicate(variables)
        missing = [v for v in self.variables if v not in variables]
        if missing:
            raise ValueError(f"region variables {missing} are not variables of the system {variables}")
        return _box_predicate([variables.index(v) for v in self.variables], self.low, self.high)

    def bounds_for(self, variables, name="initial"):
        """Finite bounds ``(low, high)`` of this Box for ``variables``, in that order, for uniform sampling.

        Raises a ValueError naming ``name`` if a variable is not bounded by the Box or a bound is infinite.
        """
        variables = tuple(variables)
        if self.variables is None:
            return self.bind(variables).bounds_for(variables, name)
        missing = [v for v in variables if v not in self.variables]
        if missing:
            raise ValueError(f"{name}: a sampling Box must bound every one of the variables {variables}; "
                             f"missing {missing}")
        idx = [self.variables.index(v) for v in variables]
        low, high = self.low[idx], self.high[idx]
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"{name}: a sampling Box needs finite bounds, got {self!r}")
        return low, high

    def contains(self, states, variables) -> np.ndarray:
        """Evaluate membership of states, shape (..., var) → bool (...).

        ``states``' last axis must follow ``variables`` (ValueError if their lengths differ).
        """
        variables = (variables,) if isinstance(variables, str) else tuple(variables)
        X = real_array(states, "states", "a real array (..., var)")
        if X.ndim == 0 or X.shape[-1] != len(variables):
            raise ValueError(f"states must have a last axis of length {len(variables)} (variables {variables}), "
                             f"got shape {X.shape}")
        return np.asarray(self.predicate(variables)(tuple(np.moveaxis(X, -1, 0))), dtype=bool)

    def describe(self):
        return {"region": "Box",
                "region_variables": "all" if self.variables is None else ",".join(self.variables),
                "region_low": self.low.copy(), "region_high": self.high.copy()}

    def __repr__(self):
        return f"Box(low={self.low.tolist()}, high={self.high.tolist()}, variables={self.variables})"


class Predicate(Region):
    """A region given by an elementwise predicate ``inside(state) -> bool`` (state: the tuple of all variables).

    Write the predicate like a map, with NumPy functions (``np.logical_and``, comparisons, ``np.abs``), so that it
    runs vectorised under NumPy and compiled under Numba.

    Parameters
    ----------
    inside : callable
        ``inside(state) -> bool``; NaN states should give False (outside).
    name : str, optional
        Recorded in attrs.

    Examples
    --------
    A disc of radius 2 around M_wv's origin, for the reduced FA map (variables w, v):

    >>> import numpy as np
    >>> from rds.regions import Predicate
    >>> disc = Predicate(lambda s: s[0] * s[0] + s[1] * s[1] <= 4.0, name="disc")
    >>> disc.predicate(("w", "v"))((np.array([1.0, 3.0]), np.array([0.0, 0.0]))).tolist()
    [True, False]
    """

    def __init__(self, inside: Callable, name: str | None = None):
        if not callable(inside):
            raise TypeError("inside must be callable: inside(state) -> bool")
        self.inside = inside
        self.name = name or getattr(inside, "__name__", "predicate")

    def predicate(self, variables):
        return self.inside

    def describe(self):
        return {"region": f"predicate:{self.name}"}

    def __repr__(self):
        return f"Predicate({self.name})"


def as_predicate(region, variables) -> Callable:
    """The elementwise predicate of a :class:`Region` or of a plain callable, bound to ``variables``.

    Parameters
    ----------
    region : Region or callable
    variables : sequence of str
        The system's variables (the order of the state tuple).

    Returns
    -------
    callable
        ``inside(state) -> bool``, elementwise.

    Examples
    --------
    >>> from rds.regions import Box, as_predicate
    >>> inside = as_predicate(Box([-2], [2], ("v",)), ("w", "v"))
    >>> bool(inside((5.0, 1.0)))
    True
    """
    if isinstance(region, Region):
        return region.predicate(variables)
    if callable(region):
        return region
    raise TypeError(f"region must be an rds.regions.Region or a callable inside(state) -> bool, got {region!r}")


def _bounds(value, name):
    return np.atleast_1d(real_array(value, name, "real numbers (one bound per variable)"))


# Box predicates are generated code. So that they pickle (e.g. to a ProcessPoolExecutor), each one is published
# under a name in this module that encodes the box (variable indices and bounds, exactly): pickle stores the
# name, and the module's __getattr__ rebuilds the same predicate from it in another process.
_BOX_PREFIX = "_box_inside_"
_PREDICATES: dict = {}


def _box_predicate(indices, low, high):
    spec = json.dumps([[int(i) for i in indices], [float(x).hex() for x in low], [float(x).hex() for x in high]])
    name = _BOX_PREFIX + base64.urlsafe_b64encode(spec.encode()).decode().rstrip("=")
    if name in _PREDICATES:
        return _PREDICATES[name]
    terms = [f"np.logical_and(s[{i}] >= {_lit(lo)}, s[{i}] <= {_lit(hi)})" for i, lo, hi in zip(indices, low, high)]
    expr = terms[0]
    for t in terms[1:]:
        expr = f"np.logical_and({expr}, {t})"
    fn = make_function(f"def inside(s):\n    return {expr}\n", "inside")
    fn.__module__, fn.__qualname__ = __name__, name
    _PREDICATES[name] = fn
    return fn


def __getattr__(name):
    if name.startswith(_BOX_PREFIX):
        code = name[len(_BOX_PREFIX):]
        try:
            idx, lo, hi = json.loads(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
            return _box_predicate(idx, [float.fromhex(x) for x in lo], [float.fromhex(x) for x in hi])
        except (ValueError, TypeError):
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lit(x: float) -> str:
    if np.isposinf(x):
        return "np.inf"
    if np.isneginf(x):
        return "(-np.inf)"
    return repr(float(x))
