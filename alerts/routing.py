"""The route tree: which receivers a label set reaches, with Alertmanager's semantics.

Built from ``alerting.route`` (Alertmanager's syntax, :mod:`alerts.am_config`), as
Alertmanager's ``dispatch/route.go`` does it:

- a child inherits ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and
  ``repeat_interval`` from its parent unless it sets them (``group_by: ['...']`` = all labels);
  matchers, ``continue`` and time intervals are not inherited;
- matching is depth-first, left to right: a node that matches tries its children in order; a
  child that matched stops the search among its siblings unless it has ``continue: true``; a
  node none of whose children matched is itself the match;
- the root route matches everything.

The labels a cxmon alert carries (see :func:`alert_labels`) are the series' labels (metric
labels, ``split_by`` labels, dimension values), ``metric`` and ``alertname`` (the metric name),
``severity`` (a bucket: ``info`` < 25 <= ``warning`` < 50 <= ``high`` < 75 <= ``critical``) and
``severity_score`` (the 0-100 number). A route's ``min_severity`` (cxmon extension) matches only
alerts with ``severity_score`` at least that.

>>> from alerts.am_config import RouteConfig
>>> tree = RouteConfig.model_validate({"receiver": "ops", "routes": [
...     {"matchers": ['team="checkout"'], "receiver": "checkout", "continue": True},
...     {"matchers": ['severity=~"high|critical"'], "receiver": "pager"}]})
>>> Router(tree).receivers({"team": "checkout", "severity": "critical"})
['checkout', 'pager']
>>> Router(tree).receivers({"team": "search"})
['ops']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alerts.matchers import Matcher, matches_all
from alerts.timeintervals import NamedTimeInterval, in_any
from monitor.model import SEVERITY_LEVELS, severity_name

if TYPE_CHECKING:
    from alerts.am_config import RouteConfig
    from monitor.model import Anomaly

__all__ = [
    "SEVERITY_BUCKETS",
    "Route",
    "Router",
    "alert_labels",
    "build_route",
    "severity_bucket",
]

#: Alertmanager's defaults for the root route.
DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)

#: (lowest severity, label value), highest first: :data:`monitor.model.SEVERITY_LEVELS`.
SEVERITY_BUCKETS = SEVERITY_LEVELS


def severity_bucket(severity: float) -> str:
    """``severity`` label value for a 0-100 severity (:func:`monitor.model.severity_name`).

    >>> severity_bucket(80), severity_bucket(50), severity_bucket(30), severity_bucket(3)
    ('critical', 'high', 'medium', 'low')
    """
    return severity_name(severity)


def alert_labels(
    group: Mapping[str, str], anomaly: Anomaly | None, severity: float
) -> dict[str, str]:
    """The labels routes, silences and inhibition rules see for one incident change."""
    labels: dict[str, str] = {}
    if anomaly is not None:
        labels.update(anomaly.labels)
        labels["metric"] = anomaly.metric
        labels["alertname"] = anomaly.metric
    labels.update(group)
    labels["severity"] = severity_bucket(severity)
    labels["severity_score"] = str(int(severity))
    return labels


@dataclass
class Route:
    """One node of the tree with its effective (inherited) options."""

    receiver: str
    group_by: tuple[str, ...] = ()
    group_by_all: bool = False
    group_wait: timedelta = DEFAULT_GROUP_WAIT
    group_interval: timedelta = DEFAULT_GROUP_INTERVAL
    repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL
    matchers: tuple[Matcher, ...] = ()
    min_severity: float | None = None
    continue_: bool = False
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: list[Route] = field(default_factory=list)
    path: str = "route"

    def matches_self(self, labels: Mapping[str, str]) -> bool:
        if not matches_all(self.matchers, labels):
            return False
        if self.min_severity is not None:
            try:
                score = float(labels.get("severity_score", ""))
            except ValueError:
                return False
            return score >= self.min_severity
        return True

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Matching nodes, depth-first, left to right (Alertmanager's ``Route.Match``)."""
        if not self.matches_self(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            hits = child.match(labels)
            found += hits
            if hits and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The alert's group within this route: its values of ``group_by`` (or all labels)."""
        if self.group_by_all:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def muted_at(self, t: datetime, intervals: Mapping[str, NamedTimeInterval]) -> bool:
        """Muted by a ``mute_time_intervals`` entry, or outside all ``active_time_intervals``."""
        if self.mute_time_intervals and in_any(self.mute_time_intervals, intervals, t):
            return True
        return bool(self.active_time_intervals) and not in_any(
            self.active_time_intervals, intervals, t
        )

    def walk(self) -> list[Route]:
        out = [self]
        for child in self.routes:
            out += child.walk()
        return out

    def describe(self) -> str:
        """One line for ``routes test --tree``."""
        what = "{" + ", ".join(str(m) for m in self.matchers) + "}" if self.matchers else ""
        if self.min_severity is not None:
            what += f" min_severity={self.min_severity:g}"
        extra = "  continue: true" if self.continue_ else ""
        group = "..." if self.group_by_all else ", ".join(self.group_by)
        return (f"{what or 'default-route'}  receiver: {self.receiver}  "
                f"group_by: [{group}]{extra}").strip()


def build_route(cfg: RouteConfig, parent: Route | None = None, path: str = "route") -> Route:
    """The effective route tree for a validated :class:`RouteConfig` (``NewRoute``)."""
    base = parent or Route(receiver="")
    group_by, group_all = base.group_by, base.group_by_all
    if cfg.group_by is not None:
        group_all = cfg.group_by_all
        group_by = () if group_all else tuple(cfg.group_by)
    route = Route(
        receiver=cfg.receiver or base.receiver,
        group_by=group_by,
        group_by_all=group_all,
        group_wait=cfg.group_wait if cfg.group_wait is not None else base.group_wait,
        group_interval=(
            cfg.group_interval if cfg.group_interval is not None else base.group_interval
        ),
        repeat_interval=(
            cfg.repeat_interval if cfg.repeat_interval is not None else base.repeat_interval
        ),
        matchers=tuple(cfg.all_matchers()),
        min_severity=cfg.min_severity,
        continue_=cfg.continue_,
        mute_time_intervals=tuple(cfg.mute_time_intervals),
        active_time_intervals=tuple(cfg.active_time_intervals),
        path=path,
    )
    route.routes = [
        build_route(child, route, f"{path}.routes[{i}]") for i, child in enumerate(cfg.routes)
    ]
    return route


class Router:
    """Resolve a label set to receiver names, in order (``amtool config routes test``).

    ``Router(route_config)`` builds the tree; ``Router("name")`` (or ``None``) is a tree of one
    default route.
    """

    def __init__(self, root: RouteConfig | Route | str | None) -> None:
        if root is None or isinstance(root, str):
            self.root = Route(receiver=root or "")
        elif isinstance(root, Route):
            self.root = root
        else:
            self.root = build_route(root)

    @classmethod
    def from_config(cls, alerting: Any) -> Router:
        """From an ``AlertingConfig`` (its ``route``)."""
        return cls(alerting.route)

    @property
    def default_receiver(self) -> str:
        return self.root.receiver

    def routes(self, labels: Mapping[str, str]) -> list[Route]:
        return self.root.match(labels)

    def receivers(self, labels: Mapping[str, str]) -> list[str]:
        """Receivers in Alertmanager's order; repeated when several routes name one."""
        return [r.receiver for r in self.routes(labels) if r.receiver]

    def tree(self, labels: Mapping[str, str] | None = None) -> str:
        """The routing tree as text; with ``labels``, matching routes are marked ``*``."""
        hits = {id(r) for r in self.routes(labels)} if labels is not None else set()
        lines = ["Routing tree:"]

        def walk(route: Route, prefix: str, last: bool, top: bool) -> None:
            mark = " *" if id(route) in hits else ""
            branch = "" if top else ("└── " if last else "├── ")
            lines.append(f"{prefix}{branch}{route.describe()}{mark}")
            child_prefix = prefix if top else prefix + ("    " if last else "│   ")
            for i, child in enumerate(route.routes):
                walk(child, child_prefix, i == len(route.routes) - 1, False)

        walk(self.root, "", True, True)
        return "\n".join(lines)



def incident_group_by(group_by: list[str] | None, metrics: Any = ()) -> list[str]:
    """Labels the incident tracker groups by: the root route's ``group_by``; ``['...']`` (all
    labels) becomes every label name the configured metrics can produce."""
    if group_by != ["..."]:
        return list(group_by or [])
    names = {"metric", "alertname"}
    for m in metrics:
        names |= {*m.labels, *m.dimensions, *m.split_by}
    return sorted(names)
