"""``cxmon validate --poll``: poll the latest buckets of every metric once, store nothing.

A config can be valid and still not work: a wrong table, a timestamp column that is not
there, a token without access, a query whose values are text. ``run`` would only say so at
its first tick, after the history has been requested; this says it before anything starts,
with the same frame checks a tick applies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.config import MetricConfig, MonitorConfig
from monitor.durations import format_duration
from monitor.frames import (
    FrameError,
    build_measure_frame,
    floor_time,
    missing_columns,
    missing_columns_message,
)
from monitor.pipeline import measure_spec
from monitor.redact import redact_text
from monitor.staleness import StalenessRule
from sources.base import PollRequest, Source, SourceError
from sources.registry import create as create_source

__all__ = ["Probe", "probe_all", "probe_metric"]


@dataclass(slots=True)
class Probe:
    """What one poll of a metric's latest buckets returned."""

    metric: str
    source: str
    since: datetime
    until: datetime
    rows_in: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    series: int = 0
    newest: datetime | None = None  # start of the newest bucket with a row
    error: str | None = None
    #: the metric's interval and ``no_data_after`` (0: off), to judge how old ``newest`` is
    interval: timedelta = timedelta(0)
    stale_after: timedelta = timedelta(0)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def stale(self) -> timedelta | None:
        """How long before the polled range's end the newest data ended, when that is at
        least ``no_data_after``: the source answers, but with old data (an export that
        stopped, a replica that lags, a file nobody updates), which ``run`` would report as
        a "no data" alert at once."""
        if self.newest is None or self.stale_after <= timedelta(0):
            return None
        gap = self.until - (self.newest + self.interval)
        return gap if gap >= self.stale_after else None

    def verdict(self) -> str:
        """One line for humans: the error, or what came back."""
        if self.error:
            return self.error
        if not self.rows_in:
            return ("no rows in this range (columns and values cannot be checked; try more "
                    "--intervals)")
        bad = sum(self.rejected.values())
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items()))
        rejected = f", {bad} rejected ({why})" if bad else ""
        newest = f", newest bucket {self.newest:%Y-%m-%d %H:%M} UTC" if self.newest else ""
        if (gap := self.stale) is not None:
            newest += (f" (warning: the data ends {format_duration(gap)} before now - "
                       f"delay; no_data_after is {format_duration(self.stale_after)}, so "
                       "`run` would alert \"no data\" at once"
                       + (f"; data that always lands this late, as a daily export, needs "
                          f"delay: {format_duration(gap)} or more" if gap <= timedelta(days=2)
                          else "") + ")")
        return f"{self.rows_in} rows{rejected}, {self.series} series{newest}"


def probe_metric(metric: MetricConfig, source: Source, now: datetime, intervals: int) -> Probe:
    """Poll the last ``intervals`` complete buckets (after ``delay``) and build the frame a
    tick would build; source and frame errors become ``error``, never an exception."""
    until = floor_time(now - metric.delay, metric.interval)
    since = until - intervals * metric.interval
    out = Probe(metric.name, metric.source, since, until, interval=metric.interval,
                stale_after=StalenessRule.for_metric(metric).timeout)
    request = PollRequest(metric=metric.name, since=since, until=until, query=metric.query,
                          params=dict(metric.params), timestamp_column=metric.timestamp,
                          interval=metric.interval,
                          dimensions=(*metric.split_by, *metric.dimensions))
    # records the source itself dropped (an unreadable ticket, a malformed line) are
    # rejected rows too, as a tick counts them: without them a poll that lost half its
    # records to a bad timestamp read as clean
    dropped_before = Counter(getattr(source, "skipped", None) or {})
    try:
        raw = source.fetch(request)
        dropped = Counter(getattr(source, "skipped", None) or {}) - dropped_before
        spec = measure_spec(metric)
        missing = missing_columns(raw, spec)
        known = set(map(str, raw.columns)) - {metric.timestamp}
        if missing and len(raw) == 0 and known & set(spec.columns()):
            # no rows, but the source named some of the metric's columns (a file's header):
            # a tick tolerates an empty result, yet the others are then misspelt, worth
            # saying before it runs (a source that names only the time column knows none)
            raise FrameError(missing_columns_message(raw, spec, missing))
        built = build_measure_frame(raw, spec, since, until)
    except (SourceError, FrameError) as exc:
        out.error = redact_text(str(exc)) or type(exc).__name__
        return out
    except Exception as exc:  # a source bug: still one line per metric, never a traceback
        out.error = f"{type(exc).__name__}: {redact_text(str(exc))}"
        return out
    out.rows_in = built.rows_in
    out.rejected = dict(Counter(built.rejected) + dropped)
    out.series = len(built.series)
    if not built.frame.empty:
        out.newest = built.frame["timestamp"].max().to_pydatetime()
    return out


def probe_all(config: MonitorConfig, now: datetime, intervals: int = 3,
              sources: Mapping[str, Source] | None = None) -> list[Probe]:
    """:func:`probe_metric` for every metric; each source is created once (a source that
    cannot be created is an error of its metrics) and the ones created here are closed."""
    live: dict[str, Source | str] = dict(sources or {})
    own: list[Source] = []
    out = []
    try:
        for m in config.active_metrics:  # a paused metric's source may be the broken one
            if m.source not in live:
                try:
                    live[m.source] = create_source(m.source, config.sources[m.source])
                    own.append(live[m.source])  # type: ignore[arg-type]
                except Exception as exc:
                    live[m.source] = f"source {m.source}: {redact_text(str(exc))}"
            src = live[m.source]
            if isinstance(src, str):
                until = floor_time(now - m.delay, m.interval)
                out.append(Probe(m.name, m.source, until - intervals * m.interval, until,
                                 error=src))
            else:
                out.append(probe_metric(m, src, now, intervals))
        return out
    finally:
        for src in own:
            src.close()
