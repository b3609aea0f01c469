"""Backend conformance: every service on every registered backend agrees with the NumPy reference.

One suite for the contract of :mod:`rds.backends` (the other test files do not repeat it): for each backend and
each map form it runs, ``evolve``, ``trajectory``, ``propagate_tangent``, ``first_exit`` and ``jacobian_matrix``
give the reference's numbers to rounding, report the backend that ran, do not depend on chunking or executor, and
see a map changed between calls. A backend defined outside the library (the docs' example) plugs in the same way.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rds
import rds.backends

ATOL = 1e-12


def _elementwise():
    return rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)


def _vector():
    D = 3

    def step(theta, xi, params):
        return theta + params[0] * np.tanh(xi[0] - theta) * np.array([1.0, 0.5, 0.25])
    return rds.RandomDynamicalSystem(step, noise=rds.noise.Gaussian(0.3), form="vector", dim=D, params=(0.2,))


CASES = [(name, form) for name in rds.backends.BACKENDS for form in ("elementwise", "vector")
         if form in rds.backends.get(name).forms and rds.backends.available(name)]


def _system(form):
    return _elementwise() if form == "elementwise" else _vector()


def _initial(system, M=6):
    return np.random.default_rng(0).uniform(0.2, 1.2, (M, system.nvar))


@pytest.mark.parametrize("backend,form", CASES)
def test_every_service_agrees_with_the_reference_and_reports_what_ran(backend, form):
    system = _system(form)
    X = _initial(system)
    ref = system.run(X, 40, seed=3, t0=-7, backend="numpy")
    out = system.run(X, 40, seed=3, t0=-7, backend=backend)
    assert out.backend == backend and ref.backend == "numpy"
    np.testing.assert_allclose(out["state"], ref["state"], rtol=0, atol=ATOL)
    ds = system.trajectory(X, 40, seed=3, every=10, backend=backend)
    assert ds.attrs["backend"] == backend
    np.testing.assert_allclose(ds.state.values[-1], system.evolve(X, 40, seed=3, backend="numpy"), atol=ATOL, rtol=0)
    tr = system.propagate_tangent(X, 30, seed=1, qr_every=4, times=[10, 30], backend=backend)
    tr0 = system.propagate_tangent(X, 30, seed=1, qr_every=4, times=[10, 30], backend="numpy")
    assert tr.backend == backend
    for key in ("state", "logr", "logr_records"):
        np.testing.assert_allclose(tr[key], tr0[key], rtol=0, atol=1e-10)
    region = rds.regions.Box([-0.5] * system.nvar, [1.3] * system.nvar, variables=system.variables)
    ex = system.first_exit(X, region, 200, seed=2, backend=backend)
    ex0 = system.first_exit(X, region, 200, seed=2, backend="numpy")
    assert ex.backend == backend
    np.testing.assert_array_equal(ex["exit_step"], ex0["exit_step"])
    np.testing.assert_allclose(ex["state"], ex0["state"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("backend,form", CASES)
def test_results_do_not_depend_on_chunks_or_executor(backend, form):
    system = _system(form).replace(common_noise=False)
    X = _initial(system, 9)
    whole = system.evolve(X, 25, seed=5, backend=backend)
    with ThreadPoolExecutor(2) as ex:
        chunked = system.evolve(X, 25, seed=5, backend=backend, executor=ex, chunk_size=4)
    if backend == "jax":  # XLA's vectorised code differs with the batch size by rounding (≤ 1 ulp per step)
        np.testing.assert_allclose(whole, chunked, rtol=1e-13, atol=1e-15)
    else:  # bit for bit
        np.testing.assert_array_equal(whole, chunked)


@pytest.mark.parametrize("common", [True, False])
def test_numpy_member_blocks_change_nothing(monkeypatch, common):
    """The NumPy backend calls an elementwise map per block of members: blocks of 4 give the same bits as one."""
    system = _elementwise().replace(common_noise=common)
    X = _initial(system, 11)
    region = rds.regions.Box([-0.5] * system.nvar, [1.3] * system.nvar, variables=system.variables)

    def services():
        tr = system.propagate_tangent(X, 30, seed=1, qr_every=4, backend="numpy")
        ex = system.first_exit(X, region, 200, seed=2, backend="numpy")
        return [system.evolve(X, 25, seed=5, backend="numpy"), tr["state"], tr["logr"], ex["exit_step"], ex["state"]]
    whole = services()
    monkeypatch.setattr(rds.backends.numpy, "BLOCK", 4)
    for a, b in zip(whole, services()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend,form", CASES)
def test_a_map_changed_between_calls_is_seen(backend, form):
    ns = {"np": np, "C": 0.5}
    if form == "elementwise":
        exec("def m(s, xi, p):\n    return (C * s[0] + xi[0],)", ns)
        system = rds.RandomDynamicalSystem(ns["m"], noise=rds.noise.Gaussian(0.0), variables=("x",))
    else:
        exec("def m(th, xi, p):\n    return C * th + xi[0]", ns)
        system = rds.RandomDynamicalSystem(ns["m"], noise=rds.noise.Gaussian(0.0), form="vector", dim=2)
    X = np.ones((3, system.nvar))
    np.testing.assert_allclose(system.evolve(X, 2, backend=backend), 0.25)
    ns["C"] = 2.0
    np.testing.assert_allclose(system.evolve(X, 2, backend=backend), 4.0)
    out = system.propagate_tangent(X, 5, backend=backend)
    np.testing.assert_allclose(out["logr"] / 5, np.log(2.0), rtol=1e-12)


@pytest.mark.parametrize("form", ["elementwise", "vector"])
def test_jacobian_matrix_on_every_backend_that_runs_it(form):
    system = _system(form)
    X = _initial(system, 4)
    xi = system.noise_path(0, 1)[0]
    ref = system.jacobian_matrix(X, xi, backend="numpy")
    for backend in ("jax",) if form == "vector" and rds.backends.available("jax") else ():
        np.testing.assert_allclose(system.jacobian_matrix(X, xi, backend=backend), ref, rtol=0, atol=1e-12)


class _PlainKernels:
    """The docs' example backend: evolve only, the map called on whole arrays."""

    name = "plain"

    def __init__(self, system):
        self.step = system.step

    def evolve(self, X, noise, params, nsteps):
        for t in range(nsteps):
            new = np.array(self.step(tuple(X), noise[t], params), dtype=float)
            X[...] = np.where(np.isfinite(new.sum(axis=0)), new, np.nan)

    def tangent(self, *args):
        raise NotImplementedError

    def exit(self, *args):
        raise NotImplementedError

    def jacobian(self, *args):
        raise NotImplementedError


