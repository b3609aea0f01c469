"""Adaptive multilevel splitting (analysis.rare_events) against exact values of a Gaussian AR(1) map.

The AR(1) map x → a x + ξ, ξ ~ N(0, s²) (a = 0.9, s = 0.3: small steps, as splitting needs), is a Markov chain
whose transition kernel is a Gaussian density, so every probability and mean stopping time below is computed
independently by iterating or inverting the kernel on a fine grid (trapezoid rule; grid error ~1e-5 relative, far
below the statistical tolerances).
"""

import numpy as np
import pytest
from scipy import stats

import analysis
import rds
from analysis.rare_events import multilevel_splitting

A, S = 0.9, 0.3


def _ar1_step(state, xi, params):
    (x,) = state
    return (params[0] * x + xi[0],)


def ar1(a=A):
    return rds.RandomDynamicalSystem(_ar1_step, noise=rds.noise.Gaussian(S * S), variables=("x",), params=(a,),
                                     name="ar1")


def _x(X):
    return X[..., 0]


def _grid(lo, hi, h):
    y = np.linspace(lo, hi, int(round((hi - lo) / h)) + 1)
    w = np.full(y.size, y[1] - y[0])
    w[0] = w[-1] = w[0] / 2
    return y, w


def _k(x, y, a):
    return stats.norm.pdf((y - a * x) / S) / S


def exact_horizon(a, b, T, x0, h=0.002, L=5.0):
    """P(max_{1<=n<=T} X_n >= b | X_0 = x0): q_m(x) = P(no hit in m steps) = ∫_{y<b} k(x, y) q_{m-1}(y) dy."""
    y, w = _grid(-L, b, h)
    K = _k(y[:, None], y[None, :], a) * w[None, :]
    q = np.ones(y.size)
    for _ in range(T - 1):
        q = K @ q
    return float(1.0 - (_k(x0, y, a) * w) @ q)


def exact_before_start(a, lo, b, x0, h=0.002):
    """For the chain stopped at the first n >= 1 with X_n <= lo (A) or X_n >= b (B), from x0: p = P(B first)
    and E[tau], from (I - K_C) u = g on the continuation set C = (lo, b)."""
    y, w = _grid(lo, b, h)
    K = _k(y[:, None], y[None, :], a) * w[None, :]
    g = stats.norm.sf((b - a * y) / S)
    I_K = np.eye(y.size) - K
    p_y, m_y = np.linalg.solve(I_K, g), np.linalg.solve(I_K, np.ones(y.size))
    k0 = _k(x0, y, a) * w
    return float(stats.norm.sf((b - a * x0) / S) + k0 @ p_y), float(1.0 + k0 @ m_y)


def test_exact_reference_agrees_with_plain_monte_carlo():
    rng = np.random.default_rng(5)
    x = np.zeros(100_000)
    hit = np.zeros(x.size, dtype=bool)
    for _ in range(15):
        x = A * x + S * rng.standard_normal(x.size)
        hit |= x >= 1.5
    p = exact_horizon(A, 1.5, 15, 0.0)
    assert abs(hit.mean() - p) < 4 * np.sqrt(p / x.size)


def test_unbiased_and_standard_error_calibrated_over_repeats():
    """100 independent runs (p ≈ 5.6e-3): the mean is within 3 SE of the exact value and the within-run standard
    error matches the spread across runs to ±20 % (RMS)."""
    b, T, R = 2.0, 15, 100
    exact = exact_horizon(A, b, T, 0.0)
    ds = multilevel_splitting(ar1(), [0.0], _x, target=b, n_clones=20, n_kill=4, horizon=T, repeats=R,
                              seed=11, backend="numpy")
    runs = ds.run_probability.values
    se_mean = runs.std(ddof=1) / np.sqrt(R)
    assert abs(runs.mean() - exact) < 3 * se_mean, (runs.mean(), exact, se_mean)
    assert float(ds.probability) == pytest.approx(runs.mean())
    rms_within = np.sqrt(np.mean(ds.run_probability_se.values ** 2))
    assert 0.8 < rms_within / runs.std(ddof=1) < 1.2, (rms_within, runs.std(ddof=1))
    assert float(ds.probability_se_repeats) == pytest.approx(se_mean)


@pytest.mark.parametrize("score", [lambda X: np.maximum(X[..., 0], 0.5), lambda X: np.floor(8 * X[..., 0]) / 8],
                         ids=["plateau", "staircase"])
