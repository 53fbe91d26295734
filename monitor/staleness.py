"""Staleness: when a metric's data stops arriving, raise a ``no_data`` anomaly.

A metric is stale at data time ``until`` when its newest bucket with rows ended at least
``no_data_after`` earlier (default: three intervals; ``0s`` turns the check off). While it is
stale, each tick (failed or empty) yields one ``kind="no_data"`` anomaly on the metric's total
series. The anomalies go through incidents and routing like any other: the first opens (or
joins) the group's incident and is notified, later ones update the same series and stay
quiet, and once data flows again no more arrive, so the incident resolves after its quiet
period. Pure logic; the pipeline persists what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.model import Anomaly, Direction, Series, series_key

#: Used when a metric does not set ``no_data_after``: this many intervals without data.
DEFAULT_NO_DATA_INTERVALS = 3
#: Severity of a no-data anomaly (a missing KPI is worth a page, but below a 1e-10 outlier).
NO_DATA_SEVERITY = 60
DETECTOR = "no_data"


@dataclass(frozen=True, slots=True)
class StalenessRule:
    metric: str
    interval: timedelta
    labels: dict[str, str]
    timeout: timedelta  # 0 = off

    @classmethod
    def for_metric(cls, metric: object) -> StalenessRule:
        """From a :class:`~monitor.config.MetricConfig` (``no_data_after`` optional)."""
        interval: timedelta = metric.interval  # type: ignore[attr-defined]
        timeout = getattr(metric, "no_data_after", None)
        if timeout is None:
            timeout = DEFAULT_NO_DATA_INTERVALS * interval
        return cls(metric.name, interval, dict(metric.labels), timeout)  # type: ignore[attr-defined]

    @property
    def series(self) -> Series:
        """The series a no-data anomaly is attached to: the metric's labels only."""
        return Series(self.metric, dict(self.labels))

    def is_stale(self, last_data_end: datetime | None, until: datetime) -> bool:
        """True when nothing arrived for ``timeout`` up to data time ``until``.

        ``last_data_end`` is the end of the newest bucket that had rows (None: never had
        any, which is not staleness: a new metric is not an outage).
        """
        if self.timeout <= timedelta(0) or last_data_end is None:
            return False
        return until - last_data_end >= self.timeout

    def anomaly(self, last_data_end: datetime, until: datetime) -> Anomaly:
        """The ``no_data`` anomaly for a stale tick ending at ``until``.

        ``value`` is how long (in intervals) the metric has been silent; ``expected`` is 0.
        """
        silent = (until - last_data_end) / self.interval
        return Anomaly(
            series=series_key(self.metric, self.labels),
            metric=self.metric,
            labels=dict(self.labels),
            timestamp=until - self.interval,
            value=float(silent),
            expected=0.0,
            lower=0.0,
            upper=float(self.timeout / self.interval),
            score=1.0,
            severity=NO_DATA_SEVERITY,
            direction=Direction.UP,
            detector=DETECTOR,
            kind="no_data",
            last_seen=last_data_end,
        )
