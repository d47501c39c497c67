"""Start the dashboard: ``python -m dashboard.launch [--host H] [--port P]``.

Used by ``make run``. Binding to anything but this machine (``HOST=0.0.0.0``)
requires a password, else it refuses to start.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

LOCAL = {"127.0.0.1", "localhost", "::1"}
REPO = Path(__file__).resolve().parent.parent


def password_is_set() -> bool:
    if os.environ.get("IMAGELAB_PASSWORD"):
        return True
    secrets = REPO / ".streamlit" / "secrets.toml"
    if secrets.exists():
        import tomllib
        try:
            return bool(tomllib.loads(secrets.read_text()).get("password"))
        except (OSError, ValueError):
            return False
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--check", action="store_true",
                        help="only check that the app may serve on --host, then exit")
    args = parser.parse_args(argv)
    if args.host not in LOCAL and not password_is_set():
        print(f"error: refusing to serve on {args.host}: anyone on the network could use the "
              "app. Set a password first, e.g. `IMAGELAB_PASSWORD=... make run HOST="
              f"{args.host}`, or `password = \"...\"` in .streamlit/secrets.toml.",
              file=sys.stderr)
        return 2
    if args.check:
        return 0
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"),
           "--server.address", args.host, "--server.port", str(args.port)]
    print(f"ImageLab on http://{args.host}:{args.port}  (Ctrl+C to stop)", file=sys.stderr)
    os.chdir(REPO)
    os.execv(sys.executable, cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
