"""The prediction service's ``/metrics``: counters and histograms in Prometheus text format.

``Metrics`` keeps, per worker process: requests by path and status, errors, a latency
histogram per path, answers by label and, from the dynamic batcher, the batch-size
histogram, each image's queue wait (from the moment its decoded input is queued to the start
of the forward it joins) and each forward's duration. ``MetricsMiddleware`` times every request.
"""

from __future__ import annotations

import threading
import time

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
PATHS = ("/predict", "/health", "/metrics")


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """Upper bounds for the batch-size histogram: 1, 2, 4, ... up to ``max_batch``."""
    bounds, b = [], 1
    while b < max_batch:
        bounds.append(b)
        b *= 2
    return tuple(bounds + [max_batch])


class Histogram:
    """One Prometheus histogram, optionally split by one label (not thread-safe: ``Metrics``
    holds the lock)."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]):
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, value: float, label: str = "") -> None:
        """Count ``value`` (in the series ``label``)."""
        counts = self.counts.setdefault(label, [0] * (len(self.buckets) + 1))
        i = next((k for k, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        counts[i] += 1
        self.sums[label] = self.sums.get(label, 0.0) + value

    def render(self, label_name: str = "") -> list[str]:
        """The histogram's lines: cumulative buckets, sum and count per series."""
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for label, counts in sorted(self.counts.items()):
            lab = f'{label_name}="{label}",' if label_name else ""
            plain = f"{{{lab[:-1]}}}" if lab else ""
            cumulative = 0
            for bound, c in zip(self.buckets, counts):
                cumulative += c
                out.append(f'{self.name}_bucket{{{lab}le="{bound}"}} {cumulative}')
            total = cumulative + counts[-1]
            out.append(f'{self.name}_bucket{{{lab}le="+Inf"}} {total}')
            out.append(f"{self.name}_sum{plain} {self.sums[label]:.6f}")
            out.append(f"{self.name}_count{plain} {total}")
        return out


class Metrics:
    """Counters and histograms kept in memory, written out in Prometheus text format."""

    def __init__(self, max_batch: int = 1, info: dict | None = None) -> None:
        self._lock = threading.Lock()
        self.info = dict(info or {})
        self.requests: dict[tuple[str, int], int] = {}
        self.predictions: dict[str, int] = {}
        self.latency = Histogram("imagelab_request_duration_seconds",
                                 "Time from request to response.", LATENCY_BUCKETS)
        self.batch_size = Histogram("imagelab_batch_size",
                                    "Images per forward of the dynamic batcher.",
                                    batch_buckets(max_batch))
        self.queue_wait = Histogram("imagelab_queue_wait_seconds",
                                    "Per image: time from its decoded input joining the queue "
                                    "to the start of its forward.", WAIT_BUCKETS)
        self.forward = Histogram("imagelab_forward_seconds",
                                 "Duration of each batched forward (with softmax and top-k).",
                                 LATENCY_BUCKETS)

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one request to ``path`` answered with ``status``, and its latency in seconds."""
        with self._lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1
            self.latency.observe(seconds, path)

    def count_predictions(self, labels: list[str]) -> None:
        """Count one prediction of each of ``labels``."""
        with self._lock:
            for label in labels:
                self.predictions[label] = self.predictions.get(label, 0) + 1

    def observe_batch(self, size: int, waits: list[float], forward_s: float) -> None:
        """Count one forward of ``size`` images, each image's queue wait and its duration."""
        with self._lock:
            self.batch_size.observe(size)
            for w in waits:
                self.queue_wait.observe(w)
            self.forward.observe(forward_s)

    def render(self) -> str:
        """Every counter and histogram in Prometheus text format."""
        with self._lock:
            out = ["# HELP imagelab_service_info The model this worker serves and its batching.",
                   "# TYPE imagelab_service_info gauge",
                   "imagelab_service_info{" + ",".join(
                       f'{k}="{_escape(str(v))}"' for k, v in sorted(self.info.items())) + "} 1",
                   "# HELP imagelab_requests_total HTTP requests by path and status code.",
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
            out += self.latency.render("path")
            out += ["# HELP imagelab_predictions_total Answers of /predict by label "
                    "(\"unknown\" below the threshold).",
                    "# TYPE imagelab_predictions_total counter"]
            for label, n in sorted(self.predictions.items()):
                out.append(f'imagelab_predictions_total{{label="{_escape(label)}"}} {n}')
            for hist in (self.batch_size, self.queue_wait, self.forward):
                out += hist.render()
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
