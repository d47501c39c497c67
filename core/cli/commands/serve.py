"""Handler of ``python -m core serve`` (parser and address checks: ``core/cli/serve.py``)."""

from __future__ import annotations

import uvicorn

from core.cli.output import log
from core.cli.serve import check_port_free, is_loopback, serve_allowed_hosts
from core.errors import ImageLabError
from core.inference.prediction_log import log_max_bytes_setting
from core.inference.service import create_app
from core.inference.service_security import API_KEY_ENV, api_key_setting, check_allowed_host
from core.store.run_paths import checked_run_id


def cmd_serve(args, ws) -> int:
    """``serve RUN``: serve the run's model over HTTP on uvicorn until Ctrl+C or SIGTERM.

    Raises ``ImageLabError`` for a malformed or unknown run id, a bad port, a port in use, a
    non-loopback ``--host`` without ``--allow-network``, ``--allow-network`` without an API
    key, a short key, or a bad ``--allowed-host`` or log setting."""
    if not 0 < args.port < 65536:
        raise ImageLabError("--port must be between 1 and 65535")
    api_key = api_key_setting(args.api_key)
    if args.allow_network and api_key is None:
        raise ImageLabError(f"--allow-network needs an API key: set {API_KEY_ENV} (or "
                            "--api-key); clients then send 'Authorization: Bearer <key>'")
    if not is_loopback(args.host) and not args.allow_network:
        raise ImageLabError(f"refusing to bind {args.host}: use a loopback address, or add "
                            f"--allow-network with an API key ({API_KEY_ENV})")
    if args.log_backups < 1:
        raise ImageLabError("--log-backups must be at least 1")
    extra = [check_allowed_host(h) for h in args.allowed_host]
    hosts = serve_allowed_hosts(args.host, args.port, extra)
    log_max_bytes = log_max_bytes_setting(args.log_max_bytes)
    check_port_free(args.host, args.port)
    run_id = checked_run_id(args.run_id, ws)       # before any file is read or written
    app = create_app(ws, run_id, threshold=args.threshold, max_body_bytes=args.max_body_bytes,
                     api_key=api_key, allowed_hosts=hosts, log_max_bytes=log_max_bytes,
                     log_backups=args.log_backups)
    if not is_loopback(args.host):
        log(f"serving on {args.host}, reachable from the network: /predict and /metrics need "
            "the API key; /health is open. HTTP is not encrypted: put a TLS proxy in front "
            "on an untrusted network")
    log(f"serving run {run_id} on http://{args.host}:{args.port} "
        f"(POST /predict, GET /health, GET /metrics{'; API key required' if api_key else ''}); "
        f"Host headers allowed: {', '.join(hosts)}; Ctrl+C stops")
    # uvicorn handles SIGINT/SIGTERM itself: it finishes in-flight requests and returns.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    log("service stopped")
    return 0
