"""The persistent kernel cache: compiled kernels are reused by later processes, recompiled when the map changes,
safe under concurrent compilation, and a missing or read-only cache folder degrades to in-memory compilation."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rds
from rds import _kernel_cache
from rds._identity import Unidentifiable, identity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import rds

    def user_map(state, xi, params):
        (x,) = state
        return (params[0] * x * (1.0 - x) + COEF * np.sin(x) + xi[0],)

    box = rds.regions.Box([-5.0], [5.0], variables=("x",))
    system = rds.RandomDynamicalSystem(user_map, noise=rds.noise.Gaussian(1e-4), variables=("x",), params=(2.9,))
    X = np.linspace(0.2, 0.8, 7)[:, None]
    kern = rds.backends.kernels_for(system, "numba")
    before = kern.status("evolve")
    t = time.perf_counter()
    out = system.evolve(X, 50, seed=1, backend="numba")
    seconds = time.perf_counter() - t
    ex = system.first_exit(X, box, 30, seed=1, backend="numba")["state"].ravel().tolist() if sys.argv[1:] else None
    print(json.dumps({"before": before, "seconds": seconds, "out": out.ravel().tolist(),
                      "exit": ex, "uncacheable": kern.uncacheable,
                      "after": kern.status("evolve")}))
""")


def _script(tmp_path, coef):
    path = tmp_path / f"user_script_{coef.replace('.', '_')}.py"
    path.write_text(SCRIPT.replace("COEF", coef))
    return str(path)


def _start(script, cache, *args):
    env = dict(os.environ, RDS_CACHE_DIR=str(cache), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _result(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _numba_files(cache):
    pyc = cache / "__pycache__"
    return {p.name: p.stat().st_mtime_ns for p in pyc.iterdir()} if pyc.exists() else {}


def test_second_process_reuses_kernels_and_changed_map_recompiles(tmp_path):
    cache = tmp_path / "cache"
    script = _script(tmp_path, "0.01")
    # two processes compile the same kernels at once: both succeed, one module file per kernel, no debris
    first = [_result(p) for p in [_start(script, cache, "exit"), _start(script, cache, "exit")]]
    assert first[0]["out"] == first[1]["out"] and first[0]["uncacheable"] is None
    assert first[0]["before"] is None and first[0]["after"] == "memory"
    mods = sorted(p.name for p in cache.glob("rds_kernel_*.py"))
    assert len(mods) == 2 and not list(cache.glob("*.tmp"))  # evolve and exit
    files = _numba_files(cache)
    assert any(n.endswith(".nbc") for n in files)

    # a later process loads them from disk: nothing is compiled or written, the first call is fast
    again = _result(_start(script, cache, "exit"))
    assert again["before"] == "disk"
    assert again["out"] == first[0]["out"] and again["exit"] == first[0]["exit"]
    assert _numba_files(cache) == files
    assert again["seconds"] < 0.6 * max(r["seconds"] for r in first)

    # a changed constant in the map's source: a new kernel, compiled (not reused), with different results
    changed = _result(_start(_script(tmp_path, "0.02"), cache))
    assert changed["before"] is None
    assert len(list(cache.glob("rds_kernel_evolve_*.py"))) == 2
    assert changed["out"] != first[0]["out"]

    # a cache folder that cannot be created (its parent is a file): compiled in memory, same numbers
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    res = _result(_start(script, blocker / "cache"))
    assert res["before"] is None and res["after"] == "memory" and res["out"] == first[0]["out"]


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path / "k"))
    assert _kernel_cache.cache_dir() == str(tmp_path / "k") and (tmp_path / "k").is_dir()
    for off in ("", "0", "off"):
        monkeypatch.setenv("RDS_CACHE_DIR", off)
        assert _kernel_cache.cache_dir() is None
    monkeypatch.delenv("RDS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _kernel_cache.cache_dir() == str(tmp_path / "xdg" / "rds" / "kernels")


HELPER_SCALE = 2.0


def _helper(x):
    return HELPER_SCALE * x


def test_fingerprint_follows_source_constants_closures_and_helpers(monkeypatch):
    fp = identity

    def make(a):
        def f(s, xi, p):
            return (a * s[0],)
        return f

    assert fp(make(1.0)) == fp(make(1.0)) and fp(make(1.0)) != fp(make(2.0))  # closure cells

    def g(s, xi, p):
        return (_helper(s[0]),)

    before = fp(g)
    monkeypatch.setattr(sys.modules[__name__], "HELPER_SCALE", 3.0)  # a constant of a helper function
    assert fp(g) != before
    table = np.arange(3.0)

    def h(s, xi, p):
        return (table[0] * s[0],)

    before = fp(h)
    table[0] = 5.0  # a global array is compiled in as a constant
    assert fp(h) != before

    class Opaque:
        pass

    obj = Opaque()

    def u(s, xi, p):
        return (obj.value * s[0],)

    with pytest.raises(Unidentifiable):
        fp(u)
    system = rds.RandomDynamicalSystem(u, variables=("x",))
    assert rds.backends.get("numba").kernels(system).uncacheable  # compiled in memory, and says why
