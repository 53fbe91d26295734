"""GA4, Salesforce and ServiceNow end to end through the CLI, as a user runs them: a config
file per source pointing at the vendor fake, ``cxmon validate``, ``validate --poll`` and
``cxmon backfill`` into a SQLite store, then the stored points (UTC hour buckets, every page
counted), plus the failures a user meets first (wrong credentials, 429, 5xx, a typo in a key),
each with a clear message and no secret in the output or the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.store import Store
from tests.fakes.google_analytics import PROPERTY, google_error, serve_google_analytics
from tests.fakes.salesforce import AGGREGATE_SOQL, serve_salesforce
from tests.fakes.server import FakeServer, Response
from tests.fakes.servicenow import serve_servicenow

T0 = datetime(2026, 1, 5, tzinfo=UTC)
HOURS = [pd.Timestamp(T0 + timedelta(hours=h)) for h in range(6)]
WINDOW = ["--start", "2026-01-05T00:00Z", "--end", "2026-01-05T06:00Z"]
GA_TOKEN, SF_TOKEN, SN_PASSWORD = "ya29.ga-SECRET-1", "00Dsf!SECRET-2", "sn-SECRET-3"
ENV = {"GA_TOKEN": GA_TOKEN, "SF_TOKEN": SF_TOKEN, "SN_USER": "cxmon",
       "SN_PASSWORD": SN_PASSWORD}
WRONG = {"GA_TOKEN": "ya29.WRONG-4", "SF_TOKEN": "WRONG-5", "SN_USER": "cxmon",
         "SN_PASSWORD": "WRONG-6"}
SECRETS = (GA_TOKEN, SF_TOKEN, SN_PASSWORD, "WRONG-4", "WRONG-5", "WRONG-6",
           "Y3htb246")  # base64 of "cxmon:", the start of the basic-auth header

GA = """
store: "sqlite:///{tmp}/cx.db"
sources:
  ga:
    type: google_analytics
    property_id: "{prop}"
    api_endpoint: "{url}"
    access_token: "${{GA_TOKEN}}"
    page_size: 7                    # the fake caps pages at 5 rows: 10+ pages a day
    retry: {{attempts: 2, backoff: 0.01}}
metrics:
  - name: checkout_dropoff
    source: ga
    interval: 1h
    query: checkout funnel
    params:
      dimensions: [deviceCategory]
      funnel: {{started: begin_checkout, completed: purchase}}
    timestamp: timestamp
    dimensions: [deviceCategory]
    value: {{ratio: [abandoned, started]}}
"""

SF = """
store: "sqlite:///{tmp}/cx.db"
sources:
  crm:
    type: salesforce
    instance_url: "{url}"
    access_token: "${{SF_TOKEN}}"
    retry: {{attempts: 2, backoff: 0.01}}
metrics:
  - name: cases
    source: crm
    interval: 1h
    query: "{soql}"
    timestamp: ts
    dimensions: [origin]
    value: cases
"""

SN = """
store: "sqlite:///{tmp}/cx.db"
sources:
  itsm:
    type: servicenow
    base_url: "{url}"
    username: "${{SN_USER}}"
    password: "${{SN_PASSWORD}}"
    retry: {{attempts: 2, backoff: 0.01}}
metrics:
  - name: incidents
    source: itsm
    interval: 1h
    query: incident
    params: {params}
    timestamp: opened_at
    dimensions: [category]
    value: count
