"""``python -m core serve RUN_ID``: the prediction HTTP service on uvicorn (loopback by default).

The parser and the address checks; the handler is in ``core/cli/commands/serve.py``.
"""

from __future__ import annotations

import ipaddress
import socket

from core.data.decode import MAX_FILE_BYTES
from core.errors import ImageLabError


def register(sub, common) -> None:
    """Add the ``serve`` command to the subparsers ``sub``, sharing the ``common`` options."""
    p = sub.add_parser("serve", parents=[common], help="serve a run's model over HTTP",
                       description="Start a prediction API for a finished run: POST /predict "
                                   "(image body or multipart field 'file'), GET /health, GET "
                                   "/metrics (Prometheus). Every prediction is appended to "
                                   "runs/RUN_ID/service/predictions.jsonl. Ctrl+C stops it.")
    p.add_argument("run_id")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; others need --allow-network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threshold", type=float, default=0.0,
                   help="answer 'unknown' below this confidence (0–1; ?threshold= overrides)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_FILE_BYTES,
                   help=f"refuse larger request bodies with 413 (default {MAX_FILE_BYTES:,})")
    p.add_argument("--allow-network", action="store_true",
                   help="allow a non-loopback --host: the API has no authentication")
    p.set_defaults(func="core.cli.commands.serve:cmd_serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP address (a name other than ``localhost``
    is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """A clear error now, rather than uvicorn's exit after the model has loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ImageLabError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                                "(choose another --port)") from None
