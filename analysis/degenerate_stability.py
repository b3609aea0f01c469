"""Local Jacobian stability on the degenerate subspace M_wv, and the averaged potential.

Reference: Sato, Tsutsui, Fujiwara, *Noise-induced degeneration in online learning*,
Physica D 430 (2022) 133095 (Sato et al. 2022): §3.2, Fig. 3, Appendices A and B.

On M_wv = {w1 = w2 = w, v1 = v2 = v} one SGD step of the Fukumizu–Amari model is (eqs. 31–34)

    (w, v) ← (w, v) + η g(x; w, v),   g = −e · (v x / cosh²(wx), tanh(wx)),   e = 2v tanh(wx) − T(x),

with target T(x) = 2 tanh(x) − tanh(4x) (eq. 8) and input x ~ N(0, σ²). g = −∇(e²/4), so its Jacobian
J = ∂g/∂(w, v) (eq. 35, with "4v" in J12) is symmetric. For small η the point (w, v) attracts
for the input x when the larger eigenvalue μ+ ≤ 0 and is a saddle otherwise (Theorem 2).
π(w, v) = Prob[μ+ ≤ 0] (eq. 38) is the map of Fig. 3 (right).

Two identities, derived here and checked in the tests, make everything stable and exact:

* ``det J = −x² sech²(wx) · e · (e sech²(wx) + 4 v tanh(wx))``. Since μ− < 0 whenever e ≠ 0 and x ≠ 0
  (Weyl's inequality on eq. 36, the argument of Theorem 2), ``μ+ ≤ 0  ⇔  det J ≥ 0``, so the x-intervals
  where (w, v) attracts are bounded by the roots in x of e and of e sech² + 4 v tanh — and
  π(w, v) is a sum of exact Gaussian masses of those intervals.
* With the closed form of App. B (eqs. B.2–B.5) divided through by cosh⁸(wx) (so nothing overflows),
  the eigenvalue of larger modulus is taken from B.2 and the other one as det J / (that one), which avoids the
  cancellation in A + √B/(8 cosh⁴) when μ+ is close to 0.

App. A replaces tanh by h(u) = erf(u/√2); then the averaged potential L(θ) = E_x[½(f − T)²] is (A.3–A.4) in
closed form and, on M_wv, minimal in v at v*(w; σ²) (A.6) — the valley C drawn in red in Fig. 3.

Beyond M_wv, :func:`step_jacobian_pqrs`, :func:`transverse_jacobian`, :func:`averaged_step_jacobian` and
:func:`compare_random_averaged` use the full 4-D system ``rds.models.fukumizu_amari`` and ``rds.coords``
(eq. 19) to split the Jacobian of one step at a point of M_wv into its tangent (p, q) and transverse (r, s)
blocks, for single inputs x (the random picture) and averaged over x (the deterministic-GD picture).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy.special import erf, erfc

from rds import quadrature
from rds._checks import positive, positive_array, real_array
from rds.labels import annotate
from rds.models.fukumizu_amari import PQRS_MATRIX, target
from rds.models.fukumizu_amari_reduced import g_jacobian

__all__ = [
    "TARGET_OMEGA",
    "TARGET_NU",
    "target",
    "sgd_direction_wv",
    "jacobian_wv",
    "mu_eigenvalues",
    "attracting_probability",
    "averaged_potential",
    "averaged_potential_full",
    "valley",
    "valley_potential",
    "valley_local_minima",
    "averaged_jacobian_wv",
    "averaged_mu",
    "step_jacobian_pqrs",
    "transverse_jacobian",
    "averaged_step_jacobian",
    "compare_random_averaged",
    "degenerate_stability",
]

#: Target T(x) = Σ_a ν_a act(ω_a x) = 2 act(x) − act(4x) (Sato et al. 2022, eq. 8 and App. A, eq. A.2).
TARGET_OMEGA = (1.0, 4.0)
TARGET_NU = (2.0, -1.0)

_PAPER = "Noise-induced degeneration in online learning, Physica D 430 (2022) 133095 (Sato et al. 2022)"
_EPS = np.finfo(float).eps
_GRID_RATIO = 1.0 + 1.0 / 32.0   # geometric x-grid for the root search in attracting_probability
_X_MAX_SIGMAS = 40.0             # erfc(40/√2) underflows: no Gaussian mass is lost beyond 40σ
_BISECT_ITERS = 64
_GOLDEN_ITERS = 90


# ----------------------------------------------------------------------------------------------- validation
def _finite(value, name):  # validators live in rds._checks
    return real_array(value, name, finite=True)


def _sigma2(value, name="sigma2"):
    return positive_array(value, name, " (the variance of x ~ N(0, sigma2))")


def _tanh_sech(z):
    """tanh(z) and sech(z) without overflow (sech = 2e^{-|z|} / (1 + e^{-2|z|}))."""
    ez = np.exp(-np.abs(z))
    return np.tanh(z), 2.0 * ez / (1.0 + ez * ez)


def _tanh_tail_sech2(z):
    """tanh z, τ(z) = 1 − |tanh z| and sech² z from one exp and one expm1, all to full relative accuracy.

    τ stays accurate where tanh z rounds to ±1 (τ = 2e^{-2|z|}/(1 + e^{-2|z|})); no overflow for any finite z.
    """
    a = -2.0 * np.abs(z)
    E = np.exp(a)
    den = 1.0 + E
    th = np.sign(z) * (-np.expm1(a) / den)
    return th, 2.0 * E / den, 4.0 * E / (den * den)


def _parts(x, w, v):
    """e = 2v tanh(wx) − T(x) (eq. 34) with tanh(wx) and sech²(wx); e accurate to a few ulps of its
    non-cancelling part.

    Where all tanh saturate, e = c0 − (tails) with c0 = sgn(x)(2v sgn(w) − 1) exact, so e is resolved down to
    e^{-2|x|}-sized values instead of being swamped by rounding of the O(1) terms; elsewhere the plain sum is used
    (whichever has the smaller rounding bound).
    """
    th_w, t_w, s2_w = _tanh_tail_sech2(w * x)
    th_1, t_1, _ = _tanh_tail_sech2(x)
    th_4, t_4, _ = _tanh_tail_sech2(4.0 * x)
    plain = 2.0 * v * th_w - 2.0 * th_1 + th_4
    bound_plain = np.abs(2.0 * v * th_w) + 2.0 * np.abs(th_1) + np.abs(th_4)
    sx, sw = np.sign(x), np.sign(w * x)
    c0 = 2.0 * v * sw - sx
    tails = 2.0 * v * sw * t_w - 2.0 * sx * t_1 + sx * t_4
    bound_tail = np.abs(c0) + np.abs(2.0 * v * t_w) + 2.0 * t_1 + t_4
    e = np.where(bound_tail < bound_plain, c0 - tails, plain)
    return e, th_w, s2_w


def _residual(x, w, v):
    """e = 2v tanh(wx) − T(x), see :func:`_parts`."""
    return _parts(x, w, v)[0]


def _second_factor(e, th, s2, v):
    """f2 = e sech² + 4 v tanh, whose sign is that of e cosh² ⋅ f2 = e + 2v sinh(2wx) (roots of e + 4v tanh cosh²).

    For v = 0 it is e sech², which has the sign of e even where sech² underflows; return e there.
    """
    return np.where(v == 0, e, e * s2 + 4.0 * v * th)


# ----------------------------------------------------------------------------------------------- g and J
def sgd_direction_wv(x, w, v):
    """Direction of one SGD step on M_wv, g(x; w, v) (Sato et al. 2022, eqs. 33–34).

    g = −(2v tanh(wx) − T(x)) · (v x / cosh²(wx), tanh(wx)); one step is (w, v) ← (w, v) + η g.

    Parameters
    ----------
    x, w, v : array_like
        Input and point of M_wv; broadcast together to a shape ``S``. Must be finite.

    Returns
    -------
    ndarray, shape ``S + (2,)``
        (g_w, g_v).

    Examples
    --------
    >>> sgd_direction_wv(1.0, 0.5, 0.5).shape
    (2,)
    """
    x, w, v = np.broadcast_arrays(_finite(x, "x"), _finite(w, "w"), _finite(v, "v"))
    th, sech = _tanh_sech(w * x)
    e = _residual(x, w, v)
    return np.stack([-e * v * x * sech * sech, -e * th], axis=-1)


def jacobian_wv(x, w, v):
    """Jacobian J(x; w, v) = ∂g/∂(w, v) on M_wv (Sato et al. 2022, eq. 35 = eq. B.1).

    J11 = −2 v x² (T tanh − 3 v tanh² + v) / cosh², J12 = J21 = x (T − 4 v tanh) / cosh², J22 = −2 tanh²,
    with tanh = tanh(wx), cosh = cosh(wx), T = T(x). J is symmetric because g = −∇(e²/4). The Jacobian of the
    step map itself is I + η J. The entries are :func:`rds.models.fukumizu_amari_reduced.g_jacobian`.

    Parameters
    ----------
    x, w, v : array_like
        Broadcast together to a shape ``S``; finite.

    Returns
    -------
    ndarray, shape ``S + (2, 2)``
        J, computed with sech = 1/cosh from exponentials of −|wx| (no overflow for large |wx|).

    Examples
    --------
    >>> J = jacobian_wv(1.0, 0.5, 0.5)
    >>> bool(J[0, 1] == J[1, 0])
    True
    """
    x, w, v = np.broadcast_arrays(_finite(x, "x"), _finite(w, "w"), _finite(v, "v"))
    j11, j12, j22 = g_jacobian(x, w, v)
    return np.stack([np.stack([j11, j12], axis=-1), np.stack([j12, j22], axis=-1)], axis=-2)


def mu_eigenvalues(x, w, v, closed_form=False):
    """Eigenvalues μ− ≤ μ+ of the Jacobian J(x; w, v) on M_wv (Sato et al. 2022, eq. 35; closed form eqs. B.2–B.5).

    Parameters
    ----------
    x, w, v : array_like
        Input x and point (w, v) of M_wv; broadcast together to a shape ``S``. Must be finite.
    closed_form : bool, default False
        False: numeric eigenvalues of the symmetric 2×2 matrix (``numpy.linalg.eigvalsh``; absolute accuracy
        ~ ε‖J‖). True: App. B, μ± = A ± √B / (8 cosh⁴(wx)) (B.2) with A (B.3), B (B.4), C (B.5) rewritten
        with B/(64 cosh⁸) expressed through tanh and sech² (no overflow of cosh⁸ for large |wx|); the eigenvalue
        of larger modulus comes from B.2 and the other one as det J / (that one), with the factored
        det J = −x² sech² e (e sech² + 4 v tanh), so a μ+ close to 0 keeps its relative accuracy.

    Returns
    -------
    mu_minus, mu_plus : ndarray, shape ``S``
        μ− ≤ μ+. Both are even in x; μ± = 0 at x = 0.

    Examples
    --------
    >>> mm, mp = mu_eigenvalues([0.1, 2.0], 0.5, 0.5, closed_form=True)
    >>> bool(mp[0] > 0), bool(mp[1] < 0)       # saddle near x = 0, attracting at x = 2
    (True, True)
    """
    if not isinstance(closed_form, (bool, np.bool_)):
        raise TypeError(f"closed_form must be a bool, got {closed_form!r}")
    x, w, v = _finite(x, "x"), _finite(w, "w"), _finite(v, "v")
    try:
        x, w, v = np.broadcast_arrays(x, w, v)
    except ValueError as e:
        raise ValueError(f"x, w and v must broadcast together, got shapes {np.shape(x)}, {np.shape(w)}, "
                         f"{np.shape(v)}") from e
    if not closed_form:
        ev = np.linalg.eigvalsh(jacobian_wv(x, w, v))
        return ev[..., 0], ev[..., 1]
    th, sech = _tanh_sech(w * x)
    s2 = sech * sech
    T = target(x)
    xs = x * sech
    # B.3: A = −1 + (1 + 2v²x² − v x² tanh T)/cosh² − 3 v² x² / cosh⁴, with −1 + 1/cosh² = −tanh²
    a = -th * th + xs * xs * (2.0 * v * v - v * th * T) - 3.0 * v * v * (xs * sech) ** 2
    # B.5 / cosh⁴:  C̃ = 8v² tanh² (2 + sech²) − 8 v tanh T (1 + sech²) + 2 sech² T²
    c_t = 8.0 * v * v * th * th * (2.0 + s2) - 8.0 * v * th * T * (1.0 + s2) + 2.0 * s2 * T * T
    # (second term of B.4)^(1/2) / (8 cosh⁴):  D̃ = tanh² + v x² sech² (tanh T − 2 v + 3 v sech²)
    d_t = th * th + v * xs * xs * (th * T - 2.0 * v + 3.0 * v * s2)
    # Everything below is scaled by k = max |J_ij| so that neither B/(64 cosh⁸) ~ k² nor det J ~ k² underflow
    # for tiny |x| (they would once k < 1e-154).
    j11 = -2.0 * v * xs * xs * (T * th - 3.0 * v * th * th + v)
    j12 = xs * sech * (T - 4.0 * v * th)
    k = np.maximum(np.maximum(np.abs(j11), np.abs(j12)), th * th)
    zero = k == 0
    k = np.where(zero, 1.0, k)
    # B / (64 cosh⁸) = x² sech² C̃ / 2 + D̃²   (the radicand is ((J11 − J22)/2)² + J12² ≥ 0)
    b_k = np.maximum(0.5 * (xs * xs / k) * (c_t / k) + (d_t / k) ** 2, 0.0)
    root = np.sqrt(b_k)
    e = _residual(x, w, v)  # type: ignore[misc]
    det_k = -(xs * xs / k) * ((e / k) * (e * s2 + 4.0 * v * th))       # det J / k²
    a_k = a / k
    big = np.where(a_k <= 0, a_k - root, a_k + root)     # eigenvalue of larger modulus (/k), no cancellation
    with np.errstate(divide="ignore", invalid="ignore"):
        small = np.where(big != 0, det_k / big, 0.0)
    big = np.where(zero, 0.0, big * k)
    small = np.where(zero, 0.0, small * k)
    mu_minus = np.where(a <= 0, big, small)
    mu_plus = np.where(a <= 0, small, big)
    return mu_minus, mu_plus


# ----------------------------------------------------------------------------------------------- π (eq. 38)
def _bisect(fn, lo, hi, w, v, iters=_BISECT_ITERS):
    """Vectorised bisection for a sign change of fn(·, w, v) on [lo, hi]."""
    flo = np.sign(fn(lo, w, v))
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fm = np.sign(fn(mid, w, v))
        left = fm * flo > 0
        lo = np.where(left, mid, lo)
        hi = np.where(left, hi, mid)
        flo = np.where(left, fm, flo)
    return 0.5 * (lo + hi)


def _golden_min(fn, lo, hi, w, v, sgn, iters=_GOLDEN_ITERS):
    """Vectorised golden-section search for a local minimum of sgn·fn(·, w, v) on [lo, hi]."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c = hi - g * (hi - lo)
    d = lo + g * (hi - lo)
    fc = sgn * fn(c, w, v)
    fd = sgn * fn(d, w, v)
    for _ in range(iters):
        left = fc < fd
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
        new_c = hi - g * (hi - lo)
        new_d = lo + g * (hi - lo)
        c_next = np.where(left, new_c, d)
        d_next = np.where(left, c, new_d)
        fc_next = np.where(left, sgn * fn(new_c, w, v), fd)
        fd_next = np.where(left, fc, sgn * fn(new_d, w, v))
        c, d, fc, fd = c_next, d_next, fc_next, fd_next
    xm = np.where(fc < fd, c, d)
    return xm, np.minimum(fc, fd)


