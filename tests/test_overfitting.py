"""Tests of analysis.overfitting: GD on a fixed noisy dataset (papers 000/001)."""

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

import analysis
import rds
from analysis import overfitting as ov

# The authors' dataset: $RDS_OVERFITTING_DATA, else ../shared/data beside the checkout; the test skips without it.
AUTHORS_DATA = Path(os.environ.get("RDS_OVERFITTING_DATA",
                                   Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
                                   / "overfitting_dataset.dat"))
START = np.array([-0.13, 0.13, 0.16, -0.15])


def _quad_gen(theta):
    w1, w2, v1, v2 = theta
    f = lambda x: ((v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x) - 2 * np.tanh(x)) ** 2
                   * np.exp(-x * x / 2) / np.sqrt(2 * np.pi))
    cuts = [-np.inf, -1.0, -0.1, 0.0, 0.1, 1.0, np.inf]
    return sum(quad(f, a, b, epsabs=1e-15, epsrel=1e-14, limit=2000)[0] for a, b in zip(cuts[:-1], cuts[1:]))


@pytest.mark.parametrize("theta", [(0.548, 2.155, 1.61, 0.67), (-0.13, 0.13, 0.16, -0.15), (5.0, -3.0, 1.0, 2.0),
                                   (10.0, 0.5, 1.0, 1.0), (25.0, -1.0, -0.7, 3.0), (0.0, 0.0, 0.0, 0.0),
                                   (1.0, 1.0, 1.5, 0.5)])
def test_generalization_error_matches_quad(theta):
    assert abs(float(ov.generalization_error(theta)) - _quad_gen(theta)) < 1e-12


def test_generalization_error_zero_on_O_and_invariant():
    O = rds.symmetry.orbit(ov.optimal_set_sample(7))          # (8, 21, 4)
    assert np.max(ov.generalization_error(O)) < 1e-14
    assert np.max(ov.distance_to_optimal_set(O)) < 1e-12
    th = np.array([0.4, -1.7, 0.9, 2.2])
    assert np.ptp(ov.generalization_error(rds.symmetry.orbit(th))) < 1e-14
    # distance to O is a true distance to the set: moving off a line of O by d gives d
    assert abs(float(ov.distance_to_optimal_set([1.0, 0.3, 2.0, 0.05])) - 0.05) < 1e-12


def test_gradient_and_hessian_against_finite_differences():
    x, y = ov.make_dataset(40, noise_std=0.2, seed=3)
    rng = np.random.default_rng(0)
    for th in rng.uniform(-2, 2, (3, 4)):
        g, H = ov.training_gradient(th, x, y), ov.training_hessian(th, x, y)
        e, I = 1e-6, np.eye(4)
        gfd = [(ov.training_error(th + e * I[i], x, y) - ov.training_error(th - e * I[i], x, y)) / (2 * e)
               for i in range(4)]
        Hfd = [(ov.training_gradient(th + e * I[i], x, y) - ov.training_gradient(th - e * I[i], x, y)) / (2 * e)
               for i in range(4)]
        np.testing.assert_allclose(g, gfd, atol=1e-8)
        np.testing.assert_allclose(H, np.array(Hfd), atol=1e-8)
        assert np.allclose(H, H.T)
        # the core's Jacobian is I − η ∇²E_tr, and its E_tr is ours
        gd = rds.models.teacher_student(x, y, hidden=2, eta=0.01)
        np.testing.assert_allclose((np.eye(4) - gd.jacobian_matrix(th)) / 0.01, H, atol=1e-11)
        assert abs(rds.models.training_error(th, x, y) - ov.training_error(th, x, y)) < 1e-15
        # one GD step is θ − η ∇E_tr
        np.testing.assert_allclose(gd.evolve(th, 1, backend="numpy"), th - 0.01 * g, atol=1e-15)


