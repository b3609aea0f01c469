"""Self-describing Datasets: one table of ``long_name`` and ``units`` for every name the library writes.

:func:`annotate` fills in the missing ``long_name`` / ``units`` attributes of a Dataset's variables and
coordinates from :data:`LABELS`, never overwriting what an analysis already set (its own, more specific text
wins). xarray's plotting then labels the axes (``long_name [units]``) and CF tools (cf-xarray, ncview) can read the
files. Units follow the CF conventions: ``"1"`` for dimensionless quantities, ``"steps"`` for step counts and
times measured in steps, ``"1/step"`` or ``"1/time"`` for Lyapunov exponents (``"1/step"`` when the system's
``dt`` is 1). Counts, flags and category codes have a ``long_name`` but no units.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from rds.labels import annotate
>>> ds = xr.Dataset({"escape_time": ("member", np.array([3, 5]))}, coords={"member": [0, 1]})
>>> ds = annotate(ds)
>>> ds.escape_time.attrs["units"], ds.member.attrs["long_name"]
('steps', 'ensemble member')
"""

from __future__ import annotations

import collections
import hashlib
import keyword
from collections.abc import Mapping
from typing import TypeVar

import xarray as xr

__all__ = ["LABELS", "FLOAT_LABELS", "annotate", "units_of", "long_name_of", "param_tuple"]

#: Exponent units: resolved by :func:`annotate` from the Dataset's ``dt`` attribute.
RATE = "<1/step or 1/time>"

_D = "1"  # dimensionless (CF)
_S = "steps"

