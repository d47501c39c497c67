"""Handler of ``python -m core serve`` (parser and address checks: ``core/cli/serve.py``)."""

from __future__ import annotations

import uvicorn

from core.cli.output import log
from core.cli.serve import check_port_free, is_loopback
from core.errors import ImageLabError
from core.inference.service import create_app


def cmd_serve(args, ws) -> int:
    """``serve RUN``: serve the run's model over HTTP on uvicorn until Ctrl+C or SIGTERM.

    Raises ``ImageLabError`` for a bad port, a port in use, or a non-loopback ``--host``
    without ``--allow-network``."""
    if not 0 < args.port < 65536:
        raise ImageLabError("--port must be between 1 and 65535")
    if not is_loopback(args.host):
        if not args.allow_network:
            raise ImageLabError(f"refusing to bind {args.host}: the service has no "
                                "authentication; use a loopback address or add --allow-network")
        log(f"WARNING: serving on {args.host}, reachable from the network, without "
            "authentication: anyone who can reach it can use the model")
    check_port_free(args.host, args.port)
    app = create_app(ws, args.run_id, threshold=args.threshold, max_body_bytes=args.max_body_bytes)
    log(f"serving run {args.run_id} on http://{args.host}:{args.port} "
        f"(POST /predict, GET /health, GET /metrics); Ctrl+C stops")
    # uvicorn handles SIGINT/SIGTERM itself: it finishes in-flight requests and returns.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    log("service stopped")
    return 0
