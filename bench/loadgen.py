"""A bounded HTTP load test, run as its own process by ``bench_demo`` and ``bench_service``.

    python -m bench.loadgen PORT IMAGE_FILE [IMAGE_FILE ...] --requests N --concurrency C

C clients, each with one HTTP/1.1 keep-alive connection to 127.0.0.1:PORT, POST the images
(``Content-Type: image/png``, or ``image/jpeg`` for .jpg files) to /predict in turn until N
requests are done. Prints one JSON document: requests, seconds, requests_per_s, p50_ms,
p99_ms, errors.

The clients are coroutines on one asyncio event loop over raw sockets, with every request's
bytes built before the clock starts and only the status line and ``Content-Length`` of an
answer parsed: the way ``wrk`` works. On the 2 cores the service shares with its load, a
client that spends less CPU per request leaves more to the service. (It replaced threads
over ``http.client``, which cost about as much CPU per request as the service's own HTTP
handling.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-th percentile of ``xs`` (linear between the two nearest ranks)."""
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def request_bytes(port: int, path: Path) -> bytes:
    """One complete ``POST /predict`` request for the image file at ``path``."""
    body = path.read_bytes()
    kind = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a ``Content-Length``; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def load(port: int, requests: list[bytes], total: int, concurrency: int,
               max_seconds: float) -> dict:
    """Run the load test; loadgen's JSON figures as a dict."""
    state = {"next": 0, "errors": 0}
    latencies: list[float] = []
    deadline = time.monotonic() + max_seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline and state["next"] < total:
            i = state["next"]
            state["next"] += 1
            t0 = time.perf_counter()
            try:
                writer.write(requests[i % len(requests)])
                ok = await asyncio.wait_for(read_response(reader), 30) == 200
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    asyncio.TimeoutError, ValueError):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                ok = False
            latencies.append(time.perf_counter() - t0)
            if not ok:
                state["errors"] += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    return {"requests": len(latencies), "seconds": seconds,
            "requests_per_s": len(latencies) / seconds,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "errors": state["errors"], "concurrency": concurrency}


def main() -> None:
    """Parse the command line, run the load test, print its JSON document."""
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    requests = [request_bytes(args.port, Path(p)) for p in args.images]
    print(json.dumps(asyncio.run(load(args.port, requests, args.requests, args.concurrency,
                                      args.max_seconds))))


if __name__ == "__main__":
    main()
