"""``cxmon validate --poll``: a config that parses can still fail at its first tick (a wrong
timestamp column, text values); the probe says so before ``run``, one line per metric, and
stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import parse_config
from monitor.probe import probe_all

runner = CliRunner()
NOW = datetime(2026, 11, 28, 11, 20, tzinfo=UTC)

CONFIG = """
store: sqlite:///{db}
sources:
  drop: {{type: files, path: "contacts-*.csv", base_dir: "{dir}"}}
metrics:
  - name: contacts
    source: drop
    interval: 1h
    timestamp: {ts}
    dimensions: [channel]
    value: n
"""


def export(tmp_path: Path, end: datetime, hours: int = 5, bad: int = 0) -> None:
    lines = ["hour,channel,n"]
    for h in range(1, hours + 1):
        lines.append(f"{(end - timedelta(hours=h)).isoformat()},web,{10 + h}")
    lines += [f"{(end - timedelta(hours=1)).isoformat()},app,lots"] * bad
    (tmp_path / "contacts-1.csv").write_text("\n".join(lines) + "\n")


def config(tmp_path: Path, ts: str = "hour") -> Path:
    path = tmp_path / "cxmon.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "cx.db", dir=tmp_path, ts=ts))
    return path


def test_probe_reports_rows_rejects_series_and_the_newest_bucket(tmp_path: Path) -> None:
    export(tmp_path, datetime(2026, 11, 28, 11, tzinfo=UTC), bad=2)
    cfg = parse_config(config(tmp_path).read_text(), env={})
    [p] = probe_all(cfg, NOW, intervals=3)
    assert p.ok and (p.since, p.until) == (datetime(2026, 11, 28, 8, tzinfo=UTC),
                                           datetime(2026, 11, 28, 11, tzinfo=UTC))
    assert p.rows_in == 5 and p.rejected == {"non_numeric": 2}
    assert p.series == 2  # the total and channel=web
    assert p.newest == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert p.verdict() == ("5 rows, 2 rejected (non_numeric 2), 2 series, newest bucket "
                           "2026-11-28 10:00 UTC")


def test_probe_names_a_missing_timestamp_column_and_says_when_it_saw_no_rows(
        tmp_path: Path) -> None:
    export(tmp_path, datetime(2026, 11, 28, 11, tzinfo=UTC))
    cfg = parse_config(config(tmp_path, ts="answered_at").read_text(), env={})
    [p] = probe_all(cfg, NOW)
    assert not p.ok and "no column 'answered_at'" in (p.error or "")
    assert "columns: hour, channel, n" in (p.error or "")
    cfg = parse_config(config(tmp_path).read_text(), env={})
    [later] = probe_all(cfg, NOW + timedelta(days=30))
    assert later.ok and later.rows_in == 0 and "no rows in this range" in later.verdict()
    # no rows in range, yet the file's header is known: a misspelt column is still named
    # (it passed as "no rows", and the first tick with data failed on it)
    text = config(tmp_path).read_text().replace("dimensions: [channel]", "dimensions: [chanel]")
    [empty] = probe_all(parse_config(text, env={}), NOW + timedelta(days=30))
    assert not empty.ok and empty.rows_in == 0
    assert ("no column(s) chanel; 'chanel': did you mean 'channel'? (columns returned: hour, "
            "channel, n)") in (empty.error or "")


def test_validate_poll_prints_one_line_per_metric_exits_1_and_stores_nothing(
        tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    export(tmp_path, now)
    bad = runner.invoke(app, ["validate", "-c", str(config(tmp_path, ts="answered_at")),
                              "--poll"], env={"COLUMNS": "300"})
    assert bad.exit_code == 1, bad.output
    assert "✗ contacts (drop, " in bad.output and "no column 'answered_at'" in bad.output
    assert "1 of 1 metric(s) could not be polled: contacts" in bad.output
    good = runner.invoke(app, ["validate", "-c", str(config(tmp_path)), "--poll"],
                         env={"COLUMNS": "300"})
    assert good.exit_code == 0, good.output
    assert "✓ contacts (drop, " in good.output and "rows" in good.output
    assert not (tmp_path / "cx.db").exists()  # a probe never opens the store


def test_probe_warns_when_the_newest_data_is_older_than_no_data_after(tmp_path: Path) -> None:
    """The source answers, but its newest row is days old (an export that stopped): the
    probe says so, or ``run`` would surprise the user with a "no data" alert at once."""
    export(tmp_path, NOW - timedelta(days=13), hours=5)
    cfg = parse_config(config(tmp_path).read_text(), env={})
    [p] = probe_all(cfg, NOW, intervals=400)
    assert p.ok and p.newest == datetime(2026, 11, 15, 10, tzinfo=UTC)
    assert p.stale == timedelta(days=13)  # until 11-28 11:00, data ended 11-15 11:00
    assert p.verdict().endswith(
        "newest bucket 2026-11-15 10:00 UTC (warning: the data ends 13d before now - "
        "delay; no_data_after is 3h, so `run` would alert \"no data\" at once)")
    # a day's lag (a daily drop of hourly rows) is a pattern, not an outage: say the fix
    [daily] = probe_all(cfg, datetime(2026, 11, 16, 2, tzinfo=UTC), intervals=30)
    assert daily.verdict().endswith(
        "at once; data that always lands this late, as a daily export, needs delay: 15h or "
        "more)"), daily.verdict()
    [fresh] = probe_all(cfg, NOW - timedelta(days=13), intervals=3)  # just after the export
    assert fresh.ok and fresh.stale is None and "warning" not in fresh.verdict()
    quiet = cfg.model_copy(deep=True)
    quiet.metrics[0].no_data_after = timedelta(0)  # "no data" alerts off: nothing to warn of
    [off] = probe_all(quiet, NOW, intervals=400)
    assert off.stale is None
    out = runner.invoke(app, ["validate", "-c", str(config(tmp_path)), "--poll",
                              "--intervals", "10000"], env={"COLUMNS": "300"})
    assert out.exit_code == 0 and "! contacts (drop, " in out.output, out.output


def test_probe_counts_the_records_the_source_itself_dropped_as_a_tick_does() -> None:
    """An unreadable Zendesk ticket (a ``created_at`` that is not a time) is dropped by the
    source and counted in its ``skipped``; a tick adds those to the rejected rows, and the
    probe did not, so ``validate --poll`` said "2 rows" where ``run`` said "rejected=2"."""
    from collections import Counter

    import pandas as pd

    from monitor.probe import probe_metric
    from sources.base import PollRequest, Source

    class Dropping(Source):
        def __init__(self) -> None:
            self.name, self.skipped = "support", Counter({"bad_created_at": 4})  # before

        def fetch(self, request: PollRequest) -> pd.DataFrame:
            self.skipped["bad_created_at"] += 2
            self.skipped["missing_created_at"] += 1
            return pd.DataFrame({"hour": [request.since], "channel": ["web"], "n": [3]})

    cfg = parse_config(CONFIG.format(db="/nonexistent/cx.db", dir="/tmp", ts="hour"), env={})
    p = probe_metric(cfg.metrics[0], Dropping(), NOW, 3)
    assert p.ok and p.rows_in == 1
    assert p.rejected == {"bad_created_at": 2, "missing_created_at": 1}
    assert "3 rejected (bad_created_at 2, missing_created_at 1)" in p.verdict()
