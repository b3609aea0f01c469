"""Transverse exponents of M_wv / conditional exponent of M_w for the FA model."""

import numpy as np
import pytest

import rds
from analysis import conditional_r_system, lyapunov_spectrum, pqrs_system, transverse_exponents
from analysis.transverse_exponents import E_P, E_Q, E_R, E_S, subspace_tangents


def make(s2):
    return rds.models.fukumizu_amari(eta=0.1, sigma2=s2)


P = np.column_stack([E_P, E_Q, E_R, E_S])  # original -> (p, q, r, s) directions (orthonormal)
WV = np.array([[0.5, 0.5], [1.0, -0.8]])


def test_on_M_wv_stays_on_it_and_transverse_plane_is_invariant():
    ds = transverse_exponents(make, [0.05, 1.0], WV, 1500, transient=300, backend="numpy", qr_every=2)
    assert float(np.abs(ds.off_subspace).max()) == 0.0          # |w1 - w2| and |v1 - v2| stay exactly 0
    assert float(ds.leak.max()) == 0.0                          # tangent vectors never leave the (r, s) plane
    assert ds.exponents.dims == ("sigma2", "realization", "member", "exponent")
    assert ds.sizes["exponent"] == 2 and ds.sizes["tangential_exponent"] == 2
    # in original coordinates the invariance holds up to a rounding leak (tiny after a short run)
    do = transverse_exponents(make, [0.05, 1.0], WV, 1500, transient=300, backend="numpy", qr_every=2,
                              coordinates="original")
    assert float(do.leak.max()) < 1e-8
    np.testing.assert_allclose(do.exponents.values, ds.exponents.values, rtol=0, atol=1e-9)
    np.testing.assert_allclose(do.tangential.values, ds.tangential.values, rtol=0, atol=1e-9)


def test_transverse_exponents_equal_products_of_the_rs_block():
    """Brute force: QR of the 2x2 (r, s) blocks of J along the same path (loop over steps: test only)."""
    fa = make(0.3)
    n, tr, seed = 150, 20, 5
    ds = transverse_exponents(make, 0.3, WV[:1], n + tr, transient=tr, seed=seed, backend="numpy")
    u = np.array([0.5, 0.5, 0.5, 0.5])
    traj = fa.trajectory(u, n + tr, seed=seed, backend="numpy").state.values[:, 0]
    xis = fa.noise_path(0, n + tr, seed=seed)
    Q, acc = np.eye(2), np.zeros(2)
    for t in range(tr, n + tr):
        J = P.T @ fa.jacobian_matrix(traj[t], xis[t]) @ P
        assert np.abs(J[:2, 2:]).max() < 1e-15 and np.abs(J[2:, :2]).max() < 1e-15   # block diagonal on M_wv
        Q, R = np.linalg.qr(J[2:, 2:] @ Q)
        acc += np.log(np.abs(np.diag(R)))
    np.testing.assert_allclose(np.sort(ds.exponents.values[0, 0, 0])[::-1], np.sort(acc / n)[::-1], atol=1e-12)


def test_conditional_exponent_of_M_w():
    fa = make(0.5)
    n, seed = 120, 2
    start = np.array([[0.7, 0.4, -0.2]])  # (w, v1, v2) on M_w
    ds = transverse_exponents(make, 0.5, start, n, subspace="M_w", seed=seed, backend="numpy")
    u = np.array([0.7, 0.7, 0.4, -0.2])
    traj = fa.trajectory(u, n, seed=seed, backend="numpy").state.values[:, 0]
    xis = fa.noise_path(0, n, seed=seed)
    jrr = [E_R @ fa.jacobian_matrix(traj[t], xis[t]) @ E_R for t in range(n)]
    np.testing.assert_allclose(float(ds.exponents[0, 0, 0, 0]), np.mean(np.log(np.abs(jrr))), atol=1e-12)
    assert ds.sizes["exponent"] == 1 and "leak" not in ds
    assert float(ds.off_subspace.max()) > 0           # M_w is not invariant: the trajectory leaves it


def test_pqrs_system_is_conjugate_and_backends_agree():
    fa = make(1.0)
    sp = pqrs_system(fa)
    ref = rds.models.fukumizu_amari_pqrs(eta=0.1, sigma2=1.0)
    u = np.random.default_rng(1).uniform(-1, 1, (5, 4))
    xi = np.array([0.37])
    np.testing.assert_allclose(sp.apply(rds.coords.to_pqrs(u), xi), ref.apply(rds.coords.to_pqrs(u), xi),
                               atol=1e-14)
    Jp = sp.jacobian_matrix(rds.coords.to_pqrs(u), xi)
    J = fa.jacobian_matrix(u, xi)
    T = np.array([[.5, .5, 0, 0], [0, 0, .5, .5], [.5, -.5, 0, 0], [0, 0, .5, -.5]])
    np.testing.assert_allclose(Jp, T @ J @ np.linalg.inv(T), atol=1e-14)
    X = rds.coords.to_pqrs(np.array([[0.5, 0.5, 0.8, 0.8], [1.0, 1.0, -0.3, -0.3]]))
    kw = dict(tangent=np.eye(4)[:, [2, 3, 0, 1]], qr_every=2, seed=3)
    a = sp.propagate_tangent(X, 300, backend="numpy", **kw)
    b = sp.propagate_tangent(X, 300, backend="numba", **kw)
    np.testing.assert_allclose(a["logr"], b["logr"], rtol=0, atol=1e-10)
    assert np.all(b["state"][:, 2:] == 0.0) and np.all(b["V"][:, :2, :2] == 0.0)


def test_conditional_system_and_tangents():
    assert subspace_tangents("M_w").shape == (4, 1)
    c = conditional_r_system(make(1.0))
    J = c.jacobian_matrix(np.array([0.3, 0.2, 0.5, -0.1]), np.array([0.4]))
    assert np.allclose(J, J[0, 0] * np.eye(4))
    ds = lyapunov_spectrum(c, np.array([0.3, 0.3, 0.5, -0.1]), 10, tangent=E_R[:, None], backend="numpy")
    assert ds.sizes["exponent"] == 1


def test_round_trip(tmp_path):
    ds = transverse_exponents(make, [0.1, 0.5], WV, 300, transient=100, realizations=2, backend="numpy")
    rds.io.save(ds, tmp_path / "t.nc")
    back = rds.io.load(tmp_path / "t.nc")
    assert back.equals(ds) and back.attrs == ds.attrs


@pytest.mark.parametrize("kwargs, name", [
    (dict(subspace="M_v"), "subspace"),
    (dict(sigma2=[0.1, -1.0]), "sigma2"),
    (dict(sigma2=[]), "sigma2"),
    (dict(initial=np.zeros((2, 3))), "initial"),
    (dict(coordinates="polar"), "coordinates"),
    (dict(steps=10, transient=10), "steps"),
    (dict(qr_every=0), "qr_every"),
])
def test_bad_input(kwargs, name):
    args = dict(sigma2=[0.1], initial=WV, steps=20, backend="numpy")
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        transverse_exponents(make, **args)
