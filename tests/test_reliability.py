"""Reliability: no silent wrong results, no leaks, errors in the user's terms (one test per case found)."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
import textwrap

import netCDF4
import numpy as np
import pytest
import xarray as xr

import analysis
import rds
from rds.regions import Box

FA = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
RED = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
X = np.full((4, 4), 0.3)
BOX = Box([-2, -2], [2, 2], ("w", "v"))
INIT = Box([0, 0], [2, 2], ("w", "v"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raises(exc, *names):
    """pytest.raises that also checks the message names every one of ``names``."""
    class _Ctx:
        def __enter__(self):
            self.cm = pytest.raises(exc)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a):
            out = self.cm.__exit__(*a)
            for n in names:
                assert n in str(self.info.value), (n, str(self.info.value))
            return out
    return _Ctx()


# ---------------------------------------------------------------------------------------------- A3 times
@pytest.mark.parametrize("call", [
    lambda: FA.trajectory(X, 10, t0=2**63 - 5),
    lambda: FA.evolve(X, 10, t0=2**63 - 5),
    lambda: FA.trajectory(X, 10, t0=-2**63 - 3),
    lambda: FA.propagate_tangent(X, 10, t0=2**63 - 2),
])
def test_times_beyond_int64_are_refused(call):
    with raises(ValueError, "t0"):
        call()


def test_int64_edge_is_still_accepted():
    ds = RED.trajectory(np.full((2, 2), 0.5), 3, t0=2**63 - 4, backend="numpy")
    assert ds.time.values[-1] == 2**63 - 1 and np.all(np.isfinite(ds.state.values))


def test_pullback_start_time_beyond_int64_is_refused():
    with raises(ValueError, "t - taus[-1]"):
        analysis.pullback_attractor(FA, X, taus=[10], t=-2**63 + 3)


@pytest.mark.parametrize("times, exc", [([1.5, 2.7], ValueError), (["a"], TypeError), ([np.nan], ValueError),
                                        ([2**70], ValueError), ([[1, 2], [3]], ValueError), ([True], TypeError)])
def test_times_must_be_integers(times, exc):
    with raises(exc, "times"):
        FA.trajectory(X, 10, times=times)
    with raises(exc, "times"):
        FA.propagate_tangent(X, 10, times=times)


def test_whole_float_times_are_accepted():
    assert FA.trajectory(X, 10, times=[1.0, 3.0]).time.values.tolist() == [1, 3]


@pytest.mark.parametrize("t0, t1, name", [(0.5, 3.5, "t0"), (0, 3.5, "t1"), ("0", 3, "t0")])
def test_noise_path_bounds_must_be_integers(t0, t1, name):
    with raises(TypeError, name):
        FA.noise_path(t0, t1)


# ---------------------------------------------------------------------------------------------- A4 arguments
@pytest.mark.parametrize("tangent", [np.zeros((4, 2)), np.ones((4, 2)), np.zeros((4, 4, 1))])
def test_rank_deficient_tangent_is_refused(tangent):
    with raises(ValueError, "tangent", "rank"):
        FA.propagate_tangent(X, 10, tangent=tangent)


def test_complex_initial_states_are_refused():
    with raises(TypeError, "initial", "complex"):
        FA.evolve(X + 1j, 3)
    with raises(TypeError, "state", "complex"):
        FA.apply(X + 1j, np.array([0.5]))


def test_common_noise_must_be_bool():
    with raises(TypeError, "common_noise"):
        rds.RandomDynamicalSystem(lambda s, x, p: (s[0],), common_noise="no")


def test_variables_as_a_string_is_refused():
    with raises(ValueError, "variables", "string"):
        rds.RandomDynamicalSystem(lambda s, x, p: (s[0],), variables="phi")


def test_box_contains_checks_the_columns():
    with raises(ValueError, "states"):
        BOX.contains(np.zeros((3, 3)), ("w", "v"))
    assert BOX.contains(np.zeros((3, 2)), ("w", "v")).tolist() == [True] * 3


def test_survival_summary_index_lengths():
    with raises(ValueError, "realization"):
        analysis.survival_summary([1, 2, 3], [False] * 3, 5, realization=[0, 1])
    with raises(ValueError, "member"):
        analysis.survival_summary([1, 2, 3], [False] * 3, 5, member=[0, 1, 2, 3])


# ---------------------------------------------------------------------------------------------- A5 checksums
def _tamper(path, values, nbytes=64):
    raw = bytearray(open(path, "rb").read())
    idx = raw.find(values.tobytes())
    assert idx > 0
    raw[idx:idx + nbytes] = b"\x11" * nbytes
    open(path, "wb").write(bytes(raw))


def test_load_detects_overwritten_data(tmp_path):
    a = np.arange(20000.0)
    p = tmp_path / "t.nc"
    rds.io.save(xr.Dataset({"a": ("x", a)}, coords={"x": np.arange(20000)}), p)
    _tamper(p, a[5000:5010])
    with raises(rds.io.InvalidFileError, "t.nc", "'a'", "checksum"):
        rds.io.load(p)
    back = rds.io.load(p, verify=False)  # the opt-out reads it anyway
    assert not np.array_equal(back.a.values, a)


def test_checksums_survive_nan_bool_strings_and_complex(tmp_path):
    nan_neg = -np.array([np.nan])  # a NaN with another payload: netCDF's fill value makes it canonical
    ds = xr.Dataset({"f": ("x", np.array([1.0, nan_neg[0], np.inf])), "b": ("x", [True, False, True]),
                     "s": ("x", ["a", "bb", "c"]), "z": ("x", np.array([1 + 2j, -3j, np.nan]))},
                    coords={"x": ["p", "q", "r"]}, attrs={"l": [5], "arr1": np.array([7]), "d": {"k": np.int64(3)}})
    p = rds.io.save(ds, tmp_path / "c.nc")
    back = rds.io.load(p)
    xr.testing.assert_identical(back, ds.assign_attrs(d={"k": 3}))
    assert back.attrs["l"] == [5] and back.attrs["arr1"].tolist() == [7] and back.attrs["arr1"].dtype == np.int64
    assert rds.io.CHECKSUM_ATTR not in back.attrs


def _scan(store, grid=(0.05, 0.1, 0.2), **kw):
    kw = dict(dict(members=8, n_boot=0, backend="numpy", progress=False), **kw)
    return analysis.escape_time_scan(lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2), list(grid),
                                     INIT, BOX, 50, store=store, **kw)


def _partial(store, edit=None):
    ds = rds.io.load(store).isel(sigma2=[0, 1])  # what a scan interrupted after two rows leaves
    ds.attrs["row_checksums"] = ds.attrs["row_checksums"][:2]
    if edit is not None:
        ds = edit(ds)
    rds.io.save(ds, store)


def test_scan_resume_refuses_edited_rows(tmp_path):
    p = tmp_path / "s.nc"
    full = _scan(p)
    _partial(p)
    xr.testing.assert_identical(_scan(p), full)  # an untouched partial store resumes

    def edit(ds):
        ds["exp_mean"][0] = 1.0
        return ds
    _partial(p, edit)
    with raises(ValueError, "store", "checksum"):
        _scan(p)


def test_scan_resume_refuses_edited_sigma2(tmp_path):
    p = tmp_path / "s.nc"
    _scan(p)
    _partial(p, lambda ds: ds.assign_coords(sigma2=[0.1, 0.05]))
    with raises(ValueError, "store", "sigma2"):
        _scan(p)


def test_scan_resume_refuses_another_backend(tmp_path):
    p = tmp_path / "s.nc"
    full = _scan(p)
    assert full.attrs["scan_settings"]["backend"] == "numpy"
    assert full.backend_used.values.tolist() == ["numpy"] * 3
    _partial(p)
    with raises(ValueError, "store", "backend"):
        _scan(p, backend="numba")


# ---------------------------------------------------------------------------------------------- A6 links and modes
def test_save_through_a_symlink_writes_its_target(tmp_path):
    tgt, link = tmp_path / "real.nc", tmp_path / "link.nc"
    rds.io.save(xr.Dataset({"a": 1.0}), tgt)
    os.symlink(tgt, link)
    assert rds.io.save(xr.Dataset({"a": 2.0}), link) == str(link)
    assert os.path.islink(link) and float(rds.io.load(tgt).a) == 2.0


def test_save_keeps_the_mode_and_new_files_follow_the_umask(tmp_path):
    p = tmp_path / "m.nc"
    old = os.umask(0o027)
    try:
        rds.io.save(xr.Dataset({"a": 1.0}), p)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
        os.chmod(p, 0o644)
        rds.io.save(xr.Dataset({"a": 2.0}), p)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    finally:
        os.umask(old)


# ---------------------------------------------------------------------------------------------- A7 README
def test_readme_states_the_backend_agreement_precisely():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "agree to ~1e-12" not in text
    assert "exp(λt)" in text and "rounding" in text


# ---------------------------------------------------------------------------------------------- B9 temp files
def test_stale_temp_files_are_removed_by_the_next_save(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".rds-{pid}-abcdef.nc.tmp"
    live = tmp_path / f".rds-{os.getppid()}-abcdef.nc.tmp"  # a live process: left alone
    other = tmp_path / "notes.tmp"
    for f in (stale, live, other):
        f.write_bytes(b"x")
    rds.io.save(xr.Dataset({"a": 1.0}), tmp_path / "a.nc")
    assert not stale.exists() and live.exists() and other.exists()


def test_save_error_leaves_no_temp_file(tmp_path):
    with raises(TypeError, "attrs['bad']"):
        rds.io.save(xr.Dataset({"a": 1.0}, attrs={"bad": object()}), tmp_path / "a.nc")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------- B10 sizes
def test_absurd_sizes_are_refused_up_front():
    with raises(ValueError, "t1 - t0", "GB"):
        FA.noise_path(0, 10**12)
    with raises(ValueError, "t1 - t0", "GB"):
        FA.replace(common_noise=False).noise_path(0, 10**10, members=(0, 10**4))
    with raises(ValueError, "every", "GB"):
        FA.trajectory(np.zeros((10**5, 4)), 10**7, every=1)
    with raises(ValueError, "times", "GB"):
        FA.trajectory(np.zeros((10**6, 4)), 10**7, times=np.arange(0, 10**7, 10))


# ---------------------------------------------------------------------------------------------- B11 processes, threads
def test_box_predicates_pickle_to_the_same_function():
    f = BOX.predicate(RED.variables)
    assert pickle.loads(pickle.dumps(f)) is f
    code = (f"import pickle, sys; f = pickle.loads({pickle.dumps(f)!r}); "
            "print(f((0.5, 3.0)), f((0.5, 1.0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert out.stdout.split() == ["False", "True"], out.stderr


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


POOL = textwrap.dedent("""
    import numpy as np, rds, analysis
    from concurrent.futures import ProcessPoolExecutor
    from rds.regions import Box
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    box = Box([-2, -2], [2, 2], ("w", "v"))
    X = analysis.sample_uniform(Box([0, 0], [2, 2], ("w", "v")), 16, red.variables)
    def mk(s2):
        return rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2)
    if __name__ == "__main__":
        kw = dict(backend="numpy", chunk_size=4)
        with ProcessPoolExecutor(2) as ex:
            a = red.first_exit(X, box, 200, executor=ex, **kw)["exit_step"]
            b = analysis.escape_times(red, X, box, 200, n_boot=0, executor=ex, **kw).escape_time.values
            c = analysis.escape_time_scan(mk, [0.05, 0.1], X, box, 200, n_boot=0, executor=ex, progress=False,
                                          **kw).escape_time.values
        assert np.array_equal(a, red.first_exit(X, box, 200, **kw)["exit_step"])
        assert np.array_equal(b, analysis.escape_times(red, X, box, 200, n_boot=0, **kw).escape_time.values)
        assert np.array_equal(c, analysis.escape_time_scan(mk, [0.05, 0.1], X, box, 200, n_boot=0, progress=False,
                                                           **kw).escape_time.values)
        print("OK")
