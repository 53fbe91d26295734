"""Numbers in alert messages read the way the metric means them: a metric's ``unit``,
``scale_max``, ``decimals`` and ``volume_unit`` (config) ride on each payload anomaly as
``format``, its volume as ``volume``; Slack, the console, webhooks and PagerDuty print them.
Without settings, a message reads as before (test_slack.py's exact texts), except that a
count's forecast is whole."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from alerts.blocks import render_message, summary
from alerts.display import Names
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.pagerduty import pagerduty_event
from alerts.notifiers.webhook import webhook_body
from alerts.payload import incident_payload
from detectors.postrules import PostRules
from detectors.registry import create
from monitor.config import parse_config
from monitor.detection import MetricDetectors
from monitor.errors import ConfigError
from monitor.incidents import IncidentTracker
from monitor.model import Anomaly, Direction, Series
from monitor.pipeline import Pipeline
from monitor.store import Store

T0 = datetime(2026, 1, 27, 11, tzinfo=UTC)

CONFIG = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics:
  - {name: csat, source: s, value: {mean: rating}, scale_max: 5, labels: {journey: support}}
  - {name: complaints, source: s, value: n, unit: tickets, labels: {journey: support}}
  - {name: handle_time, source: s, value: {mean: [seconds, contacts]}, unit: s, decimals: 0,
     volume_unit: calls, labels: {journey: support}}
  - {name: aov, source: s, value: {ratio: [revenue, orders]}, unit: EUR, decimals: 2,
     labels: {journey: support}}
  - {name: dropoff, source: s, value: {ratio: [abandoned, sessions]}, labels: {journey: support}}
  - {name: revenue, source: s, value: {sum: eur}, labels: {journey: support}}
alerting:
  receivers: [{name: ops}]
"""
PERCENT = {"aov", "dropoff"}  # the pipeline's ratio metrics


def anomaly(metric: str, value: float, expected: float, volume: float | None = None,
            severity: int = 40) -> Anomaly:
    s = Series(metric, {"journey": "support"})
    return Anomaly(s.key, s.metric, s.labels, T0, value, expected, expected * 0.9,
                   expected * 1.1, 0.999, severity, Direction.DOWN, "default", volume=volume)


def payload(*anomalies: Anomaly, config: str = CONFIG) -> dict[str, Any]:
    cfg = parse_config(config, env={})
    (change,) = IncidentTracker(["journey"]).observe(list(anomalies), T0)
    return incident_payload(change, percent=PERCENT, names=Names.from_config(cfg))


def by_metric(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["metric"]: a for a in p["anomalies"]}


# -- config ----------------------------------------------------------------------------------


def test_the_settings_load_and_default_to_none() -> None:
    m = {m.name: m for m in parse_config(CONFIG, env={}).metrics}
    assert (m["csat"].scale_max, m["csat"].unit, m["csat"].decimals) == (5.0, None, None)
    assert (m["handle_time"].unit, m["handle_time"].volume_unit) == ("s", "calls")
    assert m["aov"].decimals == 2


def test_bad_settings_are_listed_by_path_all_at_once() -> None:
    bad = CONFIG.replace("scale_max: 5,", "scale_max: 0,").replace(
        "unit: tickets,", "unit: tickets, volume_unit: people,").replace(
        "decimals: 0,", "decimals: 9,").replace(
        "volume_unit: calls,", f"volume_unit: {'x' * 31},").replace(
        "value: {ratio: [abandoned, sessions]},",
        "value: {ratio: [abandoned, sessions]}, scale_max: 1, unit: '%',").replace(
        "value: {sum: eur},", "value: {sum: eur}, unit: \"\",")
    try:
        parse_config(bad, env={})
    except ConfigError as exc:
        problems = {p.path: p.message for p in exc.problems}
    else:
        raise AssertionError("the bad settings loaded")
    assert set(problems) == {"metrics[0].scale_max", "metrics[1].volume_unit",
                             "metrics[2].decimals", "metrics[2].volume_unit",
                             "metrics[4].scale_max", "metrics[5].unit"}
    assert "a sum has no volume" in problems["metrics[1].volume_unit"]
    assert "reads as a percentage" in problems["metrics[4].scale_max"]


def test_the_config_schema_lists_the_settings() -> None:
    from monitor.config import config_json_schema

    text = json.dumps(config_json_schema())
    for name in ("scale_max", "volume_unit", "decimals"):
        assert f'"{name}"' in text


# -- payload ---------------------------------------------------------------------------------