#: name -> (long_name, units or None)
LABELS: dict[str, tuple[str, str | None]] = {
    # --- dimensions and coordinates shared by many Datasets
    "member": ("ensemble member", None),
    "var": ("state variable", None),
    "var_b": ("state variable (second index)", None),
    "time": ("time step t", _S),
    "t": ("steps since the start", _S),
    "tau": ("pullback time tau", _S),
    "start_time": ("absolute start time t - tau", _S),
    "previous_tau": ("tau of the previous set (-1: none)", _S),
    "realization": ("noise path (realization)", None),
    "seed": ("noise seed", None),
    "sigma2": ("input variance sigma^2", _D),
    "exponent": ("exponent index (largest first)", None),
    "tangential_exponent": ("tangential exponent index (largest first)", None),
    "eig": ("eigenvalue index (ascending)", None),
    "ci": ("confidence interval bound", None),
    "point": ("point on M_wv", None),
    "point_w": ("w of the point", _D),
    "point_v": ("v of the point", _D),
    "w": ("w on M_wv (w1 = w2 = w)", _D),
    "v": ("v on M_wv (v1 = v2 = v)", _D),
    "x": ("input x", _D),
    "neuron": ("hidden neuron", None),
    "input": ("input dimension", None),
    "daughter": ("daughter neuron", None),
    "beta_0": ("splitting coefficient beta_0", _D),
    "beta_1": ("splitting coefficient beta_1", _D),
    "elapsed": ("time since the tangent vectors started", "time"),
    "batch": ("minibatch size S", None),
    "eta": ("learning rate eta", _D),
    "eta_over_gd_bound": ("eta / (2 / lambda_max(H)), the GD sharpness bound", _D),
    "boundary_eta": ("eta at which the top exponent changes sign", _D),
    # --- states
    "state": ("state (one value per variable along var)", _D),
    "initial": ("initial state", _D),
    "end": ("final state", _D),
    "canonical": ("canonical representative modulo symmetry", _D),
    "exit_state": ("state at the escape step", _D),
    "diverged": ("diverged (state became non-finite)", None),
    "n_diverged": ("number of diverged members", None),
    "frac_diverged": ("fraction of diverged members", _D),
    # --- Lyapunov exponents
    "exponents": ("Lyapunov exponents", RATE),
    "history": ("finite-time Lyapunov exponents", RATE),
    "mean_exponents": ("mean Lyapunov exponents", RATE),
    "stderr": ("standard error of the mean exponent", RATE),
    "sum": ("sum of the Lyapunov exponents", RATE),
    "tangential": ("Lyapunov exponents within M_wv", RATE),
    "tangential_mean": ("mean tangential exponents", RATE),
    "tangential_stderr": ("standard error of the mean tangential exponent", RATE),
    "vectors": ("final orthonormalised tangent vectors", _D),
    "leak": ("largest (p, q)-component of the final transverse tangent vectors", _D),
    "off_subspace": ("final distance from the subspace", _D),
    "exponent_value": ("Lyapunov exponent", RATE),
    "eq_D5": ("-(sigma^2/2) <sin^2 phi> along the path", "1/time"),
    "eq_D6": ("-sigma^2/4", "1/time"),
    # --- pullback diagnostics
    "abs_dw": ("|w1 - w2|", _D),
    "abs_dv": ("|v1 - v2|", _D),
    "abs_sw": ("|w1 + w2|", _D),
    "abs_sv": ("|v1 + v2|", _D),
    "dist_optimum": ("distance to the optimal set modulo symmetry", _D),
    "median_abs_dw": ("median |w1 - w2|", _D),
    "median_abs_dv": ("median |v1 - v2|", _D),
    "median_dist_optimum": ("median distance to the optimal set", _D),
    "frac_Mw": ("fraction near M_w", _D),
    "frac_Mw_sym": ("fraction near M_w or its flipped image", _D),
    "frac_Mwv": ("fraction near M_wv", _D),
    "frac_Mwv_sym": ("fraction near M_wv or its flipped image", _D),
    "frac_Mwv_positive": ("fraction near M_wv with w, v > 0", _D),
    "frac_optimum": ("fraction near the optimal set", _D),
    "frac_optimum_0_5": ("fraction within 0.5 of the optimal set", _D),
    "n_finite": ("members with a finite state", None),
    "mean": ("centroid of the set", _D),
    "std": ("standard deviation of each variable", _D),
    "spread": ("RMS distance to the centroid", _D),
    "spread_canonical": ("spread modulo symmetry", _D),
    "hausdorff": ("Hausdorff distance to the previous set", _D),
    "hausdorff_symmetric": ("Hausdorff distance to the previous set modulo symmetry", _D),
    "pairwise_mean": ("mean pairwise distance between members", _D),
    "diameter": ("largest distance between two members", _D),
    "pairwise_mean_symmetric": ("mean pairwise distance modulo neuron symmetries", _D),
    "diameter_symmetric": ("largest pairwise distance modulo neuron symmetries", _D),
    # --- escape times
    "escape_time": ("escape step", _S),
    "censored": ("right-censored (still inside at max_steps)", None),
    "started_outside": ("initial state outside the region", None),
    "n_at_risk": ("runs in the statistics", None),
    "n_events": ("escapes within max_steps", None),
    "n_censored": ("censored runs", None),
    "n_started_outside": ("initial states outside the region", None),
    "n_samples": ("number of samples", None),
    "censored_fraction": ("fraction of censored runs", _D),
    "censored_fraction_ci": ("confidence interval of the censored fraction", _D),
    "restricted_mean": ("restricted mean escape time", _S),
    "restricted_mean_ci": ("confidence interval of the restricted mean", _S),
    "median": ("median escape time", _S),
    "median_ci": ("confidence interval of the median escape time", _S),
    "exp_rate": ("escape rate (exponential tail)", "1/steps"),
    "exp_rate_ci": ("confidence interval of the escape rate", "1/steps"),
    "exp_mean": ("mean escape time (exponential tail)", _S),
    "exp_mean_ci": ("confidence interval of the mean escape time", _S),
    "naive_mean_uncensored": ("naive mean of the uncensored escape times", _S),
    "survival": ("Kaplan-Meier survival S(t)", _D),
    "survival_ci": ("Greenwood interval of S(t)", _D),
    # --- stability on M_wv
    "mu_minus": ("smaller eigenvalue mu_- of the Jacobian of g", _D),
    "mu_plus": ("larger eigenvalue mu_+ of the Jacobian of g", _D),
    "avg_mu": ("eigenvalues of the averaged Jacobian", _D),
    "mu": ("eigenvalues mu_-, mu_+ of the Jacobian of g", _D),
    "tangent_eig": ("eigenvalues of the step Jacobian along M_wv (p, q block)", _D),
    "transverse_eig": ("eigenvalues of the step Jacobian transverse to M_wv (r, s block)", _D),
    "tangent_rate": ("(tangent eigenvalue - 1) / eta", _D),
    "transverse_rate": ("(transverse eigenvalue - 1) / eta", _D),
    "avg_tangent_eig": ("eigenvalues of the averaged step Jacobian along M_wv", _D),
    "avg_transverse_eig": ("eigenvalues of the averaged step Jacobian transverse to M_wv", _D),
    "coupling": ("largest entry of the off-diagonal (tangent-transverse) blocks", _D),
    "pi": ("attracting probability pi(w, v)", _D),
    "pi_at_points": ("attracting probability at the points", _D),
    "density": ("input density rho(x)", _D),
    "valley": ("valley v*(w; sigma^2) of the averaged potential", _D),
    "valley_potential": ("averaged potential along the valley", _D),
    "valley_min_w": ("w of the valley's local minimum", _D),
    "valley_min_v": ("v of the valley's local minimum", _D),
    "n_valley_minima": ("number of local minima along the valley", None),
    "averaged_potential": ("averaged potential", _D),
    # --- overfitting
    "E_tr": ("training error E_tr", _D),
    "E_gen": ("generalisation error E_gen", _D),
    "E_tr_final": ("final training error", _D),
    "E_gen_final": ("final generalisation error", _D),
    "E_gen_min": ("smallest generalisation error along the run", _D),
    "t_min_gen": ("step of the smallest generalisation error", _S),
    "grad_norm": ("norm of the gradient of E_tr", _D),
    "hessian": ("Hessian of E_tr", _D),
    "hessian_eigenvalues": ("eigenvalues of the Hessian of E_tr", _D),
    "min_eig": ("smallest Hessian eigenvalue", _D),
    "n_unstable": ("number of unstable directions", None),
    "d_overfit": ("squared L2 distance to the overfitting function", _D),
    "d_singular": ("squared L2 distance to the singular function", _D),
    "distance_O": ("distance to the optimal set in parameter space", _D),
    "phase": ("phase (0 plateau, 1 near-optimal, 2 overfitting)", None),
    "overfitting_point": ("overfitting point (minimiser of E_tr)", _D),
    "overfit_canonical": ("overfitting point, canonical representative", _D),
    "converged": ("converged", None),
    "function_spread": ("spread of the network functions", _D),
    "spread_minima": ("spread of the minima modulo symmetry", _D),
    # --- neuron splitting
    "W_narrow": ("input weights of the narrow network", _D),
    "v_narrow": ("output weights of the narrow network", _D),
    "beta": ("splitting coefficients", _D),
    "kind": ("plateau point type (theorems)", None),
    "numeric_kind": ("plateau point type (numerical)", None),
    "region": ("coefficient region", None),
    "inner_hessian_eigenvalues": ("eigenvalues of the inner Hessian H_j", _D),
    "min_hessian_eig": ("smallest eigenvalue of the wide Hessian", _D),
    "min_transverse_eig": ("smallest wide-Hessian eigenvalue transverse to the plateau", _D),
    "loss_change": ("loss change along the descent path", _D),
}

