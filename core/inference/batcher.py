"""Dynamic batching: inputs of concurrent requests gathered into one forward.

``DynamicBatcher`` has two kinds of threads and no event loop of its own:

- a small pool of **prepare threads** turns each request's raw input into a model input
  (the service: decode the image bytes, resize, lay out the pixels). Pillow releases the GIL
  while it decodes and resizes, so several images are prepared at once, and while the
  forward of the previous batch runs;
- one **forward thread** waits for the first queued input, then gathers more until
  ``max_batch`` inputs are queued or ``max_wait_s`` has passed since the oldest one was
  queued, and runs ``run_batch`` on them all at once. The wait ends early when no input is
  being prepared: nothing more is on its way, so a lone request is not delayed. Under load
  the inputs that arrive while a forward runs are already past their wait when it ends,
  and form the next batch at once.

A caller gets a ``concurrent.futures.Future`` per input; an asyncio caller awaits
``asyncio.wrap_future(...)``, so the event loop stays free while inputs are prepared and the
forward runs. A failure to prepare one input fails only that input's future; a failing
``run_batch`` fails every future of its batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from core.errors import ImageLabError


class DynamicBatcher:
    """Gathers prepared inputs into batches of at most ``max_batch`` for ``run_batch``.

    ``prepare(raw) -> item`` runs on ``prepare_threads`` pool threads; ``run_batch(items) ->
    results`` (one result per item, in order) runs on the one forward thread;
    ``on_batch(size, waits, seconds)``, when given, hears of every batch: its size, each
    item's queue wait and the time ``run_batch`` took (all seconds). Raises
    ``ImageLabError`` for ``max_batch`` below 1, a negative ``max_wait_s`` or no prepare
    thread.
    """

    def __init__(self, prepare: Callable[[Any], Any], run_batch: Callable[[list], Sequence],
                 *, max_batch: int, max_wait_s: float, prepare_threads: int = 2,
                 on_batch: Callable[[int, list[float], float], None] | None = None):
        if max_batch < 1:
            raise ImageLabError("--max-batch must be at least 1")
        if not max_wait_s >= 0:
            raise ImageLabError("--max-wait-ms must be 0 or more")
        if prepare_threads < 1:
            raise ImageLabError("the batcher needs at least one prepare thread")
        self.max_batch, self.max_wait_s = int(max_batch), float(max_wait_s)
        self._prepare, self._run_batch, self._on_batch = prepare, run_batch, on_batch
        self._pool = ThreadPoolExecutor(prepare_threads, thread_name_prefix="prepare")
        self._cond = threading.Condition()
        self._queue: deque[tuple[Any, Future, float]] = deque()
        self._preparing = 0           # inputs submitted whose prepare has not finished
        self._closed = False
        self._thread = threading.Thread(target=self._forward_loop, name="forward", daemon=True)
        self._thread.start()

    def submit(self, raw: Any) -> Future:
        """Prepare ``raw`` on a pool thread, then queue it for a batch; the future gets its
        result (or the exception that ``prepare`` or ``run_batch`` raised)."""
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._preparing += 1
        try:
            self._pool.submit(self._prepare_and_queue, raw, fut)
        except RuntimeError:                 # the pool shut down meanwhile
            with self._cond:
                self._preparing -= 1
            raise
        return fut

    def prepare(self, raw: Any) -> Future:
        """Only prepare ``raw`` on a pool thread (for a caller that checks several inputs before
        queueing any); queue the result with ``submit_prepared``."""
        return self._pool.submit(self._prepare, raw)

    def submit_prepared(self, item: Any) -> Future:
        """Queue an already prepared ``item`` for a batch; the future gets its result."""
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        self._enqueue(item, fut)
        return fut

    def _prepare_and_queue(self, raw: Any, fut: Future) -> None:
        try:
            if not fut.set_running_or_notify_cancel():      # the caller gave up
                return
            try:
                item = self._prepare(raw)
            except Exception as exc:
                fut.set_exception(exc)
                return
            self._enqueue(item, fut)
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify()

    def _enqueue(self, item: Any, fut: Future) -> None:
        with self._cond:
            if self._closed:
                fut.set_exception(RuntimeError("the batcher is closed"))
                return
            self._queue.append((item, fut, time.perf_counter()))
            self._cond.notify()

    def _next_batch(self) -> list[tuple[Any, Future, float]] | None:
        """Block until a batch is due; None once closed and drained."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            deadline = self._queue[0][2] + self.max_wait_s
            while len(self._queue) < self.max_batch and self._preparing and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _forward_loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            start = time.perf_counter()
            try:
                results = self._run_batch([item for item, _, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for "
                                       f"{len(batch)} inputs")
            except Exception as exc:          # every caller of the batch hears of it
                for _, fut, _ in batch:
                    fut.set_exception(exc)
            else:
                for (_, fut, _), result in zip(batch, results):
                    fut.set_result(result)
            if self._on_batch is not None:
                self._on_batch(len(batch), [start - queued for _, _, queued in batch],
                               time.perf_counter() - start)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, then stop the threads (idempotent)."""
        self._pool.shutdown(wait=True)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
