"""The package version (read by the build, re-exported by the package root)."""

__version__ = "0.1.0"
