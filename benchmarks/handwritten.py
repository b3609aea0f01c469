"""The engine against hand-written kernels of the same map (Fukumizu–Amari SGD, batch 1, common noise).

Plain script (not a timed test): ``python benchmarks/handwritten.py [--members 100000] [--steps 1000]``.

Hand-written references, the best one would write for this one map:

* Numba: a blocked struct-of-arrays kernel (blocks of 256 members, steps outside, members innermost), the target
  T(x) computed once per step, the vectorisable tanh of :mod:`rds.fastmath` inlined, no divergence check;
* NumPy: the same step with preallocated buffers and ``out=`` (no temporaries).

Prints member-steps/s and the ratios engine / hand-written in the same run (best of ``--repeat``), and the cost of
``first_exit`` relative to ``evolve`` for the 4-D FA map and the reduced map. The machine may be shared: the ratios
(measured back to back) are what to read.

Measured 2026-12-02, 2 cores, quiet machine, 10⁵ members (default run, three runs): Numba evolve engine /
hand-written 0.83–0.85 (≈ 780 / 925 M member-steps/s; the engine's divergence test, a sum and a select per member,
is most of the difference: replacing it by an additive mask gave 0.86–0.87); ``first_exit`` / ``evolve`` 0.82–0.90
(FA 4-D) and 0.92 (reduced map). Raising LLVM's unroll threshold for the kernels
(``rds.backends.numba.UNROLL_THRESHOLD``) leaves these batch-1 figures unchanged (0.84 either way).

Measured NumPy figures, engine / hand-written in-place (2 shared cores, loaded by other jobs). The engine's NumPy
backend calls the map as written at every step (nothing recorded or frozen: a map changed between calls is seen),
once per block of 16384 members so that its temporaries stay in cache (``rds.backends.numpy.BLOCK``); results are
bitwise those of one call on the whole ensemble:

==========  ==========================  ==========================
members     one call per step           blocks of 16384 members
==========  ==========================  ==========================
10⁴         (one block)                 13.4 / 44.0 M/s = 0.31
10⁵         25.0 / 74.0 M/s = 0.34      47.6 / 75.7 M/s = 0.63
10⁶         —                           15.5 / 14.8 M/s = 1.05
==========  ==========================  ==========================

(10⁵: this script's default run; 10⁴: ``--members 10000 --steps 300 --steps-numpy 300``; 10⁶: ``--members
1000000 --steps 100 --steps-numpy 20``.) At 10⁴ members the Python overhead of the map's ~40 NumPy operations per
step dominates; ``backend=None`` sends such runs to Numba.
"""

from __future__ import annotations

import argparse

import numba as nb
import numpy as np
from services import best  # the one timing helper of the benchmarks (same folder)

import rds
from rds.fastmath import _tanh_f

BLOCK = 256


@nb.njit(error_model="numpy")
def _fa_block(X, xs, eta, nsteps, lo, hi):
    for t in range(nsteps):
        x = xs[t, 0]
        T = 2.0 * _tanh_f(x) - _tanh_f(4.0 * x)
        for m in range(lo, hi):
            w1 = X[0, m]
            w2 = X[1, m]
            v1 = X[2, m]
            v2 = X[3, m]
            t1 = _tanh_f(w1 * x)
            t2 = _tanh_f(w2 * x)
            h = v1 * t1 + v2 * t2 - T
            X[0, m] = w1 - eta * (x * v1 * h * (1.0 - t1 * t1))
            X[1, m] = w2 - eta * (x * v2 * h * (1.0 - t2 * t2))
            X[2, m] = v1 - eta * (t1 * h)
            X[3, m] = v2 - eta * (t2 * h)