"""


@contextmanager
def vendor(kind: str, tmp: Path, ga_zone: str = "Etc/GMT",
           **fmt: str) -> Iterator[tuple[FakeServer, Path, str]]:
    """The fake of ``kind`` running, a config file for it, and the metric's name
    (``ga_zone``: the GA4 property's time zone)."""
    with FakeServer() as server:
        if kind == "ga":
            serve_google_analytics(server, GA_TOKEN, time_zone=ga_zone)
            text, metric = GA.format(tmp=tmp, url=server.url, prop=PROPERTY), "checkout_dropoff"
        elif kind == "sf":
            serve_salesforce(server, SF_TOKEN, page_size=5)
            text, metric = SF.format(tmp=tmp, url=server.url, soql=AGGREGATE_SOQL), "cases"
        else:
            serve_servicenow(server, "cxmon", SN_PASSWORD)
            text = SN.format(tmp=tmp, url=server.url,
                             params=fmt.get("params", "{group_by: [category]}"))
            metric = "incidents"
        path = tmp / f"{kind}.yaml"
        path.write_text(text)
        yield server, path, metric


def cli(*args: str, env: dict[str, str] = ENV) -> tuple[int, str]:
    out = CliRunner().invoke(app, list(args), env=env)
    return out.exit_code, " ".join(out.output.split())


def stored(tmp: Path, metric: str) -> dict[str, dict[pd.Timestamp, float]]:
    store = Store.open(f"sqlite:///{tmp}/cx.db")
    try:
        points = store.load_points(metric=metric)
    finally:
        store.close()
    assert all(ts.tzinfo is not None and ts.utcoffset() == timedelta(0)
               for ts in points["timestamp"]), points["timestamp"]
    return {s: dict(zip(g["timestamp"], g["value"], strict=True))
            for s, g in points.groupby("series")}


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, (leaked, text)


# -- happy path: validate, validate --poll, backfill, stored points ------------------------

def test_google_analytics_backfill_stores_funnel_dropoff_per_utc_hour(tmp_path) -> None:
    with vendor("ga", tmp_path) as (server, path, metric):
        assert cli("validate", "-c", str(path))[0] == 0
        code, out = cli("validate", "-c", str(path), "--poll")
        assert code == 0 and "✓ checkout_dropoff (ga," in out and "3 series" in out, out
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
        assert code == 0, out
        assert "2026-01-05 00:00 – 2026-01-05 06:00 UTC" in out and "0 rejected" in out, out
        # the day's 96 report rows (24 h x 2 devices x 2 events), 5 rows per page
        assert len(server.log) > 20
    points = stored(tmp_path, metric)
    assert set(points) == {"checkout_dropoff", 'checkout_dropoff{deviceCategory="desktop"}',
                           'checkout_dropoff{deviceCategory="mobile"}'}
    for series in points.values():
        assert sorted(series) == HOURS  # the six UTC hours asked for, not the whole day
    # fake: begin_checkout 100 + hour (+7 on mobile), purchase 60 + hour (+7): abandoned 40
    desktop = points['checkout_dropoff{deviceCategory="desktop"}']
    assert desktop[HOURS[3]] == pytest.approx(40 / 103)
    assert points["checkout_dropoff"][HOURS[5]] == pytest.approx(80 / (105 + 112))


def test_salesforce_backfill_follows_next_records_url_and_stores_cases(tmp_path) -> None:
    with vendor("sf", tmp_path) as (server, path, metric):
        assert cli("validate", "-c", str(path))[0] == 0
        code, out = cli("validate", "-c", str(path), "--poll")
        assert code == 0 and "✓ cases (crm," in out, out
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW,
                        "--chunk", "3h")
        assert code == 0, out
        assert "2 chunk(s), 12 rows, 18 points in 3 series, 0 rejected" in out, out
        pages = [r.path for r in server.log if r.path.rsplit("/", 1)[-1].startswith("01gD")]
        assert pages  # 6 groups per chunk, 5 per page: every chunk needed a second page
    points = stored(tmp_path, metric)
    assert points['cases{origin="Web"}'] == {h: float(1 + i % 2) for i, h in enumerate(HOURS)}
    assert points['cases{origin="Phone"}'] == {h: float(2 + i % 2) for i, h in enumerate(HOURS)}
    assert points["cases"] == {h: float(3 + 2 * (i % 2)) for i, h in enumerate(HOURS)}


@pytest.mark.parametrize("params", ["{group_by: [category]}", "{fields: [category]}"],
                         ids=["aggregate_api", "table_api"])
