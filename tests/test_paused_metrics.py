"""``enabled: false`` pauses a metric: kept in the config (history, dashboards, routes, an
explicit backtest) but neither polled nor scored by ``cxmon run``, and not waited for by
``/readyz`` or by the other metrics' incident watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from dashboards.exporter import ready_windows
from monitor.cli import app
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.scheduler import replay
from monitor.store import Store

runner = CliRunner()

CONFIG = """
store: sqlite:///{db}
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - {{name: checkout_dropoff_rate, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {{ratio: [abandoned, started]}}}}
  - {{name: csat, source: shop, query: csat, interval: 1h, timestamp: ts,
     value: {{mean: [rating_sum, responses]}}, enabled: {enabled}}}
alerting:
  route: {{receiver: console}}
  receivers: [{{name: console, console: {{}}}}]
"""


def _write(tmp_path: Path, enabled: str = "false", first: str = "") -> tuple[Path, Path]:
    db = tmp_path / "paused.db"
    text = CONFIG.format(db=db, enabled=enabled)
    if first:
        text = text.replace("value: {ratio: [abandoned, started]}}",
                            f"value: {{ratio: [abandoned, started]}}, enabled: {first}}}")
    path = tmp_path / "cxmon.yaml"
    path.write_text(text)
    return path, db


def test_a_paused_metric_stays_in_the_config_but_out_of_the_active_ones(tmp_path) -> None:
    cfg = parse_config(_write(tmp_path)[0].read_text(), env={})
    assert [m.name for m in cfg.metrics] == ["checkout_dropoff_rate", "csat"]
    assert [m.name for m in cfg.active_metrics] == ["checkout_dropoff_rate"]
    assert cfg.metric("csat").enabled is False  # still found by name (backtest --metric)
    assert list(ready_windows(cfg)) == ["checkout_dropoff_rate"]


def test_run_once_ticks_only_the_enabled_metrics(tmp_path) -> None:
    path, db = _write(tmp_path)
    result = runner.invoke(app, ["run", "-c", str(path), "--once"])
    assert result.exit_code == 0, result.output
    with Store(f"sqlite:///{db}") as store:
        assert store.get_cursor("checkout_dropoff_rate") is not None
        assert store.get_cursor("csat") is None
        assert {t["metric"] for t in store.ticks()} == {"checkout_dropoff_rate"}
    out = runner.invoke(app, ["validate", "-c", str(path)]).output
    assert "2 metric(s) (paused: csat)" in out


def test_run_refuses_a_config_whose_every_metric_is_paused(tmp_path) -> None:
    path, db = _write(tmp_path, first="false")
    result = runner.invoke(app, ["run", "-c", str(path), "--once"])
    assert result.exit_code == 2
    assert "every metric has enabled: false; nothing to run" in result.output
    assert not db.exists()  # refused before the store was created


def test_the_replay_loop_leaves_a_paused_metric_alone(tmp_path) -> None:
    cfg = parse_config(_write(tmp_path)[0].read_text(), env={})
    clock = FakeClock(datetime(2026, 1, 6, tzinfo=UTC))
    with Store.open(cfg.store.url, clock=clock) as store:
        pipeline = Pipeline(cfg, store, clock=clock)
        try:
            results = replay(pipeline, clock, clock.now() + timedelta(hours=3))
        finally:
            pipeline.close()
        assert {r.metric for r in results} == {"checkout_dropoff_rate"}
        assert store.get_cursor("csat") is None


def test_backtest_replays_paused_metrics_too(tmp_path) -> None:
    """Pausing a metric to tune it is the point: the backtest must still replay it."""
    path, _ = _write(tmp_path, first="false")  # every metric paused
    out = tmp_path / "anomalies.csv"
    result = runner.invoke(app, ["backtest", "-c", str(path), "--start", "2026-01-19",
                                 "--end", "2026-01-29", "--output", str(out)],
                           env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "checkout_dropoff_rate" in result.output and "csat" in result.output
