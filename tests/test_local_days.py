"""Per-day exports in a zone east of UTC: a row dated ``2026-11-27`` is the shop's Black
Friday total. Read with ``timezone: Europe/Berlin`` its date used to become 23:00 UTC the
day before, so the total landed in the 26 November bucket and the calendar's Black Friday
(a local date) fell on the next day's total."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.backtest import run_backtest
from monitor.config import parse_config
from monitor.frames import to_utc


def test_a_date_without_a_time_keeps_its_date_in_any_zone() -> None:
    col = pd.Series(["2026-11-27", "2026-11-27 10:00", "27.11.2026", "2026-11-27T10:00Z"])
    got = to_utc(col, "Europe/Berlin", date_order="dmy")
    assert [t.isoformat() for t in got] == [
        "2026-11-27T00:00:00+00:00",  # the day itself, not 2026-11-26T23:00Z
        "2026-11-27T09:00:00+00:00",  # a wall-clock time is still read in Berlin
        "2026-11-27T00:00:00+00:00",
        "2026-11-27T10:00:00+00:00"]


def test_a_daily_berlin_export_buckets_and_calendars_its_own_dates(tmp_path: Path) -> None:
    days = pd.date_range("2026-09-01", "2026-11-29", freq="D")
    orders = np.where(days.day_of_week >= 5, 500, 1000)
    orders[days == pd.Timestamp("2026-11-27")] *= 3  # Black Friday
    pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "orders": orders}).to_csv(
        tmp_path / "daily.csv", index=False)
    cfg = parse_config(f"""
sources: {{exports: {{type: files, path: "{tmp_path}/*.csv", timezone: Europe/Berlin}}}}
metrics:
  - {{name: orders, source: exports, interval: 1d, history: 28d, timestamp: day,
     value: orders, direction: up}}
calendar:
  timezone: Europe/Berlin
  events: [{{name: Black Friday, start: 2026-11-27, mode: score}}]
""")
    res = run_backtest(cfg, ["orders"], datetime(2026, 11, 20, tzinfo=UTC),
                       datetime(2026, 11, 29, tzinfo=UTC))
    assert [t.isoformat() for t in pd.to_datetime(res.anomalies["timestamp"])] == [
        "2026-11-27T00:00:00+00:00"]
    assert res.summary["orders"]["calendar"] == {"2026-11-27": ("Black Friday", "score")}


def test_backtest_names_a_daily_bucket_by_its_date_on_a_local_clock(tmp_path: Path) -> None:
    """With ``display.timezone``, hourly times read on that clock, but a daily bucket's UTC
    midnight would read as 19:00 the day before in New York: it says its date."""
    from typer.testing import CliRunner

    from monitor.cli import app

    days = pd.date_range("2026-10-01", "2026-11-29", freq="D")
    orders = np.full(len(days), 1000)
    orders[days == pd.Timestamp("2026-11-27")] = 3000
    pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "orders": orders}).to_csv(
        tmp_path / "daily.csv", index=False)
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""
sources: {{exports: {{type: files, path: "{tmp_path}/*.csv"}}}}
metrics:
  - {{name: orders, source: exports, interval: 1d, history: 28d, timestamp: day,
     value: orders, direction: up, detectors: [d]}}
detectors: {{d: {{type: robust_seasonal, season: none}}}}
display: {{timezone: America/New_York}}
""")
    out = CliRunner().invoke(app, ["backtest", "-c", str(config), "--start", "2026-11-20",
                                   "--end", "2026-11-29"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if "│ orders" in line)
    assert row.split("│")[1].strip() == "2026-11-27"


def test_validate_warns_that_a_daily_metric_in_a_zone_sums_utc_days() -> None:
    """``timezone`` moves the detectors' clock, not the day boundaries of ``1d`` buckets: a
    Berlin metric fed hourly rows sums 01:00-01:00 local; validate says so at its path."""
    from monitor.cli_validate import utc_days

    cfg = parse_config("""
sources: {exports: {type: files, path: "exports/*.csv"}}
metrics:
  - {name: de_daily, source: exports, interval: 1d, value: tickets, timezone: Europe/Berlin}
  - {name: de_hourly, source: exports, interval: 1h, value: tickets, timezone: Europe/Berlin}
  - {name: utc_daily, source: exports, interval: 1d, value: tickets}
  - {name: gmt_daily, source: exports, interval: 1d, value: tickets, timezone: Etc/UTC}
  - {name: ny_weekly, source: exports, interval: 1w, value: tickets, timezone: America/New_York}
""")
    got = dict(utc_days(cfg))
    assert set(got) == {"metrics[0].interval", "metrics[4].interval"}
    assert "UTC days, not days in Europe/Berlin" in got["metrics[0].interval"]
