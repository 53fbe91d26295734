"""Grafana dashboards as code, generated from the config with grafana-foundation-sdk's typed
builders. Three kinds:

- ``cxmon-overview``: every journey at a glance (open incidents by severity, alert volume,
  worst severity now per journey and per metric) with links to the journey dashboards;
- ``cxmon-journey-<journey>`` (one per journey): for each measure, its value with the expected
  band (lower..upper filled, expected dashed) and its severity; template variables for every
  dimension (``All`` = the roll-up total); anomaly annotations (from Prometheus, and the ones
  ``cxmon dashboards push`` posts);
- ``cxmon-health``: the monitor itself for SREs (ticks, durations, polls, rejected rows,
  outbox, refits, exporter cardinality).

Every query reads the metrics of :mod:`dashboards.exporter`. :func:`panel_queries` lists the
PromQL of a dashboard (the tests run each one against a real Prometheus).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m

from dashboards.links import HEALTH_UID, OVERVIEW_UID, journey_uid, panel_id
from monitor.config import MetricConfig, MonitorConfig
from monitor.model import ValueKind

DATASOURCE_VAR = "datasource"
DS = dash_m.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
GRAFANA_DS = dash_m.DataSourceRef(type_val="grafana", uid="-- Grafana --")
#: "All" on a dimension variable selects the roll-up total: the series without that label.
TOTAL = "^$"
#: Severity (0-100) from which a point is drawn as an anomaly annotation.
ANNOTATION_SEVERITY = 25
TAG = "cxmon"


@dataclass(frozen=True, slots=True)
class Built:
    """One generated dashboard: its uid, title and Grafana JSON model."""

    uid: str
    title: str
    model: dict[str, Any]


def journeys(config: MonitorConfig, extra: Iterable[str] = ()) -> list[str]:
    """The journeys to build dashboards for: ``labels.journey`` of the metrics, the values of
    a ``split_by: [journey]`` label that the metric's source knows
    (:meth:`~sources.base.SourceConfig.label_values`), plus ``extra`` (values only known from
    data: pass them), so every journey an alert can link to has its dashboard."""
    found = {m.labels["journey"] for m in config.metrics if "journey" in m.labels}
    for m in config.metrics:
        if "journey" in m.split_by and (source := config.sources.get(m.source)) is not None:
            found.update(source.label_values(m.query, "journey"))
    return sorted(found | set(extra))


def journey_metrics(config: MonitorConfig, journey: str) -> list[MetricConfig]:
    """Metrics shown on a journey's dashboard: labelled with it, or split by journey."""
    return [
        m for m in config.metrics
        if m.labels.get("journey") == journey or "journey" in m.split_by
    ]


#: The metric's ``unit`` as Grafana's own unit id where Grafana has one (it then scales and
#: prints it as Grafana does); any other unit is Grafana's custom ``suffix:`` unit.
_GRAFANA_UNITS = {"ms": "ms", "s": "s", "min": "m", "h": "h", "%": "percent",
                  "EUR": "currencyEUR", "USD": "currencyUSD", "GBP": "currencyGBP",
                  "JPY": "currencyJPY", "€": "currencyEUR", "$": "currencyUSD",
                  "£": "currencyGBP", "bytes": "bytes", "B": "bytes"}


def _unit(metric: MetricConfig) -> str:
    """The value panel's unit, as the alerts print the metric: its own ``unit`` (an average
    order value in EUR was drawn as 2412% because every ratio was a percentage), else a
    percentage for a ratio, else a plain number.

    >>> from types import SimpleNamespace as NS
    >>> _unit(NS(unit="EUR", value=NS(kind=ValueKind.RATIO))), _unit(NS(unit="tickets",
    ...                                                               value=NS(kind=None)))
    ('currencyEUR', 'suffix: tickets')
    """
    if metric.unit:
        return _GRAFANA_UNITS.get(metric.unit, f"suffix: {metric.unit}")
    return "percentunit" if metric.value.kind is ValueKind.RATIO else "short"


