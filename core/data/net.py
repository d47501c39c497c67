"""Fetching over http(s), safely: the one download path of imports and the Demo's URL box.

- only ``http`` and ``https``; a size cap and ONE wall-clock deadline (``timeout``)
  over the whole download: name lookup, connect, TLS handshake, every redirect, the
  response headers and the body. A server that drips its answer a byte at a time is
  cut off at the deadline like one that never ends. An optional SHA-256 checksum;
- server-side request forgery guard (``core.data.url_guard``): the host is resolved,
  and only globally routable addresses are fetched unless ``allow_private=True`` (or
  ``IMAGELAB_ALLOW_PRIVATE_URLS=1``); link-local and cloud metadata addresses never.
  The connection goes to the address that was checked (no second DNS lookup), and
  every redirect is checked again;
- a URL's credentials (``user:password@``) never appear in a message
  (``redact_url``).

Used by the URL source (``sources/url.py``), manifests whose rows are URLs
(``sources/manifest.py``) and the Demo page.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from core.data.url_guard import ALLOW_ENV, check_address, private_urls_allowed, redact_url, resolve_checked
from core.errors import ImageLabError
from core.units import format_size

# the guard's names, imported from here by the sources, the Demo page and tests
__all__ = ["ALLOW_ENV", "check_address", "private_urls_allowed", "redact_url",
           "resolve_checked", "Download", "fetch", "fetch_bytes"]

MAX_BYTES = 2 * 1024 ** 3
MAX_IMAGE_BYTES = 50 * 1024 * 1024
TIMEOUT_S = 30.0
MAX_REDIRECTS = 5


# One wall-clock deadline for the whole download. Every blocking socket call (send,
# recv, the TLS handshake) first sets the socket's timeout to the time left before the
# deadline, so however a server spreads its bytes (headers dripped one byte at a time,
# a body that never ends), the download stops at the deadline: a plain per-call socket
# timeout restarts at each byte and bounds nothing. This was chosen over running the
# request in a worker thread that is abandoned at the deadline because it keeps
# everything on the calling thread: progress callbacks (Streamlit elements) stay on the
# script thread, nothing is left running after ``fetch`` returns (an abandoned thread
# could still be writing into ``dest``), and it does not rely on closing a socket from
# another thread to wake a blocked read, which is not reliable on every platform or
# under TLS. The ssl module applies the socket's timeout to each whole read, write or
# handshake, so TLS is bounded the same way.

def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the time limit has passed")
    return left


class _DeadlineCalls:
    """Arms the socket's timeout to the time left before ``deadline`` for every call."""
    deadline = float("inf")

    def _arm(self) -> None:
        self.settimeout(_time_left(self.deadline))

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def send(self, *args, **kwargs):
        self._arm()
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._arm()
        return super().sendall(*args, **kwargs)


class _DeadlineSocket(_DeadlineCalls, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineCalls, ssl.SSLSocket):
    pass


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to the checked address ``ip`` (no second lookup of ``host``), by ``deadline``."""

    def __init__(self, ip: str, host: str, port: int, deadline: float):
        super().__init__(host, port, timeout=_time_left(deadline))
        self._ip, self._deadline = ip, deadline

    def connect(self):
        raw = socket.create_connection((self._ip, self.port), _time_left(self._deadline))
        sock = _DeadlineSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
        sock.deadline = self._deadline
        self.sock = sock


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to the checked address ``ip``, the certificate checked for ``host``, by
    ``deadline`` (the handshake included)."""

    def __init__(self, ip: str, host: str, port: int, deadline: float):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(host, port, timeout=_time_left(deadline), context=context)
        self._ip, self._deadline = ip, deadline

    def connect(self):
        raw = socket.create_connection((self._ip, self.port), _time_left(self._deadline))
        try:
            raw.settimeout(_time_left(self._deadline))     # bounds the handshake
            sock = self._context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        sock.deadline = self._deadline
        self.sock = sock