def _f1(x, w, v):
    return _residual(x, w, v)


def _f2(x, w, v):
    e, th, s2 = _parts(x, w, v)
    return _second_factor(e, th, s2, v)


def _roots(fn, X, w, v, F):
    """All roots in x of fn(x, w_i, v_i) on the rows of the grid X (n, K): (row index, root) arrays.

    Sign changes between grid points are refined by bisection; a pair of roots closer than the grid spacing
    is caught by a golden-section search in every cell triple where |fn| has a discrete local minimum.
    """
    s = np.sign(F)
    rows, roots = [], []
    i, k = np.nonzero(s[:, :-1] * s[:, 1:] < 0)
    if i.size:
        rows.append(i)
        roots.append(_bisect(fn, X[i, k], X[i, k + 1], w[i], v[i]))
    i0, k0 = np.nonzero(F == 0)
    if i0.size:
        rows.append(i0)
        roots.append(X[i0, k0])
    a = np.abs(F)
    dip = ((a[:, 1:-1] < a[:, :-2]) & (a[:, 1:-1] <= a[:, 2:])
           & (s[:, 1:-1] * s[:, :-2] > 0) & (s[:, 1:-1] * s[:, 2:] > 0))
    idp, kdp = np.nonzero(dip)
    if idp.size:
        kdp = kdp + 1
        sgn = s[idp, kdp]
        lo, hi = X[idp, kdp - 1], X[idp, kdp + 1]
        xm, fm = _golden_min(fn, lo, hi, w[idp], v[idp], sgn)
        cross = fm < 0
        if np.any(cross):
            ic = idp[cross]
            rows += [ic, ic]
            roots.append(_bisect(fn, lo[cross], xm[cross], w[ic], v[ic]))
            roots.append(_bisect(fn, xm[cross], hi[cross], w[ic], v[ic]))
    if not rows:
        return np.zeros(0, dtype=int), np.zeros(0)
    return np.concatenate(rows), np.concatenate(roots)


