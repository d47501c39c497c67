"""The prediction service's guards (issue #17, items 8 and 9): the API key, the Host allow-list,
foreign Origins, the prediction log's rotation, and run ids that would leave ``runs/``.

Real servers on 127.0.0.1 only (``python -m core serve`` in a subprocess), as in test_service.py.
"""

from __future__ import annotations

import http.client
import json
import shutil

import pytest

from core.errors import ImageLabError, NotFoundError
from core.inference.monitoring import prediction_log_files, read_prediction_log
from core.inference.prediction_log import PredictionLog
from core.inference.predictor import load_run_model
from core.inference.service import create_app
from core.inference.service_security import check_allowed_host, check_api_key, host_allowed
from core.store.run_paths import checked_run_id, run_paths
from core.store.workspace import open_workspace
from core.training.runs import get_run
from tests.conftest import copy_workspace
from tests.core.test_cli import run_cli
from tests.core.test_service import Server, digit_files, free_port, service_env

KEY = "k3y-for-tests-0123456789abcdef"
LOG_LIMIT = 700                   # bytes: three or four log lines per file


@pytest.fixture(scope="module")
def keyed(_trained_master, tmp_path_factory):
    master, run_id = _trained_master
    root = tmp_path_factory.mktemp("keyed") / "ws"
    copy_workspace(master, root)
    srv = Server(root, run_id, "--allowed-host", "imagelab.test", "--log-max-bytes", str(LOG_LIMIT),
                 env=service_env(root, IMAGELAB_API_KEY=KEY))
    yield srv
    srv.stop()


