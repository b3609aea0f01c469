"""The FA-type map with the conditional (r, r) Jacobian, for the conditional transverse exponent of M_w.

M_w = {r = 0} (eq. 17; r = (w1 − w2)/2) is not invariant under the FA map, so it has no transverse exponent in
the sense of the multiplicative ergodic theorem. Its conditional (Pecora–Carroll) exponent is the growth rate of an
r-perturbation when its coupling to the other directions is cut: λ_r = (1/n) Σ_t log |J_rr(θ_t, x_t)| with
J_rr = e_rᵀ J e_r = (J11 − J12 − J21 + J22)/2, e_r the r column of :data:`rds.models.PQRS_BASIS`.
This system follows the full map and has the Jacobian J_rr · I, so one tangent vector grows by |J_rr| per step.

Reference: Sato, Tsutsui & Fujiwara, "Noise-induced degeneration in online learning", Physica D 430 (2022)
133095, §3.
"""

from __future__ import annotations

from rds._codegen import make_function
from rds.models.fukumizu_amari_conjugate import check_four_variables

__all__ = ["conditional_r_system"]

# J_rr = (J11 - J12 - J21 + J22) / 2; dynamic indices (constant ones trip Numba's array analysis on tuples)
_COND_SRC = """
def jac_rr(s, xi, params):
    J = full(s, xi, params)
    acc = 0.0
    for i in range(2):
        for j in range(2):
            acc = acc + (1.0 - 2.0 * ((i + j) % 2)) * J[i][j]
    a = 0.5 * acc
    z = 0.0 * a
    return ((a, z, z, z), (z, a, z, z), (z, z, a, z), (z, z, z, a))
"""


def conditional_r_system(system):
    """A copy of a 4-variable FA-type system whose Jacobian is J_rr · I (for the conditional exponent on M_w).

    The state still follows the full map; one tangent vector propagated with this Jacobian grows by |J_rr| per
    step, J_rr = e_rᵀ J e_r. The generated Jacobian is cached per full Jacobian, so scans compile once.

    Parameters
    ----------
    system : rds.RandomDynamicalSystem
        A map of (w1, w2, v1, v2) (e.g. the FA model, eqs. 6-7); its own Jacobian is used if it has
        one, else a complex-step Jacobian of its step.

    Returns
    -------
    rds.RandomDynamicalSystem
        The same step, noise, variables and parameters; Jacobian J_rr(θ, x) · I (4, 4) with
        J_rr = (J11 − J12 − J21 + J22) / 2, whose time average of log|·| is the conditional exponent λ_r of M_w
        (eq. 17); rebuilt from ``system`` when pickled.

    Examples
    --------
    >>> import numpy as np, rds
    >>> fa = rds.models.fukumizu_amari(eta=0.1, sigma2=1.0)
    >>> cr = rds.models.conditional_r_system(fa)
    >>> e_r = rds.models.PQRS_BASIS[:, 2]
    >>> u = np.array([0.5, 0.5, 0.2, 0.1]); xi = np.array([0.7])
    >>> J_rr = e_r @ fa.jacobian_matrix(u, xi) @ e_r
    >>> bool(np.allclose(cr.jacobian_matrix(u, xi), J_rr * np.eye(4))), bool(np.array_equal(cr.apply(u, xi),
    ...                                                                                      fa.apply(u, xi)))
    (True, True)
    """
    check_four_variables(system, "conditional_r_system")
    jr = make_function(_COND_SRC, "jac_rr", {"full": system.map.jacobian_function()})
    return system.replace(jacobian=jr, recipe=(conditional_r_system, {"system": system}))
