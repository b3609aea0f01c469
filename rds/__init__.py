"""rds — learning as a random dynamical system θ_{t+1} = φ(θ_t, ξ_t).

Modules: :mod:`rds.noise` (replayable noise paths), :mod:`rds.models` (built-in maps), :mod:`rds.maps` (map types
and their identity), :mod:`rds.backends` (NumPy, Numba, JAX behind one contract), :mod:`rds.engine` (the driver),
:mod:`rds.coords` ((p, q, r, s) coordinates), :mod:`rds.symmetry` (network symmetries), :mod:`rds.regions`
(regions for escape times), :mod:`rds.io` (netCDF I/O). The analyses live in the sibling package :mod:`analysis`.
"""

from rds import backends, coords, engine, io, maps, models, noise, regions, symmetry  # noqa: E402
from rds._identity import ImpureMapError, UnidentifiedMapWarning  # noqa: E402
from rds._version import __version__
from rds.system import DivergenceWarning, RandomDynamicalSystem, RunResult  # noqa: E402

__all__ = ["RandomDynamicalSystem", "RunResult", "DivergenceWarning", "UnidentifiedMapWarning", "ImpureMapError",
           "noise", "models", "maps", "backends", "coords", "symmetry", "regions", "io", "engine", "__version__"]

# shared helpers of the analyses: initial states and Box sampling, Gaussian quadrature rules, log-spaced time grids
from rds import quadrature, sampling, timegrid  # noqa: E402, I001

__all__ += ["quadrature", "sampling", "timegrid"]