def call(srv, method, path, *, key=None, host=None, origin=None, body=None, auth=None):
    """A request with exactly the given Host, Origin and Authorization headers."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", srv.host if host is None else host)
        if origin is not None:
            conn.putheader("Origin", origin)
        if auth or key:
            conn.putheader("Authorization", auth or f"Bearer {key}")
        if body is not None:
            conn.putheader("Content-Type", "image/png")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        parsed = json.loads(data) if "json" in resp.getheader("content-type", "") else data.decode()
        return resp.status, parsed, resp
    finally:
        conn.close()


def test_api_key_is_required_except_on_health(keyed):
    png = digit_files(keyed.ws, 1)[0]
    status, body, resp = call(keyed, "POST", "/predict", body=png)
    assert status == 401 and "Authorization: Bearer" in body["error"]
    assert resp.getheader("WWW-Authenticate") == "Bearer"
    assert call(keyed, "POST", "/predict", body=png, key=KEY[:-1] + "X")[0] == 401
    assert call(keyed, "POST", "/predict", body=png, auth=f"Basic {KEY}")[0] == 401
    assert call(keyed, "GET", "/metrics")[0] == 401
    assert call(keyed, "GET", "/metrics", key="wrong")[0] == 401
    status, body, _ = call(keyed, "POST", "/predict", body=png, key=KEY)
    assert status == 200 and body["run_id"] == keyed.run_id
    status, text, _ = call(keyed, "GET", "/metrics", key=KEY)
    assert status == 200 and 'imagelab_requests_total{path="/predict",status="401"}' in text
    status, body, _ = call(keyed, "GET", "/health")          # open, for probes
    assert status == 200 and body["status"] == "ok"


def test_hosts_outside_the_allow_list_and_foreign_origins_are_refused(keyed):
    png = digit_files(keyed.ws, 1)[0]
    for host in ("evil.example", f"evil.example:{keyed.port}", "127.0.0.1",
                 f"127.0.0.1:{keyed.port + 1}", f"localhost.:{keyed.port}", ""):
        status, body, _ = call(keyed, "POST", "/predict", body=png, key=KEY, host=host)
        assert status == 400 and "Host" in body["error"], host
        assert call(keyed, "GET", "/health", host=host)[0] == 400, host
    for host in (f"localhost:{keyed.port}", f"[::1]:{keyed.port}", "imagelab.test",
                 "IMAGELAB.test:8123"):
        assert call(keyed, "POST", "/predict", body=png, key=KEY, host=host)[0] == 200, host
    for origin in ("http://evil.example", f"http://evil.example:{keyed.port}", "null",
                   f"file://127.0.0.1:{keyed.port}"):
        status, body, _ = call(keyed, "POST", "/predict", body=png, key=KEY, origin=origin)
        assert status == 403 and "Origin" in body["error"], origin
    assert call(keyed, "POST", "/predict", body=png, key=KEY,
                origin=f"http://127.0.0.1:{keyed.port}")[0] == 200
    # refusals are counted in /metrics but never written to the prediction log
    assert all(r["status"] == 200 for r in read_prediction_log(keyed.ws, keyed.run_id))


def test_prediction_log_rotates_at_its_limit_and_keeps_the_newest(keyed):
    png = digit_files(keyed.ws, 1)[0]
    for _ in range(12):
        assert call(keyed, "POST", "/predict", body=png, key=KEY)[0] == 200
    assert call(keyed, "POST", "/predict", body=b"not an image", key=KEY)[0] == 400
    paths = run_paths(keyed.ws, keyed.run_id)
    files = prediction_log_files(keyed.ws, keyed.run_id)
    assert files == [paths.prediction_log_backup(1), paths.prediction_log]
    assert not paths.prediction_log_backup(2).exists()             # one rotated file kept
    for f in files:
        assert 0 < f.stat().st_size <= LOG_LIMIT
    records = read_prediction_log(keyed.ws, keyed.run_id)
    live = [json.loads(line) for line in paths.prediction_log.read_text().splitlines()]
    assert records[-len(live):] == live and live[-1]["status"] == 400   # the newest line is kept
    ts = [r["ts"] for r in records]
    assert ts == sorted(ts) and len(records) < 12 + 1                   # the oldest were dropped


def test_prediction_log_class_rotation(tmp_path):
    log = PredictionLog(tmp_path / "p.jsonl", max_bytes=100, backups=2)
    for i in range(20):
        log.append({"i": i, "pad": "x" * 20})
    lines = [[json.loads(x)["i"] for x in p.read_text().splitlines()]
             for p in (log.backup(2), log.backup(1), log.path)]
    assert sum(lines, []) == list(range(20))[-sum(map(len, lines)):]
    assert lines[-1][-1] == 19 and not log.backup(3).exists()
    with pytest.raises(ImageLabError):
        PredictionLog(tmp_path / "q.jsonl", max_bytes=0)


def test_host_matching():
    allowed = frozenset({"127.0.0.1:8000", "[::1]:8000", "example.org"})
    assert host_allowed("127.0.0.1:8000", allowed) and host_allowed("[::1]:8000", allowed)
    assert host_allowed("Example.ORG:9", allowed) and host_allowed("example.org", allowed)
    for bad in ("127.0.0.1", "127.0.0.1:8001", "[::1]", "evil.org:8000", "", "example.org.x"):
        assert not host_allowed(bad, allowed), bad
    for bad in ("http://x", "*", "a b", "x:port", ""):
        with pytest.raises(ImageLabError):
            check_allowed_host(bad)


def test_allow_network_needs_a_key(tmp_path):
    root = tmp_path / "ws"
    out = run_cli(root, "serve", "nope", "--host", "0.0.0.0", "--allow-network",
                  "--port", str(free_port()), env=service_env(root))
    assert out.returncode == 2 and "needs an API key" in out.stderr and "IMAGELAB_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr
    with pytest.raises(ImageLabError, match="at least 16"):
        check_api_key("short")
    assert check_api_key(KEY) == KEY


def test_run_ids_cannot_leave_runs(_trained_master, tmp_path):
    master, run_id = _trained_master
    root = tmp_path / "ws"
    copy_workspace(master, root)
    ws = open_workspace(root)
    outside = tmp_path / "x"                         # runs/../../x
    outside.mkdir()
    shutil.copy(run_paths(ws, run_id).best, outside / "best.pt")
    before = sorted(p for p in tmp_path.rglob("*") if root not in p.parents)

    out = run_cli(root, "serve", "../../x", "--port", str(free_port()), env=service_env(root))
    assert out.returncode == 2 and "invalid run id" in out.stderr and "Traceback" not in out.stderr
    out = run_cli(root, "runs", "show", "../x", env=service_env(root))
    assert out.returncode == 2 and "invalid run id" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p for p in tmp_path.rglob("*") if root not in p.parents) == before

    for bad in ("../../x", "..", "a/b", "/etc", ".hidden", "", "x" * 65, None):
        with pytest.raises(ImageLabError, match="invalid run id"):
            checked_run_id(bad)
    with pytest.raises(ImageLabError, match="invalid run id"):
        load_run_model(ws, "../../x")
    with pytest.raises(ImageLabError, match="invalid run id"):
        create_app(ws, "../../x")
    with pytest.raises(ImageLabError, match="invalid run id"):
        get_run(ws, "../x")
    # a folder under runs/ that the runs table does not know is not loaded either
    stray = "20990101-000000-abcd"
    run_paths(ws, stray).folder.mkdir()
    shutil.copy(outside / "best.pt", run_paths(ws, stray).best)
    with pytest.raises(NotFoundError, match="unknown run"):
        load_run_model(ws, stray)
    assert checked_run_id(run_id, ws) == run_id
