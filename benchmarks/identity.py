"""The cost of checking a map's identity at every service call (rds._identity).

Plain script (not a timed test): ``python benchmarks/identity.py [--repeat 2000]``.

Every service call computes the identity of the map (a digest of its code, constants, closures, the globals and
module attributes it reads, arrays, helpers, Jacobian) so that no backend runs a stale kernel. This prints the time
of one identity computation for built-in models and a user map, and the time of a whole one-step ``evolve`` call on
NumPy and on warm Numba kernels (what the identity adds to the smallest service call).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rds

SCALE = 0.5
TABLE = np.linspace(0.0, 1.0, 1000)


def _user_map(s, xi, p):
    return (SCALE * np.tanh(s[0]) + TABLE[3] * xi[0],)


def per_call_us(fn, repeat):
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args(argv)
    X, y = rds.models.load_dataset("iris")
    systems = {
        "fukumizu_amari": rds.models.fukumizu_amari(eta=0.1, sigma2=1.0),
        "teacher_student (N=4)": rds.models.teacher_student(np.linspace(-2, 2, 50), np.sin(np.linspace(-2, 2, 50)),
                                                            hidden=4, eta=0.01),
        "dataset_sgd (iris, D=163)": rds.models.dataset_sgd(X, y, hidden=20, eta=0.05, batch=8),
        "user map (global + 1000-entry array)": rds.RandomDynamicalSystem(_user_map, noise=rds.noise.Gaussian(0.1),
                                                                          variables=("x",)),
    }
    for name, system in systems.items():
        us = per_call_us(system.map.identity, args.repeat)
        print(f"identity of {name:38s}: {us:8.1f} µs per call")
    system = systems["user map (global + 1000-entry array)"]
    X0 = np.full((16, 1), 0.3)
    system.evolve(X0, 1, backend="numba")  # compile once
    for backend in ("numpy", "numba"):
        us = per_call_us(lambda b=backend: system.evolve(X0, 1, backend=b), max(args.repeat // 10, 10))
        print(f"one-step evolve of 16 members on {backend:6s}        : {us:8.1f} µs per call (identity included)")


if __name__ == "__main__":
    main()
