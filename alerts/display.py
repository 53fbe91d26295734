"""Display names: how people read metric and label identifiers in alert text. Pure.

The config names them (a metric's ``title``; ``display.labels`` and ``display.values``); the
payload carries the names it needs in ``payload["display"]`` (same shape as the config
section, plus ``metrics``), so notifiers render names without the config::

    {"metrics": {"checkout_dropoff_rate": "Checkout drop-off rate"},
     "labels": {"channel": "Channel"},
     "values": {"channel": {"app": "Mobile app"}, "region": {"uk": "UK"}}}

Identifiers stay wherever machines read (series keys, ``labels``, links, incident keys). With
no names, every text is exactly what it was: ``channel=app, region=uk``. With a name for any
label of a list, the whole list reads ``Channel: Mobile app, Region: uk`` (one style per list,
the identifier where a name is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerts.numbers import Range, formats_from_config, ranges_from_config

__all__ = ["Names", "merge_display"]


@dataclass(frozen=True, slots=True)
class Names:
    """Metric titles, label names and label value names; empty = identifiers everywhere.

    >>> n = Names(metrics={"m": "Drop-off"}, labels={"channel": "Channel"},
    ...           values={"channel": {"app": "Mobile app"}, "region": {"uk": "UK"}})
    >>> n.metric("m"), n.metric("other")
    ('Drop-off', 'other')
    >>> n.where([("channel", "app"), ("region", "uk")])
    'Channel: Mobile app, region: UK'
    >>> Names().where([("channel", "app"), ("region", "uk")])
    'channel=app, region=uk'
    """

    metrics: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: metric -> how its numbers read (:func:`alerts.numbers.formats_from_config`); the
    #: payload carries each anomaly's as ``"format"``, so it is not part of ``display``
    formats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: metric -> its possible values (:func:`alerts.numbers.ranges_from_config`): shown
    #: bands and expected values are clamped to them (:func:`alerts.payload.readable`)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    #: IANA zone people read times in (``display.timezone``); stored and sent times stay UTC
    timezone: str = "UTC"

    @classmethod
    def from_config(cls, config: Any) -> Names:
        """The names a :class:`monitor.config.MonitorConfig` gives (duck-typed: ``alerts``
        does not import ``monitor.config``)."""
        display = getattr(config, "display", None)
        return cls(
            metrics={m.name: m.title for m in config.metrics if getattr(m, "title", None)},
            labels=dict(getattr(display, "labels", None) or {}),
            values={k: dict(v) for k, v in (getattr(display, "values", None) or {}).items()},
            formats=formats_from_config(config.metrics),
            ranges=ranges_from_config(config.metrics),
            timezone=str(getattr(display, "timezone", None) or "UTC"),
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Names:
        """The names a payload carries (``payload["display"]``); none when absent or bad."""
        raw = payload.get("display")
        if not isinstance(raw, Mapping):
            return cls()

        def strings(m: Any) -> dict[str, str]:
            return {str(k): str(v) for k, v in m.items()} if isinstance(m, Mapping) else {}

        values = raw.get("values")
        zone = raw.get("timezone")
        try:
            zone = str(zone) if zone and ZoneInfo(str(zone)) else "UTC"
        except (ValueError, KeyError):  # a payload from elsewhere: times in UTC, as ever
            zone = "UTC"
        return cls(strings(raw.get("metrics")), strings(raw.get("labels")),
                   {str(k): strings(v) for k, v in values.items()}
                   if isinstance(values, Mapping) else {}, timezone=zone)

    def __bool__(self) -> bool:
        return bool(self.metrics or self.labels or self.values)

    def local(self, value: Any) -> datetime | None:
        """A time (a datetime or ISO text; naive = UTC) on the reading wall clock, or None."""
        try:
            t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.astimezone(UTC if self.timezone == "UTC" else ZoneInfo(self.timezone))

    def when(self, value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """A time as people read it, with its zone: ``2026-03-30 09:00 CEST`` (the
        abbreviation says summer or winter time), ``n/a`` for no time.

        >>> Names(timezone="Europe/Berlin").when("2026-03-30T07:00:00+00:00")
        '2026-03-30 09:00 CEST'
        >>> Names().when("2026-03-30T07:00:00+00:00", "%m-%d %H:%M"), Names().when(None)
        ('03-30 07:00 UTC', 'n/a')
        """
        t = self.local(value) if value else None
        return f"{t.strftime(fmt)} {t.tzname()}" if t else "n/a"

    def at(self, a: Mapping[str, Any], fmt: str = "%Y-%m-%d %H:%M", *, zone: bool = True
           ) -> str:
        """When an anomaly (or a stored row with ``metric`` and ``timestamp``) was, as people
        read it: :meth:`when` (or :meth:`clock` without ``zone``), except a whole-day bucket
        on a reading clock other than UTC, which names its date (``2026-11-27``): its UTC
        midnight would read as 01:00 CET, or 19:00 the day before in New York.

        >>> ny = Names(timezone="America/New_York")
        >>> day = {"timestamp": "2026-11-27T00:00:00+00:00", "format": {"days": True}}
        >>> ny.at(day), ny.at({**day, "format": {}}), Names().at(day)
        ('2026-11-27', '2026-11-26 19:00 EST', '2026-11-27 00:00 UTC')
        """
        ts = a.get("timestamp")
        fmt_of = a.get("format") if isinstance(a.get("format"), Mapping) else \
            self.formats.get(str(a.get("metric")), {})
        if self.timezone != "UTC" and (fmt_of or {}).get("days"):
            t = Names().local(ts) if ts else None
            return t.strftime("%Y-%m-%d" if "%Y" in fmt else "%m-%d") if t else "n/a"
        return self.when(ts, fmt) if zone else self.clock(ts, fmt)

    def clock(self, value: Any, fmt: str = "%H:%M") -> str:
        """A time on the reading wall clock without its zone (a table under a zone header)."""
        t = self.local(value) if value else None
        return t.strftime(fmt) if t else ""

    def metric(self, name: Any) -> str:
        """A metric's title, or its name."""
        return self.metrics.get(str(name), str(name))

    def label(self, key: str) -> str:
        """A label's display name, or its name."""
        return self.labels.get(key, key)

    def value(self, key: str, value: Any) -> str:
        """A label value's display name, or the value."""
        return self.values.get(key, {}).get(str(value), str(value))

    def named(self, key: str, value: Any) -> bool:
        """Whether people read this label or value differently from its identifier."""
        return key in self.labels or str(value) in self.values.get(key, {})

    def where(self, pairs: Iterable[tuple[str, Any]], sep: str = ", ") -> str:
        """``k=v`` pairs as people read them; one style for the whole list."""
        return sep.join(self.pairs(pairs))

    def pairs(self, pairs: Iterable[tuple[str, Any]]) -> list[str]:
        """Each pair as ``k=v`` (no name in the list) or ``Name: Value`` (any name)."""
        items = [(str(k), v) for k, v in pairs]
        if not any(self.named(k, v) for k, v in items):
            return [f"{k}={v}" for k, v in items]
        return [f"{self.label(k)}: {self.value(k, v)}" for k, v in items]

    def group(self, group: Mapping[str, Any]) -> str:
        """An alert group as people read it: ``journey=checkout`` without names (as ever),
        ``Checkout journey`` for a journey's group once it is named, else :meth:`where`
        (``""`` for the empty group).

        >>> n = Names(values={"journey": {"checkout": "Checkout"}})
        >>> n.group({"journey": "checkout"}), Names().group({"journey": "checkout"})
        ('Checkout journey', 'journey=checkout')
        """
        pairs = list(group.items())
        if set(group) == {"journey"} and any(self.named(k, v) for k, v in pairs):
            return f"{self.value('journey', group['journey'])} journey"
        return self.where(pairs)

    def listed(self, group: Any) -> str:
        """An incident's group in a CLI listing: :meth:`group`, ``all`` for the empty group
        (as its incident key says), ``""`` when the group is unknown (not a mapping).

        >>> n = Names(values={"journey": {"checkout": "Checkout"}})
        >>> n.listed({"journey": "checkout"}), n.listed({}), n.listed(None)
        ('Checkout journey', 'all', '')
        """
        if not isinstance(group, Mapping):
            return ""
        return self.group(group) or "all"

    def series(self, metric: Any, labels: Mapping[str, Any]) -> str:
        """A series as people read it in a listing: the metric's title, then its labels
        (one style, as :meth:`where`; ``total`` without labels).

        >>> Names({"m": "Drop-off"}, {"channel": "Channel"}).series(
        ...     "m", {"region": "uk", "channel": "app"})
        'Drop-off · Channel: app, region: uk'
        """
        return f"{self.metric(metric)} · {self.where(sorted(labels.items())) or 'total'}"

    def for_payload(self, metrics: Iterable[Any], labels: Iterable[str]) -> dict[str, Any]:
        """The ``display`` object of a payload that mentions these metrics and labels (only
        their names: a config's whole section would be carried by every message)."""
        keys = set(labels)
        out: dict[str, Any] = {}
        titles = {str(m): self.metrics[str(m)] for m in metrics if str(m) in self.metrics}
        if titles:
            out["metrics"] = dict(sorted(titles.items()))
        if names := {k: v for k, v in self.labels.items() if k in keys}:
            out["labels"] = dict(sorted(names.items()))
        if values := {k: dict(v) for k, v in self.values.items() if k in keys and v}:
            out["values"] = dict(sorted(values.items()))
        if self.timezone != "UTC":
            out["timezone"] = self.timezone
        return out

    def anomaly_extras(self, metric: Any, labels: Mapping[str, Any]) -> dict[str, Any]:
        """Fields added to a payload anomaly for consumers that show names (webhooks):
        ``title`` (the metric's) and ``display`` (label name -> value, as people read them),
        each only when a name applies.

        >>> Names({"m": "Drop-off"}, {"channel": "Channel"}).anomaly_extras(
        ...     "m", {"channel": "app", "region": "uk"})
        {'title': 'Drop-off', 'display': {'Channel': 'app', 'region': 'uk'}}
        """
        out: dict[str, Any] = {}
        if str(metric) in self.metrics:
            out["title"] = self.metrics[str(metric)]
        if any(self.named(k, v) for k, v in labels.items()):
            out["display"] = {self.label(k): self.value(k, v) for k, v in labels.items()}
        return out


def merge_display(a: Any, b: Any) -> dict[str, Any]:
    """Two payloads' ``display`` objects as one (a merged notification mentions both's
    metrics and labels)."""
    out: dict[str, Any] = {}
    for part in (a, b):
        if not isinstance(part, Mapping):
            continue
        for key in ("metrics", "labels"):
            if isinstance(part.get(key), Mapping):
                out.setdefault(key, {}).update(part[key])
        if part.get("timezone") and "timezone" not in out:
            out["timezone"] = part["timezone"]
        if isinstance(part.get("values"), Mapping):
            values = out.setdefault("values", {})
            for label, names in part["values"].items():
                if isinstance(names, Mapping):
                    values.setdefault(label, {}).update(names)
    return out
