"""Generated member updates shared by the elementwise backends (NumPy vectorised, Numba compiled).

A map ``step(state, xi, params)`` is written once, elementwise. From one source text per service this module
generates a *member update* that indexes the ensemble as ``X[i, m]``. Under the NumPy backend ``m`` is
``slice(None)`` and the update is vectorised over the whole ensemble; under the Numba backend ``m`` is an integer
inside a loop over the members of a block. The same text, compiled twice, is what makes the two backends agree to
rounding.

Layout: the ensemble is stored variable-major ``X[var, member]`` (struct of arrays); tangent vectors are
``V[var, vector, member]`` and log-norms ``logr[vector, member]``. A member whose new state is not finite is set
to NaN in every variable (``sel``).
"""

from __future__ import annotations

from rds._codegen import tuple_src

__all__ = ["xi_of_source", "evolve_source", "tangent_source", "exit_source", "mgs_source", "jac_store_source",
           "noise_slice_source"]


def _xi_src(noise_ndim: int, independent: bool, vec_len: int | None = None) -> str:
    """Source of this step's noise sample ``xi`` inside an update, from ``nt = xi_of(noise, t)``.

    Common noise: ``nt`` is already the sample (loaded once per step, outside the member loop, so that terms that
    depend on the noise only are hoisted out of it). Independent noise: ``nt`` is the noise array and the member's
    sample is gathered. With ``vec_len`` (compiled backend, 1-D noise of a few samples) the sample is a
    fixed-length vector whose length is a compile-time constant (``rds.fastmath.nvec``), so a map's loop over the
    batch unrolls and the member loop around it vectorises; otherwise it is an array view.
    """
    if not independent:
        return "nt"
    if vec_len is not None:
        return "nvec(" + tuple_src(f"nt[t, {k}, m]" for k in range(vec_len)) + ")"
    return "nt[t, " + ", ".join([":"] * noise_ndim) + ", m]"


def xi_of_source(independent: bool, vec_len: int | None = None) -> str:
    """Source of ``xi_of(noise, t)``: the per-step noise argument ``nt`` of the updates (see :func:`_xi_src`)."""
    if independent:
        body = "noise"
    elif vec_len is not None:
        body = "nvec(" + tuple_src(f"noise[t, {k}]" for k in range(vec_len)) + ")"
    else:
        body = "noise[t]"
    return f"def xi_of(noise, t):\n    return {body}\n"


def _store_src(nvar: int, ind: str = "    ") -> str:
    """Check the new state ``n`` is finite; store it (NaN everywhere if not)."""
    lines = [ind + f"n{i} = n[{i}]" for i in range(nvar)]
    lines.append(ind + "ok = isfinite(" + " + ".join(f"n{i}" for i in range(nvar)) + ")")
    lines += [ind + f"a{i} = sel(ok, n{i})" for i in range(nvar)]
    lines += [ind + f"X[{i}, m] = a{i}" for i in range(nvar)]
    return "\n".join(lines)


def _load_src(nvar: int) -> str:
    return tuple_src(f"X[{i}, m]" for i in range(nvar))


def evolve_source(nvar, noise_ndim, independent, vec_len=None):
    return f"""
def update(X, m, nt, t, params):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    n = step({_load_src(nvar)}, xi, params)
{_store_src(nvar)}
"""


def tangent_source(nvar, noise_ndim, independent, k, vec_len=None):
    """Source of the tangent update: state step and ``V <- J V`` for ``k`` vectors, fully unrolled in scalars."""
    lines = []
    for c in range(k):
        for i in range(nvar):
            terms = " + ".join(f"J[{i}][{j}] * V[{j}, {c}, m]" for j in range(nvar))
            lines.append(f"    w{i}_{c} = {terms}")
    for c in range(k):
        for i in range(nvar):
            lines.append(f"    V[{i}, {c}, m] = w{i}_{c}")
    body = "\n".join(lines)
    return f"""
def update(X, V, m, nt, t, params):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    s = {_load_src(nvar)}
    J = jac(s, xi, params)
    n = step(s, xi, params)
{body}
{_store_src(nvar)}
"""


def exit_source(nvar, noise_ndim, independent, vec_len=None):
    return f"""
def update(X, exit_step, m, nt, t, params, count):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    alive = exit_step[m] < 0
    n = step({_load_src(nvar)}, xi, params)
    n = {tuple_src(f"pick(alive, n[{i}], X[{i}, m])" for i in range(nvar))}
{_store_src(nvar)}
    out = np.logical_and(alive, np.logical_not(inside({_load_src(nvar)})))
    exit_step[m] = pick(out, count, exit_step[m])
    return np.logical_and(alive, np.logical_not(out))
"""


def mgs_source(nvar: int, k: int) -> str:
    """Source of :func:`mgs` unrolled for ``nvar`` variables and ``k`` vectors (same arithmetic, in scalars).

    A vector whose norm is exactly 0 has *collapsed* (the Jacobian product has lost that direction: λ = −∞ on this
    orbit): ``log R_cc = −inf`` is added and the vector stays 0, so it stays −inf (never NaN) to the end.
    """
    L = ["def mgs(V, logr, m):"]
    for c in range(k):
        for i in range(nvar):
            L.append(f"    v{i}_{c} = V[{i}, {c}, m]")
    for c in range(k):
        for _ in range(2):
            for d in range(c):
                L.append("    dot = " + " + ".join(f"v{i}_{d} * v{i}_{c}" for i in range(nvar)))
                for i in range(nvar):
                    L.append(f"    v{i}_{c} = v{i}_{c} - dot * v{i}_{d}")
        L.append("    sq = " + " + ".join(f"v{i}_{c} * v{i}_{c}" for i in range(nvar)))
        L.append("    norm = np.sqrt(sq)")
        # a vector that collapsed to 0 (a Jacobian with a zero direction: an absorbing state) adds log 0 = -inf
        # and stays 0 (not 0/0 = NaN); a NaN norm stays NaN
        L.append("    gone = norm == 0.0")
        L.append("    norm = pick(gone, 1.0, norm)")
        L.append(f"    logr[{c}, m] = logr[{c}, m] + pick(gone, -np.inf, np.log(norm))")
        for i in range(nvar):
            L.append(f"    v{i}_{c} = v{i}_{c} / norm")
    for c in range(k):
        for i in range(nvar):
            L.append(f"    V[{i}, {c}, m] = v{i}_{c}")
    return "\n".join(L) + "\n"




def jac_store_source(nvar, noise_ndim, independent, vec_len=None):
    """Source of ``jstore``: the member's Jacobian at its current state into ``Jb[:, :, m]`` (looped tangent).

    A function of its own, apart from the state step (the inlined, vectorised ``update``): with the step in the
    same function the whole Jacobian stays live across the map's code and LLVM's optimisation time explodes
    (teacher_student, 16 variables: 55 s for the combined function, 9 s for the Jacobian alone).
    """
    return f"""
def jstore(X, Jb, m, nt, t, params):
    xi = {_xi_src(noise_ndim, independent, vec_len)}
    store_matrix(Jb, m, jac({_load_src(nvar)}, xi, params))
"""


def noise_slice_source(noise_ndim: int, independent: bool) -> str:
    """Source of ``noise_slice(noise, lo, hi)``: the block's members of independent noise (common: all of it)."""
    body = "noise[" + ", ".join([":"] * (noise_ndim + 1)) + ", lo:hi]" if independent else "noise"
    return f"def noise_slice(noise, lo, hi):\n    return {body}\n"


# ---------------------------------------------------------------------------------------------------------------
# the driver: cut [t0, t1) at noise blocks and requested times, call the kernels
