"""Core: the system, noise paths, both backends, the built-in models, coordinates, symmetries and I/O."""

import os

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import rds
from rds import coords, symmetry
from rds.models import fukumizu_amari, fukumizu_amari_pqrs, fukumizu_amari_reduced, phase_oscillator, teacher_student

FAST = settings(max_examples=25, deadline=None)
reals = st.floats(-2.0, 2.0, allow_nan=False)
theta4 = st.tuples(reals, reals, reals, reals).map(np.array)
inputs = st.floats(-3.0, 3.0, allow_nan=False)


def small_dataset(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, 2 * np.tanh(x) + 0.1 * rng.standard_normal(n)


def logistic_step(state, xi, params):
    (x,) = state
    return (params[0] * x * (1.0 - x) + xi[0],)


def all_models():
    x, y = small_dataset()
    return {
        "fa": fukumizu_amari(eta=0.1, sigma2=1.0, batch=2),
        "reduced": fukumizu_amari_reduced(eta=0.1, sigma2=0.5),
        "pqrs": fukumizu_amari_pqrs(eta=0.1, sigma2=1.0),
        "osc": phase_oscillator(omega=1.0, sigma2=0.3, dt=0.01),
        "gd": teacher_student(x, y, hidden=3, eta=0.05),
    }


def initial_for(system, members=17, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (members, system.nvar))


# ------------------------------------------------------------------------------------------------ noise paths
def test_noise_block_is_independent_of_chunking_and_handles_negative_times():
    g = rds.noise.Gaussian(sigma2=0.7, batch=3)
    whole = g.block(seed=5, realization=2, t0=-2500, t1=1700)
    parts = np.concatenate([g.block(5, 2, a, b) for a, b in [(-2500, -1024), (-1024, -1023), (-1023, 3), (3, 1700)]])
    np.testing.assert_array_equal(whole, parts)
    assert whole.shape == (4200, 3)
    assert abs(whole.var() - 0.7) < 0.05


def test_noise_differs_between_seeds_realisations_and_members():
    g = rds.noise.Gaussian(sigma2=1.0)
    a, b, c = g.block(0, 0, 0, 100), g.block(1, 0, 0, 100), g.block(0, 1, 0, 100)
    assert not np.allclose(a, b) and not np.allclose(a, c)
    ind = g.block(0, 0, 0, 50, members=(0, 130))
    assert ind.shape == (50, 1, 130)
    np.testing.assert_array_equal(ind[..., 60:75], g.block(0, 0, 0, 50, members=(60, 75)))
    assert not np.allclose(ind[..., 0], ind[..., 1])


def test_wiener_increment_variance():
    w = rds.noise.Wiener(sigma2=0.5, dt=0.01)
    assert abs(w.block(0, 0, 0, 100_000).var() / (0.5 * 0.01) - 1) < 0.02


# ------------------------------------------------------------------------------------------------ backends
@pytest.mark.parametrize("name", ["fa", "reduced", "pqrs", "osc", "gd"])
def test_backends_agree_on_every_service(name):
    system = all_models()[name]
    u = initial_for(system)
    steps = 300
    a = system.evolve(u, steps, seed=3, t0=-100, backend="numpy")
    b = system.evolve(u, steps, seed=3, t0=-100, backend="numba")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    ta = system.propagate_tangent(u, 120, seed=1, qr_every=7, backend="numpy")
    tb = system.propagate_tangent(u, 120, seed=1, qr_every=7, backend="numba")
    np.testing.assert_allclose(ta["logr"], tb["logr"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ta["V"], tb["V"], rtol=0, atol=1e-10)


def test_first_exit_backends_agree_and_censor():
    red = fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    box = rds.regions.Box([-2, -2], [2, 2], ("w", "v"))
    w0 = np.random.default_rng(1).uniform(0.01, 2, (200, 2))
    a = red.first_exit(w0, box, 3000, seed=2, backend="numpy")
    b = red.first_exit(w0, box, 3000, seed=2, backend="numba")
    np.testing.assert_array_equal(a["exit_step"], b["exit_step"])
    np.testing.assert_allclose(a["state"], b["state"], atol=1e-12)
    left = a["exit_step"] > 0
    assert left.any() and (~left).any()
    assert not np.any(box.contains(a["state"][left], red.variables))
    assert np.all(box.contains(a["state"][~left], red.variables))
    # the exit step is exact: one step earlier the member was still inside
    for m in np.flatnonzero(left)[:5]:
        n = a["exit_step"][m]
        before = red.evolve(w0[m], n - 1, seed=2, backend="numpy")
        after = red.evolve(w0[m], n, seed=2, backend="numpy")
        assert box.contains(before, red.variables) and not box.contains(after, red.variables)


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="backend"):
        fukumizu_amari().evolve(np.zeros(4), 3, backend="cuda")


# ------------------------------------------------------------------------------------------------ cocycle
@FAST
@given(s=st.integers(0, 1500), t=st.integers(0, 1500), t0=st.integers(-3000, 3000))
def test_cocycle_property(s, t, t0):
    fa = fukumizu_amari(eta=0.1, sigma2=1.0)
    u = initial_for(fa, 5)
    once = fa.evolve(u, s + t, t0=t0, seed=4, backend="numpy")
    twice = fa.evolve(fa.evolve(u, s, t0=t0, seed=4, backend="numpy"), t, t0=t0 + s, seed=4, backend="numpy")
    np.testing.assert_array_equal(once, twice)


@pytest.mark.parametrize("common", [True, False])
def test_chunk_size_independence(common):
    fa = fukumizu_amari(eta=0.1, sigma2=1.0, common_noise=common)
    u = initial_for(fa, 150)
    ref = fa.evolve(u, 200, seed=9, backend="numpy")
    for cs in (1, 7, 64, 149):
        np.testing.assert_array_equal(fa.evolve(u, 200, seed=9, backend="numpy", chunk_size=cs), ref)
    np.testing.assert_allclose(fa.evolve(u, 200, seed=9, backend="numba", chunk_size=33), ref, atol=1e-12)


def test_common_noise_is_shared_and_independent_noise_is_not():
    fa = fukumizu_amari(eta=0.1, sigma2=1.0)
    u = np.repeat(initial_for(fa, 1), 3, axis=0)
    out = fa.evolve(u, 50, seed=0)
    np.testing.assert_array_equal(out[0], out[1])
    out = fa.replace(common_noise=False).evolve(u, 50, seed=0)
    assert not np.allclose(out[0], out[1])


# ------------------------------------------------------------------------------------------------ FA structure
@FAST
@given(w=reals, v=reals, x=inputs)
def test_M_wv_is_invariant_and_reduced_map_is_the_restriction(w, v, x):
    fa = fukumizu_amari(eta=0.1)
    red = fukumizu_amari_reduced(eta=0.1)
    xi = np.array([x])
    th = fa.apply(np.array([w, w, v, v]), xi)
    assert th[0] == th[1] and th[2] == th[3]
    np.testing.assert_allclose(th[[0, 2]], red.apply(np.array([w, v]), xi), rtol=1e-13, atol=1e-15)


def test_M_wv_invariant_along_a_trajectory_but_M_w_is_not():
    fa = fukumizu_amari(eta=0.1, sigma2=1.0)
    th = fa.evolve(np.array([[0.5, 0.5, 0.3, 0.3], [0.5, 0.5, 0.3, -0.2]]), 2000, seed=1)
    assert th[0, 0] == th[0, 1] and th[0, 2] == th[0, 3]
    assert th[1, 0] != th[1, 1]


@FAST
@given(theta=theta4, x=inputs)
def test_equivariance_under_swap_and_flip(theta, x):
    fa = fukumizu_amari(eta=0.1)
    xi = np.array([x])
    out = fa.apply(theta, xi)
    np.testing.assert_allclose(fa.apply(symmetry.swap(theta, 0, 1), xi), symmetry.swap(out, 0, 1), atol=1e-14)
    for j in (0, 1):
        np.testing.assert_allclose(fa.apply(symmetry.flip(theta, j), xi), symmetry.flip(out, j), atol=1e-14)


@FAST
@given(theta=theta4, x=inputs)
def test_pqrs_map_is_conjugate(theta, x):
    fa, pq = fukumizu_amari(eta=0.1), fukumizu_amari_pqrs(eta=0.1)
    xi = np.array([x])
    np.testing.assert_allclose(coords.to_pqrs(fa.apply(theta, xi)), pq.apply(coords.to_pqrs(theta), xi),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(coords.from_pqrs(coords.to_pqrs(theta)), theta, atol=1e-15)


def test_pqrs_on_datasets():
    fa = fukumizu_amari()
    ds = fa.trajectory(initial_for(fa, 3), 10, every=5)
    p = coords.to_pqrs(ds)
    assert list(p["var"].values) == ["p", "q", "r", "s"]
    np.testing.assert_allclose(p.state.values, coords.to_pqrs(ds.state.values), atol=1e-15)
    back = coords.from_pqrs(p)
    np.testing.assert_allclose(back.state.values, ds.state.values, atol=1e-15)
    with pytest.raises(ValueError):
        coords.to_pqrs(np.zeros(3))


def test_optima_are_fixed_points_for_every_input():
    fa = fukumizu_amari(eta=0.1)
    for x in (-2.0, 0.3, 1.7):
        np.testing.assert_allclose(fa.apply(rds.models.OPTIMA, np.array([x])), rds.models.OPTIMA, atol=1e-14)


@FAST
@given(theta=st.lists(reals, min_size=6, max_size=6).map(np.array))
def test_canonical_is_invariant_on_the_orbit(theta):
    images = symmetry.orbit(theta)
    assert images.shape == (48, 6)
    can = symmetry.canonical(images)
    np.testing.assert_array_equal(can, np.broadcast_to(symmetry.canonical(theta), can.shape))
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(rds.models.network_output(images, x),
                               np.broadcast_to(rds.models.network_output(theta, x), (48, 7)), atol=1e-13)
    assert symmetry.distance_modulo_symmetry(theta, images[17]) < 1e-12


def test_canonical_maps_all_optima_to_one_point():
    can = np.unique(symmetry.canonical(rds.models.OPTIMA), axis=0)
    np.testing.assert_array_equal(can, [[1, 4, 2, -1]])  # eq. 9 is one orbit of the symmetry group


# ------------------------------------------------------------------------------------------------ Jacobians
@pytest.mark.parametrize("name", ["fa", "reduced", "osc", "gd"])
def test_automatic_jacobian_equals_analytic(name):
    system = all_models()[name]
    auto = system.replace(jacobian=None)
    u = initial_for(system, 40)
    xi = system.noise_path(7, 8, seed=2)[0]
    np.testing.assert_allclose(auto.jacobian_matrix(u, xi), system.jacobian_matrix(u, xi), rtol=1e-12, atol=1e-13)
    # and both agree with central differences to their accuracy
    h = 1e-6
    fd = np.stack([(system.apply(u + h * e, xi) - system.apply(u - h * e, xi)) / (2 * h)
                   for e in np.eye(system.nvar)], axis=-1)
    np.testing.assert_allclose(system.jacobian_matrix(u, xi), fd, atol=1e-7)


def test_user_map_gets_exact_automatic_jacobian_on_both_backends():
    sys_ = rds.RandomDynamicalSystem(logistic_step, noise=rds.noise.Gaussian(1e-4), variables=("x",), params=(3.3,))
    u = np.array([[0.2], [0.5], [0.7]])
    xi = np.array([0.01])
    np.testing.assert_allclose(sys_.jacobian_matrix(u, xi)[:, 0, 0], 3.3 * (1 - 2 * u[:, 0]),
                               rtol=1e-14, atol=1e-15)
    u = np.array([[0.2], [0.45], [0.7]])  # (x = 1/2 has derivative 0: log 0 = -inf, avoided)
    a = sys_.propagate_tangent(u, 400, backend="numpy")["logr"]
    b = sys_.propagate_tangent(u, 400, backend="numba")["logr"]
    np.testing.assert_allclose(a, b, atol=1e-10)


# ------------------------------------------------------------------------------------------------ GD model
def test_gd_step_equals_independent_formula():
    x, y = small_dataset(30, seed=3)
    gd = teacher_student(x, y, hidden=2, eta=0.01)
    th = np.array([-0.13, 0.13, 0.16, -0.15])
    w, v = th[:2], th[2:]
    t = np.tanh(np.outer(x, w))  # (n, 2)
    r = t @ v - y
    grad_v = 2 * (t * r[:, None]).mean(0)
    grad_w = 2 * ((1 - t**2) * x[:, None] * v * r[:, None]).mean(0)
    expect = th - 0.01 * np.concatenate([grad_w, grad_v])
    np.testing.assert_allclose(gd.apply(th), expect, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(gd.evolve(th, 1, backend="numba"), expect, rtol=1e-13)
    # GD decreases the training error from here
    assert rds.models.training_error(gd.evolve(th, 100), x, y) < rds.models.training_error(th, x, y)


# --------------------------------------------------------------------------------------- trajectory, divergence
def test_trajectory_records_at_requested_times():
    fa = fukumizu_amari()
    u = initial_for(fa, 4)
    ds = fa.trajectory(u, 1000, times=[5, 6, 15, 1004, 1005], seed=2, t0=5)
    assert list(ds.time.values) == [5, 6, 15, 1004, 1005]
    np.testing.assert_array_equal(ds.state.sel(time=15).values, fa.evolve(u, 10, t0=5, seed=2))
    np.testing.assert_array_equal(ds.state.sel(time=5).values, u)
    reg = fa.trajectory(u, 25, every=10)
    assert list(reg.time.values) == [0, 10, 20, 25]
    with pytest.raises(ValueError, match="times"):
        fa.trajectory(u, 10, times=[20])


def test_divergence_is_flagged_not_fatal():
    def doubling(state, xi, params):
        (x,) = state
        return (x * x * params[0] + xi[0],)

    sys_ = rds.RandomDynamicalSystem(doubling, noise=rds.noise.Gaussian(0.0), variables=("x",), params=(1.0,))
    u = np.array([[0.5], [2.0], [0.1]])
    for backend in ("numpy", "numba"):
        with pytest.warns(rds.DivergenceWarning, match="1 of 3"):
            ds = sys_.trajectory(u, 20, backend=backend)
        assert ds.diverged.values.tolist() == [False, True, False]
        assert np.isnan(ds.state.values[-1, 1, 0]) and np.isfinite(ds.state.values[-1, [0, 2], 0]).all()
        assert ds.attrs["n_diverged"] == 1


# ------------------------------------------------------------------------------------------------ I/O
def test_trajectory_round_trips_through_netcdf(tmp_path):
    fa = fukumizu_amari(eta=0.1, sigma2=1.0)
    ds = fa.trajectory(initial_for(fa, 3), 30, every=10, seed=1)
    ds.attrs["flag"] = True
    ds.attrs["settings"] = {"a": 1, "b": [1, 2]}
    ds.attrs["nothing"] = None
    path = rds.io.save(ds, tmp_path / "traj.nc")
    back = rds.io.load(path)
    xr.testing.assert_identical(back, ds)
    assert back.attrs["flag"] is True and back.attrs["settings"] == {"a": 1, "b": [1, 2]}


def test_failed_save_leaves_no_file(tmp_path):
    bad = xr.Dataset({"a": ("x", np.array([object(), object()], dtype=object))})
    with pytest.raises(Exception):  # noqa: B017 - any error from the netCDF writer
        rds.io.save(bad, tmp_path / "bad.nc")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="path"):
        rds.io.save(xr.Dataset(), tmp_path / "missing" / "x.nc")


def test_systems_pickle_by_recipe():
    import pickle
    x, y = small_dataset()
    for system in [fukumizu_amari(eta=0.2, sigma2=0.3).replace(common_noise=False), teacher_student(x, y, 2, 0.1)]:
        clone = pickle.loads(pickle.dumps(system))
        u = initial_for(system, 3)
        np.testing.assert_array_equal(clone.evolve(u, 20, backend="numpy"), system.evolve(u, 20, backend="numpy"))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make, match", [
    (lambda: fukumizu_amari(sigma2=-1.0), "sigma2"),
    (lambda: fukumizu_amari(eta=0.0), "eta"),
    (lambda: fukumizu_amari(eta=-0.1), "eta"),
    (lambda: fukumizu_amari(batch=0), "batch"),
    (lambda: fukumizu_amari_reduced(sigma2=-0.5), "sigma2"),
    (lambda: phase_oscillator(dt=-0.01), "dt"),
    (lambda: phase_oscillator(sigma2=-1.0), "sigma2"),
    (lambda: teacher_student(np.zeros(3), np.zeros(4)), "same length"),
    (lambda: teacher_student(np.array([0.0, np.nan]), np.zeros(2)), "x must be finite"),
    (lambda: teacher_student(np.zeros(3), np.zeros(3), hidden=0), "hidden"),
    (lambda: teacher_student(np.zeros(3), np.zeros(3), eta=0), "eta"),
    (lambda: fukumizu_amari().evolve(np.zeros(3), 5), "initial"),
    (lambda: fukumizu_amari().evolve(np.array([0, 0, np.inf, 0]), 5), "initial"),
    (lambda: fukumizu_amari().evolve(np.zeros(4), -1), "steps"),
    (lambda: fukumizu_amari().evolve(np.zeros(4), 5, seed=-1), "seed"),
    (lambda: fukumizu_amari().evolve(np.zeros(4), 5, chunk_size=0), "chunk_size"),
    (lambda: fukumizu_amari().propagate_tangent(np.zeros((1, 4)), 5, qr_every=0), "qr_every"),
    (lambda: rds.regions.Box([1, 0], [0, 1], ("w", "v")), "empty"),
    (lambda: rds.RandomDynamicalSystem(logistic_step, variables=("x", "x")), "distinct"),
])
def test_bad_input_raises_value_error_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="executor"):
        fukumizu_amari().evolve(np.zeros(4), 5, executor="pool")
    with pytest.raises(TypeError, match="params"):
        rds.RandomDynamicalSystem(logistic_step, variables=("x",), params=[1.0])


def test_box_bounds_for_sampling():
    box = rds.regions.Box([0, -1], [2, 1], ("w", "v"))
    low, high = box.bounds_for(("v", "w"))
    np.testing.assert_array_equal(low, [-1, 0])
    np.testing.assert_array_equal(high, [1, 2])
    with pytest.raises(ValueError, match="missing"):
        box.bounds_for(("w", "x"))
    with pytest.raises(ValueError, match="finite"):
        rds.regions.Box([0], [np.inf], ("w",)).bounds_for(("w",))
