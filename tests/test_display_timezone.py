"""``display.timezone``: the times people read (Slack, the console, ``cxmon anomalies``, the
feedback echo) are on the business's wall clock, with CET/CEST saying which, while the
store, incident keys and payload timestamps stay UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.blocks import render_message
from alerts.display import Names
from alerts.grouping import merge_payloads
from alerts.notifiers.console import reminder_line
from alerts.payload import incident_payload
from monitor.cli import app
from monitor.config import ConfigError, parse_config
from monitor.incidents import IncidentTracker
from monitor.model import Series
from monitor.store import Store
from tests.test_display_names import PLAIN, anomaly, printed

BERLIN = PLAIN.replace("alerting:", "display: {timezone: Europe/Berlin}\nalerting:")
SUMMER = datetime(2026, 3, 30, 7, tzinfo=UTC)  # 09:00 CEST, the day after the clock change


def _payload(config: str, at: datetime = SUMMER) -> dict:
    cfg = parse_config(config, env={})
    found = [anomaly("checkout_dropoff_rate", {"channel": "app"}, 0.587, 0.335, 35, at),
             anomaly("checkout_dropoff_rate", {"channel": "app"}, 0.6, 0.335, 40,
                     at + timedelta(hours=1)),
             anomaly("complaints", {"channel": "web"}, 140.0, 41.0, 30, at)]
    (change,) = IncidentTracker(["journey"]).observe(found, at)
    return incident_payload(change, percent={"checkout_dropoff_rate"},
                            names=Names.from_config(cfg))


def _text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_slack_says_local_times_with_summer_or_winter_time() -> None:
    p = _payload(BERLIN)
    assert p["opened_at"] == "2026-03-30T07:00:00+00:00"  # machines read UTC
    assert p["display"]["timezone"] == "Europe/Berlin"
    text = _text(render_message(p))
    assert "*Since*\\n2026-03-30 09:00 CEST" in text
    assert " at 2026-03-30 10:00 CEST" in text  # the worst anomaly (its second hour)
    assert "09:00–10:00 CEST" in text  # its other hours
    assert "times CEST" in text and "sev 30, 09:00" in text  # related anomalies
    assert "UTC" not in text
    winter = _text(render_message(_payload(BERLIN, datetime(2026, 1, 5, 8, tzinfo=UTC))))
    assert "*Since*\\n2026-01-05 09:00 CET" in winter
    plain = _text(render_message(_payload(PLAIN)))
    assert "*Since*\\n2026-03-30 07:00 UTC" in plain and "times UTC" in plain
    assert "display" not in _payload(PLAIN) or "timezone" not in _payload(PLAIN)["display"]


def test_the_console_and_reminders_say_local_times() -> None:
    p = _payload(BERLIN)
    lines = printed(p)
    assert any("Europe/Berlin" in line for line in lines[:3])
    assert any("03-30 09:00" in line for line in lines)
    assert not any("03-30 07:00" in line for line in lines)
    assert reminder_line({**p, "repeat": True}).endswith("open since 2026-03-30 09:00 CEST")
    assert any("03-30 07:00" in line for line in printed(_payload(PLAIN)))


def test_a_merged_notification_keeps_the_reading_zone() -> None:
    p = _payload(BERLIN)
    merged = merge_payloads(p, {**p, "display": {"metrics": {"x": "X"}}})
    assert merged["display"]["timezone"] == "Europe/Berlin"


def test_an_unknown_display_timezone_is_a_problem_at_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BERLIN.replace("Europe/Berlin", "Europe/Berln"), env={})
    assert "display.timezone" in str(err.value) and "Europe/Berlin" in str(err.value)


def test_cxmon_anomalies_lists_local_times(tmp_path: Path) -> None:
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"store: sqlite:///{tmp_path / 'cx.db'}\n" + BERLIN)
    store = Store.open(parse_config(config.read_text(), env={}).store.url)
    store.migrate()
    found = anomaly("complaints", {"channel": "web"}, 140.0, 41.0, 30, SUMMER)
    with store.transaction() as tx:
        tx.ensure_series([Series("complaints", found.labels)])
        tx.add_anomalies([found])
    store.close()
    out = CliRunner().invoke(app, ["anomalies", "-c", str(config)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    header, row = out.stdout.splitlines()[:2]
    assert header.split()[1] == "TIME" and " 2026-03-30 09:00 CEST " in row
