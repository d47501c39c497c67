"""The prediction service as a client sees it: `python -m core serve` in a subprocess, real
HTTP on loopback, real digit PNGs from the workspace, bad inputs included."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter

import numpy as np
import pytest

from core.data.catalog import dataset_info
from core.inference.monitoring import monitoring_summary, prediction_log_path, read_prediction_log
from core.inference.predictor import decode_for_prediction, load_run_model, predict_one
from core.store.workspace import open_workspace
from tests.conftest import REPO, copy_workspace, python_env
from tests.core.test_cli import run_cli

MAX_BODY = 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(root, **extra) -> dict:
    """The CLI's environment without a developer's own API key or log limit, plus ``extra``."""
    env = python_env(root)
    env.pop("IMAGELAB_API_KEY", None)
    env.pop("IMAGELAB_PREDICTION_LOG_MAX_BYTES", None)
    return {**env, **extra}


class Server:
    def __init__(self, root, run_id, *args, env=None):
        self.root, self.run_id, self.port = root, run_id, free_port()
        self.ws = open_workspace(root)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core", "serve", run_id, "--port", str(self.port), *args],
            cwd=REPO, env=env or service_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                status, body = self.request("GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not answer /health in 60 s"
            time.sleep(0.2)

    @property
    def host(self) -> str:
        """The Host header a client of this server sends."""
        return f"127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, **kw):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {}, **kw)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("content-type", "")
            return resp.status, json.loads(data) if "json" in ctype else data.decode()
        finally:
            conn.close()

    def post_image(self, data, query="", ctype="image/png"):
        return self.request("POST", "/predict" + query, body=data, headers={"Content-Type": ctype})

    def post_multipart(self, data, field="file", query=""):
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                f"filename=\"digit.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + data + \
            f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", "/predict" + query, body=body,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl+C sends
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, self.proc.stderr.read()


def start(_trained_master, tmp_path_factory, *args, env=None) -> Server:
    master, run_id = _trained_master
    root = tmp_path_factory.mktemp("served") / "ws"
    copy_workspace(master, root)
    return Server(root, run_id, *args, env=env)


@pytest.fixture(scope="module")
def server(_trained_master, tmp_path_factory):
    srv = start(_trained_master, tmp_path_factory, "--max-body-bytes", str(MAX_BODY))
    yield srv
    srv.stop()


def digit_files(ws, n):
    with ws.db() as conn:
        rows = conn.execute("SELECT i.path FROM images i JOIN datasets d ON d.id = i.dataset_id "
                            "WHERE d.name = 'digits' AND i.split = 'test' ORDER BY i.id LIMIT ?",
                            (n,)).fetchall()
    return [ws.resolve(r["path"]).read_bytes() for r in rows]


def test_predict_raw_and_multipart_answer_like_the_model(server):
    lm = load_run_model(server.ws, server.run_id)
    for data in digit_files(server.ws, 6):
        assert len(data) < MAX_BODY
        expected = predict_one(lm, decode_for_prediction(data), top_k=5)
        status, raw = server.post_image(data)
        assert status == 200, raw
        assert raw["run_id"] == server.run_id and raw["label"] == expected.top[0][0]
        assert [t["class"] for t in raw["top"]] == [c for c, _ in expected.top]
        np.testing.assert_allclose([t["probability"] for t in raw["top"]],
                                   [p for _, p in expected.top], atol=1e-6)
        assert raw["confidence"] == raw["top"][0]["probability"] and raw["latency_ms"] > 0
        status, multi = server.post_multipart(data)
        assert status == 200, multi
        assert multi["label"] == raw["label"] and multi["top"] == raw["top"]


def test_threshold_answers_unknown(server):
    data = digit_files(server.ws, 1)[0]
    _, first = server.post_image(data)
    c = first["confidence"]
    assert c < 1
    status, at = server.post_image(data, f"?threshold={c!r}")
    assert status == 200 and at["label"] == first["label"]          # >= threshold: confident
    status, above = server.post_image(data, f"?threshold={(c + 1) / 2!r}")
    assert status == 200 and above["label"] == "unknown" and above["confidence"] == c
    status, bad = server.post_image(data, "?threshold=2")
    assert status == 422 and "threshold" in bad["error"]


def test_bad_inputs_get_a_clear_4xx(server):
    text = (REPO / "README.md").read_bytes()[:2000]
    status, body = server.post_image(text)
    assert status == 400 and "not a usable image" in body["error"]
    status, body = server.post_multipart(text)
    assert status == 400 and "not a usable image" in body["error"]
    status, body = server.post_image(text, ctype="text/plain")
    assert status == 415 and "Content-Type" in body["error"]
    status, body = server.post_image(b"")
    assert status == 400 and "empty" in body["error"]
    status, body = server.post_multipart(b"")
    assert status == 400 and "empty" in body["error"]
    status, body = server.post_multipart(digit_files(server.ws, 1)[0], field="image")
    assert status == 422 and "'file'" in body["error"]
    status, body = server.request("POST", "/predict", body=b"--x\r\nbroken",
                                  headers={"Content-Type": "multipart/form-data"})
    assert status == 400 and "multipart" in body["error"]


def test_oversized_bodies_are_refused(server):
    big = bytes(range(256)) * (MAX_BODY // 256 + 8)
    status, body = server.post_image(big)
    assert status == 413 and f"{MAX_BODY:,}" in body["error"]

    # A huge declared length is refused from the headers, before any body byte is sent.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: " + server.host.encode()
                  + b"\r\nContent-Type: image/png\r\nContent-Length: 10000000000\r\n\r\n")
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 413") and b"body too large" in reply

    # Chunked: no length at all, so the bytes are counted while reading.
    chunks = [big[i:i + 1000] for i in range(0, len(big), 1000)]
    status, body = server.request("POST", "/predict", body=iter(chunks), encode_chunked=True,
                                  headers={"Content-Type": "image/png",
                                           "Transfer-Encoding": "chunked"})
    assert status == 413 and "more than" in body["error"]

    # A short, lying Content-Length: only the declared bytes are read, which are no image.
    png = digit_files(server.ws, 1)[0]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: " + server.host.encode()
                  + b"\r\nContent-Type: image/png\r\nContent-Length: 20\r\nConnection: close\r\n\r\n" + png)
        reply = read_all(s)
    assert reply.startswith(b"HTTP/1.1 400") and b"not a usable image" in reply


def read_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_log_and_monitoring_count_what_was_sent(_trained_master, tmp_path_factory):
    srv = start(_trained_master, tmp_path_factory, "--max-body-bytes", str(MAX_BODY))
    try:
        lm = load_run_model(srv.ws, srv.run_id)
        images = digit_files(srv.ws, 12)
        expected = [predict_one(lm, decode_for_prediction(d)) for d in images]
        answers = []
        for i, data in enumerate(images):          # every third asks for a threshold of 1
            query = "?threshold=1" if i % 3 == 0 else ""
            status, body = srv.post_image(data, query) if i % 2 else srv.post_multipart(data, query=query)
            assert status == 200, body
            answers.append(body)
        assert srv.post_image(b"not an image")[0] == 400
        assert srv.post_image(b"")[0] == 400
        assert srv.post_image(b"\0" * (MAX_BODY + 1))[0] == 413
        n_ok, n_err = len(images), 3
        labels = Counter(a["label"] for a in answers)
        n_unknown = labels["unknown"]
        assert n_unknown == sum(1 for i, e in enumerate(expected) if i % 3 == 0 and e.top[0][1] < 1)

        status, text = srv.request("GET", "/metrics")
        assert status == 200
        assert metric(text, "imagelab_requests_total", path="/predict", status="200") == n_ok
        assert metric(text, "imagelab_requests_total", path="/predict", status="400") == 2
        assert metric(text, "imagelab_requests_total", path="/predict", status="413") == 1
        assert metric(text, "imagelab_errors_total", path="/predict") == n_err
        assert metric(text, "imagelab_request_duration_seconds_count", path="/predict") == n_ok + n_err
        buckets = [float(v) for v in re.findall(
            r'^imagelab_request_duration_seconds_bucket\{path="/predict",le="[^"]+"\} (\S+)$', text, re.M)]
        assert buckets == sorted(buckets) and buckets[-1] == n_ok + n_err
        for label, n in labels.items():
            assert metric(text, "imagelab_predictions_total", label=label) == n

        log = read_prediction_log(srv.ws, srv.run_id)
        assert len(log) == n_ok + n_err == len(prediction_log_path(srv.ws, srv.run_id)
                                                .read_text().splitlines())
        assert [r["label"] for r in log if r["status"] == 200] == [a["label"] for a in answers]
        assert sorted(r["status"] for r in log if r["status"] != 200) == [400, 400, 413]

        s = monitoring_summary(srv.ws, srv.run_id, window_s=600)
        assert (s["requests"], s["predictions"], s["errors"]) == (n_ok + n_err, n_ok, n_err)
        assert s["errors_by_status"] == {"400": 2, "413": 1}
        assert s["request_rate_per_min"] == pytest.approx((n_ok + n_err) / 10)
        assert s["unknown"] == n_unknown and s["unknown_share"] == pytest.approx(n_unknown / n_ok)
        lat = [a["latency_ms"] for a in answers]
        for q in (50, 90, 99):
            assert s["latency_ms"][f"p{q}"] == pytest.approx(np.percentile(lat, q), abs=2e-3)
        tops = Counter(e.top[0][0] for e in expected)
        assert s["predicted_counts"] == {c: tops.get(c, 0) for c in lm.classes}
        assert sum(b["requests"] for b in s["over_time"]) == n_ok + n_err
        assert sum(sum(b["counts"].values()) for b in s["over_time"]) == n_ok
        info = dataset_info(srv.ws, "digits")
        assert s["training_counts"] == {r["class"]: r["train"] for r in info.per_class}
        assert sum(s["training_share"].values()) == pytest.approx(1.0)
        assert monitoring_summary(srv.ws, srv.run_id, window_s=600,
                                  now=time.time() + 3600)["requests"] == 0
    finally:
        code, err = srv.stop()
    assert code == 0 and "service stopped" in err          # Ctrl+C exits cleanly


def test_serve_refuses_network_hosts_and_unknown_runs(tmp_path):
    env = service_env(tmp_path / "ws")
    out = run_cli(tmp_path / "ws", "serve", "nope", "--host", "0.0.0.0", env=env)
    assert out.returncode == 2 and "--allow-network" in out.stderr
    out = run_cli(tmp_path / "ws", "serve", "nope", "--port", str(free_port()), env=env)
    assert out.returncode == 2 and "unknown run" in out.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = run_cli(tmp_path / "ws", "serve", "nope", "--port", str(busy.getsockname()[1]),
                      env=env)
    assert out.returncode == 2 and "choose another --port" in out.stderr