def _selector(metric: MetricConfig, journey: str | None) -> str:
    """Label matchers of a metric's panel: the journey, and one per dimension variable."""
    parts = [f'cx_metric="{metric.name}"']
    if journey is not None:
        parts.append(f'journey="{journey}"')
    for label in [*metric.dimensions, *(s for s in metric.split_by if s != "journey")]:
        parts.append(f'{label}=~"${label}"')
    return ",".join(parts)


def _query(expr: str, legend: str, ref: str, *, instant: bool = False) -> prom_b.Dataquery:
    q = prom_b.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    return q.instant() if instant else q.range()


def _override(name: str, **props: Any) -> dash_b.DashboardFieldConfigSourceOverrides:
    return (
        dash_b.DashboardFieldConfigSourceOverrides()
        .matcher(dash_m.MatcherConfig(id_val="byName", options=name))
        .properties([dash_m.DynamicConfigValue(id_val=k, value=v) for k, v in props.items()])
    )


def _datasource_variable() -> dash_b.DatasourceVariable:
    return dash_b.DatasourceVariable(DATASOURCE_VAR).label("Prometheus").type("prometheus")


def _dimension_variable(label: str, journey: str, rolled_up: bool,
                        shown: str | None = None) -> dash_b.QueryVariable:
    """A variable listing a label's values on the journey; All = the roll-up total (for a
    dimension) or every value (for a split_by label). ``shown``: the label's display name
    (``display.labels``); the variable's name stays the label, as deep links use it."""
    return (
        dash_b.QueryVariable(label)
        .label(shown or label)
        .datasource(DS)
        .query({
            "query": f'label_values(cxmon_series_value{{journey="{journey}"}}, {label})',
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        })
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(TOTAL if rolled_up else ".+")
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def _base(uid: str, title: str, tags: list[str]) -> dash_b.Dashboard:
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .tags([TAG, *tags])
        .editable()
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("utc")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .with_variable(_datasource_variable())
        .link(
            dash_b.DashboardLink("cxmon").type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags([TAG]).as_dropdown(True).include_vars(False).keep_time(True)
        )
    )


def _stat(title: str, expr: str, legend: str = "", *, span: int = 6) -> stat_b.Panel:
    return (
        stat_b.Panel().title(title).datasource(DS).height(4).span(span)
        .with_target(_query(expr, legend, "A", instant=True))
    )


def _timeseries(title: str, queries: list[tuple[str, str]], *, span: int = 12,
                unit: str = "short", height: int = 8) -> ts_b.Panel:
    panel = ts_b.Panel().title(title).datasource(DS).height(height).span(span).unit(unit)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel


def _finish(builder: dash_b.Dashboard) -> dict[str, Any]:
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


# -- the three kinds --------------------------------------------------------------------------


def _journey_name(config: MonitorConfig, journey: str) -> str:
    """The journey as people read it: its ``display.values.journey`` name, or the value."""
    return config.display.values.get("journey", {}).get(journey, journey)


