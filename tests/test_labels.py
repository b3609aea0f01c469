"""Self-describing Datasets: every variable and coordinate that an analysis, ``trajectory`` or an example writes
carries ``long_name`` and, where it has one, ``units`` (:mod:`rds.labels`).

The Datasets are collected from tiny runs: the examples' own functions with their scales shrunk (every netCDF
file they write is read back) and one tiny run of every analysis (the runs that also make the
variable tables of the documentation).
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest
import xarray as xr

import rds
from rds import labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
DOCS = os.path.join(ROOT, "docs")


def _example(name, monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    if name in sys.modules:
        del sys.modules[name]
    return importlib.import_module(name)


def _tiny_example_runs(folder, mp):
    """Run every example's own functions at a tiny scale, each writing into ``folder/<example>/``."""

    def out_for(name):
        path = os.path.join(folder, name)
        os.makedirs(path, exist_ok=True)
        return path

    out = out_for("custom_map")
    _example("custom_map", mp).main(["--out", out, "--members", "32", "--steps", "200"])

    out = out_for("pullback_attractors")
    _example("pullback_attractors", mp).run(out_dir=out, members=16, taus=(10, 100), sigma2=(1.0,),
                                            backend="numpy", realizations=2, realization_members=8, verbose=False)

    out = out_for("transverse_exponents")
    ex = _example("transverse_exponents", mp)
    mp.setitem(ex.SCALES, "small", dict(num=2, steps=400, transient=100, realizations=2))
    mp.setattr(ex, "STARTS", ex.STARTS[:1])
    ex.run(out_dir=out)

    out = out_for("escape_time_scan")
    ex = _example("escape_time_scan", mp)
    mp.setattr(ex, "SIGMA2", np.array([0.05, 0.3]))
    mp.setitem(ex.SCALES, "small", {"members": 8, "realizations": 2, "max_steps": 300, "n_boot": 20,
                                    "keep_members": True, "n_clones": 6, "n_kill": 2, "repeats": 2,
                                    "split_sigma2": np.array([0.01])})
    ex.run(out_dir=out, backend="numpy", verbose=False)

    out = out_for("fig3_stability")
    _example("fig3_stability", mp).run_fig3(out_dir=out, scale=0.05)

    out = out_for("phase_oscillator_synchronisation")
    ex = _example("phase_oscillator_synchronisation", mp)
    mp.setitem(ex.SCALES, "small", dict(steps=2000, realizations=2, members=2))
    ex.run(out_dir=out)

    out = out_for("overfitting_scenario")
    ex = _example("overfitting_scenario", mp)
    mp.setitem(ex.SCALES, "small", {**ex.SCALES["small"], "steps": 300, "starts": 2, "start_steps": 300})
    ex.run(out_dir=out, steps=300, num=10)

    out = out_for("plateau_splitting")
    _example("plateau_splitting", mp).main(["--out", out, "--grid2", "5", "--grid3", "3"])

    out = out_for("sgd_stability")
    _example("sgd_stability", mp).main(["--out", out, "--scale", "tiny"])

    out = out_for("noise_induced_degeneration")
    _example("noise_induced_degeneration", mp).run_trajectories(out)


