"""Lyapunov spectrum of the Hénon map: rds vs pynamicalsys, same orbit length, one initial condition and many.

Plain script (not a timed test). pynamicalsys is not a dependency of rds; install it in a separate venv::

    python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install pynamicalsys -e /work/main
    /tmp/bench-venv/bin/python benchmarks/henon_vs_pynamicalsys.py

Without pynamicalsys the script prints rds' numbers and says it skipped the comparison. rds uses the engine
service ``system.propagate_tangent`` (Benettin/QR with twice-iterated MGS) with the analytic Jacobian; literature
values for (a, b) = (1.4, 0.3): λ1 ≈ 0.419, λ2 = ln b − λ1 ≈ −1.623 (λ1 + λ2 = ln 0.3 exactly).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rds


def henon_step(state, xi, params):
    x, y = state
    return (1.0 - params[0] * x * x + y, params[1] * x)


def henon_jacobian(state, xi, params):
    x, y = state
    return ((-2.0 * params[0] * x, 1.0), (params[1], 0.0 * x))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--members", type=int, default=1000, help="initial conditions for the ensemble timing")
    ap.add_argument("--ensemble-steps", type=int, default=10_000)
    args = ap.parse_args(argv)
    a, b = 1.4, 0.3
    henon = rds.RandomDynamicalSystem(henon_step, noise=None, variables=("x", "y"), params=(a, b),
                                      jacobian=henon_jacobian, name="henon")
    u0 = np.array([[0.1, 0.1]])
    henon.propagate_tangent(u0, 10, backend="numba")  # compile
    t = time.perf_counter()
    out = henon.propagate_tangent(u0, args.steps, qr_every=1, backend="numba")
    t_rds = time.perf_counter() - t
    lam = out["logr"][0] / args.steps
    print(f"rds          : lambda = {lam[0]: .6f} {lam[1]: .6f}  (sum {lam.sum(): .6f}, ln b = {np.log(b): .6f})  "
          f"{args.steps} steps, one orbit: {t_rds:.2f} s")
    U = np.random.default_rng(0).uniform(-0.1, 0.1, (args.members, 2)) + [0.1, 0.1]
    t = time.perf_counter()
    ens = henon.propagate_tangent(U, args.ensemble_steps, qr_every=1, backend="numba")
    t_ens = time.perf_counter() - t
    lam_e = np.nanmean(ens["logr"], axis=0) / args.ensemble_steps
    print(f"rds ensemble : {args.members} orbits x {args.ensemble_steps} steps in {t_ens:.2f} s "
          f"(mean lambda {lam_e[0]: .4f} {lam_e[1]: .4f})")
    try:
        from pynamicalsys import DiscreteDynamicalSystem
    except ImportError:
        print("pynamicalsys is not importable here: comparison skipped (see the docstring for the venv)")
        return
    ds = DiscreteDynamicalSystem(model="henon map")
    ds.lyapunov([0.1, 0.1], 10, parameters=[a, b])  # compile
    t = time.perf_counter()
    lp = np.asarray(ds.lyapunov([0.1, 0.1], args.steps, parameters=[a, b]))
    t_p = time.perf_counter() - t
    print(f"pynamicalsys : lambda = {lp[0]: .6f} {lp[1]: .6f}  {args.steps} steps, one orbit: {t_p:.2f} s")
    t = time.perf_counter()
    for u in U:
        ds.lyapunov(u, args.ensemble_steps, parameters=[a, b])
    t_pe = time.perf_counter() - t
    print(f"pynamicalsys : {args.members} orbits x {args.ensemble_steps} steps (Python loop over orbits) in "
          f"{t_pe:.2f} s")
    print(f"difference |rds - pynamicalsys| = {np.max(np.abs(lam - lp)):.1e}; time ratio one orbit "
          f"pynamicalsys/rds = {t_p / t_rds:.2f}, ensemble = {t_pe / t_ens:.1f}")


if __name__ == "__main__":
    main()