def journey_dashboard(config: MonitorConfig, journey: str) -> Built:
    """One journey: each measure with its band and severity, a variable per dimension."""
    uid = journey_uid(journey)
    name = _journey_name(config, journey)
    title = f"cxmon · {name}"
    metrics = journey_metrics(config, journey)
    b = _base(uid, title, [f"journey:{journey}"]).description(
        f"Customer-experience KPIs of the {name} journey, monitored by cxmon. "
        "A dimension set to All shows the roll-up total."
    )
    seen: dict[str, bool] = {}
    for m in metrics:
        for d in m.dimensions:
            seen.setdefault(d, True)
        for s in m.split_by:
            if s != "journey":
                seen.setdefault(s, False)
    for label, rolled_up in seen.items():
        b = b.with_variable(_dimension_variable(label, journey, rolled_up,
                                                config.display.labels.get(label)))
    b = b.annotation(
        dash_b.AnnotationQuery().name("cxmon anomalies (Prometheus)").datasource(DS)
        .enable(True).icon_color("red")
        .expr(f'max by (cx_metric) (cxmon_series_severity{{journey="{journey}"}}) '
              f">= {ANNOTATION_SEVERITY}")
    ).annotation(
        dash_b.AnnotationQuery().name("cxmon incidents").datasource(GRAFANA_DS)
        .enable(True).icon_color("orange")
        .target(dash_b.AnnotationTarget().type("tags").tags([TAG, f"journey:{journey}"])
                .match_any(False).limit(500))
    )
    b = b.with_panel(_stat("Open incidents", f'sum(cxmon_incidents_open{{journey="{journey}"}})'))
    b = b.with_panel(_stat(
        "Anomalies in range",
        f'sum(increase(cxmon_anomalies_total{{journey="{journey}"}}[$__range]))',
    ))
    b = b.with_panel(_stat(
        "Worst severity now", f'max(cxmon_series_severity{{journey="{journey}"}})', span=12,
    ))
    for m in metrics:
        sel = _selector(m, journey)
        shown = m.title or m.name  # the metric's title where people read it
        b = b.with_row(dash_b.Row(shown))
        band = (
            _timeseries(
                f"{shown}: value and expected band",
                [
                    (f"cxmon_series_value{{{sel}}}", "value"),
                    (f"cxmon_series_expected{{{sel}}}", "expected"),
                    (f"cxmon_series_lower{{{sel}}}", "lower"),
                    (f"cxmon_series_upper{{{sel}}}", "upper"),
                ],
                span=16, unit=_unit(m),
            )
            .id(panel_id(m.name))
            .description(m.description or f"{shown} with what the detectors expected.")
            .line_width(2).fill_opacity(0).show_points(common_m.VisibilityMode.NEVER)
            .with_override(dash_m.MatcherConfig(id_val="byName", options="upper"), [
                dash_m.DynamicConfigValue(id_val="custom.fillBelowTo", value="lower"),
                dash_m.DynamicConfigValue(id_val="custom.lineWidth", value=0),
                dash_m.DynamicConfigValue(id_val="custom.fillOpacity", value=25),
                dash_m.DynamicConfigValue(id_val="color",
                                          value={"mode": "fixed", "fixedColor": "green"}),
            ])
            .with_override(dash_m.MatcherConfig(id_val="byName", options="lower"), [
                dash_m.DynamicConfigValue(id_val="custom.lineWidth", value=0),
                dash_m.DynamicConfigValue(id_val="color",
                                          value={"mode": "fixed", "fixedColor": "green"}),
            ])
            .with_override(dash_m.MatcherConfig(id_val="byName", options="expected"), [
                dash_m.DynamicConfigValue(id_val="custom.lineStyle",
                                          value={"fill": "dash", "dash": [10, 10]}),
                dash_m.DynamicConfigValue(id_val="color",
                                          value={"mode": "fixed", "fixedColor": "dark-green"}),
            ])
            .with_override(dash_m.MatcherConfig(id_val="byName", options="value"), [
                dash_m.DynamicConfigValue(id_val="color",
                                          value={"mode": "fixed", "fixedColor": "blue"}),
            ])
        )
        if m.decimals is not None:  # as the alerts print it
            band = band.decimals(m.decimals)
        if m.scale_max is not None:  # a CSAT out of 5 is drawn on its own scale
            band = band.max(m.scale_max)
        if m.scale_min is not None:  # an NPS from -100 (unset: Grafana fits the data)
            band = band.min(m.scale_min)
        if m.runbook:
            band = band.links([dash_b.DashboardLink("Runbook").url(m.runbook)
                               .target_blank(True)])
        b = b.with_panel(band)
        b = b.with_panel(
            _timeseries(f"{shown}: severity", [(f"cxmon_series_severity{{{sel}}}", "severity")],
                        span=8)
            .id(panel_id(m.name, "severity")).min(0).max(100)
            .thresholds(
                dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps([
                    dash_m.Threshold(value=None, color="green"),
                    dash_m.Threshold(value=m.min_severity, color="orange"),
                    dash_m.Threshold(value=75, color="red"),
                ])
            )
            .thresholds_style(common_b.GraphThresholdsStyleConfig()
                              .mode(common_m.GraphTresholdsStyleMode.LINE))
        )
    return Built(uid, title, _finish(b))