#: names that are an index dimension in one Dataset and a float quantity in another: the entry for the quantity
FLOAT_LABELS: dict[str, tuple[str, str | None]] = {
    "exponent": ("Lyapunov exponent", RATE),
}

T = TypeVar("T", xr.Dataset, xr.DataArray)


def long_name_of(name: str) -> str | None:
    """The table's ``long_name`` for ``name``, or None.

    Examples
    --------
    >>> long_name_of("tau")
    'pullback time tau'
    """
    entry = LABELS.get(name)
    return entry[0] if entry else None


def units_of(name: str, dt: float | None = 1.0) -> str | None:
    """The table's ``units`` for ``name`` (None: unknown name, or a count / flag without units).

    Parameters
    ----------
    name : str
    dt : float or None
        The system's time step: exponents are ``"1/step"`` when it is 1, else ``"1/time"``.

    Examples
    --------
    >>> units_of("exponents"), units_of("exponents", dt=0.01), units_of("n_events")
    ('1/step', '1/time', None)
    """
    entry = LABELS.get(name)
    if entry is None or entry[1] is None:
        return None
    if entry[1] == RATE:
        return "1/step" if dt is None or float(dt) == 1.0 else "1/time"
    return entry[1]


def annotate(ds: T) -> T:
    """Fill in missing ``long_name`` / ``units`` of every variable and coordinate from :data:`LABELS`.

    Existing attributes are never overwritten; names not in the table are left as they are. The Dataset is
    modified in place (attributes only) and returned, so ``return annotate(ds)`` works at a return point.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray

    Returns
    -------
    The same object.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"exponents": ("exponent", [0.4, -1.6])}, attrs={"dt": 1.0})
    >>> ds.exponents.attrs["long_name"] = "Lyapunov exponents of the Henon map"
    >>> annotate(ds).exponents.attrs
    {'long_name': 'Lyapunov exponents of the Henon map', 'units': '1/step'}
    """
    if not isinstance(ds, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"ds must be an xarray Dataset or DataArray, got {type(ds).__name__}")
    dt = ds.attrs.get("dt", 1.0)
    variables = (ds.variables if isinstance(ds, xr.Dataset)
                 else {ds.name: ds.variable, **{k: c.variable for k, c in ds.coords.items()}})
    for name, var in variables.items():
        if not isinstance(name, str):
            continue
        entry = LABELS.get(name)
        if name in FLOAT_LABELS and var.dtype.kind == "f":
            entry = FLOAT_LABELS[name]
        if entry is None:
            continue
        attrs = var.attrs
        if not attrs.get("long_name"):
            attrs["long_name"] = entry[0]
        units = entry[1] if entry[1] != RATE else ("1/step" if dt is None or float(dt) == 1.0 else "1/time")
        if units is not None and "units" not in attrs:
            attrs["units"] = units
    return ds


