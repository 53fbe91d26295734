"""Group anomalies into incidents: one per alert group (by default per journey), open while
anomalies keep arriving, resolved after a quiet period.

An incident gathers every measure of its group that moved (checkout drop-off, the complaint
surge, the CSAT dip of one journey), remembers the order in which they moved, and carries the
dimensional root cause of each measure (:func:`attribute`, computed by the pipeline from the
tick's leaf rows and the detectors' expected values) with the top contributing dimension
values and their share of the change. That is what alerts render.

Pure logic with explicit time: the pipeline persists what :meth:`IncidentTracker.observe` and
:meth:`IncidentTracker.resolve_quiet` return, inside the tick's transaction.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from detectors.mixshift import mix_shift
from detectors.rootcause import RootCause, analyse, prepare
from monitor.model import Anomaly, Series, ValueKind, parse_series_key, severity_name

#: Root causes (candidate sets) kept per measure of an incident.
TOP_ROOT_CAUSES = 3
#: A later root cause replaces the onset's only when its anomaly is this much more severe.
ONSET_UPGRADE = 25


@dataclass(slots=True)
class OpenIncident:
    """An incident that has not resolved yet."""

    key: str
    group: dict[str, str]
    opened_at: datetime
    last_anomaly_at: datetime
    severity: int
    series: set[str] = field(default_factory=set)
    last_notified_at: datetime | None = None
    notified_severity: int = 0
    #: metric -> {"first_at", "last_at", "direction", "severity"}: what moved, and when
    measures: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: metric -> {"at", "severity", "labels", "causes": [RootCause.to_dict()]}
    root_causes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ticks (of any metric) since the group's last anomaly
    quiet_ticks: int = 0
    #: ``{"by", "at", "label", "severity"}`` once every anomaly was called not a problem
    #: (:mod:`alerts.dismiss`): closed in the store then; the tracker keeps it only to take
    #: its group's later anomalies quietly until ``gap`` passes, unless they are worse
    dismissed: dict[str, Any] | None = None

    def measure_order(self) -> list[str]:
        """Metrics in the order they moved (first anomaly time, then name)."""
        return sorted(self.measures, key=lambda m: (self.measures[m]["first_at"], m))


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """What happened to one incident in one step, and whether to tell anyone now."""

    incident: OpenIncident
    status: str  # "opened" | "updated" | "resolved"
    anomalies: tuple[Anomaly, ...]
    notify: bool
    at: datetime


def grouping_labels(labels: Mapping[str, str], metric: str, *, kind: str = "outlier",
                    source: str | None = None) -> dict[str, str]:
    """The labels an alert group is formed from: the series' labels and cxmon's own, as
    routes see them (:func:`alerts.routing.alert_labels`): ``metric`` and ``alertname`` (the
    metric), ``kind`` and ``source`` (a series label of those two names wins).

    Why: ``group_by: [metric]`` (Alertmanager's habit: ``[alertname]``) found no ``metric``
    among the series' labels and put every anomaly of every metric into one incident.

    >>> grouping_labels({"journey": "checkout"}, "csat", source="zendesk")["metric"]
    'csat'
    """
    out = dict(labels)
    out["metric"] = out["alertname"] = metric
    out.setdefault("kind", kind)
    if source:
        out.setdefault("source", source)
    return out


def group_of(anomaly: Anomaly, group_by: Sequence[str],
             sources: Mapping[str, str] | None = None) -> dict[str, str]:
    """The anomaly's alert group: its values of the ``group_by`` labels (missing ones absent);
    ``sources``: metric -> its source's name, for the ``source`` label."""
    labels = grouping_labels(anomaly.labels, anomaly.metric, kind=anomaly.kind,
                             source=(sources or {}).get(anomaly.metric))
    return labels_group(labels, group_by)


def labels_group(labels: Mapping[str, str], group_by: Sequence[str]) -> dict[str, str]:
    return {k: labels[k] for k in group_by if k in labels}


def group_key(group: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(group.items())) or "all"


def incident_key(gk: str, first: datetime, after: str | None = None) -> str:
    """The key of a new incident of group ``gk`` whose first anomaly is at ``first``: the
    group and that minute, so a tick repeated after a crash or a restart finds the same
    incident. ``after``: the key of the dismissed incident this one follows (a rise to a
    higher severity level, :mod:`alerts.dismiss`); if it is of the same minute, a
    generation ``#2``, ``#3``... follows, counted from it (deterministic too). Why: the
    same key reopened the dismissed incident's row and undid the dismissal.

    >>> t = datetime(2026, 1, 5, 10, 0, 30)
    >>> incident_key("journey=checkout", t)
    'journey=checkout@2026-01-05T10:00Z'
    >>> incident_key("journey=checkout", t, "journey=checkout@2026-01-05T10:00Z")
    'journey=checkout@2026-01-05T10:00Z#2'
    >>> incident_key("journey=checkout", t, "journey=checkout@2026-01-05T10:00Z#2")
    'journey=checkout@2026-01-05T10:00Z#3'
    """
    key = f"{gk}@{first.strftime('%Y-%m-%dT%H:%MZ')}"
    if after is None:
        return key
    if after == key:
        return f"{key}#2"
    generation = after.removeprefix(f"{key}#")
    return f"{key}#{int(generation) + 1}" if generation.isdigit() else key


class IncidentTracker:
    """Tracks open incidents by group.

    ``gap``: anomalies of a group further apart than this start a new incident; an incident
    with no anomaly for ``gap`` resolves, once it also saw ``quiet_ticks`` normal ticks (calls
    of :meth:`resolve_quiet` without an anomaly of its group since the last one). ``renotify``:
    an update is sent only when the incident spread to new series or measures, grew in
    severity, or learned a root cause for a measure, and at most once per ``renotify``.
    Severity growth is ``severity_step`` points, or any rise across one of ``severity_levels``
    (cxmon's levels, and where a PagerDuty receiver's levels change): a rise from 48 to 52 turns
    a PagerDuty ``warning`` (low urgency) into an ``error`` (high urgency) that must be sent.
    """

    def __init__(
        self,
        group_by: Sequence[str],
        *,
        gap: timedelta = timedelta(hours=3),
        renotify: timedelta = timedelta(hours=1),
        severity_step: int = 10,
        quiet_ticks: int = 0,
        sources: Mapping[str, str] | None = None,
        severity_levels: Iterable[int] = (25, 50, 75),
    ) -> None:
        self.group_by = list(group_by)
        #: metric -> its source's name (the ``source`` label a group may be formed by)
        self.sources = dict(sources or {})
        self.gap = gap
        self.renotify = renotify
        self.severity_step = severity_step
        self.severity_levels = sorted(set(severity_levels))
        self.quiet_ticks = quiet_ticks
        self.open: dict[str, OpenIncident] = {}
        self._touched: set[str] = set()

    def active(self) -> list[OpenIncident]:
        """The open incidents that are firing (a dismissed one is closed: it inhibits
        nothing)."""
        return [inc for inc in self.open.values() if inc.dismissed is None]

    def dismiss(self, key: str, dismissal: Mapping[str, Any]) -> bool:
        """The incident ``key`` was dismissed (closed in the store by :mod:`alerts.dismiss`,
        maybe by another process): from now on its group's anomalies join it quietly, until
        ``gap`` passes without one (it then ends, with nothing to tell) or one is a higher
        severity level than when dismissed (a new incident opens, told as new). Whether an
        open incident had that key."""
        for inc in self.open.values():
            if inc.key == key:
                inc.dismissed = dict(dismissal)
                return True
        return False

    def snapshot(self) -> dict[str, OpenIncident]:
        """A copy to roll back to if the step's transaction fails."""
        return copy.deepcopy(self.open)

    def restore(self, snapshot: dict[str, OpenIncident]) -> None:
        self.open = snapshot

    def observe(
        self,
        anomalies: Iterable[Anomaly],
        at: datetime,
        root_causes: Sequence[Attribution] = (),
    ) -> list[IncidentChange]:
        """Attach anomalies (of one tick) and their root causes to incidents, opening new ones
        as needed."""
        by_group: dict[str, list[Anomaly]] = {}
        groups: dict[str, dict[str, str]] = {}
        for a in sorted(anomalies, key=lambda a: (a.timestamp, -a.severity, a.series)):
            group = group_of(a, self.group_by, self.sources)
            gk = group_key(group)
            by_group.setdefault(gk, []).append(a)
            groups[gk] = group
        changes = []
        for gk, items in by_group.items():
            first = items[0].timestamp
            after: str | None = None  # the key of a dismissed incident this one follows
            inc = self.open.get(gk)
            severity = max(a.severity for a in items)
            if inc is not None and first - inc.last_anomaly_at > self.gap:
                changes.append(self._resolve(gk, inc, inc.last_anomaly_at + self.gap))
                inc = None
            elif inc is not None and inc.dismissed is not None and \
                    _level(severity) > _level(inc.dismissed.get("severity")):
                # worse than what was called a false alarm: a new incident, a new page
                changes.append(self._resolve(gk, inc, at))
                after = inc.key
                inc = None
            new_series = {a.series for a in items}
            self._touched.add(gk)
            if inc is None:
                inc = OpenIncident(
                    key=incident_key(gk, first, after),
                    group=groups[gk],
                    opened_at=first,
                    last_anomaly_at=max(a.timestamp for a in items),
                    severity=severity,
                    series=new_series,
                    last_notified_at=at,
                    notified_severity=severity,
                )
                self.open[gk] = inc
                _add_measures(inc, items)
                _add_root_causes(inc, root_causes, self.group_by, gk, self.sources)
                changes.append(IncidentChange(inc, "opened", tuple(items), True, at))
                continue
            inc.quiet_ticks = 0
            spread = bool(new_series - inc.series)
            spread |= _add_measures(inc, items)
            spread |= _add_root_causes(inc, root_causes, self.group_by, gk, self.sources)
            grew = severity >= inc.notified_severity + self.severity_step or any(
                inc.notified_severity < level <= severity for level in self.severity_levels)
            inc.series |= new_series
            inc.severity = max(inc.severity, severity)
            inc.last_anomaly_at = max(inc.last_anomaly_at, max(a.timestamp for a in items))
            due = inc.last_notified_at is None or at - inc.last_notified_at >= self.renotify
            notify = (spread or grew) and due and inc.dismissed is None
            if notify:
                inc.last_notified_at = at
                inc.notified_severity = inc.severity
            changes.append(IncidentChange(inc, "updated", tuple(items), notify, at))
        return changes

    def resolve_quiet(self, now: datetime) -> list[IncidentChange]:
        """Count a normal tick for incidents without anomalies since the last call, and
        resolve those quiet for ``gap`` and ``quiet_ticks`` ticks."""
        for gk, inc in self.open.items():
            if gk not in self._touched:
                inc.quiet_ticks += 1
        self._touched.clear()
        return [
            self._resolve(gk, inc, now)
            for gk, inc in list(self.open.items())
            if now - inc.last_anomaly_at > self.gap and inc.quiet_ticks >= self.quiet_ticks
        ]

    def _resolve(self, gk: str, inc: OpenIncident, at: datetime) -> IncidentChange:
        del self.open[gk]
        return IncidentChange(inc, "resolved", (), True, at)


def _level(severity: Any) -> int:
    """0-3: low, medium, high, critical."""
    return ("low", "medium", "high", "critical").index(severity_name(int(severity or 0)))


def _add_measures(inc: OpenIncident, items: Sequence[Anomaly]) -> bool:
    """Record which measures moved and when; True if a measure is new to the incident."""
    new = False
    for a in items:
        m = inc.measures.get(a.metric)
        at = a.timestamp.isoformat()
        if m is None:
            inc.measures[a.metric] = {"first_at": at, "last_at": at, "direction": str(a.direction),
                                      "severity": a.severity}
            new = True
            continue
        m["last_at"] = max(m["last_at"], at)
        if a.severity > m["severity"]:
            m["severity"], m["direction"] = a.severity, str(a.direction)
    return new


# --- root cause -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribution:
    """The root cause of one measure's deviation at one time, within one split group."""

    metric: str
    labels: dict[str, str]  # the group's labels (metric labels and split_by values)
    timestamp: datetime
    severity: int  # the highest severity among the anomalies it explains
    causes: tuple[RootCause, ...]
    split: dict[str, str] = field(default_factory=dict)  # the split_by values of the group
    #: no cause because every dimension value moved alike (no single culprit)
    spread: bool = False
    #: a rate that moved because volume moved between dimension values
    #: (:class:`detectors.mixshift.MixShift` as a dict), else None
    mix: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": dict(self.split),
            "at": self.timestamp.isoformat(),
            "severity": self.severity,
            "labels": dict(self.labels),
            "causes": [c.to_dict() for c in self.causes],
            "spread": self.spread,
            "mix": self.mix,
        }


