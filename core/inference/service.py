"""The prediction HTTP service behind ``python -m core serve`` (FastAPI on uvicorn).

``create_app(ws, run_id)`` loads the run's model once and returns an app with:

- ``POST /predict``: the image as the raw body (``Content-Type: image/*`` or
  ``application/octet-stream``) or as the multipart field ``file``. Answers
  ``{run_id, label, confidence, top: [{class, probability}], latency_ms}``; ``label`` is
  ``"unknown"`` below the threshold (``?threshold=`` overrides the server's). Several images
  in one multipart request (the field ``file`` repeated, or ``files``) are answered in order
  as ``{run_id, predictions: [{filename, label, confidence, top, latency_ms}, ...]}``; one bad
  image refuses the whole request, naming it. Bad input gets ``{"error": ...}`` with 400 (not
  an image, empty), 413 (too large: the ``Content-Length`` is checked first and the bytes are
  counted while reading), 415 (content type) or 422 (bad parameters); see
  ``core.inference.service_requests``.
- ``GET /health``: ``{"status": "ok", run_id, classes, model}``.
- ``GET /metrics``: Prometheus text (``core.inference.service_metrics``): requests by path
  and status, errors, latency, answers by label, the batch-size histogram, queue waits and
  forward times.

Requests are batched (``core.inference.batcher``): each image is decoded and resized on a
prepare thread, queued, and run with whatever else is queued in one forward of at most
``max_batch`` images, after waiting at most ``max_wait_ms`` for more; the event loop only
reads requests and writes answers. The model is the run's PyTorch model or one of its ONNX
exports (``model="onnx"|"int8"``, ``core.inference.runners``).

Every image answered appends one JSON line to the worker's prediction log
(``runs/<run_id>/service/predictions.jsonl``, ``predictions-<slot>.jsonl`` for a second
worker process, ...; rotated at a size limit, ``core.inference.prediction_log``), a refused
request one line; ``core.inference.monitoring`` merges them. Before any route,
``core.inference.service_security`` checks the Host header (400), a browser's Origin (403)
and, when one is configured, the API key (401). ``app_from_env`` is the factory that each
worker process of ``serve --workers N`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterable

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from core.data.decode import MAX_FILE_BYTES
from core.errors import ImageLabError
from core.inference.batcher import DynamicBatcher
from core.inference.monitoring import prediction_log_path
from core.inference.prediction_log import (
    DEFAULT_LOG_MAX_BYTES,
    PredictionLog,
    claim_log_slot,
    worker_log_path,
)
from core.inference.predictor import LoadedModel, decode_for_prediction, load_run_model
from core.inference.runners import load_runner
from core.inference.service_metrics import Metrics, MetricsMiddleware
from core.inference.service_requests import RequestError, parse_threshold, request_images
from core.inference.service_security import (
    LOOPBACK_HOSTS,
    SecurityMiddleware,
    check_allowed_host,
    check_api_key,
)
from core.store.run_paths import checked_run_id
from core.store.workspace import Workspace, open_workspace

SERVE_CONFIG_ENV = "IMAGELAB_SERVE_CONFIG"
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_WAIT_MS = 5.0
MAX_BATCH_LIMIT = 1024


class PredictionService:
    """The model side of the app: the runner, the batcher and this worker's prediction log.

    ``start`` (the app's startup) claims a log slot and starts the batcher's threads; ``stop``
    (its shutdown) finishes what was submitted and gives the slot back."""

    def __init__(self, lm: LoadedModel, runner, metrics: Metrics, *, top_k: int, max_batch: int,
                 max_wait_ms: float, log_max_bytes: int, log_backups: int, prepare_threads: int):
        self.lm, self.runner, self.metrics, self.top_k = lm, runner, metrics, top_k
        self.max_batch, self.max_wait_ms, self.prepare_threads = max_batch, max_wait_ms, prepare_threads
        self.log_limits = (log_max_bytes, log_backups)
        self.log: PredictionLog | None = None
        self.batcher: DynamicBatcher | None = None
        self._slot_fd: int | None = None

    def start(self, log_base) -> None:
        """Claim a worker slot for the log next to ``log_base`` and start the batcher."""
        slot, self._slot_fd = claim_log_slot(log_base.parent)
        self.log = PredictionLog(worker_log_path(log_base, slot), *self.log_limits)
        self.metrics.info["slot"] = slot
        self.batcher = DynamicBatcher(self.prepare, self.run_batch, max_batch=self.max_batch,
                                      max_wait_s=self.max_wait_ms / 1000,
                                      prepare_threads=self.prepare_threads,
                                      on_batch=self.metrics.observe_batch)

    def stop(self) -> None:
        """Answer what was submitted, stop the threads, give the log slot back."""
        if self.batcher is not None:
            self.batcher.close()
        if self._slot_fd is not None:
            os.close(self._slot_fd)
            self._slot_fd = None

    def prepare(self, raw: tuple[bytes, float, float]) -> tuple:
        """On a prepare thread: (bytes, t0, threshold) → (model input row, t0, threshold);
        ``ImageLabError`` for bytes that are no usable image."""
        data, t0, threshold = raw
        return self.runner.prepare(decode_for_prediction(data)), t0, threshold

    def run_batch(self, items: list[tuple]) -> list[dict]:
        """On the forward thread: one forward for every queued item, their answers logged."""
        probs = self.runner.probabilities([row for row, _, _ in items])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :self.top_k]
        now, ts = time.perf_counter(), time.time()
        classes, answers, records = self.lm.classes, [], []
        for (_, t0, threshold), p, best in zip(items, probs, order):
            top = [(classes[i], float(p[i])) for i in best]
            confident = top[0][1] >= threshold
            label = top[0][0] if confident else "unknown"
            latency_ms = (now - t0) * 1000
            records.append({"ts": ts, "status": 200, "label": label, "top_class": top[0][0],
                            "confidence": top[0][1], "latency_ms": round(latency_ms, 3),
                            "unknown": not confident, "error": None})
            answers.append({"label": label, "confidence": top[0][1],
                            "top": [{"class": c, "probability": q} for c, q in top],
                            "latency_ms": latency_ms})
        self.log.append_many(records)
        self.metrics.count_predictions([a["label"] for a in answers])
        return answers

    async def predict(self, images: list[bytes], names: list[str | None], t0: float,
                      threshold: float) -> list[dict]:
        """The answers for a request's images, in order; ``RequestError`` (400) for an image
        that is not usable. Several images are all decoded before any is queued, so a bad
        one refuses the request before the model has answered (and logged) the others."""
        loop = asyncio.get_running_loop()
        if len(images) == 1:
            try:
                return [await self.batcher.submit((images[0], t0, threshold), loop)]
            except ImageLabError as exc:
                raise RequestError(400, str(exc)) from None
        prepared = await asyncio.gather(
            *(asyncio.wrap_future(self.batcher.prepare((d, t0, threshold))) for d in images),
            return_exceptions=True)
        for k, item in enumerate(prepared):
            if isinstance(item, ImageLabError):
                name = f" ({names[k]!r})" if names[k] else ""
                raise RequestError(400, f"image {k + 1} of {len(images)}{name}: {item}")
            if isinstance(item, BaseException):
                raise item
        futures = [self.batcher.submit_prepared(item, loop) for item in prepared]
        return list(await asyncio.gather(*futures))


def create_app(ws: Workspace, run_id: str, *, threshold: float = 0.0,
               max_body_bytes: int = MAX_FILE_BYTES, top_k: int = 5,
               api_key: str | None = None, allowed_hosts: Iterable[str] | None = None,
               log_max_bytes: int = DEFAULT_LOG_MAX_BYTES, log_backups: int = 1,
               model: str = "torch", max_batch: int = DEFAULT_MAX_BATCH,
               max_wait_ms: float = DEFAULT_MAX_WAIT_MS, threads: int | None = None) -> FastAPI:
    """The FastAPI app serving run ``run_id``; the model is loaded here, once.

    ``POST /predict`` answers the ``top_k`` classes, ``unknown`` below ``threshold`` (0–1;
    a request's ``?threshold=`` overrides it), and refuses bodies over ``max_body_bytes``
    with 413; ``GET /health`` and ``GET /metrics`` (Prometheus) report on it. ``model`` is
    ``torch`` (the run's ``best.pt``), ``onnx`` or ``int8`` (its ONNX exports); forwards take
    at most ``max_batch`` images, gathered for at most ``max_wait_ms``; ``threads`` caps
    the forward's threads (a worker of several). Every prediction is appended to this
    worker's prediction log, rotated past ``log_max_bytes`` keeping ``log_backups`` older
    files. ``allowed_hosts`` (default: ``LOOPBACK_HOSTS`` on any port) and ``api_key``
    (None: no key) guard every request (``SecurityMiddleware``).

    ``run_id`` must be a run of the runs table (``checked_run_id``): the model and the log stay
    under ``runs/``. Raises ``ImageLabError`` for a malformed or unknown run id, a threshold
    outside [0, 1], ``max_body_bytes`` below 1, ``max_batch`` outside 1–1024, a negative
    ``max_wait_ms``, a short API key, a bad allow-list entry, or a model that cannot load
    (an ONNX file that is missing, for int8, or does not fit the run).
    """
    run_id = checked_run_id(run_id, ws)
    if not 0 <= threshold <= 1:
        raise ImageLabError("--threshold must be between 0 and 1")
    if max_body_bytes < 1:
        raise ImageLabError("--max-body-bytes must be at least 1")
    if not 1 <= max_batch <= MAX_BATCH_LIMIT:
        raise ImageLabError(f"--max-batch must be between 1 and {MAX_BATCH_LIMIT}")
    if not max_wait_ms >= 0:
        raise ImageLabError("--max-wait-ms must be 0 or more")
    if api_key is not None:
        check_api_key(api_key)
    hosts = frozenset(check_allowed_host(h) for h in (allowed_hosts or LOOPBACK_HOSTS))
    PredictionLog(prediction_log_path(ws, run_id), log_max_bytes, log_backups)  # checks limits
    if threads:
        torch.set_num_threads(threads)
    lm = load_run_model(ws, run_id)
    runner = load_runner(ws, run_id, lm, model, threads)
    metrics = Metrics(max_batch, {"run_id": run_id, "model": runner.kind, "max_batch": max_batch,
                                  "max_wait_ms": max_wait_ms, "pid": os.getpid()})
    service = PredictionService(lm, runner, metrics, top_k=top_k, max_batch=max_batch,
                                max_wait_ms=max_wait_ms, log_max_bytes=log_max_bytes,
                                log_backups=log_backups,
                                prepare_threads=max(2, threads or os.cpu_count() or 2))
    log_base = prediction_log_path(ws, run_id)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        service.start(log_base)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="ImageLab prediction service", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model, app.state.metrics, app.state.service = lm, metrics, service
    app.add_middleware(SecurityMiddleware, allowed_hosts=hosts, api_key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)   # outermost: counts refusals too

    @app.post("/predict")
    async def predict(request: Request):
        t0 = time.perf_counter()
        try:
            thr = parse_threshold(request, threshold)
            req = await request_images(request, max_body_bytes)
            answers = await service.predict(req.images, req.names, t0, thr)
        except RequestError as exc:
            latency_ms = (time.perf_counter() - t0) * 1000
            await run_in_threadpool(service.log.append, {
                "ts": time.time(), "status": exc.status, "label": None, "top_class": None,
                "confidence": None, "latency_ms": round(latency_ms, 3), "unknown": False,
                "error": str(exc)})
            # Refusing before the body is read: close the connection rather than drain it.
            headers = {"Connection": "close"} if exc.status == 413 else None
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)
        if req.many:
            return JSONResponse({"run_id": run_id, "predictions": [
                {"filename": name, **a} for name, a in zip(req.names, answers)]})
        return JSONResponse({"run_id": run_id, **answers[0]})

    @app.get("/health")
    async def health():
        return {"status": "ok", "run_id": run_id, "classes": lm.classes, "model": runner.kind}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def app_from_env() -> FastAPI:
    """The app factory each worker process of ``serve --workers N`` calls (uvicorn imports it
    by name): ``create_app`` with the settings ``serve`` put in ``$IMAGELAB_SERVE_CONFIG``
    (JSON: ``home`` plus ``create_app``'s keyword arguments)."""
    settings = json.loads(os.environ[SERVE_CONFIG_ENV])
    ws = open_workspace(settings.pop("home"))
    return create_app(ws, settings.pop("run_id"), **settings)
