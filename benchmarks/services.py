"""Compiled vs NumPy backend on the engine services behind Lyapunov spectra and escape times.

Plain script (not a timed test): ``python benchmarks/services.py [--repeat 3]``.

* tangent propagation (Benettin/QR): FA map, 4x4 tangent, QR every 10 steps, 10^4 members;
* first-exit detection: the reduced FA map on M_wv (Sato et al. 2022, Fig. 5 setting), 10^5 members in the box
  [-2, 2]^2 (a large box, so that members stay inside and every step is counted).

Prints member-steps/s of both backends (best of ``--repeat``, measured in the same run) and their ratio. The
machine may be shared with other jobs: numbers are noisy, best-of-N is reported.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rds


def best(fn, repeat):
    t_best = np.inf
    for r in range(repeat):
        t = time.perf_counter()
        fn(r)
        t_best = min(t_best, time.perf_counter() - t)
    return t_best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)

    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    M = 10_000
    X = rng.uniform(-1.5, 1.5, (M, 4))
    fa.propagate_tangent(X[:8], 20, qr_every=10, backend="numba")  # compile
    s_nb, s_np = 2000, 100
    t_nb = best(lambda r: fa.propagate_tangent(X, s_nb, seed=r, qr_every=10, backend="numba"), args.repeat)
    t_np = best(lambda r: fa.propagate_tangent(X, s_np, seed=r, qr_every=10, backend="numpy"), args.repeat)
    r_nb, r_np = M * s_nb / t_nb, M * s_np / t_np
    print(f"tangent (FA, 4x4, QR every 10, {M} members): numba {r_nb / 1e6:7.1f} M member-steps/s | "
          f"numpy {r_np / 1e6:6.2f} M/s | ratio {r_nb / r_np:5.1f}x")
    a = fa.propagate_tangent(X[:500], 300, qr_every=10, backend="numba")["logr"]
    b = fa.propagate_tangent(X[:500], 300, qr_every=10, backend="numpy")["logr"]
    print(f"  max |logr numba - numpy| after 300 steps: {np.max(np.abs(a - b)):.1e}")

    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.5)
    box = rds.regions.Box([-20.0, -20.0], [20.0, 20.0], variables=("w", "v"))
    M = 100_000
    Y = rng.uniform(-1.5, 1.5, (M, 2))
    red.first_exit(Y[:8], box, 10, backend="numba")  # compile
    s_nb, s_np = 2000, 100
    t_nb = best(lambda r: red.first_exit(Y, box, s_nb, seed=r, backend="numba"), args.repeat)
    t_np = best(lambda r: red.first_exit(Y, box, s_np, seed=r, backend="numpy"), args.repeat)
    r_nb, r_np = M * s_nb / t_nb, M * s_np / t_np
    print(f"first exit (reduced FA, {M} members): numba {r_nb / 1e6:7.1f} M member-steps/s | "
          f"numpy {r_np / 1e6:6.2f} M/s | ratio {r_nb / r_np:5.1f}x")


if __name__ == "__main__":
    main()
