"""Analyses that are not specific to one model work on any system, and say nothing model-specific about it.

The pullback diagnostics and plot of Sato et al. 2022 (Fig. 4) have a generic part (spread, pairwise distances,
diameter, Hausdorff distance between successive τ) and a Fukumizu–Amari part (M_w, M_wv, θ*). The FA part appears
only for results that say they come from the FA model (attrs ``model`` and the variables), never from a variable name
alone. Also: the computing modules of ``analysis`` do not import the plotting modules (no import cycles), and the
options after the run length of the escape-time analyses are keyword-only.
"""

from __future__ import annotations

import ast
import inspect
import pathlib

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import pdist

import analysis
import rds
from rds.noise import GaussianInputs

ROOT = pathlib.Path(__file__).resolve().parents[1]

# every variable and attr that belongs to the Fukumizu–Amari network (M_w, M_wv, θ*)
FA_VARIABLES = {"abs_dw", "abs_dv", "abs_sw", "abs_sv", "dist_optimum", "frac_Mw", "frac_Mwv", "frac_Mwv_positive",
                "frac_Mw_sym", "frac_Mwv_sym", "frac_optimum", "median_abs_dw", "median_abs_dv",
                "median_dist_optimum"}
FA_ATTRS = {"threshold", "optimum_threshold"}
GENERIC = {"spread", "pairwise_mean", "diameter", "hausdorff", "mean", "std", "n_finite", "frac_diverged"}


# ------------------------------------------------------------------------------------------------ systems
def logistic_step(s, xi, p):
    (x,) = s
    return (p[0] * x * (1.0 - x) + xi[0],)


def henon_step(s, xi, p):
    x, y = s
    return (1.0 - p[0] * x * x + y + xi[0], p[1] * x)


def contraction_step(theta, xi, p):
    return p[0] * theta + 0.1 * xi[0]


def logistic():
    return rds.RandomDynamicalSystem(logistic_step, noise=rds.noise.Gaussian(1e-6), variables=("x",), params=(3.7,))


def henon():
    return rds.RandomDynamicalSystem(henon_step, noise=rds.noise.Gaussian(1e-6), variables=("x", "y"),
                                     params=(1.4, 0.3))


def vector_map(variables=None, D=3):
    return rds.RandomDynamicalSystem(contraction_step, noise=GaussianInputs(1.0, batch=1, dim=D), form="vector",
                                     dim=D, params=(0.5,), variables=variables)


def lookalike():
    """A plain linear map whose variables happen to be called like the FA network's: not the FA model."""
    return vector_map(("w1", "w2", "v1", "v2"), D=4)


def _B(M, d, lo=-0.1, hi=0.1, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, (M, d))


GENERIC_SYSTEMS = {
    "logistic": lambda: (logistic(), _B(12, 1, 0.2, 0.8)),
    "henon": lambda: (henon(), _B(12, 2)),
    "vector": lambda: (vector_map(), _B(12, 3)),
    "w1-v2 lookalike": lambda: (lookalike(), _B(12, 4)),
}


def _pullback(name, taus=(0, 3, 12)):
    system, B = GENERIC_SYSTEMS[name]()
    return analysis.pullback_attractor(system, B, list(taus), t=0, seed=1, backend="numpy")


# ------------------------------------------------------------------------------------------------ diagnostics
@pytest.mark.parametrize("name", list(GENERIC_SYSTEMS))
def test_generic_system_gets_generic_diagnostics_only(name):
    ds = _pullback(name)
    dg = analysis.pullback_diagnostics(ds)
    assert GENERIC <= set(dg.data_vars)
    assert not FA_VARIABLES & set(dg.data_vars), f"FA diagnostics attached to {name}"
    assert not FA_ATTRS & set(dg.attrs), f"FA attrs attached to {name}"
    for key in ("diagnostics_equations",):
        text = str(dg.attrs.get(key, ""))
        assert "M_w" not in text and "theta*" not in text, f"{key} = {text!r} for {name}"
    # a plain map declares no network symmetry: nothing modulo symmetry either
    assert "spread_canonical" not in dg and "hausdorff_symmetric" not in dg
    # the generic diagnostics are what they say
    X = ds.state.values
    for k in range(X.shape[0]):
        d = pdist(X[k])
        assert dg.pairwise_mean.values[k] == pytest.approx(d.mean(), rel=1e-12)
        assert dg.diameter.values[k] == pytest.approx(d.max(), rel=1e-12)
        c = X[k] - X[k].mean(axis=0)
        assert dg.spread.values[k] == pytest.approx(np.sqrt(np.mean(np.sum(c * c, axis=1))), rel=1e-12)
    assert np.isnan(dg.hausdorff.values[0])
    assert dg.hausdorff.values[1] == pytest.approx(analysis.hausdorff_distance(X[0], X[1]), rel=1e-12)


