"""Initial states, given the same way to every analysis: one resolver and one Box sampler.

Every analysis that takes ``initial`` accepts

* an array of shape ``(member, var)``, or ``(var,)`` for a single state (columns in the order of
  ``system.variables``; finite); ``members=``, if given, must equal the number of rows;
* an :class:`rds.regions.Box` bounding every variable: ``members`` states drawn uniformly in the box, each
  coordinate in ``(low, high]`` (so that e.g. the invariant line w = 0 stays out of ``(0, 2]``);
* a callable ``sampler(rng, members) -> array (members, var)`` given a ``numpy.random.Generator``.

Sampling is seeded by ``sample_seed`` (an integer ≥ 0), through ``numpy.random.default_rng([sample_seed, 7919])``:
a stream of its own, never one of the noise paths, so the same ``sample_seed`` gives the same states whatever the
noise ``seed``. An analysis whose ``sample_seed`` is None uses its ``seed``.

Examples
--------
>>> import numpy as np, rds
>>> from rds.sampling import initial_states, sample_box
>>> box = rds.regions.Box([0, 0], [2, 2], ("w", "v"))
>>> X = sample_box(box, ("w", "v"), 5, sample_seed=1)
>>> X.shape, bool((X > 0).all() and (X <= 2).all())
((5, 2), True)
>>> initial_states(box, ("w", "v"), members=5, sample_seed=1)[0].tolist() == X.tolist()
True
>>> initial_states(np.array([0.5, 0.5]), ("w", "v"))[0].shape
(1, 2)
"""

from __future__ import annotations

import numpy as np

from rds._checks import check_memory, integer, real_array
from rds.regions import Box

__all__ = ["SAMPLE_STREAM", "sampler_rng", "sample_box", "initial_states"]

SAMPLE_STREAM = 7919
"""Second entropy word of the sampling generator: keeps initial-state draws apart from the noise streams."""


def sampler_rng(sample_seed=0) -> np.random.Generator:
    """The generator of initial-state sampling: ``numpy.random.default_rng([sample_seed, SAMPLE_STREAM])``.

    Parameters
    ----------
    sample_seed : int
        ≥ 0.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> from rds.sampling import sampler_rng
    >>> float(sampler_rng(3).random()) == float(sampler_rng(3).random())
    True
    """
    return np.random.default_rng([integer(sample_seed, "sample_seed", 0), SAMPLE_STREAM])


def sample_box(box: Box, variables, members: int, sample_seed=0) -> np.ndarray:
    """``members`` states uniform in a Box over all ``variables``, each coordinate in ``(low, high]``.

    Parameters
    ----------
    box : rds.regions.Box
        Finite bounds for every variable in ``variables`` (extra variables of the Box are an error).
    variables : sequence of str
        The system's variables (the column order of the result).
    members : int
        Number of states M ≥ 1.
    sample_seed : int
        Seed of :func:`sampler_rng`.

    Returns
    -------
    ndarray, shape (member, var)

    Examples
    --------
    >>> from rds.regions import Box
    >>> from rds.sampling import sample_box
    >>> sample_box(Box([-1, 0], [1, 3], ("x", "y")), ("x", "y"), 4, sample_seed=0).shape
    (4, 2)
    """
    if not isinstance(box, Box):
        raise TypeError(f"box must be an rds.regions.Box, got {type(box).__name__}")
    members = integer(members, "members", 1)
    variables = tuple(variables)
    box = box.bind(variables)
    extra = [v for v in box.variables or () if v not in variables]
    if extra:
        raise ValueError(f"initial: Box variables {extra} are not variables of the system {variables}")
    lo, hi = box.bounds_for(variables)
    check_memory(16 * members * len(variables), f"members={members} initial states", "sample fewer members")
    u = sampler_rng(sample_seed).random((members, len(variables)))
    return hi - (hi - lo) * u


def _describe_box(box):
    return (f"uniform in Box(low={box.low.tolist()}, high={box.high.tolist()}, variables={list(box.variables)}), "
            "(low, high]")


def initial_states(initial, variables, *, members=None, sample_seed=0, single=True):
    """Resolve ``initial`` (array, Box or sampler; see the module docstring) to states ``(member, var)``.

    Parameters
    ----------
    initial : array_like (member, var) or (var,), rds.regions.Box, or callable
        The initial states, or how to draw them.
    variables : sequence of str
        The system's variables.
    members : int or None, keyword-only
        Number of states to draw from a Box or sampler (required there); with an array, the number of rows
        (checked if given).
    sample_seed : int, keyword-only
        Seed of the sampling (:func:`sampler_rng`).
    single : bool, keyword-only
        Accept a single state of shape (var,) (as one member). An analysis of a *set* of states passes False.

    Returns
    -------
    X : ndarray, shape (member, var)
        A float copy, finite.
    description : str
        How the states were given (for the result's attrs).

    Raises
    ------
    ValueError, TypeError
        Naming ``initial`` or ``members``.

    Examples
    --------
    >>> import numpy as np
    >>> from rds.sampling import initial_states
    >>> X, how = initial_states(lambda rng, m: rng.normal(size=(m, 2)), ("x", "y"), members=3)
    >>> X.shape, how
    ((3, 2), 'sampler <lambda>')
    """
    variables = tuple(variables)
    nvar = len(variables)
    if isinstance(initial, Box) or (callable(initial) and not isinstance(initial, np.ndarray)):
        if members is None:
            raise ValueError("members must be given (a positive integer) when initial is a Box or a sampler")
        members = integer(members, "members", 1)
        if isinstance(initial, Box):
            return sample_box(initial, variables, members, sample_seed), _describe_box(initial.bind(variables))
        X = real_array(initial(sampler_rng(sample_seed), members), "initial", "a sampler returning real states")
        if X.shape != (members, nvar):
            raise ValueError(f"initial: the sampler must return shape (members, var) = ({members}, {nvar}), "
                             f"got {X.shape}")
        desc = f"sampler {getattr(initial, '__name__', type(initial).__name__)}"
    else:
        X = np.array(real_array(initial, "initial", "a real array (member, var), an rds.regions.Box or a "
                                "callable sampler(rng, members)"))  # a copy: never the caller's array
        given = X.shape  # reported as the user gave it (not after (var,) -> (1, var))
        if X.ndim == 1 and single:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != nvar:
            shapes = "(member, var) or (var,)" if single else "(member, var)"
            raise ValueError(f"initial must have shape {shapes} with var = {nvar} {variables}, got shape "
                             f"{given}")
        if members is not None and integer(members, "members", 1) != X.shape[0]:
            raise ValueError(f"members = {members} does not match the {X.shape[0]} rows of initial")
        desc = "given array"
    if X.shape[0] == 0:
        raise ValueError("initial must contain at least one member (the set of states is empty)")
    if not np.all(np.isfinite(X)):
        bad = int(np.sum(~np.all(np.isfinite(X), axis=1)))
        raise ValueError(f"initial must be finite: {bad} member(s) contain NaN or inf")
    return X, desc
