"""The FA-type SGD map seen in the (p, q, r, s) coordinates of eq. 19, as a system of its own.

Given any random map φ of (w1, w2, v1, v2) (e.g. :func:`rds.models.fukumizu_amari`), the conjugate map is
φ_pqrs = P ∘ φ ∘ P⁻¹ with P = :data:`rds.models.PQRS_MATRIX` (p = (w1 + w2)/2, q = (v1 + v2)/2,
r = (w1 − w2)/2, s = (v1 − v2)/2), and its Jacobian is J_pqrs = P J P⁻¹. Both are evaluated entry by entry so that
on M_wv (w1 = w2, v1 = v2 bit for bit) the state keeps r = s = 0 and the cross blocks of J_pqrs are exactly 0.0
in floating point ((a − b) + (b − a) = 0 exactly): the transverse tangent plane then stays exactly invariant.

Unlike :func:`rds.models.fukumizu_amari_pqrs` (eqs. 20–24 written out independently, for the conjugacy test), this
system reuses the given map, so it works for any batch size, any map of the FA family and either Jacobian.

Reference: Sato, Tsutsui & Fujiwara, "Noise-induced degeneration in online learning", Physica D 430 (2022)
133095, eqs. 19–24.
"""

from __future__ import annotations

from rds._codegen import make_function

__all__ = ["pqrs_system"]

# P ∘ φ ∘ P⁻¹ with P⁻¹(p, q, r, s) = (p + r, p − r, q + s, q − s) and P = PQRS_MATRIX, written out elementwise.
_PQRS_STEP_SRC = """
def step_pqrs(s, xi, params):
    n = inner((s[0] + s[2], s[0] - s[2], s[1] + s[3], s[1] - s[3]), xi, params)
    return (0.5 * (n[0] + n[1]), 0.5 * (n[2] + n[3]), 0.5 * (n[0] - n[1]), 0.5 * (n[2] - n[3]))
"""
# P J P⁻¹ entry (a, b); dynamic indices (constant ones trip Numba's array analysis on tuples).
_PQRS_JAC_SRC = """
def entry(J, a, b):
    i0 = 2 * (a % 2)
    j0 = 2 * (b % 2)
    sa = 1.0 - 2.0 * (a // 2)
    sb = 1.0 - 2.0 * (b // 2)
    return 0.5 * ((J[i0][j0] + sb * J[i0][j0 + 1]) + sa * (J[i0 + 1][j0] + sb * J[i0 + 1][j0 + 1]))

def jac_pqrs(s, xi, params):
    J = full((s[0] + s[2], s[0] - s[2], s[1] + s[3], s[1] - s[3]), xi, params)
    return ((entry(J, 0, 0), entry(J, 0, 1), entry(J, 0, 2), entry(J, 0, 3)),
            (entry(J, 1, 0), entry(J, 1, 1), entry(J, 1, 2), entry(J, 1, 3)),
            (entry(J, 2, 0), entry(J, 2, 1), entry(J, 2, 2), entry(J, 2, 3)),
            (entry(J, 3, 0), entry(J, 3, 1), entry(J, 3, 2), entry(J, 3, 3)))
"""


def pqrs_system(system):
    """The same random map in (p, q, r, s) coordinates (eq. 19), built from ``system``'s step and Jacobian.

    ``step_pqrs = P ∘ φ ∘ P⁻¹`` and ``J_pqrs = P J P⁻¹`` with the exact linear change of variables of eq. 19,
    evaluated so that M_wv = {r = s = 0} and the transverse tangent plane are invariant *bit for bit* (the cross
    blocks of J_pqrs are exactly 0.0 there). The generated functions are cached, so scans compile once.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        A map of (w1, w2, v1, v2) that commutes with the neuron swap (e.g. the FA model). Its analytic Jacobian
        is used if it has one, else the exact complex-step Jacobian of its step.

    Returns
    -------
    rds.RandomDynamicalSystem
        Variables ("p", "q", "r", "s"), same noise, parameters and ``dt``; rebuilt from ``system`` when pickled.

    Examples
    --------
    >>> import numpy as np, rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> sp = rds.models.pqrs_system(fa)
    >>> u = np.array([0.5, -0.3, 0.2, 0.1]); xi = np.array([0.7])
    >>> bool(np.allclose(rds.coords.to_pqrs(fa.apply(u, xi)), sp.apply(rds.coords.to_pqrs(u), xi), atol=1e-15))
    True
    """
    check_four_variables(system, "pqrs_system")
    step = make_function(_PQRS_STEP_SRC, "step_pqrs", {"inner": system.step})
    jac = make_function(_PQRS_JAC_SRC, "jac_pqrs", {"full": system.map.jacobian_function()})
    attrs = dict(system.attrs, coordinate_system="p, q, r, s (eq. 19)")
    return system.replace(step=step, jacobian=jac, variables=("p", "q", "r", "s"),
                          name=f"{system.name} (pqrs coordinates)", attrs=attrs,
                          recipe=(pqrs_system, {"system": system}))


def check_four_variables(system, who):
    """Refuse (naming the caller ``who``) a system that is not a four-variable (w1, w2, v1, v2) rds system."""
    from rds.system import RandomDynamicalSystem

    if not isinstance(system, RandomDynamicalSystem):
        raise TypeError(f"system must be an rds.RandomDynamicalSystem, got {type(system).__name__}")
    if system.nvar != 4:
        raise ValueError(f"{who}: system must have the 4 variables (w1, w2, v1, v2), got {system.variables}")
