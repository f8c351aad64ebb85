"""The package version (``pyproject.toml`` holds the same): a leaf, so that services can record it
without importing the package root."""

__version__ = "0.1.0"