def test_hessian_three_neurons_vectorised():
    x, y = ov.make_dataset(15, noise_std=0.1, seed=5)
    th = np.random.default_rng(2).normal(size=(2, 3, 6))
    H = ov.training_hessian(th, x, y)
    assert H.shape == (2, 3, 6, 6)
    gd = rds.models.teacher_student(x, y, hidden=3, eta=0.02)
    np.testing.assert_allclose((np.eye(6) - gd.jacobian_matrix(th)) / 0.02, H, atol=1e-11)


@pytest.fixture(scope="module")
def small_noise_runs():
    """8 starts, small-noise dataset, GD (numba) then Newton polishing."""
    x, y = ov.make_dataset(30, noise_std=0.05, seed=11)
    gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    starts = np.random.default_rng(4).uniform(-1.0, 1.0, (8, 4))
    return x, y, ov.convergence_modulo_symmetry(gd, starts, 30_000, backend="numba")


def test_overfitting_point_is_strict_local_minimum(small_noise_runs):
    x, y, ds = small_noise_runs
    m = int(np.nanargmin(ds.E_tr.values))
    p = ov.overfitting_point(x, y, ds.end.values[m])
    assert p["converged"] and p["grad_norm"] < 1e-10
    assert p["n_unstable"] == 0 and p["eigenvalues"][0] > 1e-8
    # strictly lower than every nearby point
    th, E0 = p["theta"], p["E_tr"]
    d = np.random.default_rng(0).normal(size=(200, 4))
    d *= 1e-3 / np.linalg.norm(d, axis=1, keepdims=True)
    assert np.all(ov.training_error(th + d, x, y) > E0)
    # E_tr at the overfitting point is below the noise level on O (Prop. 3.1's value (1/n) Σ ε²)
    assert E0 < np.mean((y - 2 * np.tanh(x)) ** 2)
    assert p["E_gen"] > 0


def test_canonical_end_points_agree_theorem_3_1(small_noise_runs):
    x, y, ds = small_noise_runs
    strict = ds.kind.values == 0
    assert np.all((ds.n_unstable.values[strict] == 0) & (ds.min_eig.values[strict] > 0))
    assert np.all(ds.converged.values[strict] == 1)
    assert strict.sum() >= 6, ds.canonical.values
    can = ds.canonical.values[strict]
    # the minimum is shallow (smallest Hessian eigenvalue ~1e-5), so |∇E_tr| ≤ 1e-12 pins θ only to ~1e-7;
    # distinct critical points of this landscape are O(0.1) apart
    assert np.max(np.abs(can - can[0])) < 1e-6
    assert float(ds.spread_minima) < 1e-6
    E = ds.E_tr.values[strict]
    assert np.ptp(E) < 1e-14
    assert float(ds.function_spread) < 1e-6


def test_degenerate_line_of_minima_is_one_function():
    """Synchronised neurons w1 = w2: only v1 + v2 matters, a line of critical points with one zero eigenvalue."""
    x, y = ov.make_dataset(30, noise_std=0.2, seed=1)
    gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    # the best one-neuron fit a tanh(b x), embedded as (b, b, a/2 + c, a/2 - c)
    one = ov.overfitting_point(x, y, [1.0, 0.0, 2.0, 0.0])
    b, a = one["theta"][0], one["theta"][2]
    assert one["converged"] and abs(one["theta"][3]) < 1e-12 or abs(one["theta"][1]) < 1e-12
    line = np.array([[b, b, a / 2 + c, a / 2 - c] for c in (-0.3, 0.0, 0.4)])
    ds = ov.convergence_modulo_symmetry(gd, line, 1, backend="numpy", polish=False)
    assert np.all(ds.grad_norm.values < 1e-10)
    assert np.all(np.isin(ds.kind.values, [1, 2]))          # critical, never counted as strict minima
    lam = np.linalg.eigvalsh(ov.training_hessian(ds.end.values, x, y))
    assert np.all(np.min(np.abs(lam), axis=1) < 1e-10)        # the zero mode along the line
    assert float(ds.spread) > 0.1
    assert np.max(ov.function_distance(ds.end.values[:, None], ds.end.values[None, :])) < 1e-14
    # canonical forms differ from the raw end points for some starts: the symmetry matters
    assert np.max(np.abs(ds.end.values - ds.canonical.values)) > 0.1


