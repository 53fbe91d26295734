"""Load a metric's history into the store: poll ``[start, end)`` chunk by chunk, validate and
roll up exactly like a tick, and upsert the points. Nothing is detected or alerted, and the
poll cursor is left alone (live polling goes on where it was); re-running a backfill is
harmless (points are upserted).

A retriable source error retries the chunk with exponential backoff (``sleep`` is injected so
tests never wait); a fatal error stops with the source's message.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from monitor.config import MetricConfig, MonitorConfig
from monitor.frames import build_measure_frame, floor_time
from monitor.pipeline import measure_spec
from monitor.store import Store
from sources.base import MissingSourceError, PollRequest, RetriableSourceError, Source
from sources.registry import create as create_source

log = logging.getLogger("cxmon.backfill")

#: Buckets fetched per request (at least one interval, at most a day unless the interval is).
CHUNK_BUCKETS = 288


@dataclass(slots=True)
class BackfillResult:
    metric: str
    start: datetime
    end: datetime
    chunks: int = 0
    rows_in: int = 0
    points: int = 0
    series: int = 0
    retries: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def chunks(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into ``step``-long pieces (the last one may be shorter)."""
    out = []
    t = start
    while t < end:
        out.append((t, min(t + step, end)))
        t += step
    return out


def default_chunk(metric: MetricConfig) -> timedelta:
    return align_chunk(min(timedelta(days=1), CHUNK_BUCKETS * metric.interval), metric.interval)


def align_chunk(step: timedelta, interval: timedelta) -> timedelta:
    """``step`` rounded up to whole buckets (at least one).

    A bucket must never be split between two requests: each chunk's points replace the
    stored ones, so the second half of a split bucket would overwrite the first.

    >>> align_chunk(timedelta(minutes=90), timedelta(hours=1))
    datetime.timedelta(seconds=7200)
    >>> align_chunk(timedelta(days=1), timedelta(minutes=7)) // timedelta(minutes=7)
    206
    """
    n = max(1, -(-step // interval))
    return n * interval


def fetch_retrying(src: Source, request: PollRequest, *, retries: int = 5,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[pd.DataFrame, int]:
    """``src.fetch(request)`` and how many retries it took: retried with exponential backoff
    (1 s doubling, at most 60 s) on a retriable error, each retry logged.

    Why here and not only in the tick: a backfill or a backtest has no later tick to retry
    on, so one transient error would otherwise fail a replay of weeks. A missing file
    (:class:`MissingSourceError`) is not retried: it does not appear within seconds, and it
    stopped a backfill at once before it had its own kind. Nor is an error carrying a
    ``retry_after`` (a rate limit longer than the source's ``retry.max_wait``): the caller
    says when to try again."""
    for attempt in range(retries + 1):
        try:
            raw = src.fetch(request)
        except MissingSourceError:
            raise
        except RetriableSourceError as exc:
            if attempt == retries or exc.retry_after is not None:
                raise  # out of retries, or the server asked for a longer wait than the
                # source's own retry.max_wait: asking again within seconds would be refused
            wait = min(2.0**attempt, 60.0)
            # said, or an unreachable source sits a minute and more without a word
            log.warning("%s: chunk from %s: %s; retry %d of %d in %gs", request.metric,
                        f"{request.since:%Y-%m-%d %H:%M}", exc, attempt + 1, retries, wait)
            sleep(wait)
        else:
            return raw, attempt
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def backfill(
    config: MonitorConfig,
    store: Store,
    metric_name: str,
    start: datetime,
    end: datetime,
    *,
    source: Source | None = None,
    chunk: timedelta | None = None,
    retries: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    on_chunk: Callable[[datetime, datetime, BackfillResult], None] | None = None,
) -> BackfillResult:
    """Backfill one metric; ``start`` is floored to a bucket, ``end`` too (exclusive)."""
    metric = config.metric(metric_name)
    start = floor_time(start, metric.interval)
    end = floor_time(end, metric.interval)
    result = BackfillResult(metric.name, start, end)
    own = source is None
    src = source or create_source(metric.source, config.sources[metric.source])
    spec = measure_spec(metric)
    seen: set[str] = set()
    step = align_chunk(chunk, metric.interval) if chunk else default_chunk(metric)
    try:
        for lo, hi in chunks(start, end, step):
            request = PollRequest(metric.name, lo, hi, metric.query, dict(metric.params),
                                  metric.timestamp, metric.interval,
                                  (*metric.split_by, *metric.dimensions))
            raw, retried = fetch_retrying(src, request, retries=retries, sleep=sleep)
            result.retries += retried
            built = build_measure_frame(raw, spec, lo, hi)
            with store.transaction() as tx:
                tx.ensure_series(list(built.series.values()))
                result.points += tx.upsert_points(built.frame)
            seen.update(built.series)
            result.rows_in += built.rows_in
            # rows before the chunk are another chunk's (a source that ignores the range),
            # not bad rows; there is no cursor in a backfill (rows after it are not counted)
            result.rejected.update({k: n for k, n in built.rejected.items()
                                    if k != "before_cursor"})
            result.chunks += 1
            result.series = len(seen)
            if on_chunk:
                on_chunk(lo, hi, result)
    finally:
        if own:
            src.close()
    return result
