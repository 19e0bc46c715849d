"""Bounded exponential backoff between restarts of something that keeps dying."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays ``base``, ``2*base``, ``4*base``, ... up to ``cap`` between restarts; the
    count starts over once the restarted thing has stayed up ``stable`` seconds."""

    base: float = 0.1
    cap: float = 10.0
    stable: float = 30.0
    attempt: int = 0  # restarts since it last stayed up
    _up_since: float | None = field(default=None, repr=False)

    def started(self) -> None:
        """It is up again (the count is reset only once it stays up)."""
        self._up_since = time.monotonic()

    def failed(self) -> float:
        """It died or failed to start: the seconds to wait before the next try."""
        if self._up_since is not None and time.monotonic() - self._up_since >= self.stable:
            self.attempt = 0
        self._up_since = None
        self.attempt += 1
        return min(self.cap, self.base * 2 ** (self.attempt - 1))