def overview_dashboard(config: MonitorConfig, journey_names: Iterable[str] = ()) -> Built:
    """All journeys: open incidents by severity, alert volume, worst severity now."""
    b = _base(OVERVIEW_UID, "cxmon · overview", ["overview"]).description(
        "Every customer journey monitored by cxmon: open incidents, alert volume, severity."
    )
    for j in journey_names:
        b = b.link(dash_b.DashboardLink(f"{_journey_name(config, j)} journey")
                   .type(dash_m.DashboardLinkType.LINK)
                   .url(f"/d/{journey_uid(j)}").keep_time(True))
    b = b.link(dash_b.DashboardLink("monitor health").type(dash_m.DashboardLinkType.LINK)
               .url(f"/d/{HEALTH_UID}").keep_time(True))
    b = b.with_panel(_stat("Open incidents by severity",
                           "sum by (severity) (cxmon_incidents_open)", "{{severity}}", span=12))
    b = b.with_panel(_stat("Open incidents by journey",
                           "sum by (journey) (cxmon_incidents_open)", "{{journey}}", span=12))
    b = b.with_panel(_timeseries(
        "Alert volume: anomalies per hour by journey",
        [("sum by (journey) (increase(cxmon_anomalies_total[1h]))", "{{journey}}")],
    ))
    b = b.with_panel(_timeseries(
        "Alert volume: notifications enqueued per hour",
        [("sum by (receiver) (increase(cxmon_notifications_enqueued_total[1h]))",
          "{{receiver}}")],
    ))
    b = b.with_panel(_timeseries(
        "Worst severity now, by journey",
        [("max by (journey) (cxmon_series_severity)", "{{journey}}")], span=12,
    ).min(0).max(100))
    b = b.with_panel(_timeseries(
        "Worst severity now, by metric",
        [("max by (cx_metric) (cxmon_series_severity)", "{{cx_metric}}")], span=12,
    ).min(0).max(100))
    b = b.with_panel(
        table_b.Panel().title("Most anomalous series now").datasource(DS).height(10).span(24)
        .with_target(_query("topk(20, cxmon_series_severity)", "", "A", instant=True)
                     .format(_table_format()))
    )
    return Built(OVERVIEW_UID, "cxmon · overview", _finish(b))


def _table_format() -> Any:
    from grafana_foundation_sdk.models import prometheus as prom_m

    return prom_m.PromQueryFormat.TABLE


