"""The plain, typed values that flow through cxmon: series keys, measure frames, anomalies.

Data flows one way (source -> frame -> store -> detectors -> anomalies -> notifications) and
each arrow is one of these values, so every stage can be tested on its own.

Measure frame (the output of :mod:`monitor.frames`, the input of the store and detectors) is a
pandas DataFrame with columns:

``timestamp``  datetime64[ns, UTC], the start of the interval bucket
``series``     canonical series key (see :func:`series_key`)
``value``      float, the KPI value of the bucket (sum, ratio or mean)
``numerator``  float, sum of the numerator (ratio), sum (mean) or the value (sum)
``denominator`` float or NaN, sum of the denominator (ratio), count (mean), NaN for sums

The parts are kept so that roll-ups and root cause are exact: a rate is never averaged.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MEASURE_COLUMNS = ["timestamp", "series", "value", "numerator", "denominator"]

#: The severity levels, the same on every surface: the ``severity`` label that routes, silences
#: and inhibit rules match, the console and Slack messages and the Prometheus ``severity``
#: label. (lowest 0-100 severity, name), highest first.
SEVERITY_LEVELS: tuple[tuple[int, str], ...] = (
    (75, "critical"), (50, "high"), (25, "medium"), (0, "low"),
)


def severity_name(severity: float) -> str:
    """The level of a 0-100 severity: ``low`` < 25 <= ``medium`` < 50 <= ``high`` < 75 <=
    ``critical``.

    >>> severity_name(3), severity_name(25), severity_name(60), severity_name(99)
    ('low', 'medium', 'high', 'critical')
    """
    return next((name for low, name in SEVERITY_LEVELS if severity >= low), "low")


_LABEL_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


class ValueKind(enum.StrEnum):
    """How a bucket's value is computed from its rows."""

    SUM = "sum"  # additive count or amount: value = sum(x)
    RATIO = "ratio"  # value = sum(numerator) / sum(denominator), e.g. drop-off rate
    MEAN = "mean"  # value = sum(sum) / sum(count), e.g. CSAT


class Direction(enum.StrEnum):
    """Which way of moving is bad for a KPI."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


def series_key(metric: str, labels: Mapping[str, str]) -> str:
    """Canonical Prometheus-style key: labels sorted, values escaped.

    >>> series_key("checkout_dropoff_rate", {"region": "uk", "channel": "app"})
    'checkout_dropoff_rate{channel="app",region="uk"}'
    >>> series_key("complaints", {})
    'complaints'
    """
    if not labels:
        return metric
    inner = ",".join(f'{k}="{str(v).translate(_LABEL_ESCAPE)}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


_KEY = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$', re.S)
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`series_key`.

    >>> parse_series_key('csat{channel="app",journey="support"}')
    ('csat', {'channel': 'app', 'journey': 'support'})
    """
    m = _KEY.match(key)
    if not m:
        raise ValueError(f"not a series key: {key!r}")
    labels = {}
    for k, v in _PAIR.findall(m.group(2) or ""):
        labels[k] = re.sub(r"\\(.)", lambda g: "\n" if g.group(1) == "n" else g.group(1), v)
    return m.group(1), labels


@dataclass(frozen=True, slots=True)
class Series:
    """One monitored series: a metric plus its labels (metric labels and dimension values)."""

    metric: str
    labels: Mapping[str, str]
    dimensions: tuple[str, ...] = ()  # which labels are dimension values (for drill-down)

    @property
    def key(self) -> str:
        return series_key(self.metric, self.labels)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A point the detectors and post-rules judged anomalous."""

    series: str  # canonical series key
    metric: str
    labels: Mapping[str, str]
    timestamp: datetime  # bucket start, tz-aware UTC
    value: float
    expected: float
    lower: float
    upper: float
    score: float  # in [0, 1], higher = more anomalous
    severity: int  # 0-100, same number = same rarity across series and detectors
    direction: Direction  # which way the value moved
    detector: str  # name of the configured detector that flagged it
    kind: str = "outlier"  # "outlier" or "no_data"
    #: ``no_data`` only: end of the newest bucket that had data, when known (not stored)
    last_seen: datetime | None = None
    #: the denominator / count behind a ratio or mean (None: a sum, or unknown); stored with
    #: the anomaly (``anomalies.volume``), so what reads it back says "from 14 responses" too
    volume: float | None = field(default=None, compare=False)

    @property
    def change(self) -> float:
        """Relative change versus expected (0.25 = +25%); inf when expected is 0."""
        if self.expected == 0:
            return float("inf") if self.value != 0 else 0.0
        return (self.value - self.expected) / abs(self.expected)

    @property
    def id(self) -> str:
        """Stable identity: the same point flagged twice is the same anomaly."""
        raw = f"{self.series}|{self.timestamp.isoformat()}|{self.detector}|{self.kind}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver, written to the outbox before anything is sent."""

    idempotency_key: str  # unique: re-enqueueing the same key is a no-op
    receiver: str
    incident_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
