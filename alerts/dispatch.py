"""From an incident change to the receivers to notify now: route tree, silences, inhibition,
time intervals and per-route ``group_interval`` (the Alertmanager dispatcher's job).

For each incident change the pipeline asks :meth:`Dispatcher.receivers`:

1. the change's labels (:func:`alerts.routing.alert_labels`) go through the route tree;
2. a firing change matched by an active silence is dropped (recorded as muted, with the
   silence id);
3. a firing change inhibited by another open incident (``inhibit_rules``) is dropped;
4. per matched route: muted while in one of its ``mute_time_intervals`` or outside all of its
   ``active_time_intervals``; an *update* is sent on a route at most once per the route's
   ``group_interval`` (the incident tracker's own throttle, ``alerting.route.group_interval``
   when set, applies first);
5. a resolved incident is announced to the receivers that were told it fired.

Whatever is dropped is kept in :attr:`Dispatcher.muted` (newest last) and logged.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alerts.inhibit import Inhibitor
from alerts.routing import Router, alert_labels

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
    receiver: str | None  # None: muted before routing to receivers (silence, inhibition)
    reason: str


def change_labels(change: IncidentChange) -> dict[str, str]:
    """What matchers see for an incident change: group, top anomaly's labels, severity."""
    top = change.anomalies[0] if change.anomalies else None
    return alert_labels(change.incident.group, top, change.incident.severity)


class Dispatcher:
    """Decides who hears about each incident change. State is in memory (per process)."""

    def __init__(
        self,
        alerting: Any,
        *,
        router: Router | None = None,
        silences: Callable[[datetime], Sequence[Silence]] | None = None,
        keep_muted: int = 1000,
    ) -> None:
        self.router = router or Router.from_config(alerting)
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
        self._last_sent: dict[tuple[str, str], datetime] = {}  # (incident, route) -> when

    def observe(self, change: IncidentChange) -> None:
        """Track which incidents are firing (inhibition sources); call for every change."""
        key = change.incident.key
        if change.status == "resolved":
            self._firing.pop(key, None)
        elif change.anomalies or key not in self._firing:
            self._firing[key] = change_labels(change)

    def receivers(
        self, change: IncidentChange, now: datetime, open_incidents: Iterable[OpenIncident] = ()
    ) -> list[str]:
        """Receivers to notify about ``change`` now, in route order, without duplicates."""
        key = change.incident.key
        if change.status == "resolved":
            told = self._told.pop(key, None)
            for route_key in [k for k in self._last_sent if k[0] == key]:
                del self._last_sent[route_key]
            if told is not None:
                return told
            return _unique(self.router.receivers(change_labels(change)))
        labels = self._firing.get(key) or change_labels(change)
        told = self._told.setdefault(key, [])  # a muted incident resolves silently too
        silence = self._silenced(labels, now)
        if silence is not None:
            self._mute(change, None, f"silenced by {silence}", now)
            return []
        if self._inhibited(key, labels, open_incidents):
            self._mute(change, None, "inhibited", now)
            return []
        out: list[str] = []
        for route in self.router.routes(labels):
            if not route.receiver:
                continue
            if route.muted_at(now, self.intervals):
                self._mute(change, route.receiver, f"time interval ({route.path})", now)
                continue
            last = self._last_sent.get((key, route.path))
            if change.status == "updated" and last is not None and (
                now - last < route.group_interval
            ):
                self._mute(change, route.receiver, f"group_interval ({route.path})", now)
                continue
            self._last_sent[(key, route.path)] = now
            out.append(route.receiver)
        out = _unique(out)
        told += [r for r in out if r not in told]
        return out

    # -- internals ------------------------------------------------------------------------

    def _silenced(self, labels: Mapping[str, str], now: datetime) -> str | None:
        for s in self.silences(now):
            if s.active(now) and s.matches(labels):
                return s.id
        return None

    def _inhibited(
        self, key: str, labels: Mapping[str, str], open_incidents: Iterable[OpenIncident]
    ) -> bool:
        if not self.inhibitor.rules:
            return False
        firing = dict(self._firing)
        for inc in open_incidents:  # after a restart: what is known of the open incidents
            firing.setdefault(inc.key, alert_labels(inc.group, None, inc.severity))
        firing.pop(key, None)
        return self.inhibitor.inhibited(labels, list(firing.values()))

    def _mute(self, change: IncidentChange, receiver: str | None, reason: str,
              now: datetime) -> None:
        self.muted.append(Muted(now, change.incident.key, change.status, receiver, reason))
        log.info("notification for %s (%s) not sent%s: %s", change.incident.key, change.status,
                 f" to {receiver}" if receiver else "", reason)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
