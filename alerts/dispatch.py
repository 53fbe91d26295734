"""From an incident change to receivers, and whether a notification may go out now: route
tree, silences, inhibition and time intervals (the Alertmanager dispatcher's job).

- :meth:`Dispatcher.targets`: the change's labels (:func:`alerts.routing.alert_labels`) go
  through the route tree; each receiver once, with the first route that reached it (its
  ``group_wait`` / ``group_interval`` / ``repeat_interval`` apply, see :mod:`alerts.grouping`);
- :meth:`Dispatcher.suppression`: why a firing notification must not be sent at a given time:
  an active silence (its id), another open incident inhibiting it (``inhibit_rules``; that
  incident's key), or the route's time intervals (inside a ``mute_time_intervals`` entry,
  outside all ``active_time_intervals``). :mod:`alerts.grouping` asks when a group flushes, as
  Alertmanager does, and keeps suppressed notifications in the outbox with the reason.
- :meth:`Dispatcher.receivers`: both at once for one change, without group timing (tests,
  tools); a resolution goes to the receivers it told the incident fired.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alerts.inhibit import Inhibitor
from alerts.routing import Route, Router, alert_labels, headline
from alerts.timeintervals import in_any

if TYPE_CHECKING:
    from alerts.silences import Silence
    from alerts.timeintervals import NamedTimeInterval
    from monitor.incidents import IncidentChange, OpenIncident

log = logging.getLogger(__name__)

__all__ = ["Dispatcher", "Muted", "change_labels"]


@dataclass(frozen=True, slots=True)
class Muted:
    """A notification that was not sent, and why."""

    at: datetime
    incident_key: str
    status: str
    receiver: str | None
    reason: str


def change_labels(change: IncidentChange,
                  sources: Mapping[str, str] | None = None) -> dict[str, str]:
    """What matchers see for an incident change: group, its headline anomaly's labels (the
    most severe: the one its message leads with) and source, severity. ``sources``: each
    metric's source name."""
    top = headline(change.anomalies)
    source = (sources or {}).get(top.metric) if top is not None else None
    return alert_labels(change.incident.group, top, change.incident.severity, source)


