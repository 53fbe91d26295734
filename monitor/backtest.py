"""Replay history through a config's detectors: bucket by bucket, no look-ahead, nothing stored
or sent. Answers "what would cxmon have told us last month?". Like a metric's first live tick,
the detectors first learn from the metric's ``history`` before ``start`` (anomalies there are
not reported).

Feedback: given the verdicts stored so far (:func:`stored_verdicts`), the replay decides as
the live tick does with them (:mod:`detectors.feedback`: each verdict raises its series only
after the anomaly it refers to). A metric with verdicts is also replayed without them, on the
same fetched rows, so the summary can say how many anomalies the feedback suppressed (or
added: a suppressed point no longer starts a ``suppress`` window or a refractory period).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.progress import Progress

from alerts.payload import anomaly_dict
from detectors.calendar import CalendarDay
from detectors.feedback import FeedbackBook, Verdict, verdicts
from monitor.backfill import fetch_retrying
from monitor.config import MonitorConfig
from monitor.detection import MetricDetectors
from monitor.frames import build_measure_frame, floor_time
from monitor.model import Anomaly
from monitor.pipeline import measure_spec, post_rules
from sources.base import PollRequest
from sources.registry import create as create_source

if TYPE_CHECKING:
    from monitor.store import Store

CHUNK = timedelta(days=7)
ANOMALY_COLUMNS = [
    "timestamp", "metric", "series", "value", "expected", "lower", "upper", "score", "severity",
    "direction", "change", "detector", "kind",
]


@dataclass(slots=True)
class BacktestResult:
    anomalies: pd.DataFrame
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per metric: a note when its detectors were still warming up inside the range.
    warmup: dict[str, str] = field(default_factory=dict)


def stored_verdicts(store: Store, metrics: Sequence[str]) -> dict[str, list[Verdict]]:
    """Every verdict stored on the metrics' anomalies, oldest first: the book a live tick
    would hold now (acknowledged ones included; they change nothing)."""
    return {name: verdicts(store.feedback_after(name)) for name in metrics}


def _book(stored: Sequence[Verdict]) -> FeedbackBook:
    """A feedback book holding ``stored`` (``confirmed`` cancels earlier raises, by id)."""
    book = FeedbackBook()
    book.extend(stored)
    return book


def feedback_stats(stored: Sequence[Verdict], book: FeedbackBook, lo: datetime,
                   hi: datetime, interval: timedelta, with_fb: Sequence[Anomaly],
                   without_fb: Sequence[Anomaly], series: Collection[str] = ()
                   ) -> dict[str, Any]:
    """What the stored verdicts did to a metric's replay of ``[lo, hi)``: how many are
    stored, how many were in force there (by label), the anomalies they suppressed or added
    (by anomaly id, against the same replay without them), with the episode count the replay
    would have had without them, and how many in force were on series the replay never
    produced (``series``: its series keys): feedback given before the metric's dimensions or
    labels changed no longer matches any series, and would otherwise be silently ignored."""
    in_force = book.in_force(_ns(lo), _ns(hi))
    kept, plain = {a.id for a in with_fb}, {a.id for a in without_fb}
    return {
        "stored": len(stored),
        "in_force": len(in_force),
        "unmatched": sum(v.series not in series for v in in_force) if series else 0,
        "labels": dict(Counter(v.label for v in in_force)),
        "suppressed": len(plain - kept),
        "added": len(kept - plain),
        "anomalies_without": len(without_fb),
        "episodes_without": episodes({a.timestamp for a in without_fb}, interval),
    }


def _ns(t: datetime) -> int:
    """A tz-aware time as UTC nanoseconds (the unit of :mod:`detectors.feedback`)."""
    return int(pd.Timestamp(t).value)


def _metric_detectors(config: MonitorConfig, name: str, book: FeedbackBook) -> MetricDetectors:
    """A metric's detectors and post-rules as a live tick builds them, deciding with ``book``."""
    metric = config.metric(name)
    return MetricDetectors(name, metric.interval, config.detectors_for(metric), post_rules(metric),
                           book, calendar=config.calendar_for(metric),
                           zone=metric.timezone or "UTC")


def _chunks(lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    out = []
    while lo < hi:
        out.append((lo, min(lo + CHUNK, hi)))
        lo += CHUNK
    return out


def warmup_note(dets: MetricDetectors, interval: timedelta, start: datetime,
                end: datetime) -> str | None:
    """``"detectors warming up until ..."`` when a detector could not score some points in
    ``[start, end)`` because it had not learned enough yet; None when all were scored."""
    warming = dets.warming(start, interval)
    if warming is None:
        return None
    until, needs = warming
    if until >= end:
        return (f"detectors warming up for the whole range ({needs}); give the metric a "
                "longer `history:` if the source has older data, or start later"
                + (SHORT_WARMUP_HINT if "robust_seasonal needs 1w" in needs.replace("]", "")
                   else ""))
    return f"detectors warming up until {until:%Y-%m-%d %H:%M} UTC ({needs})"


#: With less than a week of data, the default detector's weekly season can never warm up
#: inside the range; its daily season can, so say how (a new user's first CSV is often short).
SHORT_WARMUP_HINT = ("; with less than a week of data, a detector "
                     "`{type: robust_seasonal, season: day}` warms up in 1d")


def episodes(times: set[datetime], interval: timedelta) -> int:
    """Runs of anomalous buckets of a metric (any series), a gap of one quiet bucket or more
    ending a run: about the incidents a setting would raise, comparable between settings where
    the anomaly count (every anomalous point of every roll-up series) is not.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 5, tzinfo=UTC)
    >>> episodes({t, t + timedelta(hours=1), t + timedelta(hours=5)}, timedelta(hours=1))
    2
    """
    ordered = sorted(times)
    return sum(1 for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] > interval)


