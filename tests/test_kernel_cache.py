"""The persistent kernel cache: compiled kernels are reused by later processes, recompiled when the map changes,
safe under concurrent compilation; a folder that others could write is never used, a damaged entry is compiled
again, and a missing, read-only or full cache folder degrades to in-memory compilation."""

import errno
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import textwrap

import numba
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

    # a damaged entry (garbage index, truncated data) is compiled again and replaced, not a raw UnpicklingError
    (evolve_mod,) = cache.glob("rds_kernel_evolve_*.py")
    damaged = sorted((cache / "__pycache__").glob(evolve_mod.stem + ".*"))
    assert {p.suffix for p in damaged} == {".nbi", ".nbc"}
    for p in damaged:
        data = p.read_bytes()
        p.write_bytes(b"\x80garbage" if p.suffix == ".nbi" else data[: len(data) // 2])
    repaired = _result(_start(script, cache))
    assert repaired["before"] == "disk" and repaired["out"] == first[0]["out"]
    for p in (cache / "__pycache__").glob(evolve_mod.stem + ".*.nbi"):
        with open(p, "rb") as f:  # a valid index again (Numba's format: its version, then the entries)
            assert pickle.load(f) == numba.__version__ and pickle.loads(f.read())[1]

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


# ------------------------------------------------------------------------------------------------ trust, damage
# A tiny kernel module (one jitted function, compiled in a fraction of a second) exercises the cache's file handling
# without the engine's compile times; each test uses its own constants, so its module names are its own.
TRIVIAL = "@nb.njit(cache=CACHE)\ndef kernel(x):\n    return x * {c!r} + 1.0\n"


def _trivial_parts(c):
    return ("tests.test_kernel_cache", float(c))


def _trivial_modname(c):
    return _kernel_cache._module_name("t", _kernel_cache._digest(TRIVIAL.format(c=float(c)), _trivial_parts(c)))


def _load_trivial(c):
    return _kernel_cache.load_module("t", TRIVIAL.format(c=float(c)), {"nb": numba}, _trivial_parts(c))


def _compile_in_subprocess(cache, constants):
    """Compile the tiny kernels of ``constants`` in a fresh process (so this one loads them from disk)."""
    code = ("import json, sys\nsys.path.insert(0, 'tests')\nimport test_kernel_cache as t\n"
            f"print(json.dumps([t._load_trivial(c).kernel(2.0) for c in {list(constants)!r}]))")
    env = dict(os.environ, RDS_CACHE_DIR=str(cache), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


class _Payload:
    """A pickle that, when loaded, creates the folder ``marker``: what a planted cache index could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _plant(folder, modname, functions, nlines, marker):
    pyc = folder / "__pycache__"
    pyc.mkdir(exist_ok=True)
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    for fn in functions:  # Numba's index name: <module>.<function>-<first line>.<python>.nbi
        for line in range(1, nlines + 1):
            (pyc / f"{modname}.{fn}-{line}.{tag}.nbi").write_bytes(pickle.dumps(_Payload(marker)))


def test_world_writable_cache_folder_is_not_used(tmp_path, monkeypatch):
    # the reproducer: RDS_CACHE_DIR=/tmp/shared (anyone may write it) with an index planted under the
    # expected name; its pickled payload must never run, and the kernels compile in memory with the right numbers
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("RDS_CACHE_DIR", str(shared))
    marker = tmp_path / "payload_ran"
    coef = 0.37  # this test's own map (a closure constant), so no other test has loaded its kernel module

    def make(a):
        def m(s, xi, p):
            return (a * s[0] + xi[0],)
        return m

    system = rds.RandomDynamicalSystem(make(coef), noise=rds.noise.Gaussian(0.1), variables=("x",))
    kern = rds.backends.kernels_for(system, "numba")
    src = kern._source("evolve", kern._vec_len)
    modname = _kernel_cache._module_name("evolve", _kernel_cache._digest(src, kern._parts))
    _plant(shared, modname, ("kernel", "kernel1"), src.count("\n") + 2, marker)
    X = np.linspace(-1.0, 1.0, 5)[:, None]
    with pytest.warns(_kernel_cache.KernelCacheWarning, match="writable by group and others") as rec:
        out = system.evolve(X, 4, seed=3, backend="numba")
        again = system.evolve(X, 4, seed=3, backend="numba")
    assert sum(issubclass(w.category, _kernel_cache.KernelCacheWarning) for w in rec) == 1  # once per folder
    assert not marker.exists()  # nothing was loaded from the folder
    assert not list(shared.glob("rds_kernel_*"))  # nor written to it
    np.testing.assert_allclose(out, system.evolve(X, 4, seed=3, backend="numpy"), rtol=1e-12)
    np.testing.assert_array_equal(again, out)
    assert _kernel_cache.cache_dir() is None and kern.status("evolve") == "memory"


@pytest.mark.parametrize("how", ["owned by another user", "group-writable", "symlink owned by another user"])
def test_cache_folder_not_only_yours_is_not_used(tmp_path, monkeypatch, how):
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("needs root to give a folder to another uid")  # os.chown to another uid
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    folder = mine
    if how == "owned by another user":
        os.chown(mine, 12345, -1)
    elif how == "group-writable":
        mine.chmod(0o770)
    else:
        folder = tmp_path / "link"
        folder.symlink_to(mine)
        os.lchown(folder, 12345, -1)
    monkeypatch.setenv("RDS_CACHE_DIR", str(folder))
    c = {"owned by another user": 1.25, "group-writable": 1.5, "symlink owned by another user": 1.75}[how]
    marker = tmp_path / "payload_ran"
    _plant(mine, _trivial_modname(c), ("kernel",), 2, marker)
    expected = {"owned by another user": "owned by uid 12345", "group-writable": "writable by group (mode 0o770)",
                "symlink owned by another user": "symbolic link owned by uid 12345"}[how]
    with pytest.warns(_kernel_cache.KernelCacheWarning, match=re.escape(expected)):
        mod = _load_trivial(c)
    assert mod.kernel(2.0) == 2.0 * c + 1.0 and not mod.CACHE
    assert not marker.exists() and not list(mine.glob("rds_kernel_*"))
    status = _kernel_cache.cache_status()
    assert status["used"] is False and status["trusted"] is False and expected in status["reason"]


def test_cache_folder_rules(tmp_path, monkeypatch):
    # a folder rds creates is private; one that is yours and not writable by others is used (read-only for the
    # group is fine); sticky /tmp-like folders (mode 1777) are not
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path / "new" / "kernels"))
    assert _kernel_cache.cache_dir() == str(tmp_path / "new" / "kernels")
    assert (tmp_path / "new" / "kernels").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new" / "kernels" / "__pycache__").stat().st_mode & 0o777 == 0o700
    ok = tmp_path / "ok"
    ok.mkdir()
    ok.chmod(0o755)
    assert _kernel_cache.untrusted_reason(str(ok)) is None
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert "writable by group and others" in _kernel_cache.untrusted_reason(str(sticky))
    # Numba's own folder for the compiled code is held to the same rule
    (ok / "__pycache__").mkdir()
    (ok / "__pycache__").chmod(0o777)
    monkeypatch.setenv("RDS_CACHE_DIR", str(ok))
    with pytest.warns(_kernel_cache.KernelCacheWarning, match="its __pycache__ is writable"):
        assert _kernel_cache.cache_dir() is None


DAMAGE = {  # constant of the tiny kernel -> (file, what is done to it)
    2.5: (".nbi", "garbage"), 3.5: (".nbi", "truncated"), 4.5: (".nbc", "garbage"), 5.5: (".nbc", "truncated"),
    6.5: (".py", "garbage"), 7.5: (".py", "truncated")}


def _damage(path, how):
    data = path.read_bytes()
    path.write_bytes(os.urandom(64) if how == "garbage" else data[: len(data) // 3])


def test_damaged_cache_entries_are_compiled_again_and_replaced(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _compile_in_subprocess(cache, DAMAGE)
    assert first == [2.0 * c + 1.0 for c in DAMAGE]
    for c, (ext, how) in DAMAGE.items():
        modname = _trivial_modname(c)
        files = list(cache.glob(f"{modname}.py")) + list(cache.glob(f"__pycache__/{modname}.*"))
        (path,) = [p for p in files if p.suffix == ext]
        _damage(path, how)
    monkeypatch.setenv("RDS_CACHE_DIR", str(cache))
    for c, (ext, how) in DAMAGE.items():  # this process has not loaded them: it reads the damaged files
        mod = _load_trivial(c)
        assert mod.CACHE and mod.kernel(2.0) == 2.0 * c + 1.0, (ext, how)
        hits = sum(mod.kernel.stats.cache_hits.values())
        assert hits == (1 if ext == ".py" else 0), (ext, how)  # the module is rewritten; Numba's entry was fine
        assert (cache / f"{_trivial_modname(c)}.py").read_text() == TRIVIAL.format(c=c)
    # the damaged entries were replaced: a later process loads every kernel from disk without compiling
    code = ("import json, sys\nsys.path.insert(0, 'tests')\nimport test_kernel_cache as t\n"
            f"ms = [t._load_trivial(c) for c in {list(DAMAGE)!r}]\n"
            "print(json.dumps([[m.kernel(2.0), sum(m.kernel.stats.cache_hits.values())] for m in ms]))")
    env = dict(os.environ, RDS_CACHE_DIR=str(cache), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[2.0 * c + 1.0, 1] for c in DAMAGE]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_writing_the_module_compiles_in_memory_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "mkstemp", _enospc)
    with pytest.warns(_kernel_cache.KernelCacheWarning, match="No space left on device") as rec:
        mods = [_load_trivial(c) for c in (8.25, 8.5)]
    assert len([w for w in rec if issubclass(w.category, _kernel_cache.KernelCacheWarning)]) == 1
    assert [m.kernel(2.0) for m in mods] == [17.5, 18.0] and not any(m.CACHE for m in mods)
    assert not list((tmp_path / "cache").glob("rds_kernel_*"))


def test_full_disk_writing_numbas_cache_compiles_in_memory_with_one_warning(tmp_path, monkeypatch):
    # Numba writes its index and data after compiling, inside the kernel's first call: a write error there used to
    # fail the run (the engine's evolve here, through its compiled kernel)
    from numba.core import caching
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(caching.IndexDataCacheFile, "_open_for_write", _enospc)

    def make(a):
        def m(s, xi, p):
            return (a * s[0] - xi[0],)
        return m

    system = rds.RandomDynamicalSystem(make(0.81), noise=rds.noise.Gaussian(0.1), variables=("x",))
    X = np.linspace(-1.0, 1.0, 5)[:, None]
    with pytest.warns(_kernel_cache.KernelCacheWarning, match="No space left on device") as rec:
        out = system.evolve(X, 4, seed=2, backend="numba")
    assert len([w for w in rec if issubclass(w.category, _kernel_cache.KernelCacheWarning)]) == 1
    np.testing.assert_allclose(out, system.evolve(X, 4, seed=2, backend="numpy"), rtol=1e-12)
    assert not list((tmp_path / "cache" / "__pycache__").glob("*.nbi"))


def test_python_m_rds_reports_whether_the_cache_is_trusted(tmp_path, monkeypatch):
    from rds import __main__ as cli
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("RDS_CACHE_DIR", str(shared))
    c = cli._cache_info()
    assert c["kernel_cache"] == str(shared) and c["kernel_cache_used"] is False
    assert c["kernel_cache_trusted"] is False and "writable by group and others" in c["kernel_cache_note"]
    assert "NOT USED" in c["kernel_cache_note"] and "chmod go-w" in c["kernel_cache_note"]
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path / "private"))
    c = cli._cache_info()
    assert c["kernel_cache_used"] is True and c["kernel_cache_trusted"] is True
    assert "not writable by group or others" in c["kernel_cache_note"]
    assert "only if it is owned by you and not writable by group or others" in " ".join(cli.__doc__.split())
