"""``cxmon run --once`` (cron) prunes the store like the service's 6-hourly retention job."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.clock import FakeClock
from monitor.store import Store

runner = CliRunner()
NOW = pd.Timestamp("2026-01-27T13:05:00Z").to_pydatetime()

CONFIG = """
store: {{url: "sqlite:///{db}", retention: 2d}}
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - name: checkout_dropoff_rate
    source: shop
    query: checkout
    interval: 1h
    history: 4d
    timestamp: ts
    dimensions: [channel]
    value: {{ratio: [abandoned, started]}}
executor: {{type: inline}}
exporter: {{enabled: false}}
alerting:
  route: {{receiver: console}}
  receivers: [{{name: console, console: {{format: json}}}}]
"""


def test_run_once_deletes_what_is_older_than_retention(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.cli_run.SystemClock", lambda: FakeClock(NOW))
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "s.db"))
    result = runner.invoke(app, ["run", "-c", str(cfg), "--once"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        stamps = store.load_points(metric="checkout_dropoff_rate")["timestamp"]
    assert len(stamps) > 0
    # the first tick stored 4 days of history; retention (2d) kept the last two only
    assert stamps.min() >= NOW - timedelta(days=2)
