"""Bands and expected values as shown stay inside the KPI's possible range: a count's band
never goes below zero, a rate's never passes 100%, a CSAT out of 5 never passes 5. Alerts
(Slack, console, webhook), ``cxmon anomalies`` and Grafana annotations all read the clamped
numbers from one place (:func:`alerts.payload.readable`); detector scores are untouched."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from alerts.anomaly_text import AnomalyText
from alerts.blocks import render_message
from alerts.display import Names
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.webhook import webhook_body
from alerts.payload import incident_payload
from dashboards.push import anomaly_annotations
from detectors.base import TickBatch
from detectors.registry import create
from monitor.config import ConfigError, parse_config
from monitor.incidents import IncidentTracker
from monitor.model import Anomaly, Direction, Series

T0 = datetime(2026, 1, 27, 11, tzinfo=UTC)

CONFIG = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics:
  - {name: csat, source: s, value: {mean: rating}, scale_max: 5, labels: {journey: support}}
  - {name: complaints, source: s, value: n, unit: tickets, labels: {journey: support}}
  - {name: dropoff, source: s, value: {ratio: [abandoned, sessions]}, labels: {journey: support}}
  - {name: refunds_net, source: s, value: {sum: eur}, labels: {journey: support}}
  - {name: handle_time, source: s, value: {mean: seconds}, unit: s, labels: {journey: support}}
  - {name: nps, source: s, value: {mean: score}, scale_max: 100, scale_min: -100,
     labels: {journey: support}}
  - {name: csat15, source: s, value: {mean: rating}, scale_max: 5, scale_min: 1,
     labels: {journey: support}}
alerting:
  receivers: [{name: ops}]
"""


def anomaly(metric: str, value: float, expected: float, lower: float, upper: float,
            kind: str = "point") -> Anomaly:
    s = Series(metric, {"journey": "support"})
    return Anomaly(s.key, s.metric, s.labels, T0, value, expected, lower, upper, 0.9999, 60,
                   Direction.UP, "default", kind=kind, volume=None)


def payload(*anomalies: Anomaly) -> dict[str, Any]:
    cfg = parse_config(CONFIG, env={})
    (change,) = IncidentTracker(["journey"]).observe(list(anomalies), T0)
    return incident_payload(change, percent=cfg.ratio_metrics(), names=Names.from_config(cfg))


def only(p: dict[str, Any]) -> dict[str, Any]:
    (a,) = p["anomalies"]
    return a


def novelty_count_anomaly() -> Anomaly:
    """A sparse count (mostly 0, a 1 now and then) scored by ``novelty``: its EW band is
    wider than the mean, so its lower edge is negative, as the analyst saw."""
    det = create({"type": "novelty"}, interval=timedelta(hours=1))
    values = np.zeros(300)
    values[::7] = 1.0
    values[-1] = 9.0
    for t, v in enumerate(values):
        batch = TickBatch.of(["complaints"], [t * 3600 * 10**9], [v])
        scores = det.score(batch)
        det.learn(batch, np.zeros(1, dtype=bool))
    assert scores.lower[0] < 0 < scores.expected[0]  # the detector's own band is untouched
    return anomaly("complaints", 9.0, float(scores.expected[0]), float(scores.lower[0]),
                   float(scores.upper[0]))


def test_a_counts_band_from_novelty_never_goes_below_zero() -> None:
    a = novelty_count_anomaly()
    shown = only(payload(a))
    assert shown["lower"] == 0.0 and shown["upper"] == a.upper  # the webhook's numbers
    assert shown["text"]["band"].startswith("0–") and "-" not in shown["text"]["band"]
    assert shown["expected"] == a.expected and shown["score"] == a.score
    body = json.loads(webhook_body("ops", "k", payload(a)))
    assert body["notification"]["anomalies"][0]["lower"] == 0.0


def test_a_rates_band_stops_at_100_percent() -> None:
    shown = only(payload(anomaly("dropoff", 0.62, 0.97, 0.91, 1.04)))
    assert (shown["lower"], shown["upper"]) == (0.91, 1.0)
    assert shown["text"]["band"] == "91%–100%"
    below = only(payload(anomaly("dropoff", 0.0, 0.02, -0.03, 0.07)))
    assert below["text"]["band"] == "0%–7.00%" and below["lower"] == 0.0


def test_a_csat_band_stays_within_its_scale_in_every_output() -> None:
    p = payload(anomaly("csat", 3.1, 4.25, 3.47, 5.03))
    shown = only(p)
    assert shown["upper"] == 5.0 and shown["text"]["band"] == "3.47–5 / 5"
    assert "band 3.47–5 / 5" in json.dumps(render_message(p), ensure_ascii=False)
    console = Console(record=True, width=160, file=io.StringIO())
    ConsoleNotifier(console).send(p)
    assert "3.47–5 / 5" in console.export_text() and "5.03" not in console.export_text()
    over = only(payload(anomaly("csat", 3.1, 5.2, 4.9, 5.5)))
    assert over["expected"] == 5.0 and over["text"]["expected"] == "5 / 5"


