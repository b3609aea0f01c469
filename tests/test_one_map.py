"""Issue 20: one map, one backend contract — a result never comes from a map other than the one the user wrote.

Each test is one of the issue's reproducers, written against the public API. The maps are built the way a notebook
builds them: ``def`` cells executed in a fresh namespace (their source registered in :mod:`linecache`, as IPython
does), so that a test can rebind a global, change an array in place, set a closure cell, redefine a helper or
change a module/class attribute afterwards — and then expect every backend and every service to compute from the
map as it is *now*, compared with a direct NumPy evaluation (the Python function called by the test itself).

Sizes are tiny (a few members, a few steps); the Numba compiles are few (~1–3 s each).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import linecache
import math
import os
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analysis
import rds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BACKENDS = ("numpy", "numba", "jax", None)  # None: the automatic choice
VECTOR_BACKENDS = ("numpy", "jax", None)  # Numba compiles elementwise maps only
KINDS = ("global", "array", "closure", "helper", "module", "class")  # what the map reads, changed after a run
X = np.array([[1.0], [2.0], [-0.5]])  # (member, var): three members of a one-variable map
XI0 = np.zeros(1)  # the noise sample of rds.noise.Gaussian(0.0)
RTOL, ATOL = 1e-12, 1e-12


# ---------------------------------------------------------------------------------------------------------------
# maps built in fresh namespaces, as in a notebook

_COUNTER = itertools.count()


def _exec(src: str, ns: dict) -> None:
    """Execute ``src`` in ``ns`` like a notebook cell: its source is readable by :mod:`inspect` (linecache)."""
    filename = f"<one-map-cell-{next(_COUNTER)}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    exec(compile(src, filename, "exec"), ns)


def _term(kind: str, x: str) -> str:
    """The expression ``k · x`` in which the map reads its changeable constant k the way ``kind`` says."""
    return {"global": f"C * {x}", "array": f"A[0] * {x}", "closure": f"k * {x}", "helper": f"helper({x})",
            "module": f"cfg.SCALE * {x}", "class": f"Cfg.SCALE * {x}"}[kind]


def _namespace() -> dict:
    import random
    return {"np": np, "math": math, "random": random, "__name__": f"one_map_cell_{next(_COUNTER)}"}


class Case:
    """A map ``step`` that reads a constant k (as a global, array entry, closure cell, helper, module or class
    attribute) and ``set(v)``, which changes k the way a user would in a notebook."""

    def __init__(self, kind: str, body: str, args: str = "s, xi, p", value: float = 0.5):
        self.kind, self.value = kind, value
        ns = self.ns = _namespace()
        if kind == "global":
            ns["C"] = value
        elif kind == "array":
            ns["A"] = np.array([value, 0.0])
        elif kind == "module":
            cfg = types.ModuleType("cfg")
            cfg.SCALE = value
            ns["cfg"] = cfg
        elif kind == "class":
            _exec(f"class Cfg:\n    SCALE = {value!r}\n", ns)
        elif kind == "helper":
            _exec(f"def helper(x):\n    return {value!r} * x\n", ns)
        if kind == "closure":
            _exec(f"def make():\n    k = {value!r}\n\n    def m({args}):\n{textwrap.indent(body, ' ' * 8)}\n\n"
                  "    def set_k(v):\n        nonlocal k\n        k = v\n\n    return m, set_k\n", ns)
            self.step, self._set_k = ns["make"]()
        else:
            _exec(f"def m({args}):\n{textwrap.indent(body, ' ' * 4)}\n", ns)
            self.step = ns["m"]

    def set(self, v: float) -> None:
        ns = self.ns
        if self.kind == "global":
            ns["C"] = v  # rebinding the module-level global
        elif self.kind == "array":
            ns["A"][0] = v  # the same array, changed in place
        elif self.kind == "closure":
            self._set_k(v)  # the closure cell, set through nonlocal
        elif self.kind == "helper":
            _exec(f"def helper(x):\n    return {v!r} * x\n", ns)  # the helper redefined (a new function)
        elif self.kind == "module":
            ns["cfg"].SCALE = v
        elif self.kind == "class":
            ns["Cfg"].SCALE = v
        self.value = v


def elementwise_case(kind: str, value: float = 0.5) -> Case:
    """x ↦ k·x + ξ."""
    return _case(kind, "return ({kx} + xi[0],)", {"kx": "s[0]"}, value=value)


def _case(kind, template, xs, args="s, xi, p", value=0.5):
    body = template.format(**{name: _term(kind, x) for name, x in xs.items()})
    return Case(kind, body, args=args, value=value)


def two_var_case(kind: str, value: float = 0.5) -> Case:
    """(x, y) ↦ (k·x + y/4 + ξ, x/2 − k·y): a two-variable map with a non-trivial Jacobian."""
    return _case(kind, "x, y = s\nreturn ({kx} + 0.25 * y + xi[0], 0.5 * x - {ky})", {"kx": "x", "ky": "y"},
                 value=value)


def vector_case(kind: str, value: float = 0.5) -> Case:
    """θ ↦ k·θ + ξ (a vector map on one member's 1-D θ)."""
    return _case(kind, "return {kt} + xi[0]", {"kt": "theta"}, args="theta, xi, p", value=value)


def system_of(step, nvar: int = 1, sigma2: float = 0.0, **kw) -> rds.RandomDynamicalSystem:
    variables = ("x",) if nvar == 1 else tuple(f"x{i}" for i in range(nvar))
    return rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(sigma2), variables=variables, **kw)


