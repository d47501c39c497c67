"""A bounded HTTP load test, run as its own process by ``bench_demo``.

    python -m bench.loadgen PORT IMAGE_FILE [IMAGE_FILE ...] --requests N --concurrency C

C threads each keep one HTTP/1.1 keep-alive connection to 127.0.0.1:PORT and POST the
images (``Content-Type: image/png``) to /predict in turn until N requests are done.
Prints one JSON document: requests, seconds, requests_per_s, p50_ms, p99_ms, errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from pathlib import Path


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    bodies = [Path(p).read_bytes() for p in args.images]
    lock = threading.Lock()
    state = {"next": 0, "errors": 0}
    latencies: list[float] = []
    deadline = time.monotonic() + args.max_seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
        mine = []
        while time.monotonic() < deadline:
            with lock:
                i = state["next"]
                if i >= args.requests:
                    break
                state["next"] += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=bodies[i % len(bodies)],
                             headers={"Content-Type": "image/png"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
                ok = False
            mine.append(time.perf_counter() - t0)
            if not ok:
                with lock:
                    state["errors"] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    print(json.dumps({"requests": len(latencies), "seconds": seconds,
                      "requests_per_s": len(latencies) / seconds,
                      "p50_ms": percentile(latencies, 50) * 1000,
                      "p99_ms": percentile(latencies, 99) * 1000,
                      "errors": state["errors"], "concurrency": args.concurrency}))


if __name__ == "__main__":
    main()
