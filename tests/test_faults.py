"""Fault injection: kill -9, SIGINT and SIGTERM at random moments during saves and resumable scans.

Every fault runs in a subprocess (the moments are random but seeded, so a failure can be replayed). After each:
the destination holds the old or the new contents, complete (it loads, checksums verified); it is still reached
through its symbolic link and keeps its mode; no temporary file is left (after a kill -9: none after the next save);
an interrupted scan resumes to exactly the uninterrupted result; an edited store is refused. About 20-30 s in all.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr

import analysis
import rds
from rds.regions import Box

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
RNG = np.random.default_rng(20261202)
SHAPE = (1500, 1000)  # 12 MB: a save takes a few tenths of a second


def _datasets():
    old = xr.Dataset({"a": (("x", "y"), np.zeros(SHAPE))}, attrs={"version": "old"})
    new = xr.Dataset({"a": (("x", "y"), np.random.default_rng(1).random(SHAPE))}, attrs={"version": "new"})
    return old, new


SAVER = textwrap.dedent("""
    import sys, time, numpy as np, xarray as xr, rds
    sys.path.insert(0, sys.argv[2])
    from test_faults import _datasets
    old, new = _datasets()
    path = sys.argv[1]
    print("ready", flush=True)
    while True:
        try:
            while True:
                rds.io.save(new, path)
        except KeyboardInterrupt:
            print(f"caught {time.monotonic()!r}", flush=True)
            sys.stdin.readline()  # the test checks the file, then lets us go on
""")


def _setup(tmp_path):
    real, link = tmp_path / "real.nc", tmp_path / "link.nc"
    old, new = _datasets()
    rds.io.save(old, real)
    os.chmod(real, 0o644)
    os.symlink(real, link)
    return real, link, old, new


def _check_target(tmp_path, real, link, old, new, temp_allowed=False):
    deadline = time.monotonic() + 30  # an interrupted save's writer removes its temp file when its call returns
    while not temp_allowed and any(f.endswith(".tmp") for f in os.listdir(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.islink(link) and os.path.realpath(link) == str(real)
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o644
    back = rds.io.load(link)  # verifies the checksums: complete, undamaged
    assert back.attrs["version"] in ("old", "new")
    xr.testing.assert_identical(back, old if back.attrs["version"] == "old" else new)
    temps = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert temp_allowed or not temps, temps
    return back.attrs["version"]


def _start_saver(link, stdin=None):
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(link), os.path.dirname(__file__)], env=ENV,
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_or_terminate_during_save(tmp_path, sig):
    real, link, old, new = _setup(tmp_path)
    proc = _start_saver(link)
    time.sleep(float(RNG.uniform(0.0, 0.8)))
    proc.send_signal(sig)
    proc.wait(timeout=10)
    assert proc.returncode == -sig  # SIGTERM: temp file removed, then the signal's default action
    _check_target(tmp_path, real, link, old, new, temp_allowed=(sig == signal.SIGKILL))
    rds.io.save(old, link)  # the next save removes what a kill -9 left
    assert _check_target(tmp_path, real, link, old, new) == "old"


def test_ctrl_c_during_save_stops_at_once_and_the_process_can_save_again(tmp_path):
    real, link, old, new = _setup(tmp_path)
    proc = _start_saver(link, stdin=subprocess.PIPE)
    try:
        for _ in range(4):
            time.sleep(float(RNG.uniform(0.0, 0.6)))
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            line = proc.stdout.readline().split()
            assert line and line[0] == "caught", "the save did not stop on Ctrl-C"
            assert float(line[1]) - sent < 1.0
            _check_target(tmp_path, real, link, old, new)
            proc.stdin.write("go\n")
            proc.stdin.flush()
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------- resumable scans
GRID = [0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5]
INIT, BOX = Box([0, 0], [2, 2], ("w", "v")), Box([-2, -2], [2, 2], ("w", "v"))
SCAN_KW = dict(members=30, realizations=2, n_boot=20, backend="numpy", progress=False)

SCANNER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import test_faults as tf
    print("ready", flush=True)
    tf._scan(sys.argv[1])
""")


def _make(sigma2):
    return rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=sigma2)


def _scan(store):
    return analysis.escape_time_scan(_make, GRID, INIT, BOX, 1000, store=store,
                                     **SCAN_KW)


@pytest.fixture(scope="module")
def full_scan():
    return _scan(None)


def _mtime(path):
    return os.stat(path).st_mtime_ns if os.path.exists(path) else None


def test_interrupted_scan_resumes_identically(tmp_path, full_scan):
    """A chain: kill -9, then Ctrl-C, then SIGTERM, each at a random moment after a row was stored; then resume."""
    store = tmp_path / "scan.nc"
    for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
        before = _mtime(store)
        proc = subprocess.Popen([sys.executable, "-c", SCANNER, str(store), os.path.dirname(__file__)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while _mtime(store) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until this run stored a row
        time.sleep(float(RNG.uniform(0.0, 0.3)))
        proc.send_signal(sig)
        proc.wait(timeout=10)
        temps = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        assert sig == signal.SIGKILL or not temps, (sig, temps)
        partial = rds.io.load(store)  # complete and undamaged, whatever the moment
        n = partial.sizes["sigma2"]
        xr.testing.assert_equal(partial, full_scan.isel(sigma2=slice(0, n)))
        assert partial.attrs["row_checksums"] == full_scan.attrs["row_checksums"][:n]
    xr.testing.assert_identical(_scan(store), full_scan)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_edited_store_is_refused(tmp_path, full_scan):
    store = tmp_path / "scan.nc"
    part = full_scan.isel(sigma2=[0, 1, 2]).copy()
    part.attrs = dict(part.attrs, row_checksums=full_scan.attrs["row_checksums"][:3])
    rds.io.save(part, store)
    xr.testing.assert_identical(_scan(store), full_scan)  # a genuine partial store resumes
    rds.io.save(part, store)
    edited = rds.io.load(store)
    edited["escape_time"][1, 0, 3] += 1
    rds.io.save(edited, store)
    with pytest.raises(ValueError, match="store.*checksums"):
        _scan(store)