def test_each_anomaly_carries_its_format_volume_and_text() -> None:
    p = by_metric(payload(anomaly("csat", 3.1, 4.302, volume=14.0),
                          anomaly("complaints", 14.0, 41.7),
                          anomaly("handle_time", 412.4, 305.6, volume=1204.0),
                          anomaly("aov", 31.5, 24.123, volume=88.0),
                          anomaly("dropoff", 0.587, 0.335, volume=1204.0),
                          anomaly("revenue", 1200.5, 1187.0)))
    csat = p["csat"]
    assert csat["format"] == {"scale_max": 5.0, "volume_unit": "responses"}
    assert csat["volume"] == 14.0 and "unit" not in csat
    assert csat["text"] == {"value": "3.10 / 5", "expected": "4.30 / 5",
                            "band": "3.87–4.73 / 5", "volume": "from 14 responses"}
    # a sum of whole counts: its forecast and band are whole too
    assert p["complaints"]["format"] == {"unit": "tickets", "decimals": 0}
    assert p["complaints"]["text"] == {"value": "14 tickets", "expected": "42 tickets",
                                       "band": "38–46 tickets"}
    assert p["complaints"]["volume"] is None
    assert p["handle_time"]["text"]["value"] == "412 s"
    assert p["handle_time"]["text"]["volume"] == "from 1,204 calls"
    # a ratio with a unit of its own is a plain number, not a percentage
    assert "unit" not in p["aov"] and p["aov"]["text"]["expected"] == "24.12 EUR"
    # a ratio without one reads as ever, its volume named after its denominator
    assert p["dropoff"]["unit"] == "percent"
    assert p["dropoff"]["text"] == {"value": "58.7%", "expected": "33.5%",
                                    "band": "30.2%–36.9%", "volume": "from 1,204 sessions"}
    # a sum with a fraction keeps its digits
    assert "decimals" not in p["revenue"].get("format", {})
    assert p["revenue"]["text"]["value"] == "1,200"


def test_existing_webhook_fields_are_unchanged() -> None:
    """Consumers rely on these: the numbers stay raw, the new fields come beside them."""
    a = by_metric(payload(anomaly("dropoff", 0.587, 0.335, volume=1204.0)))["dropoff"]
    assert (a["value"], a["expected"], a["unit"], a["metric"]) == (
        0.587, 0.335, "percent", "dropoff")
    assert {"id", "series", "labels", "timestamp", "lower", "upper", "score", "severity",
            "direction", "change", "detector", "kind", "last_seen"} <= set(a)


def test_a_no_data_anomaly_has_no_text() -> None:
    s = Series("csat", {"journey": "support"})
    silent = Anomaly(s.key, "csat", s.labels, T0, float("nan"), float("nan"), float("nan"),
                     float("nan"), 1.0, 50, Direction.DOWN, "default", kind="no_data")
    (a,) = payload(silent)["anomalies"]
    assert "text" not in a and a["volume"] is None


# -- what people read ------------------------------------------------------------------------


def test_slack_prints_the_scale_and_the_volume() -> None:
    p = payload(anomaly("csat", 3.1, 4.302, volume=14.0))
    _, numbers, _ = summary(p)
    assert numbers == "3.10 / 5 vs 4.30 / 5 expected"  # the header's: short
    text = json.dumps(render_message(p), ensure_ascii=False)
    assert "*Value 3.10 / 5* (from 14 responses) vs expected 4.30 / 5 (band 3.87–4.73 / 5)" \
        in text


def test_slack_prints_a_count_whole_with_its_unit() -> None:
    p = payload(anomaly("complaints", 140.0, 41.7, severity=50),
                anomaly("csat", 3.1, 4.302, volume=14.0, severity=30))
    _, numbers, _ = summary(p)
    assert numbers == "140 tickets vs 42 tickets expected"
    text = json.dumps(render_message(p), ensure_ascii=False)
    assert "band 38–46 tickets" in text
    assert "csat · total: 3.10 / 5 (from 14 responses) vs 4.30 / 5" in text  # related line