def _gauss_mass(a, b, sigma):
    """P(a ≤ |x| ≤ b) for x ~ N(0, σ²), 0 ≤ a ≤ b, accurate in absolute terms (erf near 0, erfc in the tail)."""
    za, zb = a / (sigma * math.sqrt(2.0)), b / (sigma * math.sqrt(2.0))
    tail = za > 0.5
    return np.where(tail, erfc(za) - erfc(zb), erf(zb) - erf(za))


def _pi_chunk(w, v, sigma):
    """π for 1-D arrays w, v, sigma of one chunk."""
    n = w.size
    x_hi = _X_MAX_SIGMAS * sigma
    x_lo = 1e-7 * np.minimum(1.0, 1.0 / np.maximum(np.abs(w), 1e-300)) * np.minimum(1.0, sigma)
    x_lo = np.minimum(x_lo, 1e-3 * x_hi)
    span = np.log(x_hi / x_lo)
    K = int(np.ceil(span.max() / math.log(_GRID_RATIO))) + 2
    X = x_lo[:, None] * np.exp(np.arange(K)[None, :] * (span[:, None] / (K - 1)))
    W, V = w[:, None], v[:, None]
    e, th, s2 = _parts(X, W, V)
    r1, x1 = _roots(_f1, X, w, v, e)
    r2, x2 = _roots(_f2, X, w, v, _second_factor(e, th, s2, V))
    rows = np.concatenate([r1, r2])
    vals = np.concatenate([x1, x2])
    counts = np.bincount(rows, minlength=n)
    m = int(counts.max()) if rows.size else 0
    pad = np.repeat(x_hi[:, None], max(m, 1), axis=1)
    if rows.size:
        order = np.lexsort((vals, rows))
        rows, vals = rows[order], vals[order]
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(rows.size) - start[rows]
        pad[rows, rank] = np.minimum(vals, x_hi[rows])
        pad.sort(axis=1)
    bp = np.concatenate([np.zeros((n, 1)), pad, x_hi[:, None]], axis=1)
    lo, hi = bp[:, :-1], bp[:, 1:]
    mid = 0.5 * (lo + hi)
    e, th, s2 = _parts(mid, W, V)
    attracting = np.sign(e) * np.sign(_second_factor(e, th, s2, V)) <= 0
    mass = np.where((hi > lo) & attracting, _gauss_mass(lo, hi, sigma[:, None]), 0.0)
    return np.clip(mass.sum(axis=1), 0.0, 1.0)


