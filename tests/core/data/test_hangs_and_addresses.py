"""Issue 17, items 4 and 5 and URL credentials: inputs that used to hang end within their
time limit, the address guard allows only globally routable addresses, and no message
shows a URL's password.

The address guard is tested as a function on a table of addresses (and on ``localhost``,
resolved but never connected to). Every connection goes to 127.0.0.1 only. Each hanging
input runs in a subprocess (``python -m core datasets import ...``) under a hard
``timeout``, so a regression fails the test instead of hanging the suite; the bound checked
is the input's time limit + 2 s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from core.data.files import read_file
from core.data.net import ALLOW_ENV, fetch
from core.data.url_guard import check_address, redact_url, resolve_checked
from core.errors import ImageLabError
from core.finetune.sources import file_weights
from core.inference.batch import iter_image_bytes
from tests.conftest import REPO, python_env
from tests.core.data.corpus import png_bytes

LINK_LOCAL = "link-local"
NOT_PUBLIC = "not a public address"
PRIVATE = "private or loopback"

# (address, allow_private, expected: None = allowed, else a part of the refusal)
ADDRESSES = [
    ("93.184.216.34", False, None),
    ("2606:4700::1111", False, None),
    ("2002:5db8:d822::", False, None),                  # 6to4 of a public address
    ("64:ff9b::5db8:d822", False, None),                # NAT64 of a public address
    ("127.0.0.1", False, PRIVATE),
    ("127.0.0.1", True, None),
    ("::1", False, PRIVATE),
    ("10.1.2.3", False, PRIVATE),
    ("172.16.0.1", False, PRIVATE),
    ("192.168.0.1", False, PRIVATE),
    ("100.64.0.1", False, PRIVATE),                     # carrier-grade NAT
    ("100.127.255.254", False, PRIVATE),
    ("100.64.0.1", True, None),                         # your own network, when allowed
    ("100.100.100.200", False, LINK_LOCAL),             # Alibaba's metadata service
    ("100.100.100.200", True, LINK_LOCAL),              # ... refused even when allowed
    ("192.0.0.8", False, PRIVATE),                      # 192.0.0.0/24 special-purpose
    ("192.0.0.170", False, PRIVATE),
    ("198.18.0.1", False, PRIVATE),
    ("fec0::1", False, PRIVATE),                        # deprecated site-local
    ("fd00::1", False, PRIVATE),                        # unique-local
    ("fd00:ec2::254", True, LINK_LOCAL),                # AWS metadata over IPv6
    ("2002:7f00:1::", False, PRIVATE),                  # 6to4 wrapping 127.0.0.1
    ("2002:7f00:1::", True, None),
    ("2002:a9fe:a9fe::", False, LINK_LOCAL),            # 6to4 wrapping 169.254.169.254
    ("2002:a9fe:a9fe::", True, LINK_LOCAL),
    ("64:ff9b::7f00:1", False, PRIVATE),                # NAT64 wrapping 127.0.0.1
    ("64:ff9b::a9fe:a9fe", True, LINK_LOCAL),           # NAT64 wrapping the metadata address
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False, PRIVATE),   # Teredo, client 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:5601:5601", True, LINK_LOCAL),  # Teredo, client 169.254.169.254
    ("::ffff:127.0.0.1", False, PRIVATE),               # IPv4-mapped
    ("::ffff:169.254.169.254", True, LINK_LOCAL),
    ("169.254.169.254", True, LINK_LOCAL),
    ("fe80::1%eth0", True, LINK_LOCAL),
    ("0.0.0.0", True, NOT_PUBLIC),
    ("0.1.2.3", True, NOT_PUBLIC),
    ("::", True, NOT_PUBLIC),
    ("224.0.0.1", True, NOT_PUBLIC),
    ("ff02::1", True, NOT_PUBLIC),
    ("240.0.0.1", True, NOT_PUBLIC),
    ("255.255.255.255", True, NOT_PUBLIC),
    ("::7f00:1", True, NOT_PUBLIC),                     # IPv4-compatible (deprecated)
]


@pytest.mark.parametrize("ip,allow,expected", ADDRESSES)
def test_address_guard(ip, allow, expected):
    if expected is None:
        check_address(ip, allow_private=allow)
    else:
        with pytest.raises(ImageLabError, match=expected):
            check_address(ip, allow_private=allow)


def test_a_name_is_judged_by_every_address_it_resolves_to(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(ImageLabError, match=PRIVATE):   # resolved, never connected to
        resolve_checked("http://localhost:9/x.png", allow_private=False)
    assert resolve_checked("http://localhost:9/x.png", allow_private=True)[3] in ("127.0.0.1",
                                                                                  "::1")


def test_no_message_shows_a_url_password(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert redact_url("http://user:secret@127.0.0.1:1/x.zip") == "http://***@127.0.0.1:1/x.zip"
    assert redact_url("/data/a@b.png") == "/data/a@b.png"
    urls = ["http://user:secret@127.0.0.1:1/x.zip",       # nothing listens on port 1
            "ftp://user:secret@127.0.0.1/x.zip", "http://user:secret@/x.zip",
            "http://user:secret@127.0.0.1:99999/x.zip"]
    for url in urls:
        with pytest.raises(ImageLabError) as err:
            fetch(url, timeout=2)
        assert "secret" not in str(err.value) and str(err.value)
    monkeypatch.delenv(ALLOW_ENV)
    with pytest.raises(ImageLabError, match=PRIVATE) as err:
        fetch("http://user:secret@127.0.0.1:1/x.zip", timeout=2)
    assert "secret" not in str(err.value)


# --- inputs that used to hang ------------------------------------------------------------

def _import(home, source, *extra, limit: float):
    """Run ``datasets import SOURCE`` in a subprocess and check it ended within ``limit``
    + 2 s (a hard cap a little above stops a regression from hanging the suite); returns
    (exit code, JSON answer)."""
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "core", "datasets", "import", str(source),
                          "--name", "x", "--json", *extra], cwd=REPO, env=python_env(home),
                         capture_output=True, text=True, timeout=limit + 10)
    seconds = time.monotonic() - t0
    assert seconds < limit + 2, f"{source} took {seconds:.1f} s (limit {limit} s + 2 s)"
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


# A refused device or pipe needs no time of its own: its limit is the process start
# (about 0.5 s; a busy machine may need more).
START_S = 3.0


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_the_source_is_refused_unread(tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    code, answer = _import(tmp_path / "home", device, limit=START_S)
    assert code == 2 and "not a regular file" in answer["error"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_as_a_source_and_reported_in_a_folder(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, answer = _import(tmp_path / "home", fifo, limit=START_S)
    assert code == 2 and "not a regular file" in answer["error"]

    folder = tmp_path / "pets"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "1.png").write_bytes(png_bytes(1))
    os.mkfifo(folder / "cat" / "2.png")
    code, answer = _import(tmp_path / "home", folder, limit=START_S)
    assert code == 0 and answer["added"] == 1
    assert [(s["path"], "not a regular file" in s["reason"]) for s in answer["skipped"]] == \
        [("cat/2.png", True)]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_read_file_never_opens_a_fifo_or_reads_a_device(tmp_path):
    os.mkfifo(tmp_path / "p")
    for path in (tmp_path / "p", "/dev/zero"):
        if os.path.exists(path):
            with pytest.raises(ImageLabError, match="not a regular file"):
                read_file(path)


def _within(seconds: float, fn):
    """``fn()``'s result, run in a daemon thread so a regression fails instead of hanging."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as exc:     # re-raised in the test's thread
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still reading after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_batch_prediction_and_weights_files_refuse_devices_and_fifos(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    (tmp_path / "imgs").mkdir()
    os.mkfifo(tmp_path / "imgs" / "b.png")
    paths = [fifo, tmp_path / "imgs"] + (["/dev/zero"] if os.path.exists("/dev/zero") else [])
    rows = _within(5, lambda: list(iter_image_bytes(paths)))
    assert [(name, data, "not a regular file" in error) for name, data, error in rows] == \
        [(str(p), None, True) for p in [fifo, tmp_path / "imgs" / "b.png"] + paths[2:]]
    weights = tmp_path / "w.pt"
    os.mkfifo(weights)
    with pytest.raises(ImageLabError, match="not a regular file"):
        _within(5, lambda: file_weights(weights))


class _DripServer:
    """A loopback server that answers every request with a status line, then one byte of
    headers every 0.2 s, never ending them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        header = b"X-Drip: " + b"a" * 20 + b"\r\n"
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                n = 0
                while not self.stop.wait(0.2):
                    conn.sendall(header[n % len(header):][:1])
                    n += 1
            except OSError:
                return      # the client gave up: what the test wants

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def drip_server():
    server = _DripServer()
    yield f"http://127.0.0.1:{server.port}"
    server.close()


def test_dripped_headers_end_at_the_deadline(tmp_path, drip_server):
    code, answer = _import(tmp_path / "home", f"{drip_server}/pets.zip", "--timeout", "2",
                           "--allow-private-urls", limit=2 + START_S)
    assert code == 2 and "timed out after 2 s" in answer["error"]


def test_fetch_deadline_covers_headers_in_process(drip_server):
    t0 = time.monotonic()
    with pytest.raises(ImageLabError, match="timed out"):
        fetch(f"{drip_server}/a.png", timeout=1, allow_private=True)
    assert time.monotonic() - t0 < 1 + 2