def test_fa_model_keeps_its_diagnostics():
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    ds = analysis.pullback_attractor(fa, _B(10, 4, -1, 1), [0, 5], backend="numpy")
    dg = analysis.pullback_diagnostics(ds)
    assert FA_VARIABLES <= set(dg.data_vars) and FA_ATTRS <= set(dg.attrs)
    assert "M_w" in dg.attrs["diagnostics_equations"]
    assert {"spread_canonical", "hausdorff_symmetric"} <= set(dg.data_vars)
    # the same network in (p, q, r, s) coordinates (eq. 19) is the FA model too
    pq = rds.models.fukumizu_amari_pqrs(eta=0.1, sigma2=1.0)
    dq = analysis.pullback_diagnostics(analysis.pullback_attractor(pq, _B(10, 4, -1, 1), [0, 5], backend="numpy"))
    assert FA_VARIABLES <= set(dq.data_vars)


def test_fa_network_as_a_vector_map_is_the_fa_model():
    """soft_committee(d=1, N=2, tanh) on the FA teacher is the FA model (its docstring): FA diagnostics apply."""
    scm = rds.models.soft_committee(eta=0.1, sigma2=1.0)
    dg = analysis.pullback_diagnostics(analysis.pullback_attractor(scm, _B(6, 4, -1, 1), [0, 5], backend="numpy"))
    assert FA_VARIABLES <= set(dg.data_vars)
    other = rds.models.soft_committee(eta=0.1, sigma2=1.0, teacher_W=[[1.0], [2.0]], teacher_v=[1.0, 1.0])
    dg = analysis.pullback_diagnostics(analysis.pullback_attractor(other, _B(6, 4, -1, 1), [0, 5],
                                                                   backend="numpy"))
    assert not FA_VARIABLES & set(dg.data_vars)          # another teacher: θ* of eq. 9 means nothing
    assert "spread_canonical" in dg                       # but it is still a tanh network (declared symmetry)


def test_another_tanh_network_is_not_the_fa_model():
    """Full-batch GD of a (w1, w2, v1, v2) student on other data: a network, but θ* of eq. 9 is not its optimum."""
    x = np.linspace(-1, 1, 6)[:, None]
    gd = rds.models.teacher_student(x, np.sin(x[:, 0]), hidden=2, eta=0.05)
    dg = analysis.pullback_diagnostics(analysis.pullback_attractor(gd, _B(6, 4, -1, 1), [0, 5], backend="numpy"))
    assert not FA_VARIABLES & set(dg.data_vars) and not FA_ATTRS & set(dg.attrs)
    assert "spread_canonical" in dg and "hausdorff_symmetric" in dg


def test_the_model_can_be_named_for_a_hand_made_set():
    on = np.array([[[0.5, 0.5, 1.0, 1.0], [-2.0, -2.0, 0.3, 0.3]]])
    ds = xr.Dataset({"state": (("tau", "member", "var"), on)}, coords={"tau": [10], "var": ["w1", "w2", "v1", "v2"]})
    assert "frac_Mwv" not in analysis.pullback_diagnostics(ds)                # no attrs: nothing is assumed
    assert float(analysis.pullback_diagnostics(ds, model="fukumizu_amari").frac_Mwv[0]) == 1.0
    assert float(analysis.pullback_diagnostics(ds.assign_attrs(model="fukumizu_amari")).frac_Mwv[0]) == 1.0
    with pytest.raises(ValueError, match="model"):
        analysis.pullback_diagnostics(ds.rename_vars(state="state").assign_coords(var=["a", "b", "c", "d"]),
                                      model="fukumizu_amari")
    with pytest.raises(TypeError, match="model"):
        analysis.pullback_diagnostics(ds, model=3)


