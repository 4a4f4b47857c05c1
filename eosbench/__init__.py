"""eosbench: a benchmark suite and leaderboard for theories of training at large learning rates."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eosbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
