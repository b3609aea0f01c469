"""The cost model behind ``backend=None``: predicted against measured wall times, cold and warm.

Plain script (not a timed test): ``python benchmarks/cost_model.py [--quick]``.

``rds.backends.choose`` sends a run to the backend with the smallest :func:`rds.backends.estimated_seconds`
(NumPy: Python overhead per step plus work per member-step; Numba: compilation, or loading from the on-disk cache,
plus work per member-step). This script measures what those estimates predict:

* **cold**: the first compiled call of a service in a fresh process with an empty kernel cache (compilation and
  Numba's start-up), and in a second fresh process that loads the kernel from the cache the first one wrote;
* **warm**: NumPy and compiled runs (kernels already in memory) over a grid of members × steps;
* **choice**: for each grid point, the backend ``choose`` takes on a cold cache and whether it was the faster one
  once compilation is counted (the run that the user waits for).

Maps: a logistic map (1 variable), a noisy Hénon map (2), and the Fukumizu–Amari SGD map (4); services ``evolve`` and
``tangent`` (k = number of variables). Each cold measurement is a fresh interpreter with its own ``RDS_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from functools import partial

import numpy as np

SYSTEMS = textwrap.dedent('''
    import numpy as np, rds

    def logistic(state, xi, params):
        x, = state
        return (params[0] * x * (1.0 - x) + xi[0],)

    def henon(state, xi, params):
        x, y = state
        return (1.0 - params[0] * x * x + y + xi[0], params[1] * x)

    def make(name):
        if name == "logistic":
            return rds.RandomDynamicalSystem(logistic, noise=rds.noise.Gaussian(1e-8), variables=("x",),
                                             params=(3.7,))
        if name == "henon":
            return rds.RandomDynamicalSystem(henon, noise=rds.noise.Gaussian(1e-6), variables=("x", "y"),
                                             params=(1.4, 0.3))
        return rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)

    def initial(s, members):
        lo, hi = (0.2, 0.8) if s.nvar == 1 else (-0.1, 0.1)
        return np.random.default_rng(0).uniform(lo, hi, (members, s.nvar))

    def run(s, service, X, steps, backend, repeats=1):
        for r in range(repeats):
            if service == "tangent":
                s.propagate_tangent(X, steps, tangent=np.eye(s.nvar), backend=backend, realization=r)
            else:
                s.evolve(X, steps, backend=backend, realization=r)
''')

CHILD = SYSTEMS + textwrap.dedent('''
    import json, sys, time
    from rds.backends import Plan, estimated_seconds
    name, service = sys.argv[1], sys.argv[2]
    s = make(name)
    X = initial(s, 8)
    plan = Plan(service, 8, 10, k=s.nvar if service == "tangent" else None)
    predicted = estimated_seconds(s, "numba", plan)
    t = time.perf_counter()
    run(s, service, X, 10, "numba")
    print(json.dumps({"predicted": predicted, "measured": time.perf_counter() - t}))
''')

ns: dict = {}
exec(SYSTEMS, ns)


def cold(name, service, cache):
    env = dict(os.environ, RDS_CACHE_DIR=cache)
    res = subprocess.run([sys.executable, "-c", CHILD, name, service], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller grid (members up to 10^3, steps up to 10^4)")
    ap.add_argument("--repeat", type=int, default=1, help="warm timings: best of this many runs")
    args = ap.parse_args(argv)
    from rds.backends import Plan, choose, estimated_seconds

    names = ["logistic", "henon", "fa"]
    services = ["evolve", "tangent"]
    print("cold: the first compiled call (8 members x 10 steps) in a fresh process; 'cache' loads what it wrote")
    print(f"{'map':<9} {'service':<8} {'compile pred':>12} {'compile meas':>12} {'cache pred':>11} "
          f"{'cache meas':>11}")
    compile_meas = {}
    for name in names:
        for service in services:
            with tempfile.TemporaryDirectory() as cache:
                c = cold(name, service, cache)
                w = cold(name, service, cache)
            compile_meas[name, service] = c["measured"]
            print(f"{name:<9} {service:<8} {c['predicted']:>12.2f} {c['measured']:>12.2f} {w['predicted']:>11.2f} "
                  f"{w['measured']:>11.2f}", flush=True)

    members = [1, 8, 100, 1000] if args.quick else [1, 8, 100, 1000, 10_000]
    steps = [1000, 10_000] if args.quick else [1000, 10_000, 100_000]
    print("\nwarm: seconds per run (kernels in memory); pick = choose(backend=None) on a cold cache, "
          "ok = it is the faster one counting the compilation measured above")
    print(f"{'map':<9} {'service':<8} {'members':>7} {'steps':>7} {'numpy pred':>10} {'numpy meas':>10} "
          f"{'numba pred':>10} {'numba meas':>10} {'pick':>6} {'ok':>3}")
    os.environ["RDS_CACHE_DIR"] = "off"  # cold choices: nothing on disk
    for name in names:
        for service in services:
            s = ns["make"](name)
            k = s.nvar if service == "tangent" else None
            X0 = ns["initial"](s, 8)
            pick_cold = {}
            for m in members:
                for n in steps:
                    plan = Plan(service, m, n, k=k)
                    pick_cold[m, n] = choose(s, None, X0, plan)
            ns["run"](s, service, X0, 10, "numba")  # compile once: the warm part
            for m in members:
                for n in steps:
                    if m * n > (10**7 if service == "evolve" else 3 * 10**6) or (m * n > 10**6 and args.quick):
                        continue
                    X = ns["initial"](s, m)
                    plan = Plan(service, m, n, k=k)
                    pn = estimated_seconds(s, "numpy", plan)
                    mn = best(partial(ns["run"], s, service, X, n, "numpy"), args.repeat) if pn < 30 else np.nan
                    ns["run"](s, service, X, 2, "numba")  # (blocks of >= 256 members: a second variant)
                    pb = estimated_seconds(s, "numba", plan)  # warm: in memory
                    mb = best(partial(ns["run"], s, service, X, n, "numba"), args.repeat)
                    pick = pick_cold[m, n]
                    cost_numba_cold = mb + compile_meas[name, service]
                    faster = "numba" if (np.isnan(mn) or cost_numba_cold < mn) else "numpy"
                    ok = "yes" if pick == faster else "NO"
                    print(f"{name:<9} {service:<8} {m:>7} {n:>7} {pn:>10.3g} {mn:>10.3g} {pb:>10.3g} {mb:>10.3g} "
                          f"{pick:>6} {ok:>3}", flush=True)


if __name__ == "__main__":
    main()
