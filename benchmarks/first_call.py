"""First-call times of the compiled engine: cold (compiling) and in a later process (the on-disk kernel cache).

Plain script (not a timed test): ``python benchmarks/first_call.py [--hidden 2 4 8 16]``.

Each measurement is a fresh Python process with its own empty kernel cache folder (``RDS_CACHE_DIR``): the first
process compiles, the second one loads what the first wrote. Timed inside the process: the first call of each
service (``evolve``, ``propagate_tangent`` with k = nvar, ``first_exit``), after ``import rds``.

* the Fukumizu–Amari model (4 variables);
* a user map defined in the script that runs (3 variables, automatic complex-step Jacobian);
* the tangent service of ``teacher_student(hidden=N)`` (2N variables, k = 2N: looped tangent kernels above
  ``rds.engine.TANGENT_UNROLL_MAX``).

Measured 2026-12-02 on the 2-core machine (quiet), numba 0.68 (the later-process figures include Numba's own
start-up on the first compiled call of the process, ≈ 0.3 s):

    case                           service      cold [s]  later process [s]
    fukumizu_amari                 evolve           2.57               0.37
    fukumizu_amari                 first_exit       2.86               0.01
    fukumizu_amari                 tangent         12.16               0.03
    user map (script)              evolve           3.71               0.34
    user map (script)              first_exit       3.53               0.01
    user map (script)              tangent          9.47               0.02
    teacher_student N=2 (4 var)    tangent          8.83               0.33
    teacher_student N=4 (8 var)    tangent          7.73               0.33
    teacher_student N=8 (16 var)   tangent         12.11               0.29
    teacher_student N=16 (32 var)  tangent         36.41               0.40

Before the looped tangent kernel stored Jacobians by loops apart from the state step, teacher_student's tangent
service took 9 / 15 / 67–75 s for 4 / 8 / 16 variables and did not finish in 15 min for 32.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    import rds
    case, hidden = sys.argv[1], int(sys.argv[2])
    out = {}

    def timed(name, fn):
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t

    if case == "fa":
        s = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    elif case == "user":
        def ring(state, xi, params):
            a, b, c = state
            k = params[0]
            return (a + k * np.tanh(b - a) + xi[0], b + k * np.sin(c - b), c + k * np.tanh(a - c))
        s = rds.RandomDynamicalSystem(ring, noise=rds.noise.Gaussian(0.01), variables=("a", "b", "c"),
                                      params=(0.3,))
    else:
        xd = np.linspace(-2, 2, 20)
        s = rds.models.teacher_student(xd, np.tanh(xd), hidden=hidden, eta=0.05)
    n = s.nvar
    X = np.random.default_rng(0).uniform(-0.5, 0.5, (8, n))
    if case != "ts":
        timed("evolve", lambda: s.evolve(X, 10, backend="numba"))
        box = rds.regions.Box([-5.0] * n, [5.0] * n, variables=s.variables)
        timed("first_exit", lambda: s.first_exit(X, box, 10, backend="numba"))
    timed("tangent", lambda: s.propagate_tangent(X, 10, tangent=np.eye(n), backend="numba"))
    print(json.dumps(out))
''')


def measure(case, hidden, cache):
    env = dict(os.environ, RDS_CACHE_DIR=cache)
    res = subprocess.run([sys.executable, "-c", CHILD, case, str(hidden)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="*", default=[2, 4, 8, 16],
                    help="teacher_student sizes for the tangent service")
    args = ap.parse_args(argv)
    cases = [("fa", 0, "fukumizu_amari"), ("user", 0, "user map (script)")]
    cases += [("ts", h, f"teacher_student N={h} ({2 * h} var)") for h in args.hidden]
    print(f"{'case':<30} {'service':<11} {'cold [s]':>9} {'later process [s]':>18}")
    for case, hidden, label in cases:
        with tempfile.TemporaryDirectory() as cache:
            cold = measure(case, hidden, cache)
            warm = measure(case, hidden, cache)
        for service in cold:
            print(f"{label:<30} {service:<11} {cold[service]:>9.2f} {warm[service]:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
