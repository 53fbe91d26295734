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
``source`` (the name of the metric's source in ``sources:``, so ``source="zendesk"`` routes
every support metric to the support team; a series label named ``source`` wins), ``kind``
(``outlier``, or ``no_data`` when the metric's data stopped arriving; a series label
named ``kind`` wins), ``severity`` (a level: ``low`` < 25 <= ``medium`` < 50 <= ``high`` < 75
<= ``critical``) and ``severity_score`` (the 0-100 number). An incident change is routed as
one alert: with several anomalies (series, metrics), the series labels, ``metric``,
``alertname``, ``source`` and ``kind`` are those of its headline anomaly (:func:`headline`:
the most severe, as the message leads with it), the group's labels are shared by all, and
``severity`` is the incident's (its worst so far). A route's ``min_severity`` (cxmon
extension) matches only alerts with ``severity_score`` at least that. :func:`dead_matchers`
finds the matchers no alert of a config can satisfy (a typo routes nothing, silently).

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

from collections.abc import Iterable, Mapping
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
    "dead_matchers",
    "headline",
    "headline_rank",
    "label_values",
    "route_warnings",
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


def headline_rank(a: Anomaly) -> tuple[int, int, str]:
    """The order a message lists anomalies in: most severe first, then the roll-up (fewest
    labels), then by series key (stable)."""
    return -a.severity, len(a.labels), a.series


def headline(anomalies: Iterable[Anomaly]) -> Anomaly | None:
    """The anomaly an incident change is routed by and its message leads with (None without
    any): routed by the first one detected, a journey incident whose worst anomaly was a
    complaints spike went where ``metric="contact_volume"`` routes send it."""
    return min(anomalies, key=headline_rank, default=None)


def alert_labels(
    group: Mapping[str, str], anomaly: Anomaly | None, severity: float,
    source: str | None = None,
) -> dict[str, str]:
    """The labels routes, silences and inhibition rules see for one incident change
    (``source``: the name of ``anomaly``'s metric's source)."""
    labels: dict[str, str] = {}
    if anomaly is not None:
        labels.update(anomaly.labels)
        labels["metric"] = anomaly.metric
        labels["alertname"] = anomaly.metric
        # a source outage (no_data) can go to whoever owns the source, and inhibit the KPI
        # alerts it causes, only if matchers can tell it apart
        labels.setdefault("kind", getattr(anomaly, "kind", "outlier"))
        if source:  # route by where the data comes from: source="zendesk" -> support team
            labels.setdefault("source", source)
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
        # the on-call question "why did this route stay quiet at night" starts here
        if self.mute_time_intervals:
            extra += f"  mute: [{', '.join(self.mute_time_intervals)}]"
        if self.active_time_intervals:
            extra += f"  active: [{', '.join(self.active_time_intervals)}]"
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


#: The values cxmon gives its own labels (``severity_score``: any number).
KINDS = ("outlier", "no_data")


def label_values(metrics: Iterable[Any]) -> dict[str, set[str] | None]:
    """Every value each label an alert of these metrics can carry may take (``""``: some
    alerts lack it); None when the data decides (dimensions, ``split_by``, the score). A label
    not in the result is on no alert, so it is always ``""``."""
    metrics = list(metrics)
    names = {m.name for m in metrics}
    out: dict[str, set[str] | None] = {
        "metric": set(names), "alertname": set(names), "kind": set(KINDS),
        "severity": {name for _, name in SEVERITY_LEVELS}, "severity_score": None,
        # the metric's source name, unless a series label of that name wins (below)
        "source": {str(m.source) for m in metrics
                   if "source" not in m.labels and getattr(m, "source", None)}}
    for m in metrics:
        for name in (*m.dimensions, *m.split_by):
            out[name] = None  # values come from the data; "" on a total series
    for m in metrics:
        for name, value in m.labels.items():
            if name not in out:
                out[name] = set()
            values = out[name]
            if values is not None:
                values.add(str(value))
    for name, values in out.items():
        if values is not None and any(name not in m.labels for m in metrics) \
                and name not in ("metric", "alertname", "kind", "severity", "source"):
            values.add("")
    return out


def _why(values: set[str]) -> str:
    shown = sorted(v for v in values if v)
    if not shown:
        return "no metric sets it"
    return ("it is " + " or ".join(f'"{v}"' for v in shown[:8])
            + (" or unset" if "" in values else ""))


def dead_matchers(matchers: Iterable[Matcher], values: Mapping[str, set[str] | None]
                  ) -> list[str]:
    """The matchers in ``matchers`` no alert can satisfy, each with why: ``team="checkout"``
    when the metrics say ``team: checkout-squad`` validates, then routes nothing there."""
    out = []
    for m in matchers:
        possible = values.get(m.name, {""})
        if possible is not None and not any(m.matches_value(v) for v in possible):
            out.append(f"{m} matches no alert ({m.name}: {_why(possible)})")
    return out


def route_warnings(alerting: Any, metrics: Iterable[Any]) -> list[tuple[str, str]]:
    """(path, text) for each route and inhibition rule whose matchers no alert of ``metrics``
    can satisfy: that route is never taken, that rule never mutes."""
    values = label_values(metrics)
    out = []
    for route in Router.from_config(alerting).root.walk():
        for text in dead_matchers(route.matchers, values):
            out.append((f"alerting.{route.path}.matchers", f"{text}: this route is never taken"))
    for i, rule in enumerate(getattr(alerting, "inhibit_rules", [])):
        for side, found in (("source", rule.source()), ("target", rule.target())):
            for text in dead_matchers(found, values):
                out.append((f"alerting.inhibit_rules[{i}].{side}_matchers",
                            f"{text}: this rule never mutes anything"))
    return out
