"""A stored anomaly's numbers as its alert said them, in one place.

``cxmon anomalies``, ``cxmon feedback`` and ``dashboards push`` each rebuilt the same three
things from the config: the display names, the set of ratio metrics (read as percentages)
and the :func:`alerts.payload.readable` call on a store row. One of them forgetting the
ratio set would print ``0.587`` where the alert said ``58.7%``; :class:`AnomalyText` keeps
them together (duck-typed on the config: ``alerts`` does not import ``monitor.config``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from alerts.display import Names
from alerts.payload import readable


def _real(x: Any) -> Any:
    """NaN (a store row's missing number) as None."""
    return None if isinstance(x, float) and x != x else x


@dataclass(frozen=True)
class AnomalyText:
    """Display names and ratio metrics: how a config's anomalies read.

    >>> from types import SimpleNamespace as NS
    >>> words = AnomalyText(Names(), frozenset({"dropoff"}))
    >>> row = NS(metric="dropoff", kind="spike", value=0.587, expected=0.334, volume=1204.0)
    >>> words.text(row)["value"], words.text(row)["volume"]
    ('58.7%', 'from 1,204')
    >>> AnomalyText().text(NS(metric="m", kind="no_data", value=3.0, expected=float("nan")))
    {}
    """

    names: Names = field(default_factory=Names)
    percent: Collection[str] = frozenset()

    @classmethod
    def from_config(cls, config: Any) -> AnomalyText:
        """The names and ratio metrics of a :class:`monitor.config.MonitorConfig`."""
        return cls(Names.from_config(config), config.ratio_metrics())

    def text(self, row: Any) -> dict[str, str]:
        """``value``, ``expected``, ``band`` and ``volume`` of a stored anomaly (a store row
        or any object with ``metric``, ``kind``, ``value``, ``expected``, ``volume``, and
        ``lower`` / ``upper`` when it has them) as the
        alert printed them; empty for a no-data anomaly, whose numbers are not KPI values."""
        return self.numbers(row).get("text") or {}

    def numbers(self, row: Any) -> dict[str, Any]:
        """The stored anomaly as :func:`alerts.payload.readable` gives it: its numbers as
        shown (``expected`` clamped to the metric's range, which a change is taken from) and
        their ``text``."""
        item = {"metric": row.metric, "kind": getattr(row, "kind", None),
                "value": _real(row.value), "expected": _real(row.expected),
                "lower": _real(getattr(row, "lower", None)),
                "upper": _real(getattr(row, "upper", None)),
                "volume": _real(getattr(row, "volume", None))}
        return readable(item, percent=row.metric in self.percent, names=self.names)
