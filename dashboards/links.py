"""Deep links into the generated Grafana dashboards (for alert messages).

Conventions shared with :mod:`dashboards.grafana` (so a link never needs the config):

- a journey's dashboard has uid ``cxmon-journey-<journey>`` (see :func:`journey_uid`);
- a metric's panel on it has id :func:`panel_id` (a stable hash of the metric name);
- every dimension is a template variable named like the label (``var-channel=app``); a
  rolled-up dimension (absent from the series' labels) is the variable's "All" value, which
  selects the roll-up total.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

OVERVIEW_UID = "cxmon-overview"
HEALTH_UID = "cxmon-health"
#: Labels that are not template variables on a journey dashboard.
NOT_VARIABLES = frozenset({"journey", "team", "cx_metric"})
DEFAULT_BEFORE = timedelta(hours=12)
DEFAULT_AFTER = timedelta(hours=3)


def slug(text: str) -> str:
    """Lowercase, alphanumerics and dashes (Grafana-style slug).

    >>> slug("Checkout & Payment")
    'checkout-payment'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def journey_uid(journey: str) -> str:
    """The uid of a journey's dashboard (at most 40 characters, as Grafana requires).

    >>> journey_uid("checkout")
    'cxmon-journey-checkout'
    """
    uid = f"cxmon-journey-{slug(journey)}"
    if len(uid) > 40:
        uid = f"{uid[:31]}-{zlib.crc32(journey.encode()):08x}"
    return uid


def panel_id(metric: str, kind: str = "value") -> int:
    """Stable panel id of a metric's panel (``kind``: ``value`` = the KPI with its band,
    ``severity`` = its severity panel).

    >>> panel_id("checkout_dropoff_rate") == panel_id("checkout_dropoff_rate")
    True
    """
    base = 1000 + zlib.crc32(metric.encode()) % 100_000 * 10
    return base + (1 if kind == "severity" else 0)


def without_credentials(url: str) -> str:
    """``url`` without ``user:password@``: the ``grafana.url`` may carry basic-auth
    credentials for ``dashboards push``, and links end up in Slack and PagerDuty.

    >>> without_credentials("https://admin:s3cret@grafana.example.com:3000/sub/")
    'https://grafana.example.com:3000/sub/'
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def grafana_link(
    base_url: str,
    journey: str | None,
    *,
    metric: str | None = None,
    labels: Mapping[str, str] | None = None,
    at: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    org_id: int = 1,
) -> str:
    """URL of the Grafana panel showing ``metric`` for the series with ``labels`` around
    time ``at`` (or exactly ``start``..``end``).

    ``journey`` picks the dashboard (None: the overview). ``labels`` are the series' labels
    (as on an anomaly); each one except journey/team becomes ``var-<label>=<value>``.

    >>> from datetime import UTC, datetime
    >>> grafana_link("http://grafana:3000/", "checkout", metric="checkout_dropoff_rate",
    ...              labels={"journey": "checkout", "channel": "app"},
    ...              at=datetime(2026, 1, 5, 12, tzinfo=UTC))  # doctest: +ELLIPSIS
    'http://grafana:3000/d/cxmon-journey-checkout/cxmon-journey-checkout?orgId=1&from=...&to=...&var-channel=app&viewPanel=...'
    """
    uid = journey_uid(journey) if journey else OVERVIEW_UID
    params: list[tuple[str, str | int]] = [("orgId", org_id)]
    if at is not None and start is None:
        start = at - DEFAULT_BEFORE
    if at is not None and end is None:
        end = at + DEFAULT_AFTER
    if start is not None:
        params.append(("from", _ms(start)))
    if end is not None:
        params.append(("to", _ms(end)))
    for key, value in sorted((labels or {}).items()):
        if key not in NOT_VARIABLES:
            params.append((f"var-{key}", value))
    if metric and journey:
        params.append(("viewPanel", panel_id(metric)))
    base = without_credentials(base_url).rstrip("/")
    return f"{base}/d/{uid}/{uid}?{urlencode(params, quote_via=quote)}"


__all__ = [
    "HEALTH_UID",
    "OVERVIEW_UID",
    "grafana_link",
    "journey_uid",
    "panel_id",
    "slug",
    "without_credentials",
]