def test_servicenow_backfill_counts_incidents_per_utc_hour(tmp_path, params: str) -> None:
    with vendor("sn", tmp_path, params=params) as (server, path, metric):
        assert cli("validate", "-c", str(path))[0] == 0
        code, out = cli("validate", "-c", str(path), "--poll")
        assert code == 0 and "✓ incidents (itsm," in out, out
        # a start inside a bucket is floored to it; 07:00 is past the fake's data
        code, out = cli("backfill", "-c", str(path), "--metric", metric,
                        "--start", "2026-01-04T23:30Z", "--end", "2026-01-05T07:00Z")
        assert code == 0, out
        assert "2026-01-04 23:00 – 2026-01-05 07:00 UTC" in out and "12 rows" in out, out
        if "fields" in params:  # 12 rows, 5 per page: the Link header was followed
            assert len(server.requests_to("/api/now/table/incident")) >= 3
    points = stored(tmp_path, metric)
    assert points["incidents"] == {h: 2.0 for h in HOURS}
    assert points['incidents{category="network"}'] == {h: 1.0 for h in HOURS}
    assert points['incidents{category="software"}'] == {h: 1.0 for h in HOURS}


# -- failures: clear, classified, no secret --------------------------------------------------

KINDS = ["ga", "sf", "sn"]


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_credentials_fail_clearly_without_the_secret(tmp_path, kind, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with vendor(kind, tmp_path) as (_server, path, metric):
        code, out = cli("validate", "-c", str(path), "--poll", env=WRONG)
        assert code == 1 and "credentials" in out and "could not be polled" in out, out
        code2, out2 = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW, env=WRONG)
    assert code2 == 1 and "backfill failed" in out2 and "credentials" in out2, out2
    assert_no_secret(out + out2 + caplog.text)


