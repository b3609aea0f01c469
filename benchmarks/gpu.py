"""GPU throughput of the JAX backend: an FA ensemble of 10⁷ members and a D = 2550 vector map, vs the CPU.

Needs a CUDA device visible to JAX (``pip install "jax[cuda12]"``); without one it says so and exits 0. Never part of
the test suite. Runs in well under 5 minutes:

* the Fukumizu–Amari model (elementwise map, 4 variables; S = 1) with ``backend="jax"``: 10⁷ members × 200 steps on
  the GPU, and 10⁵ members × 200 steps on the CPU (``jax.default_device`` = CPU) for the ratio;
* the soft committee machine with d = 50, N = 50 (D = 2550; S = 8): 4096 members × 200 steps on the GPU, 64 members
  on the CPU.

Member-steps/s are per second of the second call (the first compiles); the GPU/CPU ratio compares throughputs.

Run:  python benchmarks/gpu.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

import rds


def gpu_device():
    """The first CUDA device JAX sees, or None."""
    try:
        import jax
        devs = jax.devices("gpu")
    except Exception:
        return None
    return devs[0] if devs else None


def rate(system, members, steps, device, seed=1):
    """Member-steps/s of ``system.evolve`` with the JAX backend on ``device`` (second call; the first compiles)."""
    import jax
    theta = np.random.default_rng(0).uniform(-0.5, 0.5, (members, system.nvar))
    with jax.default_device(device):
        system.evolve(theta, steps, seed=seed, backend="jax")
        t = time.perf_counter()
        system.evolve(theta, steps, seed=seed, backend="jax")
        return members * steps / (time.perf_counter() - t)


def main():
    gpu = gpu_device()
    if gpu is None:
        print("no CUDA device visible to JAX: benchmarks/gpu.py skipped (install jax[cuda12] on a GPU machine)")
        return 0
    import jax
    cpu = jax.devices("cpu")[0]
    print(f"GPU: {gpu.device_kind}; CPU: {cpu}")
    steps = 200
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    scm = rds.models.soft_committee(inputs=50, hidden=50, eta=0.05, sigma2=1 / 50, batch=8,
                                    teacher_W=np.eye(50), teacher_v=np.ones(50))
    cases = [("FA (elementwise, D = 4)", fa, 10_000_000, 100_000),
             ("soft committee d = 50, N = 50 (D = 2550)", scm, 4096, 64)]
    print(f"{'case':<42} {'GPU member-steps/s':>19} {'CPU member-steps/s':>19} {'GPU/CPU':>8}")
    for name, system, m_gpu, m_cpu in cases:
        t0 = time.perf_counter()
        g = rate(system, m_gpu, steps, gpu)
        c = rate(system, m_cpu, steps, cpu)
        print(f"{name:<42} {g:>19.3e} {c:>19.3e} {g / c:>8.1f}   ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
