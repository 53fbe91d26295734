"""Score a backtest against incidents known to have happened (``cxmon backtest --incidents``).

The matching rule, one for finding incidents and for telling true episodes from false ones:
an anomaly of metric ``m`` (bucket starting at ``t``, ``m``'s interval ``i``) *matches* an
incident when

- the incident names no metric or names ``m``,
- the incident names no labels, or the anomaly's series carries every one of them
  (``channel=app`` matches ``{channel="app"}`` and ``{channel="app",region="uk"}``, not the
  roll-up over all channels),
- its bucket ``[t, t + i)`` overlaps ``[start, end + i)``: ``start - i < t < end + i``. The
  bucket holding ``start`` counts, and so does the bucket starting at ``end`` (one interval of
  grace: a bucket is scored when it closes, and an incident's tail may only show there).

An incident is *found* when at least one anomaly matches it. Its time to detect is the first
matching bucket's start minus ``start`` (0 when that bucket holds ``start``); a live tick sees a
bucket when it closes, up to one interval later. An episode (see :func:`monitor.backtest.episodes`)
is *true* when at least one of its anomalies matches an incident, *false* otherwise.
precision = true episodes / episodes, recall = found incidents / incidents.

Per metric, an incident naming no metric counts in every replayed metric's row (found or missed
by that metric); overall, each incident counts once, found if any metric found it.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd

from monitor.model import parse_series_key

REQUIRED = ("start", "end")
OPTIONAL = ("metric", "labels", "name")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class IncidentsError(ValueError):
    """A bad incidents CSV: the message names the file and the row."""


@dataclass(frozen=True, slots=True)
class KnownIncident:
    row: int  # CSV line number (the header is line 1)
    name: str
    start: datetime
    end: datetime  # exclusive
    metric: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """How the incident is named in the report: its name, else its start."""
        return self.name or f"{self.start:%Y-%m-%d %H:%M}"


def _time(text: str, what: str, where: str) -> datetime:
    try:
        if not re.match(r"\s*\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        ts = pd.Timestamp(text.strip())
    except ValueError:
        raise IncidentsError(f"{where}: {what} is not a time: {text!r} "
                             "(use ISO 8601, e.g. 2026-01-05T10:00Z)") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()


def _labels(text: str, where: str) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not _LABEL.match(key) or not value:
            raise IncidentsError(f"{where}: labels must be key=value;key=value, "
                                 f"not {text!r}")
        if re.search(r",\s*[a-zA-Z_][a-zA-Z0-9_]*\s*=", value):  # "channel=app,region=uk"
            raise IncidentsError(f"{where}: labels are separated by ';', not ',': "
                                 f"{text.replace(',', ';')!r}, not {text!r}")
        out[key] = value
    return tuple(sorted(out.items()))


def _check_label_names(labels: tuple[tuple[str, str], ...], metric: str | None,
                       known: Mapping[str, Collection[str]], where: str) -> None:
    """A label no series of the metric (or of any metric) carries can match nothing: the
    incident would be reported missed whatever the detectors did (``chanel=app``)."""
    names = set(known.get(metric, ())) if metric else {n for v in known.values() for n in v}
    for key, _ in labels:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            whose = f"of {metric}" if metric else "of any metric"
            raise IncidentsError(f"{where}: no series {whose} has a label {key!r}{hint}; "
                                 f"labels: {', '.join(sorted(names)) or 'none'}")


def parse_incidents(text: str, metrics: set[str], *, source: str = "incidents",
                    labels: Mapping[str, Collection[str]] | None = None) -> list[
        KnownIncident]:
    """Parse an incidents CSV (see the module docstring); ``metrics`` are the config's metric
    names, ``labels`` (when given) each metric's label names, to refuse a label no series
    has. Raises :class:`IncidentsError` naming the row of the first problem."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise IncidentsError(f"{source}: missing column(s) {', '.join(missing)} "
                             f"(columns: start,end[,metric][,labels][,name]; "
                             f"found: {','.join(columns) or 'none'})")
    unknown = [c for c in columns if c not in (*REQUIRED, *OPTIONAL)]
    if unknown:
        raise IncidentsError(f"{source}: unknown column(s) {', '.join(unknown)} "
                             "(columns: start,end[,metric][,labels][,name])")
    reader.fieldnames = columns
    out = []
    for raw in reader:
        line = reader.line_num
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()) and None not in raw:
            continue  # a blank line
        where = f"{source} row {line}"
        if None in raw:  # its last fields had no column: read into the wrong ones
            raise IncidentsError(
                f"{where}: more fields than the header's {len(columns)} columns; separate "
                "labels with ';' (channel=app;region=uk) and quote a name holding a comma")
        start = _time(row.get("start", ""), "start", where)
        end = _time(row.get("end", ""), "end", where)
        if end <= start:
            raise IncidentsError(f"{where}: end {row['end']} is not after start {row['start']}")
        metric = row.get("metric") or None
        if metric is not None and metric not in metrics:
            close = difflib.get_close_matches(metric, sorted(metrics), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise IncidentsError(f"{where}: unknown metric {metric!r} "
                                 f"({hint}metrics: {', '.join(sorted(metrics))})")
        pairs = _labels(row.get("labels", ""), where)
        if labels is not None:
            _check_label_names(pairs, metric, labels, where)
        out.append(KnownIncident(line, row.get("name", ""), start, end, metric, pairs))
    if not out:
        raise IncidentsError(f"{source}: no incidents (a header and no rows)")
    return out


def load_incidents(path: Path, metrics: set[str],
                   labels: Mapping[str, Collection[str]] | None = None) -> list[KnownIncident]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IncidentsError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise IncidentsError(f"{path}: not UTF-8 text") from None
    return parse_incidents(text, metrics, source=str(path), labels=labels)


@dataclass(slots=True)
class Score:
    """Found/missed incidents and true/false episodes, for one metric or overall."""

    incidents: int = 0
    found: int = 0
    missed: list[KnownIncident] = field(default_factory=list)
    detect: list[timedelta] = field(default_factory=list)  # per found incident
    episodes: int = 0
    true_episodes: int = 0

    @property
    def false_episodes(self) -> int:
        return self.episodes - self.true_episodes

    @property
    def precision(self) -> float | None:
        return self.true_episodes / self.episodes if self.episodes else None

    @property
    def recall(self) -> float | None:
        return self.found / self.incidents if self.incidents else None

    def as_dict(self) -> dict[str, Any]:
        secs = [d.total_seconds() for d in self.detect]
        return {
            "incidents": self.incidents, "found": self.found, "missed": len(self.missed),
            "time_to_detect_median_s": median(secs) if secs else None,
            "time_to_detect_max_s": max(secs) if secs else None,
            "episodes": self.episodes, "true_episodes": self.true_episodes,
            "false_episodes": self.false_episodes,
            "precision": self.precision, "recall": self.recall,
            "missed_incidents": [{"name": i.name, "start": i.start.isoformat(),
                                  "end": i.end.isoformat(), "row": i.row}
                                 for i in self.missed],
        }


@dataclass(slots=True)
class IncidentReport:
    metrics: dict[str, Score]
    overall: Score
    #: incidents left out: outside every replayed range, or on a metric not replayed
    skipped: list[tuple[KnownIncident, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": {m: s.as_dict() for m, s in self.metrics.items()},
            "overall": self.overall.as_dict(),
            "skipped": [{"name": i.name, "start": i.start.isoformat(), "row": i.row,
                         "why": why} for i, why in self.skipped],
        }


def _matches(inc: KnownIncident, metric: str, labels: dict[str, str], t: datetime,
             interval: timedelta) -> bool:
    return ((inc.metric is None or inc.metric == metric)
            and all(labels.get(k) == v for k, v in inc.labels)
            and inc.start - interval < t < inc.end + interval)


def score_incidents(
    anomalies: pd.DataFrame,
    incidents: list[KnownIncident],
    spans: dict[str, tuple[datetime, datetime, timedelta]],
) -> IncidentReport:
    """Score a backtest's anomalies (``metric``, ``series``, ``timestamp`` columns) against
    ``incidents``; ``spans``: per replayed metric, the replayed ``(start, end, interval)``."""
    skipped: list[tuple[KnownIncident, str]] = []
    kept: list[KnownIncident] = []
    for inc in incidents:
        targets = [inc.metric] if inc.metric is not None else list(spans)
        if inc.metric is not None and inc.metric not in spans:
            skipped.append((inc, f"metric {inc.metric} not replayed"))
        elif not any(inc.start < spans[m][1] + spans[m][2] and inc.end > spans[m][0]
                     for m in targets):
            skipped.append((inc, "outside the replayed range"))
        else:
            kept.append(inc)
    by_metric: dict[str, list[tuple[datetime, dict[str, str]]]] = {m: [] for m in spans}
    for metric, series, ts in zip(anomalies["metric"], anomalies["series"],
                                  anomalies["timestamp"], strict=True):
        if metric in by_metric:
            try:
                labels = parse_series_key(series)[1]
            except ValueError:  # not a key (never expected): the metric-wide series
                labels = {}
            by_metric[metric].append((pd.Timestamp(ts).to_pydatetime(), labels))
    first: dict[int, datetime] = {}  # overall: incident row -> first matching bucket
    scores: dict[str, Score] = {}
    for metric, (_, _, interval) in spans.items():
        score = Score()
        mine = [i for i in kept if i.metric in (None, metric)]
        hits = sorted(by_metric[metric], key=lambda h: h[0])
        for inc in mine:
            score.incidents += 1
            when = next((t for t, labels in hits
                         if _matches(inc, metric, labels, t, interval)), None)
            if when is None:
                score.missed.append(inc)
                continue
            score.found += 1
            score.detect.append(max(timedelta(0), when - inc.start))
            first[inc.row] = min(first.get(inc.row, when), when)
        # episodes as in monitor.backtest.episodes: a run of anomalous buckets
        true_buckets = {t for t, labels in hits
                        if any(_matches(i, metric, labels, t, interval) for i in mine)}
        buckets = sorted({t for t, _ in hits})
        run_true = False
        for n, t in enumerate(buckets):
            if n == 0 or t - buckets[n - 1] > interval:
                score.episodes += 1
                run_true = False
            if t in true_buckets and not run_true:
                score.true_episodes += 1
                run_true = True
        scores[metric] = score
    overall = Score(
        incidents=len(kept), found=len(first),
        missed=[i for i in kept if i.row not in first],
        detect=[max(timedelta(0), first[i.row] - i.start) for i in kept if i.row in first],
        episodes=sum(s.episodes for s in scores.values()),
        true_episodes=sum(s.true_episodes for s in scores.values()),
    )
    return IncidentReport(scores, overall, skipped)


__all__ = ["IncidentReport", "IncidentsError", "KnownIncident", "Score", "load_incidents",
           "parse_incidents", "score_incidents"]
