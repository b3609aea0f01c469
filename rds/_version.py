"""The version of rds: one place, read by the package, its Dataset attrs and the build (pyproject.toml)."""

__version__ = "0.1.0"
