"""The static leaderboard site: ``eosbench leaderboard build`` and ``eosbench leaderboard serve``."""

from eosbench.site.build import build_site, serve

__all__ = ["build_site", "serve"]