def _add_root_causes(
    inc: OpenIncident, attributions: Sequence[Attribution], group_by: Sequence[str], gk: str,
    sources: Mapping[str, str] | None = None,
) -> bool:
    """Keep, per measure, the root cause found at its onset (before the detectors start to
    learn the new level), upgraded only by a clearly more severe moment; True if new.

    A root cause from before the incident opened is not its own (a first tick that learns
    from history finds the old incidents' causes too) and is ignored."""
    new = False
    for att in attributions:
        said = att.causes or att.spread or att.mix
        labels = grouping_labels(att.labels, att.metric,
                                 source=(sources or {}).get(att.metric))
        if not said or group_key(labels_group(labels, group_by)) != gk:
            continue
        if att.timestamp < inc.opened_at:
            continue
        # one root cause per measure and split group; split values the incident's group
        # already says (split_by [journey], group_by [journey]) name nothing more
        split = {k: v for k, v in att.split.items() if k not in group_by}
        key = att.metric + (f"{{{group_key(split)}}}" if split else "")
        old = inc.root_causes.get(key)
        if old is None or att.severity >= old["severity"] + ONSET_UPGRADE:
            new |= old is None
            inc.root_causes[key] = {**att.to_dict(), "split": split}
    return new


def attribute(
    frame: pd.DataFrame,
    scores: pd.DataFrame | None,
    series: Mapping[str, Series],
    anomalies: Sequence[Anomaly],
    *,
    kind: ValueKind,
    dimensions: Sequence[str],
    split_by: Sequence[str] = (),
    top: int = TOP_ROOT_CAUSES,
    gone: pd.DataFrame | None = None,
    usual_volume: Callable[[pd.Timestamp, Sequence[str]], Mapping[str, float]] | None = None,
) -> list[Attribution]:
    """Root cause of every (time, split group) of a metric's tick that has an anomaly.

    ``frame`` is the tick's measure frame (all groupings), ``scores`` the detection scores
    (SCORE_COLUMNS: expected value and band of every point, leaves included). The leaves are
    the series carrying every dimension; their actual numerator (and denominator) come from
    the frame, their expected value from the scores, their noise from the band. A leaf the
    detectors cannot judge yet (no expected value) is taken as normal. ``gone``
    (:data:`monitor.detection.GONE_COLUMNS`): leaves seen recently that sent no row, with what
    was expected of them; a sum counts them at zero, a ratio or mean as no volume (no rate to
    judge, but the volume they lost is part of a mix shift).
    ``usual_volume(time, leaf keys)``: each leaf's usual denominator at that time; with it, a
    ratio or mean that moved because its volume moved between leaves says so (``mix``).
    """
    dims = list(dimensions)
    if not dims or scores is None or scores.empty or not anomalies:
        return []
    wanted: dict[tuple[pd.Timestamp, tuple[str, ...]], int] = {}
    for a in anomalies:
        if a.kind != "outlier" or any(k not in a.labels for k in split_by):
            continue
        key = (pd.Timestamp(a.timestamp), tuple(a.labels[k] for k in split_by))
        wanted[key] = max(wanted.get(key, 0), a.severity)
    # leaves the detectors filled in (``missing: zero|carry``: a known leaf that sent no rows,
    # e.g. a channel whose volume collapsed to nothing) are not in the frame, only scored
    labels_of = {k: s.labels for k, s in series.items() if set(dims) <= set(s.dimensions)}
    known = pd.unique(scores["series"])
    if gone is not None and len(gone):
        known = pd.unique(np.concatenate([known, gone["series"].to_numpy(dtype=object)]))
    for key in known:
        if key not in series:
            lab = parse_series_key(str(key))[1]
            if all(d in lab for d in dims):
                labels_of[str(key)] = lab
    if not wanted or not labels_of:
        return []
    leaves = frame[frame["series"].isin(labels_of)]
    leaves = leaves.merge(
        scores[["timestamp", "series", "expected", "lower", "upper"]],
        on=["timestamp", "series"], how="left",
    )
    filled = scores.iloc[:0]
    if "value" in scores.columns:
        scored = scores[scores["series"].isin(labels_of) & np.isfinite(scores["value"])]
        seen = pd.MultiIndex.from_frame(leaves[["timestamp", "series"]])
        filled = scored[~pd.MultiIndex.from_frame(scored[["timestamp", "series"]]).isin(seen)]
    if gone is not None and len(gone):  # vanished: a sum at zero, a ratio without volume
        gone = gone[gone["series"].isin(labels_of) & np.isfinite(gone["expected"])]
        filled = pd.concat([filled, gone.assign(value=0.0)], ignore_index=True)
    if len(filled):  # a sum is the filled value; a ratio has no parts, so no say in it
        leaves = pd.concat([leaves, filled.assign(numerator=0.0, denominator=0.0)[
            ["timestamp", "series", "value", "numerator", "denominator", "expected", "lower",
             "upper"]]], ignore_index=True)
    for col in (*split_by, *dims):
        leaves[col] = [labels_of[k].get(col, "") for k in leaves["series"]]
    out = []
    for (ts, split), severity in sorted(wanted.items()):
        sel = leaves["timestamp"] == ts
        for col, val in zip(split_by, split, strict=True):
            sel &= leaves[col] == val
        snap = leaves[sel]
        if snap.empty:
            continue
        found = analyse(_leaf_cube(snap, kind, dims), top=top)
        first = str(snap["series"].iloc[0])
        labels = {k: v for k, v in labels_of[first].items() if k not in dims}
        mix = None
        if usual_volume is not None and kind is not ValueKind.SUM:
            usual = usual_volume(ts, snap["series"].tolist())
            shift = mix_shift(
                snap[dims].reset_index(drop=True), dims,
                numerator=snap["numerator"].to_numpy(dtype=np.float64),
                denominator=snap["denominator"].to_numpy(dtype=np.float64),
                expected_rate=snap["expected"].to_numpy(dtype=np.float64),
                usual_volume=[usual.get(str(k), 0.0) for k in snap["series"]],
            ) if usual else None
            mix = shift.to_dict() if shift is not None else None
        causes = tuple(found.causes)
        if mix is not None and mix["portion"] >= 1.0 - MINOR_RATE_PORTION:
            causes = ()  # the rates explain (almost) nothing: a part's noise, not a cause
        out.append(Attribution(
            metric=parse_series_key(first)[0], labels=labels,
            timestamp=ts.to_pydatetime(), severity=severity, causes=causes,
            split=dict(zip(split_by, split, strict=True)), spread=found.spread, mix=mix,
        ))
    return out


