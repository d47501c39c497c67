"""The prediction service's guards (``SecurityMiddleware``), checked before any route runs.

- The ``Host`` header must be in the allow-list (default: ``127.0.0.1``, ``localhost`` and
  ``[::1]``; ``python -m core serve`` pins them to its port and adds ``--allowed-host``
  values), else 400: a DNS-rebinding page reaches the service under its own host name.
- A request with an ``Origin`` header (a browser's) whose host is not in the allow-list gets
  403, so a foreign web page cannot make predictions or fill the log.
- With an API key configured, every path but ``/health`` needs ``Authorization: Bearer <key>``
  (compared with ``hmac.compare_digest``), else 401. ``/health`` stays open for load
  balancers' probes; it tells the run id and the class names, nothing else.
"""

from __future__ import annotations

import hmac
import os
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from core.errors import ImageLabError

OPEN_PATHS = ("/health",)                   # answered without the API key
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
API_KEY_ENV = "IMAGELAB_API_KEY"
MIN_API_KEY_CHARS = 16


def check_api_key(key: str) -> str:
    """``key`` if usable as an API key: at least 16 printable ASCII characters, no spaces
    (it travels in an HTTP header); raises ``ImageLabError`` otherwise."""
    if len(key) < MIN_API_KEY_CHARS or not all(33 <= ord(c) <= 126 for c in key):
        raise ImageLabError(f"the API key must be at least {MIN_API_KEY_CHARS} printable ASCII "
                            "characters without spaces; make one with: python -c \"import "
                            "secrets; print(secrets.token_urlsafe(32))\"")
    return key


def api_key_setting(option: str | None) -> str | None:
    """The API key: ``option`` (``--api-key``), else ``$IMAGELAB_API_KEY``, else None; checked
    by ``check_api_key``."""
    key = option if option is not None else os.environ.get(API_KEY_ENV) or None
    return None if key is None else check_api_key(key)


def _split_host(value: str) -> tuple[str, str | None]:
    """``host[:port]`` (``[v6]:port`` too) as (host, port or None), lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1:]
        return value[:end + 1], rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


def check_allowed_host(value: str) -> str:
    """``value`` as an allow-list entry: ``host`` (any port) or ``host:port``, IPv6 in
    brackets, lower-cased; raises ``ImageLabError`` for a URL, a wildcard or an empty host."""
    host, port = _split_host(value)
    bad = set(" /@*?#\\")
    if not host or any(c in bad for c in value) or (port is not None and not port.isdigit()):
        raise ImageLabError(f"--allowed-host {value!r}: give a host name or address with an "
                            "optional port (example.org, 192.168.1.5:8000, [fd00::1]:8000), "
                            "not a URL or a wildcard")
    return host if port is None else f"{host}:{port}"


def host_allowed(value: str, allowed: frozenset[str]) -> bool:
    """Whether a ``Host`` header (or an Origin's ``host[:port]``) is in ``allowed``: an entry
    ``host:port`` matches exactly, an entry ``host`` matches that host on any port."""
    host, port = _split_host(value)
    if not host:
        return False
    return host in allowed or (port is not None and f"{host}:{port}" in allowed)


class SecurityMiddleware:
    """The Host allow-list (400), the Origin check (403) and the API key (401), before any route
    (pure ASGI). Refusals are JSON ``{"error": ...}``; they are counted in ``/metrics`` but not
    written to the prediction log."""

    def __init__(self, app, allowed_hosts: frozenset[str], api_key: str | None):
        self.app, self.allowed_hosts = app, allowed_hosts
        self.api_key = api_key.encode() if api_key else None

    def refusal(self, scope) -> tuple[int, str, dict] | None:
        """Why the request must be refused, as (status, message, headers), or None."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is None or not host_allowed(host, self.allowed_hosts):
            return 400, ("invalid Host header: this service answers only to "
                         + ", ".join(sorted(self.allowed_hosts))
                         + " (add a name with --allowed-host)"), {}
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin.strip())
            if parts.scheme not in ("http", "https") or not host_allowed(parts.netloc,
                                                                           self.allowed_hosts):
                return 403, "cross-origin requests are refused: the Origin is not allowed", {}
        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            scheme, _, token = headers.get("authorization", "").strip().partition(" ")
            given = token.strip().encode("utf-8", "replace")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given, self.api_key):
                return 401, ("missing or wrong API key: send the header "
                             "'Authorization: Bearer <key>'"), {"WWW-Authenticate": "Bearer"}
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = self.refusal(scope)
        if refused is None:
            return await self.app(scope, receive, send)
        status, message, headers = refused
        # The body is not read: close the connection rather than drain it.
        response = JSONResponse({"error": message}, status_code=status,
                                headers={**headers, "Connection": "close"})
        await response(scope, receive, send)
