"""One place says how a config's stored anomalies read (display names, ratio metrics as
percentages): ``cxmon anomalies``, ``cxmon feedback`` and Grafana annotations print the same
numbers for the same row, as the alert did."""

from __future__ import annotations

import pandas as pd

from alerts.anomaly_text import AnomalyText
from dashboards.push import anomaly_annotations
from monitor.cli_score import _said
from monitor.config import parse_config

CONFIG = """
sources: {shop: {type: demo}}
display: {labels: {channel: Channel}, values: {channel: {app: App}}}
metrics:
  - {name: checkout_dropoff_rate, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {ratio: [abandoned, started]}, volume_unit: checkouts, dimensions: [channel]}
  - {name: contacts, source: shop, query: contacts, interval: 1h, timestamp: ts,
     value: contacts}
"""

ROW = {"id": "a", "series": 'checkout_dropoff_rate{channel="app"}',
       "metric": "checkout_dropoff_rate", "labels": {"channel": "app"},
       "ts": pd.Timestamp("2026-01-27T12:00Z"), "value": 0.587, "expected": 0.334,
       "severity": 70, "kind": "point", "volume": 1204.0}


def test_the_config_names_its_ratio_metrics() -> None:
    cfg = parse_config(CONFIG, env={})
    assert cfg.ratio_metrics() == frozenset({"checkout_dropoff_rate"})


def test_feedback_and_annotations_read_a_ratio_row_alike() -> None:
    cfg = parse_config(CONFIG, env={})
    frame = pd.DataFrame([ROW])
    row = next(frame.itertuples(index=False))
    text = AnomalyText.from_config(cfg).text(row)
    assert (text["value"], text["expected"], text["volume"]) == (
        "58.7%", "33.4%", "from 1,204 checkouts")
    said = _said(cfg, row)
    annotation = anomaly_annotations(frame, config=cfg)[0]["text"]
    assert "Channel: App" in said and "Channel: App" in annotation
    assert "58.7% (expected 33.4%, from 1,204 checkouts)" in said
    assert "58.7% vs expected 33.4% (+76%), from 1,204 checkouts" in annotation


def test_a_count_metric_is_not_read_as_a_percentage() -> None:
    cfg = parse_config(CONFIG, env={})
    row = next(pd.DataFrame([{**ROW, "metric": "contacts", "value": 41.0, "expected": 20.0,
                              "volume": float("nan")}]).itertuples(index=False))
    text = AnomalyText.from_config(cfg).text(row)
    assert text["value"] == "41" and "%" not in text["expected"] and "volume" not in text


def test_a_stored_small_forecast_reads_as_its_change_does() -> None:
    """A stored count of 26 against 0.55: the annotation said "vs expected 1 (+4627%)"."""
    cfg = parse_config(CONFIG, env={})
    frame = pd.DataFrame([{**ROW, "metric": "contacts", "labels": {}, "value": 26.0,
                           "expected": 0.55, "volume": float("nan")}])
    text = AnomalyText.from_config(cfg).text(next(frame.itertuples(index=False)))
    assert text["expected"] == "0.55"
    assert "26 vs expected 0.55 (+4627%)" in anomaly_annotations(frame, config=cfg)[0]["text"]