def attracting_probability(w, v, sigma2, chunk=2048):
    """π(w, v) = Prob_{x ~ N(0, σ²)}[μ+(x; w, v) ≤ 0] (Sato et al. 2022, eq. 38; Fig. 3 right), by exact quadrature.

    μ+ ≤ 0 ⇔ det J ≥ 0 ⇔ e(x) · (e(x) sech²(wx) + 4 v tanh(wx)) ≤ 0 with e = 2v tanh(wx) − T(x) (see the
    module docstring), an even function of x. The roots in x > 0 of both factors are found on a geometric grid
    (ratio 1 + 1/32, from ~1e-7 to 40σ; tanh-type structure has O(1) relative width in x, so it is resolved at
    every scale), refined by bisection to full precision, with a golden-section search for root pairs closer
    than the grid; the Gaussian mass of the attracting intervals is then summed exactly with erf/erfc.
    Accuracy: ~1e-15 absolute (no Monte Carlo).

    Parameters
    ----------
    w, v : array_like
        Points of M_wv; broadcast together with ``sigma2`` to a shape ``S`` (e.g. ``w[:, None]``, ``v[None, :]``
        for a grid). Finite.
    sigma2 : float or array_like
        Input variance σ² > 0.
    chunk : int, default 2048
        Points per vectorised batch (memory ~ chunk × 2000 floats).

    Returns
    -------
    ndarray, shape ``S``
        π in [0, 1].

    Examples
    --------
    >>> p = attracting_probability(0.5, 0.5, [0.1, 1.0])
    >>> bool(p[0] < p[1])
    True
    """
    w = _finite(w, "w")
    v = _finite(v, "v")
    s2 = _sigma2(sigma2)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    w, v, s2 = np.broadcast_arrays(w, v, s2)
    shape = w.shape
    wf, vf, sf = w.ravel(), v.ravel(), np.sqrt(s2.ravel())
    out = np.empty(wf.size)
    with np.errstate(over="ignore", under="ignore"):
        for i0 in range(0, wf.size, chunk):
            sl = slice(i0, i0 + chunk)
            out[sl] = _pi_chunk(wf[sl], vf[sl], sf[sl])
    return out.reshape(shape)


# ----------------------------------------------------------------------------------------------- App. A
def _phi(z1, z2, s2):
    """Φ(ζ1, ζ2) = arcsin(σ² ζ1 ζ2 / (√(1 + σ² ζ1²) √(1 + σ² ζ2²))) (eq. A.4)."""
    return np.arcsin(s2 * z1 * z2 / np.sqrt((1.0 + s2 * z1 * z1) * (1.0 + s2 * z2 * z2)))


def _target_overlap(w, s2):
    return sum(nu * _phi(w, om, s2) for om, nu in zip(TARGET_OMEGA, TARGET_NU, strict=True))


def _target_energy(s2):
    """½ E[T²] for the erf target: (1/π) Σ_ab ν_a ν_b Φ(ω_a, ω_b)."""
    tot = 0.0
    for oa, na in zip(TARGET_OMEGA, TARGET_NU, strict=True):
        for ob, nb in zip(TARGET_OMEGA, TARGET_NU, strict=True):
            tot = tot + na * nb * _phi(oa, ob, s2)
    return tot / np.pi


def _half_line_rule(sigma, wmax, npts=10):
    """E_x[F] for even F, x ~ N(0, σ²): :func:`rds.quadrature.even_normal_rule` (nodes x ≥ 0)."""
    return quadrature.even_normal_rule(sigma, wmax, npts)


def _expect_even(fn, w, v, s2, tail_shape=()):
    """E_x[fn(x, w, v)] for x ~ N(0, σ²), fn even in x; w, v, s2 broadcast arrays; fn returns S + tail_shape."""
    w, v, s2 = np.broadcast_arrays(w, v, s2)
    out = np.empty(w.shape + tail_shape)
    wmax = float(np.max(np.abs(w))) if w.size else 1.0
    for sv in np.unique(s2):
        sel = s2 == sv
        x, wt = _half_line_rule(math.sqrt(sv), wmax)
        vals = fn(x, w[sel][:, None], v[sel][:, None])        # (m, N) + tail
        out[sel] = np.tensordot(wt, np.moveaxis(vals, 1, 0), axes=(0, 0))
    return out