@dataclass
class Download:
    """The result of ``fetch``: the body in ``dest`` (``path``) or in memory (``data``).

    ``url`` is the final URL after redirects, ``content_type`` the lower-cased media type
    without parameters, ``num_bytes`` the body's size and ``sha256`` its hex digest.
    """
    path: Path | None
    data: bytes | None
    url: str            # the final URL, after redirects
    content_type: str
    num_bytes: int
    sha256: str


def fetch(url: str, *, dest: Path | None = None, max_bytes: int = MAX_BYTES,
          timeout: float = TIMEOUT_S, sha256: str | None = None,
          allow_private: bool | None = None, progress=None) -> Download:
    """GET ``url`` into ``dest`` (or memory when ``dest`` is None), with every guard.

    ``timeout`` is one wall-clock limit, in seconds, for everything: lookups, connects,
    redirects, headers and body. Raises ``ImageLabError`` (credentials in the URL never
    shown) for a refused address, a failure, a timeout, a size over ``max_bytes`` or a
    ``sha256`` mismatch.
    """
    allow = private_urls_allowed(allow_private)
    deadline = time.monotonic() + timeout
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        shown = redact_url(current)
        conn = None
        try:
            scheme, host, port, ip = resolve_checked(current, allow, deadline)
            parts = urlsplit(current)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn = (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(ip, host, port, deadline)
            default_port = 443 if scheme == "https" else 80
            host_header = f"[{host}]" if ":" in host else host
            conn.request("GET", path, headers={
                "Host": host_header if port == default_port else f"{host_header}:{port}",
                "User-Agent": "ImageLab", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                if not location:
                    raise ImageLabError(f"{shown} redirected without a Location")
                current = urljoin(current, location)
                continue
            if resp.status != 200:
                raise ImageLabError(f"{shown} answered HTTP {resp.status} {resp.reason}")
            return _read_body(resp, current, dest, max_bytes, sha256, progress)
        except (socket.timeout, TimeoutError):
            raise ImageLabError(f"{shown} timed out after {timeout:g} s (the limit for the "
                                "whole download)") from None
        except ssl.SSLError as exc:
            raise ImageLabError(f"TLS error from {urlsplit(current).hostname}: {exc}") from None
        except (http.client.HTTPException, OSError) as exc:
            raise ImageLabError(f"download of {shown} failed: {exc}") from None
        finally:
            if conn is not None:
                conn.close()
    raise ImageLabError(f"{redact_url(url)} redirected more than {MAX_REDIRECTS} times")


def _read_body(resp, url, dest, max_bytes, sha256, progress) -> Download:
    # no deadline check here: every socket read is armed with the time left (see above)
    shown = redact_url(url)
    declared = resp.getheader("Content-Length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > max_bytes:
        raise ImageLabError(f"{shown} is {format_size(total)}, over the limit of "
                            f"{format_size(max_bytes)}")
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    out = open(dest, "wb") if dest is not None else None
    try:
        while True:
            chunk = resp.read1(1 << 16) if hasattr(resp, "read1") else resp.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ImageLabError(f"{shown} is larger than the limit of "
                                    f"{format_size(max_bytes)}")
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            else:
                chunks.append(chunk)
            if progress:
                progress(size, total, f"downloading {shown}")
    finally:
        if out is not None:
            out.close()
    hexd = digest.hexdigest()
    if sha256 and hexd.lower() != sha256.strip().lower():
        raise ImageLabError(f"checksum mismatch for {shown}: expected sha256 {sha256}, got {hexd}")
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    return Download(dest, None if out is not None else b"".join(chunks), url, ctype, size, hexd)


def fetch_bytes(url: str, **options) -> bytes:
    """One image over http(s) (used by manifests); capped at the image size limit."""
    options.setdefault("max_bytes", MAX_IMAGE_BYTES)
    return fetch(url, **options).data or b""
