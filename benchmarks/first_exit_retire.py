"""First-exit cost with heavy-tailed exit times: finished members are retired (the live set is compacted).

Plain script (not a timed test): ``python benchmarks/first_exit_retire.py [--members 10000] [--max-steps 200000]``.

The case: a random walk ``x' = x + ξ``, ξ ~ N(0, σ²) independent per member (σ = 0.01), in the interval (-1, 1),
every member starting at x = 0.99, one σ from the edge. The exit time of a walk started a distance d from an
absorbing edge has the heavy tail P(T > t) ≈ d / (σ √t) (up to the diffusion time of the interval,
(2 / σ)² = 4·10⁴ steps): most members leave within a few steps, a few wander for 10⁵ steps.

Without retiring, a first-exit run costs members × slowest exit member-steps (every member's noise is generated,
and every member stepped, until the last one leaves); retiring finished members makes it cost the sum of the exit
times. The script prints, per backend: members × slowest exit, the sum of the exit times (the member-steps that
are needed), the wall time and the rate over the needed member-steps. Set ``RDS_RETIRE=0`` in the environment to
run without retiring (the engine's switch :data:`rds.engine.RETIRE`), e.g. to compare on the same machine.

The noise of independent members is defined per generator group of :data:`rds.noise.MEMBER_GROUP` members and
:data:`rds.noise.NOISE_BLOCK` steps (the ziggurat sampler consumes a variable number of random bits, so one member's
numbers cannot be drawn without its group's). A retiring run therefore still draws, per block, the groups that
hold a live member: the "noise floor" printed, between the sum of the exit times and members × slowest exit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rds


def walk(s, xi, p):
    return (s[0] + xi[0],)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--max-steps", type=int, default=200_000)
    ap.add_argument("--backends", default="numba,numpy")
    args = ap.parse_args(argv)
    system = rds.RandomDynamicalSystem(walk, noise=rds.noise.Gaussian(sigma2=1e-4), variables=("x",),
                                       common_noise=False)
    box = rds.regions.Box([-1.0], [1.0], variables=("x",))
    X = np.full((args.members, 1), 0.99)
    print(f"retire finished members: {getattr(rds.engine, 'RETIRE', False)} (rds from {rds.__file__})")
    for backend in args.backends.split(","):
        system.first_exit(X[:4], box, 10, backend=backend)  # compile / warm up
        t = time.perf_counter()
        out = system.first_exit(X, box, args.max_steps, seed=1, backend=backend, progress=False)
        wall = time.perf_counter() - t
        es = out["exit_step"]
        cap = np.where(es < 0, args.max_steps, es)
        needed = int(cap.sum())
        full = args.members * int(cap.max())
        B, G = rds.noise.NOISE_BLOCK, rds.noise.MEMBER_GROUP
        floor = sum(np.unique(np.flatnonzero(cap > b * B) // G).size * G * B for b in range(-(-int(cap.max()) // B)))
        print(f"{backend:6s} members {args.members}: members x slowest = {full:.3g} member-steps, "
              f"sum of exit times = {needed:.3g} ({full / needed:.0f}x less), noise floor {floor:.3g} samples "
              f"({full / floor:.1f}x less than members x slowest), censored {int((es < 0).sum())}; "
              f"wall {wall:.2f} s = {needed / wall / 1e6:.2f} M needed member-steps/s")


if __name__ == "__main__":
    main()
