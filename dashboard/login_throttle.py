"""Back-off for the network-mode sign-in: failed passwords slow down guessing.

Failures are counted per client address (and in all, so that many addresses cannot
share out the guesses): after ``FREE_FAILURES`` failures the next attempt is accepted
only after a wait that doubles with each further failure, up to ``MAX_WAIT_S``. An
attempt during the wait is refused without the password being checked. A success
clears its address's count. The state lives in the server process (one instance,
shared by every session through ``st.cache_resource``), so opening a new tab or session
does not reset it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

FREE_FAILURES = 3        # failures before any wait
MAX_WAIT_S = 300.0       # the longest wait between attempts
ALL = "*"                # the key counting every address's failures together
ALL_FACTOR = 10          # the shared count waits only after 10× as many failures


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0


class LoginThrottle:
    """Counts failed sign-ins per address and says how long an address must wait."""

    def __init__(self, clock=time.monotonic):
        self._clock, self._lock = clock, threading.Lock()
        self._records: dict[str, _Record] = {}

    def _wait_for(self, key: str, free: int) -> float:
        r = self._records.get(key)
        if r is None or r.failures < free:
            return 0.0
        wait = min(MAX_WAIT_S, 2.0 ** (r.failures - free))
        return max(0.0, r.last + wait - self._clock())

    def wait_s(self, address: str) -> float:
        """Seconds before ``address`` may try again (0: now)."""
        with self._lock:
            return max(self._wait_for(address, FREE_FAILURES),
                       self._wait_for(ALL, FREE_FAILURES * ALL_FACTOR))

    def failed(self, address: str) -> None:
        """Record a failed attempt from ``address``."""
        with self._lock:
            for key in (address, ALL):
                r = self._records.setdefault(key, _Record())
                r.failures += 1
                r.last = self._clock()

    def succeeded(self, address: str) -> None:
        """Clear ``address``'s failures after a correct password."""
        with self._lock:
            self._records.pop(address, None)