def _leaf_cube(snap: pd.DataFrame, kind: ValueKind, dims: list[str]) -> Any:
    """Leaf rows -> root-cause cube: numerators against expected numerators (exact parts)."""
    value = snap["value"].to_numpy(dtype=np.float64)
    expected = snap["expected"].to_numpy(dtype=np.float64)
    unknown = ~np.isfinite(expected)
    expected = np.where(unknown, value, expected)  # not judged yet: taken as normal
    half = np.fmax(snap["upper"].to_numpy(dtype=np.float64) - expected,
                   expected - snap["lower"].to_numpy(dtype=np.float64))
    noise = half / 3.0  # the detectors' band is +/- 3 sd by default
    bad = ~np.isfinite(noise) | (noise <= 0)
    if bad.all():
        noise = None
    elif bad.any():
        rel = np.nanmedian(np.where(bad, np.nan, noise / np.maximum(np.abs(expected), 1e-12)))
        noise = np.where(bad, rel * np.abs(expected), noise)
    df = snap[dims].copy()
    if kind is ValueKind.SUM:
        df["actual"], df["expected"] = value, expected
        if noise is not None:
            df["noise"] = noise
        return prepare(df, dims, actual="actual", expected="expected",
                       noise="noise" if noise is not None else None)
    den = snap["denominator"].to_numpy(dtype=np.float64)
    df["actual"] = snap["numerator"].to_numpy(dtype=np.float64)
    df["denominator"] = den
    df["expected"] = expected * den  # expected rate * actual volume
    df["expected_denominator"] = den
    if noise is not None:
        df["noise"] = noise
    return prepare(df, dims, actual="actual", expected="expected", denominator="denominator",
                   expected_denominator="expected_denominator",
                   noise="noise" if noise is not None else None)