class Dispatcher:
    """Decides who hears about each incident change. State is in memory (per process)."""

    def __init__(
        self,
        alerting: Any,
        *,
        router: Router | None = None,
        silences: Callable[[datetime], Sequence[Silence]] | None = None,
        keep_muted: int = 1000,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self.router = router or Router.from_config(alerting)
        #: metric -> the name of its source: the ``source`` label of its alerts
        self.sources = dict(sources or {})
        self.inhibitor = Inhibitor.from_config(getattr(alerting, "inhibit_rules", []))
        named: list[NamedTimeInterval] = [
            *getattr(alerting, "mute_time_intervals", []),
            *getattr(alerting, "time_intervals", []),
        ]
        self.intervals = {t.name: t for t in named}
        self.silences = silences or (lambda _now: [])
        self.muted: deque[Muted] = deque(maxlen=keep_muted)
        self._firing: dict[str, dict[str, str]] = {}  # incident key -> labels
        self._told: dict[str, list[str]] = {}  # incident key -> receivers told it fired
        self._routes = {r.path: r for r in self.router.root.walk()}

    def observe(self, change: IncidentChange) -> None:
        """Track which incidents are firing (inhibition sources); call for every change."""
        key = change.incident.key
        if change.status == "resolved" or change.incident.dismissed is not None:
            self._firing.pop(key, None)  # a false alarm, closed, mutes nothing
        elif change.anomalies or key not in self._firing:
            self._firing[key] = change_labels(change, self.sources)

    def forget(self, key: str) -> None:
        """The incident ``key`` no longer fires: dismissed as a false alarm (closed in the
        store by :mod:`alerts.dismiss`), it must not inhibit anything."""
        self._firing.pop(key, None)

    def remember(self, key: str, labels: Mapping[str, str]) -> None:
        """The labels an open incident fired with, read back from the store after a restart
        (its group alone lacks ``alertname``, ``metric`` and the dimensions that inhibition
        rules match on); what this process observed itself wins."""
        self._firing.setdefault(key, dict(labels))

    def labels(self, change: IncidentChange) -> dict[str, str]:
        """What routes, silences and inhibition see for ``change`` (as when it fired)."""
        return dict(self._firing.get(change.incident.key) or change_labels(change, self.sources))

    def targets(self, change: IncidentChange) -> list[tuple[str, Route]]:
        """(receiver, first route that reached it), in route order, each receiver once."""
        out: dict[str, Route] = {}
        for route in self.router.routes(self.labels(change)):
            if route.receiver:
                out.setdefault(route.receiver, route)
        return list(out.items())

    def suppression(
        self, key: str, labels: Mapping[str, str], route_path: str | None, now: datetime,
        open_incidents: Iterable[OpenIncident] = (), *, receiver: str | None = None,
    ) -> str | None:
        """Why a firing notification of incident ``key`` must not go out at ``now`` on the
        route ``route_path``, or None: silence, inhibition, then time intervals.

        With ``receiver``, a time interval mutes it only when it mutes every route that
        reaches it: Alertmanager gives each route its own aggregation group, so with
        ``continue`` a critical route still pages the chat a muted team route also names
        (here one group per receiver, timed by the first route)."""
        silence = self._silenced(labels, now)
        if silence is not None:
            return f"silenced by {silence}"
        source = self._inhibited_by(key, labels, open_incidents)
        if source is not None:
            return f"inhibited by {source}"
        route = self._routes.get(route_path or "")
        if route is None:
            return None
        reason = self._time_muted(route, now)
        if reason is None or receiver is None:
            return reason
        for other in self.router.routes(labels):
            if other.receiver == receiver and other.path != route.path \
                    and self._time_muted(other, now) is None:
                return None
        return reason

    def receivers(
        self, change: IncidentChange, now: datetime, open_incidents: Iterable[OpenIncident] = ()
    ) -> list[str]:
        """Receivers to notify about ``change`` now, in route order, without duplicates
        (no group timing: that is :mod:`alerts.grouping`'s)."""
        key = change.incident.key
        if change.status == "resolved":
            told = self._told.pop(key, None)
            if told is not None:
                return told
            return _unique(self.router.receivers(change_labels(change, self.sources)))
        labels = self.labels(change)
        told = self._told.setdefault(key, [])  # a muted incident resolves silently too
        out: list[str] = []
        for receiver, route in self.targets(change):
            reason = self.suppression(key, labels, route.path, now, open_incidents,
                                      receiver=receiver)
            if reason is not None:
                self._mute(change, receiver, reason, now)
                continue
            out.append(receiver)
        told += [r for r in out if r not in told]
        return out

    # -- internals ------------------------------------------------------------------------

    def _silenced(self, labels: Mapping[str, str], now: datetime) -> str | None:
        for s in self.silences(now):
            if s.active(now) and s.matches(labels):
                return s.id
        return None

    def _inhibited_by(
        self, key: str, labels: Mapping[str, str], open_incidents: Iterable[OpenIncident]
    ) -> str | None:
        """The key of an open incident that inhibits ``labels``, if any."""
        if not self.inhibitor.rules:
            return None
        firing = dict(self._firing)
        for inc in open_incidents:  # after a restart: what is known of the open incidents
            firing.setdefault(inc.key, alert_labels(inc.group, None, inc.severity))
        firing.pop(key, None)
        for source, src_labels in sorted(firing.items()):
            if self.inhibitor.inhibited(labels, [src_labels]):
                return source
        return None

    def _time_muted(self, route: Route, now: datetime) -> str | None:
        for name in route.mute_time_intervals:
            if in_any((name,), self.intervals, now):
                return f"mute time interval {name} ({route.path})"
        if route.active_time_intervals and not in_any(route.active_time_intervals,
                                                      self.intervals, now):
            names = ", ".join(route.active_time_intervals)
            return f"outside active time intervals {names} ({route.path})"
        return None

    def _mute(self, change: IncidentChange, receiver: str | None, reason: str,
              now: datetime) -> None:
        self.muted.append(Muted(now, change.incident.key, change.status, receiver, reason))
        log.info("notification for %s (%s) not sent%s: %s", change.incident.key, change.status,
                 f" to {receiver}" if receiver else "", reason)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