class _PlainBackend:
    name = "plain"
    forms = ("elementwise",)

    def available(self):
        return True

    def kernels(self, system):
        return _PlainKernels(system)

    def estimate(self, system, plan, kernels):
        return math.inf


def test_a_backend_is_one_registered_object():
    rds.backends.register(_PlainBackend())
    try:
        fa = rds.models.fukumizu_amari(eta=0.1, sigma2=0.5)
        X = np.random.default_rng(1).uniform(-1, 1, (5, 4))
        out = fa.run(X, 30, seed=2, backend="plain")
        assert out.backend == "plain"
        np.testing.assert_allclose(out["state"], fa.evolve(X, 30, seed=2, backend="numpy"), rtol=0, atol=1e-15)
        assert rds.backends.choose(fa, None, X, rds.backends.Plan("evolve", 5, 30)) != "plain"  # inf: never auto
        with pytest.raises(ValueError, match="vector"):
            rds.RandomDynamicalSystem(lambda th, xi, p: th, form="vector", dim=2).evolve(np.ones(2), 1,
                                                                                         backend="plain")
    finally:
        rds.backends._REGISTRY.pop("plain")
        rds.backends.BACKENDS = tuple(n for n in rds.backends.BACKENDS if n != "plain")


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match="numpy"):
        _elementwise().evolve(np.ones((1, 2)), 1, backend="fortran")
