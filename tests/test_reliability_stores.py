"""Reliability of stores and files, process pools, sizes and the first-exit cost (reproducers, one test each)."""

from __future__ import annotations

import numpy as np
import pytest

import rds
from rds.noise import Gaussian, GaussianInputs


# ------------------------------------------------------------------------------------------------ C8: first exit
class _CountingGaussian(Gaussian):
    """Gaussian inputs that count the samples drawn (to see the members whose noise is generated)."""

    drawn = 0

    def _draw(self, rng, size):
        type(self).drawn += int(np.prod(size))
        return super()._draw(rng, size)


def _walk(s, xi, p):
    return (s[0] + xi[0],)


def _heavy_tail_case(members=256):
    """A random walk one σ from the edge of (-1, 1): most members leave at once, a few after thousands of steps."""
    system = rds.RandomDynamicalSystem(_walk, noise=_CountingGaussian(sigma2=1e-3), variables=("x",),
                                       common_noise=False)
    return system, rds.regions.Box([-1.0], [1.0], variables=("x",)), np.full((members, 1), 0.97)


def test_first_exit_retires_finished_members():
    """Noise is generated for the members still inside only (group granularity): the cost follows the sum of the
    exit times, not members × the slowest exit."""
    system, box, X = _heavy_tail_case(members=640)
    _CountingGaussian.drawn = 0
    out = system.first_exit(X, box, 20_000, seed=3, backend="numpy", progress=False)
    es = out["exit_step"]
    assert (es > 0).all()
    slowest_blocks = -(-int(es.max()) // rds.noise.NOISE_BLOCK)
    full_cost = X.shape[0] * slowest_blocks * rds.noise.NOISE_BLOCK
    assert slowest_blocks >= 4  # heavy tail: the case is one where retiring matters
    B, G = rds.noise.NOISE_BLOCK, rds.noise.MEMBER_GROUP
    needed = sum(np.unique(np.flatnonzero(es > b * B) // G).size * G * B for b in range(slowest_blocks))
    assert _CountingGaussian.drawn == needed  # each block: the generator groups that hold a live member
    assert needed < 0.6 * full_cost


def _step2(s, xi, p):
    x, y = s
    return (x + 1e-4 * np.sin(3.0 * y) + xi[0], y + 1e-4 * np.tanh(x) * np.exp(-y * y) + xi[1])


def _step2_light(s, xi, p):  # (quick to compile)
    x, y = s
    return (x + 1e-4 * np.exp(-y * y) + xi[0], y + 1e-4 * x + xi[1])


def _elementwise_case(backend):
    step = _step2_light if backend == "numba" else _step2
    system = rds.RandomDynamicalSystem(step, noise=Gaussian(sigma2=1e-4, batch=2), variables=("x", "y"),
                                       common_noise=False)
    X = np.random.default_rng(5).uniform(-0.995, 0.995, (300, 2))
    return system, rds.regions.Box([-1.0, -1.0], [1.0, 1.0], variables=("x", "y")), X


def _backends():
    out = ["numpy", "numba"]
    if rds.backends.available("jax"):
        out.append("jax")
    return out


@pytest.mark.parametrize("backend, common", [(b, False) for b in _backends()] + [("numpy", True)])
def test_first_exit_retire_bitwise(monkeypatch, backend, common):
    """Retiring finished members changes no bit of the exit steps or states (a fixed seed, every backend)."""
    system, box, X = _elementwise_case(backend)
    if common:
        system = system.replace(common_noise=True)
    runs = {}
    for retire in (False, True):
        monkeypatch.setattr(rds.engine, "RETIRE", retire)
        runs[retire] = system.first_exit(X, box, 3000, seed=7, backend=backend, progress=False,
                                         chunk_size=200)
    es = runs[True]["exit_step"]
    assert 0 < (es > 0).sum() < es.size and es.max() > 2 * rds.noise.NOISE_BLOCK  # members retire over blocks
    np.testing.assert_array_equal(runs[True]["exit_step"], runs[False]["exit_step"])
    assert runs[True]["state"].tobytes() == runs[False]["state"].tobytes()


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_first_exit_retire_bitwise_vector(monkeypatch, backend):
    if backend == "jax":
        pytest.importorskip("jax")

    def step(theta, xi, params):
        return theta - 2e-4 * np.tanh(xi @ theta) @ xi / xi.shape[0] + 0.02 * xi[0]
    D = 3
    system = rds.RandomDynamicalSystem(step, noise=GaussianInputs(1.0, batch=2, dim=D), form="vector", dim=D,
                                       common_noise=False)

    def inside(theta):
        return np.sum(theta * theta) < 1.0
    X = np.random.default_rng(1).uniform(-0.6, 0.6, (70 if backend == "jax" else 20, D))
    runs = {}
    for retire in (False, True):
        monkeypatch.setattr(rds.engine, "RETIRE", retire)
        runs[retire] = system.first_exit(X, inside, 2500 if backend == "jax" else 1500, seed=2, backend=backend,
                                         progress=False)
    es = runs[True]["exit_step"]
    assert (es > 0).sum() > 5 and (es < 0).sum() + (es > rds.noise.NOISE_BLOCK).sum() > 0
    np.testing.assert_array_equal(runs[True]["exit_step"], runs[False]["exit_step"])
    assert runs[True]["state"].tobytes() == runs[False]["state"].tobytes()


# ------------------------------------------------------------------------------------------------ A4: stores, files
import json  # noqa: E402

import xarray as xr  # noqa: E402

import analysis  # noqa: E402
from rds.regions import Box  # noqa: E402

netCDF4 = pytest.importorskip("netCDF4")


def _saved(tmp_path):
    ds = xr.Dataset({"a": ("x", np.arange(4.0), {"units": "m"})}, coords={"x": np.arange(4)},
                    attrs={"seed": 3, "model": "fa"})
    p = tmp_path / "f.nc"
    rds.io.save(ds, p)
    return ds, p


def _edit(p, fn):
    with netCDF4.Dataset(p, "a") as nc:
        fn(nc)


@pytest.mark.parametrize("edit, what", [
    (lambda nc: nc.setncattr("seed", 4), "attrs"),
    (lambda nc: nc.variables["a"].setncattr("units", "km"), "'a'"),
    (lambda nc: nc.createVariable("extra", "f8", ("x",)).__setitem__(slice(None), np.ones(4)), "'extra'"),
])
def test_load_refuses_edited_attrs_and_added_variables(tmp_path, edit, what):
    ds, p = _saved(tmp_path)
    xr.testing.assert_identical(rds.io.load(p), ds)
    _edit(p, edit)
    with pytest.raises(rds.io.InvalidFileError, match=what):
        rds.io.load(p)
    rds.io.load(p, verify=False)  # the opt-out reads it


@pytest.mark.parametrize("table", [None, '{"sha256": {}}'])
def test_load_says_missing_or_empty_table_is_unverified(tmp_path, table):
    ds, p = _saved(tmp_path)

    def edit(nc):
        if table is None:
            nc.delncattr(rds.io.CHECKSUM_ATTR)
        else:
            nc.setncattr(rds.io.CHECKSUM_ATTR, "json:" + table)
        nc.setncattr("seed", 4)
    _edit(p, edit)
    with pytest.warns(rds.io.UnverifiedWarning, match="unverified"):
        back = rds.io.load(p)
    assert back.attrs["seed"] == 4


def test_hand_recomputed_table_is_accepted(tmp_path):
    """Documented limit: checksums detect accidents, not forgery."""
    ds, p = _saved(tmp_path)
    edited = ds.assign_attrs(seed=4)
    _edit(p, lambda nc: (nc.setncattr("seed", 4),
                         nc.setncattr(rds.io.CHECKSUM_ATTR, "json:" + json.dumps(rds.io._table(edited)))))
    assert rds.io.load(p).attrs["seed"] == 4


@pytest.mark.parametrize("where", ["dataset", "variable"])
def test_save_refuses_the_reserved_coordinates_attr(tmp_path, where):
    """netCDF readers take an attr named ``coordinates`` as the coordinate list and drop it: refused at save (it
    used to come back missing, and the checksum then called the file damaged)."""
    ds = xr.Dataset({"a": ("x", np.arange(3.0))})
    if where == "dataset":
        ds.attrs["coordinates"] = "p, q, r, s"
    else:
        ds["a"].attrs["coordinates"] = "p, q, r, s"
    with pytest.raises(ValueError, match="coordinates"):
        rds.io.save(ds, tmp_path / "a.nc")
    assert not list(tmp_path.iterdir())


def test_pqrs_system_attrs_survive_a_round_trip(tmp_path):
    system = rds.models.pqrs_system(rds.models.fukumizu_amari(eta=0.1, sigma2=0.5))
    ds = system.trajectory(np.array([[0.5, 0.5, 0.0, 0.0]]), 3, backend="numpy")
    back = rds.io.load(rds.io.save(ds, tmp_path / "t.nc"))
    assert back.attrs == ds.attrs


def _scan(store, grid=(0.05, 0.1, 0.2)):
    return analysis.escape_time_scan(lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2), list(grid),
                                     Box([0.5, 0.5], [1.5, 1.5], ("w", "v")), Box([-2, -2], [2, 2], ("w", "v")), 40,
                                     members=6, n_boot=0, backend="numpy", progress=False, store=store)


def _interrupted(store, edit):
    ds = rds.io.load(store).isel(sigma2=[0, 1])  # what a scan interrupted after two rows leaves
    ds.attrs["row_checksums"] = ds.attrs["row_checksums"][:2]
    rds.io.save(edit(ds), store)  # edited and saved again (the file's own checksums are then valid)


@pytest.mark.parametrize("edit", [
    lambda ds: ds.assign_coords(t=ds["t"].values + 1),
    lambda ds: ds.assign(initial=ds["initial"] * 0 + 0.7),
    lambda ds: ds.assign_attrs(protocol="edited"),
    lambda ds: ds.assign(extra=("member", np.zeros(ds.sizes["member"]))),
], ids=["t", "initial", "attr", "added"])
def test_scan_resume_refuses_edits_without_sigma2(tmp_path, edit):
    p = tmp_path / "s.nc"
    full = _scan(p)
    _interrupted(p, lambda ds: ds)
    xr.testing.assert_identical(_scan(p), full)  # an untouched interrupted store resumes
    _interrupted(p, edit)
    with pytest.raises(ValueError, match="store.*checksum"):
        _scan(p)


# ------------------------------------------------------------------------------------------------ B6: sizes
def _fa():
    return rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)


def _big_vector(D):
    def step(theta, xi, params):
        return 0.99 * theta + 0.01 * xi[0, 0]
    return rds.RandomDynamicalSystem(step, noise=GaussianInputs(1.0, 1, 1), form="vector", dim=D)


@pytest.mark.parametrize("call, names", [
    (lambda: analysis.lyapunov_spectrum(_fa(), np.full(4, 0.5), 10**9, num_history=10**9, backend="numpy"),
     "num_history"),
    (lambda: analysis.lyapunov_spectrum(_fa(), np.full(4, 0.5), 10, realizations=10**9, backend="numpy"),
     "realizations"),
    (lambda: analysis.lyapunov_spectrum(_big_vector(10**5), np.zeros((4, 10**5)), 10, backend="numpy"), "k"),
    (lambda: _big_vector(10**5).propagate_tangent(np.zeros((4, 10**5)), 10, backend="numpy"), "k"),
    (lambda: analysis.escape_times(rds.models.fukumizu_amari_reduced(), np.full((50, 2), 0.5),
                                   Box([-2, -2], [2, 2], ("w", "v")), 20, n_boot=10**12, backend="numpy"), "n_boot"),
    (lambda: rds.models.soft_committee(inputs=10**8, hidden=1), "inputs=100000000"),
    (lambda: rds.models.dataset_sgd(np.zeros((10, 3)), np.zeros(10), hidden=10**8), "hidden=100000000"),
    (lambda: _big_vector(10**10), "dim=10000000000"),
    (lambda: _big_vector(10**5).jacobian_matrix(np.zeros(10**5), np.zeros((1, 1)), backend="numpy"),
     "jacobian_matrix"),
], ids=["num_history", "realizations", "k_None", "tangent_None", "n_boot", "soft_committee", "dataset_sgd", "dim",
        "jacobian_matrix"])
def test_sizes_are_checked_before_allocating(call, names):
    with pytest.raises(ValueError, match=f"{names}.*GB"):
        call()


def test_log_times_many_points_does_not_allocate_them():
    from rds.timegrid import log_times
    assert log_times(1000, 10**12).tolist() == list(range(1, 1001))  # the same as with a few thousand points
    assert log_times(1000, 14000).tolist() == list(range(1, 1001))


def test_load_refuses_a_small_file_declaring_a_huge_variable(tmp_path):
    p = tmp_path / "huge.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("n", 2 * 10**10)
        nc.createVariable("big", "f8", ("n",), chunksizes=(1024,))  # nothing written: a few KB on disk
    assert p.stat().st_size < 100_000
    with pytest.raises(rds.io.InvalidFileError, match="'big'.*GB"):
        rds.io.load(p)


# ------------------------------------------------------------------------------------------------ B7: attrs
@pytest.mark.parametrize("dtype, what", [("U500000000", "not a bool, integer or float"),
                                         ("V8", "not a bool, integer or float"),
                                         ("nonsense", "not a NumPy dtype")])
def test_tagged_array_attr_with_odd_dtype(dtype, what):
    enc = {"a": "json:" + json.dumps({"__rds_ndarray__": [1], "dtype": dtype})}
    with pytest.raises(ValueError, match=f"attrs\\['a'\\]: .*{what}") as e:
        rds.io.decode_attrs(enc)
    assert "JSON" not in str(e.value)


def test_bad_json_attr_on_a_variable_is_named(tmp_path):
    ds, p = _saved(tmp_path)
    _edit(p, lambda nc: nc.variables["a"].setncattr("cfg", "json:{oops"))
    with pytest.raises(rds.io.InvalidFileError, match="variable 'a'.*attrs\\['cfg'\\].*not valid JSON"):
        rds.io.load(p)


# ------------------------------------------------------------------------------------------------ B5: process pools
FORKED_POOL = """
import multiprocessing, sys
import numpy as np, rds
from concurrent.futures import ProcessPoolExecutor
if __name__ == "__main__":
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X = np.full((8, 4), 0.5)
    ref = fa.evolve(X, 20, backend="jax")  # JAX starts its thread pools
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:
        try:
            fa.evolve(X, 20, backend="numpy", executor=ex, chunk_size=4)
            print("ran")
        except ValueError as e:
            print("refused:", e)
"""


def test_forking_pool_after_jax_is_refused_with_the_fix(tmp_path):
    """(A spawning pool runs: tests/test_engine_scale.py.)"""
    pytest.importorskip("jax")
    import os
    import subprocess
    import sys
    script = tmp_path / "pool.py"
    script.write_text(FORKED_POOL)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the forked pool hung (deadlock) instead of being refused")
    assert "refused: executor:" in out.stdout and "spawn" in out.stdout and "JAX" in out.stdout, out.stderr[-2000:]
