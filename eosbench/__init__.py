"""eosbench: a benchmark suite and leaderboard for theories of training at large learning rates.

The Python API (see :mod:`eosbench.api` and docs/examples/quickstart.py)::

    import eosbench
    eosbench.list_tasks("tiny"); eosbench.list_predictors()
    frame = eosbench.load_trajectory("digits-mlp-tanh-eos")   # a DataFrame indexed by step
    scores = eosbench.run("eos-clamp", tasks=["quadratic-stable"])
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eosbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# The Python API (eosbench/api.py), imported on first use so that ``import eosbench`` stays fast.
_API = ("list_tasks", "list_predictors", "load_trajectory", "load_run", "run", "results_frame")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from eosbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'eosbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