def test_a_small_expected_count_is_shown_as_the_change_takes_it() -> None:
    """26 tickets against a forecast of 0.55 read "vs 1 tickets expected" next to +4627%
    (taken from 0.55): a reader's 26 vs 1 is +2500%. The expected value keeps the decimals
    that make the printed change follow from it; one near a whole number stays whole."""
    import re

    p = payload(anomaly("complaints", 26.0, 0.55, severity=50))
    (a,) = p["anomalies"]
    text = json.dumps(render_message(p), ensure_ascii=False)
    change = int(re.search(r"\*([+-]\d+)%\*", text).group(1))
    assert summary(p)[1] == "26 tickets vs 0.55 tickets expected"
    assert a["text"]["expected"] == "0.55 tickets" and "expected 0.55 tickets" in text
    shown = float(a["text"]["expected"].split()[0])
    assert abs((26.0 - shown) / shown * 100 - change) <= 0.02 * abs(change)
    assert "0.55 tickets" in cells(console_lines(anomaly("complaints", 26.0, 0.55)),
                                   "26 tickets")
    assert by_metric(payload(anomaly("complaints", 26.0, 4.3)))["complaints"]["text"][
        "expected"] == "4.3 tickets"  # "4" would make +505% read as +550%
    assert by_metric(payload(anomaly("complaints", 140.0, 41.7)))["complaints"]["text"][
        "expected"] == "42 tickets"  # within 1% of 41.7: whole, as before


def console_lines(*anomalies: Anomaly, width: int = 160) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO())
    ConsoleNotifier(console).send(payload(*anomalies))
    return console.export_text().splitlines()


def cells(lines: list[str], needle: str) -> list[str]:
    line = next(line for line in lines if needle in line)
    return [c.strip() for c in line.replace("┃", "│").split("│")]


def test_the_console_prints_units_and_a_volume_column_named_by_its_noun() -> None:
    lines = console_lines(anomaly("csat", 3.1, 4.302, volume=14.0),
                          anomaly("complaints", 14.0, 41.7))
    header = cells(lines, "expected")
    assert header[header.index("value") + 1] == "responses"  # the noun heads the column
    csat = cells(lines, "csat ·")
    assert csat[csat.index("3.10 / 5") + 1] == "14" and "3.87–4.73 / 5" in csat
    complaints = cells(lines, "complaints ·")
    assert complaints[complaints.index("14 tickets") + 1] == "–"
    assert "42 tickets" in complaints and "38–46 tickets" in complaints


def test_the_console_volume_column_names_each_noun_when_they_differ() -> None:
    lines = console_lines(anomaly("csat", 3.1, 4.302, volume=14.0),
                          anomaly("handle_time", 412.4, 305.6, volume=1204.0))
    header = cells(lines, "expected")
    assert header[header.index("value") + 1] == "from"
    assert "1,204 calls" in cells(lines, "handle_time ·")
    assert "14 responses" in cells(lines, "csat ·")
    plain = console_lines(anomaly("complaints", 14.0, 41.7))
    assert "from" not in cells(plain, "expected")  # no volume, no column


def test_a_narrow_console_leaves_the_volume_out_and_keeps_where_readable() -> None:
    lines = console_lines(anomaly("csat", 3.1, 4.302, volume=14.0), width=80)
    assert "responses" not in cells(lines, "expected")
    assert "all" in cells(lines, "3.10 / 5")  # one metric: the where column is "all"


def test_webhook_and_pagerduty_carry_the_printed_numbers() -> None:
    p = payload(anomaly("csat", 3.1, 4.302, volume=14.0))
    body = json.loads(webhook_body("hook", "k", p))["notification"]["anomalies"][0]
    assert body["text"]["volume"] == "from 14 responses" and body["volume"] == 14.0
    assert body["format"]["scale_max"] == 5.0
    event = pagerduty_event(p, "rk")
    (detail,) = event["payload"]["custom_details"]["anomalies"]
    assert detail["text"]["value"] == "3.10 / 5"


def test_without_settings_a_message_reads_as_before() -> None:
    plain = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics:
  - {name: csat, source: s, value: {mean: [score, answers]}, labels: {journey: support}}
alerting:
  receivers: [{name: ops}]
"""
    p = payload(anomaly("csat", 3.533, 4.302), config=plain)
    assert summary(p)[1] == "3.53 vs 4.30 expected"
    (a,) = p["anomalies"]
    assert a["format"] == {"volume_unit": "answers"}  # used once a volume is known


def test_the_default_volume_noun_reads_as_words_not_a_column_name() -> None:
    """Without ``volume_unit`` the noun comes from the denominator column, its count words
    dropped: "from 14 sessions", not "from 14 sessions_total"; a column that only says
    "count" gives no noun ("from 14") rather than "from 14 cnt"."""
    cols = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics:
  - {name: r, source: s, value: {ratio: [bad, sessions_total]}, labels: {journey: support}}
  - {name: m, source: s, value: {mean: [score, order_count]}, labels: {journey: support}}
  - {name: c, source: s, value: {ratio: [bad, cnt]}, labels: {journey: support}}
alerting:
  receivers: [{name: ops}]
"""
    p = by_metric(payload(anomaly("r", 0.2, 0.1, volume=14.0), anomaly("m", 3.0, 4.0, volume=3.0),
                          anomaly("c", 0.2, 0.1, volume=9.0), config=cols))
    assert p["r"]["text"]["volume"] == "from 14 sessions"
    assert p["m"]["text"]["volume"] == "from 3 orders"
    assert p["c"]["text"]["volume"] == "from 9" and "format" not in p["c"]