def collect_datasets(folder):
    """``{"<example or analysis>:<name>": Dataset}``: what the examples save, and a tiny run of every analysis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mp = pytest.MonkeyPatch()
    captured: dict[str, xr.Dataset] = {}
    run = rds.RandomDynamicalSystem._run

    def numpy_run(self, X2, t0, steps, seed, realization, backend, *args, **kwargs):
        return run(self, X2, t0, steps, seed, realization, "numpy", *args, **kwargs)  # no compilation

    mp.setattr(rds.RandomDynamicalSystem, "_run", numpy_run)
    try:
        _tiny_example_runs(str(folder), mp)
        for name in sorted(os.listdir(folder)):  # every netCDF file the examples wrote, as written
            for fn in sorted(os.listdir(os.path.join(folder, name))):
                if fn.endswith(".nc"):
                    captured[f"{name}:{fn}"] = rds.io.load(os.path.join(folder, name, fn))
        sys.path.insert(0, DOCS)
        try:
            from _dataset_tables import tiny_datasets
        finally:
            sys.path.remove(DOCS)
        for name, ds in tiny_datasets().items():
            captured[f"analysis:{name}"] = ds
    finally:
        mp.undo()
        plt.close("all")
    return captured


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return collect_datasets(tmp_path_factory.mktemp("label_runs"))


def _variables(datasets):
    for label, ds in datasets.items():
        for name, var in ds.variables.items():
            yield label, name, var


def counts(datasets):
    """(all, with long_name, with units) over every variable and coordinate of every Dataset."""
    rows = list(_variables(datasets))
    return (len(rows), sum("long_name" in v.attrs for _, _, v in rows), sum("units" in v.attrs for _, _, v in rows))


def test_examples_and_analyses_were_collected(datasets):
    examples = {label.split(":")[0] for label in datasets}
    assert {"custom_map", "pullback_attractors", "transverse_exponents", "escape_time_scan", "fig3_stability",
            "phase_oscillator_synchronisation", "overfitting_scenario", "plateau_splitting",
            "sgd_stability", "noise_induced_degeneration", "analysis"} <= examples, examples


def test_every_variable_has_a_long_name(datasets):
    total, with_long, with_units = counts(datasets)
    print(f"\nlabels: {total} variables and coordinates; {with_long} with long_name, {with_units} with units")
    missing = sorted({f"{name} ({label})" for label, name, v in _variables(datasets) if not v.attrs.get("long_name")})
    assert not missing, f"{len(missing)} without long_name: {missing[:40]}"


def test_every_quantity_has_units(datasets):
    """Every float variable is a quantity: it carries units ("1" when dimensionless); and a name the central table
    gives units carries them (an analysis' own, more specific units are kept)."""
    without = sorted({f"{name} ({label})" for label, name, v in _variables(datasets)
                      if "units" not in v.attrs and np.issubdtype(v.dtype, np.floating)})
    assert not without, f"{len(without)} float variables without units: {without[:40]}"
    table = sorted({f"{name} ({label})" for label, name, v in _variables(datasets)
                    if labels.units_of(name) is not None and "units" not in v.attrs})
    assert not table, f"{len(table)} variables without the table's units: {table[:40]}"


def test_annotate_fills_but_never_overwrites():
    ds = xr.Dataset({"escape_time": ("member", [1, 2]), "exponents": ("exponent", [0.1, -0.2]),
                     "unknown_thing": ("member", [0.0, 1.0])}, coords={"member": [0, 1]}, attrs={"dt": 0.01})
    ds.escape_time.attrs.update(long_name="my escape time", units="s")
    labels.annotate(ds)
    assert ds.escape_time.attrs == {"long_name": "my escape time", "units": "s"}
    assert ds.exponents.attrs == {"long_name": "Lyapunov exponents", "units": "1/time"}
    assert ds.member.attrs == {"long_name": "ensemble member"}
    assert ds.unknown_thing.attrs == {}
    with pytest.raises(TypeError, match="ds must be"):
        labels.annotate({"a": 1})


def test_labels_survive_netcdf(datasets, tmp_path):
    ds = datasets["analysis:escape_times"]
    back = rds.io.load(rds.io.save(ds, tmp_path / "e.nc"))
    for name in ds.variables:
        assert back[name].attrs.get("long_name") == ds[name].attrs.get("long_name")
        assert back[name].attrs.get("units") == ds[name].attrs.get("units")


def test_version_in_one_place_and_citation_agrees():
    """pyproject reads the version from rds.__version__; CITATION.cff must name the same one."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    assert 'dynamic = ["version"]' in text and 'version = {attr = "rds._version.__version__"}' in text
    with open(os.path.join(ROOT, "CITATION.cff")) as f:
        cff = f.read()
    assert f"\nversion: {rds.__version__}\n" in cff, "CITATION.cff version differs from rds.__version__"


def test_python_m_rds_reports_version_backends_and_cache(capsys):
    from rds.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert f"rds {rds.__version__}" in out and "backends available: numpy" in out and "kernel cache:" in out
    assert main(["--bogus"]) == 2
