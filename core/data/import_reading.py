"""Reading a source's files in parallel for ``DatasetWriter.add_items``.

A source offers ``SourceItem``s. Local files of a large import are prepared on the
worker processes of ``core.data.prepare`` in chunks (decoding is CPU-bound and
threads only queue on the GIL); a chunk whose worker died is redone in this
process. Other items (downloads, archive members, database rows) are read on two
threads, so their waiting overlaps. Results are handed, in batches, to an ``Accept``
callback that the writer supplies.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.data.prepare import (
    BatchTarget,
    discard_pool,
    prepare_files,
    prepare_item,
    worker_count,
    worker_pool,
)

THREADS = 2                         # for sources whose reads wait (URLs, archives)
PROCESS_MIN_FILES = 256             # local imports at least this large use worker processes

# Takes a batch of results (``Prepared`` or ``Skipped``) and the number of files done
# before it; returns the number done after it.
Accept = Callable[[list, int], int]


@dataclass
class SourceItem:
    """One file offered by a source: ``read()`` returns its bytes (or raises OSError)."""
    name: str                      # where it came from, for the report
    read: Callable[[], bytes]
    label: str | None = None
    split: str | None = None
    path: Path | None = None       # a local file, read with ``files.read_file`` (``read`` is
                                   # not called then: a worker process reads it) and hardlinked


def chunks(items: list, size: int) -> list[list]:
    """``items`` cut into consecutive lists of at most ``size`` elements."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def prepare_local(target: BatchTarget, tasks: list[tuple], accept: Accept) -> int:
    """Prepare local files, given as ``prepare_files`` task tuples; returns how many were done.

    ``PROCESS_MIN_FILES`` or more go to the worker pool (when it has more than one
    worker); fewer are prepared in this process, 256 at a time.
    """
    if len(tasks) >= PROCESS_MIN_FILES and worker_count() > 1:
        return prepare_in_workers(target, tasks, accept)
    done = 0
    for chunk in chunks(tasks, 256):
        done = accept(prepare_files(target, chunk), done)
    return done


def prepare_in_workers(target: BatchTarget, tasks: list[tuple], accept: Accept) -> int:
    """Chunks of local files on the worker pool; returns how many files were done.

    A chunk whose worker died (killed, out of memory) or that could not be sent is
    done in this process instead. If the caller is interrupted (an error, or the
    page's script was stopped), pending chunks are cancelled and running ones waited
    for (up to 120 s) before re-raising, so no worker writes into a batch folder
    that the caller then removes.
    """
    done = 0
    size = max(32, min(256, len(tasks) // (worker_count() * 4)))
    pool = worker_pool()
    pairs: list[tuple[list, Future | None]] = []
    for chunk in chunks(tasks, size):
        future = None
        if pool is not None:
            try:
                future = pool.submit(prepare_files, target, chunk)
            except (BrokenProcessPool, RuntimeError, OSError):
                discard_pool()
                pool = None
        pairs.append((chunk, future))
    try:
        for chunk, future in pairs:
            results = None
            if future is not None:
                try:
                    results = future.result()
                except BrokenProcessPool:
                    discard_pool()
            if results is None:
                results = prepare_files(target, chunk)
            done = accept(results, done)
    except BaseException:
        # stopped (an error, or the page's script was stopped): let no worker write
        # into the batch folder after the caller removes it
        running = [f for _, f in pairs if f is not None and not f.cancel()]
        wait(running, timeout=120)
        raise
    return done


def clean_label(label: str | None) -> str | None:
    """A label stripped of surrounding space; ``None`` for no label or an empty one."""
    if label is None:
        return None
    label = str(label).strip()
    return label or None


def read_on_threads(target: BatchTarget, work: list[tuple[int, SourceItem]], done: int,
                    accept: Accept) -> int:
    """Read and prepare ``(index, item)`` pairs on ``THREADS`` threads.

    At most ``THREADS * 8`` reads are in flight; results reach ``accept`` in order.
    ``done`` is the count of files already done; returns it plus ``len(work)``.
    """
    window = THREADS * 8
    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="import") as pool:
        futures: deque = deque()
        for index, item in work:
            futures.append(pool.submit(prepare_item, target, index, item.name, item.read,
                                       clean_label(item.label), item.split))
            while len(futures) >= window:
                done = accept([futures.popleft().result()], done)
        while futures:
            done = accept([futures.popleft().result()], done)
    return done
