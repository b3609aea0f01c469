"""The one two-layer-network module: the GD model, the overfitting study and neuron splitting all use it."""

import numpy as np
import pytest

import analysis.neuron_splitting as ns
import analysis.overfitting as ovf
import rds
from rds.models import two_layer


def _data(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = 2.0 * np.tanh(X[:, 0]) + 0.2 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("N", [1, 2, 5])
@pytest.mark.parametrize("d", [1, 3])
def test_gd_step_is_theta_minus_eta_grad_E_from_the_two_layer_module(N, d):
    X, y = _data(30, d, 10 * N + d)
    eta = 0.05
    gd = rds.models.teacher_student(X[:, 0] if d == 1 else X, y, hidden=N, eta=eta)
    assert gd.variables == two_layer.variables(N, d)
    theta = np.random.default_rng(N + d).normal(size=(4, N * d + N))
    W, v = two_layer.unpack(theta, N, d)
    expected = theta - eta * two_layer.pack(*two_layer.gradient(W, v, X, y, "tanh", "mean"))
    np.testing.assert_allclose(gd.evolve(theta, 1, backend="numpy"), expected, rtol=1e-13, atol=1e-14)
    # and its analytic Jacobian is I - eta * Hessian of the same E (normalization "mean")
    J = gd.jacobian_matrix(theta)
    H = two_layer.hessian(W, v, X, y, "tanh", "mean")
    np.testing.assert_allclose(J, np.eye(N * d + N) - eta * H, rtol=1e-12, atol=1e-13)


def test_the_two_normalisations_differ_by_two_and_the_studies_use_theirs():
    X, y = _data(25, 1, 0)
    theta = np.array([0.3, -0.2, 0.5, 0.4])
    W, v = two_layer.unpack(theta, 2, 1)
    H_mean = two_layer.hessian(W, v, X, y, normalization="mean")
    H_half = two_layer.hessian(W, v, X, y, normalization="half_mean")
    np.testing.assert_allclose(H_mean, 2.0 * H_half, rtol=1e-14)
    np.testing.assert_allclose(ovf.training_hessian(theta, X[:, 0], y), H_mean, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ns.two_layer_hessian(W, v, X, y), H_half, rtol=1e-13, atol=1e-15)
    assert float(ovf.training_error(theta, X[:, 0], y)) == pytest.approx(2.0 * ns.two_layer_loss(W, v, X, y))
    np.testing.assert_allclose(rds.models.training_error(theta, X[:, 0], y), ovf.training_error(theta, X[:, 0], y))


def test_unknown_normalisation_and_activation_are_refused():
    X, y = _data(5, 2, 1)
    with pytest.raises(ValueError, match="normalization"):
        two_layer.loss(np.ones((1, 2)), np.ones(1), X, y, normalization="sum")
    with pytest.raises(ValueError, match="activation"):
        two_layer.forward(np.ones((1, 2)), np.ones(1), X, activation="relu")
    with pytest.raises(ValueError, match="theta"):
        two_layer.unpack(np.ones(5), 2, 1)


@pytest.mark.parametrize("activation", sorted(two_layer.ACTIVATIONS))
def test_forward_loss_and_gradient_agree_under_jax(activation):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    jax.config.update("jax_enable_x64", True)
    X, y = _data(12, 3, 2)
    rng = np.random.default_rng(3)
    W, v = rng.normal(size=(4, 3)), rng.normal(size=4)
    for norm in two_layer.NORMALIZATIONS:
        L = jax.jit(lambda W, v, norm=norm: two_layer.loss(W, v, X, y, activation, norm, xp=jnp))
        assert float(L(W, v)) == pytest.approx(float(two_layer.loss(W, v, X, y, activation, norm)), rel=1e-13)
        gW, gv = jax.grad(L, argnums=(0, 1))(W, v)
        eW, ev = two_layer.gradient(W, v, X, y, activation, norm)
        np.testing.assert_allclose(np.asarray(gW), eW, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(np.asarray(gv), ev, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(two_layer.forward(W, v, X, activation, xp=jnp)),
                               two_layer.forward(W, v, X, activation), rtol=1e-13)