def averaged_potential(w, v, sigma2, activation="erf"):
    """Averaged potential on M_wv, L*(w, v) = E_x[½(2v act(wx) − T(x))²] (Sato et al. 2022, eq. A.5, constant included).

    Parameters
    ----------
    w, v : array_like
        Points of M_wv; broadcast with ``sigma2`` to a shape ``S``.
    sigma2 : float or array_like
        σ² > 0.
    activation : {"erf", "tanh"}
        "erf": h(u) = erf(u/√2) and target 2h(x) − h(4x), closed form (4/π)(v² Φ(w, w) − v Σ_a ν_a Φ(w, ω_a))
        + (1/π) Σ_ab ν_a ν_b Φ(ω_a, ω_b) (A.3–A.5). "tanh": the model actually trained, by composite
        Gauss–Legendre quadrature over x (≈1e-14).

    Returns
    -------
    ndarray, shape ``S``

    Examples
    --------
    >>> float(averaged_potential(0.0, 0.0, 1.0)) > 0
    True
    """
    w, v = _finite(w, "w"), _finite(v, "v")
    s2 = _sigma2(sigma2)
    if activation == "erf":
        return (4.0 / np.pi) * (v * v * _phi(w, w, s2) - v * _target_overlap(w, s2)) + _target_energy(s2)
    if activation == "tanh":
        return _expect_even(lambda x, ww, vv: 0.5 * _residual(x, ww, vv) ** 2, w, v, s2)
    raise ValueError(f"activation must be 'erf' or 'tanh', got {activation!r}")


def averaged_potential_full(theta, sigma2):
    """Averaged potential of the erf network in the full space, L(θ) (Sato et al. 2022, eq. A.3, constant included).

    L(θ) = (1/π) Σ_ij v_i v_j Φ(w_i, w_j) − (2/π) Σ_ia v_i ν_a Φ(w_i, ω_a) + ½E[T²].

    Parameters
    ----------
    theta : array_like, shape ``(..., 4)``
        (w1, w2, v1, v2), in the order of ``rds.models.fukumizu_amari().variables``.
    sigma2 : float
        σ² > 0.

    Returns
    -------
    ndarray, shape ``(...)``

    Examples
    --------
    >>> th = [0.7, 0.7, 0.3, 0.3]
    >>> bool(np.isclose(averaged_potential_full(th, 1.0), averaged_potential(0.7, 0.3, 1.0)))
    True
    """
    theta = _finite(theta, "theta")
    if theta.shape[-1:] != (4,):
        raise ValueError(f"theta must have last axis of length 4 (w1, w2, v1, v2), got shape {theta.shape}")
    s2 = float(_sigma2(sigma2))
    w = (theta[..., 0], theta[..., 1])
    v = (theta[..., 2], theta[..., 3])
    tot = _target_energy(s2)
    for i in range(2):
        for j in range(2):
            tot = tot + v[i] * v[j] * _phi(w[i], w[j], s2) / np.pi
        tot = tot - 2.0 / np.pi * v[i] * _target_overlap(w[i], s2)
    return tot


