"""Tests of neuron splitting, the inner Hessian and the plateau classification (paper 003)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analysis.neuron_splitting import (
    ACTIVATIONS,
    classify_plateau,
    find_local_minimum,
    inner_hessian,
    numerical_classification,
    plateau_map,
    split_neuron,
    two_layer_gradient,
    two_layer_hessian,
    two_layer_loss,
    unsplit_neuron,
)
from analysis.plots_splitting import plot_plateau_map

# (n samples, data seed) of a 1-neuron student on a 2-neuron tanh teacher, d = 2, whose local minimum has
# an inner Hessian of the given definiteness (found by a scan; the definiteness is asserted below)
CASES = {"PD": (10, 249), "ND": (20, 184), "ID": (10, 51)}


def teacher_data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    Wt = 1.5 * rng.normal(size=(2, 2))
    vt = rng.normal(size=2)
    return X, np.tanh(X @ Wt.T) @ vt


@pytest.fixture(scope="module")
def cases():
    out = {}
    for name, (n, seed) in CASES.items():
        X, y = teacher_data(n, seed)
        W, v = find_local_minimum(X, y, hidden=1, seed=0)
        out[name] = (W, v, X, y)
    return out


def grad_vec(W, v, X, y, act="tanh"):
    gW, gv = two_layer_gradient(W, v, X, y, act)
    return np.concatenate([gW.ravel(), gv])


# --------------------------------------------------------------------------------------------------
# analytic derivatives (finite differences only as cross-checks)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_derivatives_match_finite_differences(act):
    f = ACTIVATIONS[act]
    z = np.linspace(-3, 3, 13)
    h = 1e-6
    for order in (1, 2, 3):
        fd = (f(z + h, order - 1) - f(z - h, order - 1)) / (2 * h)
        np.testing.assert_allclose(f(z, order), fd, atol=1e-8)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_gradient_and_hessian_match_finite_differences(act):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(7, 3)), rng.normal(size=7)
    W, v = rng.normal(size=(2, 3)), rng.normal(size=2)
    theta = np.concatenate([W.ravel(), v])
    unpack = lambda t: (t[:6].reshape(2, 3), t[6:])
    h = 1e-6
    E = np.eye(theta.size)
    g_fd = np.array([(two_layer_loss(*unpack(theta + h * e), X, y, act)
                      - two_layer_loss(*unpack(theta - h * e), X, y, act)) / (2 * h) for e in E])
    np.testing.assert_allclose(grad_vec(W, v, X, y, act), g_fd, atol=1e-8)
    H_fd = np.array([(grad_vec(*unpack(theta + h * e), X, y, act)
                      - grad_vec(*unpack(theta - h * e), X, y, act)) / (2 * h) for e in E])
    np.testing.assert_allclose(two_layer_hessian(W, v, X, y, act), H_fd, atol=1e-7)


def test_inner_hessian_is_second_term_of_partial_hessian():
    """App. B / eq. 12: d^2L/dw_j^2 = (1/n) sum (v_j sigma')^2 x x^T + H_j."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(9, 2)), rng.normal(size=9)
    W, v = rng.normal(size=(3, 2)), rng.normal(size=3)
    Hfull = two_layer_hessian(W, v, X, y)
    for j in range(3):
        s1 = 1 - np.tanh(X @ W[j]) ** 2
        gauss_newton = ((v[j] * s1) ** 2 * X.T) @ X / 9
        np.testing.assert_allclose(Hfull[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] - gauss_newton,
                                   inner_hessian(W, v, X, y, j), atol=1e-14)


# --------------------------------------------------------------------------------------------------
# Definition 1 and Proposition 1
# --------------------------------------------------------------------------------------------------

finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@st.composite
def net_and_split(draw):
    N = draw(st.integers(1, 3))
    d = draw(st.integers(1, 3))
    W = draw(arrays(float, (N, d), elements=finite))
    v = draw(arrays(float, (N,), elements=finite))
    j = draw(st.integers(0, N - 1))
    k = draw(st.integers(2, 4))
    free = draw(arrays(float, (k - 1,), elements=finite))
    beta = np.append(free, 1.0 - free.sum())
    seed = draw(st.integers(0, 2**16))
    return W, v, j, beta, seed


@settings(max_examples=60, deadline=None)
@given(net_and_split())
def test_split_preserves_function_and_loss(case):
    """Proposition 1.1: same outputs on every input and the same loss."""
    W, v, j, beta, seed = case
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(6, W.shape[1])), rng.normal(size=6)
    Ww, vw = split_neuron(W, v, j, beta)
    assert Ww.shape == (W.shape[0] + beta.size - 1, W.shape[1])
    f = np.tanh(X @ W.T) @ v
    fw = np.tanh(X @ Ww.T) @ vw
    scale = np.abs(np.tanh(X @ W.T)) @ (np.abs(v) * np.maximum(1, np.abs(beta).sum()))
    np.testing.assert_allclose(fw, f, atol=1e-13 * (1 + scale.max()))
    L, Lw = two_layer_loss(W, v, X, y), two_layer_loss(Ww, vw, X, y)
    assert abs(Lw - L) <= 1e-12 * (1 + L) * (1 + scale.max())
    W2, v2, beta2 = unsplit_neuron(Ww, vw, j, beta.size)
    np.testing.assert_array_equal(W2, W)
    np.testing.assert_allclose(v2, v, atol=1e-13 * (1 + np.abs(vw).sum()))
    if abs(v[j]) > 1e-3:
        np.testing.assert_allclose(beta2, beta, atol=1e-10 * (1 + np.abs(vw).sum()) / abs(v[j]))


