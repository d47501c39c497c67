"""Fetching over http(s), safely: the one download path of imports and the Demo's URL box.

- only ``http`` and ``https``; a size cap, a connect/read timeout and an overall
  deadline (a server that never ends is cut off); an optional SHA-256 checksum;
- server-side request forgery guard: the host is resolved, and private, loopback,
  link-local, multicast, reserved and unspecified addresses are refused; the
  connection goes to the address that was checked (no second DNS lookup), and
  every redirect is checked again. ``allow_private=True`` (or the environment
  setting ``IMAGELAB_ALLOW_PRIVATE_URLS=1``) allows private and loopback
  addresses; link-local ones (cloud metadata services) stay refused.

Used by the URL source (``sources/url.py``), manifests whose rows are URLs
(``sources/manifest.py``) and the Demo page.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from core.errors import ImageLabError

ALLOW_ENV = "IMAGELAB_ALLOW_PRIVATE_URLS"
MAX_BYTES = 2 * 1024 ** 3
MAX_IMAGE_BYTES = 50 * 1024 * 1024
TIMEOUT_S = 30.0
MAX_REDIRECTS = 5


def private_urls_allowed(allow: bool | None = None) -> bool:
    """Whether private and loopback addresses may be fetched: ``allow`` when given, else
    the environment setting ``IMAGELAB_ALLOW_PRIVATE_URLS`` (1/true/yes/on).
    """
    if allow is not None:
        return allow
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_address(ip: str, allow_private: bool) -> None:
    """Raise ``ImageLabError`` unless ``ip`` (a resolved address) may be fetched.

    Link-local, multicast, unspecified and reserved addresses are always refused;
    private and loopback ones only when ``allow_private`` is false. IPv4-mapped IPv6
    addresses are judged as the IPv4 address they carry.
    """
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.is_link_local:
        raise ImageLabError(f"refused: {addr} is a link-local address (such as a cloud "
                            "metadata service)")
    if addr.is_multicast or addr.is_unspecified or (addr.is_reserved and not addr.is_private):
        raise ImageLabError(f"refused: {addr} is not a public address")
    if (addr.is_private or addr.is_loopback) and not allow_private:
        raise ImageLabError(f"refused: {addr} is a private or loopback address; set "
                            f"{ALLOW_ENV}=1 to allow downloads from your own network")


def resolve_checked(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, ip) for ``url`` after the scheme and address checks."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageLabError(f"only http and https URLs can be downloaded, not {scheme or url!r}")
    host = parts.hostname
    if not host:
        raise ImageLabError(f"URL {url!r} has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ImageLabError(f"URL {url!r} has a bad port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageLabError(f"cannot resolve {host}: {exc}") from None
    ips = sorted({info[4][0] for info in infos})
    if not ips:
        raise ImageLabError(f"cannot resolve {host}")
    for ip in ips:  # every address must pass: no mixing a public and a private answer
        check_address(ip, allow_private)
    return scheme, host, port, ips[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, ip: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self):
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


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
    """GET ``url`` into ``dest`` (or memory when ``dest`` is None), with every guard."""
    allow = private_urls_allowed(allow_private)
    deadline = time.monotonic() + timeout
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        scheme, host, port, ip = resolve_checked(current, allow)
        parts = urlsplit(current)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        remaining = max(0.1, deadline - time.monotonic())
        conn = (_PinnedHTTPS(ip, host, port, remaining) if scheme == "https"
                else http.client.HTTPConnection(ip, port, timeout=remaining))
        try:
            default_port = 443 if scheme == "https" else 80
            conn.request("GET", path, headers={
                "Host": host if port == default_port else f"{host}:{port}",
                "User-Agent": "ImageLab", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                if not location:
                    raise ImageLabError(f"{current} redirected without a Location")
                current = urljoin(current, location)
                continue
            if resp.status != 200:
                raise ImageLabError(f"{current} answered HTTP {resp.status} {resp.reason}")
            return _read_body(resp, current, dest, max_bytes, deadline, timeout, sha256, progress)
        except (socket.timeout, TimeoutError):
            raise ImageLabError(f"{current} timed out after {timeout:.0f} s") from None
        except ssl.SSLError as exc:
            raise ImageLabError(f"TLS error from {host}: {exc}") from None
        except (http.client.HTTPException, OSError) as exc:
            raise ImageLabError(f"download of {current} failed: {exc}") from None
        finally:
            conn.close()
    raise ImageLabError(f"{url} redirected more than {MAX_REDIRECTS} times")


def _read_body(resp, url, dest, max_bytes, deadline, timeout, sha256, progress) -> Download:
    declared = resp.getheader("Content-Length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > max_bytes:
        raise ImageLabError(f"{url} is {total / 1e6:.1f} MB, over the limit of "
                            f"{max_bytes / 1e6:.1f} MB")
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    out = open(dest, "wb") if dest is not None else None
    try:
        while True:
            if time.monotonic() > deadline:
                raise ImageLabError(f"{url} did not finish within {timeout:.0f} s")
            chunk = resp.read1(1 << 16) if hasattr(resp, "read1") else resp.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ImageLabError(f"{url} is larger than the limit of {max_bytes / 1e6:.1f} MB")
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            else:
                chunks.append(chunk)
            if progress:
                progress(size, total, f"downloading {url}")
    finally:
        if out is not None:
            out.close()
    hexd = digest.hexdigest()
    if sha256 and hexd.lower() != sha256.strip().lower():
        raise ImageLabError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {hexd}")
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    return Download(dest, None if out is not None else b"".join(chunks), url, ctype, size, hexd)


def fetch_bytes(url: str, **options) -> bytes:
    """One image over http(s) (used by manifests); capped at the image size limit."""
    options.setdefault("max_bytes", MAX_IMAGE_BYTES)
    return fetch(url, **options).data or b""