_PARAM_TYPES: dict[tuple, type] = {}


def _param_type(names: tuple) -> type:
    cls = _PARAM_TYPES.get(names)
    if cls is None:
        # published in this module under a name fixed by the field names, so the class pickles by reference and
        # is the same type in every process (Numba's on-disk kernel cache matches signatures by it)
        qualname = "Params_" + hashlib.sha256(",".join(names).encode()).hexdigest()[:16]
        base = collections.namedtuple("Params", names)  # type: ignore[misc]
        cls = type("Params", (base,), {"__slots__": (), "__module__": __name__, "__qualname__": qualname,
                                        "__reduce__": lambda self: (param_tuple, (dict(zip(names, self)),))})
        globals()[qualname] = cls
        _PARAM_TYPES[names] = cls
    return cls


def param_tuple(params: Mapping) -> tuple:
    """A mapping of named parameters as the namedtuple a map receives (``params.a`` or ``a, b = params``).

    :class:`rds.RandomDynamicalSystem` calls this for ``params={"a": 1.4, "b": 0.3}``, so that the parameters keep
    their names in Dataset attrs (``param_a``, ``param_b``) as with a namedtuple; the order is the mapping's order.
    The namedtuple pickles by value (to process pools and dask workers).

    Parameters
    ----------
    params : mapping of str to float
        Names must be Python identifiers (not keywords, not starting with ``_``).

    Returns
    -------
    tuple
        A namedtuple with fields in the mapping's order.

    Examples
    --------
    >>> from rds.labels import param_tuple
    >>> p = param_tuple({"a": 1.4, "b": 0.3})
    >>> p.a, tuple(p), p._fields
    (1.4, (1.4, 0.3), ('a', 'b'))
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of names to numbers, got {type(params).__name__}")
    names = tuple(params)
    for n in names:
        if not (isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_")):
            raise ValueError(f"params: parameter names must be Python identifiers not starting with '_', got {n!r}")
    return _param_type(names)(*params.values())
