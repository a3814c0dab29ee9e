"""Outrider: send AI coding agents to git repositories and get pull requests back."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("outrider")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