def health_dashboard(config: MonitorConfig) -> Built:
    """The monitor's own health, for SREs."""
    b = _base(HEALTH_UID, "cxmon · monitor health", ["health"]).description(
        "Is cxmon itself healthy: ticks, durations, polls, bad rows, outbox, refits."
    )
    b = b.with_panel(_stat("Seconds since last successful tick (worst metric)",
                           "max(time() - cxmon_last_tick_timestamp_seconds)"))
    b = b.with_panel(_stat("Series exported", "sum(cxmon_exporter_series)"))
    b = b.with_panel(_stat("Series dropped by the cap",
                           "sum(cxmon_exporter_series_dropped_total) or vector(0)"))
    b = b.with_panel(_stat("Notifications dead-lettered",
                           'sum(cxmon_notifications{status="dead"})'))
    rate = "$__rate_interval"
    panels = [
        ("Ticks per second by outcome",
         f"sum by (cx_metric, outcome) (rate(cxmon_ticks_total[{rate}]))",
         "{{cx_metric}} {{outcome}}", "ops"),
        ("Tick duration p95",
         "histogram_quantile(0.95, sum by (le, cx_metric) "
         f"(rate(cxmon_tick_duration_seconds_bucket[{rate}])))", "{{cx_metric}}", "s"),
        ("Source poll latency p95",
         "histogram_quantile(0.95, sum by (le, source) "
         f"(rate(cxmon_source_poll_seconds_bucket[{rate}])))", "{{source}}", "s"),
        ("Source poll errors per second",
         f"sum by (source, kind) (rate(cxmon_source_poll_errors_total[{rate}]))",
         "{{source}} {{kind}}", "ops"),
        ("Source lag: seconds behind now of the newest stored point",
         "max by (source, cx_metric) (cxmon_source_lag_seconds)", "{{source}} {{cx_metric}}",
         "s"),
        ("Rows received per second",
         f"sum by (cx_metric) (rate(cxmon_rows_total[{rate}]))", "{{cx_metric}}", "rowsps"),
        ("Rows rejected per hour by reason",
         "sum by (cx_metric, reason) (increase(cxmon_rows_rejected_total[1h]))",
         "{{cx_metric}} {{reason}}", "short"),
        ("Late buckets per hour (new = never scored: raise delay)",
         "sum by (cx_metric, kind) (increase(cxmon_late_buckets_total[1h]))",
         "{{cx_metric}} {{kind}}", "short"),
        ("Outbox notifications by receiver and status",
         "sum by (receiver, status) (cxmon_notifications)", "{{receiver}} {{status}}", "short"),
        ("Send attempts per hour by receiver and outcome (retry: the receiver is failing)",
         "sum by (receiver, outcome) (increase(cxmon_notification_attempts_total[1h]))",
         "{{receiver}} {{outcome}}", "short"),
        ("Detector refits per hour",
         "sum by (cx_metric, detector) (increase(cxmon_detector_refit_seconds_count[1h]))",
         "{{cx_metric}} {{detector}}", "short"),
        ("Detector refit duration (mean)",
         "sum by (cx_metric, detector) (rate(cxmon_detector_refit_seconds_sum[1h])) / "
         "sum by (cx_metric, detector) (rate(cxmon_detector_refit_seconds_count[1h]))",
         "{{cx_metric}} {{detector}}", "s"),
        ("Detector refit failures per hour",
         "sum by (cx_metric, detector) (increase(cxmon_detector_refit_failures_total[1h]))",
         "{{cx_metric}} {{detector}}", "short"),
        ("Detector fits in flight (never falling: the executor runs nothing)",
         "sum by (cx_metric, detector) (cxmon_detector_fits_in_flight)",
         "{{cx_metric}} {{detector}}", "short"),
    ]
    for title, expr, legend, unit in panels:
        b = b.with_panel(_timeseries(title, [(expr, legend)], unit=unit))
    b = b.with_panel(_timeseries("Exported series and points dropped by the cap", [
        ("sum(cxmon_exporter_series) or vector(0)", "series"),
        ("sum(increase(cxmon_exporter_series_dropped_total[1h])) or vector(0)",
         "points dropped per hour"),
    ], unit="short"))
    return Built(HEALTH_UID, "cxmon · monitor health", _finish(b))


def build_all(config: MonitorConfig, extra_journeys: Iterable[str] = ()) -> list[Built]:
    """Overview, one dashboard per journey, and monitor health."""
    names = journeys(config, extra_journeys)
    return [
        overview_dashboard(config, names),
        *(journey_dashboard(config, j) for j in names),
        health_dashboard(config),
    ]


# -- reading the generated JSON back -----------------------------------------------------------


def iter_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard model, rows' nested panels included (rows excluded)."""
    for p in model.get("panels") or []:
        if p.get("type") == "row":
            yield from p.get("panels") or []
        else:
            yield p


def panel_queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every Prometheus target of every panel."""
    return [
        (p.get("title", ""), t["expr"])
        for p in iter_panels(model)
        for t in p.get("targets") or []
        if t.get("expr")
    ]


def annotation_queries(model: dict[str, Any]) -> list[str]:
    """PromQL of the dashboard's Prometheus annotation queries."""
    return [
        a["expr"] for a in (model.get("annotations") or {}).get("list", []) if a.get("expr")
    ]


def variable_names(model: dict[str, Any]) -> list[str]:
    return [v["name"] for v in (model.get("templating") or {}).get("list", [])]


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace ``$var`` / ``${var}`` like Grafana would (unknown names are left as is)."""
    return _VAR.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), expr)


__all__ = [
    "Built",
    "annotation_queries",
    "build_all",
    "health_dashboard",
    "iter_panels",
    "journey_dashboard",
    "journey_metrics",
    "journeys",
    "overview_dashboard",
    "panel_queries",
    "substitute",
    "variable_names",
]