@settings(max_examples=60, deadline=None)
@given(net_and_split())
def test_split_gradient_relation_gives_stationarity_both_ways(case):
    """Proposition 1.2 via eqs. 74-76: dL/dv_daughter = dL/dv_j, dL/dw_daughter_i = beta_i dL/dw_j.

    Hence the narrow gradient is a linear image of the wide one (sum over daughters), so the wide point
    is stationary iff the narrow one is.
    """
    W, v, j, beta, seed = case
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(6, W.shape[1])), rng.normal(size=6)
    k = beta.size
    gW, gv = two_layer_gradient(W, v, X, y)
    gWw, gvw = two_layer_gradient(*split_neuron(W, v, j, beta), X, y)
    tol = 1e-12 * (1 + np.abs(v).sum() * (1 + np.abs(beta).sum())) * (1 + np.abs(y).max())
    np.testing.assert_allclose(gvw[j : j + k], gv[j], atol=tol)
    np.testing.assert_allclose(gWw[j : j + k], beta[:, None] * gW[j], atol=tol * (1 + np.abs(beta).max()))
    np.testing.assert_allclose(gWw[j : j + k].sum(axis=0), gW[j], atol=tol * (1 + np.abs(beta).sum()))
    others = np.r_[0:j, j + k : W.shape[0] + k - 1]
    np.testing.assert_allclose(gWw[others], np.delete(gW, j, axis=0), atol=tol)
    np.testing.assert_allclose(gvw[others], np.delete(gv, j), atol=tol)


_CACHE: dict = {}


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=1, max_size=3), st.sampled_from(sorted(CASES)))
def test_stationary_points_split_to_stationary_points(free, name):
    n, seed = CASES[name]
    X, y = teacher_data(n, seed)
    if name not in _CACHE:
        _CACHE[name] = find_local_minimum(X, y, hidden=1, seed=0)
    W, v = _CACHE[name]
    beta = np.append(free, 1 - np.sum(free))
    assert np.max(np.abs(grad_vec(W, v, X, y))) < 1e-12
    assert np.max(np.abs(grad_vec(*split_neuron(W, v, 0, beta), X, y))) < 1e-11 * (1 + np.abs(beta).max())



def test_unsplit_rejects_a_net_that_is_not_a_split():
    with pytest.raises(ValueError, match="W_wide"):
        unsplit_neuron(np.array([[1.0], [2.0]]), np.ones(2), 0, 2)


# --------------------------------------------------------------------------------------------------
# Theorems 1-4: classification by the theorems == numerical classification
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_definiteness(cases, name):
    W, v, X, y = cases[name]
    lam = np.linalg.eigvalsh(inner_hessian(W, v, X, y, 0))
    kind, info = numerical_classification(W, v, X, y)
    assert kind == "local_min" and info["hessian_eigenvalues"][0] > 1e-3
    assert two_layer_loss(W, v, X, y) > 1e-3
    expected = {"PD": lam[0] > 1e-3, "ND": lam[1] < -1e-2, "ID": lam[0] < -0.1 and lam[1] > 0.1}[name]
    assert expected, lam


