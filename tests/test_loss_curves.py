"""Learning curves along trajectories (analysis.loss_curves) on vector and elementwise maps."""

import numpy as np
import pytest

import analysis
import rds
from rds.models.dataset_sgd import dataset_loss, dataset_losses, dataset_sgd, load_dataset


@pytest.fixture(scope="module")
def iris():
    X, y = load_dataset("iris")
    return X[:120], y[:120], X[120:], y[120:]


def test_loss_curves_equal_the_losses_of_the_recorded_trajectory(iris):
    X, y, Xt, yt = iris
    sgd = dataset_sgd(X, y, hidden=3, eta=0.05, batch=8)
    theta0 = np.random.default_rng(1).normal(0, 0.5, (5, sgd.nvar))
    ds = analysis.loss_curves(sgd, theta0, 300, dataset_losses(sgd, test=(Xt, yt)), num=15, seed=3,
                              backend="numpy", keep_states=True)
    tr = sgd.trajectory(theta0, 300, seed=3, times=ds.time.values, backend="numpy")
    np.testing.assert_array_equal(ds.state.values, tr.state.values)
    for i in (0, 5, ds.sizes["time"] - 1):
        np.testing.assert_allclose(ds.loss.sel(curve="train").values[i], dataset_loss(sgd, tr.state.values[i], X, y),
                                   rtol=1e-14)
        np.testing.assert_allclose(ds.loss.sel(curve="test").values[i], dataset_loss(sgd, tr.state.values[i], Xt, yt),
                                   rtol=1e-14)
    np.testing.assert_allclose(ds.loss_mean.values, ds.loss.values.mean(axis=-1))
    assert ds.time.values[0] == 0 and ds.time.values[-1] == 300
    # SGD lowers the training loss of every member
    assert np.all(ds.final.sel(curve="train").values < ds.loss.sel(curve="train").values[0])


def test_loss_curves_default_losses_and_jax_agree_with_numpy():
    scm = rds.models.soft_committee(inputs=3, hidden=2, eta=0.1, sigma2=1 / 3)
    theta0 = np.random.default_rng(2).normal(0, 0.3, (3, scm.nvar))
    a = analysis.loss_curves(scm, theta0, 200, num=10, backend="numpy")
    b = analysis.loss_curves(scm, theta0, 200, num=10, backend="jax")
    assert list(a["curve"].values) == ["generalization"]
    np.testing.assert_allclose(a.loss.values, b.loss.values, rtol=1e-12, atol=1e-14)
    assert a.attrs["analysis"] == "loss_curves" and a.attrs["backend"] == "numpy"


def test_loss_curves_roundtrip_netcdf_and_plot(tmp_path):
    scm = rds.models.soft_committee(inputs=2, hidden=2)
    ds = analysis.loss_curves(scm, np.full((2, scm.nvar), 0.2), 100, num=8, backend="numpy")
    path = tmp_path / "curves.nc"
    rds.io.save(ds, path)
    back = rds.io.load(path)
    np.testing.assert_array_equal(back.loss.values, ds.loss.values)
    assert list(back["curve"].values) == ["generalization"]
    fig = analysis.plot_loss_curves(ds)
    assert len(fig.axes[0].lines) == 3


def test_loss_curves_on_an_elementwise_map_with_a_user_loss_flag_divergence():
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X0 = np.array([[0.5, -0.3, 0.2, 0.1], [1e200, 1e200, 1e200, 1e200]])
    with np.errstate(over="ignore", invalid="ignore"), pytest.warns(rds.DivergenceWarning, match="1 of 2"):
        ds = analysis.loss_curves(fa, X0, 50, lambda th: np.sum(th ** 2, axis=-1), num=5, backend="numpy")
    assert list(ds["curve"].values) == ["loss"]
    assert bool(ds.diverged.values[1]) and not bool(ds.diverged.values[0])
    assert np.isnan(ds.loss.values[0, -1, 1]) and np.isfinite(ds.loss.values[0, :, 0]).all()
    np.testing.assert_allclose(ds.loss_mean.values[0, -1], ds.loss.values[0, -1, 0])


@pytest.mark.parametrize("losses, match", [
    ({}, "non-empty mapping"), ({"a": 3}, r"losses\['a'\] must be callable"), ({"": np.sum}, "non-empty strings"),
    ({"bad": lambda th: np.zeros(2)}, r"must map states"),
])
def test_loss_curves_bad_losses_name_the_argument(losses, match):
    fa = rds.models.fukumizu_amari()
    with pytest.raises(ValueError, match=match):
        analysis.loss_curves(fa, np.full((3, 4), 0.1), 10, losses, num=3, backend="numpy")


def test_loss_curves_without_declared_losses_asks_for_them():
    with pytest.raises(ValueError, match="declares no default losses"):
        analysis.loss_curves(rds.models.fukumizu_amari(), np.full(4, 0.1), 10, num=3, backend="numpy")
