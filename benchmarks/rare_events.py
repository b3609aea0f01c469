"""Adaptive multilevel splitting against exact values and against direct sampling (analysis.multilevel_splitting).

Plain script (not a timed test): ``python benchmarks/rare_events.py [--quick]``.

**Double well.** The overdamped diffusion dX = −V'(X) dt + √(2ε) dW, V(x) = x⁴/4 − x²/2 (minima ±1, barrier
ΔV = 1/4), discretised by Euler–Maruyama with step dt as the random map x → x + (x − x³) dt + ξ, ξ ~ N(0, 2ε dt)
(:class:`rds.noise.Wiener`). Its mean first-passage time from x₀ = −1 to b = 1 is, exactly for the diffusion
(Gardiner, *Handbook of Stochastic Methods*, Springer, §5.2.7, reflecting at −∞),

    T(x₀ → b) = (1/ε) ∫_{x₀}^{b} dy e^{V(y)/ε} ∫_{−∞}^{y} e^{−V(z)/ε} dz,

evaluated here by quadrature on a fine grid. Splitting estimates it with the start set A = {x ≤ −1}, the clones
starting at x₀ = −1, the score x and the target 1, as E[τ]/p (Cérou, Guyader, Lelièvre & Pommier 2011). Three
errors separate the estimate from the exact value: the statistical one (standard errors printed), the
Euler–Maruyama discretisation of the diffusion (weak error O(dt), and the passage detected only at the steps:
O(√dt) in the position of the barrier crossing), and the renewal approximation of the formula (each return to A
restarts at −1, while the discrete chain re-enters A below −1). The last two are measured together by direct
simulation of the same discrete chain where it is affordable (ε = 0.05, 0.035) and shown to shrink with dt; at
ε = 0.02 direct sampling would need > 10⁹ member-steps (printed) and splitting is compared with the exact value.

**Work to a 10 % relative error.** Direct sampling of the first-passage time needs N ≈ (CV / 0.1)² passages (CV
measured: ≈ 1 for the exponential law), i.e. N × T/dt member-steps; splitting needs (r / 0.1)² independent runs
of measured work W and relative error r (from the spread of its repeats). Both are measured on the same chain and
target at two rarities, and their ratio printed.

Run on 2 shared cores; timings are noisy, work is counted in member-steps (machine-independent).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import analysis
import rds


def _dw_step(state, xi, params):
    (x,) = state
    return (x + (x - x * x * x) * params[0] + xi[0],)


def double_well(eps, dt):
    """The Euler–Maruyama map of dX = (X − X³) dt + √(2ε) dW."""
    return rds.RandomDynamicalSystem(_dw_step, noise=rds.noise.Wiener(sigma2=2 * eps, dt=dt), variables=("x",),
                                     params=(dt,), dt=dt, name="double_well", common_noise=False)


def exact_mfpt(eps, x0=-1.0, b=1.0, lo=-3.0, h=1e-4):
    """T(x0 -> b) for the diffusion, by the double integral (trapezoid on a grid of step h; converged to ~1e-11
    relative: halving h changes nothing printed). Exponents are shifted by the barrier top V(0) + 1/4 = 1/4."""
    z = np.arange(lo, b + h / 2, h)
    V = z ** 4 / 4 - z ** 2 / 2
    g = np.exp(-(V + 0.25) / eps)
    inner = np.concatenate([[0.0], np.cumsum((g[1:] + g[:-1]) * h / 2)])  # ∫_lo^y e^{-(V+1/4)/ε}
    sel = z >= x0 - h / 2
    ys = z[sel]
    fs = np.exp((V[sel] + 0.25) / eps) * inner[sel]
    return float(np.sum((fs[1:] + fs[:-1]) * np.diff(ys) / 2) / eps)


def _score(X):
    return X[..., 0]


def splitting(eps, dt, n_clones, repeats, seed=0):
    t = time.perf_counter()
    ds = analysis.multilevel_splitting(double_well(eps, dt), [-1.0], _score, target=1.0, start=-1.0,
                                       n_clones=n_clones, n_kill=max(1, n_clones // 10), repeats=repeats,
                                       seed=seed, max_steps=10**8)
    return ds, time.perf_counter() - t


def direct(eps, dt, members, seed=0):
    """First passages of the discrete chain from -1 to x > 1 (first_exit of {x <= 1}); returns times (steps)."""
    sys_ = double_well(eps, dt)
    region = rds.regions.Box([-np.inf], [1.0], ("x",))
    t = time.perf_counter()
    out = sys_.first_exit(np.full((members, 1), -1.0), region, 10**9, seed=seed, backend="numba",
                          progress=False)
    steps = out["exit_step"]
    if np.any(steps < 0):
        raise RuntimeError("a direct run did not pass within the cap")
    return steps.astype(float), time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer clones, repeats and direct runs (minutes)")
    a = ap.parse_args(argv)
    n_clones, repeats, members = (100, 8, 100) if a.quick else (200, 16, 200)
    dt = 0.01
    print(f"double well, Euler-Maruyama dt = {dt}; splitting: {n_clones} clones, n_kill {n_clones // 10}, "
          f"{repeats} repeats; direct: {members} passages")
    print(f"{'eps':>6} {'exact T':>10} {'direct T (SE)':>22} {'AMS T (SE within, SE repeats)':>40} "
          f"{'AMS-exact':>10} {'direct-exact':>12} {'work ratio (10% err)':>20}")
    for eps in (0.05, 0.035, 0.02):
        T = exact_mfpt(eps)
        ds, wall = splitting(eps, dt, n_clones, repeats)
        Ta = float(ds.mfpt_time)
        se_w, se_r = float(ds.mfpt_se) * dt, float(ds.mfpt_se_repeats) * dt
        run_T = ds.run_mfpt.values * dt
        r_rel = run_T.std(ddof=1) / run_T.mean()  # relative error of one run
        ams_work_10 = float(ds.run_work.mean()) * (r_rel / 0.1) ** 2
        direct_steps = T / dt * members
        if direct_steps < 2e9:
            steps, wall_d = direct(eps, dt, members)
            Td = steps.mean() * dt
            sed = steps.std(ddof=1) / np.sqrt(members) * dt
            cv = steps.std(ddof=1) / steps.mean()
            direct_work_10 = (cv / 0.1) ** 2 * steps.mean()
            dtxt = f"{Td:10.4g} ({sed:8.2g})"
            ratio = f"{direct_work_10 / ams_work_10:20.3g}"
            dex = f"{(Td - T) / T:+12.2%}"
        else:
            dtxt = f"{'not run':>10} ({direct_steps:.1e} m-steps)"
            ratio = f"{'(direct not run)':>20}"
            dex = f"{'':>12}"
        print(f"{eps:6.3f} {T:10.4g} {dtxt:>22} {Ta:14.4g} ({se_w:8.2g}, {se_r:8.2g})       "
              f"{(Ta - T) / T:+10.2%} {dex} {ratio}")
        print(f"       AMS: p = {float(ds.probability):.3g}, loop mean {float(ds.loop_mean):.3g} steps, reactive "
              f"mean {float(ds.reactive_mean):.4g} steps, {int(ds.work):.3g} member-steps, {int(ds.iterations)} "
              f"iterations, {wall:.0f} s; one run's relative error {r_rel:.2f}")
    print("discretisation: the direct runs measure the discrete chain (EM + passage at the steps); halving dt at "
          "eps = 0.05:")
    for dti in (0.01, 0.005):
        ds, _ = splitting(0.05, dti, n_clones, repeats)
        print(f"  dt = {dti}: AMS T = {float(ds.mfpt_time):.4g} +- {float(ds.mfpt_se_repeats) * dti:.2g} "
              f"(exact diffusion {exact_mfpt(0.05):.4g})")


if __name__ == "__main__":
    main()