def expected_kind(definiteness, beta):
    """Theorem 1 as corrected: strict signs."""
    if definiteness == "PD":
        return "local_min" if np.all(beta > 0) else "saddle"
    if definiteness == "ND":
        return "local_min" if (np.sum(beta > 0) == 1 and np.sum(beta < 0) == beta.size - 1) else "saddle"
    return "saddle"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("daughters", [2, 3])
def test_theorem_classification_agrees_with_numerics(cases, name, daughters):
    W, v, X, y = cases[name]
    grid = np.linspace(-1, 2, 13 if daughters == 2 else 9)  # includes the boundaries 0 and 1
    ds = plateau_map(W, v, X, y, 0, daughters=daughters, grid=grid)
    assert ds.attrs["definiteness"] == name
    np.testing.assert_array_equal(ds["kind"].values, ds["numeric_kind"].values)
    betas = ds["beta"].values.reshape(-1, daughters)
    kinds = ds["kind"].values.ravel()
    for beta, code in zip(betas, kinds, strict=True):
        assert code == {"local_min": 0, "saddle": 1}[expected_kind(name, beta)], beta
    saddles = ds["kind"].values == 1
    assert np.all(ds["loss_change"].values[saddles] < 0)  # verified descent at every saddle
    minima = ds["kind"].values == 0
    assert np.all(ds["min_transverse_eig"].values[minima] > 1e-5)
    # interior saddles have negative curvature; boundary saddles (a beta_i = 0) have none (third order)
    interior = np.all(np.abs(ds["beta"].values) > 1e-12, axis=-1)
    assert np.all(ds["min_hessian_eig"].values[saddles & interior] < -1e-6)
    if name != "ID":
        assert minima.any() and saddles.any()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("beta", [[0.3, 0.7], [1.4, -0.4], [0.6, 0.5, -0.1], [2.0, -0.5, -0.5],
                                  [1.0, 0.0], [0.5, 0.25, 0.25], [0.5, -0.8, 1.3]])
def test_evidence(cases, name, beta):
    """Saddle: the explicit path lowers the loss as predicted. Minimum: PSD spectrum, s zero modes."""
    W, v, X, y = cases[name]
    c = classify_plateau(W, v, X, y, 0, beta)
    beta = np.asarray(beta)
    assert c == expected_kind(name, beta) and c.kind == c.numeric_kind
    lam = c.hessian_eigenvalues
    if c.kind == "saddle":
        d = c.descent
        t = d["step"]
        dL = two_layer_loss(c.W_wide + t * d["W1"] + t * t * d["W2"], c.v_wide + t * d["v1"] + t * t * d["v2"],
                            X, y) - two_layer_loss(c.W_wide, c.v_wide, X, y)
        assert dL < 0 and d["loss_change"] < 0
        assert abs(d["loss_change"] - d["predicted"]) <= 0.25 * abs(d["predicted"])
        assert np.isclose(dL, d["loss_change"], rtol=1e-3, atol=1e-15)
    else:
        s = beta.size - 1
        zero = np.abs(lam) < 1e-9
        assert zero.sum() == s and np.all(lam[~zero] > 1e-5)
        assert c.descent == {}


def test_boundary_is_a_third_order_saddle(cases):
    """MODEL.md said 'PD -> local min for all beta_i >= 0': at beta = (1, 0) the Hessian is PSD but the
    point is a saddle (quartic descent path, Lemma 4 Part II)."""
    W, v, X, y = cases["PD"]
    c = classify_plateau(W, v, X, y, 0, [1.0, 0.0])
    assert c == "saddle" and c.hessian_eigenvalues[0] > -1e-12
    assert c.descent["loss_change"] < 0 and np.any(c.descent["v2"] != 0)
    # ND: "exactly one beta_i > 0" must also require the others < 0
    W, v, X, y = cases["ND"]
    assert classify_plateau(W, v, X, y, 0, [1.0, 0.0, 0.0]) == "saddle"
    assert classify_plateau(W, v, X, y, 0, [1.2, -0.2, 0.0]) == "saddle"
    assert classify_plateau(W, v, X, y, 0, [1.2, -0.1, -0.1]) == "local_min"