def vector_system_of(step, dim: int = 2, **kw) -> rds.RandomDynamicalSystem:
    return rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(0.0), form="vector", dim=dim, **kw)


# ---------------------------------------------------------------------------------------------------------------
# direct NumPy evaluation of the map as it is now

def direct(step, X, xi=XI0, params=(), steps: int = 1):
    """``steps`` steps of ``step`` called member by member on Python floats (the reference of every test)."""
    X = np.array(X, dtype=float)
    for _ in range(steps):
        X = np.array([[float(v) for v in step(tuple(row), xi, params)] for row in X])
    return X


def cs_jacobian(step, X, xi=XI0, params=()):
    """Jacobians (member, var, var) of an analytic elementwise map by the complex step, computed here."""
    h = 1e-30
    X = np.asarray(X, dtype=float)
    n = X.shape[1]
    J = np.empty((X.shape[0], n, n))
    for m, row in enumerate(X):
        for j in range(n):
            z = row.astype(complex)
            z[j] += 1j * h
            J[m, :, j] = [complex(v).imag / h for v in step(tuple(z), xi, params)]
    return J


def qr_logr(J):
    """log|R_cc| of the QR factorisation of each member's matrix (one tangent step from the identity)."""
    return np.array([np.log(np.abs(np.diagonal(np.linalg.qr(Jm)[1]))) for Jm in J])


def close(got, want, what=""):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=RTOL, atol=ATOL,
                               err_msg=what)


def backend_kw(method, backend) -> dict:
    """``{"backend": backend}`` where the one-step service ``method`` (``apply``, ``jacobian_matrix``) takes a
    backend and has one for this form: NumPy for an elementwise map, NumPy or JAX for a vector map (there is no
    compiled one-step Jacobian of an elementwise map); else ``{}`` (the service's own choice)."""
    system = method.__self__
    allowed = ("numpy", None) if system.form == "elementwise" else ("numpy", "jax", None)
    if backend in allowed and "backend" in inspect.signature(method).parameters:
        return {"backend": backend}
    return {}


def bname(backend) -> str:
    return "auto" if backend is None else backend