#: With a mix shift, the parts' own rates must explain more than this part of the change for
#: the rate root cause to be kept beside it.
MINOR_RATE_PORTION = 0.25


# --- what alerts and the store see ------------------------------------------------------------


def root_cause_payload(inc: OpenIncident, top: int = 1) -> list[dict[str, Any]]:
    """``[{metric, at, elements, share, score, contributions}]``: the best ``top`` root causes
    of each measure (and split group), measures in the order they moved.

    A split group's values (``split_by``) are part of its elements (``channel=app,
    region=uk``): its share is of that group's change, and several groups of one measure
    each keep their own cause."""
    by_metric: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, rc in sorted(inc.root_causes.items()):
        by_metric.setdefault(str(rc.get("metric") or key), []).append((key, rc))
    out = []
    for metric in inc.measure_order() + sorted(set(by_metric) - set(inc.measures)):
        for _, rc in by_metric.get(metric, []):
            split = dict(rc.get("split") or {})
            if rc.get("mix"):  # the volume moved, not the rates: said first
                out.append({"metric": metric, "at": rc["at"], "elements": [], "mix": rc["mix"],
                            "split": split, "share": None, "score": None, "contributions": []})
            if rc.get("spread") and not rc["causes"] and not rc.get("mix"):
                # said, so no one hunts for a culprit
                out.append({"metric": metric, "at": rc["at"], "elements": [], "spread": True,
                            "split": split, "share": None, "score": None, "contributions": []})
            for cause in rc["causes"][:top]:
                out.append({
                    "metric": metric,
                    "at": rc["at"],
                    "elements": [{**split, **e} for e in cause["elements"]],
                    "share": cause["share"],
                    "score": cause["score"],
                    "contributions": [{**c, "element": {**split, **c["element"]}}
                                      for c in cause["contributions"]],
                })
    return out


