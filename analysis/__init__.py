"""Analyses of random dynamical systems built with ``rds`` (one analysis per module).

Each analysis takes a system (or plain arrays) and returns a labelled :class:`xarray.Dataset` that survives a netCDF
round trip through :func:`rds.io.save` / :func:`rds.io.load`.

Conventions (the same in every analysis; the README's "Conventions" section has them in full): initial states are an
array ``(member, var)`` or ``(var,)``, an :class:`rds.regions.Box` with ``members=`` and ``sample_seed=``, or a
callable ``sampler(rng, members)`` (:func:`rds.sampling.initial_states`); ``backend=None`` picks the fastest
backend; ``progress=None`` shows a bar only for very long runs; ``seed`` selects the noise path and ``sample_seed``
(None: ``seed``) the sampled states; attrs name the library version ``rds_version`` and the governing equations
``equations``; results are Datasets or small documented objects (:class:`PlateauClassification`).
"""

from analysis.covariant_vectors import covariant_vectors, subspace_angle
from analysis.degenerate_stability import (
    attracting_probability,
    averaged_jacobian_wv,
    averaged_mu,
    averaged_potential,
    averaged_potential_full,
    averaged_step_jacobian,
    compare_random_averaged,
    degenerate_stability,
    jacobian_wv,
    mu_eigenvalues,
    sgd_direction_wv,
    step_jacobian_pqrs,
    transverse_jacobian,
    valley,
    valley_local_minima,
    valley_potential,
)
from analysis.escape_times import censored_mean, escape_time_scan, escape_times, sample_uniform, survival_summary
from analysis.finite_time import finite_time_exponents, generalized_exponents
from analysis.loss_curves import default_losses, loss_curves
from analysis.lyapunov import lyapunov_spectrum
from analysis.lyapunov_scan import exponent_root, lyapunov_scan
from analysis.neuron_splitting import (
    PlateauClassification,
    classify_plateau,
    find_local_minimum,
    inner_hessian,
    numerical_classification,
    plateau_map,
    split_neuron,
    two_layer_gradient,
    two_layer_hessian,
    two_layer_loss,
    unsplit_neuron,
)
from analysis.overfitting import (
    convergence_modulo_symmetry,
    count_unstable,
    distance_to_optimal_set,
    function_distance,
    generalization_error,
    learning_curves,
    load_dataset,
    make_dataset,
    optimal_set_sample,
    overfitting_point,
    training_gradient,
    training_hessian,
)
from analysis.plots_lyapunov import (
    plot_exponent_history,
    plot_exponent_vs_sigma2,
    plot_lyapunov_scan,
    plot_transverse_exponents,
)
from analysis.plots_overfitting import plot_learning_curves, plot_loss_curves, plot_trajectory
from analysis.plots_pullback import plot_pullback_attractors
from analysis.plots_splitting import plot_plateau_map
from analysis.pullback import (
    hausdorff_distance,
    pullback_attractor,
    pullback_diagnostics,
    sample_initial,
)
from analysis.rare_events import multilevel_splitting, splitting_mean_time
from analysis.transverse_exponents import conditional_r_system, pqrs_system, transverse_exponents

__all__ = [
    "PlateauClassification",
    "attracting_probability",
    "averaged_jacobian_wv",
    "averaged_mu",
    "averaged_potential",
    "averaged_potential_full",
    "averaged_step_jacobian",
    "censored_mean",
    "classify_plateau",
    "compare_random_averaged",
    "conditional_r_system",
    "convergence_modulo_symmetry",
    "default_losses",
    "count_unstable",
    "covariant_vectors",
    "degenerate_stability",
    "distance_to_optimal_set",
    "escape_time_scan",
    "escape_times",
    "exponent_root",
    "finite_time_exponents",
    "find_local_minimum",
    "function_distance",
    "generalization_error",
    "generalized_exponents",
    "hausdorff_distance",
    "inner_hessian",
    "jacobian_wv",
    "learning_curves",
    "load_dataset",
    "loss_curves",
    "lyapunov_scan",
    "lyapunov_spectrum",
    "make_dataset",
    "mu_eigenvalues",
    "multilevel_splitting",
    "numerical_classification",
    "optimal_set_sample",
    "overfitting_point",
    "plateau_map",
    "plot_exponent_history",
    "plot_exponent_vs_sigma2",
    "plot_learning_curves",
    "plot_lyapunov_scan",
    "plot_loss_curves",
    "plot_plateau_map",
    "plot_pullback_attractors",
    "plot_trajectory",
    "plot_transverse_exponents",
    "pqrs_system",
    "pullback_attractor",
    "pullback_diagnostics",
    "sample_initial",
    "sample_uniform",
    "sgd_direction_wv",
    "split_neuron",
    "splitting_mean_time",
    "step_jacobian_pqrs",
    "subspace_angle",
    "survival_summary",
    "training_gradient",
    "training_hessian",
    "transverse_exponents",
    "transverse_jacobian",
    "two_layer_gradient",
    "two_layer_hessian",
    "two_layer_loss",
    "unsplit_neuron",
    "valley",
    "valley_local_minima",
    "valley_potential",
]
