"""Dashboards as code: what ``cxmon dashboards build`` writes."""

from __future__ import annotations

import json
import os

import yaml
from typer.testing import CliRunner

from dashboards.grafana import iter_panels, panel_queries, variable_names
from dashboards.links import panel_id
from monitor.cli import app


def test_build_writes_dashboards_and_provisioning(tmp_path):
    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z"}
    out = tmp_path / "grafana"
    res = CliRunner().invoke(app, ["dashboards", "build", "-c", "monitor/examples/demo.yaml",
                                   "--out", str(out), "--journey", "extra"], env=env)
    assert res.exit_code == 0, res.output
    assert "no journey" not in res.stderr  # every demo metric has a journey
    files = sorted(p.name for p in (out / "dashboards").iterdir())
    # every journey of the demo source (split_by: [journey]) plus the one asked for
    assert files == ["cxmon-health.json", "cxmon-journey-checkout.json",
                     "cxmon-journey-delivery.json", "cxmon-journey-extra.json",
                     "cxmon-journey-returns.json", "cxmon-journey-support.json",
                     "cxmon-overview.json"]
    checkout = json.loads((out / "dashboards" / "cxmon-journey-checkout.json").read_text())
    assert variable_names(checkout) == ["datasource", "channel", "region"]
    region = next(v for v in checkout["templating"]["list"] if v["name"] == "region")
    assert region["allValue"] == "^$" and region["includeAll"] is True
    titles = [p["title"] for p in iter_panels(checkout)]
    for metric in ("checkout_dropoff_rate", "complaints", "csat", "contact_volume"):
        assert f"{metric}: value and expected band" in titles
    band = next(p for p in iter_panels(checkout) if p.get("id") == panel_id("csat"))
    legends = [t["legendFormat"] for t in band["targets"]]
    assert legends == ["value", "expected", "lower", "upper"]
    assert 'journey="checkout"' in band["targets"][0]["expr"]
    assert 'channel=~"$channel"' in band["targets"][0]["expr"]
    fill = [o for o in band["fieldConfig"]["overrides"] if o["matcher"]["options"] == "upper"]
    assert {"id": "custom.fillBelowTo", "value": "lower"} in fill[0]["properties"]
    annotations = checkout["annotations"]["list"]
    assert any("cxmon_series_severity" in a.get("expr", "") for a in annotations)
    assert any(a.get("target", {}).get("tags") == ["cxmon", "journey:checkout"]
               for a in annotations)
    health = json.loads((out / "dashboards" / "cxmon-health.json").read_text())
    exprs = " ".join(e for _, e in panel_queries(health))
    for name in ("cxmon_ticks_total", "cxmon_tick_duration_seconds_bucket",
                 "cxmon_source_poll_seconds_bucket", "cxmon_source_poll_errors_total",
                 "cxmon_rows_rejected_total", "cxmon_late_buckets_total", "cxmon_notifications",
                 "cxmon_detector_refit_seconds", "cxmon_detector_refit_failures_total",
                 "cxmon_detector_fits_in_flight", "cxmon_source_lag_seconds"):
        assert name in exprs
    provider = yaml.safe_load((out / "provisioning" / "dashboards" / "cxmon.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str((out / "dashboards").resolve())
    ds = yaml.safe_load((out / "provisioning" / "datasources" / "cxmon.yaml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    # Copied next to an existing provisioned default Prometheus, a second default makes
    # Grafana's provisioning fail ("Only one datasource per organization can be marked as
    # default"); the dashboards choose their data source with the variable anyway.
    assert ds["datasources"][0]["isDefault"] is False


def test_every_metric_a_dashboard_queries_is_exported() -> None:
    """A panel whose metric the exporter does not have is an empty panel forever."""
    import re

    from prometheus_client import CollectorRegistry

    from dashboards.exporter import SERIES_FIELDS
    from dashboards.grafana import build_all
    from dashboards.telemetry import Telemetry
    from monitor.config import load_config

    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z"}
    cfg = load_config("monitor/examples/demo.yaml", env=env)
    registry = CollectorRegistry()
    Telemetry(cfg, registry=registry)
    exported = {s.name for family in registry.collect() for s in family.samples}
    exported |= {f.name for f in registry.collect()}  # families not sampled yet (no labels)
    exported |= set(SERIES_FIELDS.values())  # per-series gauges: sampled once scores exist
    queried = {name for built in build_all(cfg) for _, expr in panel_queries(built.model)
               for name in re.findall(r"\bcxmon_[a-z_]+", expr)}
    missing = {q for q in queried
               if q not in exported and q.removesuffix("_total") not in exported
               and re.sub(r"_(bucket|count|sum)$", "", q) not in exported}
    assert not missing, missing


def _label_names(registry) -> dict[str, set[str]]:
    """Every exported name (``_total``, ``_bucket`` ... included) with its family's labels."""
    out: dict[str, set[str]] = {}
    for family in registry.collect():
        labels = {k for s in family.samples for k in s.labels}
        for s in family.samples:
            out.setdefault(s.name, set()).update(labels)
        out.setdefault(family.name, set()).update(labels)
    for name, collector in registry._names_to_collectors.items():  # declared, not sampled yet
        out.setdefault(name, set()).update(getattr(collector, "_labelnames", ()))
    return out


def test_the_health_panels_group_and_name_by_labels_their_metrics_have() -> None:
    """``max by (source, metric) (cxmon_source_lag_seconds)`` over a family labelled
    ``cx_metric`` draws one line per source with an empty legend: no error anywhere, just a
    panel that hides which metric lags. Every label a panel groups by, matches on or puts
    in its legend must be a label of a family it queries."""
    import re
    from datetime import UTC, datetime

    from prometheus_client import CollectorRegistry

    from dashboards.grafana import health_dashboard
    from dashboards.telemetry import Telemetry
    from monitor.config import load_config

    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z"}
    cfg = load_config("monitor/examples/demo.yaml", env=env)
    registry = CollectorRegistry()
    tel = Telemetry(cfg, registry=registry)
    tel.source_metrics.lag.update("demo", "csat", datetime(2026, 1, 5, tzinfo=UTC))
    labels = _label_names(registry)
    wrong, checked = [], 0
    for panel in iter_panels(health_dashboard(cfg).model):
        for target in panel.get("targets") or []:
            expr, legend = target.get("expr", ""), target.get("legendFormat", "")
            have = {"le"} if "_bucket" in expr else set()
            for name in re.findall(r"\bcxmon_[a-z_]+", expr):
                have |= labels.get(name, set())
            used = {w.strip() for by in re.findall(r"by \(([^)]*)\)", expr)
                    for w in by.split(",") if w.strip()}
            used |= set(re.findall(r"([a-z_]+)\s*=~?\s*\"", expr))
            used |= set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", legend))
            checked += bool(used)
            if not used <= have:
                wrong.append(f"{panel.get('title')}: {sorted(used - have)}")
    assert checked >= 10 and not wrong, wrong
    assert labels["cxmon_source_lag_seconds"] == {"source", "cx_metric"}


def test_value_panels_use_the_metrics_unit_scale_and_decimals() -> None:
    """As the alerts print them: an average order value in EUR is no percentage (it was drawn
    as 2412%), a CSAT out of 5 is drawn on its own scale, counts in their own noun."""
    from dashboards.grafana import journey_dashboard
    from monitor.config import parse_config

    cfg = parse_config("""
sources: {shop: {type: demo}}
metrics:
  - {name: order_value, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {ratio: [abandoned, started]}, unit: EUR, decimals: 2, labels: {journey: shop}}
  - {name: drop_off, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {ratio: [abandoned, started]}, labels: {journey: shop}}
  - {name: csat, source: shop, query: csat, interval: 1h, timestamp: ts,
     value: {mean: [rating_sum, responses]}, scale_max: 5, scale_min: 1,
     labels: {journey: shop}}
  - {name: tickets, source: shop, query: complaints, interval: 1h, timestamp: ts,
     value: complaints, unit: tickets, labels: {journey: shop}}
""", env={})
    model = journey_dashboard(cfg, "shop").model
    bands = {p["id"]: p["fieldConfig"]["defaults"] for p in iter_panels(model) if "id" in p}
    value = {m: bands[panel_id(m)] for m in ("order_value", "drop_off", "csat", "tickets")}
    assert value["order_value"]["unit"] == "currencyEUR"
    assert value["order_value"]["decimals"] == 2
    assert value["drop_off"]["unit"] == "percentunit"
    assert value["csat"]["max"] == 5 and value["csat"]["unit"] == "short"
    assert value["csat"]["min"] == 1  # a CSAT of 1 to 5 is drawn from 1
    assert value["tickets"]["unit"] == "suffix: tickets"
    assert "max" not in value["drop_off"] and "decimals" not in value["csat"]


def test_build_warns_about_metrics_on_no_dashboard(tmp_path):
    """A metric without a journey label (a config split by team) is on no journey dashboard:
    the build says which ones instead of leaving them out silently."""
    config = tmp_path / "cxmon.yaml"
    config.write_text("sources: {shop: {type: demo}}\nmetrics:\n"
                      "  - {name: tickets, source: shop, query: complaints, interval: 1h,\n"
                      "     timestamp: ts, value: complaints, labels: {team: support}}\n")
    res = CliRunner().invoke(app, ["dashboards", "build", "-c", str(config), "--out",
                                   str(tmp_path / "g")], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert ("warning 1 metric(s) have no journey and are on no journey dashboard: tickets "
            "(give each labels: {journey: ...}, or split_by: [journey])") in res.stderr
