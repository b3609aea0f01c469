"""Fuzzing the public boundary: a bad argument gives a ValueError or TypeError that names it — never another
exception type, a hang or a crash. One argument at a time is replaced by an arbitrary value (the others valid)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analysis
import rds
from rds.regions import Box

RED = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
BOX = Box([-2, -2], [2, 2], ("w", "v"))
INIT = Box([0, 0], [2, 2], ("w", "v"))
pytestmark = pytest.mark.filterwarnings("error::numpy.exceptions.ComplexWarning")  # a silent cast is a bug
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# ---------------------------------------------------------------------------------------------- values
floats = st.floats(allow_nan=True, allow_infinity=True)
ints = st.one_of(st.integers(-5, 40), st.integers(-2**70, 2**70),
                 st.sampled_from([2**63 - 1, 2**63, -2**63, -2**63 - 1]))
scalars = st.one_of(ints, floats, st.booleans(), st.none(), st.text(max_size=4), st.complex_numbers(max_magnitude=3))
arrays = st.one_of(
    st.lists(st.one_of(floats, st.integers(-3, 3)), max_size=6).map(np.asarray),
    st.lists(st.lists(floats, min_size=0, max_size=3), max_size=4),  # possibly ragged
    st.tuples(st.integers(0, 3), st.integers(0, 4)).map(lambda s: np.full(s, 0.5)),
    st.lists(st.text(max_size=2), max_size=3),
    st.just(np.array([[0.5 + 1j, 0.5]])),
)
anything = st.one_of(scalars, arrays)


def check(call, name, value):
    """call(value) succeeds or raises ValueError/TypeError naming ``name``."""
    try:
        call(value)
    except (ValueError, TypeError) as e:
        assert name in str(e), f"{type(e).__name__} for {name}={value!r} does not name it: {e}"


def small_steps(value):
    """Keep valid step counts small (a valid huge count is a long run, not an error)."""
    return value if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                         and 50 < value < 2**63) else 50


X = np.full((3, 2), 0.5)
RUN = dict(backend="numpy", progress=False)


# ---------------------------------------------------------------------------------------------- the system
@FUZZ
@given(anything)
def test_evolve_initial(v):
    check(lambda v: RED.evolve(v, 5, **RUN), "initial", v)


@FUZZ
@given(st.one_of(ints, scalars))
def test_evolve_steps(v):
    check(lambda v: RED.evolve(X, small_steps(v), **RUN), "steps", v)


@pytest.mark.parametrize("name", ["seed", "t0", "realization", "chunk_size", "backend"])
def test_evolve_keywords(name):
    @FUZZ
    @given(scalars)
    def inner(v):
        check(lambda v: RED.evolve(X, 5, **dict(RUN, **{name: v})), name, v)
    inner()


@FUZZ
@given(st.one_of(anything, st.lists(ints, max_size=4)))
def test_trajectory_times(v):
    check(lambda v: RED.trajectory(X, 10, times=v, **RUN), "times", v)


@FUZZ
@given(scalars)
def test_trajectory_every(v):
    check(lambda v: RED.trajectory(X, 10, every=v, **RUN), "every", v)


@FUZZ
@given(st.one_of(anything, st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)).map(
    lambda s: np.random.default_rng(0).normal(size=s)), st.just(np.zeros((3, 2, 2)))))
def test_propagate_tangent_tangent(v):
    check(lambda v: RED.propagate_tangent(X, 5, tangent=v, **RUN), "tangent", v)


@FUZZ
@given(scalars)
def test_propagate_tangent_qr_every(v):
    check(lambda v: RED.propagate_tangent(X, 5, qr_every=v, **RUN), "qr_every", v)


@FUZZ
@given(st.one_of(scalars, st.builds(lambda lo, w: Box([lo], [lo + w], ("w",)), st.floats(-3, 3), st.floats(0.1, 3))))
def test_first_exit_region(v):
    check(lambda v: RED.first_exit(X, v, 20, **RUN), "region", v)


@FUZZ
@given(st.one_of(ints, scalars), st.one_of(ints, scalars))
def test_noise_path_bounds(t0, t1):
    def call(_):
        t1_ = t1 if not (isinstance(t0, int) and isinstance(t1, int) and not isinstance(t1, bool)
                         and not isinstance(t0, bool) and 0 <= t1 - t0 > 5000) else t0 + 5000
        RED.noise_path(t0, t1_)
    try:
        call(None)
    except (ValueError, TypeError) as e:
        assert "t0" in str(e) or "t1" in str(e), e


@pytest.mark.parametrize("name", ["variables", "common_noise", "params", "dt", "noise", "jacobian", "step"])
def test_system_constructor(name):
    @FUZZ
    @given(st.one_of(anything, st.text(max_size=3)))
    def inner(v):
        kw = dict(step=lambda s, xi, p: (s[0],), variables=("x",))
        kw[name] = v
        check(lambda v: rds.RandomDynamicalSystem(**kw), name, v)
    inner()


# ---------------------------------------------------------------------------------------------- regions, sampling
@pytest.mark.parametrize("name", ["low", "high", "variables"])
def test_box(name):
    @FUZZ
    @given(st.one_of(anything, st.lists(st.text(max_size=2), max_size=3)))
    def inner(v):
        kw = dict(low=[0.0], high=[1.0], variables=("x",))
        kw[name] = v
        try:
            Box(**kw)
        except (ValueError, TypeError) as e:
            assert name in str(e) or "low, high and variables" in str(e) or "region" in str(e), e
    inner()


@pytest.mark.parametrize("name", ["members", "seed", "variables"])
def test_sample_uniform(name):
    @FUZZ
    @given(anything)
    def inner(v):
        kw = dict(box=INIT, members=3, variables=("w", "v"), seed=0)
        kw[name] = v if not (name == "members" and isinstance(v, int) and v > 10**4) else 10**4
        check(lambda v: analysis.sample_uniform(**kw), name, v)
    inner()


# ---------------------------------------------------------------------------------------------- escape times
@pytest.mark.parametrize("name", ["T", "censored", "max_steps", "realization", "member", "n_boot", "confidence",
                                  "bootstrap", "tail_from"])
def test_survival_summary(name):
    @FUZZ
    @given(anything)
    def inner(v):
        kw = dict(T=[1, 2, 5], censored=[False, False, True], max_steps=5, n_boot=5)
        kw[name] = v if not (name == "n_boot" and isinstance(v, int) and v > 200) else 200
        try:
            analysis.survival_summary(**kw)
        except (ValueError, TypeError) as e:
            assert name in str(e) or (name in ("T", "censored", "max_steps") and "censored" in str(e)), e
    inner()


@pytest.mark.parametrize("name", ["max_steps", "seed", "realizations", "members", "initial"])
def test_escape_times(name):
    @FUZZ
    @given(anything)
    def inner(v):
        kw = dict(system=RED, initial=INIT, region=BOX, max_steps=20, members=4, n_boot=0, backend="numpy")
        if name == "initial":
            kw.pop("members")
        kw[name] = v if not (isinstance(v, int) and not isinstance(v, bool) and 100 < v < 2**63
                             and name != "seed") else 100
        check(lambda v: analysis.escape_times(**kw), name, v)
    inner()


# ---------------------------------------------------------------------------------------------- symmetry, coords
@pytest.mark.parametrize("func, name", [(lambda v: rds.symmetry.swap([1.0, 4.0, 2.0, -1.0], v, 0), "i"),
                                        (lambda v: rds.symmetry.flip([1.0, 4.0, 2.0, -1.0], v), "j"),
                                        (lambda v: rds.symmetry.canonical(v), "theta"),
                                        (lambda v: rds.symmetry.orbit(v), "theta"),
                                        (lambda v: rds.symmetry.distance_modulo_symmetry(v, np.zeros(4)), "a"),
                                        (lambda v: rds.symmetry.distance_modulo_symmetry(np.zeros(4), v), "b"),
                                        (lambda v: rds.coords.to_pqrs(v), "to_pqrs")])
def test_symmetry_and_coords(func, name):
    @FUZZ
    @given(anything)
    def inner(v):
        check(func, name, v)
    inner()


# ---------------------------------------------------------------------------------------------- I/O
TMP = tempfile.mkdtemp()


@FUZZ
@given(st.text(alphabet="ab/ .-_\\é", max_size=8))
def test_save_path(text):
    if ".." in text.split("/"):
        return
    path = os.path.join(TMP, "d", text)
    os.makedirs(os.path.join(TMP, "d"), exist_ok=True)
    check(lambda p: rds.io.save(xr.Dataset({"a": 1.0}), p), "path", path)


@FUZZ
@given(st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                    max_leaves=8))
def test_attrs_round_trip_or_name_the_attr(value):
    ds = xr.Dataset({"a": 1.0}, attrs={"k": value})
    path = os.path.join(TMP, "attrs.nc")
    try:
        rds.io.save(ds, path)
    except TypeError as e:
        assert "attrs['k']" in str(e), e
        return
    back = rds.io.load(path).attrs["k"]
    if isinstance(value, (bool, int, float, str, type(None))) and not (isinstance(value, float) and np.isnan(value)):
        assert back == value and type(back) in (type(value), np.float64, np.int64, np.str_, str)
