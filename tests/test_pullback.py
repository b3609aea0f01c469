"""Finite-time pullback attractors (paper 002, eq. C.2) and their diagnostics."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import directed_hausdorff

import rds
from analysis.pullback import hausdorff_distance, pullback_attractor, pullback_diagnostics, sample_initial

FA = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
BOX = rds.regions.Box([-1.0] * 4, [1.0] * 4, variables=FA.variables)


def _B(m=12, seed=3):
    return np.random.default_rng(seed).uniform(-1, 1, (m, 4))


def _set_ds(states, var=("w1", "w2", "v1", "v2"), taus=None, model=None):
    """Hand-made sets; of the FA model (attr ``model``) when the variables are the FA network's."""
    states = np.asarray(states, dtype=float)
    taus = np.arange(states.shape[0]) if taus is None else taus
    if model is None:
        model = {("w1", "w2", "v1", "v2"): "fukumizu_amari", ("p", "q", "r", "s"): "fukumizu_amari_pqrs"}.get(
            tuple(var), "hand_made")
    return xr.Dataset({"state": (("tau", "member", "var"), states)},
                      coords={"tau": taus, "member": np.arange(states.shape[1]), "var": list(var)},
                      attrs={"model": model})


# ------------------------------------------------------------------ the sets themselves

def test_tau_zero_gives_B_back():
    B = _B()
    ds = pullback_attractor(FA, B, [0, 5], t=7, seed=1, backend="numpy")
    np.testing.assert_array_equal(ds.state.sel(tau=0).values, B)
    np.testing.assert_array_equal(ds.initial.values, B)
    assert ds.state.dims == ("tau", "member", "var")
    assert list(ds.start_time.values) == [7, 2]


def test_each_tau_is_evolve_from_t_minus_tau_with_the_same_noise():
    B = _B()
    ds = pullback_attractor(FA, B, [3, 40, 200], t=-11, seed=5, realization=2, backend="numpy")
    for tau in (3, 40, 200):
        ref = FA.evolve(B, tau, t0=-11 - tau, seed=5, realization=2, backend="numpy")
        np.testing.assert_array_equal(ds.state.sel(tau=tau).values, ref)
    # members do not interact: a sub-ensemble gives the same rows (one shared noise path)
    sub = pullback_attractor(FA, B[4:7], [200], t=-11, seed=5, realization=2, backend="numpy")
    np.testing.assert_array_equal(sub.state.values[0], ds.state.sel(tau=200).values[4:7])


@settings(max_examples=10, deadline=None)
@given(tau=st.integers(0, 60), s=st.integers(0, 60), t=st.integers(-100, 100))
def test_pullback_cocycle_identity(tau, s, t):
    """Ã_{τ+s}(t) = φ(s, θ_{t−s}ω) Ã_τ(t−s)."""
    B = _B(6)
    big = pullback_attractor(FA, B, [tau + s], t=t, seed=2, backend="numpy").state.values[0]
    small = pullback_attractor(FA, B, [tau], t=t - s, seed=2, backend="numpy").state.values[0]
    pushed = FA.evolve(small, s, t0=t - s, seed=2, backend="numpy")
    np.testing.assert_allclose(big, pushed, rtol=0, atol=1e-12)


def test_independent_of_chunking_executor_and_backend():
    B = _B(23)
    taus = [0, 50, 300]
    ref = pullback_attractor(FA, B, taus, t=4, seed=9, backend="numpy")
    chunked = pullback_attractor(FA, B, taus, t=4, seed=9, backend="numpy", chunk_size=5)
    np.testing.assert_array_equal(ref.state.values, chunked.state.values)
    with ThreadPoolExecutor(2) as ex:
        pooled = pullback_attractor(FA, B, taus, t=4, seed=9, backend="numpy", executor=ex, chunk_size=7)
    np.testing.assert_array_equal(ref.state.values, pooled.state.values)
    nb = pullback_attractor(FA, B, taus, t=4, seed=9, backend="numba", chunk_size=4)
    np.testing.assert_allclose(nb.state.values, ref.state.values, rtol=0, atol=1e-12)
    assert nb.attrs["backend"] == "numba"


