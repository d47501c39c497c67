"""Which URLs may be fetched: the server-side request forgery (SSRF) guard of
``core.data.net``, and hiding a URL's credentials in messages.

- ``check_address``: only globally routable addresses are fetched. Private, loopback,
  shared (100.64.0.0/10), special-purpose (192.0.0.0/24, 198.18.0.0/15, ...),
  site-local (fec0::/10) and unique-local (fc00::/7) addresses are refused unless
  private URLs are allowed (``allow_private=True`` or ``IMAGELAB_ALLOW_PRIVATE_URLS=1``);
  link-local and cloud metadata addresses, multicast, unspecified and reserved ones are
  always refused. An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo,
  NAT64 64:ff9b::/96) is judged by the address it carries.
- ``resolve_checked``: a URL's scheme and every address its host resolves to, the
  lookup bounded by the download's deadline.
- ``redact_url``: ``user:password@`` replaced by ``***@``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from core.errors import ImageLabError

ALLOW_ENV = "IMAGELAB_ALLOW_PRIVATE_URLS"


def private_urls_allowed(allow: bool | None = None) -> bool:
    """Whether private and loopback addresses may be fetched: ``allow`` when given, else
    the environment setting ``IMAGELAB_ALLOW_PRIVATE_URLS`` (1/true/yes/on).
    """
    if allow is not None:
        return allow
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# Not globally routable (IANA special-purpose registries), listed here as well as
# ``is_global`` because older Pythons miss some (192.0.0.0/24, fec0::/10, ...).
_NOT_GLOBAL = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/8", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20",
    "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8")]
# Cloud metadata services on addresses that are not link-local: Alibaba (shared address
# space), AWS over IPv6 (unique-local), Azure's platform address (a public one).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "100.100.100.200", "fd00:ec2::254", "168.63.129.16"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def carried_addresses(addr: _IP) -> list[_IP]:
    """The addresses a connection to ``addr`` really reaches: the IPv4 address inside an
    IPv4-mapped (::ffff:0:0/96), 6to4 (2002::/16), NAT64 (64:ff9b::/96) or Teredo
    (2001::/32: its server and its client) address, else ``addr`` itself."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped:
            return [addr.ipv4_mapped]
        if addr.sixtofour:
            return [addr.sixtofour]
        if addr in _NAT64:
            return [ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)]
        if addr.teredo:
            return list(addr.teredo)
    return [addr]


def is_public_address(addr: _IP) -> bool:
    """True if ``addr`` (already unwrapped by ``carried_addresses``) is globally routable."""
    return addr.is_global and not any(addr in net for net in _NOT_GLOBAL
                                      if net.version == addr.version)


def check_address(ip: str, allow_private: bool) -> None:
    """Raise ``ImageLabError`` unless ``ip`` (a resolved address) may be fetched.

    Each address ``ip`` carries (``carried_addresses``: IPv4-mapped, 6to4, NAT64, Teredo)
    is judged. Link-local, cloud metadata, multicast, unspecified and reserved addresses
    are always refused; any other address that is not globally routable (private,
    loopback, 100.64.0.0/10, 192.0.0.0/24, unique- or site-local, ...) is refused unless
    ``allow_private``.
    """
    try:
        outer = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        raise ImageLabError(f"refused: {ip!r} is not an IP address") from None
    for addr in carried_addresses(outer):
        shown = str(outer) if addr == outer else f"{outer} (which carries {addr})"
        if addr.is_link_local or addr in METADATA_ADDRESSES:
            raise ImageLabError(f"refused: {shown} is a link-local or cloud metadata service "
                                "address, never fetched (even with private URLs allowed)")
        if addr.is_multicast or addr.is_unspecified or (addr.is_reserved and not addr.is_loopback) \
                or (addr.version == 4 and addr.packed[0] == 0):   # 0.0.0.0/8 reaches this host
            raise ImageLabError(f"refused: {shown} is not a public address")
        if not allow_private and not is_public_address(addr):
            raise ImageLabError(f"refused: {shown} is a private or loopback address (or "
                                "another address that is not publicly routable); set "
                                f"{ALLOW_ENV}=1 to allow downloads from your own network")


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:    # not parsable as a URL: hide what lies between '//' and an '@'
        return re.sub(r"//[^/?#]*@", "//***@", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def resolve_checked(url: str, allow_private: bool,
                    deadline: float | None = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, ip) for ``url`` after the scheme and address checks.

    Every address the host resolves to must pass ``check_address``. ``deadline`` (a
    ``time.monotonic()`` value) bounds the name lookup: past it, ``TimeoutError``.
    Raises ``ImageLabError`` for a scheme other than http(s), a URL without a host or
    with a bad port, a name that does not resolve, and a refused address.
    """
    shown = redact_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageLabError(f"only http and https URLs can be downloaded, not "
                            f"{scheme or shown!r}")
    host = parts.hostname
    if not host:
        raise ImageLabError(f"URL {shown!r} has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ImageLabError(f"URL {shown!r} has a bad port") from None
    try:
        infos = _getaddrinfo(host, port, deadline)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageLabError(f"cannot resolve {host}: {exc}") from None
    ips = sorted({info[4][0] for info in infos})
    if not ips:
        raise ImageLabError(f"cannot resolve {host}")
    for ip in ips:  # every address must pass: no mixing a public and a private answer
        check_address(ip, allow_private)
    return scheme, host, port, ips[0]


def _getaddrinfo(host: str, port: int, deadline: float | None) -> list:
    """``socket.getaddrinfo``, given up at ``deadline``. A lookup has no timeout of its own,
    so a name is looked up in a daemon thread that is abandoned at the deadline: it has
    no side effects and its answer is simply dropped."""
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    else:                                   # an address: nothing to look up
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if deadline is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    answer: dict = {}

    def lookup():
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:        # handed to the waiting thread
            answer["error"] = exc

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise TimeoutError(f"looking up {host} took too long")
    if "error" in answer:
        raise answer["error"]
    return answer["infos"]