def test_prop_3_1_no_critical_point_on_O():
    x, y = ov.make_dataset(100, noise_std=0.2, seed=7)
    O = rds.symmetry.orbit(ov.optimal_set_sample(41, span=4.0)).reshape(-1, 4)
    g = np.linalg.norm(ov.training_gradient(O, x, y), axis=-1)
    eps = y - 2 * np.tanh(x)
    bound = abs(2 * np.mean(eps * np.tanh(x)))      # |∂E_tr/∂v| of the neuron equal to the teacher, on all of O
    assert bound > 1e-3
    assert np.min(g) >= bound * (1 - 1e-12)
    # E_tr is constant on O and equals (1/n) Σ ε_k²
    np.testing.assert_allclose(ov.training_error(O, x, y), np.mean(eps ** 2), rtol=1e-12)
    # contrast: noise-free labels make every point of O critical
    g0 = np.linalg.norm(ov.training_gradient(O, x, 2 * np.tanh(x)), axis=-1)
    assert np.max(g0) < 1e-13


def test_learning_curves_structure_and_roundtrip(tmp_path):
    x, y = ov.make_dataset(25, noise_std=0.2, seed=1)
    gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    ds = analysis.learning_curves(gd, START, 3000, num=30, backend="numpy")
    assert ds.time.values[0] == 0 and ds.time.values[-1] == 3000
    assert np.all(np.diff(ds.time.values) > 0)
    for v in ["E_tr", "E_gen", "n_unstable", "phase", "grad_norm"]:
        assert ds[v].dims == ("time",)
    assert ds.hessian.dims == ("time", "var", "var_b")
    np.testing.assert_allclose(ds.E_tr, ov.training_error(ds.state.values, x, y), rtol=1e-14)
    np.testing.assert_allclose(ds.E_gen, ov.generalization_error(ds.state.values), rtol=1e-14)
    assert np.all(np.diff(ds.E_tr.values) <= 1e-15)          # GD with small η descends
    assert int(ds.t_min_gen) in ds.time.values
    assert float(ds.E_gen_min) == pytest.approx(float(ds.E_gen.min()))
    assert set(np.unique(ds.phase.values)) <= {0, 1, 2}
    assert ds.phase.values[0] == 0                         # starts next to f ≡ 0: plateau
    lam = ds.hessian_eigenvalues.values
    np.testing.assert_array_equal(ds.n_unstable.values, np.sum(lam < -1e-9 * np.maximum(1, np.abs(lam).max(1,
                                                                   keepdims=True)), axis=1))
    path = tmp_path / "lc.nc"
    rds.io.save(ds, path)
    back = rds.io.load(path)
    xr_equal = back.load().identical(ds) or all(np.array_equal(back[v].values, ds[v].values, equal_nan=True)
                                                for v in ds.data_vars)
    assert xr_equal
    assert back.attrs["phase_ranges"] == ds.attrs["phase_ranges"]


def test_learning_curves_numba_matches_numpy():
    x, y = ov.make_dataset(20, noise_std=0.1, seed=2)
    gd = rds.models.teacher_student(x, y, hidden=2, eta=0.05)
    a = analysis.learning_curves(gd, START, 500, num=10, backend="numpy")
    b = analysis.learning_curves(gd, START, 500, num=10, backend="numba")
    np.testing.assert_allclose(a.state, b.state, atol=1e-12)


def test_noise_free_run_approaches_O_and_noisy_run_overfits():
    """Paper 000, Fig. 4: noisy labels → E_gen has an interior minimum, then rises; noise-free → E_gen keeps falling."""
    x, y = ov.make_dataset(40, noise_std=0.3, seed=0)
    _, y0 = ov.make_dataset(40, noise_std=0.0, seed=0)
    steps = 40_000
    noisy = analysis.learning_curves(rds.models.teacher_student(x, y, 2, 0.05), START, steps, num=60)
    clean = analysis.learning_curves(rds.models.teacher_student(x, y0, 2, 0.05), START, steps, num=60)
    assert int(noisy.t_min_gen) < steps and float(noisy.E_gen_final) > 1.5 * float(noisy.E_gen_min)
    assert noisy.phase.values[-1] == 2 and int(noisy.n_unstable[-1]) == 0
    assert float(clean.E_gen_final) < 0.1 * float(noisy.E_gen_min)
    assert float(clean.E_gen[-1]) <= float(clean.E_gen.min()) * (1 + 1e-9)