""")


def test_process_pool_runs_first_exit_escape_times_and_scans(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=300)
    assert out.stdout.strip() == "OK", out.stderr[-2000:]


THREADS = textwrap.dedent("""
    import threading, numpy as np, rds
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    X = np.full((3000, 2), 0.5)
    out = []
    ts = [threading.Thread(target=lambda: out.append(red.evolve(X, 200, backend="numba"))) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(out) == 4 and all(np.array_equal(o, out[0]) for o in out)
    print("OK")
""")


@pytest.mark.slow
def test_threads_under_the_workqueue_layer_do_not_abort():
    out = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True,
                         env=_env(NUMBA_THREADING_LAYER="workqueue"), timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr[-2000:]


CLOSED = textwrap.dedent("""
    import os, numpy as np, rds, analysis
    from rds.regions import Box
    os.close(2)
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    red.evolve(np.full((3, 2), 0.5), 10, progress=True, backend="numpy")
    mk = lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2)  # noqa: E731
    analysis.escape_time_scan(mk, [0.05], Box([0, 0], [2, 2], ("w", "v")),
                              Box([-2, -2], [2, 2], ("w", "v")), 20, members=4, n_boot=0, backend="numpy",
                              progress=True)
    print("OK")
""")


def test_progress_bar_with_a_closed_stderr_does_not_raise():
    out = subprocess.run([sys.executable, "-c", CLOSED], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.stdout.strip() == "OK"


def test_scan_progress_defaults_to_auto():
    import inspect
    assert inspect.signature(analysis.escape_time_scan).parameters["progress"].default is None
    with raises(TypeError, "progress"):
        RED.evolve(np.full((2, 2), 0.5), 3, progress="yes")


# ---------------------------------------------------------------------------------------------- C13 messages
@pytest.mark.parametrize("call, exc, names", [
    (lambda: FA.evolve(np.zeros((0, 4)), 3), ValueError, ["initial", "no members"]),
    (lambda: FA.evolve([[0.1, 0.2, 0.3, 0.4], [0.1]], 3), ValueError, ["initial", "ragged"]),
    (lambda: FA.evolve([["a"] * 4], 3), TypeError, ["initial"]),
    (lambda: Box(["a"], [1], ("x",)), TypeError, ["low"]),
    (lambda: Box([0], [1j], ("x",)), TypeError, ["high"]),
    (lambda: rds.symmetry.swap([1.0, 4.0, 2.0, -1.0], 0, 5), ValueError, ["j", "range(2)"]),
    (lambda: rds.symmetry.swap([1.0, 4.0, 2.0, -1.0], -1, 1), ValueError, ["i"]),
    (lambda: rds.symmetry.flip([1.0, 4.0, 2.0, -1.0], 7), ValueError, ["j"]),
    (lambda: rds.symmetry.flip([1.0, 4.0, 2.0, -1.0], 0.5), TypeError, ["j"]),
    (lambda: rds.symmetry.distance_modulo_symmetry(np.zeros(4), np.zeros(6)), ValueError, ["a", "b"]),
    (lambda: rds.symmetry.distance_modulo_symmetry(np.zeros((3, 4)), np.zeros((2, 4))), ValueError, ["b"]),
    (lambda: analysis.mu_eigenvalues(np.zeros(3), np.zeros(2), 0.5), ValueError, ["x", "w", "v"]),
    (lambda: analysis.survival_summary([1, np.nan], [False, False], 5), ValueError, ["T"]),
    (lambda: analysis.count_unstable(np.zeros((3, 4))), ValueError, ["hessian"]),
    (lambda: analysis.sample_uniform(INIT, 3, ("w", "v"), seed=-1), ValueError, ["seed"]),
    (lambda: analysis.sample_uniform(INIT, 3, ("w", "v"), seed=1.5), TypeError, ["seed"]),
])
def test_errors_name_the_argument(call, exc, names):
    with raises(exc, *names):
        call()


def test_distance_modulo_symmetry_of_a_batch_against_one_point():
    a = np.random.default_rng(0).normal(size=(5, 4))
    d = rds.symmetry.distance_modulo_symmetry(a, rds.models.OPTIMA[0])
    expect = [rds.symmetry.distance_modulo_symmetry(a[i], rds.models.OPTIMA[0]) for i in range(5)]
    assert d.shape == (5,) and np.allclose(d, expect)


# ---------------------------------------------------------------------------------------------- C14 I/O
def test_save_paths_are_checked(tmp_path):
    for bad in ("", str(tmp_path), str(tmp_path / "x") + os.sep):
        with raises(ValueError, "path"):
            rds.io.save(xr.Dataset({"a": 1.0}), bad)
    assert os.listdir(tmp_path) == []


def test_complex_variables_round_trip_exactly(tmp_path):
    ds = xr.Dataset({"z": ("x", np.array([1 + 2j, 3 - 1e-300j, -0.0 + np.inf * 1j]))})
    xr.testing.assert_identical(rds.io.load(rds.io.save(ds, tmp_path / "z.nc")), ds)


def _bad_file(path, kind):
    if kind == "truncated":
        rds.io.save(xr.Dataset({"a": ("x", np.arange(5000.0))}), path)
        raw = open(path, "rb").read()
        open(path, "wb").write(raw[: len(raw) // 2])
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "garbage":
        open(path, "wb").write(np.random.default_rng(0).bytes(4096))
    elif kind in ("json", "deep"):
        rds.io.save(xr.Dataset({"a": 1.0}), path)
        with netCDF4.Dataset(path, "a") as nc:
            nc.setncattr("cfg", "json:{bad" if kind == "json" else "json:" + "[" * 100000 + "]" * 100000)


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "garbage", "json", "deep"])
def test_load_errors_name_the_file_and_the_problem(tmp_path, kind):
    p = tmp_path / f"bad_{kind}.nc"
    _bad_file(p, kind)
    exc = FileNotFoundError if kind == "missing" else rds.io.InvalidFileError
    with raises(exc, f"bad_{kind}.nc"):
        rds.io.load(p)
    if kind in ("json", "deep"):
        with raises(exc, "cfg"):
            rds.io.load(p)


def test_invalid_file_error_is_both_value_and_os_error():
    assert issubclass(rds.io.InvalidFileError, ValueError) and issubclass(rds.io.InvalidFileError, OSError)


# ---------------------------------------------------------------------------------------------- C15 CLIs
@pytest.mark.parametrize("script, args", [("custom_map.py", ["--members", "-5"]),
                                          ("custom_map.py", ["--steps", "0"]),
                                          ("pullback_attractors.py", ["--realizations", "0"]),
                                          ("pullback_attractors.py", ["--members", "0"])])
def test_example_clis_refuse_non_positive_counts(script, args):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args], capture_output=True,
                         text=True, env=_env(), timeout=120)
    assert out.returncode == 2 and "must be a positive integer" in out.stderr, out.stderr[-1000:]
