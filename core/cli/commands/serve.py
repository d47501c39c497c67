"""Handler of ``python -m core serve`` (parser and address checks: ``core/cli/serve.py``)."""

from __future__ import annotations

import json
import os

import uvicorn

from core.cli.output import log
from core.cli.serve import check_port_free, is_loopback, serve_allowed_hosts
from core.errors import ImageLabError
from core.inference.prediction_log import log_max_bytes_setting
from core.inference.service import MAX_BATCH_LIMIT, SERVE_CONFIG_ENV, create_app
from core.inference.service_security import API_KEY_ENV, api_key_setting, check_allowed_host
from core.inference.service_socket import NoDelayHttpToolsProtocol
from core.store.run_paths import checked_run_id


def cmd_serve(args, ws) -> int:
    """``serve RUN``: serve the run's model over HTTP on uvicorn until Ctrl+C or SIGTERM.

    Raises ``ImageLabError`` for a malformed or unknown run id, a bad port, a port in use, a
    non-loopback ``--host`` without ``--allow-network``, ``--allow-network`` without an API
    key, a short key, a bad ``--allowed-host``, log, batching or ``--workers`` setting, or a
    ``--model`` that cannot load. With ``--workers N`` above 1, uvicorn runs N processes on
    one listening socket, each built by ``app_from_env`` from the settings passed in
    ``$IMAGELAB_SERVE_CONFIG``."""
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
    if not 1 <= args.max_batch <= MAX_BATCH_LIMIT:
        raise ImageLabError(f"--max-batch must be between 1 and {MAX_BATCH_LIMIT}")
    if not args.max_wait_ms >= 0:
        raise ImageLabError("--max-wait-ms must be 0 or more")
    cpus = os.cpu_count() or 1
    if not 1 <= args.workers <= 4 * cpus:
        raise ImageLabError(f"--workers must be between 1 and {4 * cpus} (4 per CPU core)")
    if args.threads is not None and not 1 <= args.threads <= 4 * cpus:
        raise ImageLabError(f"--threads must be between 1 and {4 * cpus}")
    share = max(1, cpus // args.workers)
    extra = [check_allowed_host(h) for h in args.allowed_host]
    hosts = serve_allowed_hosts(args.host, args.port, extra)
    log_max_bytes = log_max_bytes_setting(args.log_max_bytes)
    check_port_free(args.host, args.port)
    run_id = checked_run_id(args.run_id, ws)       # before any file is read or written
    settings = {"threshold": args.threshold, "max_body_bytes": args.max_body_bytes,
                "api_key": api_key, "allowed_hosts": hosts, "log_max_bytes": log_max_bytes,
                "log_backups": args.log_backups, "model": args.model,
                "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                # a worker's forwards get its share of the cores, less one for the event loop
                # and the decoding threads, which under load are as busy as the forward
                "threads": args.threads or (share - 1 if share > 1 else 1)}
    # Built here even for several workers: every setting and the model are checked (an ONNX
    # export made) once, with a clear error, before any worker starts.
    app = create_app(ws, run_id, **settings)
    if not is_loopback(args.host):
        log(f"serving on {args.host}, reachable from the network: /predict and /metrics need "
            "the API key; /health is open. HTTP is not encrypted: put a TLS proxy in front "
            "on an untrusted network")
    log(f"serving run {run_id} ({args.model}, batches of up to {args.max_batch} gathered for "
        f"up to {args.max_wait_ms:g} ms, {args.workers} worker{'s' if args.workers > 1 else ''} "
        f"with {settings['threads']} forward thread{'s' if settings['threads'] > 1 else ''} each) "
        f"on http://{args.host}:{args.port} (POST /predict, GET /health, GET /metrics"
        f"{'; API key required' if api_key else ''}); Host headers allowed: {', '.join(hosts)}; "
        "Ctrl+C stops")
    # uvicorn handles SIGINT/SIGTERM itself: it finishes in-flight requests and returns.
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                    http=NoDelayHttpToolsProtocol)
    else:
        del app                       # each worker process builds its own from the settings
        os.environ[SERVE_CONFIG_ENV] = json.dumps({"home": str(ws.root), "run_id": run_id,
                                                   **settings})
        uvicorn.run("core.inference.service:app_from_env", factory=True, workers=args.workers,
                    host=args.host, port=args.port, log_level="warning", access_log=False,
                    http=NoDelayHttpToolsProtocol)
    log("service stopped")
    return 0
