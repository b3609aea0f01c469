"""Neuron splitting plateaus (the stationary-plateau paper): local minima and saddles over the splitting coefficients.

A 1-neuron tanh net is fitted (BFGS + Newton polish, gradient ~1e-15) to n samples from a 2-neuron
tanh teacher in d = 2. Its single neuron is split into 2 and 3 daughters and every point of the
plateau is classified by the theorems (inner Hessian H_j of eq. 11 + beta) and, independently, by the
wide net's exact Hessian and verified descent paths. Three datasets are used, chosen so that H_j is
positive definite, negative definite and indefinite.

Run:  python examples/plateau_splitting.py --out out/
Writes plateau_<case>_<k>daughters.nc (xarray/netCDF4) and plateau_maps.png into --out and prints a
summary. ``--search`` rescans data seeds for the three cases instead of using the stored ones.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from analysis.neuron_splitting import (
    find_local_minimum,
    inner_hessian,
    numerical_classification,
    plateau_map,
    two_layer_gradient,
    two_layer_loss,
)
from analysis.plots_splitting import plot_plateau_maps

# (n samples, data seed) giving a nondegenerate local minimum whose inner Hessian is PD / ND / indefinite
DEFAULT_CASES = {"PD": (10, 249), "ND": (20, 184), "ID": (10, 51)}


def teacher_data(n, seed, d=2):
    """n inputs N(0, I_d) and targets from a 2-neuron tanh teacher with weights drawn from `seed`."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Wt = 1.5 * rng.normal(size=(2, d))
    vt = rng.normal(size=2)
    return X, np.tanh(X @ Wt.T) @ vt


def fit_case(n, seed, activation):
    X, y = teacher_data(n, seed)
    W, v = find_local_minimum(X, y, hidden=1, seed=0, activation=activation)
    return W, v, X, y


def definiteness(W, v, X, y, activation, margin):
    """'PD'/'ND'/'ID' when the narrow point is a nondegenerate local min and |eig H_j| > margin, else None."""
    if numerical_classification(W, v, X, y, activation=activation)[0] != "local_min":
        return None
    lam = np.linalg.eigvalsh(inner_hessian(W, v, X, y, 0, activation))
    if np.min(np.abs(lam)) < margin:
        return None
    return "PD" if lam[0] > 0 else "ND" if lam[-1] < 0 else "ID"


def search_cases(activation, margin=1e-3, max_seed=400):
    found = {}
    for seed in range(max_seed):
        for n in (10, 20):
            kind = definiteness(*fit_case(n, seed, activation), activation, margin)
            if kind and kind not in found:
                found[kind] = (n, seed)
        if len(found) == 3:
            break
    return found


def intervals(x, mask):
    """Contiguous runs of `mask` over the grid `x`, as (first, last) grid values."""
    runs, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        if start is not None and (not m or i == len(mask) - 1):
            runs.append((x[start], x[i if m else i - 1]))
            start = None
    return runs


def save(ds, path):
    try:
        from rds.io import save as rds_save  # atomic netCDF4 writer of the core package
    except Exception:  # the core may be unavailable: write atomically here
        tmp = path + ".tmp"
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    else:
        rds_save(ds, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="out", help="output directory (default: out/)")
    p.add_argument("--grid2", type=int, default=61, help="beta_0 grid points for 2 daughters (default 61)")
    p.add_argument("--grid3", type=int, default=31, help="grid points per axis for 3 daughters (default 31)")
    p.add_argument("--low", type=float, default=-1.0, help="smallest free coefficient (default -1)")
    p.add_argument("--high", type=float, default=2.0, help="largest free coefficient (default 2)")
    p.add_argument("--activation", default="tanh", choices=["tanh", "erf", "softplus"])
    p.add_argument("--search", action="store_true", help="rescan data seeds for PD / ND / ID cases")
    args = p.parse_args(argv)
    if args.grid2 < 2 or args.grid3 < 2:
        p.error("--grid2 and --grid3 must be at least 2")
    if not args.low < args.high:
        p.error("--low must be smaller than --high")
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()

    cases = search_cases(args.activation) if args.search else dict(DEFAULT_CASES)
    maps, titles = [], []
    print(f"stationary-plateau splitting: 1-neuron {args.activation} student, 2-neuron teacher, d = 2")
    print("loss L = (1/2n) sum (f - y)^2;  H_j = (1/n) sum r v sigma'' x x^T (eq. 11)")
    for name in ("PD", "ND", "ID"):
        if name not in cases:
            print(f"{name}: no dataset found")
            continue
        n, seed = cases[name]
        W, v, X, y = fit_case(n, seed, args.activation)
        grad = max(np.max(np.abs(g)) for g in two_layer_gradient(W, v, X, y, args.activation))
        lam = np.linalg.eigvalsh(inner_hessian(W, v, X, y, 0, args.activation))
        row, trow = [], []
        print(f"\n{name}: n = {n}, data seed {seed}, L = {two_layer_loss(W, v, X, y, args.activation):.4g}, "
              f"max|grad| = {grad:.1e}, eig(H_j) = {np.array2string(lam, precision=4)}")
        for daughters, g in ((2, args.grid2), (3, args.grid3)):
            grid = np.linspace(args.low, args.high, g)
            ds = plateau_map(W, v, X, y, 0, daughters=daughters, grid=grid, activation=args.activation)
            save(ds, os.path.join(args.out, f"plateau_{name}_{daughters}daughters.nc"))
            kind = ds["kind"].values
            agree = float(np.mean(kind == ds["numeric_kind"].values))
            drops = ds["loss_change"].values[kind == 1]
            line = (f"  {daughters} daughters: {np.sum(kind == 0):4d} local min, {np.sum(kind == 1):4d} saddle, "
                    f"{np.sum(kind == 2)} undetermined of {kind.size}; theorems == Hessian/descent on "
                    f"{100 * agree:.0f}%")
            if drops.size:
                line += f"; every saddle descends (max loss change {np.max(drops):.1e})"
            print(line)
            if daughters == 2:
                runs = intervals(ds["beta_0"].values, kind == 0)
                if runs:
                    spans = " and ".join(f"[{a:.2f}, {b:.2f}]" for a, b in runs)
                    print(f"    local minima for beta_0 in {spans} (grid points), min transverse Hessian "
                          f"eig there {ds['min_transverse_eig'].values[kind == 0].min():.2e}")
            row.append(ds)
            trow.append(f"H_j {name}, {daughters} daughters")
        maps.append(row)
        titles.append(trow)
    if maps:
        fig = plot_plateau_maps(maps, titles)
        fig.savefig(os.path.join(args.out, "plateau_maps.png"), dpi=110)
    print(f"\nwrote {len(maps) * 2} netCDF files and plateau_maps.png to {args.out}/ "
          f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
