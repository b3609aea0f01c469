"""Analyses of random dynamical systems built with ``rds`` (one analysis per module)."""

from analysis.degenerate_stability import attracting_probability, averaged_jacobian_wv, averaged_mu, averaged_potential, averaged_potential_full, averaged_step_jacobian, compare_random_averaged, degenerate_stability, jacobian_wv, mu_eigenvalues, sgd_direction_wv, step_jacobian_pqrs, transverse_jacobian, valley, valley_local_minima, valley_potential  # noqa: F401, E501, I001
from analysis.neuron_splitting import split_neuron, unsplit_neuron, inner_hessian, classify_plateau, plateau_map, plot_plateau_map, numerical_classification, find_local_minimum, two_layer_loss, two_layer_gradient, two_layer_hessian, PlateauClassification  # noqa: F401
from analysis.pullback import pullback_attractor, pullback_diagnostics, hausdorff_distance, sample_initial, plot_pullback_attractors  # noqa: F401, E501
from analysis.escape_times import escape_times, escape_time_scan, sample_uniform, survival_summary  # noqa: F401
from analysis.overfitting import learning_curves, make_dataset, load_dataset, generalization_error, training_gradient, training_hessian, overfitting_point, convergence_modulo_symmetry, distance_to_optimal_set, count_unstable, function_distance, optimal_set_sample, plot_learning_curves, plot_trajectory  # noqa: F401
from analysis.lyapunov import lyapunov_spectrum; from analysis.transverse_exponents import transverse_exponents, pqrs_system, conditional_r_system; from analysis.plots_lyapunov import plot_exponent_history, plot_exponent_vs_sigma2, plot_transverse_exponents  # noqa: F401, E702
