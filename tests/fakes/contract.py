"""One contract case per registered source type: how to stand its backend up, configure it,
poll it, and make it fail. ``tests/test_source_contract.py`` runs the same checks on all.

Every case serves the same small data set: hourly rows from :data:`T0` for 6 hours, two
channels each (12 rows), so the checks are identical for every source.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from sources.base import PollRequest
from tests.fakes.generic_json import hourly_rows, serve_stats
from tests.fakes.google_analytics import PROPERTY as GA_PROPERTY
from tests.fakes.google_analytics import google_error, serve_google_analytics
from tests.fakes.prometheus import serve_prometheus
from tests.fakes.salesforce import AGGREGATE_SOQL, serve_salesforce
from tests.fakes.server import FakeServer
from tests.fakes.servicenow import serve_servicenow
from tests.fakes.zendesk import serve_zendesk

T0 = datetime(2026, 1, 5, tzinfo=UTC)
T_END = T0 + timedelta(hours=6)
SECRET = "s3cr3t-t0ken-value"


@dataclass
class Env:
    """A running backend for one test."""

    config: dict[str, Any]
    request: PollRequest
    expected_rows: int
    server: FakeServer | None = None
    #: Break the backend: "429", "503" (transient, ``times`` requests) or "401" (credentials).
    fail: Callable[[str, int], None] | None = None
    #: Make every later poll hit an unreachable backend (for non-HTTP sources).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    type: str
    start: Callable[[Path], contextlib.AbstractContextManager[Env]]
    http: bool = False  # retry/backoff/auth via the shared HTTP client
    paginated: bool = False
    #: For non-HTTP sources: a config change that makes the backend unreachable (retriable)
    #: and one with bad credentials (fatal); None = not applicable.
    unreachable: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    bad_credentials: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    notes: str = ""


def request(metric: str, query: str | None, ts: str = "ts", **params: Any) -> PollRequest:
    return PollRequest(metric, T0, T_END, query, params, ts)


def _http_fail(server: FakeServer) -> Callable[[str, int], None]:
    def fail(kind: str, times: int) -> None:
        if kind == "429":
            server.fail(429, times, {"Retry-After": "2"}, {"error": "rate limited"})
        elif kind == "503":
            server.fail(503, times, {}, {"error": "maintenance"})
        elif kind == "401":
            server.fail(401, times, {}, {"error": "token expired"})
        else:
            raise ValueError(kind)
    return fail


# -- demo -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _demo(_tmp: Path) -> Iterator[Env]:
    yield Env(
        {"type": "demo", "seed": 3, "anchor": T0.isoformat()},
        request("complaints", "complaints"),
        expected_rows=6 * 60,  # 6 hours x 60 (journey, channel, region) cells
    )


# -- sql ------------------------------------------------------------------------------------


def _write_sql(url: str) -> None:
    engine = sa.create_engine(url)
    rows = pd.DataFrame(hourly_rows())
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True).dt.tz_localize(None)
    rows.to_sql("stats", engine, if_exists="replace", index=False)
    engine.dispose()


@contextlib.contextmanager
def _sql(tmp: Path) -> Iterator[Env]:
    url = f"sqlite:///{tmp / 'warehouse.db'}"
    _write_sql(url)
    yield Env(
        {"type": "sql", "url": url},
        request("orders", "select ts, channel, count from stats "
                          "where ts >= :since and ts < :until"),
        expected_rows=12,
    )


def _sql_unreachable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**cfg, "url": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"}


# -- files ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _files(tmp: Path) -> Iterator[Env]:
    rows = pd.DataFrame(hourly_rows())
    rows.iloc[:6].to_csv(tmp / "part-1.csv", index=False)
    rows.iloc[6:].to_json(tmp / "part-2.jsonl", orient="records", lines=True)
    yield Env(
        {"type": "files", "path": str(tmp / "part-*")},
        request("orders", None),
        expected_rows=12,
    )


# -- HTTP APIs: a fake server each (the real Prometheus: tests/test_sources_prometheus.py) ---


def _google_fail(server: FakeServer) -> Callable[[str, int], None]:
    def fail(kind: str, times: int) -> None:  # Google's error format
        code = int(kind)
        headers = {"Retry-After": "2"} if code == 429 else {}
        server.fail(code, times, headers, google_error(code, "fault"))
    return fail


def _http_case(
    type_name: str,
    serve: Callable[[FakeServer], object],
    config: Callable[[str], dict[str, Any]],
    req: PollRequest,
    *,
    paginated: bool = True,
    fail: Callable[[FakeServer], Callable[[str, int], None]] = _http_fail,
    notes: str = "",
) -> Case:
    """A case whose backend is a fake vendor server: ``serve`` sets it up, ``config(url)``
    is the source block, ``req`` the poll (12 rows expected)."""

    @contextlib.contextmanager
    def start(_tmp: Path) -> Iterator[Env]:
        with FakeServer() as server:
            serve(server)
            yield Env({"type": type_name, **config(server.url)}, req, expected_rows=12,
                      server=server, fail=fail(server))

    return Case(type_name, start, http=True, paginated=paginated, notes=notes)


HTTP_CASES = [
    _http_case(
        "http_json", lambda s: serve_stats(s, hourly_rows(), page_size=5, token=SECRET),
        lambda url: {"base_url": url, "token": SECRET,
                     "pagination": {"style": "next_url", "next": "next"}},
        request("orders", "/v1/stats?from={since}&to={until}", records="data",
                fields={"ts": "ts", "channel": "meta.channel", "count": "n"}),
    ),
    _http_case(
        "prometheus", lambda s: serve_prometheus(s, token=SECRET),
        lambda url: {"base_url": url, "token": SECRET, "step": "1h"},
        request("orders", "sum by (channel) (increase(orders_total[1h]))", "timestamp"),
        paginated=False, notes="one matrix per range; long ranges are split by time",
    ),
    _http_case(
        "zendesk", lambda s: serve_zendesk(s, "bot@example.com", SECRET),
        lambda url: {"base_url": url, "email": "bot@example.com", "api_token": SECRET},
        request("tickets", "tickets", "created_at"),
    ),
    _http_case(
        "servicenow", lambda s: serve_servicenow(s, "cxmon", SECRET),
        lambda url: {"base_url": url, "username": "cxmon", "password": SECRET},
        request("incidents", "incident", "opened_at", fields=["category", "priority"]),
    ),
    _http_case(
        "salesforce", lambda s: serve_salesforce(s, SECRET, page_size=5),
        lambda url: {"instance_url": url, "access_token": SECRET},
        request("cases", AGGREGATE_SOQL, "ts"),
    ),
    _http_case(
        "google_analytics", lambda s: serve_google_analytics(s, SECRET, max_limit=5),
        lambda url: {"property_id": GA_PROPERTY, "api_endpoint": url, "access_token": SECRET,
                     "page_size": 5},
        request("checkout", "checkout funnel", "timestamp", dimensions=["deviceCategory"],
                funnel={"started": "begin_checkout", "completed": "purchase"}),
        fail=_google_fail,
    ),
]

CASES: dict[str, Case] = {
    "demo": Case("demo", _demo, notes="in-process simulation: no backend to fail"),
    "sql": Case("sql", _sql, unreachable=_sql_unreachable),
    "files": Case("files", _files, notes="local files: nothing to authenticate or retry"),
    **{c.type: c for c in HTTP_CASES},
}


def register_case(case: Case) -> Case:
    CASES[case.type] = case
    return case
