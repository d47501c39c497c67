"""The prediction HTTP service behind ``python -m core serve`` (FastAPI on uvicorn).

``create_app(ws, run_id)`` loads the run's model once and returns an app with:

- ``POST /predict``: the image as the raw body (``Content-Type: image/*`` or
  ``application/octet-stream``) or as the multipart field ``file``. Answers
  ``{run_id, label, confidence, top: [{class, probability}], latency_ms}``; ``label`` is
  ``"unknown"`` below the threshold (``?threshold=`` overrides the server's).
  Bad input gets ``{"error": ...}`` with 400 (not an image, empty), 413 (too large: the
  ``Content-Length`` is checked first and the bytes are counted while reading, so a
  chunked or lying client is refused too), 415 (content type) or 422 (bad parameters).
- ``GET /health``: ``{"status": "ok", run_id, classes}``.
- ``GET /metrics``: Prometheus text format: requests by path and status, errors, a
  latency histogram per path, predictions by answered label.

Every ``/predict`` request appends one JSON line to ``runs/<run_id>/service/predictions.jsonl``,
rotated at a size limit (``core.inference.prediction_log``); ``core.inference.monitoring``
reads it. Before any route, ``core.inference.service_security`` checks the Host header
(400), a browser's Origin (403) and, when one is configured, the API key (401).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from core.data.decode import MAX_FILE_BYTES
from core.errors import ImageLabError
from core.inference.monitoring import prediction_log_path
from core.inference.prediction_log import DEFAULT_LOG_MAX_BYTES, PredictionLog
from core.inference.predictor import decode_for_prediction, load_run_model, predict_one
from core.inference.service_security import (
    LOOPBACK_HOSTS,
    SecurityMiddleware,
    check_allowed_host,
    check_api_key,
)
from core.store.run_paths import checked_run_id
from core.store.workspace import Workspace

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PATHS = ("/predict", "/health", "/metrics")
RAW_TYPES = ("application/octet-stream",)


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Metrics:
    """Counters and histograms kept in memory, written out in Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.latency_counts: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.predictions: dict[str, int] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one request to ``path`` answered with ``status``, and its latency in seconds."""
        with self._lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1
            counts = self.latency_counts.setdefault(path, [0] * (len(LATENCY_BUCKETS) + 1))
            i = next((k for k, b in enumerate(LATENCY_BUCKETS) if seconds <= b), len(LATENCY_BUCKETS))
            counts[i] += 1
            self.latency_sum[path] = self.latency_sum.get(path, 0.0) + seconds

    def count_prediction(self, label: str) -> None:
        """Count one prediction of ``label``."""
        with self._lock:
            self.predictions[label] = self.predictions.get(label, 0) + 1

    def render(self) -> str:
        """Every counter and the latency histogram in Prometheus text format."""
        with self._lock:
            out = ["# HELP imagelab_requests_total HTTP requests by path and status code.",
                   "# TYPE imagelab_requests_total counter"]
            for (path, status), n in sorted(self.requests.items()):
                out.append(f'imagelab_requests_total{{path="{path}",status="{status}"}} {n}')
            out += ["# HELP imagelab_errors_total HTTP requests answered with a 4xx or 5xx status.",
                    "# TYPE imagelab_errors_total counter"]
            errors: dict[str, int] = {}
            for (path, status), n in self.requests.items():
                if status >= 400:
                    errors[path] = errors.get(path, 0) + n
            for path, n in sorted(errors.items()):
                out.append(f'imagelab_errors_total{{path="{path}"}} {n}')
            out += ["# HELP imagelab_request_duration_seconds Time from request to response.",
                    "# TYPE imagelab_request_duration_seconds histogram"]
            for path, counts in sorted(self.latency_counts.items()):
                cumulative = 0
                for bound, c in zip(LATENCY_BUCKETS, counts):
                    cumulative += c
                    out.append(f'imagelab_request_duration_seconds_bucket{{path="{path}",le="{bound}"}} '
                               f"{cumulative}")
                total = cumulative + counts[-1]
                out.append(f'imagelab_request_duration_seconds_bucket{{path="{path}",le="+Inf"}} {total}')
                out.append(f'imagelab_request_duration_seconds_sum{{path="{path}"}} '
                           f"{self.latency_sum[path]:.6f}")
                out.append(f'imagelab_request_duration_seconds_count{{path="{path}"}} {total}')
            out += ["# HELP imagelab_predictions_total Answers of /predict by label "
                    "(\"unknown\" below the threshold).",
                    "# TYPE imagelab_predictions_total counter"]
            for label, n in sorted(self.predictions.items()):
                out.append(f'imagelab_predictions_total{{label="{_escape(label)}"}} {n}')
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsMiddleware:
    """Times every request and counts it by path and status code (pure ASGI, no buffering)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            path = scope["path"] if scope["path"] in PATHS else "other"
            self.metrics.observe(path, status, time.perf_counter() - t0)


