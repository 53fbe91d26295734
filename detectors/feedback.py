"""Feedback: an analyst's verdict on an anomaly changes how that series is judged later.

Applied in the decide step (:class:`detectors.postrules.RuleState` takes the per-point
``min_severity`` this module computes); scoring and learning are untouched, so feedback never
corrupts a detector's state and can be reverted.

* ``not_anomaly``: the series needs a point clearly rarer than the dismissed one: for
  ``NOT_ANOMALY_TTL`` (7 days) after it, its required severity is at least the dismissed
  severity + ``MARGIN`` (12.5 = ten times rarer). The same deviation no longer alerts.
* ``expected``: the pattern is known (a promotion, a planned outage): the same margin
  applies for the rest of that day and, for ``EXPECTED_TTL`` (4 weeks), at the same hour of
  the week, both on the metric's wall clock (its ``timezone``; UTC by default): a Monday
  09:00 promotion in Berlin is the Monday 09:00 local hour after a change of summer time
  too, not an hour off.
* ``confirmed``: a real incident; it cancels earlier ``not_anomaly`` / ``expected`` verdicts
  on the series (the analyst has changed their mind), and raises nothing.
* ``acknowledged``: seen; no effect on scoring.

Verdicts act only on points after the anomaly's own timestamp (no retroactive change, and
never on the dismissed point itself, which the live run had already alerted). ``cxmon
backtest`` replays with every verdict stored so far (the book as it is now, ``confirmed``
cancellations included), so it shows what the monitor would alert today: the dismissed
anomaly itself is still reported, its repeats after it are not.

>>> book = FeedbackBook()
>>> H = 3_600 * 10**9
>>> book.add(Verdict("s", "not_anomaly", at_ns=10 * H, severity=30))
>>> book.min_severity(np.array(["s", "t"], dtype=object), np.array([11 * H, 11 * H]), 25.0)
array([42.5, 25. ])
>>> book.min_severity(np.array(["s"], dtype=object), np.array([10 * H]), 25.0)  # itself
array([25.])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from monitor.zones import wall_clock_ns

__all__ = [
    "EXPECTED_TTL_NS", "MARGIN", "NOT_ANOMALY_TTL_NS", "FeedbackBook", "Verdict", "verdicts",
]

_H = 3_600 * 10**9
_DAY = 24 * _H
_WEEK = 7 * _DAY
MARGIN = 12.5  # severity points: ten times rarer than the point the analyst dismissed
NOT_ANOMALY_TTL_NS = 7 * _DAY
EXPECTED_TTL_NS = 4 * _WEEK


@dataclass(frozen=True, slots=True)
class Verdict:
    """One piece of feedback on one anomaly."""

    series: str
    label: str  # not_anomaly | expected | confirmed | acknowledged
    at_ns: int  # the anomaly's timestamp (UTC ns)
    severity: float  # the anomaly's severity
    id: int = 0  # the feedback row id, to read only new feedback


@dataclass(slots=True)
class FeedbackBook:
    """Verdicts by series, and the severity each point needs because of them."""

    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)
    last_id: int = 0
    #: the metric's time zone: "that day" and "the same hour of the week" of an ``expected``
    #: verdict are on its wall clock, so they follow the business across clock changes
    zone: str = "UTC"

    def add(self, verdict: Verdict) -> None:
        self.last_id = max(self.last_id, verdict.id)
        if verdict.label == "confirmed":  # the analyst changed their mind: undo the raises
            kept = [v for v in self.verdicts.get(verdict.series, ()) if v.at_ns > verdict.at_ns]
            self.verdicts[verdict.series] = kept
        elif verdict.label in ("not_anomaly", "expected"):
            self.verdicts.setdefault(verdict.series, []).append(verdict)

    def extend(self, verdicts: Iterable[Verdict]) -> None:
        for v in sorted(verdicts, key=lambda v: v.id):
            self.add(v)

    def __bool__(self) -> bool:
        return any(self.verdicts.values())

    def in_force(self, lo_ns: int, hi_ns: int) -> list[Verdict]:
        """The verdicts that can raise some point in ``[lo_ns, hi_ns)``: what a backtest of
        that range says it applied (a verdict outside it changes nothing there).

        >>> book = FeedbackBook()
        >>> book.add(Verdict("s", "not_anomaly", at_ns=10 * _H, severity=30, id=1))
        >>> book.add(Verdict("s", "expected", at_ns=3 * _DAY + 10 * _H, severity=30, id=2))
        >>> [v.id for v in book.in_force(2 * _DAY, 3 * _DAY)]  # the expected one acts later
        [1]
        >>> [v.id for v in book.in_force(10 * _DAY + 10 * _H, 10 * _DAY + 11 * _H)]  # +1 week
        [2]
        """
        return [v for vs in self.verdicts.values() for v in vs
                if any(a < hi_ns and lo_ns < b for a, b in _windows(v, self.zone))]

    def min_severity(self, series: np.ndarray, ts: np.ndarray, base: float) -> np.ndarray:
        """Required severity per point: ``base``, raised by active verdicts on its series."""
        out = np.full(len(series), float(base))
        if not self:
            return out
        wall = wall_clock_ns(np.asarray(ts, dtype=np.int64), self.zone)
        for i, key in enumerate(series.tolist()):
            for v in self.verdicts.get(str(key), ()):
                t = int(ts[i])
                if t <= v.at_ns:  # only after the anomaly it refers to
                    continue
                age = t - v.at_ns
                if v.label == "not_anomaly":
                    active = age < NOT_ANOMALY_TTL_NS
                else:  # expected: the rest of the day, and the same hour of the week (local)
                    w, at = int(wall[i]), _wall(v.at_ns, self.zone)
                    same_day = w // _DAY == at // _DAY
                    same_hour = (w % _WEEK) // _H == (at % _WEEK) // _H
                    active = same_day or (same_hour and age < EXPECTED_TTL_NS)
                if active:
                    out[i] = max(out[i], v.severity + MARGIN)
        return out


@lru_cache(maxsize=4096)
def _wall(t_ns: int, zone: str) -> int:
    """One UTC instant as ``zone``'s wall-clock time (ns), as :func:`wall_clock_ns` (cached:
    asked once per verdict and point, of few distinct verdicts)."""
    return int(wall_clock_ns(np.array([t_ns], dtype=np.int64), zone)[0])


def _utc(wall_ns: int, zone: str) -> int:
    """A wall-clock time of ``zone`` back to a UTC instant: the first of a repeated hour, the
    instant the clocks jump to for a skipped one (a window edge, so either side is fine)."""
    if zone == "UTC":
        return wall_ns
    local = pd.Timestamp(wall_ns).tz_localize(zone, ambiguous=True,
                                              nonexistent="shift_forward")
    return int(local.value)


def _windows(v: Verdict, zone: str = "UTC") -> list[tuple[int, int]]:
    """The half-open UTC time ranges in which ``v`` raises its series (as in
    ``min_severity``): the local day and hours of ``zone`` as UTC instants.

    >>> at = 1_774_260_000 * 10**9  # Monday 2026-03-23 10:00 UTC = 11:00 in Berlin (winter)
    >>> w = _windows(Verdict("s", "expected", at_ns=at, severity=30), "Europe/Berlin")
    >>> (w[1][0] - at) // _H  # a week later 11:00 Berlin (summer time) is 09:00 UTC
    167
    """
    if v.label == "not_anomaly":
        return [(v.at_ns + 1, v.at_ns + NOT_ANOMALY_TTL_NS)]
    at = _wall(v.at_ns, zone)
    hour = at - at % _H
    end = v.at_ns + EXPECTED_TTL_NS
    out = [(v.at_ns + 1, _utc(at - at % _DAY + _DAY, zone))]  # the rest of that day
    out += [(_utc(hour + k * _WEEK, zone), min(_utc(hour + k * _WEEK + _H, zone), end))
            for k in range(1, EXPECTED_TTL_NS // _WEEK + 1)]
    return out


def verdicts(rows: Iterable[Mapping[str, Any]]) -> list[Verdict]:
    """Verdicts from store rows (``Store.feedback_after``: id, label, series, ts, severity)."""
    out = []
    for r in rows:
        ts: datetime = r["ts"]
        at_ns = int(ts.timestamp()) * 10**9 + ts.microsecond * 1_000
        out.append(Verdict(str(r["series"]), str(r["label"]), at_ns, float(r["severity"]),
                           int(r["id"])))
    return out
