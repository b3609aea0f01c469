"""Escape times as right-censored survival data (analysis.escape_times), checked on an exactly solvable law."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import analysis
import rds
from rds.regions import Box

C = 1.6448536269514722  # P(Z > C) = 0.05 for Z ~ N(0, 1)
P = float(stats.norm.sf(C))


def _kick(state, xi, params):
    """x jumps by 1 when ξ_t > c: from x = 0 the first jump (the escape from x <= 0.5) is geometric, p = P(Z > c)."""
    (x,) = state
    return (x + (xi[0] > params[0]) * 1.0,)


def geometric_system(c=C):
    return rds.RandomDynamicalSystem(_kick, noise=rds.noise.Gaussian(sigma2=1.0), variables=("x",), params=(c,),
                                     common_noise=False, name="geometric_escape")


REGION = Box([-np.inf], [0.5], variables=("x",))


def _within(value, ci):
    lo, hi = np.asarray(ci)
    return lo <= value <= hi


@pytest.mark.parametrize("cap", [30, 3000])
def test_geometric_law_recovered_with_and_without_censoring(cap):
    M, K = 1500, 2
    # identical initial states and independent noise: the runs are i.i.d., so resample single runs
    ds = analysis.escape_times(geometric_system(), np.zeros((M, 1)), REGION, cap, seed=3, realizations=K,
                               n_boot=400, bootstrap="runs", backend="numpy")
    true_mean = 1.0 / P
    true_rmst = (1.0 - (1.0 - P) ** cap) / P          # sum_{k<cap} (1-p)^k
    true_median = np.ceil(np.log(0.5) / np.log(1.0 - P))
    true_cens = (1.0 - P) ** cap
    assert ds.escape_time.dims == ("realization", "member") and ds.sizes["realization"] == K
    assert _within(true_mean, ds.exp_mean_ci), (float(ds.exp_mean), ds.exp_mean_ci.values)
    assert _within(P, ds.exp_rate_ci)
    assert _within(true_rmst, ds.restricted_mean_ci)
    if cap == 30:
        assert _within(true_cens, ds.censored_fraction_ci)
    else:  # (1-p)^3000 ~ 1e-67: nothing censored
        np.testing.assert_array_equal(ds.censored_fraction_ci.values, 0.0)
    assert _within(true_median, ds["median_ci"])
    for t in (5, 13, 25):  # Kaplan-Meier vs the exact survival (1-p)^t, within the Greenwood band
        S = ds.survival.sel(t=t, method="nearest")
        t_used = int(S.t)
        assert _within((1 - P) ** t_used, ds.survival_ci.sel(t=t_used))
    # the restricted mean is the area under S up to the cap = mean of min(T, cap), and a lower bound on the mean
    assert float(ds.restricted_mean) == pytest.approx(float(ds.escape_time.mean()), rel=1e-12)
    if cap == 30:
        assert 0.1 < float(ds.censored_fraction) < 0.35
        # what the naive average gets wrong: it estimates E[T | T <= cap], not E[T]
        t = np.arange(1, cap + 1)
        cond_mean = np.sum(t * P * (1 - P) ** (t - 1)) / (1 - (1 - P) ** cap)
        assert float(ds.naive_mean_uncensored) == pytest.approx(cond_mean, rel=0.05)
        assert cond_mean < 0.6 * true_mean
        assert float(ds.restricted_mean) < true_mean
    else:
        assert float(ds.censored_fraction) == 0.0
        assert float(ds.naive_mean_uncensored) == pytest.approx(float(ds.exp_mean), rel=1e-12)


def test_censored_runs_are_never_escapes():
    cap = 20
    ds = analysis.escape_times(geometric_system(), np.zeros((400, 1)), REGION, cap, seed=1, n_boot=50,
                               backend="numpy")
    cens = ds.censored.values
    assert cens.any() and (~cens).any()
    assert np.all(ds.escape_time.values[cens] == cap)
    assert int(ds.n_events) == int((~cens).sum()) and int(ds.n_censored) == int(cens.sum())
    # the events of the ML rate are only the uncensored runs; exposure includes the censored ones
    T = ds.escape_time.values.ravel()
    assert float(ds.exp_rate) == pytest.approx((~cens).sum() / T.sum(), rel=1e-12)
    # a run that did escape at exactly the cap is an event, one still inside is not
    system = geometric_system()
    out = system.first_exit(np.zeros((400, 1)), REGION, cap, seed=1, backend="numpy")
    np.testing.assert_array_equal(cens[0], out["exit_step"] < 0)

    never = analysis.escape_times(geometric_system(c=50.0), np.zeros((50, 1)), REGION, 10, n_boot=20,
                                  backend="numpy")
    assert float(never.censored_fraction) == 1.0 and int(never.n_events) == 0
    assert float(never.exp_rate) == 0.0 and np.isinf(float(never.exp_mean)) and np.isinf(float(never["median"]))
    assert np.isnan(float(never.naive_mean_uncensored))
    assert float(never.restricted_mean) == 10.0
    np.testing.assert_array_equal(never.survival.values, 1.0)


def test_numba_agrees_with_numpy_and_roundtrip(tmp_path):
    X = np.zeros((64, 1))
    a = analysis.escape_times(geometric_system(), X, REGION, 50, seed=2, realizations=2, n_boot=30,
                              backend="numpy")
    b = analysis.escape_times(geometric_system(), X, REGION, 50, seed=2, realizations=2, n_boot=30,
                              backend="numba")
    np.testing.assert_array_equal(a.escape_time.values, b.escape_time.values)
    xr.testing.assert_allclose(a.drop_vars("exit_state"), b.drop_vars("exit_state"))
    p = tmp_path / "esc.nc"
    rds.io.save(a, p)
    back = rds.io.load(p)
    xr.testing.assert_identical(back, a)
    assert back.attrs == a.attrs


def test_started_outside_and_bad_input():
    X = np.array([[0.0], [1.0], [0.0], [2.0]])  # members 1 and 3 start outside x <= 0.5
    ds = analysis.escape_times(geometric_system(), X, REGION, 40, n_boot=10, backend="numpy")
    assert int(ds.n_started_outside) == 2 and int(ds.n_at_risk) == 2
    np.testing.assert_array_equal(ds.started_outside.values, [False, True, False, True])
    assert np.all(ds.escape_time.values[:, [1, 3]] == 0)
    with pytest.raises(ValueError, match="outside"):
        analysis.escape_times(geometric_system(), np.ones((3, 1)), REGION, 40, backend="numpy")
    with pytest.raises(ValueError, match="empty"):
        Box([1.0], [0.0], variables=("x",))
    with pytest.raises(ValueError, match="outside"):  # a predicate that holds nowhere
        analysis.escape_times(geometric_system(), np.zeros((3, 1)),
                              lambda s: np.logical_and(s[0] > 1.0, s[0] < 0.0), 40, backend="numpy")
    with pytest.raises(ValueError, match="max_steps"):
        analysis.escape_times(geometric_system(), np.zeros((3, 1)), REGION, 0, backend="numpy")
    with pytest.raises(ValueError, match="initial"):
        analysis.escape_times(geometric_system(), np.zeros((3, 2)), REGION, 10, backend="numpy")
    with pytest.raises(ValueError, match="bootstrap"):
        analysis.escape_times(geometric_system(), np.zeros((3, 1)), REGION, 10, bootstrap="x", backend="numpy")
    with pytest.raises(ValueError, match="members"):
        analysis.escape_times(geometric_system(), Box([-1.0], [0.0], ("x",)), REGION, 10, backend="numpy")


def test_box_sampler_and_bootstrap_designs():
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    init, region = Box([0, 0], [2, 2], ("w", "v")), Box([-2, -2], [2, 2], ("w", "v"))
    width = {}
    for b in ("both", "members", "realizations", "runs"):
        ds = analysis.escape_times(red, init, region, 300, members=30, realizations=3, n_boot=200, bootstrap=b,
                                   backend="numpy")
        lo, hi = ds.restricted_mean_ci.values
        assert lo <= float(ds.restricted_mean) <= hi
        assert ds.attrs["bootstrap"] == b
        width[b] = hi - lo
    X = ds.initial.values
    assert X.shape == (30, 2) and np.all(X > 0) and np.all(X <= 2)
    assert "uniform" in ds.attrs["initial_states"]
    # the two-way bootstrap carries both sources of variation: at least as wide as either one alone
    assert width["both"] >= 0.9 * max(width["members"], width["realizations"])


def test_crossed_bootstrap_weights():
    # two realizations x two members, times chosen so each resampling design has a known set of outcomes
    T = np.array([1.0, 3.0, 5.0, 7.0])
    real, mem = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    cens = np.zeros(4, dtype=bool)
    for b, possible in {"realizations": {2.0, 4.0, 6.0}, "members": {3.0, 4.0, 5.0},
                        "both": {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}}.items():
        ds = analysis.survival_summary(T, cens, 10, realization=real, member=mem, n_boot=300, bootstrap=b)
        lo, hi = ds.restricted_mean_ci.values
        assert lo in possible and hi in possible and lo < hi


# ------------------------------------------------------------------------------------------------ scans
def _scan(store=None, fail_at=None, grid=(0.5, 1.0, 2.0, 4.0), **kw):
    calls = {"n": 0}

    def make_system(s2):
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at + 1:
            raise KeyboardInterrupt
        sys = geometric_system()
        return sys.replace(noise=rds.noise.Gaussian(sigma2=s2))

    args = dict(max_steps=40, seed=5, realizations=2, n_boot=40, backend="numpy", progress=False)
    args.update(kw)
    return analysis.escape_time_scan(make_system, list(grid), np.zeros((100, 1)), REGION, store=store, **args)


def test_scan_shape_and_trend():
    ds = _scan()
    assert ds.exp_mean.dims == ("sigma2",) and ds.escape_time.dims == ("sigma2", "realization", "member")
    # P(sqrt(s2) Z > c) grows with s2: escape gets faster
    assert np.all(np.diff(ds.exp_mean.values) < 0)
    assert "scan_settings" in ds.attrs and "noise_sigma2" not in ds.attrs


def test_scan_resume_after_interrupt_equals_uninterrupted(tmp_path):
    full = _scan()
    store = tmp_path / "scan.nc"
    with pytest.raises(KeyboardInterrupt):
        _scan(store=store, fail_at=2)
    partial = rds.io.load(store)
    assert partial.sizes["sigma2"] == 2
    resumed = _scan(store=store)
    xr.testing.assert_identical(resumed, full)
    xr.testing.assert_identical(rds.io.load(store), full)
    # resuming a finished scan changes nothing
    xr.testing.assert_identical(_scan(store=store), full)


def test_scan_refuses_other_settings(tmp_path):
    store = tmp_path / "scan.nc"
    with pytest.raises(KeyboardInterrupt):
        _scan(store=store, fail_at=1)
    with pytest.raises(ValueError, match="other settings"):
        _scan(store=store, max_steps=41)
    with pytest.raises(ValueError, match="other settings"):
        _scan(store=store, grid=(0.5, 1.0, 2.0, 8.0))
    with pytest.raises(ValueError, match="other settings"):
        _scan(store=store, seed=6)


def test_scan_bad_input():
    with pytest.raises(ValueError, match="sigma2"):
        _scan(grid=())
    with pytest.raises(ValueError, match="sigma2"):
        _scan(grid=(1.0, -1.0))
    with pytest.raises(ValueError, match="max_steps"):
        _scan(max_steps=0)


def test_plots_smoke():
    import matplotlib

    matplotlib.use("Agg")
    from analysis.plots_escape import plot_escape_time_scan, plot_survival

    ds = _scan(grid=(0.01, 1.0, 4.0))  # sigma2 = 0.01: nothing escapes (tau* > cap, drawn as an arrow)
    assert np.isinf(float(ds.exp_mean.sel(sigma2=0.01)))
    fig = plot_escape_time_scan([ds, ds], labels=["a", "b"])
    assert len(fig.axes) == 2
    fig = plot_survival(ds, sigma2=[1.0, 4.0])
    assert len(fig.axes[0].lines) == 2
