"""Run a metric's detectors over a measure frame, bucket by bucket, in time order.

Shared by the live pipeline and ``cxmon backtest`` so both see exactly the same decisions.
Each bucket is scored against state learned from earlier buckets only (no look-ahead), then
post-rules decide, then the detectors learn with the decision (flagged points learn slowly).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.calendar import CalendarDay, Calendars
from detectors.feedback import FeedbackBook
from detectors.postrules import (
    MissingPolicy,
    PostRules,
    RuleState,
    decades_for_severity,
    severity_from_score,
)
from detectors.prophet_detector import FitReport
from detectors.registry import create as create_detector
from monitor.durations import format_duration
from monitor.model import Anomaly, Direction, Series
from monitor.staleness import NO_DATA_SEVERITY

_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
SCORE_COLUMNS = ["timestamp", "series", "value", "expected", "lower", "upper", "score", "severity"]


@dataclass(slots=True)
class DetectionResult:
    anomalies: list[Anomaly] = field(default_factory=list)
    scores: pd.DataFrame | None = None  # SCORE_COLUMNS, first detector's view of each point
    #: GONE_COLUMNS: series that sent no row in a bucket they were expected in (recently seen,
    #: ``missing: skip``), with the first detector's expectation, for the root cause only
    gone: pd.DataFrame | None = None
    #: Calendar days met (local ISO date -> the day): buckets not learned, and not scored
    #: on ``skip`` days
    calendar_days: dict[str, CalendarDay] = field(default_factory=dict)


GONE_COLUMNS = ["timestamp", "series", "expected", "lower", "upper"]
#: A series absent for at most this many intervals (or ``no_data_after``, if longer) still
#: takes part in a sum's root cause, at zero.
GONE_WITHIN = 3


def refractory_at_alert_level(config: DetectorConfig, min_severity: float) -> DetectorConfig:
    """``config`` with its refractory period starting where the metric alerts, unless the
    config sets ``refractory_decades`` itself.

    Why: a detector that goes quiet after its first strong point (``novelty``, ``surprise``)
    must not go quiet on a point too weak to alert: the first point of a level drop at
    severity 20 would silence the drop's stronger points under the default ``min_severity``
    of 25, and the incident would never be alerted.
    """
    if ("refractory_decades" not in type(config).model_fields
            or "refractory_decades" in config.model_fields_set):
        return config
    return config.model_copy(update={"refractory_decades": decades_for_severity(min_severity)})


class MetricDetectors:
    """The detectors configured for one metric, with their per-series state."""

    def __init__(
        self,
        metric: str,
        interval: timedelta,
        detectors: Mapping[str, DetectorConfig],
        rules: PostRules,
        feedback: FeedbackBook | None = None,
        calendar: Calendars | None = None,
        zone: str = "UTC",
    ) -> None:
        self.metric = metric
        self.rules = rules
        #: Holidays and events: their points are not learned (``skip``: nor scored)
        self.calendar = calendar
        self._cals = calendar.series_calendars() if calendar is not None else []
        self._cal_of: dict[str, int] = {}  # series -> index in _cals
        self._cal_seen: frozenset[str] | None = None  # by-label values of the series seen
        self.feedback = feedback if feedback is not None else FeedbackBook()
        self.feedback.zone = zone  # the metric's wall clock: ``expected`` follows its hours
        #: Detector name -> its type (``robust_seasonal``), for messages.
        self.types = {name: cfg.type for name, cfg in detectors.items()}
        self.detectors: dict[str, Detector] = {
            name: create_detector(refractory_at_alert_level(cfg, rules.min_severity),
                                  interval=interval)
            for name, cfg in detectors.items()
        }
        #: Per-series post-rule state (streaks, suppression, last values), one per detector.
        self.rule_states: dict[str, RuleState] = {
            name: RuleState(rules, interval) for name in self.detectors
        }
        self.interval = interval
        self._labels: dict[str, Mapping[str, str]] = {}
        #: Per detector: the newest bucket (ns) in which it could not score a point that had
        #: a value (still warming up on some series); absent = it scored every point so far.
        self.cold_until: dict[str, int] = {}

    def warmup_periods(self) -> dict[str, timedelta]:
        """The warm-up each detector declares (``warmup_period``), by detector name."""
        out = {}
        for name, det in self.detectors.items():
            period = getattr(det, "warmup_period", None)
            if isinstance(period, timedelta) and period > timedelta(0):
                out[name] = period
        return out

    def warming(self, start: datetime, interval: timedelta) -> tuple[datetime, str] | None:
        """Whether some detector could not score points at or after ``start`` because it had
        not learned enough yet: the end of its newest such bucket, and what each of them
        needs (``"robust_seasonal needs 1w"``); None when all were scored."""
        start_ns = int(start.timestamp() * 1e6) * 1000
        cold = {n: t for n, t in self.cold_until.items() if t >= start_ns}
        if not cold:
            return None
        until = datetime.fromtimestamp(max(cold.values()) // 1000 / 1e6, UTC) + interval
        periods = self.warmup_periods()
        names = {n: self.types.get(n, n) if n in ("default", self.types.get(n))
                 else f"{n} [{self.types[n]}]" for n in cold}
        needs = ", ".join(f"{names[n]} needs {format_duration(periods[n])}" if n in periods
                          else f"{names[n]} was not scoring yet" for n in sorted(cold))
        return until, needs

    def checkpoint_name(self, detector: str) -> str:
        """Name under which a detector's state is checkpointed (unique per metric)."""
        return f"{self.metric}/{detector}"

    def checkpoint_names(self) -> list[str]:
        """Every checkpoint name this metric writes (detector states and post-rule states)."""
        return [n for d in self.detectors
                for n in (self.checkpoint_name(d), self.checkpoint_name(d) + "#rules")]

    def stale(self, before: datetime) -> list[str]:
        """Series whose newest real point started before ``before`` (first detector's
        post-rule state, which every series of the metric goes through)."""
        if not self.detectors:
            return []
        before_ns = int(pd.Timestamp(before).as_unit("ns").value)
        return self.rule_states[next(iter(self.detectors))].stale(before_ns)

    def forget(self, series: list[str]) -> None:
        """Drop every per-series structure of ``series``: detector states, post-rule states
        and the label and calendar caches. Why: series of churning dimension values
        (campaign ids, app versions) would otherwise be kept in memory forever."""
        for name, det in self.detectors.items():
            det.forget(series)
            self.rule_states[name].forget(series)
        for key in series:
            self._labels.pop(key, None)
            self._cal_of.pop(key, None)

    def knows(self, key: str) -> bool:
        """Whether the metric holds state of series ``key`` (seen and not forgotten)."""
        return bool(self.detectors) and key in self.rule_states[next(iter(self.detectors))]

    def set_executor(self, executor: Executor) -> None:
        """Run slow fits (detectors with ``set_executor``, e.g. Prophet) on ``executor``."""
        for det in self.detectors.values():
            setter = getattr(det, "set_executor", None)
            if setter is not None:
                setter(executor)

    def fit_reports(self) -> dict[str, FitReport]:
        """Slow fits installed and failed since the last call, per detector that has them."""
        out = {}
        for name, det in self.detectors.items():
            drain = getattr(det, "drain_fit_report", None)
            if drain is not None:
                out[name] = drain()
        return out

    def collect_fits(self) -> None:
        """Install the slow fits that have finished, in every detector that has them."""
        for det in self.detectors.values():
            collect = getattr(det, "collect_fits", None)
            if collect is not None:
                collect()

    def fits_in_flight(self) -> dict[str, int]:
        """Slow fits handed out and not installed yet, per detector that has them."""
        return {name: det.pending() for name, det in self.detectors.items()
                if callable(getattr(det, "pending", None))}

    def pending_fits(self) -> list[Future]:
        """Futures of the slow fits in flight, over all detectors."""
        return [f for det in self.detectors.values()
                for f in (getattr(det, "pending_futures", None) or list)()]

    def checkpoints(self, keys: list[str]) -> dict[str, dict[str, bytes]]:
        """Everything to checkpoint after a tick, by checkpoint name: each detector's state
        of ``keys`` and its post-rule state of every series the tick touched."""
        out: dict[str, dict[str, bytes]] = {}
        for name, det in self.detectors.items():
            out[self.checkpoint_name(name)] = det.get_state(keys)
            rs = self.rule_states[name]
            out[self.checkpoint_name(name) + "#rules"] = rs.get_state(sorted(rs.dirty))
            rs.dirty.clear()
        return out

    def restore(self, load: Callable[[str], Mapping[str, bytes]]) -> list[str]:
        """Restore detector and post-rule state with ``load(checkpoint name)``; returns the
        names whose state could not be used (learned afresh)."""
        unusable = []
        for name, det in self.detectors.items():
            for cname, target in ((self.checkpoint_name(name), det),
                                  (self.checkpoint_name(name) + "#rules", self.rule_states[name])):
                states = load(cname)
                if not states:
                    continue
                try:
                    target.set_state(states)
                except ValueError:  # e.g. the interval or detector settings changed
                    unusable.append(cname)
        return unusable

    def run(
        self,
        frame: pd.DataFrame,
        series: Mapping[str, Series],
        *,
        keep_scores: bool = False,
        until: datetime | None = None,
        metric_silent: bool = False,
    ) -> DetectionResult:
        """Score, decide and learn every bucket of ``frame`` (MEASURE_COLUMNS) in time order.

        With ``until`` (the end of the polled range), series that stopped arriving while
        others of the metric still arrive are reported once per gap as ``kind="no_data"``
        after ``no_data_after``. A silent metric as a whole (``metric_silent``, or no rows)
        is :mod:`monitor.staleness`'s to report: one anomaly, not one per series; series
        still silent once the metric is back are reported then.
        """
        result = DetectionResult()
        self._labels.update({k: s.labels for k, s in series.items()})
        self._narrow_totals_calendar()
        self.collect_fits()  # slow fits finished since the last tick
        if frame.empty:  # the whole metric is silent: monitor.staleness reports that
            return result
        frame = frame.sort_values(["timestamp", "series"], kind="stable")
        ts_ns = frame["timestamp"].dt.as_unit("ns").astype("int64").to_numpy()
        # one str object per series, not per row (a first tick's history has millions of rows)
        codes, uniques = pd.factorize(frame["series"])
        keys = np.asarray(uniques, dtype=object)[codes]
        values = frame["value"].to_numpy(dtype=np.float64)
        volumes = frame["denominator"].to_numpy(dtype=np.float64)
        bounds = np.flatnonzero(np.diff(ts_ns)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(ts_ns)]])
        score_parts: list[pd.DataFrame] = []
        gone_parts: list[pd.DataFrame] = []
        for lo, hi in zip(starts, ends, strict=True):
            polled = TickBatch(keys[lo:hi], ts_ns[lo:hi], values[lo:hi], volumes[lo:hi])
            days = self._bucket_days(int(ts_ns[lo]), result, keys[lo:hi])
            first = True
            for name, det in self.detectors.items():
                state = self.rule_states[name]
                batch, filled = state.fill(polled)
                scores = det.score(batch)
                # per series: 0 an ordinary day, 1 a score day, 2 a skip day (shown, not judged)
                modes = None if days is None else self._modes(batch.series, days)
                if modes is not None and (modes == 2).any():
                    scores = Scores(scores.expected, scores.lower, scores.upper,
                                    np.where(modes == 2, np.nan, scores.score))
                cold = np.isnan(scores.score) & np.isfinite(batch.values)
                if modes is not None:
                    cold &= modes == 0
                if cold.any():
                    self.cold_until[name] = int(batch.timestamps[cold].max())
                need = None
                if self.feedback:
                    need = self.feedback.min_severity(batch.series, batch.timestamps,
                                                      self.rules.min_severity)
                decision = state.decide(batch, scores, filled=filled, min_severity=need)
                flags = decision.alert
                learned = batch
                if self.rules.missing is MissingPolicy.CARRY and filled.any():
                    learned = TickBatch(batch.series, batch.timestamps,
                                        np.where(filled, np.nan, batch.values), batch.volumes)
                if modes is None or getattr(det, "learns_calendar_days", None):
                    det.learn(learned, decision.rare)
                else:
                    # a holiday or an event must not become the baseline: as if it sent
                    # nothing; a score day is still scored as usual (observe)
                    if (ordinary := np.flatnonzero(modes == 0)).size:
                        det.learn(learned.take(ordinary), decision.rare[ordinary])
                    if (scored := np.flatnonzero(modes == 1)).size:
                        det.observe(learned.take(scored))
                if flags.any():
                    result.anomalies.extend(self._anomalies(name, batch, scores, flags, series))
                if keep_scores and first:
                    score_parts.append(
                        pd.DataFrame(
                            {
                                "timestamp": batch.timestamps,
                                "series": batch.series,
                                "value": batch.values,
                                "expected": scores.expected,
                                "lower": scores.lower,
                                "upper": scores.upper,
                                "score": scores.score,
                                "severity": severity_from_score(scores.score),
                            }
                        )
                    )
                    gone = self._gone(det, state, polled)
                    if gone is not None:
                        gone_parts.append(gone)
                first = False
        if keep_scores and score_parts:
            scores_df = pd.concat(score_parts, ignore_index=True)
            scores_df["timestamp"] = pd.to_datetime(scores_df["timestamp"], utc=True)
            result.scores = scores_df
        if gone_parts:
            gone = pd.concat(gone_parts, ignore_index=True)
            gone["timestamp"] = pd.to_datetime(gone["timestamp"], utc=True)
            result.gone = gone
        if not metric_silent:
            self._no_data(until, result)
        return result

    def _gone(self, det: Detector, state: RuleState, polled: TickBatch) -> pd.DataFrame | None:
        """What ``det`` expected of the series recently seen that sent nothing in ``polled``'s
        bucket (scoring is pure: NaN values, nothing learned); None when there are none or
        ``missing`` fills them in (then they are scored as usual)."""
        if self.rules.missing is not MissingPolicy.SKIP:
            return None
        keys = state.recently_gone(polled, max(GONE_WITHIN, self.rules.no_data_after))
        if not keys:
            return None
        n = len(keys)
        batch = TickBatch(np.array(keys, dtype=object), np.full(n, polled.timestamps[0]),
                          np.full(n, np.nan), np.full(n, np.nan))
        s = det.score(batch)
        return pd.DataFrame({"timestamp": batch.timestamps, "series": batch.series,
                             "expected": s.expected, "lower": s.lower, "upper": s.upper})

    def _bucket_days(self, ts_ns: int, result: DetectionResult, keys: np.ndarray
                     ) -> list[CalendarDay | None] | None:
        """What each calendar says of the bucket starting at ``ts_ns``; None on an ordinary
        day everywhere, the common case, which costs nothing per series. A day is noted in
        ``result`` only for a calendar some series of the bucket (``keys``) follows: a
        ``region=DE`` calendar when the series say ``region=de`` skipped nothing."""
        if not self._cals:
            return None
        # a bucket counts as the local day of its middle (a daily bucket: the day it mostly
        # covers, also west of UTC, where midnight UTC is the evening before)
        mid_ns = ts_ns + int(self.interval.total_seconds() * 1e9) // 2
        days = [cal.day_at_ns(mid_ns) for _, cal in self._cals]
        if not any(days):
            return None
        at = datetime.fromtimestamp(mid_ns // 1000 / 1e6, UTC)
        used = {self._calendar_index(str(k)) for k in set(keys)}
        for i, ((where, cal), day) in enumerate(zip(self._cals, days, strict=True)):
            if day is not None and i in used:
                local = at.astimezone(cal.zone).date().isoformat()
                result.calendar_days.setdefault(f"{local} ({where})" if where else local, day)
        return days

    def _modes(self, keys: np.ndarray, days: list[CalendarDay | None]) -> np.ndarray:
        """Per series: 0 ordinary, 1 a ``score`` day, 2 a ``skip`` day of its calendar."""
        per_cal = np.array([0 if d is None else 2 if d.mode == "skip" else 1 for d in days],
                           dtype=np.int8)
        return per_cal[np.fromiter((self._calendar_index(str(k)) for k in keys), np.int64,
                                   len(keys))]

    def calendar_learners(self) -> list[str]:
        """The detectors that learn calendar days all the same, with why (``learns_calendar_
        days``: Prophet with holidays of its own, ``novelty`` whose shapes are positions),
        named as in messages: ``seasonal [prophet] (holidays or events of its own)``."""
        if self.calendar is None:
            return []
        return [f"{n if n in ('default', self.types[n]) else f'{n} [{self.types[n]}]'} ({why})"
                for n, det in self.detectors.items()
                if (why := getattr(det, "learns_calendar_days", None))]

    def calendar_unmatched(self) -> tuple[str, list[str], list[str]] | None:
        """``(label, by-values no series had, values the series had)`` when the series carry
        ``calendar.by.label`` but some of its listed values never came (``DE`` for ``de``: a
        value's calendar that applies to nothing); None otherwise."""
        if self.calendar is None or self.calendar.label is None:
            return None
        seen = sorted(self._by_values_seen())
        unmatched = [v for v in self.calendar.values() if v not in seen]
        return (self.calendar.label, unmatched, seen) if seen and unmatched else None

    def _by_values_seen(self) -> frozenset[str]:
        """The values of ``calendar.by.label`` that the series seen so far carry."""
        label = self.calendar.label if self.calendar is not None else None
        return frozenset(str(labels[label]) for labels in self._labels.values()
                         if label in labels)

    def _narrow_totals_calendar(self) -> None:
        """Totals over the ``by`` label follow the calendars of the values the series have
        (``DE`` listed where the source says ``de`` moves no total)."""
        cal = self.calendar
        if cal is None or not cal.rolled_up or cal.label is None or not self._cals:
            return
        seen = self._by_values_seen()
        if seen != self._cal_seen:
            self._cal_seen = seen
            self._cals[-1] = (self._cals[-1][0], cal.combined(seen))

    def _calendar_index(self, key: str) -> int:
        index = self._cal_of.get(key)
        if index is None:
            assert self.calendar is not None
            where = self.calendar.where(self._labels_of(key))
            index = next(i for i, (w, _) in enumerate(self._cals) if w == where)
            self._cal_of[key] = index
        return index

    def _labels_of(self, key: str) -> Mapping[str, str]:
        """A series' labels: as polled, or read back from its key."""
        labels = self._labels.get(key)
        if labels is None:
            labels = {k: v.replace('\\"', '"') for k, v in _LABEL.findall(key)}
        return labels

    def _skips(self, key: str, at: datetime) -> bool:
        """Whether series ``key``'s calendar makes ``at``'s bucket a ``skip`` day."""
        return self._cals[self._calendar_index(key)][1].skips(at) if self._cals else False

    def _no_data(self, until: datetime | None, result: DetectionResult) -> None:
        """``kind="no_data"`` anomalies (first detector's post-rule state) up to ``until``."""
        if until is None or not self.detectors:
            return
        name = next(iter(self.detectors))
        until_ns = int(pd.Timestamp(until).as_unit("ns").value)
        bucket = until - self.interval / 2  # the newest bucket's middle (its calendar day)
        # a series closed for the day is no gap while the day lasts (reported after it)
        hold = (lambda key: self._skips(key, bucket)) if self._cals else None
        for key, at_ns, last, seen_ns in self.rule_states[name].no_data(until_ns, hold=hold):
            labels = self._labels_of(key)
            result.anomalies.append(
                Anomaly(
                    series=key, metric=self.metric, labels=dict(labels),
                    timestamp=datetime.fromtimestamp(at_ns / 1e9, tz=UTC),
                    value=float("nan"), expected=last, lower=last, upper=last, score=1.0,
                    severity=NO_DATA_SEVERITY, direction=Direction.DOWN, detector=name,
                    kind="no_data", last_seen=datetime.fromtimestamp(seen_ns / 1e9, tz=UTC),
                )
            )

    def _anomalies(
        self,
        detector: str,
        batch: TickBatch,
        scores: Scores,
        flags: np.ndarray,
        series: Mapping[str, Series],
    ) -> list[Anomaly]:
        idx = np.flatnonzero(flags)
        sev = severity_from_score(scores.score[idx])
        out = []
        for j, i in enumerate(idx):
            key = str(batch.series[i])
            s = series.get(key)
            value = float(batch.values[i])
            expected = float(scores.expected[i])
            out.append(
                Anomaly(
                    series=key,
                    metric=self.metric,
                    labels=dict(s.labels) if s else dict(self._labels.get(key, {})),
                    timestamp=datetime.fromtimestamp(int(batch.timestamps[i]) / 1e9, tz=UTC),
                    value=value,
                    expected=expected,
                    lower=float(scores.lower[i]),
                    upper=float(scores.upper[i]),
                    score=float(scores.score[i]),
                    severity=int(sev[j]),
                    direction=Direction.UP if value > expected else Direction.DOWN,
                    detector=detector,
                    volume=_volume(batch.volumes[i]),
                )
            )
        return out


def _volume(raw: float) -> float | None:
    """A point's volume for its alert text; None where there is none (a sum's NaN)."""
    v = float(raw)
    return v if math.isfinite(v) else None
