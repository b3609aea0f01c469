"""
Plateau, near-optimum, overfitting
==================================

Full-batch gradient descent on a fixed noisy dataset is a *quenched* random map: the randomness (the data) is
drawn once. The student :math:`f(x;\\theta) = v_1\\tanh(w_1x) + v_2\\tanh(w_2x)` learns the teacher
:math:`f^*(x) = 2\\tanh(x)` from 100 noisy samples. The learning curves show a plateau near the singular region,
a stretch near the optimal set (lowest generalisation error), and the escape to the overfitting point that
minimises the training error. (A short run: :math:`10^5` steps instead of :math:`3\\cdot10^6`, compiled with Numba.)
"""

import numpy as np

import analysis
import rds

x, y = analysis.make_dataset(100, noise_std=0.2, seed=0)
gd = rds.models.teacher_student(x, y, hidden=2, eta=0.01)
start = np.array([-0.13, 0.13, 0.16, -0.15])
curves = analysis.learning_curves(gd, start, 100_000, num=80, backend="numba")
fig = analysis.plot_learning_curves([curves], ["noisy labels"])

# %%
curves