def run_backtest(
    config: MonitorConfig,
    metrics: list[str],
    start: datetime,
    end: datetime,
    *,
    progress_console: Console | None = None,
    sleep: Callable[[float], None] = time.sleep,
    feedback: Mapping[str, Sequence[Verdict]] | None = None,
) -> BacktestResult:
    """Run the named metrics over ``[start, end)`` in weekly chunks (state carries over),
    after learning from each metric's ``history`` before ``start``. ``feedback``: stored
    verdicts by metric (:func:`stored_verdicts`); None applies none (``--no-feedback``)."""
    sources = {name: create_source(name, cfg) for name, cfg in config.sources.items()}
    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, Any]] = {}
    warmup: dict[str, str] = {}
    # whole buckets of each metric: an unaligned start, end (or an end clipped to now) split
    # buckets between chunks, scoring each part as if it were the whole bucket
    spans = {name: (floor_time(start, config.metric(name).interval),
                    floor_time(end, config.metric(name).interval)) for name in metrics}
    plans = {name: ([(c, True) for c in _chunks(lo - config.metric(name).history, lo)]
                    + [(c, False) for c in _chunks(lo, hi)]) for name, (lo, hi) in spans.items()}
    try:
        with Progress(console=progress_console, transient=True,
                      disable=progress_console is None) as progress:
            task = progress.add_task("backtest", total=sum(map(len, plans.values())))
            for name in metrics:
                metric = config.metric(name)
                stored = list((feedback or {}).get(name, ()))
                book = _book(stored)
                dets = _metric_detectors(config, name, book)
                # the same replay without the verdicts, for what they changed (only if any)
                plain = _metric_detectors(config, name, FeedbackBook()) if book else None
                without: list[Anomaly] = []
                with_fb: list[Anomaly] = []
                stats: dict[str, Any] = {"rows": 0, "points": 0, "anomalies": 0}
                rejected: Counter[str] = Counter()
                all_series: set[str] = set()
                times: set[datetime] = set()
                calendar: dict[str, CalendarDay] = {}
                for (lo, hi), history in plans[name]:
                    progress.update(task, description=f"{name} {lo:%Y-%m-%d}")
                    raw, _ = fetch_retrying(
                        sources[metric.source],
                        PollRequest(name, lo, hi, metric.query, dict(metric.params),
                                    metric.timestamp, metric.interval,
                                    (*metric.split_by, *metric.dimensions)), sleep=sleep)
                    built = build_measure_frame(raw, measure_spec(metric), lo, hi)
                    # until: a series that stops while others go on is a no_data anomaly,
                    # as in a tick (and, in history, its gap is not reported again later)
                    run = dets.run(built.frame, built.series, until=hi)
                    found = run.anomalies
                    unfiltered = (found if plain is None else
                                  plain.run(built.frame, built.series, until=hi).anomalies)
                    progress.advance(task)
                    if history:  # learned, not reported (like a first tick's history)
                        continue
                    with_fb.extend(found)
                    calendar.update(run.calendar_days)
                    without.extend(unfiltered)
                    stats["rows"] += built.rows_in
                    stats["points"] += len(built.frame)
                    stats["anomalies"] += len(found)
                    rejected.update(built.rejected)
                    all_series.update(built.series)
                    times.update(a.timestamp for a in found)
                    rows.extend(anomaly_dict(a) for a in found)
                stats["series"] = len(all_series)
                stats["rejected"] = dict(rejected)
                stats["buckets"] = len(times)
                stats["episodes"] = episodes(times, metric.interval)
                stats["calendar"] = {d: (day.name, day.mode) for d, day in sorted(calendar.items())}
                stats["calendar_unmatched"] = dets.calendar_unmatched()
                stats["calendar_learners"] = dets.calendar_learners()
                stats["history"] = metric.history
                stats["interval"] = metric.interval
                stats["start"], stats["end"] = spans[name]  # whole buckets, as replayed
                if feedback is not None:
                    stats["feedback"] = feedback_stats(stored, book, *spans[name],
                                                       metric.interval, with_fb, without,
                                                       all_series)
                summary[name] = stats
                note = warmup_note(dets, metric.interval, *spans[name])
                if note is not None:
                    warmup[name] = note
    finally:
        for s in sources.values():
            s.close()
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=ANOMALY_COLUMNS)
    else:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame = frame[ANOMALY_COLUMNS].sort_values(["timestamp", "series"], ignore_index=True)
    return BacktestResult(frame, summary, warmup)