def test_stored_rows_read_back_clamped_in_cxmon_anomalies_and_annotations() -> None:
    cfg = parse_config(CONFIG, env={})
    frame = pd.DataFrame([{"id": "a", "series": 'csat{journey="support"}', "metric": "csat",
                           "labels": {"journey": "support"},
                           "ts": pd.Timestamp("2026-01-27T12:00Z"), "value": 4.9,
                           "expected": 5.2, "lower": 4.8, "upper": 5.6, "severity": 70,
                           "kind": "point", "volume": 14.0}])
    row = next(frame.itertuples(index=False))
    text = AnomalyText.from_config(cfg).text(row)
    assert (text["expected"], text["band"]) == ("5 / 5", "4.80–5 / 5")
    note = anomaly_annotations(frame, config=cfg)[0]["text"]
    assert "vs expected 5 / 5 (-2%)" in note  # 4.9 against the 5 shown, not the 5.2 stored


def test_a_value_outside_the_range_keeps_that_side_open() -> None:
    """A net sum went negative: "counts are >= 0" does not hold for it, so its band shows
    as the detector gave it, rather than a band that excludes what was observed."""
    shown = only(payload(anomaly("refunds_net", -40.0, 5.0, -12.0, 22.0)))
    assert (shown["lower"], shown["upper"]) == (-12.0, 22.0)
    rate = only(payload(anomaly("dropoff", 1.3, 0.97, 0.91, 1.04)))  # a ratio past 100%
    assert rate["upper"] == 1.04


def test_an_open_metric_and_a_no_data_anomaly_are_left_alone() -> None:
    shown = only(payload(anomaly("handle_time", 412.0, 300.0, -20.0, 620.0)))
    assert shown["lower"] == -20.0  # a mean without a scale has no known range
    silent = only(payload(anomaly("complaints", 9.0, 2.0, -3.0, 3.0, kind="no_data")))
    assert silent["lower"] == -3.0 and "text" not in silent


def test_a_score_from_below_zero_keeps_its_negative_band() -> None:
    """An NPS runs from -100 to 100: with ``scale_min: -100`` its band of -20 to 30 is shown
    as it is, where a scale assumed to start at 0 cut it to 0 to 30."""
    shown = only(payload(anomaly("nps", 45.0, 5.0, -20.0, 30.0)))
    assert (shown["lower"], shown["expected"], shown["upper"]) == (-20.0, 5.0, 30.0)
    assert shown["text"]["band"] == "-20–30 / 100"
    below = only(payload(anomaly("nps", -90.0, -95.0, -130.0, -60.0)))
    assert below["lower"] == -100.0  # the scale's own bottom still holds


def test_a_csat_of_1_to_5_clamps_to_1() -> None:
    shown = only(payload(anomaly("csat15", 1.2, 1.8, 0.6, 3.0)))
    assert (shown["lower"], shown["upper"]) == (1.0, 3.0)
    assert shown["text"]["band"].startswith("1")
    low = only(payload(anomaly("csat15", 4.0, 0.9, 0.5, 1.3)))
    assert low["expected"] == 1.0
    plain = only(payload(anomaly("csat", 1.2, 1.8, 0.6, 3.0)))  # no scale_min: from 0
    assert plain["lower"] == 0.6


def test_scale_min_must_sit_below_scale_max() -> None:
    for bad in ("scale_max: 5, scale_min: 5,", "scale_min: 1,"):
        config = CONFIG.replace("scale_max: 5,", bad, 1)
        try:
            parse_config(config, env={})
        except ConfigError as exc:
            problems = {p.path: p.message for p in exc.problems}
        else:
            raise AssertionError(f"{bad} loaded")
        assert "scale_max" in problems["metrics[0].scale_min"]


def test_the_change_shown_follows_the_clamped_expected_value() -> None:
    """CSAT 4.0 against a forecast of 5.5 shows as "vs 5 / 5": its change is -20% (from 5),
    not the -27% taken from 5.5, in the payload, Slack and the console alike."""
    a = anomaly("csat", 4.0, 5.5, 4.6, 6.4)
    assert round(a.change, 2) == -0.27  # the detector's, stored as it was
    p = payload(a)
    shown = only(p)
    assert shown["expected"] == 5.0 and shown["change"] == (4.0 - 5.0) / 5.0
    slack = json.dumps(render_message(p), ensure_ascii=False)
    assert "-20%" in slack and "-27%" not in slack
    console = Console(record=True, width=160, file=io.StringIO())
    ConsoleNotifier(console).send(p)
    assert "-20%" in console.export_text() and "-27%" not in console.export_text()


def test_a_negative_count_forecast_shown_as_0_has_no_change_taken_from_below_0() -> None:
    a = anomaly("complaints", 9.0, -0.4, -3.0, 2.0)
    shown = only(payload(a))
    assert shown["expected"] == 0.0 and shown["text"]["expected"] == "0 tickets"
    assert shown["change"] is None  # against 0, as an anomaly with an expected 0 says
    assert only(payload(anomaly("complaints", 9.0, 2.0, -3.0, 4.0)))["change"] == 3.5
