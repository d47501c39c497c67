"""Is a background job's process still alive? One answer for training runs, embedding jobs
and the active-learning experiment, which all run as their own processes and record
their pid.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def process_alive(pid: int | None, command_word: str, *, reap: bool = True) -> bool:
    """True while ``pid`` is a live (not zombie) process whose command line has the argument
    ``command_word`` (``train``, ``embed``, ``al-bench``: a recycled pid of another program
    is not our job). With ``reap``, a finished child of this process is reaped first; pass
    ``reap=False`` where a ``subprocess.Popen`` owns the child and reads its exit status.
    Without ``/proc`` (macOS) a live pid is trusted."""
    if not pid:
        return False
    pid = int(pid)
    if reap:
        with contextlib.suppress(ChildProcessError, OSError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        return command_word.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
