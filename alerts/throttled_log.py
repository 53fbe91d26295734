"""At most one WARNING per reason per interval, with a count of the ones left out.

Why: the feedback endpoint is reachable from the internet, and it logged a WARNING for every
refused request: a scanner, an attacker or a proxy replaying old requests flooded the log (and
whatever ships it) at the rate it could send. The refusals are counted in metrics anyway; the
log only needs to say it is happening, and how often.

>>> from datetime import UTC, datetime, timedelta
>>> from monitor.clock import FakeClock
>>> clock = FakeClock(datetime(2026, 1, 5, tzinfo=UTC))
>>> warn = ThrottledWarnings(logging.getLogger("doctest"), interval=60, clock=clock)
>>> warn("stale", "refused a stale request"), warn("stale", "refused a stale request")
(True, False)
>>> _ = clock.advance(timedelta(seconds=60))
>>> warn("stale", "refused a stale request"), warn.suppressed("stale")
(True, 0)
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from monitor.clock import Clock, SystemClock

__all__ = ["ThrottledWarnings"]


class ThrottledWarnings:
    """``warn(reason, msg, *args)`` logs the first WARNING of a reason, then none for that
    reason until ``interval`` seconds have passed; the next one says how many were left out.
    Each left-out warning is also counted in ``counter`` (labelled with the reason)."""

    def __init__(self, logger: logging.Logger, *, interval: float = 60.0,
                 clock: Clock | None = None, counter: Counter | None = None) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock or SystemClock()
        self.counter = counter
        self._last: dict[str, datetime] = {}
        self._left_out: dict[str, int] = {}
        self._lock = threading.Lock()  # the server handles requests on many threads

    def __call__(self, reason: str, msg: str, *args: Any) -> bool:
        """True if the warning was logged, False if it was left out (and counted)."""
        now = self.clock.now()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and (now - last).total_seconds() < self.interval:
                self._left_out[reason] = self._left_out.get(reason, 0) + 1
                if self.counter is not None:
                    self.counter.labels(reason).inc()
                return False
            self._last[reason] = now
            left_out = self._left_out.pop(reason, 0)
        if left_out:
            msg += " (and %d more like it in the last %.0f s, not logged)"
            args = (*args, left_out, (now - last).total_seconds() if last else 0.0)
        self.logger.warning(msg, *args)
        return True

    def suppressed(self, reason: str) -> int:
        """Warnings of ``reason`` left out since the last one logged."""
        with self._lock:
            return self._left_out.get(reason, 0)
