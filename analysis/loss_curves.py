"""Learning curves along random trajectories: any losses of an ensemble, recorded at log-spaced times.

For a training map θ_{t+1} = φ(θ_t, ξ_t) — minibatch SGD of a network on a dataset, online SGD on a teacher,
full-batch GD — the learning curve of a loss ℓ is t ↦ ℓ(θ_t) along each member's trajectory. Members of an
ensemble started from different θ_0 on one noise path (common noise) show how much of the curve is set by the
initial condition and how much by the sample path; on independent paths, the spread over paths. Plateaus
appear as flat stretches of the log–log curve, escapes as drops, overfitting as a test loss that rises while the
training loss falls.

The trajectory is recorded by the core engine (:meth:`rds.RandomDynamicalSystem.trajectory` at ``t0`` and
``num`` log-spaced times, :func:`rds.timegrid.log_times`); the losses are plain functions of θ evaluated on the
records afterwards, so they never slow the run (figure: :func:`analysis.plot_loss_curves`). Models declare their
usual losses (:func:`rds.models.dataset_sgd.dataset_losses`: training and test error on a dataset;
:func:`rds.models.soft_committee.generalization_losses`: the generalisation error ε_g of a soft committee machine,
Saad & Solla, Phys. Rev. E 52 (1995) 4225); any other callable on θ works on any map, elementwise or vector.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np
import xarray as xr

from rds._checks import integer
from rds.labels import annotate
from rds.sampling import initial_states
from rds.timegrid import log_times

__all__ = ["loss_curves", "default_losses"]


def default_losses(system) -> dict:
    """The losses a built-in model declares: ``{name: θ ↦ loss}``.

    Parameters
    ----------
    system : RandomDynamicalSystem
        From :func:`rds.models.dataset_sgd` (training error on its dataset), :func:`rds.models.soft_committee`
        (generalisation error on a fixed Gaussian test set) or :func:`rds.models.optax_training` (the loss on the
        training set and on its held-out ``test`` set, :func:`rds.models.optax_training.training_losses`).

    Returns
    -------
    dict of str to callable

    Raises
    ------
    ValueError
        For other systems: pass ``losses=`` to :func:`loss_curves`.

    Examples
    --------
    >>> import rds
    >>> from analysis.loss_curves import default_losses
    >>> sorted(default_losses(rds.models.soft_committee(inputs=3, hidden=2)))
    ['generalization']
    """
    from rds.models.dataset_sgd import dataset_losses, dataset_sgd
    from rds.models.soft_committee import generalization_losses, soft_committee
    factory = getattr(system, "_spec", (None,))[0]
    if getattr(factory, "__name__", "") == "optax_training":  # imported only for such systems (needs JAX)
        from rds.models.optax_training import training_losses
        return training_losses(system)
    if factory is dataset_sgd:
        return dataset_losses(system)
    if factory is soft_committee:
        return generalization_losses(system)
    raise ValueError(f"losses: the system {system.name!r} declares no default losses; pass losses={{name: "
                     "callable(theta of shape (..., var)) -> (...)}}")


def _check_losses(losses, system) -> dict:
    if losses is None:
        return default_losses(system)
    if callable(losses):
        return {"loss": losses}
    if not isinstance(losses, Mapping) or not losses:
        raise ValueError("losses must be a callable, a non-empty mapping {name: callable} or None")
    for name, f in losses.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"losses: names must be non-empty strings, got {name!r}")
        if not callable(f):
            raise ValueError(f"losses[{name!r}] must be callable, got {type(f).__name__}")
    return dict(losses)


def _evaluate(f: Callable, name: str, states: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """ℓ at each record (time, member) of the finite states; NaN elsewhere. One call per recorded time."""
    out = np.full(states.shape[:2], np.nan)
    for i in range(states.shape[0]):
        ok = finite[i]
        if not ok.any():
            continue
        val = np.asarray(f(states[i, ok]), dtype=float)
        if val.shape != (int(ok.sum()),):
            raise ValueError(f"losses[{name!r}] must map states of shape (members, var) = {states[i, ok].shape} to "
                             f"shape ({int(ok.sum())},), got {val.shape}")
        out[i, ok] = val
    return out


def loss_curves(system, initial, steps, losses=None, *, num: int = 100, seed=0, realization=0, t0=0,
                members=None, sample_seed=None, backend=None, executor=None, chunk_size=None, progress=None,
                keep_states: bool = False, units: str = "1") -> xr.Dataset:
    """Learning curves ℓ(θ_t) of an ensemble along its random trajectories, at log-spaced times.

    Parameters
    ----------
    system : RandomDynamicalSystem
        Any map, elementwise or vector (e.g. :func:`rds.models.dataset_sgd`, :func:`rds.models.soft_committee`).
    initial : array_like (member, var) or (var,); rds.regions.Box or callable
        θ_0 of each member, or how to draw ``members`` of them (:mod:`rds.sampling`, seeded by ``sample_seed``).
    steps : int
        Training steps (≥ 1).
    losses : callable, mapping {str: callable} or None
        Each maps states of shape (member, var) to losses of shape (member,). A single callable is named
        ``"loss"``. None: the model's declared losses (:func:`default_losses`).
    num : int, keyword-only
        Log-spaced record times (:func:`rds.timegrid.log_times`), t0 included.
    seed, realization, t0 : int, keyword-only
        The noise path and the absolute start time (:meth:`rds.RandomDynamicalSystem.trajectory`).
    members : int or None, keyword-only
        Ensemble size when ``initial`` is a Box or sampler.
    sample_seed : int or None, keyword-only
        Seed of that sampling (None: ``seed``).
    backend, executor, chunk_size, progress : keyword-only
        As in :meth:`rds.RandomDynamicalSystem.evolve`.
    keep_states : bool, keyword-only
        Also return the recorded states (time, member, var) (memory: num × members × var floats).
    units : str, keyword-only
        CF units of the losses (default ``"1"``: dimensionless, as for the built-in losses on standardised data).

    Returns
    -------
    xarray.Dataset
        ``loss`` (curve, time, member): ℓ(θ_t), NaN once a member diverged; ``loss_mean`` and ``loss_median``
        (curve, time) over the finite members; ``final`` (curve, member): at the last time; ``diverged`` (member);
        ``state`` (time, member, var) with ``keep_states``. Coordinates ``curve`` (the loss names), ``time`` (absolute
        steps), ``member``. Attrs: the system's description, the run (seed, realisation, t0, steps, num,
        backend, n_diverged, initial) and ``analysis="loss_curves"``.

    Examples
    --------
    >>> import numpy as np, rds, analysis
    >>> from rds.models.dataset_sgd import dataset_sgd, dataset_losses, load_dataset
    >>> X, y = load_dataset("iris")
    >>> sgd = dataset_sgd(X[:120], y[:120], hidden=3, eta=0.05, batch=8)
    >>> theta0 = np.random.default_rng(0).normal(0, 0.5, (4, sgd.nvar))
    >>> ds = analysis.loss_curves(sgd, theta0, 500, dataset_losses(sgd, test=(X[120:], y[120:])), num=20,
    ...                           backend="numpy")
    >>> ds.loss.dims, ds.curve.values.tolist()
    (('curve', 'time', 'member'), ['train', 'test'])
    >>> bool((ds.loss_mean.sel(curve="train").isel(time=-1) < ds.loss_mean.sel(curve="train").isel(time=0)).item())
    True
    """
    losses = _check_losses(losses, system)
    steps = integer(steps, "steps", 1)
    num = integer(num, "num", 1)
    X0, how = initial_states(initial, system.variables, members=members,
                             sample_seed=seed if sample_seed is None else sample_seed)
    t0 = integer(t0, "t0")
    times = t0 + log_times(steps, num, zero=True)
    tr = system.trajectory(X0, steps, seed=seed, t0=t0, realization=realization, times=times, backend=backend,
                           executor=executor, chunk_size=chunk_size, progress=progress)
    S = tr.state.values
    finite = np.all(np.isfinite(S), axis=-1)
    names = list(losses)
    L = np.stack([_evaluate(losses[n], n, S, finite) for n in names])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every member diverged at some time: NaN, not a warning
        mean, median = np.nanmean(L, axis=-1), np.nanmedian(L, axis=-1)
    ds = xr.Dataset(
        {"loss": (("curve", "time", "member"), L), "loss_mean": (("curve", "time"), mean),
         "loss_median": (("curve", "time"), median), "final": (("curve", "member"), L[:, -1]),
         "diverged": ("member", tr.diverged.values)},
        coords={"curve": names, "time": tr.time.values, "member": np.arange(X0.shape[0])})
    if keep_states:
        ds["state"] = tr.state
    ds["curve"].attrs["long_name"] = "loss function"
    for name, text in (("loss", "loss along the trajectory, l(theta_t)"), ("loss_mean", "mean loss over the finite "
                       "members"), ("loss_median", "median loss over the finite members"),
                       ("final", "loss at the last recorded time")):
        ds[name].attrs.update(long_name=text, units=units)
    ds.attrs.update(tr.attrs)
    ds.attrs.update({"analysis": "loss_curves", "num": num, "initial": how, "losses": " ".join(names)})
    return annotate(ds)
