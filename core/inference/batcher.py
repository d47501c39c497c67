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

A caller gets a ``concurrent.futures.Future`` per input, or, when it passes its event loop
(``loop=``), an ``asyncio.Future`` of that loop: the forward thread then hands a whole
batch's answers to the loop with one ``call_soon_threadsafe`` (one wake-up of the loop per
batch, not one per answer as ``asyncio.wrap_future`` would cost on the forward thread,
which is the service's busiest). The event loop stays free while inputs are prepared and
the forward runs. A failure to prepare one input fails only that input's future; a failing
``run_batch`` fails every future of its batch.
"""

from __future__ import annotations

import asyncio
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
        self._queue: deque[tuple[Any, Any, float]] = deque()   # (item, future, queued at)
        self._preparing = 0           # inputs submitted whose prepare has not finished
        self._closed = False
        self._thread = threading.Thread(target=self._forward_loop, name="forward", daemon=True)
        self._thread.start()

    def submit(self, raw: Any, loop: asyncio.AbstractEventLoop | None = None):
        """Prepare ``raw`` on a pool thread, then queue it for a batch; the future (an
        ``asyncio.Future`` of ``loop`` when given, which must be the calling thread's running
        loop) gets its result, or the exception that ``prepare`` or ``run_batch`` raised."""
        fut = loop.create_future() if loop is not None else Future()
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

    def submit_prepared(self, item: Any, loop: asyncio.AbstractEventLoop | None = None):
        """Queue an already prepared ``item`` for a batch; the future (of ``loop`` when given)
        gets its result."""
        if loop is not None:
            fut = loop.create_future()
        else:
            fut = Future()
            fut.set_running_or_notify_cancel()
        self._enqueue(item, fut)
        return fut

    def _prepare_and_queue(self, raw: Any, fut) -> None:
        try:
            if isinstance(fut, Future):
                if not fut.set_running_or_notify_cancel():  # the caller gave up
                    return
            elif fut.cancelled():
                return
            try:
                item = self._prepare(raw)
            except Exception as exc:
                settle([(fut, None, exc)])
                return
            self._enqueue(item, fut)
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify()

    def _enqueue(self, item: Any, fut) -> None:
        with self._cond:
            closed = self._closed
            if not closed:
                self._queue.append((item, fut, time.perf_counter()))
                self._cond.notify()
        if closed:
            settle([(fut, None, RuntimeError("the batcher is closed"))])
            return

    def _next_batch(self) -> list[tuple[Any, Any, float]] | None:
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
                settle([(fut, None, exc) for _, fut, _ in batch])
            else:
                settle([(fut, result, None) for (_, fut, _), result in zip(batch, results)])
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


def settle(outcomes: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Give each future its result or exception: ``concurrent.futures`` ones here, and those of
    an event loop in one ``call_soon_threadsafe`` per loop (the loop sets them itself)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for fut, result, exc in outcomes:
        if isinstance(fut, Future):
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)
        else:
            by_loop.setdefault(fut.get_loop(), []).append((fut, result, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_on_loop, items)
        except RuntimeError:                 # the loop closed: nobody awaits these any more
            pass


def _settle_on_loop(items: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for fut, result, exc in items:
        if fut.done():                       # cancelled: the client went away
            continue
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)
