"""The static leaderboard site: :mod:`eosbench.site.build` renders it from the published results,
:mod:`eosbench.site.serve` serves it on localhost."""
