"""Replayable noise paths ω ↦ (ξ_t) of a random dynamical system.

A noise source turns ``(seed, realization, t)`` into the noise sample ξ_t used by step t → t + 1. The numbers do
not depend on how a run is cut into pieces: time is split into fixed blocks of :data:`NOISE_BLOCK` steps and each
block has its own counter-based generator keyed by ``(seed, realization, block)`` (and by the member group for
independent noise), so any window ``[t0, t1)`` — negative times included — is regenerated alone and identically.
This is what makes the cocycle property φ(t + s, ω) = φ(t, θ_s ω) ∘ φ(s, ω) hold exactly, and what lets a
pullback from t − τ to t reuse the very same ξ for every τ and every initial condition.

Sources
-------
:class:`Gaussian`
    S i.i.d. inputs x ~ N(0, σ²) per step (the SGD batch of Sato et al. 2022, eq. 1; S = 1 is online learning).
:class:`Wiener`
    Wiener increments dW ~ N(0, σ² dt) for a Stratonovich SDE discretised with step dt (Sato et al. 2022, App. D).
:class:`GaussianInputs`
    S i.i.d. input vectors x ~ N(0, σ² I_d) per step (online SGD of a network with d inputs, e.g. the soft
    committee machine); ``dim=1`` gives the numbers of :class:`Gaussian`.
:class:`Minibatches`
    S replayable indices per step into a fixed dataset of n points (minibatch SGD on a real dataset).
:class:`FixedDataset`
    A quenched "noise": the same dataset every step (full-batch GD on a fixed noisy dataset, Maleknia & Sato 2026).

Time step: a source with a ``dt`` (:class:`Wiener`) gives it to the system that uses it, so ``dt`` is stated
once (:func:`resolve_dt`).
"""

from __future__ import annotations

import numpy as np

from rds._checks import INT64_MAX, INT64_MIN, check_memory, integer, nonnegative, positive, real_array

__all__ = ["NoiseSource", "Gaussian", "Wiener", "FixedDataset", "NOISE_BLOCK", "MEMBER_GROUP"]

#: Steps per generator block. Part of the definition of a noise path: changing it changes the numbers.
NOISE_BLOCK = 1024
#: Members per generator group for independent noise. Also part of the definition of a noise path.
MEMBER_GROUP = 64


def _zigzag(k: int) -> int:
    """Map an integer to a non-negative one, bijectively (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)."""
    return 2 * k if k >= 0 else -2 * k - 1


def _check_window(t0, t1):
    t0, t1 = integer(t0, "t0"), integer(t1, "t1")
    if t1 < t0:
        raise ValueError(f"t1 must be >= t0, got t0={t0}, t1={t1}")
    if t0 < INT64_MIN or t1 > INT64_MAX + 1:  # ξ_t for int64 times t, t0 <= t < t1
        raise ValueError(f"t0 and t1 must bound int64 times (-2**63 <= t0 <= t1 <= 2**63), got t0={t0}, t1={t1}")
    return t0, t1


def _check_members(members):
    try:
        m0, m1 = members
        m0, m1 = integer(m0, "members[0]"), integer(m1, "members[1]")
    except (TypeError, ValueError) as e:
        if isinstance(e, (TypeError, ValueError)) and str(e).startswith("members"):
            raise
        raise TypeError(f"members must be a pair of integers (m0, m1) or None, got {members!r}") from None
    if m0 < 0 or m1 < m0:
        raise ValueError(f"members must be a range (m0, m1) with 0 <= m0 <= m1, got {members}")
    return m0, m1


