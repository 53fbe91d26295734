"""``cxmon dashboards push``: upload the generated dashboards into a Grafana folder and post
the stored anomalies as annotations, through grafana-client (Grafana's documented HTTP API).

Idempotent: the folder is created only when missing, dashboards are saved with
``overwrite: true`` under their fixed uids, and an anomaly already annotated (tag
``anomaly:<id>``) is not posted again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.exporter import severity_band
from dashboards.grafana import TAG, Built
from dashboards.links import journey_uid, panel_id
from monitor.model import parse_series_key

if TYPE_CHECKING:
    from monitor.config import MonitorConfig
    from monitor.store import Store

log = logging.getLogger(__name__)

FOLDER_UID = "cxmon"
FOLDER_TITLE = "cxmon"


@dataclass(slots=True)
class PushReport:
    folder_uid: str = FOLDER_UID
    folder_created: bool = False
    dashboards: list[str] = field(default_factory=list)  # uids saved
    urls: dict[str, str] = field(default_factory=dict)  # uid -> url returned by Grafana
    found: list[str] = field(default_factory=list)  # cxmon dashboards found by search
    annotations_posted: int = 0
    annotations_skipped: int = 0


def connect(url: str, token: str | None = None, timeout: float = 10.0) -> GrafanaApi:
    """A grafana-client API object for ``url`` (a service-account token, or user:pass in URL)."""
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def ensure_folder(api: GrafanaApi, uid: str = FOLDER_UID, title: str = FOLDER_TITLE) -> bool:
    """Create the folder if missing; True if it was created."""
    try:
        api.folder.get_folder(uid)
        return False
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    api.folder.create_folder(title, uid=uid)
    return True


def push_dashboards(
    api: GrafanaApi, dashboards: Iterable[Built], folder_uid: str = FOLDER_UID
) -> PushReport:
    """Folder, then every dashboard (overwrite), then a search to confirm they are there."""
    report = PushReport(folder_uid=folder_uid)
    report.folder_created = ensure_folder(api, folder_uid)
    for d in dashboards:
        model = {k: v for k, v in d.model.items() if k != "id"}
        res = api.dashboard.update_dashboard({
            "dashboard": model,
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "cxmon dashboards push",
        })
        report.dashboards.append(d.uid)
        if isinstance(res, dict) and res.get("url"):
            report.urls[d.uid] = res["url"]
    hits = api.search.search_dashboards(tag=TAG, type_="dash-db")
    report.found = sorted(h["uid"] for h in hits or [] if "uid" in h)
    missing = set(report.dashboards) - set(report.found)
    if missing:
        log.warning("grafana: pushed but not found by search: %s", ", ".join(sorted(missing)))
    return report


def _ms(ts: Any) -> int:
    return int(ts.timestamp() * 1000)


def anomaly_annotations(
    anomalies: Any, journeys: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Annotation payloads for a frame of stored anomalies (``Store.anomalies()``): one per
    anomaly, on its journey's dashboard and its metric's panel."""
    journeys = journeys or {}
    out = []
    for row in anomalies.itertuples(index=False):
        _, labels = parse_series_key(row.series)
        labels = {**(row.labels or {}), **labels}
        journey = labels.get("journey") or journeys.get(row.metric)
        band = severity_band(row.severity)
        change = ""
        if row.expected and row.value == row.value:
            change = f" ({(row.value - row.expected) / abs(row.expected):+.0%})"
        out.append({
            "dashboard_uid": journey_uid(journey) if journey else None,
            "panel_id": panel_id(row.metric) if journey else None,
            "time_from": _ms(row.ts),
            "time_to": _ms(row.ts),
            "tags": [TAG, f"journey:{journey or 'none'}", f"cx_metric:{row.metric}",
                     f"severity:{band}", f"anomaly:{row.id}"],
            "text": (f"{row.series}: {row.value:.4g} vs expected {row.expected:.4g}{change}, "
                     f"severity {row.severity}"),
        })
    return out


def post_annotations(
    api: GrafanaApi, payloads: list[dict[str, Any]], report: PushReport | None = None
) -> PushReport:
    """Post annotations not posted before (looked up by the ``anomaly:<id>`` tag)."""
    report = report or PushReport()
    if not payloads:
        return report
    start = min(p["time_from"] for p in payloads)
    end = max(p["time_to"] for p in payloads)
    existing = api.annotations.find_annotations(
        time_from=start, time_to=end + 1, tags=[TAG], limit=100_000
    ) or []
    done = {t for a in existing for t in a.get("tags") or [] if t.startswith("anomaly:")}
    for p in payloads:
        key = p["tags"][-1]
        if key in done:
            report.annotations_skipped += 1
            continue
        api.annotations.add_annotation(**p)
        done.add(key)
        report.annotations_posted += 1
    return report


def push(
    config: MonitorConfig,
    dashboards: list[Built],
    *,
    api: GrafanaApi | None = None,
    store: Store | None = None,
    since: datetime | None = None,
    folder_uid: str = FOLDER_UID,
) -> PushReport:
    """Everything ``cxmon dashboards push`` does."""
    if api is None:
        if config.grafana is None:
            raise ValueError("no grafana: block in the config (grafana: {url: ..., token: ...})")
        token = config.grafana.token.get_secret_value() if config.grafana.token else None
        api = connect(config.grafana.url, token)
    report = push_dashboards(api, dashboards, folder_uid)
    if store is not None:
        journeys = {m.name: m.labels["journey"] for m in config.metrics if "journey" in m.labels}
        payloads = anomaly_annotations(store.anomalies(start=since), journeys)
        post_annotations(api, payloads, report)
    return report


__all__ = [
    "PushReport",
    "anomaly_annotations",
    "connect",
    "ensure_folder",
    "post_annotations",
    "push",
    "push_dashboards",
]
