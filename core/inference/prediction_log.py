"""The prediction service's log: one JSON line per ``/predict`` request, rotated at a size limit.

``runs/<run_id>/service/predictions.jsonl`` (``RunPaths.prediction_log``); past ``max_bytes``
(default 50 MiB, ``$IMAGELAB_PREDICTION_LOG_MAX_BYTES`` or ``serve --log-max-bytes``) it becomes
``predictions.jsonl.1`` (``RunPaths.prediction_log_backup``), ``.1`` becomes ``.2``, and so on
up to ``backups`` files. ``core.inference.monitoring`` reads them all.

Several worker processes (``serve --workers N``, or several ``serve`` processes on one run)
never share a file: each claims a **slot**, the lowest number whose lock file
(``service/.worker-<slot>.lock``) no live process holds (``claim_log_slot``, an ``flock``
that the kernel releases when the process ends), and writes ``predictions.jsonl`` for slot 0,
``predictions-<slot>.jsonl`` for the others (``worker_log_path``), each rotated on its own.
A restarted worker takes a free slot again, so the number of files stays bounded by the
largest number of workers that ever ran at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from core.errors import ImageLabError

LOG_MAX_BYTES_ENV = "IMAGELAB_PREDICTION_LOG_MAX_BYTES"
DEFAULT_LOG_MAX_BYTES = 50 * 1024 * 1024    # 50 MiB
MAX_SLOTS = 256


def worker_log_path(base: Path, slot: int) -> Path:
    """The live log file of worker slot ``slot``: ``base`` (``predictions.jsonl``) for slot 0,
    ``predictions-<slot>.jsonl`` beside it for the others."""
    return base if slot == 0 else base.with_name(f"{base.stem}-{int(slot)}{base.suffix}")


def claim_log_slot(service_dir: Path) -> tuple[int, int]:
    """The lowest free worker slot in ``service_dir`` and the open lock file descriptor that
    holds it (close it to give the slot back; the kernel does when the process ends). Raises
    ``ImageLabError`` when all ``MAX_SLOTS`` slots are taken."""
    service_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        fd = os.open(service_dir / f".worker-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise ImageLabError(f"{MAX_SLOTS} service workers already write logs in {service_dir}")


def log_max_bytes_setting(option: int | None) -> int:
    """The prediction log's rotation size: ``option``, else ``$IMAGELAB_PREDICTION_LOG_MAX_BYTES``,
    else 50 MiB; raises ``ImageLabError`` unless it is a whole number of at least 1."""
    raw = option if option is not None else os.environ.get(LOG_MAX_BYTES_ENV) or DEFAULT_LOG_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ImageLabError(f"the prediction log size limit must be a whole number of bytes, at "
                            f"least 1 (--log-max-bytes or {LOG_MAX_BYTES_ENV}), not {raw!r}")
    return value


class PredictionLog:
    """The service's prediction log, rotated at ``max_bytes``: before a line that would take the
    file past it, ``predictions.jsonl`` becomes ``.1`` (``.1`` becomes ``.2``, and so on up to
    ``backups``; the oldest is dropped), and the line starts a new file. A thread lock keeps
    rotation and writes of the service's worker threads apart."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_LOG_MAX_BYTES, backups: int = 1):
        if max_bytes < 1 or backups < 1:
            raise ImageLabError("the prediction log needs a size limit of at least 1 byte and "
                                "at least 1 rotated file")
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()

    def backup(self, n: int) -> Path:
        """The ``n``-th rotated file (1 = the newest)."""
        return self.path.with_name(f"{self.path.name}.{n}")

    def append(self, record: dict) -> None:
        """Append ``record`` as one JSON line, rotating first if the line would pass the limit.

        Lines are ``{ts, status, label, top_class, confidence, latency_ms, unknown, error}``
        (``label``/``top_class``/``confidence`` are null for refused requests). The line is
        serialised once and written with a single ``write`` on an ``O_APPEND`` file: once it
        returns the line is in the kernel, so a killed server keeps it. The work per request
        is one ``stat`` (the rotation check), one open, one write, one close.
        """
        self.append_many([record])

    def append_many(self, records: list[dict]) -> None:
        """Append ``records`` as JSON lines (a batch's answers) with as few ``write`` calls as
        the limit allows: one, unless a rotation falls among them (each line goes to the file
        it fits in, as with ``append``)."""
        lines = [(json.dumps(r, separators=(",", ":")) + "\n").encode() for r in records]
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            chunk: list[bytes] = []
            for line in lines:
                if size and size + len(line) > self.max_bytes:
                    self._write(chunk)
                    self.rotate()
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            self._write(chunk)

    def _write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"".join(lines))
        finally:
            os.close(fd)

    def rotate(self) -> None:
        """Shift the rotated files up by one (dropping the last) and move the live file to ``.1``."""
        for n in range(self.backups - 1, 0, -1):
            if self.backup(n).exists():
                os.replace(self.backup(n), self.backup(n + 1))
        os.replace(self.path, self.backup(1))

