"""``cxmon dashboards push``: upload the generated dashboards into a Grafana folder and post
the stored anomalies as annotations, through grafana-client (Grafana's documented HTTP API).

Idempotent: the folder is created only when missing, dashboards are saved with
``overwrite: true`` under their fixed uids, and an anomaly already annotated (tag
``anomaly:<id>``) is not posted again. The calendar's holidays and events (``calendar:``) are
posted as region annotations on each journey's dashboard (tag ``calendar:<date>:...``), so a
score left blank on Christmas Day explains itself on the graph.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException
from niquests.exceptions import RequestException

from alerts.anomaly_text import AnomalyText
from alerts.notifiers.console import no_data_text
from alerts.notifiers.http import connection_reason
from dashboards.exporter import severity_band
from dashboards.grafana import TAG, Built, journey_metrics
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


class GrafanaPushError(RuntimeError):
    """A Grafana call failed. The message is one line, safe to print: what failed, the
    server without credentials, the HTTP status or connection problem, a short reason."""


#: Worth another try: no connection / timeout (status 0) and a proxy or Grafana restarting.
RETRIABLE_STATUS = frozenset({0, 502, 503, 504})
MAX_REASON = 120


def safe_url(url: str) -> str:
    """``url`` without credentials, path or query: what a message may show.

    >>> safe_url("https://admin:s3cret@grafana.example.com:3000/sub/?token=x")
    'https://grafana.example.com:3000/sub/'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _http_reason(exc: GrafanaException) -> str:
    """``HTTP 502 Bad Gateway: <Grafana's message>``; an HTML or long body is left out."""
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {exc.status_code} {phrase}".rstrip()
    body = exc.response
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message.strip() and message.strip() != phrase:
        message = " ".join(message.split())
        cut = message if len(message) <= MAX_REASON else message[: MAX_REASON - 1] + "…"
        text += f": {cut}"
    if exc.status_code in (401, 403):
        text += " (check the grafana: token)"
    return text


def describe(exc: BaseException) -> tuple[int, str]:
    """``(status, reason)`` of a failed call; status 0 when no HTTP answer came back."""
    if isinstance(exc, GrafanaException) and exc.status_code:
        return exc.status_code, _http_reason(exc)
    return 0, connection_reason(exc)