def test_split_direction_sign_and_pair_factor(cases):
    """Loss change along delta_a = beta_b u, delta_b = -beta_a u is +1/2 t^2 beta_a beta_b (beta_a + beta_b)
    u^T H_j u: for two daughters +1/2 beta_0 beta_1 u^T H u; with three daughters the pair factor
    beta_a + beta_b can flip it (here beta_0 beta_1 < 0 with H PD, yet the loss rises)."""
    W, v, X, y = cases["PD"]
    lam, U = np.linalg.eigh(inner_hessian(W, v, X, y, 0))
    t = 1e-3
    for beta in ([0.3, 0.7], [1.4, -0.4], [0.5, -0.8, 1.3]):
        Ww, vw = split_neuron(W, v, 0, beta)
        a, b = beta[0], beta[1]
        for u, lu in zip(U.T, lam, strict=True):
            dW = np.zeros_like(Ww)
            dW[0], dW[1] = b * u * t, -a * u * t
            dL = two_layer_loss(Ww + dW, vw, X, y) - two_layer_loss(Ww, vw, X, y)
            assert dL == pytest.approx(0.5 * t * t * a * b * (a + b) * lu, rel=2e-3)
    assert 0.5 * -0.8 * (0.5 - 0.8) > 0  # the [0.5, -0.8, 1.3] pair: loss rises although beta_0 beta_1 < 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_wide_hessian_decomposition(cases, name):
    """Q_wide(delta, eps) = Q_narrow(sum beta_i delta_i, sum eps_i) + sum beta_i e_i^T H_j e_i,
    e_i = delta_i - sum_l beta_l delta_l (the identity behind Theorem 1)."""
    W, v, X, y = cases[name]
    H = inner_hessian(W, v, X, y, 0)
    Hn = two_layer_hessian(W, v, X, y)
    rng = np.random.default_rng(6)
    for beta in ([0.3, 0.7], [1.4, -0.4], [0.6, 0.5, -0.1]):
        beta = np.asarray(beta)
        k = beta.size
        Hw = two_layer_hessian(*split_neuron(W, v, 0, beta), X, y)
        for _ in range(3):
            delta, eps = rng.normal(size=(k, 2)), rng.normal(size=k)
            z = np.concatenate([delta.ravel(), eps])
            dbar = beta @ delta
            zn = np.concatenate([dbar, [eps.sum()]])
            e = delta - dbar
            rhs = zn @ Hn @ zn + sum(beta[i] * e[i] @ H @ e[i] for i in range(k))
            assert z @ Hw @ z == pytest.approx(rhs, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
def test_theorem2_surely_saddle_region(cases, name):
    """Some beta_i <= 0 and at least two beta_i >= 0 -> saddle whatever H_j != 0 is; positive measure
    for three daughters, only the endpoints for two."""
    W, v, X, y = cases[name]
    rng = np.random.default_rng(3)
    for _ in range(6):
        b = np.append(rng.uniform(0.05, 1.5, size=2), 0.0)
        b[2] = 1 - b[:2].sum()
        if b[2] >= 0:
            continue
        c = classify_plateau(W, v, X, y, 0, b)
        assert c == "saddle" and c.region == "surely_saddle" and c.numeric_kind == "saddle"
    for b in ([1.0, 0.0], [0.0, 1.0]):
        c = classify_plateau(W, v, X, y, 0, b)
        assert c == "saddle" and c.region == "surely_saddle"
    assert classify_plateau(W, v, X, y, 0, [0.4, 0.6]).region == "all_positive"


def test_theorem4_saddles_beget_saddles(cases):
    W, v, X, y = cases["ID"]
    Ws, vs = split_neuron(W, v, 0, [0.5, 0.5])  # a saddle of the 2-neuron net (Theorem 1.3)
    assert numerical_classification(Ws, vs, X, y, 0, 2)[0] == "saddle"
    for j in (0, 1):
        for beta in ([0.3, 0.7], [1.5, -0.5], [0.2, 0.3, 0.5], [1.0, 0.0]):
            c = classify_plateau(Ws, vs, X, y, j, beta)
            assert c == "saddle" and c.theorem.startswith("Theorem 4") and c.numeric_kind == "saddle"
            assert c.descent["loss_change"] < 0


def test_zero_loss_plateau_is_all_minima():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 2))
    y = 0.8 * np.tanh(X @ [1.0, -0.5])
    W, v = find_local_minimum(X, y, hidden=1, seed=0)
    assert two_layer_loss(W, v, X, y) < 1e-20
    for beta in ([0.5, 0.5], [2.0, -1.0], [0.3, 0.9, -0.2]):
        assert classify_plateau(W, v, X, y, 0, beta) == "local_min"


