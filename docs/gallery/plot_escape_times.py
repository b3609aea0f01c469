"""
Escape times as censored data
=============================

How long does SGD stay near the degenerate subspace? Start 64 points in :math:`(0, 2]^2` on the reduced map
on :math:`M_{wv}` and record the first step at which :math:`(w, v)` leaves :math:`[-2, 2]^2`. Runs still inside
after ``max_steps`` are *right-censored*: their escape time is only known to exceed the cap, so the mean is
estimated from the Kaplan–Meier survival curve (with Greenwood bands), never by treating the cap as an escape.
"""

import numpy as np

import analysis
import rds

red = rds.regions.Box([0.0, 0.0], [2.0, 2.0], ("w", "v"))
region = rds.regions.Box([-2.0, -2.0], [2.0, 2.0], ("w", "v"))
ds = analysis.escape_time_scan(lambda s2: rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=s2), [0.01, 0.07, 0.3],
                               red, region, 20_000, seed=0, realizations=4, members=64, n_boot=200,
                               backend="numpy", progress=False)
from analysis.plots_escape import plot_survival  # noqa: E402

fig = plot_survival(ds, title="Kaplan–Meier survival in [-2, 2]²")

# %%
# The scan's Dataset: per-run escape times and censoring flags, and the censoring-aware summaries per σ².
print(np.round(ds.sigma2.values, 3))
ds