def test_box_sampler_and_attrs():
    ds = pullback_attractor(FA, BOX, [0, 10], members=40, sample_seed=3, seed=1, backend="numpy")
    B = ds.initial.values
    assert B.shape == (40, 4) and np.all(np.abs(B) <= 1)
    np.testing.assert_array_equal(B, sample_initial(BOX, FA.variables, 40, sample_seed=3))
    assert not np.array_equal(B, sample_initial(BOX, FA.variables, 40, sample_seed=4))
    a = ds.attrs
    assert a["sigma2"] == 1.0 and a["eta"] == 0.1 and a["t"] == 0 and a["seed"] == 1
    assert a["member_steps"] == 40 * 10 and "C.2" in a["equation"]
    # a callable sampler
    ds2 = pullback_attractor(FA, lambda rng, m: rng.normal(size=(m, 4)), [0], members=5, backend="numpy")
    assert ds2.sizes["member"] == 5


def test_netcdf_round_trip(tmp_path):
    ds = pullback_attractor(FA, BOX, [0, 20, 100], members=30, seed=4, backend="numpy")
    dg = pullback_diagnostics(ds)
    for obj, name in ((ds, "a.nc"), (dg, "b.nc")):
        back = rds.io.load(rds.io.save(obj, tmp_path / name))
        xr.testing.assert_identical(back, obj)


def test_divergence_is_data():
    def blowup(state, xi, params):
        (x,) = state
        return (x * x + 0.0 * xi[0],)

    sys = rds.RandomDynamicalSystem(blowup, noise=rds.noise.Gaussian(0.1), variables=("x",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rds.DivergenceWarning)
        ds = pullback_attractor(sys, np.array([[0.5], [10.0], [-0.2]]), [0, 20], backend="numpy")
    assert ds.n_diverged.values.tolist() == [0, 1]
    assert ds.diverged.values[1].tolist() == [False, True, False]
    dg = pullback_diagnostics(ds)
    assert dg.frac_diverged.values[1] == pytest.approx(1 / 3)
    assert dg.n_finite.values.tolist() == [3, 2]
    assert np.isfinite(dg.hausdorff.values[1])


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("initial, kw, match", [
    (np.zeros((0, 4)), {}, "initial"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), {}, "initial"),
    (np.array([[0.0, np.inf, 0.0, 0.0]]), {}, "initial"),
    (np.zeros((3, 2)), {}, "initial"),
    (np.zeros(4), {}, "initial"),
    (BOX, {}, "members"),
    (np.zeros((3, 4)), {"members": 5}, "members"),
])
def test_bad_initial(initial, kw, match):
    with pytest.raises(ValueError, match=match):
        pullback_attractor(FA, initial, [0, 1], backend="numpy", **kw)


@pytest.mark.parametrize("taus", [[-1, 5], [10, 5], [5, 5], [], [[1, 2]]])
def test_bad_taus(taus):
    with pytest.raises(ValueError, match="taus"):
        pullback_attractor(FA, _B(2), taus, backend="numpy")


def test_bad_types():
    with pytest.raises(TypeError, match="taus"):
        pullback_attractor(FA, _B(2), [0.5, 2])
    with pytest.raises(TypeError, match="initial"):
        pullback_attractor(FA, "abc", [1])
    with pytest.raises(ValueError, match="Box"):
        pullback_attractor(FA, rds.regions.Box([-1], [1], variables=("w1",)), [1], members=3)
    with pytest.raises(ValueError, match="threshold"):
        pullback_diagnostics(_set_ds(np.zeros((1, 2, 4))), threshold=-1)
    with pytest.raises(TypeError, match="ds"):
        pullback_diagnostics(np.zeros((1, 2, 4)))


# ------------------------------------------------------------------ diagnostics on hand-made sets

def test_set_on_Mwv_has_zero_distance():
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=50), rng.normal(size=50)
    on = np.stack([w, w, v, v], axis=-1)
    off = on + np.array([0.3, 0.0, 0.0, 0.0])                      # on neither M_w nor M_wv
    half = on + np.array([0.0, 0.0, 0.3, 0.0])                      # on M_w only
    mirror = np.stack([w, -w, v, -v], axis=-1)                      # flipped image of M_wv
    dg = pullback_diagnostics(_set_ds([on, off, half, mirror]))
    np.testing.assert_array_equal(dg.abs_dw.values[0], 0.0)
    np.testing.assert_array_equal(dg.abs_dv.values[0], 0.0)
    assert dg.frac_Mwv.values.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert dg.frac_Mw.values.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert dg.frac_Mwv_sym.values.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert dg.frac_Mw_sym.values.tolist()[3] == 1.0
    np.testing.assert_allclose(dg.frac_Mwv_positive.values, [np.mean((w > 0) & (v > 0)), 0.0, 0.0, 0.0])
    np.testing.assert_allclose(dg.abs_dw.values[1], 0.3)
    # the same set in (p, q, r, s) coordinates: r = s = 0
    dq = pullback_diagnostics(_set_ds([rds.coords.to_pqrs(on)], var=("p", "q", "r", "s")))
    assert float(dq.frac_Mwv[0]) == 1.0 and np.max(dq.abs_dw.values) < 1e-15