@pytest.mark.parametrize("kind", KINDS)
def test_a_401_mid_backfill_is_fatal_and_names_the_credentials(tmp_path, kind,
                                                                 caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with vendor(kind, tmp_path) as (server, path, metric):
        server.fail(401, body=google_error(401, "Request had invalid authentication "
                                                "credentials."))
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
        assert len(server.log) == 1  # not retried
    assert code == 1 and "credentials" in out, out
    assert_no_secret(out + caplog.text)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_error_is_retried_and_the_backfill_completes(tmp_path, kind, status,
                                                                 caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with vendor(kind, tmp_path) as (server, path, metric):
        server.fail(status, times=1, headers={"Retry-After": "0"})
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
    assert code == 0 and "18 points in 3 series" in out, out
    assert f"{status}" in caplog.text  # the retry is logged with the status
    assert_no_secret(out + caplog.text)


@pytest.mark.parametrize(("kind", "key", "hint"), [
    ("ga", "pagesize", "page_size"), ("sf", "acess_token", "access_token"),
    ("sn", "pasword", "password")])
def test_a_misspelt_source_key_is_rejected_with_its_path(tmp_path, kind, key, hint) -> None:
    with vendor(kind, tmp_path) as (_server, path, _metric):
        name = {"ga": "ga", "sf": "crm", "sn": "itsm"}[kind]
        text = path.read_text().replace("    retry:", f"    {key}: x\n    retry:")
        path.write_text(text)
        code, out = cli("validate", "-c", str(path))
    assert code == 2, out
    assert f"sources.{name}.{key}: unknown key '{key}' (did you mean '{hint}'?)" in out


@pytest.mark.parametrize("kind", KINDS)
def test_a_long_retry_after_stops_the_backfill_and_says_when_to_rerun(tmp_path, kind,
                                                                     caplog) -> None:
    """A 429 asking for an hour used to be re-asked within seconds by the backfill's own
    retries ("server asked to wait 3600s; retry 1 of 5 in 1s"): one request, then a stop."""
    caplog.set_level(logging.DEBUG)
    with vendor(kind, tmp_path) as (server, path, metric):
        server.fail(429, headers={"Retry-After": "3600"})
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
        assert len(server.log) == 1  # not asked again
    assert code == 1, out
    assert "backfill stopped:" in out and "server asked to wait 3600s" in out, out
    assert "nothing was stored yet" in out and "Re-run the same command after" in out, out
    assert "retry 1 of" not in out + caplog.text
    assert_no_secret(out + caplog.text)


def test_a_long_retry_after_mid_backfill_says_what_is_stored(tmp_path) -> None:
    with vendor("sn", tmp_path) as (server, path, metric):
        stats = server.routes[("GET", "/api/now/stats/incident")]

        def limited(req):  # three hourly buckets answered, then the quota is spent
            if len(server.requests_to(req.path)) > 3:
                return Response(429, {"error": "quota"}, {"Retry-After": "600"})
            return stats(req)

        server.route("GET", "/api/now/stats/incident", limited)
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW,
                        "--chunk", "1h")
    assert code == 1, out
    assert "points are stored up to 2026-01-05 03:00 UTC" in out, out
    assert set(stored(tmp_path, metric)["incidents"]) == set(HOURS[:3])


@pytest.mark.parametrize(("status", "body", "said"), [
    (503, "<html><head><title>503 Service Unavailable</title></head><body><h1>Down for "
          "maintenance</h1>" + "<p>back soon</p>" * 200 + "</body></html>",
     "(503 Service Unavailable Down for maintenance back soon"),
    (429, "Too Many Requests", "(Too Many Requests)"),
    (500, {"error": "fault", "token": SF_TOKEN}, '({"error": "fault", "token": '),
])
def test_salesforce_error_pages_are_quoted_not_named_by_the_client_class(
        tmp_path, status, body, said) -> None:
    """A proxy's or load balancer's page used to read "HTTP 503 (SalesforceGeneralError)",
    and a JSON body showed as a Python dict; now a short excerpt, secrets scrubbed."""
    with vendor("sf", tmp_path) as (server, path, _metric):
        server.fail(status, times=10, body=body, headers={"Content-Type": "text/html"})
        code, out = cli("validate", "-c", str(path), "--poll")
    assert code == 1, out
    # the org's host and the API path (not the SOQL), then what the page said
    said = f"HTTP {status} from 127.0.0.1:{server.port}/services/data/v59.0/query/ {said}"
    assert said in " ".join(out.split()) and "SalesforceGeneralError" not in out, out
    assert len(out) < 700  # an excerpt, not the page
    assert_no_secret(out)


@pytest.mark.parametrize("given", [True, False])
def test_google_analytics_property_time_zone_is_converted_to_utc_buckets(
        tmp_path, given: bool) -> None:
    """``dateHour`` is local to the property: with America/New_York (UTC-5 in January) the
    local hour 19:00 of 01-04 is stored as the UTC bucket 01-05 00:00, whether
    ``params.timezone`` names the zone or is left to the report's ``metadata.timeZone``
    (it defaulted to UTC and shifted every hour by five)."""
    with vendor("ga", tmp_path, ga_zone="America/New_York") as (server, path, metric):
        if given:
            path.write_text(path.read_text().replace(
                "      funnel:", "      timezone: America/New_York\n      funnel:"))
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
        assert code == 0 and "18 points in 3 series" in out, out
        ranges = [b["dateRanges"] for b in (r.json() for r in server.log)]
    first = {"startDate": "2026-01-04", "endDate": "2026-01-05"} if given else {
        "startDate": "2026-01-04", "endDate": "2026-01-06"}  # the zone is not known yet
    assert ranges[0] == [first]
    desktop = stored(tmp_path, metric)['checkout_dropoff{deviceCategory="desktop"}']
    assert sorted(desktop) == HOURS
    local_hours = [19, 20, 21, 22, 23, 0]  # the fake's started = 100 + local hour on desktop
    assert [desktop[h] for h in HOURS] == pytest.approx([40 / (100 + lh) for lh in local_hours])


@pytest.mark.parametrize("kind", ["ga", "sn"])
def test_a_misspelt_params_key_is_named_by_validate_with_its_path(tmp_path, kind) -> None:
    """Metric params are checked against the source type's model with the rest of the
    config: plain ``validate`` names the key with its full path and a did-you-mean (before,
    only ``validate --poll`` and ``backfill`` saw it, without the path)."""
    with vendor(kind, tmp_path, params="{group_by: [category], bukket: 1h}") as (
            _server, path, metric):
        if kind == "ga":
            path.write_text(path.read_text().replace("      funnel:", "      funnell:"))
        said = ("metrics[0].params.bukket: unknown key 'bukket' (did you mean 'bucket'?)"
                if kind == "sn" else
                "metrics[0].params.funnell: unknown key 'funnell' (did you mean 'funnel'?)")
        code, out = cli("validate", "-c", str(path))
        assert code == 2 and said in out, out
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
    assert code == 2 and said in out, out


def test_servicenow_table_api_dimension_missing_from_fields_is_named_by_validate(
        tmp_path) -> None:
    """The Table API returns only params.fields (and time_field): a dimension missing there
    used to pass validate and fail each poll with "the query result has no column(s)"."""
    with vendor("sn", tmp_path, params="{fields: [priority]}") as (server, path, metric):
        said = ("metrics[0].params.fields: dimension category is not among params.fields, "
                "so the Table API would not return it; add category to params.fields")
        code, out = cli("validate", "-c", str(path))
        assert code == 2 and said in " ".join(out.split()), out
        code, out = cli("backfill", "-c", str(path), "--metric", metric, *WINDOW)
        assert code == 2 and said in " ".join(out.split()), out
        assert not server.log  # nothing was polled


def test_google_analytics_credentials_file_problems_name_the_file_not_the_key(tmp_path) -> None:
    """"cannot read credentials_file: FileNotFoundError" said neither which file (a relative
    one is taken from the config's folder) nor what to do."""
    with vendor("ga", tmp_path) as (_server, path, _metric):
        path.write_text(path.read_text().replace('access_token: "${GA_TOKEN}"',
                                                 'credentials_file: keys/ga.json'))
        code, out = cli("validate", "-c", str(path))  # plain validate warns already
        assert code == 0 and (f"warning sources.ga.credentials_file: no file {tmp_path}/keys/"
                              "ga.json (a relative path is taken from the config's folder)"
                              in " ".join(out.split())), out
        code, out = cli("validate", "-c", str(path), "--poll")
        assert code == 1, out
        assert f"credentials_file {tmp_path}/keys/ga.json: no such file" in out, out
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "ga.json").write_text(
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
            'KEY-MATERIAL-7\\n-----END PRIVATE KEY-----\\n", "client_email": "a@b.c"}')
        code, out = cli("validate", "-c", str(path), "--poll")
    assert code == 1, out
    assert f"credentials_file {tmp_path}/keys/ga.json is not a service-account JSON key" in out
    assert "KEY-MATERIAL-7" not in out


@pytest.mark.parametrize("params", ["{group_by: [category]}", "{fields: [category]}"],
                         ids=["aggregate_api", "table_api"])
def test_servicenow_hints_match_the_error(tmp_path, params: str) -> None:
    """A refused query (400: a misspelt table or field) used to end with "(the user needs
    the itil role or read ACLs)", a fix for a 401/403 only."""
    with vendor("sn", tmp_path, params=params) as (server, path, _metric):
        server.fail(400, times=10, body={"error": {"message": "Invalid table incidnt"}})
        code, out = cli("validate", "-c", str(path), "--poll")
        assert code == 1 and "HTTP 400" in out, out
        assert "check the table name (the metric's query), params.time_field" in out, out
        assert "itil" not in out, out
        server.faults.clear()
        server.fail(403, times=10, body={"error": {"message": "User Not Authorized"}})
        code, out = cli("validate", "-c", str(path), "--poll")
    assert code == 1 and "credentials rejected" in out, out
    assert "the user needs the itil role or read ACLs on the table" in out, out
    assert "check the table name" not in out, out
