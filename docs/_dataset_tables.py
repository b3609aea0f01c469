"""Tables of the variables of each analysis' Dataset, made from tiny runs when the docs are built.

``write_tables(folder)`` writes ``<folder>/<name>.rst`` (one list-table per Dataset: name, dims, dtype, long_name,
units), included by the pages under ``docs/analyses/``. The runs are the library's own functions at tiny sizes
(NumPy backend, a few seconds in all), so the tables always match the code.
"""

from __future__ import annotations

import os

import numpy as np


def tiny_datasets():
    """``{name: Dataset}`` from tiny runs of every analysis (and ``trajectory``)."""
    import analysis
    import rds

    out = {}
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    box = rds.regions.Box([-1.0] * 4, [1.0] * 4, variables=fa.variables)
    out["trajectory"] = fa.trajectory(np.zeros((2, 4)) + 0.1, 20, every=10, backend="numpy")
    pb = analysis.pullback_attractor(fa, box, taus=[0, 10], members=20, backend="numpy")
    out["pullback_attractor"] = pb
    out["pullback_diagnostics"] = analysis.pullback_diagnostics(pb)
    henon = rds.RandomDynamicalSystem(lambda s, xi, p: (1.0 - 1.4 * s[0] * s[0] + s[1] + xi[0], 0.3 * s[0]),
                                      noise=rds.noise.Gaussian(1e-8), variables=("x", "y"), name="henon")
    out["lyapunov_spectrum"] = analysis.lyapunov_spectrum(henon, np.full((2, 2), 0.05), 300, transient=50,
                                                          num_history=5, backend="numpy")
    out["transverse_exponents"] = analysis.transverse_exponents(
        lambda s2: rds.models.fukumizu_amari(eta=0.1, sigma2=s2), [0.1, 1.0], np.array([[0.5, 0.5]]), 300,
        transient=50, num_history=5, backend="numpy")
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    init = rds.regions.Box([0.0, 0.0], [2.0, 2.0], ("w", "v"))
    region = rds.regions.Box([-2.0, -2.0], [2.0, 2.0], ("w", "v"))
    out["escape_times"] = analysis.escape_times(red, init, region, 500, members=8, n_boot=20, backend="numpy")
    out["escape_time_scan"] = analysis.escape_time_scan(
        lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2), [0.05, 0.3], init, region, 500,
        members=8, n_boot=20, backend="numpy", progress=False)
    out["multilevel_splitting"] = analysis.multilevel_splitting(
        red, init, lambda X: np.max(np.abs(X), axis=-1) / 2, target=1.0, n_clones=6, n_kill=2, horizon=100,
        backend="numpy")
    grid = np.linspace(0.1, 2.0, 5)
    out["degenerate_stability"] = analysis.degenerate_stability([0.1, 1.0], grid, grid, x=np.linspace(-3, 3, 11))
    x, y = analysis.make_dataset(20, noise_std=0.2, seed=0)
    gd = rds.models.teacher_student(x, y, hidden=2, eta=0.01)
    out["learning_curves"] = analysis.learning_curves(gd, np.array([-0.13, 0.13, 0.16, -0.15]), 200, num=10,
                                                      backend="numpy")
    scm = rds.models.soft_committee(inputs=2, hidden=2)
    out["loss_curves"] = analysis.loss_curves(scm, np.full((2, scm.nvar), 0.1), 50, num=5, backend="numpy")
    rng = np.random.default_rng(249)
    X = rng.normal(size=(10, 2))
    Y = np.tanh(X @ (1.5 * rng.normal(size=(2, 2))).T) @ rng.normal(size=2)
    W, v = analysis.find_local_minimum(X, Y, hidden=1, seed=0)
    out["plateau_map"] = analysis.plateau_map(W, v, X, Y, 0, daughters=2, grid=np.linspace(-1, 2, 7))
    return out


def _cell(text):
    """Plain text for a table cell: one line, reST markup characters escaped."""
    text = " ".join(str(text).split())
    for ch in "\\|*`_":
        text = text.replace(ch, "\\" + ch)
    return text or "—"


def table(ds, title=None):
    """An RST list-table of the coordinates and data variables of ``ds``."""
    lines = [f".. list-table:: {title or ''}".rstrip(), "   :header-rows: 1", "   :widths: 18 8 22 10 30 12", "",
             "   * - name", "     - kind", "     - dims", "     - dtype", "     - long_name", "     - units"]
    for kind, group in (("coord", ds.coords), ("data", ds.data_vars)):
        for name, var in group.items():
            dims = ", ".join(map(str, var.dims)) or "(scalar)"
            lines += [f"   * - ``{name}``", f"     - {kind}", f"     - {dims}", f"     - {var.dtype}",
                      f"     - {_cell(var.attrs.get('long_name', ''))}", f"     - {_cell(var.attrs.get('units', ''))}"]
    return "\n".join(lines) + "\n"


def write_tables(folder):
    os.makedirs(folder, exist_ok=True)
    for name, ds in tiny_datasets().items():
        text = table(ds) + "\n"
        path = os.path.join(folder, f"{name}.rst")
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as f:
                f.write(text)