# ------------------------------------------------------------------------------------------------ plots
def _labels(fig):
    return " ".join(a.get_xlabel() + " " + a.get_ylabel() for a in fig.axes)


@pytest.mark.parametrize("name", list(GENERIC_SYSTEMS))
def test_plot_of_a_generic_system(name):
    from matplotlib.figure import Figure
    ds = _pullback(name)
    fig = analysis.plot_pullback_attractors(ds, diagnostics=analysis.pullback_diagnostics(ds))
    assert type(fig) is Figure and len(fig.axes) == ds.sizes["tau"]
    labels = _labels(fig)
    assert "w1" not in labels or name == "w1-v2 lookalike"
    assert "(v1, v2)" not in labels and "blue" not in labels
    names = [str(v) for v in ds["var"].values]
    if len(names) == 1:
        assert "member" in labels and names[0] in labels
    else:
        assert names[0] in labels and names[1] in labels
    texts = " ".join(t.get_text() for a in fig.axes for t in a.texts)
    assert "M_w" not in texts and "θ*" not in texts


def test_plot_fa_panels_and_ax():
    from matplotlib.figure import Figure
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    ds = analysis.pullback_attractor(fa, _B(10, 4, -1, 1), [0, 5], backend="numpy")
    fig = analysis.plot_pullback_attractors(ds, diagnostics=analysis.pullback_diagnostics(ds))
    assert "w1" in _labels(fig) and "M_wv" in " ".join(t.get_text() for t in fig.axes[0].texts)
    # draw into given axes: one Axes per (tau, dataset); the Figure they belong to comes back
    host = Figure()
    axs = host.subplots(1, 2)
    assert analysis.plot_pullback_attractors(ds, ax=axs) is host
    one = Figure().subplots()
    h = _pullback("henon", taus=(4,))
    assert analysis.plot_pullback_attractors(h, ax=one) is one.figure
    assert one.get_xlabel() == "x" and one.get_ylabel() == "y"


# ------------------------------------------------------------------------------------------------ import graph
def _imports(path: pathlib.Path, modules: set) -> set:
    """Modules of ``modules`` that the file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        out |= {n for n in names if n in modules}
    return out


def test_analysis_has_no_import_cycles():
    files = {f"analysis.{p.stem}": p for p in (ROOT / "analysis").glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(p, set(files)) - {m} for m, p in files.items()}

    def reach(a):
        seen, todo = set(), [a]
        while todo:
            for b in graph[todo.pop()]:
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen
    cycles = sorted(m for m in graph if m in reach(m))
    assert not cycles, f"import cycles through {cycles}"
    # computing code never imports plotting code
    for m in set(graph):
        if not m.split(".")[-1].startswith("plots_"):
            assert not {b for b in graph[m] if b.split(".")[-1].startswith("plots_")}, m


def test_plots_are_still_reachable_from_the_package():
    from analysis import plots_overfitting, plots_pullback
    assert analysis.plot_learning_curves is plots_overfitting.plot_learning_curves
    assert analysis.plot_trajectory is plots_overfitting.plot_trajectory
    assert analysis.plot_pullback_attractors is plots_pullback.plot_pullback_attractors


# ------------------------------------------------------------------------------------------------ keyword-only options
@pytest.mark.parametrize("func, last_positional", [(analysis.escape_times, "max_steps"),
                                                   (analysis.escape_time_scan, "max_steps")])
def test_options_after_the_run_length_are_keyword_only(func, last_positional):
    params = list(inspect.signature(func).parameters.values())
    names = [p.name for p in params]
    after = params[names.index(last_positional) + 1:]
    assert after and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in after), \
        [p.name for p in after if p.kind is not inspect.Parameter.KEYWORD_ONLY]


def test_seed_cannot_be_passed_by_position():
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.1)
    box = rds.regions.Box([-2.0, -2.0], [2.0, 2.0], ("w", "v"))
    X = np.ones((3, 2))
    with pytest.raises(TypeError):
        analysis.escape_times(red, X, box, 5, 7)                                   # seed=7 by position
    with pytest.raises(TypeError):
        analysis.escape_time_scan(lambda s2: rds.models.fukumizu_amari_reduced(sigma2=s2), [0.1], X, box, 5, 7)
    ds = analysis.escape_times(red, X, box, 5, seed=7, n_boot=0, backend="numpy")
    assert ds.attrs["seed"] == 7
