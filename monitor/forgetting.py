"""Forgetting series that stopped arriving (``forget_after``).

Why: a metric split by churning dimension values (campaign ids, app versions) meets new
series every day. Without this, each one's detector and post-rule state stays in memory and
its checkpoint rows in the store for ever, however long ago its last point was. The
pipeline asks :class:`ForgetSchedule` whether a metric is due (at most once an hour of
bucket time: the scan is cheap, but deleting rows is not free), then forgets the series of
:meth:`monitor.detection.MetricDetectors.stale` in memory and deletes their checkpoints in
the tick's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.config import MetricConfig
from monitor.staleness import DEFAULT_NO_DATA_INTERVALS

#: Default ``forget_after``: a month. robust_seasonal's baseline and noise memories have a
#: half-life of a week by default and its season is a week: after four of them a silent
#: series' state is mostly stale, so relearning costs little; and a churning dimension then
#: holds at most a month of its values.
DEFAULT_FORGET_AFTER = timedelta(days=30)
#: Look for series to forget at most this often per metric, in bucket time.
CHECK_EVERY = timedelta(hours=1)


def forget_after(metric: MetricConfig) -> timedelta | None:
    """The metric's ``forget_after`` (None: never). The default is
    :data:`DEFAULT_FORGET_AFTER`, or twice ``no_data_after`` when that is longer, so the
    "no data" alert always fires well before a series is forgotten."""
    if metric.forget_after is not None:
        return metric.forget_after if metric.forget_after > timedelta(0) else None
    no_data = (metric.no_data_after if metric.no_data_after is not None
               else DEFAULT_NO_DATA_INTERVALS * metric.interval)
    return max(DEFAULT_FORGET_AFTER, 2 * no_data)


@dataclass(slots=True)
class ForgetSchedule:
    """When each metric last looked for series to forget (bucket time, not wall time:
    a catch-up after downtime forgets as the data's own time passes)."""

    every: timedelta = CHECK_EVERY
    checked: dict[str, datetime] = field(default_factory=dict)

    def due(self, metric: str, until: datetime) -> bool:
        """Whether ``metric`` should look again at the end of a tick polled up to ``until``.

        >>> from datetime import UTC
        >>> s = ForgetSchedule()
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> s.due("m", t), s.done("m", t), s.due("m", t + timedelta(minutes=5))
        (True, None, False)
        >>> s.due("m", t + timedelta(hours=1))
        True
        """
        last = self.checked.get(metric)
        return last is None or until >= last + self.every or until < last

    def done(self, metric: str, until: datetime) -> None:
        """Record a look that was committed (a failed tick looks again next time)."""
        self.checked[metric] = until
