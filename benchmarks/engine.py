"""Member-steps per second of the two engine backends on the Fukumizu–Amari SGD map (Sato et al. 2022).

Plain script (not a timed test): ``python benchmarks/engine.py [--members 100000] [--repeat 3]``.
Prints, for common noise and for independent noise per member, the best of ``--repeat`` runs of each backend
and the ratio compiled / NumPy measured in the same run. The machine may be shared: best-of-N is reported.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rds


def rate(system, X0, steps, backend, repeat):
    best = np.inf
    for r in range(repeat):
        t = time.perf_counter()
        system.evolve(X0, steps, seed=r, backend=backend)
        best = min(best, time.perf_counter() - t)
    return X0.shape[0] * steps / best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--steps-numba", type=int, default=2048)
    ap.add_argument("--steps-numpy", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="numba.set_num_threads (default: all)")
    args = ap.parse_args(argv)
    import numba
    if args.threads:
        numba.set_num_threads(args.threads)
    X0 = np.random.default_rng(0).uniform(-1, 1, (args.members, 4))
    print(f"FA map (eta=0.1, sigma2=1, batch 1), {args.members} members, float64, numba threads = "
          f"{numba.get_num_threads()}")
    for common in (True, False):
        fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, common_noise=common)
        t = time.perf_counter()
        fa.evolve(X0[:10], 2, backend="numba")
        first = time.perf_counter() - t
        nb_rate = rate(fa, X0, args.steps_numba, "numba", args.repeat)
        np_rate = rate(fa, X0, args.steps_numpy, "numpy", args.repeat)
        label = "common noise     " if common else "independent noise"
        print(f"{label}: numba {nb_rate / 1e6:8.0f} M member-steps/s | numpy {np_rate / 1e6:6.0f} M/s | "
              f"ratio {nb_rate / np_rate:5.1f}x | first call (compile) {first:.1f} s")
    # minibatches: the map's loop over the batch must unroll for the member loop to vectorise (engine.UNROLL_THRESHOLD)
    for batch in (2, 8, 16):
        fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0, batch=batch)
        fa.evolve(X0, 1, backend="numba")
        nb_rate = rate(fa, X0, max(args.steps_numba // batch, 64), "numba", args.repeat)
        np_rate = rate(fa, X0, args.steps_numpy, "numpy", args.repeat)
        print(f"batch {batch:>2} common : numba {nb_rate / 1e6:8.0f} M member-steps/s | "
              f"numpy {np_rate / 1e6:6.0f} M/s | ratio {nb_rate / np_rate:5.1f}x")
    # agreement of the two backends on the same noise
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    a = fa.evolve(X0[:1000], 500, backend="numba")
    b = fa.evolve(X0[:1000], 500, backend="numpy")
    print(f"max |numba - numpy| after 500 steps (1000 members): {np.nanmax(np.abs(a - b)):.1e}")


if __name__ == "__main__":
    main()
