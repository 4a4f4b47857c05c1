"""``eosbench leaderboard serve``: the built site on localhost (the standard library's HTTP server)."""

from __future__ import annotations

import http.server
from functools import partial
from pathlib import Path

from eosbench.errors import EosbenchError


def serve(site: Path, port: int = 8000) -> None:
    """Serve a built site on http://127.0.0.1:PORT until interrupted."""
    if not (site / "index.html").exists():
        raise EosbenchError(f"No site in {site}; build it first with 'eosbench leaderboard build'.")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {site} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