def test_distance_to_optimum_modulo_symmetry():
    theta = rds.models.OPTIMA
    imgs = rds.symmetry.orbit(theta[0])                              # all images of one optimum
    near = theta + 0.01
    far = np.zeros_like(theta)
    dg = pullback_diagnostics(_set_ds([theta, imgs, near, far]))
    assert np.max(dg.dist_optimum.values[:2]) == 0.0
    np.testing.assert_allclose(dg.dist_optimum.values[2], 0.02)
    assert dg.frac_optimum.values.tolist() == [1.0, 1.0, 1.0, 0.0]
    np.testing.assert_allclose(dg.dist_optimum.values[3], np.sqrt(1 + 16 + 4 + 1))


def test_hausdorff_identical_shifted_and_symmetric():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(200, 4))
    assert hausdorff_distance(A, A) == 0.0
    assert hausdorff_distance(A, A[::-1]) == 0.0                      # order does not matter
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 4), -1).reshape(-1, 4)   # spacing 1
    shift = np.array([0.1, -0.2, 0.0, 0.05])
    assert hausdorff_distance(grid, grid + shift) == pytest.approx(np.linalg.norm(shift), abs=1e-14)
    one = A[:1]
    assert hausdorff_distance(one, one + 3 * shift) == pytest.approx(3 * np.linalg.norm(shift), abs=1e-14)
    # against scipy's brute-force directed Hausdorff on a random pair
    Bset = rng.normal(size=(150, 4)) + 0.3
    ref = max(directed_hausdorff(A, Bset)[0], directed_hausdorff(Bset, A)[0])
    assert hausdorff_distance(A, Bset) == pytest.approx(ref, rel=1e-12)
    # modulo symmetry: a set and its swapped/flipped image coincide
    img = rds.symmetry.flip(rds.symmetry.swap(A, 0, 1), 1)
    assert hausdorff_distance(A, img) > 0.1
    assert hausdorff_distance(A, img, modulo_symmetry=True) == pytest.approx(0.0, abs=1e-14)


def test_diagnostics_hausdorff_between_successive_taus():
    grid = np.stack(np.meshgrid(*[np.arange(3.0)] * 4), -1).reshape(-1, 4)
    shift = np.array([0.0, 0.0, 0.0, 0.2])
    dg = pullback_diagnostics(_set_ds([grid, grid, grid + shift], taus=[10, 100, 1000]))
    assert np.isnan(dg.hausdorff.values[0])
    assert dg.hausdorff.values[1] == 0.0
    assert dg.hausdorff.values[2] == pytest.approx(0.2, abs=1e-14)
    assert dg.previous_tau.values.tolist() == [-1, 10, 100]
    np.testing.assert_allclose(dg.spread.values[2], dg.spread.values[0])   # a shift keeps the spread


def test_generic_system_diagnostics():
    ds = _set_ds(np.random.default_rng(2).normal(size=(2, 30, 1)), var=("phi",))
    dg = pullback_diagnostics(ds)
    assert "frac_Mwv" not in dg and "spread" in dg and np.isfinite(dg.hausdorff.values[1])


def test_plot_returns_figure():
    from matplotlib.figure import Figure

    from analysis.plots_pullback import plot_pullback_attractors
    ds = pullback_attractor(FA, BOX, [0, 30], members=50, backend="numpy")
    fig = plot_pullback_attractors([ds, ds], diagnostics=[pullback_diagnostics(ds)] * 2, max_points=20)
    assert isinstance(fig, Figure) and len(fig.axes) == 4


def test_example_runs_tiny(tmp_path, capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "pullback_attractors.py"
    spec = importlib.util.spec_from_file_location("pullback_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(str(tmp_path), "small", members=8, taus=(5, 20), realizations=2, realization_members=4,
                  backend="numpy")
    assert set(res) == {0.1, 1.0}
    assert (tmp_path / "pullback_attractors.png").exists() and (tmp_path / "pullback_realizations.nc").exists()
    back = rds.io.load(tmp_path / "pullback_sigma2_1.nc")
    xr.testing.assert_identical(back, res[1.0][0])
    assert "Paper (Fig. 4)" in capsys.readouterr().out
