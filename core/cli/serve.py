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
                                   "/metrics (Prometheus). Concurrent requests are batched "
                                   "into one forward (--max-batch, --max-wait-ms); --model "
                                   "serves an ONNX export instead of PyTorch; --workers runs "
                                   "several processes on the port. Every prediction is "
                                   "appended to runs/RUN_ID/service/predictions.jsonl (one "
                                   "file per worker, rotated at a size limit). Only Host "
                                   "headers in the allow-list are answered; --allow-network "
                                   "needs an API key. Ctrl+C stops it.")
    p.add_argument("run_id")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; others need --allow-network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threshold", type=float, default=0.0,
                   help="answer 'unknown' below this confidence (0–1; ?threshold= overrides)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_FILE_BYTES,
                   help=f"refuse larger request bodies with 413 (default {MAX_FILE_BYTES:,})")
    p.add_argument("--allow-network", action="store_true",
                   help="allow a non-loopback --host; needs an API key (--api-key or "
                        "IMAGELAB_API_KEY)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /predict and /metrics (/health "
                        "stays open); at least 16 characters. Prefer $IMAGELAB_API_KEY: an "
                        "option shows in the process list")
    p.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="a Host header to accept besides 127.0.0.1, localhost and [::1] on "
                        "--port (and the --host address); repeatable")
    p.add_argument("--log-max-bytes", type=int, default=None,
                   help="rotate the prediction log past this size (default "
                        "$IMAGELAB_PREDICTION_LOG_MAX_BYTES, else 50 MiB)")
    p.add_argument("--log-backups", type=int, default=1,
                   help="rotated prediction log files to keep (default 1)")
    p.add_argument("--model", choices=["torch", "onnx", "int8"], default="torch",
                   help="torch: the run's best.pt (default); onnx: exports/RUN_ID/model.onnx "
                        "(exported now if missing or older than best.pt); int8: "
                        "exports/RUN_ID/model-int8.onnx (make it with `export RUN_ID "
                        "--precision int8`)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="most images in one forward (default 16; 1 turns batching off)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest a queued image waits for others to join its batch (default "
                        "5 ms; the wait ends early when no other image is being decoded)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads of each worker's forward (default: the worker's share of the "
                        "CPU cores less one, which is left to HTTP and decoding; at least 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on the port (uvicorn --workers; default 1); each "
                        "loads the model and writes its own prediction log")
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


def serve_allowed_hosts(host: str, port: int, extra: list[str]) -> list[str]:
    """The Host headers the service answers to: 127.0.0.1, localhost and [::1] on ``port``,
    the bound ``host`` on ``port`` unless it is a wildcard (0.0.0.0, ::), and ``extra``
    (``--allowed-host`` values, as given)."""
    names = ["127.0.0.1", "localhost", "[::1]"]
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if host not in ("0.0.0.0", "::", "") and bound.lower() not in names:
        names.append(bound)
    return [f"{n}:{port}" for n in names] + list(extra)


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