def test_a_mix_shift_says_its_rates_as_the_headline_does() -> None:
    """A mix shift's rates read in the metric's own unit and scale, as its headline value:
    "usual rate is 3.40 / 5" next to "Value 3.10 / 5", not a bare 3.40 (or 0.412 for a rate
    the headline calls 41.2%)."""
    from monitor.incidents import Attribution

    names = Names.from_config(parse_config(CONFIG, env={}))
    mix = {"dimension": "channel", "value": "cc", "share_usual": 0.2, "share_now": 0.5,
           "rate_usual": 3.4, "rate_overall": 4.1, "portion": 0.8}

    def said(metric: str, **rates: float) -> tuple[dict[str, Any], str]:
        att = Attribution(metric, {"journey": "support"}, T0, 40, (), mix={**mix, **rates})
        (change,) = IncidentTracker(["journey"]).observe(
            [anomaly(metric, 3.1, 4.3, volume=14.0)], T0, [att])
        p = incident_payload(change, percent=PERCENT, names=names)
        (rc,) = p["root_cause"]
        return rc["mix"], json.dumps(render_message(p), ensure_ascii=False)

    csat, slack = said("csat")
    assert csat["format"] == {"scale_max": 5.0}
    assert "its usual rate is 3.40 / 5 (4.10 / 5 overall)" in slack
    assert "*Value 3.10 / 5*" in slack
    dropoff, slack = said("dropoff", rate_usual=0.412, rate_overall=0.3)
    assert dropoff["unit"] == "percent" and "usual rate is 41.2% (30% overall)" in slack
    _, slack = said("aov", rate_usual=24.123, rate_overall=31.5)
    assert "usual rate is 24.12 EUR (31.50 EUR overall)" in slack
    _, slack = said("handle_time", rate_usual=305.6, rate_overall=412.4)
    assert "usual rate is 306 s (412 s overall)" in slack


# -- the volume from detection to the anomaly ------------------------------------------------


def test_detection_puts_the_points_volume_on_its_anomaly() -> None:
    """The denominator / count the min-volume post-rule reads rides on the anomaly."""
    hour = timedelta(hours=1)
    rng = np.random.default_rng(7)
    values = 4.3 + rng.normal(0, 0.05, 24 * 14)
    values[-1] = 2.0  # a CSAT collapse at the last hour
    n = len(values)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + t * hour for t in range(n)], utc=True),
        "series": ["csat"] * n, "value": values,
        "denominator": np.r_[np.full(n - 1, 200.0), 14.0],
    })
    dets = MetricDetectors("csat", hour, {"d": create({"type": "robust_seasonal"},
                                                       interval=hour).config}, PostRules())
    found = dets.run(frame, {"csat": Series("csat", {})}).anomalies
    last = [a for a in found if a.timestamp == T0 + (n - 1) * hour]
    assert last and last[0].volume == 14.0
    sums = frame.assign(denominator=np.nan)
    dets = MetricDetectors("csat", hour, {"d": create({"type": "robust_seasonal"},
                                                       interval=hour).config}, PostRules())
    assert all(a.volume is None for a in dets.run(sums, {"csat": Series("csat", {})}).anomalies)


def test_the_pipeline_threads_the_formats_into_its_payloads(tmp_path: Path) -> None:
    """No display name configured: the formats still reach the payload (``Names`` without
    names is falsy, which once dropped them)."""
    cfg = parse_config(CONFIG, env={})
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        pipeline = Pipeline(cfg, store, notifiers={})
        changes = IncidentTracker(["journey"]).observe(
            [anomaly("csat", 3.1, 4.302, volume=14.0), anomaly("dropoff", 0.5, 0.3)], T0)
        (p,) = pipeline._payloads(changes).values()
        got = by_metric(p)
        assert got["csat"]["text"]["value"] == "3.10 / 5"
        assert got["dropoff"]["unit"] == "percent"
        pipeline.close()
    finally:
        store.close()