def test_authors_dataset_overfitting_point():
    if not AUTHORS_DATA.exists():
        pytest.skip("authors' dataset not available")
    x, y = ov.load_dataset(AUTHORS_DATA)
    assert x.shape == y.shape == (100,)
    # the authors' code (main.jl, `overfitted`) lists w = (0.54795..., 2.15474...), v = (1.61051..., 0.67118...)
    authors = np.array([0.5479504133334038, 2.154742368932136, 1.6105171890567702, 0.6711825665103458])
    p = ov.overfitting_point(x, y, authors)
    assert p["converged"] and p["n_unstable"] == 0 and p["eigenvalues"][0] > 0
    assert np.max(np.abs(p["canonical"] - authors)) < 1e-5


def test_make_and_load_dataset(tmp_path):
    x1, y1 = ov.make_dataset(50, noise_std=0.2, seed=9)
    x2, y2 = ov.make_dataset(50, noise_std=0.0, seed=9)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_allclose(y2, 2 * np.tanh(x2))
    assert 0.1 < np.std(y1 - y2) < 0.3
    p = tmp_path / "d.dat"
    np.savetxt(p, np.stack([x1, y1], 1))
    x3, y3 = ov.load_dataset(p)
    np.testing.assert_allclose(x3, x1, rtol=1e-15)
    np.testing.assert_allclose(y3, y1, rtol=1e-15)


def test_bad_input(tmp_path):
    x, y = ov.make_dataset(10, seed=0)
    with pytest.raises(ValueError, match="same length"):
        rds.models.teacher_student(x, y[:-1])
    with pytest.raises(ValueError, match="y must be finite"):
        rds.models.teacher_student(x, np.where(np.arange(10) == 3, np.nan, y))
    with pytest.raises(ValueError, match="x must be finite"):
        rds.models.teacher_student(np.where(np.arange(10) == 3, np.inf, x), y)
    with pytest.raises(ValueError, match="hidden"):
        rds.models.teacher_student(x, y, hidden=0)
    with pytest.raises(ValueError, match="eta"):
        rds.models.teacher_student(x, y, eta=0.0)
    with pytest.raises(ValueError, match="same length"):
        ov.training_error(START, x, y[:3])
    with pytest.raises(ValueError, match="y must be finite"):
        ov.training_hessian(START, x, np.full(10, np.nan))
    with pytest.raises(ValueError, match="noise_std"):
        ov.make_dataset(10, noise_std=-1.0)
    with pytest.raises(ValueError, match="n must be"):
        ov.make_dataset(0)
    bad = tmp_path / "bad.dat"
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="two numbers"):
        ov.load_dataset(bad)
    bad.write_text("1 nan\n2 3\n")
    with pytest.raises(ValueError, match="non-finite"):
        ov.load_dataset(bad)
    gd = rds.models.teacher_student(x, y)
    with pytest.raises(TypeError, match="gd"):
        analysis.learning_curves(rds.models.fukumizu_amari(), START, 10)
    with pytest.raises(ValueError, match="initial"):
        analysis.learning_curves(gd, START[:3], 10, backend="numpy")
    with pytest.raises(ValueError, match="initial"):
        analysis.learning_curves(gd, [np.nan, 0, 0, 0], 10, backend="numpy")
    with pytest.raises(ValueError, match="steps"):
        analysis.learning_curves(gd, START, 0, backend="numpy")
    with pytest.raises(ValueError, match="theta"):
        ov.generalization_error([1.0, 2.0, 3.0])