async def read_body_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes, whatever the headers say."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestError(413, f"body too large: {int(declared):,} bytes declared; "
                                        f"the limit is {limit:,} bytes")
        except ValueError:
            raise RequestError(400, "invalid Content-Length header") from None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestError(413, f"body too large: more than {limit:,} bytes sent; "
                                    f"the limit is {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Request, limit: int) -> bytes:
    """The uploaded image's bytes from a raw body or the multipart field ``file``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    if not (multipart or ctype.startswith("image/") or ctype in RAW_TYPES):
        raise RequestError(415, f"unsupported Content-Type {ctype or '(none)'!r}: send the image "
                                "as the body with Content-Type image/*, or as the multipart "
                                "form field 'file'")
    body = await read_body_limited(request, limit)
    if not body:
        raise RequestError(400, "empty body: no image was sent")
    if not multipart:
        return body

    async def once():
        yield body

    try:
        form = await MultiPartParser(Headers(raw=request.scope["headers"]), once(),
                                     max_files=1, max_fields=10).parse()
    except MultiPartException as exc:
        raise RequestError(400, f"bad multipart form: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestError(422, "the multipart form has no file field named 'file'")
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise RequestError(400, "empty file: the 'file' field has 0 bytes")
    return data


def parse_threshold(request: Request, default: float) -> float:
    """The request's ``threshold`` query parameter, or ``default``; raises ``RequestError`` (422)
    unless it is a number in [0, 1]."""
    raw = request.query_params.get("threshold")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise RequestError(422, f"threshold must be a number between 0 and 1, not {raw!r}")
    return value


def create_app(ws: Workspace, run_id: str, *, threshold: float = 0.0,
               max_body_bytes: int = MAX_FILE_BYTES, top_k: int = 5,
               api_key: str | None = None, allowed_hosts: Iterable[str] | None = None,
               log_max_bytes: int = DEFAULT_LOG_MAX_BYTES, log_backups: int = 1) -> FastAPI:
    """The FastAPI app serving run ``run_id``; the model is loaded here, once.

    ``POST /predict`` answers the ``top_k`` classes, ``unknown`` below ``threshold`` (0–1;
    a request's ``?threshold=`` overrides it), and refuses bodies over ``max_body_bytes``
    with 413; ``GET /health`` and ``GET /metrics`` (Prometheus) report on it. Every
    prediction is appended to the run's prediction log, rotated past ``log_max_bytes``
    keeping ``log_backups`` older files. ``allowed_hosts`` (default: ``LOOPBACK_HOSTS`` on
    any port) and ``api_key`` (None: no key) guard every request (``SecurityMiddleware``).

    ``run_id`` must be a run of the runs table (``checked_run_id``): the model and the log stay
    under ``runs/``. Raises ``ImageLabError`` for a malformed or unknown run id, a threshold
    outside [0, 1], ``max_body_bytes`` below 1, a short API key, a bad allow-list entry, or a
    run whose model cannot load.
    """
    run_id = checked_run_id(run_id, ws)
    if not 0 <= threshold <= 1:
        raise ImageLabError("--threshold must be between 0 and 1")
    if max_body_bytes < 1:
        raise ImageLabError("--max-body-bytes must be at least 1")
    if api_key is not None:
        check_api_key(api_key)
    hosts = frozenset(check_allowed_host(h) for h in (allowed_hosts or LOOPBACK_HOSTS))
    prediction_log = PredictionLog(prediction_log_path(ws, run_id), log_max_bytes, log_backups)
    lm = load_run_model(ws, run_id)
    prediction_log.path.parent.mkdir(exist_ok=True)        # runs/<id>/service/
    metrics = Metrics()
    app = FastAPI(title="ImageLab prediction service", version="1",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model, app.state.metrics, app.state.log_path = lm, metrics, prediction_log.path
    app.add_middleware(SecurityMiddleware, allowed_hosts=hosts, api_key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)   # outermost: counts refusals too

    def predict_and_log(data: bytes, thr: float, t0: float) -> dict:
        img = decode_for_prediction(data)            # ImageLabError for a bad image
        pred = predict_one(lm, img, top_k=top_k, threshold=thr)
        latency_ms = (time.perf_counter() - t0) * 1000
        prediction_log.append({"ts": time.time(), "status": 200, "label": pred.label,
                               "top_class": pred.top[0][0], "confidence": pred.top[0][1],
                               "latency_ms": round(latency_ms, 3),
                               "unknown": not pred.confident, "error": None})
        metrics.count_prediction(pred.label)
        return {"run_id": run_id, "label": pred.label, "confidence": pred.top[0][1],
                "top": [{"class": c, "probability": p} for c, p in pred.top],
                "latency_ms": latency_ms}

    @app.post("/predict")
    async def predict(request: Request):
        t0 = time.perf_counter()
        try:
            thr = parse_threshold(request, threshold)
            data = await image_bytes(request, max_body_bytes)
            try:
                return await run_in_threadpool(predict_and_log, data, thr, t0)
            except ImageLabError as exc:
                raise RequestError(400, str(exc)) from None
        except RequestError as exc:
            latency_ms = (time.perf_counter() - t0) * 1000
            await run_in_threadpool(prediction_log.append, {
                "ts": time.time(), "status": exc.status, "label": None, "top_class": None,
                "confidence": None, "latency_ms": round(latency_ms, 3), "unknown": False,
                "error": str(exc)})
            # Refusing before the body is read: close the connection rather than drain it.
            headers = {"Connection": "close"} if exc.status == 413 else None
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.get("/health")
    async def health():
        return {"status": "ok", "run_id": run_id, "classes": lm.classes}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
