"""Wall time of Sato et al.'s (2022) big ensembles on this machine (Fig. 4), and an estimate for Fig. 5 on a cluster.

Plain script (not a timed test)::

    python benchmarks/paper_scale.py            # measure a fraction of Fig. 4, extrapolate
    python benchmarks/paper_scale.py --full     # run Fig. 4 at paper scale (10^5 members, all four tau)

Fig. 4: pullback of 10^5 initial conditions B from t = -tau to 0 for tau in {10^3, 10^4, 3·10^4, 10^5}, i.e.
``system.evolve(B, tau, t0=-tau)`` (same noise path ω for every tau: the RDS cocycle), 1.41·10^10 member-steps in
all. By default a fraction is timed (``--fraction`` of the members over the largest tau's first ``--steps`` steps)
and the full run is extrapolated from the measured member-steps/s (the cost per member-step does not depend on
tau or σ²).

Fig. 5: escape times from the trapping region, 10^5 initial conditions x 10^3 noise realisations, each run for up
to ``--fig5-max-steps`` steps (members that leave stop early, so this is an upper bound). The estimate uses the
first-exit throughput measured here (per core) and assumes ``--cores`` cores of the same speed in a dask cluster,
realisations being independent tasks (see README, "Running a scan on a dask cluster").
The machine may be shared with other jobs: numbers are noisy.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import rds

TAUS = (1_000, 10_000, 30_000, 100_000)


def fmt(seconds):
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="run Fig. 4 at paper scale")
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=10_000, help="steps timed in the fraction (default mode)")
    ap.add_argument("--sigma2", type=float, default=1.0)
    ap.add_argument("--fig5-max-steps", type=int, default=10_000)
    ap.add_argument("--cores", type=int, default=64, help="cores of the hypothetical cluster for Fig. 5")
    args = ap.parse_args(argv)
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=args.sigma2)
    B = np.random.default_rng(0).uniform(-2, 2, (args.members, 4))
    total = args.members * sum(TAUS)
    fa.evolve(B[:10], 2, backend="numba")  # compile
    threads = numba.get_num_threads()
    if args.full:
        t_all = time.perf_counter()
        for tau in TAUS:
            t = time.perf_counter()
            fa.evolve(B, tau, t0=-tau, seed=0, backend="numba", progress=False)
            print(f"tau = {tau:>6}: {fmt(time.perf_counter() - t)}")
        wall = time.perf_counter() - t_all
        print(f"Fig. 4 at paper scale ({total:.2e} member-steps, {threads} threads): {fmt(wall)} "
              f"({total / wall / 1e6:.0f} M member-steps/s)")
    else:
        tau = TAUS[-1]
        t = time.perf_counter()
        fa.evolve(B, args.steps, t0=-tau, seed=0, backend="numba", progress=False)
        dt = time.perf_counter() - t
        rate = args.members * args.steps / dt
        print(f"measured: {args.members} members x {args.steps} steps (from t0 = -{tau}) in {fmt(dt)} "
              f"= {rate / 1e6:.0f} M member-steps/s on {threads} threads")
        print(f"Fig. 4 at paper scale ({total:.2e} member-steps): extrapolated {fmt(total / rate)} on this machine")

    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=args.sigma2)
    box = rds.regions.Box([-20.0, -20.0], [20.0, 20.0], variables=("w", "v"))  # large: nobody leaves, all steps run
    W = np.random.default_rng(1).uniform(-1.5, 1.5, (100_000, 2))
    red.first_exit(W[:10], box, 5, backend="numba")  # compile
    steps = 2_000
    t = time.perf_counter()
    red.first_exit(W, box, steps, seed=0, backend="numba")
    dt = time.perf_counter() - t
    rate = W.shape[0] * steps / dt
    per_core = rate / threads
    total5 = 100_000 * 1_000 * args.fig5_max_steps
    print(f"first-exit throughput: {rate / 1e6:.0f} M member-steps/s on {threads} threads "
          f"({per_core / 1e6:.0f} M/s per core)")
    print(f"Fig. 5 at paper scale (10^5 x 10^3 realisations x <= {args.fig5_max_steps} steps = {total5:.1e} "
          f"member-steps, upper bound): {fmt(total5 / rate)} on this machine, ~{fmt(total5 / (per_core * args.cores))} "
          f"on a {args.cores}-core dask cluster")


if __name__ == "__main__":
    main()