def incident_summary(inc: OpenIncident) -> dict[str, Any]:
    """The incident's measures (in the order they moved) and root causes, for the store."""
    return {
        "measures": [{"metric": m, **inc.measures[m]} for m in inc.measure_order()],
        "root_causes": copy.deepcopy(inc.root_causes),
        "root_cause": root_cause_payload(inc),
        "contributors": contributors(inc),
        "quiet_ticks": inc.quiet_ticks,
    }


def restore_summary(inc: OpenIncident, summary: Mapping[str, Any]) -> None:
    """Inverse of :func:`incident_summary` (after a restart)."""
    for m in summary.get("measures") or []:
        m = dict(m)
        inc.measures[m.pop("metric")] = m
    inc.root_causes = copy.deepcopy(dict(summary.get("root_causes") or {}))
    inc.quiet_ticks = int(summary.get("quiet_ticks") or 0)


def contributors(inc: OpenIncident, top: int = 5) -> list[dict[str, Any]]:
    """Top contributing dimension values across the incident's measures, by |share|."""
    items = []
    for entry in root_cause_payload(inc):
        for c in entry["contributions"]:
            share = c.get("share")
            items.append({"metric": entry["metric"], **c,
                          "_key": abs(share) if share is not None and math.isfinite(share) else 0})
    items.sort(key=lambda c: -c["_key"])
    return [{k: v for k, v in c.items() if k != "_key"} for c in items[:top]]