def check_seed(seed, name="seed") -> int:
    """Validate a seed or realisation index: a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed}")
    return int(seed)


class NoiseSource:
    """Base class of noise sources: a replayable map (seed, realization, t) → ξ_t.

    Subclasses set :attr:`shape` (the shape of one step's sample ξ_t) and implement :meth:`_draw`.

    Attributes
    ----------
    shape : tuple of int
        Shape of one step's sample ξ_t as the map sees it (e.g. ``(S,)`` for a batch of S inputs).
    quenched : bool
        True when ξ_t does not depend on t (a fixed dataset): the system is then a deterministic map.

    Examples
    --------
    A new source only draws a block of samples from a given generator; replay and chunking come from the base class:

    >>> import numpy as np
    >>> from rds.noise import NoiseSource
    >>> class Uniform(NoiseSource):
    ...     shape = (1,)
    ...     def _draw(self, rng, size):
    ...         return rng.uniform(-1.0, 1.0, size)
    >>> u = Uniform()
    >>> bool(np.array_equal(u.block(0, 0, -5, 5)[5:], u.block(0, 0, 0, 5)))
    True
    """

    shape: tuple = ()
    quenched = False

    def _draw(self, rng: np.random.Generator, size: tuple) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        """Flat description for Dataset attrs (str/int/float values only)."""
        return {"noise": type(self).__name__}

    # ------------------------------------------------------------------ generation
    def block(self, seed: int, realization: int, t0: int, t1: int,
              members: tuple | None = None) -> np.ndarray:
        """Noise samples for steps t0, …, t1 − 1.

        Parameters
        ----------
        seed, realization : int
            Select the noise path ω (non-negative integers).
        t0, t1 : int
            Absolute times, ``t0 <= t1``; may be negative.
        members : (int, int) or None
            ``None`` for common noise (all members share ξ_t). ``(m0, m1)`` for independent noise of the members
            with absolute indices m0, …, m1 − 1.

        Returns
        -------
        ndarray
            Common noise: shape ``(t1 - t0,) + shape``. Independent noise: ``(t1 - t0,) + shape + (m1 - m0,)``
            (member axis last, so that a map vectorised over members broadcasts it).
        """
        seed = check_seed(seed)
        realization = check_seed(realization, "realization")
        t0, t1 = _check_window(t0, t1)
        if members is None:
            check_memory(16 * (t1 - t0) * int(np.prod(self.shape)), f"t1 - t0 = {t1 - t0} steps of noise",
                         "ask for a shorter window [t0, t1)")
            return self._window(seed, realization, t0, t1, None)
        m0, m1 = _check_members(members)
        check_memory(16 * (t1 - t0) * int(np.prod(self.shape)) * (m1 - m0 + 2 * MEMBER_GROUP),
                     f"t1 - t0 = {t1 - t0} steps of noise for {m1 - m0} members", "ask for a shorter window")
        g0, g1 = m0 // MEMBER_GROUP, -(-m1 // MEMBER_GROUP)
        parts = [self._window(seed, realization, t0, t1, g) for g in range(g0, g1)]
        if not parts:
            return np.empty((t1 - t0,) + self.shape + (0,))
        full = np.concatenate(parts, axis=-1)
        lo = m0 - g0 * MEMBER_GROUP
        return full[..., lo:lo + (m1 - m0)]

    def _window(self, seed, realization, t0, t1, group):
        b0, b1 = t0 // NOISE_BLOCK, -(-t1 // NOISE_BLOCK)
        out = []
        for b in range(b0, b1):
            blk = self._block_samples(seed, realization, b, group)
            lo = max(t0 - b * NOISE_BLOCK, 0)
            hi = min(t1 - b * NOISE_BLOCK, NOISE_BLOCK)
            out.append(blk[lo:hi])
        if not out:
            extra = () if group is None else (MEMBER_GROUP,)
            return np.empty((0,) + self.shape + extra)
        return out[0] if len(out) == 1 else np.concatenate(out, axis=0)

    def _block_samples(self, seed, realization, b, group):
        key = [seed, realization, _zigzag(b), 0 if group is None else 1]
        if group is not None:
            key.append(group)
        rng = np.random.Generator(np.random.Philox(np.random.SeedSequence(key)))
        if group is None:
            return self._draw(rng, (NOISE_BLOCK,) + self.shape)
        # draw member-major for a fixed group so that the layout is part of the definition, then put members last
        z = self._draw(rng, (NOISE_BLOCK, MEMBER_GROUP) + self.shape)
        return np.moveaxis(z, 1, -1)


class Gaussian(NoiseSource):
    """A batch of S i.i.d. Gaussian inputs x ~ N(0, σ²) per step (Sato et al. 2022, eqs. 1 and 4).

    Parameters
    ----------
    sigma2 : float
        Variance σ² ≥ 0 of the inputs (the control parameter of Sato et al. 2022).
    batch : int
        Batch size S ≥ 1; ξ_t has shape ``(S,)``.

    Examples
    --------
    >>> from rds.noise import Gaussian
    >>> xi = Gaussian(sigma2=1.0, batch=2).block(seed=0, realization=0, t0=-3, t1=2)
    >>> xi.shape
    (5, 2)
    """

    def __init__(self, sigma2: float = 1.0, batch: int = 1):
        self.sigma2 = nonnegative(sigma2, "sigma2")
        self.batch = integer(batch, "batch", 1)
        self.shape = (self.batch,)

    def _draw(self, rng, size):
        return np.sqrt(self.sigma2) * rng.standard_normal(size)

    def describe(self):
        return {"noise": "Gaussian", "noise_sigma2": self.sigma2, "noise_batch": self.batch}

    def __repr__(self):
        return f"Gaussian(sigma2={self.sigma2!r}, batch={self.batch})"


class Wiener(NoiseSource):
    """Wiener increments dW ~ N(0, σ² dt), one per step (Sato et al. 2022, App. D).

    Parameters
    ----------
    sigma2 : float
        Noise intensity σ² ≥ 0 (variance per unit time).
    dt : float
        Time step dt > 0; ξ_t has shape ``(1,)``.

    Examples
    --------
    >>> from rds.noise import Wiener
    >>> Wiener(sigma2=0.1, dt=0.01).block(0, 0, 0, 4).shape
    (4, 1)
    """

    def __init__(self, sigma2: float = 1.0, dt: float = 0.01):
        self.sigma2 = nonnegative(sigma2, "sigma2")
        self.dt = positive(dt, "dt")
        self.shape = (1,)

    def _draw(self, rng, size):
        return np.sqrt(self.sigma2 * self.dt) * rng.standard_normal(size)

    def describe(self):
        return {"noise": "Wiener", "noise_sigma2": self.sigma2, "noise_dt": self.dt}

    def __repr__(self):
        return f"Wiener(sigma2={self.sigma2!r}, dt={self.dt!r})"


class FixedDataset(NoiseSource):
    """A quenched noise: the same dataset ξ_t = D at every step (full-batch GD, Maleknia & Sato 2026).

    Parameters
    ----------
    data : array_like, shape (k, n)
        The dataset as rows of equal length, e.g. ``(x, y)`` stacked to shape ``(2, n)``.

    Notes
    -----
    The noise was drawn once, in the data; seed and realisation have no effect and the system is a deterministic
    map. Independent noise per member is the same dataset for every member.

    Examples
    --------
    >>> import numpy as np
    >>> from rds.noise import FixedDataset
    >>> FixedDataset(np.zeros((2, 5))).block(0, 0, 0, 3).shape
    (3, 2, 5)
    """

    quenched = True

    def __init__(self, data):
        data = np.ascontiguousarray(real_array(data, "data", finite=True))
        if data.ndim < 1 or data.size == 0:
            raise ValueError("data must be a non-empty array")
        self.data = data
        self.data.setflags(write=False)
        self.shape = data.shape

    def block(self, seed, realization, t0, t1, members=None):
        check_seed(seed)
        check_seed(realization, "realization")
        t0, t1 = _check_window(t0, t1)
        n = t1 - t0
        if members is None:
            return np.broadcast_to(self.data, (n,) + self.shape)
        m0, m1 = _check_members(members)
        m = m1 - m0
        return np.broadcast_to(self.data[..., None], (n,) + self.shape + (m,))

    def describe(self):
        return {"noise": "FixedDataset", "noise_shape": np.asarray(self.shape, dtype=np.int64)}

    def __repr__(self):
        return f"FixedDataset(shape={self.shape})"


# ---------------------------------------------------------------------------------------------------------------
# sources for vector maps (networks with d inputs; minibatches of a fixed dataset)

class GaussianInputs(NoiseSource):
    """A batch of S i.i.d. Gaussian input vectors x ~ N(0, σ² I_d) per step; ξ_t has shape (S, d).

    The inputs of online SGD for a network with d inputs (the soft committee machine of the statistical mechanics
    of learning). With ``d = 1`` the numbers are those of :class:`Gaussian` with the same ``sigma2`` and ``batch``.

    Parameters
    ----------
    sigma2 : float
        Variance σ² ≥ 0 of each input component.
    batch : int
        Batch size S ≥ 1.
    dim : int
        Input dimension d ≥ 1.

    Examples
    --------
    >>> from rds.noise import GaussianInputs, Gaussian
    >>> import numpy as np
    >>> GaussianInputs(sigma2=1.0, batch=4, dim=3).block(0, 0, 0, 5).shape
    (5, 4, 3)
    >>> a = GaussianInputs(0.5, 2, 1).block(1, 0, -3, 3)[..., 0]
    >>> bool(np.array_equal(a, Gaussian(0.5, 2).block(1, 0, -3, 3)))
    True
    """

    def __init__(self, sigma2: float = 1.0, batch: int = 1, dim: int = 1):
        self.sigma2 = nonnegative(sigma2, "sigma2")
        self.batch, self.dim = integer(batch, "batch", 1), integer(dim, "dim", 1)
        self.shape = (self.batch, self.dim)

    def _draw(self, rng, size):
        return np.sqrt(self.sigma2) * rng.standard_normal(size)

    def describe(self):
        return {"noise": "GaussianInputs", "noise_sigma2": self.sigma2, "noise_batch": self.batch,
                "noise_dim": self.dim}

    def __repr__(self):
        return f"GaussianInputs(sigma2={self.sigma2!r}, batch={self.batch}, dim={self.dim})"


class Minibatches(NoiseSource):
    """Replayable minibatch indices into a fixed dataset of n points: ξ_t = S indices drawn uniformly (i.i.d.).

    Indices are drawn with replacement, independently at every step (the i.i.d. minibatch model of SGD), and are
    stored as exact float64 integers (a map converts them with ``xi.astype(np.int64)``). Full-batch GD on the same
    dataset is the quenched ``FixedDataset(np.arange(n))``, whose sample is every index.

    Parameters
    ----------
    n_data : int
        Number n ≥ 1 of data points.
    batch : int
        Batch size S ≥ 1; ξ_t has shape ``(S,)``.

    Examples
    --------
    >>> from rds.noise import Minibatches
    >>> xi = Minibatches(n_data=150, batch=8).block(0, 0, 0, 3)
    >>> xi.shape, bool(((xi >= 0) & (xi < 150) & (xi == xi.round())).all())
    ((3, 8), True)
    """

    def __init__(self, n_data: int, batch: int = 1):
        self.n_data, self.batch = integer(n_data, "n_data", 1), integer(batch, "batch", 1)
        self.shape = (self.batch,)

    def _draw(self, rng, size):
        return rng.integers(0, self.n_data, size).astype(float)

    def describe(self):
        return {"noise": "Minibatches", "noise_n_data": self.n_data, "noise_batch": self.batch}

    def __repr__(self):
        return f"Minibatches(n_data={self.n_data}, batch={self.batch})"


__all__ += ["GaussianInputs", "Minibatches"]


def resolve_dt(dt, noise, params=()) -> float:
    """The one time step of a system: ``dt`` stated once, wherever it is stated.

    A discretised SDE meets ``dt`` in three places: the Wiener increments (``Wiener(dt=)``: ΔW ~ N(0, σ² dt)), the
    map (a parameter named ``dt`` multiplying the drift) and the system (``RandomDynamicalSystem(dt=)``, which turns
    steps into time: exponents per unit time, ``elapsed``). State it in any one of them; the others take it from
    there, and two that disagree are refused. With none of them, a step is one unit of time (``dt = 1``: a map).

    Parameters
    ----------
    dt : float or None
        The system's ``dt`` argument (None: not given).
    noise : NoiseSource or None
        Its ``dt`` attribute, if any (:class:`Wiener`).
    params : tuple, namedtuple or mapping
        A field or key named ``dt``, if any.

    Returns
    -------
    float
        ``dt > 0``.

    Raises
    ------
    ValueError
        Naming ``dt`` and the places that disagree, or if ``dt`` is not positive.

    Examples
    --------
    >>> from rds.noise import Wiener, resolve_dt
    >>> resolve_dt(None, Wiener(sigma2=0.1, dt=0.01))
    0.01
    >>> resolve_dt(None, None)
    1.0
    >>> resolve_dt(0.1, Wiener(sigma2=0.1, dt=0.01))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: dt is stated twice with different values: dt=0.1 and the noise's Wiener(dt=0.01); state it once ...
    """
    stated = []
    if dt is not None:
        stated.append(("dt", positive(dt, "dt")))
    if getattr(noise, "dt", None) is not None:
        stated.append((f"the noise's {type(noise).__name__}(dt={noise.dt!r})", positive(noise.dt, "noise dt")))
    pdt = params.get("dt") if isinstance(params, dict) else getattr(params, "dt", None)
    if pdt is not None:
        stated.append((f"the map's parameter dt={float(pdt)!r}", positive(pdt, "params dt")))
    for where, value in stated[1:]:
        if abs(value - stated[0][1]) > 1e-12 * abs(stated[0][1]):
            first = stated[0][0] if stated[0][0] != "dt" else f"dt={stated[0][1]!r}"
            raise ValueError(f"dt is stated twice with different values: {first} and {where}; state it once "
                             f"(the system takes the noise's dt)")
    return stated[0][1] if stated else 1.0


__all__ += ["resolve_dt"]