def test_scores_with_ties(score):
    """Scores constant on sets (a plateau below 0.5, a staircase): ties at the levels, all tied paths killed. Both
    define the target set {x ≥ 2}, so the exact value is that of the plain score; still unbiased."""
    b, T, R = 2.0, 15, 40
    exact = exact_horizon(A, b, T, 0.0)
    ds = multilevel_splitting(ar1(), [0.0], score, target=b, n_clones=20, n_kill=4, horizon=T, repeats=R,
                              seed=12, backend="numpy")
    assert abs(float(ds.probability) - exact) < 3 * float(ds.probability_se_repeats)
    killed = ds.n_killed.values
    assert np.any(killed > 4)  # ties: more than n_kill killed at some level


def test_small_probability_before_a_horizon():
    """p ≈ 8.6e-7 (x ≥ 3.5 within 20 steps): out of reach of the first generation, within 3 SE with AMS."""
    b, T = 3.5, 20
    exact = exact_horizon(A, b, T, 0.0)
    assert exact < 1e-5
    ds = multilevel_splitting(ar1(), [0.0], _x, target=b, n_clones=100, n_kill=20, horizon=T, repeats=8,
                              seed=3, backend="numpy")
    se = float(ds.probability_se_repeats)
    assert abs(float(ds.probability) - exact) < 3 * se
    assert se < 0.3 * exact
    assert float(ds.direct_probability.mean()) == 0.0
    lev = ds.level.values
    assert np.all(np.diff(lev[np.isfinite(lev)].reshape(-1)[:5]) > 0)  # levels increase
    assert int(ds.work) > 0 and int(ds.iterations) == int(ds.run_iterations.sum())


def test_probability_and_mean_first_passage_time_with_a_start_set():
    """Stop on return to A = {x <= 0} or at B = {x >= 2}: p and E[tau] exact from the kernel; the MFPT estimate
    is E[tau]/p (renewal at the initial law)."""
    lo, b = 0.0, 2.0
    p, m = exact_before_start(A, lo, b, 0.0)
    ds = multilevel_splitting(ar1(), [0.0], _x, target=b, start=lo, n_clones=100, n_kill=20, repeats=6, seed=2,
                              backend="numpy")
    assert abs(float(ds.probability) - p) < 3 * float(ds.probability_se_repeats)
    T = m / p
    assert abs(float(ds.mfpt) - T) < 3 * float(ds.mfpt_se_repeats), (float(ds.mfpt), T)
    assert abs(float(ds.mfpt) - T) < 3 * float(ds.mfpt_se)
    assert float(ds.mfpt_time) == float(ds.mfpt)  # dt = 1
    assert 1.0 <= float(ds.loop_mean) < m / (1 - p) + 1 and float(ds.reactive_mean) >= 1.0


def test_start_as_a_region_matches_start_as_a_level():
    kw = dict(target=1.5, n_clones=30, n_kill=6, seed=4, backend="numpy")
    a = multilevel_splitting(ar1(), [0.0], _x, start=0.0, **kw)
    b = multilevel_splitting(ar1(), [0.0], _x, start=rds.regions.Box([-np.inf], [0.0], ("x",)), **kw)
    assert float(a.probability) == float(b.probability) and float(a.mfpt) == float(b.mfpt)
    assert b.attrs["start_set"].startswith("Box")