def test_theorem3_locally_constant_parent_gives_minima():
    """All inputs zero: the parent's output is locally constant, H_j = 0, the loss is flat (> 0)."""
    X, y = np.zeros((5, 2)), np.arange(5.0)
    W, v = np.array([[0.3, -0.2]]), np.array([1.5])
    c = classify_plateau(W, v, X, y, 0, [0.4, 0.6])
    assert c == "undetermined" and c.narrow_kind == "degenerate"  # the Hessian alone cannot tell
    for beta in ([0.4, 0.6], [1.4, -0.4], [0.2, 0.3, 0.5]):
        c = classify_plateau(W, v, X, y, 0, beta, narrow="local_min")
        assert c == "local_min" and c.theorem.startswith("Theorem 3.2") and c.definiteness == "zero"


def test_no_local_maxima_lemma1():
    """Lemma 1: at random stationary points (minima and saddles) some direction raises the loss."""
    rng = np.random.default_rng(5)
    points = []
    for seed in (0, 2, 3):
        X, y = teacher_data(10, 100 + seed)
        y = y + 0.1 * rng.normal(size=y.size)
        for hidden in (1, 2):
            W, v = find_local_minimum(X, y, hidden=hidden, seed=seed)
            if np.max(np.abs(grad_vec(W, v, X, y))) < 1e-9:
                points.append((W, v, X, y))
                points.append((*split_neuron(W, v, 0, [1.7, -0.7]), X, y))
    assert len(points) >= 8
    for W, v, X, y in points:
        H = two_layer_hessian(W, v, X, y)
        lam, U = np.linalg.eigh(H)
        assert lam[-1] > 1e-6
        N, d = W.shape
        up = U[:, -1] * 1e-3
        assert two_layer_loss(W + up[: N * d].reshape(N, d), v + up[N * d :], X, y) > two_layer_loss(W, v, X, y)


# --------------------------------------------------------------------------------------------------
# I/O and plotting
# --------------------------------------------------------------------------------------------------


def test_plateau_map_netcdf_round_trip_and_plot(cases, tmp_path):
    W, v, X, y = cases["ND"]
    for daughters in (2, 3):
        ds = plateau_map(W, v, X, y, 0, daughters=daughters, grid=np.linspace(-1, 2, 5))
        path = tmp_path / f"map{daughters}.nc"
        ds.to_netcdf(path)
        with xr.open_dataset(path) as back:
            back.load()
        xr.testing.assert_identical(back, ds)
        fig = plot_plateau_map(ds)
        assert fig.axes


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_argument(cases):
    W, v, X, y = cases["PD"]
    with pytest.raises(ValueError, match="beta.*sum to 1"):
        split_neuron(W, v, 0, [0.5, 0.6])
    with pytest.raises(ValueError, match="beta.*sum to 1"):
        classify_plateau(W, v, X, y, 0, [0.5, 0.6])
    with pytest.raises(ValueError, match="beta"):
        split_neuron(W, v, 0, [1.0])
    with pytest.raises(ValueError, match="j: neuron index 1 out of range"):
        split_neuron(W, v, 1, [0.5, 0.5])
    with pytest.raises(ValueError, match="j:"):
        inner_hessian(W, v, X, y, -1)
    with pytest.raises(TypeError, match="j:"):
        classify_plateau(W, v, X, y, 0.0, [0.5, 0.5])
    with pytest.raises(ValueError, match="v: length 2"):
        split_neuron(W, np.ones(2), 0, [0.5, 0.5])
    with pytest.raises(ValueError, match="W: must be a 2-d"):
        split_neuron(W.ravel(), v, 0, [0.5, 0.5])
    with pytest.raises(ValueError, match="X: has 3 input columns"):
        inner_hessian(W, v, np.ones((4, 3)), np.ones(4), 0)
    with pytest.raises(ValueError, match="y: must be a 1-d array of length"):
        classify_plateau(W, v, X, y[:-1], 0, [0.5, 0.5])
    with pytest.raises(ValueError, match="activation"):
        inner_hessian(W, v, X, y, 0, activation="relu")
    with pytest.raises(ValueError, match="not a stationary point"):
        classify_plateau(W + 0.1, v, X, y, 0, [0.5, 0.5])
    with pytest.raises(ValueError, match="narrow"):
        classify_plateau(W, v, X, y, 0, [0.5, 0.5], narrow="min")
    with pytest.raises(ValueError, match="daughters"):
        plateau_map(W, v, X, y, 0, daughters=1)