def valley(w, sigma2):
    """The valley C: v*(w; σ²) = Σ_a ν_a Φ(w, ω_a) / (2 Φ(w, w)), the minimiser in v of L*(w, ·) (eqs. A.6–A.7).

    Parameters
    ----------
    w : array_like
        Broadcast with ``sigma2`` to a shape ``S``; w ≠ 0 (at w = 0 the potential does not depend on v: NaN).
    sigma2 : float or array_like
        σ² > 0.

    Returns
    -------
    ndarray, shape ``S``
        v*(w; σ²). Odd in w; v* → ∞ like Σ_a ν_a ω_a / √(1 + σ² ω_a²) / (2 w) as w → 0+.

    Examples
    --------
    >>> round(float(valley(1.0, 1.0)), 4)
    0.2781
    """
    w = _finite(w, "w")
    s2 = _sigma2(sigma2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _target_overlap(w, s2) / (2.0 * _phi(w, w, s2))


def valley_potential(w, sigma2):
    """Averaged potential along the valley C, Λ(w) = L*(w, v*(w)) = ½E[T²] − (1/π)(Σ_a ν_a Φ(w, ω_a))² / Φ(w, w).

    Follows from eqs. A.5–A.6. Local minima of Λ are the local minima of L* on M_wv (they lie on C).

    Parameters
    ----------
    w : array_like
        w ≠ 0; broadcast with ``sigma2``.
    sigma2 : float or array_like
        σ² > 0.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> lam = valley_potential([0.5, 1.0], 1.0)
    >>> bool(lam[0] < lam[1])
    True
    """
    w = _finite(w, "w")
    s2 = _sigma2(sigma2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _target_energy(s2) - _target_overlap(w, s2) ** 2 / (np.pi * _phi(w, w, s2))


def valley_local_minima(sigma2, w_min=1e-3, w_max=100.0, num=4000):
    """Local minima of the averaged potential along the valley C for w > 0 (App. A; checks the claim of §3.2).

    Λ(w) (see :func:`valley_potential`) is scanned on a log grid of ``num`` points in [w_min, w_max];
    interior discrete minima are refined with a bounded scalar minimisation. Only w > 0 is scanned: Λ is even
    in w and v* odd, so each minimum (w, v) has a mirror image (−w, −v).

    Parameters
    ----------
    sigma2 : float
        σ² > 0.
    w_min, w_max : float
        Scan range, 0 < w_min < w_max.
    num : int
        Grid points.

    Returns
    -------
    w_star, v_star, potential : ndarray, shape ``(n_minima,)``
        Location on C and value of Λ at each local minimum (empty if Λ is monotone on the range).

    Examples
    --------
    >>> w_star, v_star, lam = valley_local_minima(0.01)
    >>> w_star.size
    1
    """
    from scipy.optimize import minimize_scalar

    s2 = float(_sigma2(sigma2))
    if not (0 < w_min < w_max) or not np.isfinite(w_max):
        raise ValueError(f"need 0 < w_min < w_max < inf, got w_min={w_min!r}, w_max={w_max!r}")
    w = np.geomspace(w_min, w_max, int(num))
    lam = valley_potential(w, s2)
    idx = np.nonzero((lam[1:-1] < lam[:-2]) & (lam[1:-1] <= lam[2:]))[0] + 1
    ws = []
    for i in idx:
        res = minimize_scalar(lambda t: float(valley_potential(t, s2)), bounds=(w[i - 1], w[i + 1]),
                              method="bounded", options={"xatol": 1e-12 * w[i]})
        ws.append(res.x)
    ws = np.asarray(ws, dtype=float)
    return ws, valley(ws, s2), valley_potential(ws, s2)


# ----------------------------------------------------------------------------------------------- averaged J
def averaged_jacobian_wv(w, v, sigma2):
    """Averaged Jacobian E_x[J(x; w, v)] on M_wv, x ~ N(0, σ²): the deterministic (averaged) gradient flow view.

    E_x[J] is the Jacobian of the averaged direction E_x[g] = −∇ E_x[e²/4] = −½ ∇² L*_tanh(w, v) (eqs. 34–35).
    J is even in x; the expectation is a composite Gauss–Legendre quadrature over x ≥ 0 (≈1e-14).

    Parameters
    ----------
    w, v : array_like
        Broadcast with ``sigma2`` to a shape ``S``.
    sigma2 : float or array_like
        σ² > 0.

    Returns
    -------
    ndarray, shape ``S + (2, 2)``

    Examples
    --------
    >>> averaged_jacobian_wv(0.5, 0.5, 1.0).shape
    (2, 2)
    """
    w, v = _finite(w, "w"), _finite(v, "v")
    s2 = _sigma2(sigma2)
    return _expect_even(jacobian_wv, w, v, s2, (2, 2))


def averaged_mu(w, v, sigma2):
    """Eigenvalues of the averaged Jacobian E_x[J] on M_wv (deterministic-GD counterpart of μ±, eq. 35).

    Parameters
    ----------
    w, v, sigma2
        As in :func:`averaged_jacobian_wv`.

    Returns
    -------
    ndarray, shape ``S + (2,)``
        Ascending eigenvalues; (w, v) is a stable point of the averaged dynamics only where E_x[g] = 0 too.

    Examples
    --------
    >>> averaged_mu(0.5, 0.5, 1.0).shape
    (2,)
    """
    return np.linalg.eigvalsh(averaged_jacobian_wv(w, v, sigma2))


# ----------------------------------------------------------------------------------------------- 4-D system
def _pqrs_matrices():
    """P (θ → pqrs, eq. 19) and P⁻¹ = 2 Pᵀ as matrices: the basis of :data:`rds.models.PQRS_MATRIX`."""
    return PQRS_MATRIX, 2.0 * PQRS_MATRIX.T


def _batch(system):
    shape = getattr(getattr(system, "noise", None), "shape", (1,))
    return tuple(shape) if shape else (1,)


def _state(state, name="state"):
    state = _finite(state, name)
    if state.shape[-1:] != (4,):
        raise ValueError(f"{name} must have last axis of length 4 (w1, w2, v1, v2), got shape {state.shape}")
    return state


def step_jacobian_pqrs(system, state, xi):
    """Jacobian of one step of the full 4-D map in (p, q, r, s) coordinates (Sato et al. 2022, eqs. 19–24).

    J_pqrs = P · (∂θ'/∂θ) · P⁻¹ with P the linear map θ ↦ (p, q, r, s) of ``rds.coords.to_pqrs``.
    On M_wv the swap symmetry (r, s) ↦ (−r, −s) makes J_pqrs block diagonal: the (p, q) block is I + η J
    (eq. 35) and the (r, s) block is the transverse Jacobian.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        E.g. ``rds.models.fukumizu_amari(eta, sigma2, batch)``; variables (w1, w2, v1, v2).
    state : array_like, shape ``(..., 4)``
        θ = (w1, w2, v1, v2).
    xi : array_like, shape ``(batch,)``
        The inputs x of one step.

    Returns
    -------
    ndarray, shape ``(..., 4, 4)``
        Rows/columns ordered (p, q, r, s).

    Examples
    --------
    >>> import rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> step_jacobian_pqrs(fa, [0.5, 0.5, 0.5, 0.5], [1.0]).shape
    (4, 4)
    """
    state = _state(state)
    xi = _finite(xi, "xi")
    P, Pinv = _pqrs_matrices()
    Jt = np.asarray(system.jacobian_matrix(state, xi), dtype=float)
    return P @ Jt @ Pinv


def transverse_jacobian(system, w, v, xi):
    """Tangent (p, q) and transverse (r, s) blocks of the step Jacobian at (w, w, v, v) ∈ M_wv, for inputs ``xi``.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        The 4-D Fukumizu–Amari system.
    w, v : array_like
        Points of M_wv, broadcast to a shape ``S``.
    xi : array_like, shape ``(batch,)``
        Inputs x of one step.

    Returns
    -------
    tangent, transverse, coupling : ndarray, shapes ``S + (2, 2)``, ``S + (2, 2)``, ``S``
        The (p, q) block (= I + η J of eq. 35 for batch 1), the (r, s) block, and the largest absolute entry
        of the off-diagonal blocks (0 up to rounding on M_wv).

    Examples
    --------
    >>> import rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> tan, tr, c = transverse_jacobian(fa, 0.5, 0.5, [1.0])
    >>> tr.shape
    (2, 2)
    """
    w, v = np.broadcast_arrays(_finite(w, "w"), _finite(v, "v"))
    state = np.stack([w, w, v, v], axis=-1)
    Jp = step_jacobian_pqrs(system, state, xi)
    coupling = np.maximum(np.abs(Jp[..., :2, 2:]).max(axis=(-2, -1)), np.abs(Jp[..., 2:, :2]).max(axis=(-2, -1)))
    return Jp[..., :2, :2], Jp[..., 2:, 2:], coupling


def averaged_step_jacobian(system, state, sigma2):
    """E_x[∂θ'/∂θ] in (p, q, r, s) coordinates for x ~ N(0, σ²): the Jacobian of the averaged (GD) step.

    The step Jacobian is affine in the per-sample gradient Jacobians, so for any batch S its expectation equals
    the expectation for one input; the quadrature therefore feeds every node x_k as a full batch (x_k, …, x_k).
    The per-sample loss ½(f − T)² is even in x, so the expectation is a composite Gauss–Legendre rule over x ≥ 0.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        The 4-D Fukumizu–Amari system.
    state : array_like, shape ``(..., 4)``
        θ = (w1, w2, v1, v2).
    sigma2 : float
        σ² > 0 of the input distribution to average over (normally the system's own σ²).

    Returns
    -------
    ndarray, shape ``(..., 4, 4)``
        Rows/columns (p, q, r, s). Eigenvalues 1 + η λ, λ the eigenvalues of the averaged flow's Jacobian.

    Examples
    --------
    >>> import rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> averaged_step_jacobian(fa, [0.5, 0.5, 0.5, 0.5], 1.0).shape
    (4, 4)
    """
    state = _state(state)
    s = math.sqrt(float(_sigma2(sigma2)))
    x, wt = _half_line_rule(s, float(np.max(np.abs(state[..., :2]))))
    batch = _batch(system)
    out = np.zeros(state.shape + (4,))
    for xk, wk in zip(x, wt, strict=True):
        out += wk * step_jacobian_pqrs(system, state, np.full(batch, xk))
    return out


def compare_random_averaged(system, w, v, sigma2, x=None, eta=None):
    """Random vs averaged stability at points of M_wv, tangent and transverse (Sato et al. 2022, §3.2 and Theorem 1).

    For each point (w, v) and input x: eigenvalues of the tangent (p, q) and transverse (r, s) blocks of the
    4-D step Jacobian (``rds``), with μ± of eq. 35 alongside (tangent eigenvalues = 1 + η μ± for batch 1);
    and the eigenvalues of the x-averaged blocks (deterministic GD), with π(w, v) of eq. 38.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        The 4-D Fukumizu–Amari system (batch 1 for the per-x comparison).
    w, v : array_like, shape ``(point,)``
        Points of M_wv.
    sigma2 : float
        σ² > 0.
    x : array_like, shape ``(x,)``, optional
        Inputs; default ``linspace(-3, 3, 121) * σ``.
    eta : float, optional
        Learning rate of ``system`` (for converting eigenvalues of I + ηJ to rates; default ``system.params.eta``
        if present, else 0.1).

    Returns
    -------
    xarray.Dataset
        dims ``point``, ``x``, ``eig`` (= 2); variables ``tangent_eig``, ``transverse_eig`` (point, x, eig; step
        Jacobian eigenvalues), ``mu`` (point, x, eig; μ−, μ+ of eq. 35), ``tangent_rate``/``transverse_rate``
        ((eig − 1)/η), ``avg_tangent_eig``, ``avg_transverse_eig`` (point, eig), ``avg_mu`` (point, eig),
        ``pi`` (point), ``coupling`` (point, x).

    Examples
    --------
    >>> import rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> ds = compare_random_averaged(fa, [0.5], [0.5], 1.0, x=[0.5, 2.0])
    >>> sorted(ds.sizes.items())
    [('eig', 2), ('point', 1), ('x', 2)]
    """
    w = np.atleast_1d(_finite(w, "w")).ravel()
    v = np.atleast_1d(_finite(v, "v")).ravel()
    if w.shape != v.shape:
        raise ValueError(f"w and v must have the same length, got {w.size} and {v.size}")
    s2 = float(_sigma2(sigma2))
    if x is None:
        x = np.linspace(-3.0, 3.0, 121) * math.sqrt(s2)
    x = np.atleast_1d(_finite(x, "x")).ravel()
    if eta is None:
        eta = float(getattr(getattr(system, "params", None), "eta", 0.1))
    eta = positive(eta, "eta")
    batch = _batch(system)
    npt, nx = w.size, x.size
    tan_e = np.empty((npt, nx, 2))
    tr_e = np.empty((npt, nx, 2))
    coup = np.empty((npt, nx))
    for k, xk in enumerate(x):
        tan, tr, c = transverse_jacobian(system, w, v, np.full(batch, xk))
        tan_e[:, k] = np.linalg.eigvalsh(0.5 * (tan + np.swapaxes(tan, -1, -2)))
        tr_e[:, k] = np.sort(np.linalg.eigvals(tr).real, axis=-1)
        coup[:, k] = c
    mm, mp = mu_eigenvalues(x[None, :], w[:, None], v[:, None], closed_form=True)
    Javg = averaged_step_jacobian(system, np.stack([w, w, v, v], axis=-1), s2)
    avg_tan = np.linalg.eigvalsh(0.5 * (Javg[:, :2, :2] + np.swapaxes(Javg[:, :2, :2], -1, -2)))
    avg_tr = np.sort(np.linalg.eigvals(Javg[:, 2:, 2:]).real, axis=-1)
    ds = xr.Dataset(
        {
            "tangent_eig": (("point", "x", "eig"), tan_e),
            "transverse_eig": (("point", "x", "eig"), tr_e),
            "tangent_rate": (("point", "x", "eig"), (tan_e - 1.0) / eta),
            "transverse_rate": (("point", "x", "eig"), (tr_e - 1.0) / eta),
            "mu": (("point", "x", "eig"), np.stack([mm, mp], axis=-1)),
            "coupling": (("point", "x"), coup),
            "avg_tangent_eig": (("point", "eig"), avg_tan),
            "avg_transverse_eig": (("point", "eig"), avg_tr),
            "avg_mu": (("point", "eig"), averaged_mu(w, v, s2)),
            "pi": (("point",), attracting_probability(w, v, s2)),
        },
        coords={"point_w": ("point", w), "point_v": ("point", v), "x": x, "eig": ["minus", "plus"]},
        attrs={
            "title": "Random (per-input) vs averaged Jacobian stability on M_wv, tangent (p,q) and transverse (r,s)",
            "reference": _PAPER,
            "equations": "19-24 (pqrs), 35 (J), 38 (pi); averaged Jacobian E_x[d theta'/d theta] by quadrature",
            "sigma2": s2,
            "eta": eta,
        },
    )
    return annotate(ds)  # long_name / units from rds.labels


# ----------------------------------------------------------------------------------------------- Dataset
def degenerate_stability(sigma2, w, v, x=None, points=((0.5, 0.5),), eta=0.1):
    """Fig. 3 of Sato et al. 2022 as a Dataset: μ±(x) at chosen points, π over a (w, v) grid, and the valley C.

    Parameters
    ----------
    sigma2 : float or array_like, shape ``(sigma2,)``
        Input variances σ² > 0.
    w, v : array_like, shape ``(w,)`` and ``(v,)``
        Grid on M_wv for π (Fig. 3 right uses [0, 2]²). Finite.
    x : array_like, shape ``(x,)``, optional
        Inputs for μ± and ρ; default ``linspace(-3, 3, 601)``.
    points : sequence of (w, v)
        Points where μ±(x) are tabulated (Fig. 3 left uses (½, ½)).
    eta : float
        Learning rate, recorded in attrs only (Theorem 2 is for small η; π does not depend on η).

    Returns
    -------
    xarray.Dataset
        dims ``sigma2``, ``w``, ``v``, ``x``, ``point``. Variables:

        - ``mu_minus``, ``mu_plus`` (point, x): eigenvalues of J (eq. 35; closed form B.2),
        - ``density`` (sigma2, x): ρ(x), the N(0, σ²) density,
        - ``pi`` (sigma2, w, v): π(w, v) (eq. 38), ``pi_at_points`` (sigma2, point),
        - ``valley`` (sigma2, w): v*(w; σ²) (eq. A.6; NaN at w = 0),
        - ``averaged_potential`` (sigma2, w, v): L*(w, v) of the erf network (eq. A.5),
        - ``valley_potential`` (sigma2, w): L* along C,
        - ``avg_mu`` (sigma2, point, eig): eigenvalues of E_x[J] (the averaged picture),
        - ``n_valley_minima`` (sigma2), ``valley_min_w``, ``valley_min_v`` (sigma2): first local minimum of L*
          along C for w > 0 (NaN if none).

    Examples
    --------
    >>> ds = degenerate_stability([0.1, 1.0], np.linspace(0, 2, 5), np.linspace(0, 2, 5))
    >>> ds["pi"].dims
    ('sigma2', 'w', 'v')
    """
    s2 = np.atleast_1d(_sigma2(sigma2)).ravel().astype(float)
    w = np.atleast_1d(_finite(w, "w")).ravel()
    v = np.atleast_1d(_finite(v, "v")).ravel()
    if x is None:
        x = np.linspace(-3.0, 3.0, 601)
    x = np.atleast_1d(_finite(x, "x")).ravel()
    pts = _finite(points, "points")
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be a sequence of (w, v) pairs, got shape {pts.shape}")
    eta = positive(eta, "eta")
    pw, pv = pts[:, 0], pts[:, 1]
    mm, mp = mu_eigenvalues(x[None, :], pw[:, None], pv[:, None], closed_form=True)
    S = s2[:, None]
    density = np.exp(-x[None, :] ** 2 / (2 * S)) / np.sqrt(2 * np.pi * S)
    pi = attracting_probability(w[None, :, None], v[None, None, :], s2[:, None, None])
    pi_pts = attracting_probability(pw[None, :], pv[None, :], S)
    vstar = valley(w[None, :], S)
    L = averaged_potential(w[None, :, None], v[None, None, :], s2[:, None, None])
    lam = valley_potential(w[None, :], S)
    avg = averaged_mu(pw[None, :], pv[None, :], S)
    nmin, wmin, vmin = [], [], []
    for s in s2:
        ws, vs, _ = valley_local_minima(s)
        nmin.append(ws.size)
        wmin.append(ws[0] if ws.size else np.nan)
        vmin.append(vs[0] if vs.size else np.nan)
    ds = xr.Dataset(
        {
            "mu_minus": (("point", "x"), mm),
            "mu_plus": (("point", "x"), mp),
            "density": (("sigma2", "x"), density),
            "pi": (("sigma2", "w", "v"), pi),
            "pi_at_points": (("sigma2", "point"), pi_pts),
            "valley": (("sigma2", "w"), vstar),
            "averaged_potential": (("sigma2", "w", "v"), L),
            "valley_potential": (("sigma2", "w"), lam),
            "avg_mu": (("sigma2", "point", "eig"), avg),
            "n_valley_minima": (("sigma2",), np.asarray(nmin, dtype=np.int64)),
            "valley_min_w": (("sigma2",), np.asarray(wmin)),
            "valley_min_v": (("sigma2",), np.asarray(vmin)),
        },
        coords={"sigma2": s2, "w": w, "v": v, "x": x, "point_w": ("point", pw), "point_v": ("point", pv),
                "eig": ["minus", "plus"]},
        attrs={
            "title": "Local Jacobian stability on M_wv and the averaged potential (Fig. 3)",
            "reference": _PAPER,
            "model": "Fukumizu-Amari on M_wv, T(x) = 2 tanh(x) - tanh(4x)",
            "equations": "34-35 (g, J), B.2-B.5 (mu closed form), 38 (pi), A.3-A.7 (averaged potential, valley)",
            "pi_method": "exact Gaussian mass of the x-intervals where det J >= 0 (roots by bisection)",
            "valley_activation": "erf(u/sqrt(2)) in place of tanh (App. A)",
            "valley_scan": "local minima of L* along C for w in [1e-3, 100] (log grid 4000 points)",
            "eta": eta,
        },
    )
    for name, text in [("mu_minus", "smaller eigenvalue of J (eq. 35)"), ("mu_plus", "larger eigenvalue of J"),
                       ("pi", "Prob[mu_plus <= 0], x ~ N(0, sigma2) (eq. 38)"),
                       ("valley", "v*(w; sigma2), eq. A.6 (curve C)"),
                       ("averaged_potential", "L*(w, v) erf network, eq. A.5 with constant"),
                       ("avg_mu", "eigenvalues of E_x[J]")]:
        ds[name].attrs["long_name"] = text
    return annotate(ds)  # long_name / units from rds.labels
