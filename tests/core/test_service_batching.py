"""The batching prediction service (#19 items 4 and 5): concurrent requests answered in shared
forwards, several images per request, an ONNX model, two worker processes with merged logs.

Real servers on 127.0.0.1 (``python -m core serve`` in a subprocess), as in test_service.py;
the batcher and the ONNX runner are also checked in-process on real digit images.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import threading
import time
import uuid

import numpy as np
import pytest
import torch

from core.errors import ImageLabError
from core.inference.batcher import DynamicBatcher
from core.inference.monitoring import monitoring_summary, prediction_log_files, read_prediction_log
from core.inference.predictor import decode_for_prediction, load_run_model, predict_one
from core.inference.runners import OnnxRunner, TorchRunner
from core.inference.service_requests import MAX_IMAGES
from core.store.run_paths import run_paths
from tests.core.test_cli import run_cli
from tests.core.test_service import digit_files, free_port, service_env, start
from tests.core.test_service import metric as labelled_metric

CLIENTS = 12


def metric(text: str, name: str, **labels) -> float:
    """A series' value in Prometheus text, with or without labels (0 when absent)."""
    if labels:
        return labelled_metric(text, name, **labels)
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture(scope="module")
def batching(_trained_master, tmp_path_factory):
    srv = start(_trained_master, tmp_path_factory, "--max-batch", "8", "--max-wait-ms", "20")
    yield srv
    srv.stop()