@contextlib.contextmanager
def quiet():
    """Runs whose warnings are not under test (e.g. a warning about an opaque map before the change)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def warm(system, backend, X=X, compiles=True):
    """Run ``system`` on ``backend`` (and on Numba before ``None``, so that a compiled kernel exists and the
    automatic choice may pick it), as the notebook did before the user changed the map. ``compiles=False``: a map
    Numba refuses (it reads a Python class or object), so the automatic choice is warmed alone."""
    for b in (("numba", None) if backend is None and compiles else (backend,)):
        system.evolve(X, 1, backend=b)


def refused_by_numba(system, X=X):
    """A map that reads a Python class or object is refused by Numba before compiling, with a clear TypeError that
    names the map and the fall-back (never a stale value, never Numba's raw NameError)."""
    with pytest.raises(TypeError, match="compiled backend cannot compile") as err:
        system.evolve(X, 1, backend="numba")
    assert "backend='numpy'" in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# 1. the notebook reproducer

@pytest.mark.parametrize("backend", BACKENDS, ids=bname)
def test_notebook_reproducer_rebound_global(backend):
    """Reproducer 1: run, rebind the global C = 3.0, run again → the new value on every backend; a fresh system
    with the same function also sees it."""
    case = elementwise_case("global")
    S = system_of(case.step)
    for b in BACKENDS:  # the notebook ran it everywhere before
        close(S.evolve(X, 1, backend=b), 0.5 * X, f"before the change, backend={b}")
    case.set(3.0)
    close(S.evolve(X, 1, backend=backend), 3.0 * X, "the same system after C = 3.0")
    close(system_of(case.step).evolve(X, 1, backend=backend), 3.0 * X, "a fresh system after C = 3.0")


# ---------------------------------------------------------------------------------------------------------------
# 2. every kind of state a map reads

@pytest.mark.parametrize("backend", BACKENDS, ids=bname)
@pytest.mark.parametrize("kind", KINDS)
def test_changed_state_is_seen(kind, backend):
    """Reproducer 2: a rebound global, an array changed in place, a closure cell, a redefined helper, a module
    attribute (cfg.SCALE) or a class attribute (Cfg.SCALE) changed after a run is seen by the next run on every
    backend, and by a fresh system."""
    case = elementwise_case(kind)
    S = system_of(case.step)
    if kind == "class" and backend == "numba":
        return refused_by_numba(S)
    warm(S, backend, compiles=kind != "class")
    close(S.evolve(X, 1, backend=backend), direct(case.step, X), "before the change")
    case.set(3.0)
    close(direct(case.step, X), 3.0 * X, "the test's own evaluation")
    close(S.evolve(X, 1, backend=backend), 3.0 * X, f"the same system after the {kind} changed")
    close(system_of(case.step).evolve(X, 1, backend=backend), 3.0 * X, f"a fresh system after the {kind} changed")


# ---------------------------------------------------------------------------------------------------------------
# 3. every service sees the change

BOX = rds.regions.Box(low=[-10.0], high=[10.0], variables=("x",))


def direct_exit(step, X, low, high, max_steps):
    """exit_step per member by iterating the map here: n ≥ 1 of the first state outside, −1 if never."""
    out = np.full(X.shape[0], -1)
    for m, row in enumerate(np.asarray(X, dtype=float)):
        x = row
        for n in range(1, max_steps + 1):
            x = direct(step, x[None])[0]
            if np.any(x < low) or np.any(x > high):
                out[m] = n
                break
    return out


def _service(S, service, backend):
    """Run ``service`` on ``S`` (map x ↦ k·x) and return (result, expected) for the map as it is now."""
    step = S.step
    if service == "evolve":
        return S.evolve(X, 1, backend=backend), direct(step, X)
    if service == "trajectory":
        ds = S.trajectory(X, 2, backend=backend)
        return ds["state"].isel(time=-1).values, direct(step, X, steps=2)
    if service == "propagate_tangent":
        out = S.propagate_tangent(X, 3, backend=backend)
        k = float(step((1.0,), XI0, ())[0])  # the current slope
        return (np.concatenate([out["state"], out["logr"] / 3], axis=1),
                np.concatenate([direct(step, X, steps=3), np.full((X.shape[0], 1), np.log(abs(k)))], axis=1))
    if service == "first_exit":
        out = S.first_exit(X, BOX, 6, backend=backend)
        return out["exit_step"], direct_exit(step, X, -10.0, 10.0, 6)
    if service == "jacobian_matrix":
        k = float(step((1.0,), XI0, ())[0])  # analytic: the Jacobian of x ↦ k·x is k
        return S.jacobian_matrix(X, XI0, **backend_kw(S.jacobian_matrix, backend)), np.full((X.shape[0], 1, 1), k)
    if service == "apply":
        return S.apply(X, XI0, **backend_kw(S.apply, backend)), direct(step, X)
    raise AssertionError(service)


SERVICES = ("evolve", "trajectory", "propagate_tangent", "first_exit", "jacobian_matrix", "apply")


@pytest.mark.parametrize("backend", BACKENDS, ids=bname)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_sees_the_change(service, backend):
    """Reproducer 3: after C changes (0.5 → 3.0), evolve, trajectory, propagate_tangent (logr/steps = log|C|),
    first_exit (C = 0.5 never leaves |x| ≤ 10, C = 3 does), jacobian_matrix (= C) and apply all compute from the
    new map. (``apply``/``jacobian_matrix`` are NumPy services of an elementwise map: they run after the backend
    was warmed, with ``backend=`` where they accept it for this form — see :func:`backend_kw`.)"""
    case = elementwise_case("global")
    S = system_of(case.step)
    for b in (backend,) if backend is not None else ("numba", None):  # the service as it ran before
        got, want = _service(S, service, b)
        close(got, want, f"{service} before the change, backend={b}")
    warm(S, backend)
    case.set(3.0)
    got, want = _service(S, service, backend)
    close(got, want, f"{service} after C = 3.0")


# ---------------------------------------------------------------------------------------------------------------
# 4. vector maps

XV = np.array([[1.0, -2.0], [0.5, 0.25]])  # (member, D = 2)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS, ids=bname)
@pytest.mark.parametrize("kind", KINDS)
def test_vector_map_sees_the_change(kind, backend):
    """Reproducer 4: a vector map θ ↦ C·θ; after C goes 0.5 → 2.0, propagate_tangent's log-growth is +log 2 on
    every backend and equals NumPy's (JAX gave −0.69 while NumPy gave +0.69); evolve and apply give 2θ."""
    case = vector_case(kind)
    S = vector_system_of(case.step)
    with quiet():
        close(S.propagate_tangent(XV, 2, backend=backend)["logr"] / 2, np.full((2, 2), np.log(0.5)), "before")
        close(S.evolve(XV, 1, backend=backend), 0.5 * XV, "before")
    case.set(2.0)
    out = S.propagate_tangent(XV, 2, backend=backend)
    ref = S.propagate_tangent(XV, 2, backend="numpy")
    close(out["logr"] / 2, np.full((2, 2), np.log(2.0)), f"log-growth on {bname(backend)} after C = 2.0")
    close(out["logr"], ref["logr"], "the backend agrees with NumPy")
    close(S.evolve(XV, 1, backend=backend), 2.0 * XV, "evolve after C = 2.0")
    close(S.apply(XV, XI0, **backend_kw(S.apply, backend)), 2.0 * XV, "apply after C = 2.0")
    fresh = vector_system_of(case.step)
    close(fresh.propagate_tangent(XV, 2, backend=backend)["logr"] / 2, np.full((2, 2), np.log(2.0)), "a fresh system")


@pytest.mark.parametrize("backend", VECTOR_BACKENDS, ids=bname)
@pytest.mark.parametrize("kind", KINDS)
def test_vector_jacobian_matrix_sees_the_change(kind, backend):
    """Reproducer 4: jacobian_matrix of the vector map θ ↦ C·θ is 2·I after C goes 0.5 → 2.0 (it runs on JAX by
    default; ``backend=`` is passed where jacobian_matrix accepts it)."""
    case = vector_case(kind)
    S = vector_system_of(case.step)
    kw = backend_kw(S.jacobian_matrix, backend)
    eye = np.broadcast_to(np.eye(2), (2, 2, 2))
    with quiet():
        close(S.jacobian_matrix(XV, XI0, **kw), 0.5 * eye, "before")
        S.propagate_tangent(XV, 1, backend=backend)
    case.set(2.0)
    close(S.jacobian_matrix(XV, XI0, **kw), 2.0 * eye, "jacobian_matrix after C = 2.0")
    close(vector_system_of(case.step).jacobian_matrix(XV, XI0, **kw), 2.0 * eye, "a fresh system")


# ---------------------------------------------------------------------------------------------------------------
# 5. the on-disk kernel cache across processes

CFG_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import rds
    import mapmod
    S = rds.RandomDynamicalSystem(mapmod.m, noise=rds.noise.Gaussian(0.0), variables=("x",))
    print(repr(float(S.evolve(np.ones((3, 1)), 1, backend=sys.argv[1])[0, 0])))
""")


def _run_cfg_script(tmp_path, cache, backend):
    env = dict(os.environ, RDS_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", CFG_SCRIPT, backend], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return float(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["numba"])
def test_kernel_cache_sees_edited_module_attribute(tmp_path, backend):
    """Reproducer 5: a map reads cfg.SCALE from a module file cfg.py; a new process after editing cfg.py (same
    cache folder) must compute with the new SCALE, not load the kernel compiled for the old one."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (tmp_path / "mapmod.py").write_text("import cfg\n\n\ndef m(s, xi, p):\n    return (cfg.SCALE * s[0] + xi[0],)\n")
    (tmp_path / "cfg.py").write_text("SCALE = 0.5\n")
    assert _run_cfg_script(tmp_path, cache, backend) == 0.5
    (tmp_path / "cfg.py").write_text("SCALE = 3.0\n")  # the same size: only the contents tell
    assert _run_cfg_script(tmp_path, cache, backend) == 3.0, "a new process loaded the kernel of the old cfg.py"


# ---------------------------------------------------------------------------------------------------------------
# 6. kernel keys

@pytest.mark.parametrize("order", ["analytic_first", "none_first"])
def test_vector_kernel_key_includes_jacobian(order):
    """Reproducer 6a: two vector systems with the same step, one with an analytic jacobian= (deliberately 2·I) and
    one without: propagate_tangent on NumPy uses each system's own (the NumPy vector kernel key left it out)."""
    ns = _namespace()
    _exec("def step(theta, xi, p):\n    return 0.5 * theta\n\n\n"
          "def jac(theta, xi, p):\n    return 2.0 * np.eye(theta.shape[0])\n", ns)
    with_jac = vector_system_of(ns["step"], jacobian=ns["jac"])
    without = vector_system_of(ns["step"])
    expected = {id(with_jac): np.log(2.0), id(without): np.log(0.5)}
    pair = (with_jac, without) if order == "analytic_first" else (without, with_jac)
    for S in pair + pair:
        got = S.propagate_tangent(XV, 2, backend="numpy")["logr"] / 2
        name = "jacobian=2I" if S is with_jac else "jacobian=None"
        close(got, np.full((2, 2), expected[id(S)]), f"propagate_tangent of the system with {name}")


def _fd_vector_jacobian(step, theta, xi, params, h=1e-6):
    """Central differences: only a sanity check of the model's analytic Jacobian (accurate to ~1e-9)."""
    D = theta.shape[0]
    cols = [(np.asarray(step(theta + h * e, xi, params)) - np.asarray(step(theta - h * e, xi, params))) / (2 * h)
            for e in np.eye(D)]
    return np.stack(cols, axis=1)


def test_jax_jacobian_matrix_uses_each_systems_params():
    """Reproducer 6b: soft_committee(eta=0.1) and eta=0.9 have different Jacobians; jacobian_matrix on JAX (the
    default for a vector map) must give each its own, equal to the model's analytic Jacobian (the NumPy
    reference's), and JAX tangents must agree with NumPy's."""
    theta = np.array([0.5, -0.3, 0.2, 0.1])
    systems = [rds.models.soft_committee(inputs=1, hidden=2, eta=eta) for eta in (0.1, 0.9)]
    results = []
    for S in systems:
        xi = S.noise_path(0, 1)[0]
        assert xi.shape == S.noise.shape
        J = S.jacobian_matrix(theta, xi, **backend_kw(S.jacobian_matrix, "jax"))
        analytic = np.asarray(S.jacobian(theta, xi, S.params), dtype=float)
        np.testing.assert_allclose(_fd_vector_jacobian(S.step, theta, xi, S.params), analytic, rtol=1e-6, atol=1e-8,
                                   err_msg="the model's analytic Jacobian (checked by the test)")
        close(J, analytic, f"jacobian_matrix of eta={S.params[0]}")
        results.append(J)
    assert not np.allclose(results[0], results[1]), "eta = 0.1 and eta = 0.9 gave the same Jacobian"
    for S in systems:
        lj = S.propagate_tangent(theta[None], 3, backend="jax")["logr"]
        ln = S.propagate_tangent(theta[None], 3, backend="numpy")["logr"]
        close(lj, ln, f"JAX vs NumPy tangents of eta={S.params[0]}")


# ---------------------------------------------------------------------------------------------------------------
# 7. the backend decision

MEMBER_BY_MEMBER = {
    "math_fabs": "return (0.5 * math.fabs(s[0]) + xi[0],)",
    "if_branch": "x = s[0]\nif x > 0:\n    return (0.5 * x + xi[0],)\nreturn (2.0 * x + xi[0],)",
}
XP = np.array([[1.0], [2.0], [0.5]])  # positive: both maps are x ↦ x/2 there, exponent log(1/2)


def member_by_member(name):
    ns = _namespace()
    _exec(f"def m(s, xi, p):\n{textwrap.indent(MEMBER_BY_MEMBER[name], '    ')}\n", ns)
    return system_of(ns["m"])


@pytest.mark.parametrize("name", sorted(MEMBER_BY_MEMBER))
def test_lyapunov_spectrum_auto_backend_member_by_member(name):
    """Reproducer 7: a map that runs only member by member works in lyapunov_spectrum(backend=None) (a TypeError
    today telling the user to pass backend=None) and records the backend that ran: Numba."""
    S = member_by_member(name)
    close(S.evolve(XP, 2), direct(S.step, XP, steps=2), "evolve(backend=None) works")
    ds = analysis.lyapunov_spectrum(S, XP, 6, backend=None)
    close(ds["exponents"].values.reshape(-1), np.full(3, np.log(0.5)), "exponents of x -> x/2")
    assert ds.attrs["backend"] == "numba"


@pytest.mark.parametrize("name", sorted(MEMBER_BY_MEMBER))
def test_pullback_records_the_backend_that_ran_member_by_member(name):
    """Reproducer 7: pullback_attractor(backend=None) of a member-by-member map runs on Numba and says so (it
    recorded "numpy" for a run that used Numba)."""
    S = member_by_member(name)
    ds = analysis.pullback_attractor(S, XP, taus=[0, 3], backend=None)
    close(ds["state"].isel(tau=-1).values, direct(S.step, XP, steps=3), "the pullback states")
    assert ds.attrs["backend"] == "numba"


def test_pullback_records_numpy_for_a_tiny_vectorisable_run():
    """Reproducer 7: a tiny run of a vectorisable map stays on NumPy, and pullback_attractor records "numpy",
    the same backend a trajectory of that run reports."""
    S = system_of(elementwise_case("global").step)
    ds = analysis.pullback_attractor(S, X, taus=[0, 2], backend=None)
    assert ds.attrs["backend"] == "numpy"
    assert S.trajectory(X, 2, t0=-2, backend=None).attrs["backend"] == "numpy"


@pytest.mark.parametrize("name", sorted(MEMBER_BY_MEMBER))
def test_services_report_the_backend_that_ran(name):
    """Reproducer 7: propagate_tangent and first_exit return the backend that ran: Numba for a member-by-member map
    with backend=None, the requested one otherwise, JAX for a vector map with backend=None."""
    S = member_by_member(name)
    out = S.propagate_tangent(XP, 2, backend=None)
    assert out["backend"] == "numba"
    close(out["logr"] / 2, np.full((3, 1), np.log(0.5)), "tangent of x -> x/2")
    assert S.first_exit(XP, BOX, 3, backend=None)["backend"] == "numba"
    V = system_of(elementwise_case("global").step)
    for b in ("numpy", "numba", "jax"):
        assert V.propagate_tangent(X, 2, backend=b)["backend"] == b
        assert V.first_exit(X, BOX, 2, backend=b)["backend"] == b
    vec = vector_system_of(vector_case("global").step)
    assert vec.propagate_tangent(XV, 2, backend=None)["backend"] == "jax"


# ---------------------------------------------------------------------------------------------------------------
# 8. purity

IMPURE = {
    "np_random": "return (s[0] + 1e-3 * np.random.normal() + xi[0],)",
    "generator": "return (s[0] + 1e-3 * rng.normal() + xi[0],)",
    "stdlib_random": "return (s[0] + 1e-3 * random.random() + xi[0],)",
}


def impure_map(name, args="s, xi, p", vector=False):
    ns = _namespace()
    ns["rng"] = np.random.default_rng(0)
    body = IMPURE[name]
    if vector:
        body = body.replace("(s[0] + ", "theta + ").replace(",)", "")
    _exec(f"def m({args}):\n    {body}\n", ns)
    return ns["m"]


@pytest.mark.parametrize("backend", BACKENDS, ids=bname)
@pytest.mark.parametrize("name", sorted(IMPURE))
def test_map_drawing_its_own_random_numbers_is_refused(name, backend):
    """Reproducer 8: a map that draws its own random numbers (np.random, a global Generator, the stdlib random) is
    refused at the first service call on every backend, by a TypeError/ValueError that says "random"."""
    S = system_of(impure_map(name))
    with pytest.raises((TypeError, ValueError), match="(?i)random"):
        S.evolve(X, 1, backend=backend)


@pytest.mark.parametrize("name", sorted(IMPURE))
def test_impure_map_refused_by_apply(name):
    """Reproducer 8: apply (the first service call here) refuses a map that draws its own random numbers."""
    S = system_of(impure_map(name))
    with pytest.raises((TypeError, ValueError), match="(?i)random"):
        S.apply(X, XI0)


@pytest.mark.parametrize("backend", VECTOR_BACKENDS, ids=bname)
@pytest.mark.parametrize("name", sorted(IMPURE))
def test_impure_vector_map_is_refused(name, backend):
    """Reproducer 8, vector form: θ ↦ θ + noise the map draws itself is refused on NumPy and JAX."""
    S = vector_system_of(impure_map(name, "theta, xi, p", vector=True))
    with pytest.raises((TypeError, ValueError), match="(?i)random"):
        S.evolve(XV, 1, backend=backend)


# ---------------------------------------------------------------------------------------------------------------
# 9. opaque maps

def _unidentified_warning():
    W = getattr(rds, "UnidentifiedMapWarning", None)
    if W is None:
        pytest.fail("rds.UnidentifiedMapWarning is missing (issue 20: a RuntimeWarning for maps whose identity "
                    "cannot be established)")
    assert issubclass(W, RuntimeWarning)
    return W


def opaque_case():
    """A map closing over an instance of a small local class, read as box.k (its identity cannot be fingerprinted)."""
    class Box:
        def __init__(self, k):
            self.k = k

    box = Box(0.5)
    ns = _namespace()
    _exec("def make(box):\n    def m(s, xi, p):\n        return (box.k * s[0] + xi[0],)\n    return m\n", ns)
    return box, ns["make"](box)


@pytest.mark.parametrize("backend", BACKENDS, ids=bname)
def test_opaque_map_warns_once(backend):
    """Reproducer 9: the first service call on a map that closes over an opaque object emits
    rds.UnidentifiedMapWarning, once per map (not again on later calls, other backends or other services).
    Whether Numba computes with it is :func:`test_opaque_map_is_not_cached_across_calls`'s business."""
    W = _unidentified_warning()
    box, m = opaque_case()
    S = system_of(m)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        if backend == "numba":  # the warning comes with Numba's refusal, which names the fall-back
            refused_by_numba(S)
            backend = None
        else:
            S.evolve(X, 1, backend=backend)
        first = [w for w in rec if issubclass(w.category, W)]
        for b in dict.fromkeys((backend, "numpy", "jax", None)):
            S.evolve(X, 1, backend=b)
        S.apply(X, XI0)
        S.propagate_tangent(X, 1, backend=backend)
    assert len(first) == 1, f"the first call emitted {len(first)} UnidentifiedMapWarning"
    assert len([w for w in rec if issubclass(w.category, W)]) == 1, "UnidentifiedMapWarning emitted more than once"


@pytest.mark.parametrize("backend", BACKENDS, ids=bname)
def test_opaque_map_is_not_cached_across_calls(backend):
    """Reproducer 9: after box.k changes (0.5 → 3.0), every backend computes with the new value."""
    box, m = opaque_case()
    S = system_of(m)
    if backend == "numba":
        return refused_by_numba(S)
    with quiet():
        warm(S, backend, compiles=False)
        close(S.evolve(X, 1, backend=backend), 0.5 * X, "before")
        box.k = 3.0
        close(S.evolve(X, 1, backend=backend), 3.0 * X, "after box.k = 3.0")
        close(S.apply(X, XI0), 3.0 * X, "apply after box.k = 3.0")
        close(system_of(m).evolve(X, 1, backend=backend), 3.0 * X, "a fresh system after box.k = 3.0")


# ---------------------------------------------------------------------------------------------------------------
# 10. property: random changes, random services, random backends

HYP_KINDS = ("global", "array", "closure", "helper", "module")
HYP_SERVICES = ("evolve", "propagate_tangent", "apply", "jacobian_matrix")
X2 = np.array([[0.3, -0.7], [1.1, 0.4], [-0.2, 0.9]])
XI_APPLY = np.array([0.37])
NUMBA_VALUES = (0.5, -1.5)  # few distinct constants on Numba: each may compile a kernel (~1-3 s)
OTHER_VALUES = (0.5, -1.5, 2.0, 0.75, -0.25)

_WORLD: dict = {}


def _world():
    """One map and system per kind of change, built once for all examples (so Numba compiles stay few)."""
    if not _WORLD:
        for kind in HYP_KINDS:
            case = two_var_case(kind)
            _WORLD[kind] = (case, system_of(case.step, nvar=2, sigma2=0.3))
    return _WORLD


@pytest.fixture(scope="module")
def kernel_cache_dir(tmp_path_factory):
    """A kernel cache folder shared by the examples of the property test (repeated constants load, not compile)."""
    path = tmp_path_factory.mktemp("one_map_kernel_cache")
    os.chmod(path, 0o700)
    return str(path)


@contextlib.contextmanager
def _env(name, value):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _check_service(case, S, service, backend):
    step = case.step
    xi0 = S.noise_path(0, 1)[0]
    if service == "evolve":
        close(S.evolve(X2, 1, backend=backend), direct(step, X2, xi0), "evolve")
    elif service == "propagate_tangent":
        out = S.propagate_tangent(X2, 1, backend=backend)
        close(out["state"], direct(step, X2, xi0), "propagate_tangent state")
        close(out["logr"], qr_logr(cs_jacobian(step, X2, xi0)), "propagate_tangent logr")
    elif service == "apply":
        close(S.apply(X2, XI_APPLY, **backend_kw(S.apply, backend)), direct(step, X2, XI_APPLY), "apply")
    elif service == "jacobian_matrix":
        close(S.jacobian_matrix(X2, XI_APPLY, **backend_kw(S.jacobian_matrix, backend)),
              cs_jacobian(step, X2, XI_APPLY), "jacobian_matrix")


@st.composite
def _operation(draw):
    kind = draw(st.sampled_from(HYP_KINDS))
    service = draw(st.sampled_from(HYP_SERVICES))
    backend = draw(st.sampled_from(BACKENDS))
    values = NUMBA_VALUES if backend in ("numba", None) else OTHER_VALUES
    return kind, draw(st.sampled_from(values)), service, backend


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_operation(), min_size=1, max_size=4))
def test_property_random_changes_random_services(kernel_cache_dir, ops):
    """Reproducer 10 (property): random sequences of (change a constant / an array entry / a closure cell / a
    helper / a module attribute; call evolve / propagate_tangent / apply / jacobian_matrix on a random backend):
    each result equals (rtol 1e-12) the direct NumPy evaluation of the map as it is now."""
    world = _world()
    with _env("RDS_CACHE_DIR", kernel_cache_dir):
        for kind, value, service, backend in ops:
            case, S = world[kind]
            case.set(value)
            _check_service(case, S, service, backend)
