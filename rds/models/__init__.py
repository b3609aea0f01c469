"""Built-in models, one per file: each returns a :class:`rds.RandomDynamicalSystem` with an analytic Jacobian
(except the (p,q,r,s) form, which uses the exact automatic one)."""

from rds.models import two_layer
from rds.models.dataset_sgd import dataset_sgd, load_dataset
from rds.models.fukumizu_amari import OPTIMA, PQRS_BASIS, PQRS_MATRIX, fukumizu_amari, target
from rds.models.fukumizu_amari_conditional import conditional_r_system
from rds.models.fukumizu_amari_conjugate import pqrs_system
from rds.models.fukumizu_amari_pqrs import fukumizu_amari_pqrs
from rds.models.fukumizu_amari_reduced import fukumizu_amari_reduced
from rds.models.optax_training import optax_training  # needs jax and optax only when called
from rds.models.phase_oscillator import phase_oscillator
from rds.models.soft_committee import soft_committee
from rds.models.teacher_student import network_output, student_variables, teacher_student, training_error

__all__ = ["fukumizu_amari", "fukumizu_amari_reduced", "fukumizu_amari_pqrs", "teacher_student",
           "phase_oscillator", "two_layer", "target", "OPTIMA", "PQRS_MATRIX", "PQRS_BASIS", "pqrs_system",
           "conditional_r_system", "network_output", "training_error", "student_variables",
           "soft_committee", "dataset_sgd", "load_dataset", "optax_training"]
