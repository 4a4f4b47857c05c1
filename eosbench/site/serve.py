"""``eosbench leaderboard serve``: the built site on localhost (the standard library's HTTP server)."""

from __future__ import annotations

import errno
import http.server
from functools import partial
from pathlib import Path

from eosbench.errors import EosbenchError


def serve(site: Path, port: int = 8000) -> None:
    """Serve a built site on http://127.0.0.1:PORT until interrupted."""
    if not (site / "index.html").exists():
        raise EosbenchError(f"No site in {site}; build it first with 'eosbench leaderboard build'.")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        reason = "is in use by another program" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror or exc})"
        raise EosbenchError(f"Port {port} on 127.0.0.1 {reason}: pass another with --port "
                            "(e.g. --port 8001), or stop what holds it.") from None
    with server:
        print(f"serving {site} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
