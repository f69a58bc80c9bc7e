"""One controllable clock shared by every stand-in of a sandbox.

Real services keep time on their own; tests of long migrations (a cutover 8 days after the full, a
day of import quota) cannot sleep through it. Every stand-in reads the time from a ``SandboxClock``,
and a test (or ``python -m sandbox clock --advance``) moves all of them forward together.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """Wall-clock UTC time plus an offset that only ever grows (time never runs backwards)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        if offset < timedelta(0):
            raise ValueError("clock offset must not be negative: time never runs backwards")
        self._offset = offset
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def now(self) -> datetime:
        """The current sandbox time, timezone-aware UTC."""
        return datetime.now(UTC) + self._offset

    def timestamp(self) -> float:
        """The current sandbox time as a POSIX timestamp."""
        return self.now().timestamp()

    def advance(self, delta: timedelta) -> datetime:
        """Jump forward by ``delta`` (must be positive); returns the new time."""
        if delta < timedelta(0):
            raise ValueError("a sandbox clock only moves forward")
        with self._lock:
            self._offset += delta
        return self.now()
