"""A metric's ``params`` checked against its source type's model by ``cxmon validate`` and at
poll time: prometheus (``step``), the source types that take none (``zendesk``, ``files``,
``demo``), and ServiceNow Table API ``fields`` that must carry the metric's dimensions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import config as cfg
from monitor.config import ConfigError, MetricConfig
from monitor.probe import probe_metric
from sources.base import FatalSourceError, PollRequest
from sources.demo import DemoSource, DemoSourceConfig
from sources.files import FilesSource, FilesSourceConfig
from sources.prometheus import PrometheusSource, PrometheusSourceConfig
from sources.servicenow import ServiceNowSource, ServiceNowSourceConfig
from sources.zendesk import ZendeskSource, ZendeskSourceConfig
from tests.fakes.prometheus import serve_prometheus
from tests.fakes.server import FakeServer
from tests.fakes.servicenow import serve_servicenow

T0 = datetime(2026, 1, 5, tzinfo=UTC)
T6 = T0 + timedelta(hours=6)

SOURCES = """
sources:
  prom: {type: prometheus, base_url: "http://prometheus:9090"}
  support: {type: zendesk, subdomain: acme, email: a@b.c, api_token: secret-token}
  exports: {type: files, path: /nonexistent/cx/*.csv}
  shop: {type: demo, anchor: "2026-01-01T00:00:00Z"}
  itsm: {type: servicenow, instance: acme, username: u, password: p}
  db: {type: sql, url: "sqlite://"}
metrics:
"""


def problems(metrics: str) -> list[tuple[str, str]]:
    """``(path, message)`` of every problem validation finds; [] when the config is valid."""
    try:
        cfg.parse_config(SOURCES + metrics, env={})
    except ConfigError as exc:
        return [(p.path, p.message) for p in exc.problems]
    return []


def test_a_misspelt_prometheus_step_is_named_with_a_suggestion() -> None:
    """``stpe: 5m`` used to be ignored: the source's step was used without a word."""
    got = problems("""
  - {name: a, source: prom, query: "sum(rate(x[5m]))", value: value, params: {stpe: 5m}}
  - {name: b, source: prom, query: "sum(rate(x[5m]))", value: value, params: {step: 0s}}
  - {name: c, source: prom, query: "sum(rate(x[5m]))", value: value, params: {step: 5x}}
""")
    assert ("metrics[0].params.stpe", "unknown key 'stpe' (did you mean 'step'?)") in got, got
    assert any(p == "metrics[1].params.step" and "positive" in m for p, m in got), got
    assert any(p == "metrics[2].params.step" and "invalid duration" in m for p, m in got), got
    assert len(got) == 3, got


def test_valid_params_pass() -> None:
    assert problems("""
  - {name: a, source: prom, query: "sum(rate(x[5m]))", value: value, params: {step: 15m}}
  - {name: b, source: support, query: tickets, timestamp: created_at, value: count,
     dimensions: [channel]}
  - {name: c, source: exports, timestamp: ts, value: count, params: {}}
  - {name: d, source: shop, query: checkout, timestamp: timestamp, value: count}
  - {name: e, source: db, query: "select 1", timestamp: ts, value: count,
     params: {any_bind_name: 1}}
  - {name: f, source: itsm, query: incident, timestamp: opened_at, value: count,
     dimensions: [category], params: {fields: [category]}}
  - {name: g, source: itsm, query: incident, timestamp: opened_at, value: count,
     dimensions: [category], params: {group_by: [category]}}
""") == []


@pytest.mark.parametrize("source,query", [("support", "tickets"), ("exports", "a.csv"),
                                          ("shop", "checkout")])
def test_params_given_to_a_source_type_that_reads_none_are_rejected(source, query) -> None:
    """zendesk, files and demo read no params: one given did nothing, silently."""
    kind = {"support": "zendesk", "exports": "files", "shop": "demo"}[source]
    got = problems(f"""
  - {{name: a, source: {source}, query: {query}, timestamp: ts, value: count,
     params: {{query: tickets}}}}
""")
    assert got == [("metrics[0].params.query",
                    f"unknown key 'query': {kind} sources take no params (remove it)")], got


def test_servicenow_table_api_dimensions_must_be_among_fields() -> None:
    """The Table API returns only ``time_field`` and ``fields``: a dimension missing there
    used to fail at the first poll with "the query result has no column(s) category"."""
    got = problems("""
  - {name: a, source: itsm, query: incident, timestamp: opened_at, value: count,
     dimensions: [category], params: {fields: [priority]}}
  - {name: b, source: itsm, query: incident, timestamp: opened_at, value: count,
     split_by: [channel], dimensions: [category, priority]}
""")
    assert got == [
        ("metrics[0].params.fields",
         "dimension category is not among params.fields, so the Table API would not return "
         "it; add category to params.fields"),
        ("metrics[1].params",  # no params: reported where they belong
         "dimensions channel, category, priority are not among params.fields, so the Table "
         "API would not return them; add channel, category, priority to params.fields"),
    ], got


def test_servicenow_aggregate_api_dimensions_must_be_grouped_by() -> None:
    """The Aggregate API returns only the ``group_by`` fields: a dimension missing there
    failed at the first poll with a generic "no column(s)" error."""
    got = problems("""
  - {name: a, source: itsm, query: incident, timestamp: opened_at, value: count,
     dimensions: [category, priority], params: {group_by: [priority], fields: [category]}}
""")
    assert got == [
        ("metrics[0].params.group_by",
         "dimension category is not among params.group_by, so the Aggregate API would not "
         "group by it; add category to params.group_by"),
    ], got


def servicenow(server: FakeServer) -> ServiceNowSource:
    return ServiceNowSource("snow", ServiceNowSourceConfig(
        type="servicenow", base_url=server.url, username="u", password="p"))


def test_servicenow_table_api_missing_dimension_is_fatal_at_poll_time() -> None:
    with FakeServer() as server:
        serve_servicenow(server, "u", "p")
        src = servicenow(server)
        with pytest.raises(FatalSourceError) as info:
            src.fetch(PollRequest("inc", T0, T6, "incident", {"fields": ["priority"]},
                                  "opened_at", dimensions=("category",)))
        assert not server.log  # nothing was sent
        assert str(info.value) == (
            "source snow: metric inc: dimension category is not among params.fields, so the "
            "Table API would not return it; add category to params.fields")
        # with the field listed (or the Aggregate API) the same metric polls
        df = src.fetch(PollRequest("inc", T0, T6, "incident", {"fields": ["category"]},
                                   "opened_at", dimensions=("category",)))
        assert "category" in df.columns and len(df) == 12
        df = src.fetch(PollRequest("inc", T0, T6, "incident", {"group_by": ["category"]},
                                   "opened_at", dimensions=("category",)))
        assert "category" in df.columns
        sent = len(server.log)
        with pytest.raises(FatalSourceError, match="dimension priority is not among "
                           r"params.group_by, so the Aggregate API would not group by it"):
            src.fetch(PollRequest("inc", T0, T6, "incident", {"group_by": ["category"]},
                                  "opened_at", dimensions=("category", "priority")))
        assert len(server.log) == sent  # nothing was sent


def test_polls_pass_the_metrics_dimensions_to_the_source() -> None:
    """``validate --poll`` (and every poll) gives the source the metric's dimensions, so the
    ServiceNow check also guards a config that skipped validation."""
    metric = MetricConfig(name="inc", source="itsm", query="incident", timestamp="opened_at",
                          interval=timedelta(hours=1), dimensions=["category"],
                          value="count", params={"fields": ["priority"]})
    with FakeServer() as server:
        serve_servicenow(server, "u", "p")
        probe = probe_metric(metric, servicenow(server), T6, 6)
        assert not server.log
    assert probe.error and "add category to params.fields" in probe.error


def test_prometheus_params_are_parsed_at_poll_time() -> None:
    with FakeServer() as server:
        serve_prometheus(server)
        src = PrometheusSource("prom", PrometheusSourceConfig(type="prometheus",
                                                              base_url=server.url))
        with pytest.raises(FatalSourceError) as info:
            src.fetch(PollRequest("m", T0, T6, "sum(x)", {"stpe": "1h"}))
        assert "params.stpe: Extra inputs are not permitted" in str(info.value)
        with pytest.raises(FatalSourceError, match=r"params\.step: .*positive"):
            src.fetch(PollRequest("m", T0, T6, "sum(x)", {"step": "0s"}))
        assert not server.log
        src.fetch(PollRequest("m", T0, T6, "sum(x)", {"step": "1h"}))
        src.fetch(PollRequest("m", T0, T6, "sum(x)", {}))
        steps = [r.query["step"] for r in server.requests_to("/api/v1/query_range")]
    assert steps == ["3600s", "60s"]  # params.step, else the source's step


def test_sources_without_params_refuse_them_at_poll_time(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,n\n2026-01-05T01:00:00Z,1\n")
    sources = [
        DemoSource("shop", DemoSourceConfig(type="demo", anchor=T0)),
        FilesSource("exports", FilesSourceConfig(type="files", path=str(tmp_path / "a.csv"))),
        ZendeskSource("support", ZendeskSourceConfig(type="zendesk",
                                                     base_url="http://127.0.0.1:9",
                                                     email="a@b.c", api_token="tok")),
    ]
    for src in sources:
        query = {"shop": "checkout", "exports": None, "support": "tickets"}[src.name]
        with pytest.raises(FatalSourceError, match=r"params\.query: Extra inputs"):
            src.fetch(PollRequest("m", T0, T6, query, {"query": "x"}, "ts"))
        if src.name != "support":  # (no zendesk server here) no params: the same poll runs
            src.fetch(PollRequest("m", T0, T0 + timedelta(hours=2), query, {}, "ts"))


HTTP_JSON = """
sources:
  api: {type: http_json, base_url: "https://api.example.com"}
metrics:
"""


def test_an_unknown_http_json_placeholder_is_named_by_validate_with_the_known_ones() -> None:
    """``{sinse}`` in an http_json URL used to pass ``cxmon validate`` and stop the first
    poll (fatal); now validation names it with its path and the placeholders there are."""
    try:
        cfg.parse_config(HTTP_JSON + """
  - {name: a, source: api, query: "/t?from={sinse}&to={until}", timestamp: ts, value: n}
  - {name: b, source: api, query: "/t/{team}", timestamp: ts, value: n,
     params: {vars: {team: cx}, query_params: {day: "{since_day}", to: "{until_epoch}"}}}
  - {name: c, source: api, query: "/t?x={since", timestamp: ts, value: n}
  - {name: d, source: api, query: "/t/{team}?from={since_date}", timestamp: ts, value: n,
     params: {vars: {team: cx}}}
""", env={})
    except ConfigError as exc:
        got = [(p.path, p.message) for p in exc.problems]
    else:
        got = []
    known = ("known placeholders: {since}, {until}, {since_epoch}, {until_epoch}, "
             "{since_date}, {until_date}")
    assert ("metrics[0].query",
            f"unknown placeholder {{sinse}} (did you mean {{since}}?); {known}") in got, got
    assert ("metrics[1].params.query_params.day",
            f"unknown placeholder {{since_day}} (did you mean {{since_date}}?); {known}, "
            "{team}") in got, got
    assert any(p == "metrics[2].query" and "not a valid template" in m for p, m in got), got
    assert len(got) == 3, got  # metric d is fine; b's `to` too


def test_the_poll_refuses_an_unknown_http_json_placeholder_the_same_way() -> None:
    with FakeServer() as server:
        from sources.http_json import HttpJsonSource, HttpJsonSourceConfig
        src = HttpJsonSource("api", HttpJsonSourceConfig(type="http_json", base_url=server.url))
        with pytest.raises(FatalSourceError) as info:
            src.fetch(PollRequest("m", T0, T6, "/t?x={since", {}))
        assert "metric m: query: not a valid template" in str(info.value)
        assert not server.log


@pytest.mark.parametrize("given,message", [
    ("Acme.zendesk.com", "give only the subdomain, e.g. acme (for https://acme.zendesk.com)"),
    ("https://acme.zendesk.com/", "give only the subdomain, e.g. acme (for "
                                  "https://acme.zendesk.com)"),
    ("Acme", "give only the subdomain, e.g. acme (for https://acme.zendesk.com)"),
    ("support.example.com", "give only the subdomain, e.g. acme for https://acme.zendesk.com; "
                            "for a host-mapped domain set base_url instead"),
    ("acme_corp", "give only the subdomain, e.g. acme for https://acme.zendesk.com "
                  "(lowercase letters, digits and -)"),
])
def test_a_zendesk_subdomain_given_as_a_host_or_url_gets_a_hint(given, message) -> None:
    text = ("sources:\n  support: {type: zendesk, subdomain: \"" + given + "\", email: a@b.c, "
            "api_token: secret-token}\nmetrics:\n  - {name: t, source: support, query: tickets, "
            "timestamp: created_at, value: tickets}\n")
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(text, env={})
    got = [(p.path, p.message) for p in info.value.problems]
    assert got == [("sources.support.subdomain", message)], got
    assert cfg.parse_config(text.replace(given, "acme-eu"), env={})