@nb.njit(parallel=True, error_model="numpy")
def fa_evolve_numba(X, xs, eta, nsteps):
    """Hand-written FA evolve: ``X`` (4, member) in place, ``xs`` (steps, 1) the inputs."""
    M = X.shape[1]
    for b in nb.prange((M + BLOCK - 1) // BLOCK):
        _fa_block(X, xs, eta, nsteps, np.uint64(b * BLOCK), np.uint64(min(b * BLOCK + BLOCK, M)))


def fa_evolve_numpy(X, xs, eta, nsteps):
    """Hand-written in-place NumPy FA evolve (``out=`` buffers, no temporaries)."""
    w1, w2, v1, v2 = X
    t1, t2, h, a, b = (np.empty_like(w1) for _ in range(5))
    for t in range(nsteps):
        x = float(xs[t, 0])
        T = 2.0 * np.tanh(x) - np.tanh(4.0 * x)
        np.multiply(w1, x, out=t1)
        np.tanh(t1, out=t1)
        np.multiply(w2, x, out=t2)
        np.tanh(t2, out=t2)
        np.multiply(v1, t1, out=h)
        np.multiply(v2, t2, out=a)
        h += a
        h -= T
        np.multiply(t1, t1, out=a)  # w1 -= eta x v1 h (1 - t1²)
        np.subtract(1.0, a, out=a)
        a *= h
        np.multiply(v1, a, out=b)
        b *= eta * x
        w1 -= b
        np.multiply(t2, t2, out=a)
        np.subtract(1.0, a, out=a)
        a *= h
        np.multiply(v2, a, out=b)
        b *= eta * x
        w2 -= b
        np.multiply(t1, h, out=a)
        a *= eta
        v1 -= a
        np.multiply(t2, h, out=a)
        a *= eta
        v2 -= a


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--steps-numpy", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    M, S, Snp = args.members, args.steps, args.steps_numpy
    fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    X0 = np.random.default_rng(0).uniform(-1, 1, (M, 4))
    print(f"FA map (eta=0.1, sigma2=1, batch 1, common noise), {M} members, numba threads {nb.get_num_threads()}")

    # same inputs for the hand-written kernels as the engine uses
    xs = fa.noise_path(0, max(S, Snp), seed=0)
    fa.evolve(X0[:10], 3, backend="numba")
    fa_evolve_numba(np.ascontiguousarray(X0[:10].T), xs[:3], 0.1, 3)
    a = fa.evolve(X0[:1000], S, seed=0, backend="numba")
    Xh = np.ascontiguousarray(X0[:1000].T)
    fa_evolve_numba(Xh, xs, 0.1, S)
    print(f"  max |engine - hand-written| after {S} steps (1000 members): {np.nanmax(np.abs(a - Xh.T)):.1e}")

    def hand_nb(r):
        fa_evolve_numba(np.ascontiguousarray(X0.T), xs, 0.1, S)

    t_eng = best(lambda r: fa.evolve(X0, S, seed=0, backend="numba"), args.repeat)
    t_hand = best(hand_nb, args.repeat)
    t_eng2 = best(lambda r: fa.evolve(X0, S, seed=0, backend="numba"), args.repeat)
    t_eng = min(t_eng, t_eng2)
    print(f"evolve numba : engine {M * S / t_eng / 1e6:7.0f} M member-steps/s | hand-written "
          f"{M * S / t_hand / 1e6:7.0f} M/s | ratio engine/hand {t_hand / t_eng:5.2f}")

    t_eng = best(lambda r: fa.evolve(X0, Snp, seed=0, backend="numpy"), args.repeat)
    t_hand = best(lambda r: fa_evolve_numpy(np.ascontiguousarray(X0.T), xs, 0.1, Snp), args.repeat)
    print(f"evolve numpy : engine {M * Snp / t_eng / 1e6:7.1f} M member-steps/s | hand-written in-place "
          f"{M * Snp / t_hand / 1e6:7.1f} M/s | ratio engine/hand {t_hand / t_eng:5.2f}")

    # first_exit vs evolve: a box nobody leaves, so every step of every member is counted
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.5)
    for name, system, X, box in [
            ("FA 4-D   ", fa, X0, rds.regions.Box([-20.0] * 4, [20.0] * 4, variables=fa.variables)),
            ("reduced  ", red, X0[:, :2], rds.regions.Box([-20.0, -20.0], [20.0, 20.0], variables=("w", "v")))]:
        system.first_exit(X[:10], box, 3, backend="numba")
        system.evolve(X[:10], 3, backend="numba")
        t_ev = best(lambda r, s=system, x=X: s.evolve(x, S, seed=r, backend="numba"), args.repeat)
        t_ex = best(lambda r, s=system, x=X, b=box: s.first_exit(x, b, S, seed=r, backend="numba"), args.repeat)
        print(f"first_exit {name}: {M * S / t_ex / 1e6:7.0f} M member-steps/s | evolve {M * S / t_ev / 1e6:7.0f} M/s"
              f" | ratio exit/evolve {t_ev / t_ex:5.2f}")


if __name__ == "__main__":
    main()
