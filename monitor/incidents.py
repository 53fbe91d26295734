"""Group anomalies into incidents: one per alert group (by default per journey), open while
anomalies keep arriving, resolved after a quiet period.

Pure logic with explicit time: the pipeline persists what :meth:`IncidentTracker.observe` and
:meth:`IncidentTracker.resolve_quiet` return, inside the tick's transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.model import Anomaly


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


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """What happened to one incident in one step, and whether to tell anyone now."""

    incident: OpenIncident
    status: str  # "opened" | "updated" | "resolved"
    anomalies: tuple[Anomaly, ...]
    notify: bool
    at: datetime


def group_of(anomaly: Anomaly, group_by: Sequence[str]) -> dict[str, str]:
    """The anomaly's alert group: its values of the ``group_by`` labels (missing ones absent)."""
    return {k: anomaly.labels[k] for k in group_by if k in anomaly.labels}


def group_key(group: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(group.items())) or "all"


class IncidentTracker:
    """Tracks open incidents by group.

    ``gap``: anomalies of a group further apart than this start a new incident; an incident
    with no anomaly for ``gap`` resolves. ``renotify``: an update is sent only when the incident
    spread to new series or grew in severity, and at most once per ``renotify``.
    """

    def __init__(
        self,
        group_by: Sequence[str],
        *,
        gap: timedelta = timedelta(hours=3),
        renotify: timedelta = timedelta(hours=1),
        severity_step: int = 10,
    ) -> None:
        self.group_by = list(group_by)
        self.gap = gap
        self.renotify = renotify
        self.severity_step = severity_step
        self.open: dict[str, OpenIncident] = {}

    def snapshot(self) -> dict[str, OpenIncident]:
        """A copy to roll back to if the step's transaction fails."""
        return copy.deepcopy(self.open)

    def restore(self, snapshot: dict[str, OpenIncident]) -> None:
        self.open = snapshot

    def observe(self, anomalies: Iterable[Anomaly], at: datetime) -> list[IncidentChange]:
        """Attach anomalies (of one tick) to incidents, opening new ones as needed."""
        by_group: dict[str, list[Anomaly]] = {}
        groups: dict[str, dict[str, str]] = {}
        for a in sorted(anomalies, key=lambda a: (a.timestamp, -a.severity, a.series)):
            group = group_of(a, self.group_by)
            gk = group_key(group)
            by_group.setdefault(gk, []).append(a)
            groups[gk] = group
        changes = []
        for gk, items in by_group.items():
            first = items[0].timestamp
            inc = self.open.get(gk)
            if inc is not None and first - inc.last_anomaly_at > self.gap:
                changes.append(self._resolve(gk, inc, inc.last_anomaly_at + self.gap))
                inc = None
            severity = max(a.severity for a in items)
            new_series = {a.series for a in items}
            if inc is None:
                inc = OpenIncident(
                    key=f"{gk}@{first.strftime('%Y-%m-%dT%H:%MZ')}",
                    group=groups[gk],
                    opened_at=first,
                    last_anomaly_at=max(a.timestamp for a in items),
                    severity=severity,
                    series=new_series,
                    last_notified_at=at,
                    notified_severity=severity,
                )
                self.open[gk] = inc
                changes.append(IncidentChange(inc, "opened", tuple(items), True, at))
                continue
            spread = bool(new_series - inc.series)
            grew = severity >= inc.notified_severity + self.severity_step
            inc.series |= new_series
            inc.severity = max(inc.severity, severity)
            inc.last_anomaly_at = max(inc.last_anomaly_at, max(a.timestamp for a in items))
            due = inc.last_notified_at is None or at - inc.last_notified_at >= self.renotify
            notify = (spread or grew) and due
            if notify:
                inc.last_notified_at = at
                inc.notified_severity = inc.severity
            changes.append(IncidentChange(inc, "updated", tuple(items), notify, at))
        return changes

    def resolve_quiet(self, now: datetime) -> list[IncidentChange]:
        """Resolve incidents whose last anomaly is older than ``gap``."""
        return [
            self._resolve(gk, inc, now)
            for gk, inc in list(self.open.items())
            if now - inc.last_anomaly_at > self.gap
        ]

    def _resolve(self, gk: str, inc: OpenIncident, at: datetime) -> IncidentChange:
        del self.open[gk]
        return IncidentChange(inc, "resolved", (), True, at)
