"""The package version (its own module: the CLI reads it without importing the package facade)."""

__version__ = "0.1.0"