@dataclass(slots=True)
class Caller:
    """Runs each Grafana call: retries connection failures and 502/503/504 with doubling
    waits (``sleep`` is injected so tests never wait), and turns any failure into one
    :class:`GrafanaPushError` line."""

    url: str
    attempts: int = 3
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    def __call__(self, what: str, fn: Callable[..., Any], *args: Any,
                 missing_ok: bool = False, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; ``missing_ok``: a 404 returns None."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(*args, **kwargs)
            except (GrafanaException, RequestException, OSError) as exc:
                status, reason = describe(exc)
                if missing_ok and status == 404:
                    return None
                if status not in RETRIABLE_STATUS or attempt == self.attempts:
                    tries = f" after {attempt} tries" if attempt > 1 else ""
                    raise GrafanaPushError(
                        f"{what} failed at {safe_url(self.url)}: {reason}{tries}") from None
                wait = self.backoff * 2 ** (attempt - 1)
                log.info("grafana: %s: %s; retry %d/%d in %.1fs", what, reason, attempt,
                         self.attempts - 1, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def connect(url: str, token: str | None = None, timeout: float = 10.0) -> GrafanaApi:
    """A grafana-client API object for ``url`` (a service-account token, or user:pass in URL)."""
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def _caller(api: GrafanaApi, call: Caller | None) -> Caller:
    return call if call is not None else Caller(str(api.url or api.client.url))


def ensure_folder(api: GrafanaApi, uid: str = FOLDER_UID, title: str = FOLDER_TITLE,
                  *, call: Caller | None = None) -> bool:
    """Create the folder if missing; True if it was created."""
    call = _caller(api, call)
    if call(f"reading folder {uid}", api.folder.get_folder, uid, missing_ok=True) is not None:
        return False
    call(f"creating folder {uid}", api.folder.create_folder, title, uid=uid)
    return True


def push_dashboards(
    api: GrafanaApi, dashboards: Iterable[Built], folder_uid: str = FOLDER_UID,
    *, call: Caller | None = None,
) -> PushReport:
    """Folder, then every dashboard (overwrite), then a search to confirm they are there."""
    call = _caller(api, call)
    report = PushReport(folder_uid=folder_uid)
    report.folder_created = ensure_folder(api, folder_uid, call=call)
    for d in dashboards:
        model = {k: v for k, v in d.model.items() if k != "id"}
        res = call(f"saving dashboard {d.uid}", api.dashboard.update_dashboard, {
            "dashboard": model,
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "cxmon dashboards push",
        })
        report.dashboards.append(d.uid)
        if isinstance(res, dict) and res.get("url"):
            report.urls[d.uid] = res["url"]
    hits = call("searching dashboards", api.search.search_dashboards, tag=TAG, type_="dash-db")
    report.found = sorted(h["uid"] for h in hits or [] if "uid" in h)
    missing = set(report.dashboards) - set(report.found)
    if missing:
        log.warning("grafana: pushed but not found by search: %s", ", ".join(sorted(missing)))
    return report


def _ms(ts: Any) -> int:
    return int(ts.timestamp() * 1000)


def anomaly_annotations(
    anomalies: Any, journeys: dict[str, str] | None = None, *,
    config: MonitorConfig | None = None,
) -> list[dict[str, Any]]:
    """Annotation payloads for a frame of stored anomalies (``Store.anomalies()``): one per
    anomaly, on its journey's dashboard and its metric's panel. With the ``config``, the
    numbers read as the alert did (``58.7% vs expected 33.4% (+76%), from 1,204 sessions``,
    ``3.10 / 5``) and the series with its display names."""
    journeys = journeys or {}
    words = AnomalyText.from_config(config) if config is not None else None
    out = []
    for row in anomalies.itertuples(index=False):
        _, labels = parse_series_key(row.series)
        labels = {**(row.labels or {}), **labels}
        journey = labels.get("journey") or journeys.get(row.metric)
        band = severity_band(row.severity)
        # from the expected value shown (clamped to the metric's range), as the alert's
        change = ""
        expected = row.expected if words is None else words.numbers(row).get("expected")
        if expected and row.value == row.value:
            change = f" ({(row.value - expected) / abs(expected):+.0%})"
        series = row.series if words is None else words.names.series(row.metric, labels)
        out.append({
            "dashboard_uid": journey_uid(journey) if journey else None,
            "panel_id": panel_id(row.metric) if journey else None,
            "time_from": _ms(row.ts),
            "time_to": _ms(row.ts),
            "tags": [TAG, f"journey:{journey or 'none'}", f"cx_metric:{row.metric}",
                     f"severity:{band}", f"anomaly:{row.id}"],
            "text": f"{series}: {_what(row, change, words)}, severity {row.severity}",
        })
    return out


def _what(row: Any, change: str, words: AnomalyText | None = None) -> str:
    """The anomaly in words: value against expected, or for a no-data anomaly the silence
    (its value and expected are a silence length or NaN, not KPI values)."""
    def real(x: Any) -> Any:
        return x if x == x else None  # NaN -> None

    silent = no_data_text({"kind": getattr(row, "kind", None),
                           "detector": getattr(row, "detector", None),
                           "value": real(row.value), "expected": real(row.expected)})
    if silent:
        return f"no data, {silent}"
    if words is None:
        return f"{row.value:.4g} vs expected {row.expected:.4g}{change}"
    text = words.text(row)
    volume = f", {text['volume']}" if text.get("volume") else ""
    return (f"{text.get('value', '-')} vs expected {text.get('expected', '-')}{change}"
            f"{volume}")


#: How far around today ``dashboards push`` annotates calendar days (past, ahead).
CALENDAR_BEFORE = timedelta(days=35)
CALENDAR_AHEAD = timedelta(days=90)
_CALENDAR_WHAT = {"skip": "not scored, alerted or learned", "score": "scored, not learned"}


def calendar_annotations(
    config: MonitorConfig, journeys: Iterable[str], start: date, end: date
) -> list[dict[str, Any]]:
    """One region annotation per calendar day in ``[start, end]`` and journey dashboard whose
    metrics follow the calendar (the day in its calendar's time zone, midnight to midnight)."""
    shown = [j for j in journeys
             if any(m.calendar for m in journey_metrics(config, j))]
    metric = next((m for m in config.metrics if m.calendar), None)
    cals = config.calendar_for(metric) if metric is not None else None
    if cals is None or not shown:
        return []
    out = []
    for where, cal in cals.all():
        for d, day in cal.days(start, end):
            t0 = datetime.combine(d, day_start(), cal.zone)
            t1 = datetime.combine(d + timedelta(days=1), day_start(), cal.zone)
            scope = f" ({where})" if where else (" (other series)" if cals.label else "")
            text = (f"{day.name}{scope}: calendar {day.mode} day, "
                    f"{_CALENDAR_WHAT[day.mode]}")
            for j in shown:
                out.append({
                    "dashboard_uid": journey_uid(j), "panel_id": None,
                    "time_from": _ms(t0), "time_to": _ms(t1),
                    "tags": [TAG, f"journey:{j}", "calendar",
                             f"calendar:{d.isoformat()}:{where or 'all'}:{j}:{day.mode}"],
                    "text": text,
                })
    return out


def post_annotations(
    api: GrafanaApi, payloads: list[dict[str, Any]], report: PushReport | None = None,
    *, call: Caller | None = None,
) -> PushReport:
    """Post annotations not posted before (looked up by their last tag: ``anomaly:<id>`` or
    ``calendar:<date>:...``)."""
    call = _caller(api, call)
    report = report or PushReport()
    if not payloads:
        return report
    start = min(p["time_from"] for p in payloads)
    end = max(p["time_to"] for p in payloads)
    existing = call(
        "reading annotations", api.annotations.find_annotations,
        time_from=start, time_to=end + 1, tags=[TAG], limit=100_000,
    ) or []
    done = {t for a in existing for t in a.get("tags") or []
            if t.startswith(("anomaly:", "calendar:"))}
    for p in payloads:
        key = p["tags"][-1]
        if key in done:
            report.annotations_skipped += 1
            continue
        call(f"posting annotation {key}", api.annotations.add_annotation, **p)
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
    call: Caller | None = None,
    journeys: Iterable[str] = (),
    today: date | None = None,
) -> PushReport:
    """Everything ``cxmon dashboards push`` does; a failure is a :class:`GrafanaPushError`.
    With a ``store``, also the anomalies as annotations, and the calendar days from
    ``CALENDAR_BEFORE`` before ``today`` to ``CALENDAR_AHEAD`` after it on the ``journeys``'
    dashboards."""
    if api is None:
        if config.grafana is None:
            raise ValueError("no grafana: block in the config (grafana: {url: ..., token: ...})")
        token = config.grafana.token.get_secret_value() if config.grafana.token else None
        api = connect(config.grafana.url, token)
        call = call or Caller(config.grafana.url)
    report = push_dashboards(api, dashboards, folder_uid, call=call)
    if store is not None:
        labelled = {m.name: m.labels["journey"] for m in config.metrics if "journey" in m.labels}
        payloads = anomaly_annotations(store.anomalies(start=since), labelled, config=config)
        today = today or datetime.now(UTC).date()
        payloads += calendar_annotations(config, journeys, today - CALENDAR_BEFORE,
                                         today + CALENDAR_AHEAD)
        post_annotations(api, payloads, report, call=call)
    return report


__all__ = [
    "Caller",
    "GrafanaPushError",
    "PushReport",
    "anomaly_annotations",
    "calendar_annotations",
    "connect",
    "ensure_folder",
    "post_annotations",
    "push",
    "push_dashboards",
    "safe_url",
]