def test_reproducible_bit_for_bit_and_seed_dependent():
    kw = dict(target=1.5, n_clones=20, n_kill=3, horizon=12, repeats=2, backend="numpy")
    a = multilevel_splitting(ar1(), [0.0], _x, seed=7, **kw)
    b = multilevel_splitting(ar1(), [0.0], _x, seed=7, **kw)
    c = multilevel_splitting(ar1(), [0.0], _x, seed=8, **kw)
    for name in ("run_probability", "level", "clone_max_score", "branch_state", "branch_realization"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.array_equal(a.level.values, c.level.values)
    # the branches record their noise: realization = iteration (first group of repeats), members of repeat 1
    # after the n_clones of repeat 0
    it, real = a.branch_iteration.values, a.branch_realization.values
    used = it >= 0
    assert np.array_equal(real[used], it[used])
    mem = a.branch_member.values
    assert mem[0][used[0]].max() < 20 <= mem[1][used[1]].min()


def test_a_repeat_is_the_same_alone_or_with_others():
    kw = dict(target=1.5, n_clones=10, n_kill=2, horizon=12, seed=3, backend="numpy")
    alone = multilevel_splitting(ar1(), [0.0], _x, repeats=1, **kw)
    many = multilevel_splitting(ar1(), [0.0], _x, repeats=3, **kw)
    np.testing.assert_array_equal(alone.clone_max_score.values[0], many.clone_max_score.values[0])
    assert float(alone.run_probability[0]) == float(many.run_probability[0])


def test_replay_of_a_branch_from_its_recorded_noise():
    """A final clone's path after its branch point is a path of the system on the branch's recorded noise
    (realization, member), from the recorded state: replaying it gives the clone's maximum score."""
    ds = multilevel_splitting(ar1(), [0.0], _x, target=1.5, n_clones=10, n_kill=2, horizon=12, seed=1,
                              backend="numpy")
    it = ds.branch_iteration.values[0]
    last = int(np.max(np.nonzero(it >= 0)[0]))  # the last branch made survives to the end
    m = int(ds.branch_member.values[0, last])
    start = int(ds.branch_start.values[0, last])
    state = ds.branch_state.values[0, last]
    real = int(ds.branch_realization.values[0, last])
    sysi = ar1().replace(common_noise=False)
    X = np.repeat(state[None, :], m + 1, axis=0)
    path = sysi.trajectory(X, 12 - start, seed=1, realization=real, backend="numpy").state.values[:, m, 0]
    hit = np.nonzero(path >= 1.5)[0]
    path = path[: hit[0] + 1] if hit.size else path
    assert path.max() in ds.clone_max_score.values[0]


def test_vector_map_and_backends_agree():
    def vstep(theta, xi, params):
        return params[0] * theta + xi[0]

    vec = rds.RandomDynamicalSystem(vstep, noise=rds.noise.GaussianInputs(S * S, batch=1, dim=2), form="vector",
                                    dim=2, params=(A,))
    kw = dict(target=1.2, n_clones=12, n_kill=3, horizon=8, seed=5)
    a = multilevel_splitting(vec, [0.0, 0.0], _x, backend="numpy", **kw)
    assert a.attrs["form"] == "vector" and a.attrs["backend"] == "numpy"
    assert 0 < float(a.probability) < 1
    el = multilevel_splitting(ar1(), [0.0], _x, backend="numpy", **kw)
    nb = multilevel_splitting(ar1(), [0.0], _x, backend="numba", **kw)
    assert nb.attrs["backend"] == "numba"
    np.testing.assert_allclose(nb.run_probability.values, el.run_probability.values, rtol=1e-12)
    np.testing.assert_allclose(nb.clone_max_score.values, el.clone_max_score.values, rtol=1e-12)


def test_netcdf_round_trip_and_executor(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    kw = dict(target=1.2, n_clones=10, n_kill=2, horizon=10, repeats=3, seed=9, backend="numpy")
    ds = multilevel_splitting(ar1(), [0.0], _x, **kw)
    with ThreadPoolExecutor(2) as ex:
        de = multilevel_splitting(ar1(), [0.0], _x, executor=ex, progress=False, **kw)
    np.testing.assert_array_equal(ds.run_probability.values, de.run_probability.values)
    rds.io.save(ds, tmp_path / "ams.nc")
    back = rds.io.load(tmp_path / "ams.nc")
    for name in ds.data_vars:
        np.testing.assert_array_equal(back[name].values, ds[name].values)
    assert back.attrs["analysis"] == "multilevel_splitting" and back.attrs["target"] == 1.2
    assert back.attrs["horizon"] == 10 and back.attrs["common_noise"] == 0


def test_clear_errors():
    sys_ = ar1()
    with pytest.raises(ValueError, match="start and horizon"):
        multilevel_splitting(sys_, [0.0], _x, target=3.0)
    with pytest.raises(ValueError, match="n_kill"):
        multilevel_splitting(sys_, [0.0], _x, target=3.0, horizon=5, n_clones=4, n_kill=4)
    with pytest.raises(ValueError, match="start level"):
        multilevel_splitting(sys_, [0.0], _x, target=3.0, start=3.5)
    with pytest.raises(ValueError, match="score"):
        multilevel_splitting(sys_, [0.0], lambda X: X, target=3.0, horizon=5)
    with pytest.raises(ValueError, match="initial"):
        multilevel_splitting(sys_, np.zeros((3, 1)), _x, target=3.0, horizon=5, n_clones=5)
    with pytest.raises(ValueError, match="system"):
        multilevel_splitting(sys_.replace(noise=None), [0.0], _x, target=3.0, horizon=5)
    with pytest.raises(TypeError, match="score"):
        multilevel_splitting(sys_, [0.0], None, target=3.0, horizon=5)
    with pytest.raises(RuntimeError, match="max_steps"):  # a start set never re-entered: refused, not truncated
        multilevel_splitting(sys_, [0.0], _x, target=50.0, start=-50.0, max_steps=20, n_clones=4)


def test_exported():
    assert analysis.multilevel_splitting is multilevel_splitting


# ---------------------------------------------------------------------------------------------- censored mean
def test_censored_mean_unbiased_with_calibrated_standard_error():
    """Geometric escape times (mean 20) censored at a cap: Kaplan–Meier to the cap + exponential tail recovers the
    mean over 200 samples, and the delta-method SE matches the spread (±20 %), with and without tail_from."""
    rng = np.random.default_rng(0)
    for cap, tail_from in ((10, 0), (30, 10)):
        est, se = [], []
        for _ in range(200):
            T = rng.geometric(0.05, 1000)
            ds = analysis.censored_mean(np.minimum(T, cap), T > cap, cap, tail_from=tail_from)
            est.append(float(ds["mean"]))
            se.append(float(ds["mean_se"]))
        est = np.array(est)
        assert abs(est.mean() - 20.0) < 3 * est.std(ddof=1) / np.sqrt(est.size)
        assert 0.8 < np.sqrt(np.mean(np.square(se))) / est.std(ddof=1) < 1.2


def test_censored_mean_limits_and_summary():
    from analysis.escape_times import censored_mean, survival_summary
    T = np.array([1, 2, 2, 5, 7])
    ds = censored_mean(T, np.zeros(5, dtype=bool), 10)  # nothing censored: the sample mean, no tail
    assert float(ds["mean"]) == pytest.approx(T.mean()) and float(ds["tail_part"]) == 0.0
    assert float(ds["mean_se"]) == pytest.approx(T.std(ddof=0) / np.sqrt(5))
    none = censored_mean([10, 10], [True, True], 10)  # nothing escaped: the mean is unbounded
    assert np.isinf(float(none["mean"]))
    s = survival_summary([1, 2, 2, 5, 5, 5], [False, False, False, False, True, True], 5, n_boot=0)
    c = censored_mean([1, 2, 2, 5, 5, 5], [False, False, False, False, True, True], 5)
    assert float(s["combined_mean"]) == float(c["mean"]) == pytest.approx(float(s.restricted_mean) + 2 / 6 * 5.0)
    with pytest.raises(ValueError, match="tail_from"):
        censored_mean(T, np.zeros(5, dtype=bool), 10, tail_from=10)


def test_exp_mean_with_tail_from_is_named_a_remaining_time():
    from analysis.escape_times import survival_summary
    args = ([1, 2, 2, 5, 5, 5], [False, False, False, False, True, True], 5)
    assert "REMAINING" in survival_summary(*args, n_boot=0, tail_from=1)["exp_mean"].attrs["long_name"]
    assert "REMAINING" not in survival_summary(*args, n_boot=0)["exp_mean"].attrs["long_name"]


def _kick(state, xi, params):
    (x,) = state
    return (x + (xi[0] > params[0]) * 1.0,)


def test_splitting_mean_time_recovers_a_geometric_law():
    """Each step reaches the target with probability q = P(Z > c): the first-passage time is geometric, mean 1/q,
    far beyond the horizon; the weighted paths to the horizon plus the fitted tail recover it."""
    c = 2.3263478740408408  # q = 0.01
    kick = rds.RandomDynamicalSystem(_kick, noise=rds.noise.Gaussian(1.0), variables=("x",), params=(c,))
    ds = multilevel_splitting(kick, [0.0], _x, target=1.0, n_clones=100, n_kill=10, horizon=30, repeats=6,
                              seed=2, backend="numpy")
    exact_p = 1 - 0.99 ** 30
    assert abs(float(ds.probability) - exact_p) < 3 * float(ds.probability_se_repeats)
    m = analysis.splitting_mean_time(ds)
    assert abs(float(m["mean"]) - 100.0) < 3 * float(m["mean_se"]) and float(m["mean_se"]) < 20
    assert float(m["km_part"]) < 30 < float(m["mean"])
    with pytest.raises(ValueError, match="no horizon"):
        analysis.splitting_mean_time(multilevel_splitting(ar1(), [0.0], _x, target=1.0, start=0.0, n_clones=10,
                                                          n_kill=2, backend="numpy"))
    with pytest.raises(TypeError, match="multilevel_splitting"):
        analysis.splitting_mean_time(m)