def multipart(parts: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart body of (field, filename, bytes) parts and its Content-Type."""
    boundary = uuid.uuid4().hex
    body = b""
    for field, name, data in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                 f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def concurrent_posts(port: int, bodies: list[bytes], new_connections: bool = False) -> list:
    """POST every body at once from its own thread (released together); (status, json) each."""
    gate = threading.Barrier(len(bodies))
    out: list = [None] * len(bodies)

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            gate.wait()
            headers = {"Content-Type": "image/png"}
            if new_connections:
                headers["Connection"] = "close"
            conn.request("POST", "/predict", body=bodies[i], headers=headers)
            resp = conn.getresponse()
            out[i] = (resp.status, json.loads(resp.read()))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_concurrent_requests_share_forwards_and_each_gets_its_answer(batching):
    lm = load_run_model(batching.ws, batching.run_id)
    images = digit_files(batching.ws, CLIENTS)
    expected = [predict_one(lm, decode_for_prediction(d), top_k=5) for d in images]
    seen_batched = False
    for _ in range(5):                   # a loaded machine may serialise one round; rarely all
        answers = concurrent_posts(batching.port, images)
        for (status, body), want in zip(answers, expected):
            assert status == 200, body
            assert body["label"] == want.top[0][0]
            assert [t["class"] for t in body["top"]] == [c for c, _ in want.top]
            np.testing.assert_allclose([t["probability"] for t in body["top"]],
                                       [p for _, p in want.top], atol=1e-5)
        _, text = batching.request("GET", "/metrics")
        forwards = metric(text, "imagelab_batch_size_count")
        alone = metric(text, "imagelab_batch_size_bucket", le="1")
        if forwards > alone:             # some forward took more than one image
            seen_batched = True
            break
    assert seen_batched, text
    answered = metric(text, "imagelab_requests_total", path="/predict", status="200")
    assert metric(text, "imagelab_batch_size_sum") == answered          # every image, once
    assert forwards < answered                                          # fewer forwards
    assert metric(text, "imagelab_batch_size_bucket", le="8") == forwards  # none above --max-batch
    assert metric(text, "imagelab_queue_wait_seconds_count") == answered
    assert metric(text, "imagelab_forward_seconds_count") == forwards
    assert 'model="torch"' in text and 'max_batch="8"' in text
    log = read_prediction_log(batching.ws, batching.run_id)
    assert sum(r["status"] == 200 for r in log) == answered


def test_several_images_in_one_multipart_request(batching):
    images = digit_files(batching.ws, 3)
    singles = [batching.post_image(d)[1] for d in images]
    body, ctype = multipart([("file", f"d{k}.png", d) for k, d in enumerate(images)])
    status, many = batching.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
    assert status == 200, many
    assert many["run_id"] == batching.run_id
    assert [p["filename"] for p in many["predictions"]] == ["d0.png", "d1.png", "d2.png"]
    for got, single in zip(many["predictions"], singles):      # one forward of 3 vs 3 of 1
        assert got["label"] == single["label"]
        assert [t["class"] for t in got["top"]] == [t["class"] for t in single["top"]]
        np.testing.assert_allclose([t["probability"] for t in got["top"]],
                                   [t["probability"] for t in single["top"]], atol=1e-6)

    body, ctype = multipart([("files", "one.png", images[0])])       # "files": always a list
    status, one = batching.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
    assert status == 200 and [p["label"] for p in one["predictions"]] == [singles[0]["label"]]

    before = len(read_prediction_log(batching.ws, batching.run_id))
    body, ctype = multipart([("file", "a.png", images[0]), ("file", "notes.png", b"not an image"),
                             ("file", "c.png", images[2])])
    status, bad = batching.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
    assert status == 400 and "image 2 of 3" in bad["error"] and "notes.png" in bad["error"]
    assert "not a usable image" in bad["error"]
    after = read_prediction_log(batching.ws, batching.run_id)[before:]
    assert [r["status"] for r in after] == [400]          # the good images were not answered

    body, ctype = multipart([("file", f"{k}.png", images[0]) for k in range(MAX_IMAGES + 1)])
    status, bad = batching.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
    assert status == 400 and f"at most {MAX_IMAGES}" in bad["error"]
    body, ctype = multipart([("file", "a.png", images[0]), ("file", "empty.png", b"")])
    status, bad = batching.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
    assert status == 400 and "empty file" in bad["error"] and "empty.png" in bad["error"]


def test_batcher_in_process_keeps_answers_apart_and_never_waits_alone():
    sizes = []
    batcher = DynamicBatcher(lambda x: x * 10 if x != 13 else 1 / 0,
                             lambda items: [v + 1 for v in items],
                             max_batch=4, max_wait_s=30.0, prepare_threads=3,
                             on_batch=lambda n, waits, s: sizes.append(n))
    try:
        t0 = time.perf_counter()
        assert batcher.submit(5).result(timeout=10) == 51           # alone: no 30 s wait
        assert time.perf_counter() - t0 < 10
        futures = [batcher.submit(i) for i in range(20)]
        for i, fut in enumerate(futures):
            if i == 13:
                with pytest.raises(ZeroDivisionError):
                    fut.result(timeout=60)
            else:
                assert fut.result(timeout=60) == i * 10 + 1
        assert max(sizes) <= 4 and sum(sizes) == 1 + 19
    finally:
        batcher.close()
    with pytest.raises(ImageLabError, match="max-batch"):
        DynamicBatcher(lambda x: x, lambda xs: xs, max_batch=0, max_wait_s=0)


def test_batcher_answers_an_event_loop_once_per_batch():
    """Futures of an event loop: right answers, a prepare failure only for its input, a
    cancelled caller skipped, and the loop woken once per batch rather than once per answer."""
    batches = []
    batcher = DynamicBatcher(lambda x: x * 10 if x != 7 else 1 / 0,
                             lambda items: [v + 1 for v in items],
                             max_batch=8, max_wait_s=0.2, prepare_threads=2,
                             on_batch=lambda n, waits, s: batches.append(n))

    async def main():
        loop = asyncio.get_running_loop()
        wakeups = []
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a, **k: (wakeups.append(a[0]), real(*a, **k))[1]
        futures = [batcher.submit(i, loop) for i in range(16)]
        futures[3].cancel()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        prepared = await asyncio.wrap_future(batcher.prepare(2))
        direct = await batcher.submit_prepared(prepared, loop)
        return outcomes, direct, wakeups

    got = {}                     # a loop of its own thread: the browser tests' sync Playwright
    runner = threading.Thread(   # leaves an event loop running in the main thread
        target=lambda: got.update(result=asyncio.run(main())))
    try:
        runner.start()
        runner.join(60)
    finally:
        batcher.close()
    assert "result" in got, "the event loop's run failed or hung"
    outcomes, direct, wakeups = got["result"]
    for i, got in enumerate(outcomes):
        if i == 3:
            assert isinstance(got, asyncio.CancelledError)
        elif i == 7:
            assert isinstance(got, ZeroDivisionError)
        else:
            assert got == i * 10 + 1
    assert direct == 21
    settles = [f for f in wakeups if getattr(f, "__name__", "") == "_settle_on_loop"]
    # one wake-up per batch (and one for the failed prepare), fewer than the 16 answers
    assert len(settles) <= len(batches) + 1 < 16


class NhwcProbs(torch.nn.Module):
    """The graph the export issue asks for: uint8 N×H×W×C in, calibrated probabilities out."""

    def __init__(self, lm):
        super().__init__()
        self.model, self.t = lm.model, lm.temperature
        self.register_buffer("scale", lm._scale.clone())
        self.register_buffer("shift", lm._shift.clone())

    def forward(self, pixels):
        x = pixels.permute(0, 3, 1, 2).float() * self.scale + self.shift
        return torch.softmax(self.model(x) / self.t, dim=1)


@pytest.mark.parametrize("graph", ["float NCHW logits", "uint8 NHWC probs"])
def test_onnx_runner_feeds_the_graph_as_its_input_says(trained_workspace, tmp_path, graph):
    ws, run_id = trained_workspace
    lm = load_run_model(ws, run_id)
    path = tmp_path / "model.onnx"
    if graph.startswith("uint8"):
        module, example = NhwcProbs(lm).eval(), torch.zeros(2, 8, 8, 1, dtype=torch.uint8)
        names = (["images"], ["probs"])
    else:
        module, example = lm.model, torch.zeros(2, 1, 8, 8)
        names = (["images"], ["logits"])
    torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=names[0],
                      output_names=names[1], dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
                      verbose=False)
    runner = OnnxRunner(path, lm)
    assert runner.uint8 == graph.startswith("uint8") and runner.nhwc == runner.uint8
    images = [decode_for_prediction(d) for d in digit_files(ws, 10)]
    torch_runner = TorchRunner(lm)
    got = runner.probabilities([runner.prepare(img) for img in images])
    want = torch_runner.probabilities([torch_runner.prepare(img) for img in images])
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(want[0], predict_one(lm, images[0]).probabilities, atol=1e-6)


def test_onnx_model_is_exported_and_served(_trained_master, tmp_path_factory):
    srv = start(_trained_master, tmp_path_factory, "--model", "onnx")
    try:
        assert (srv.ws.root / "exports" / srv.run_id / "model.onnx").exists()
        assert srv.request("GET", "/health")[1]["model"] == "onnx"
        lm = load_run_model(srv.ws, srv.run_id)
        images = digit_files(srv.ws, 6)
        for (status, body), data in zip(concurrent_posts(srv.port, images), images):
            want = predict_one(lm, decode_for_prediction(data))
            assert status == 200 and body["label"] == want.top[0][0], body
            assert body["confidence"] == pytest.approx(want.top[0][1], abs=1e-4)
        assert srv.post_image(b"no image")[0] == 400
    finally:
        code, err = srv.stop()
    assert code == 0, err
    out = run_cli(srv.root, "serve", srv.run_id, "--model", "int8", "--port", str(free_port()),
                  env=service_env(srv.root))
    assert out.returncode == 2 and "model-int8.onnx does not exist" in out.stderr
    assert "--precision int8" in out.stderr and "Traceback" not in out.stderr


def test_two_workers_write_their_own_logs_and_monitoring_merges_them(_trained_master,
                                                                     tmp_path_factory):
    srv = start(_trained_master, tmp_path_factory, "--workers", "2")
    try:
        images = digit_files(srv.ws, 8)
        sent, deadline = 0, time.monotonic() + 60
        while len(prediction_log_files(srv.ws, srv.run_id)) < 2:     # until both have answered
            assert time.monotonic() < deadline, "one worker answered every request"
            answers = concurrent_posts(srv.port, images, new_connections=True)
            assert all(status == 200 for status, _ in answers), answers
            sent += len(images)
        assert srv.post_image(b"no image")[0] == 400
    finally:
        code, err = srv.stop()
    assert code == 0 and "service stopped" in err, err
    paths = run_paths(srv.ws, srv.run_id)
    files = prediction_log_files(srv.ws, srv.run_id)
    assert files == [paths.prediction_log, paths.service_dir / "predictions-1.jsonl"]
    per_file = [len(f.read_text().splitlines()) for f in files]
    assert min(per_file) > 0 and sum(per_file) == sent + 1
    log = read_prediction_log(srv.ws, srv.run_id)
    assert len(log) == sent + 1 and [r["ts"] for r in log] == sorted(r["ts"] for r in log)
    summary = monitoring_summary(srv.ws, srv.run_id, window_s=600)
    assert (summary["requests"], summary["predictions"], summary["errors"]) == (sent + 1, sent, 1)


def test_bad_batching_settings_are_refused(tmp_path):
    env = service_env(tmp_path / "ws")
    for args, words in ((["--max-batch", "0"], "--max-batch"),
                        (["--max-wait-ms", "-1"], "--max-wait-ms"),
                        (["--workers", "0"], "--workers"), (["--threads", "0"], "--threads")):
        out = run_cli(tmp_path / "ws", "serve", "nope", "--port", str(free_port()), *args, env=env)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
