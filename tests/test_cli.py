"""The cxmon command line: validate, config-schema, run --once, backtest, alerts status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import MonitorConfig, parse_config
from monitor.store import Store

runner = CliRunner()

GOOD = """
store: sqlite:///{db}
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - name: checkout_dropoff_rate
    source: shop
    query: checkout
    interval: 1h
    timestamp: ts
    dimensions: [channel, region]
    value: {{ratio: [abandoned, started]}}
    labels: {{journey: checkout}}
    direction: up
"""

FIVE_MISTAKES = """
store: sqlite:///x.db
sources:
  shop: {type: demo, anchr: "2026-01-05T00:00:00Z"}
metrics:
  - name: checkout_dropoff_rate
    source: warehouse
    interval: often
    value: {ratio: [abandoned, started]}
    detectors: [fast]
grafana: {url: "${GRAFANA_URL}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cxmon.yaml"
    path.write_text(text)
    return path


def test_validate_lists_all_five_mistakes_with_paths_and_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-c", str(write(tmp_path, FIVE_MISTAKES))],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2
    out = result.output
    assert "5 problem(s)" in out
    for path in ("sources.shop.anchr", "metrics[0].source", "metrics[0].interval",
                 "metrics[0].detectors[0]", "grafana.url"):
        assert path in out, path


def test_validate_ok(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-c", str(write(tmp_path, GOOD.format(db="x.db")))],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 metric(s)" in result.output


def validate_warnings(tmp_path: Path, text: str) -> list[str]:
    """The warning lines ``cxmon validate`` prints for config ``text`` (which must pass)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    result = runner.invoke(app, ["validate", "-c", str(cfg)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line.startswith("warning")]


def test_validate_warns_when_history_is_shorter_than_a_detector_warm_up(tmp_path: Path) -> None:
    """``robust_seasonal`` learns a week before it scores: a metric started with less history
    showed values and bands and alerted on nothing for days, with no sign why."""
    (tmp_path / "a.csv").write_text("ts,n\n")
    text = (
        "sources:\n  f: {type: files, path: 'a.csv'}\n"
        "detectors:\n  fast: {type: surprise}\n  weekly: {type: robust_seasonal}\n"
        "metrics:\n"
        "  - {name: a, source: f, timestamp: ts, value: n, history: 2d}\n"
        "  - {name: b, source: f, timestamp: ts, value: n, history: 14d}\n"
        "  - {name: c, source: f, timestamp: ts, value: n, detectors: [fast]}\n"
        "  - {name: d, source: f, timestamp: ts, value: n, detectors: [fast, weekly]}\n"
    )
    assert validate_warnings(tmp_path, text) == [
        "warning metrics[0].history: 2d is shorter than the warm-up of robust_seasonal (1w): "
        "for about 5d after its first run, a gets no alerts from it; set history: 1w or more",
        "warning metrics[3].history: 0s is shorter than the warm-up of weekly "
        "[robust_seasonal] (1w): for about 1w after its first run, d gets no alerts from it; "
        "set history: 1w or more",
    ]


def test_validate_warns_when_a_files_path_matches_nothing(tmp_path: Path) -> None:
    """A typo in a drop folder is no error (the folder may fill later) but is said now,
    with the full path, instead of at the first tick of ``run``."""
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.csv").write_text("ts,n\n")
    text = (
        "sources:\n  f: {type: files, path: 'exports/*.csv'}\n"
        "  g: {type: files, path: 'exprots/*.csv'}\n"
        "metrics:\n"
        "  - {name: a, source: f, timestamp: ts, value: n, history: 7d}\n"
        "  - {name: b, source: f, query: 'surveys/*.csv', timestamp: ts, value: n, "
        "history: 7d}\n"
        "  - {name: c, source: g, timestamp: ts, value: n, history: 7d}\n"
    )
    assert validate_warnings(tmp_path, text) == [
        f"warning sources.g.path: no file matches {tmp_path / 'exprots' / '*.csv'} (yet)",
        f"warning metrics[1].query: no file matches {tmp_path / 'surveys' / '*.csv'} (yet)",
    ]


def test_validate_warns_instead_of_crashing_when_a_bucket_cannot_be_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config ``cxmon import lookout`` writes for an S3 metric set reads the bucket: on a
    machine without AWS credentials ``validate`` printed a traceback (exit 1) instead of
    passing with a warning, as it does for a drop folder that is still empty."""
    from sources.base import FatalSourceError
    from sources.files import FilesSource

    def no_credentials(self: FilesSource, pattern: str | None = None) -> list[str]:
        raise FatalSourceError(f"source {self.name}: no credentials for {self.pattern(pattern)}")

    monkeypatch.setattr(FilesSource, "files", no_credentials)
    text = (
        "sources:\n  s3: {type: files, path: 's3://bucket/exports/*.csv'}\n"
        "metrics:\n"
        "  - {name: a, source: s3, timestamp: ts, value: n, history: 7d}\n"
        "  - {name: b, source: s3, query: 'surveys/*.csv', timestamp: ts, value: n, "
        "history: 7d}\n"
    )
    assert validate_warnings(tmp_path, text) == [
        "warning sources.s3.path: no credentials for s3://bucket/exports/*.csv (a tick would "
        "fail the same way)",
    ]


def test_config_schema_is_json_schema() -> None:
    result = runner.invoke(app, ["config-schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "metrics" in schema["properties"]
    assert "robust_seasonal" in result.output and '"demo"' in result.output


def test_run_once_ticks_and_records(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    result = runner.invoke(app, ["run", "-c", str(write(tmp_path, GOOD.format(db=db))), "--once"])
    assert result.exit_code == 0, result.output
    from monitor.store import Store

    with Store(f"sqlite:///{db}") as store:
        assert store.get_cursor("checkout_dropoff_rate") is not None
        assert len(store.ticks()) == 1


def test_backtest_writes_anomalies(tmp_path: Path) -> None:
    cfg = write(tmp_path, GOOD.format(db=tmp_path / "bt.db"))
    out = tmp_path / "anomalies.csv"
    result = runner.invoke(app, [
        "backtest", "-c", str(cfg), "--start", "2026-01-05", "--end", "2026-02-01",
        "--output", str(out),
    ], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert {"timestamp", "series", "value", "expected", "severity"} <= set(frame.columns)
    # the scripted app/uk drop-off incident (day 22, 11:00-17:00) is found
    hits = frame[frame["series"].str.contains('channel="app"')]
    assert (pd.to_datetime(hits["timestamp"]).dt.strftime("%Y-%m-%d") == "2026-01-27").any()
    assert not (tmp_path / "bt.db").exists()  # backtest stores nothing


@pytest.mark.parametrize("args", [["--start", "2026-02-01", "--end", "2026-01-01"],
                                  ["--start", "yesterday-ish", "--end", "2026-01-01"]])
def test_backtest_rejects_bad_ranges(tmp_path: Path, args: list[str]) -> None:
    cfg = write(tmp_path, GOOD.format(db="x.db"))
    result = runner.invoke(app, ["backtest", "-c", str(cfg), *args])
    assert result.exit_code == 2


def test_backtest_output_that_is_a_directory_is_refused_before_the_replay(
        tmp_path: Path) -> None:
    """It was an IsADirectoryError traceback after the whole replay had run."""
    cfg = write(tmp_path, GOOD.format(db="x.db"))
    (tmp_path / "out.csv").mkdir()
    result = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2026-01-05",
                                 "--end", "2026-01-06", "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 2, result.output
    assert "out.csv is a directory" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_backtest_end_after_now_warns_and_stops_at_now(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    cfg = write(tmp_path, GOOD.format(db="x.db"))
    start = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:00Z")
    result = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", start,
                                 "--end", "2999-01-01"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "warning: --end 2999-01-01 is after now: the backtest stops at now (" in result.stderr
    assert "2999" not in result.stdout  # the range shown ends at now
    future = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2998-01-01",
                                 "--end", "2999-01-01"])
    assert future.exit_code == 2, future.output
    assert "Invalid value for '--start': 2998-01-01 is after now" in future.output


@pytest.mark.parametrize(("args", "expected"), [
    (["--start", "yesterday-ish", "--end", "2026-01-01"],
     "Invalid value for '--start': not a time: 'yesterday-ish'"),
    (["--start", "2026-01-01", "--end", "soon"], "Invalid value for '--end': not a time: 'soon'"),
    (["--start", "", "--end", "2026-01-01"], "Invalid value for '--start': not a time: ''"),
    (["--start", "2026-02-01", "--end", "2026-01-01"],
     "Invalid value for '--end': must be after --start (2026-02-01)"),
    (["--start", "2026-01-05", "--end", "2026-01-06", "--metric", "nope"],
     "Invalid value for '--metric': unknown metric 'nope'; defined: "),
    (["--start", "2026-01-05", "--end", "2026-01-06", "--output", "x.txt"],
     "Invalid value for '--output': x.txt must end in .csv or .json"),
    (["--start", "2026-01-05", "--end", "2026-01-06", "--output", "no/x.csv"],
     "Invalid value for '--output': no directory no"),
])
def test_backtest_option_errors_name_the_option(tmp_path: Path, args: list[str],
                                                expected: str) -> None:
    """They said only 'Invalid value:', without naming the option."""
    cfg = write(tmp_path, GOOD.format(db="x.db"))
    result = runner.invoke(app, ["backtest", "-c", str(cfg), *args], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Invalid value:" not in result.output and "Traceback" not in result.output


def test_alerts_status(tmp_path: Path) -> None:
    cfg = write(tmp_path, GOOD.format(db=tmp_path / "s.db"))
    missing = runner.invoke(app, ["alerts", "status", "-c", str(cfg)])
    assert missing.exit_code == 1 and "no store" in missing.output  # no false all-clear
    assert not (tmp_path / "s.db").exists()
    assert runner.invoke(app, ["run", "-c", str(cfg), "--once"]).exit_code == 0
    result = runner.invoke(app, ["alerts", "status", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "pending 0" in result.output


def test_run_once_exits_non_zero_when_a_tick_fails(tmp_path: Path) -> None:
    broken = GOOD.format(db=tmp_path / "f.db").replace("query: checkout", "query: nosuchtable")
    result = runner.invoke(app, ["run", "-c", str(write(tmp_path, broken)), "--once"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "1 of 1 tick(s) failed" in result.output


def test_validate_messages_keep_square_brackets(tmp_path: Path) -> None:
    bad = GOOD.format(db="x.db").replace("{ratio: [abandoned, started]}", "{ratio: abandoned}")
    result = runner.invoke(app, ["validate", "-c", str(write(tmp_path, bad))],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2
    # rich markup must not swallow the bracketed shape
    assert "[numerator_column, denominator_column]" in result.output


INCIDENT = """
store: sqlite:///{db}
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - name: checkout_dropoff_rate
    source: shop
    query: checkout
    interval: 1h
    history: 22d
    timestamp: ts
    dimensions: [channel, region]
    value: {{ratio: [abandoned, started]}}
    labels: {{journey: checkout}}
    direction: up
executor: {{type: inline}}
exporter: {{enabled: false}}
alerting:
  route: {{receiver: console}}   # group_wait: the default 30s
  receivers: [{{name: console, console: {{format: json}}}}]
"""
# The demo's scripted app/uk checkout drop-off is under way at 12:00; the first tick learns
# 22 days silently and its newest bucket (12:00-13:00) opens an incident.
INCIDENT_NOW = pd.Timestamp("2026-01-27T13:05:00Z").to_pydatetime()


def test_run_once_sends_a_new_incidents_first_alert_before_exiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.clock import FakeClock
    from monitor.store import Store

    monkeypatch.setattr("monitor.cli_run.SystemClock", lambda: FakeClock(INCIDENT_NOW))
    monkeypatch.setattr("monitor.cli_status.SystemClock", lambda: FakeClock(INCIDENT_NOW))
    cfg = write(tmp_path, INCIDENT.format(db=tmp_path / "s.db"))
    result = runner.invoke(app, ["run", "-c", str(cfg), "--once"])
    assert result.exit_code == 0, result.output
    # not left waiting group_wait for a next --once run: printed by the console receiver
    assert '"status": "firing"' in result.output
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        (sent,) = store.notifications()
        assert sent.status == "sent" and "|opened|" in sent.idempotency_key
    status = runner.invoke(app, ["alerts", "status", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert "sent 1" in status.output and "waiting" not in status.output


def test_run_once_exits_0_and_warns_while_a_failed_delivery_is_pending(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery that may succeed later stays pending for the next run: exit 0 (as --help
    and README say) with a warning, not silence."""
    import socket

    from monitor.clock import FakeClock
    from monitor.store import Store

    with socket.socket() as sock:  # a port nothing listens on: connection refused (retryable)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr("monitor.cli_run.SystemClock", lambda: FakeClock(INCIDENT_NOW))
    monkeypatch.setattr("monitor.cli_status.SystemClock", lambda: FakeClock(INCIDENT_NOW))
    text = INCIDENT.format(db=tmp_path / "s.db").replace(
        "console: {format: json}", f"webhook: {{url: 'http://127.0.0.1:{port}/hook', "
        "timeout: 2}")
    result = runner.invoke(app, ["run", "-c", str(write(tmp_path, text)), "--once"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ("1 notification(s) could not be sent and stay pending in the outbox; the next run "
            "retries them") in result.stderr
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        (pending,) = store.notifications()
        assert pending.status == "pending"
    assert "Exit codes with --once: 0 when every metric ticked" in runner.invoke(
        app, ["run", "--help"], env={"COLUMNS": "200"}).output


def test_alerts_status_shows_groups_waiting_in_group_wait(tmp_path: Path) -> None:
    from monitor.clock import FakeClock
    from monitor.config import load_config
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    cfg_path = write(tmp_path, INCIDENT.format(db=tmp_path / "s.db"))
    cfg = load_config(cfg_path, env={})
    with Store.open(cfg.store.url) as store:
        p = Pipeline(cfg, store, clock=FakeClock(INCIDENT_NOW),
                     notifiers={"console": object()})  # type: ignore[dict-item] - not sent
        assert p.tick("checkout_dropoff_rate").incidents
        assert p.flush_groups() == 0  # the scheduler's flush: group_wait has not passed
        p.close()
    result = runner.invoke(app, ["alerts", "status", "-c", str(cfg_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "pending 0 · sent 0" in text
    assert "waiting: 1 (group_wait until 2026-01-27 13:05:30 UTC)" in text
    assert "│ waiting │" in text  # and a row for it (the table folds on narrow terminals)


def test_backtest_whole_range_warming_on_a_daily_season_has_no_daily_hint(
        tmp_path: Path) -> None:
    # the daily-season hint is for the weekly warm-up only: a daily detector is already that
    daily = GOOD.format(db="x.db") + (
        "    detectors: [daily]\n"
        "detectors:\n  daily: {type: robust_seasonal, season: day}\n")
    out = runner.invoke(app, ["backtest", "-c", str(write(tmp_path, daily)),
                              "--start", "2026-01-05", "--end", "2026-01-05T12:00Z"])
    assert out.exit_code == 0, out.output
    assert ("detectors warming up for the whole range (daily [robust_seasonal] needs 1d); "
            "give the metric a longer `history:`") in out.output
    assert "season: day" not in out.output


def test_backtest_learns_from_history_before_start(tmp_path: Path) -> None:
    # two days around the scripted incident (2026-01-27 11:00-17:00)
    args = ["--start", "2026-01-26", "--end", "2026-01-28"]
    cold = runner.invoke(app, ["backtest", "-c", str(write(tmp_path, GOOD.format(db="x.db"))),
                               *args])
    assert cold.exit_code == 0, cold.output
    assert "no anomalies 2026-01-26 00:00" in cold.output and "┏" not in cold.output
    assert "rejected" not in cold.output  # no "rejected {}"
    assert ("checkout_dropoff_rate: detectors warming up for the whole range "
            "(robust_seasonal needs 1w)") in cold.output
    # a short first export can never warm the weekly season up: say how to warm up in a day
    assert "`{type: robust_seasonal, season: day}` warms up in 1d" in cold.output
    warm = runner.invoke(app, ["backtest", "-c", str(write(
        tmp_path, GOOD.format(db="x.db") + "    history: 14d\n")), *args])
    assert warm.exit_code == 0, warm.output
    assert "warming up" not in warm.output
    # not a terminal: every row on one line, however long
    assert '│ checkout_dropoff_rate{channel="app",journey="checkout",region="uk"}' in warm.output
    assert "0 anomalies" not in warm.output


def test_backtest_summary_counts_episodes_comparable_between_settings(tmp_path: Path) -> None:
    """The anomaly count adds every anomalous point of every roll-up series; the summary also
    says in how many runs of anomalous buckets (episodes) they came, what an analyst compares
    between two settings."""
    import re

    from monitor.backtest import episodes

    hour = timedelta(hours=1)
    t = datetime(2026, 1, 27, 11, tzinfo=UTC)
    assert episodes(set(), hour) == 0
    assert episodes({t, t + hour, t + 2 * hour}, hour) == 1
    assert episodes({t, t + 2 * hour, t + 30 * hour}, hour) == 3
    result = runner.invoke(app, ["backtest", "-c", str(write(
        tmp_path, GOOD.format(db="x.db") + "    history: 14d\n")),
        "--start", "2026-01-26", "--end", "2026-01-28"])
    assert result.exit_code == 0, result.output
    found = re.search(r"(\d+) anomalies in (\d+) episode\(s\) of (\d+) bucket\(s\)",
                      result.output)
    assert found, result.output
    n, runs, buckets = map(int, found.groups())
    assert 1 <= runs <= buckets <= n


def test_backtest_table_names_the_detector_when_a_metric_has_several(tmp_path: Path) -> None:
    """With ``detectors: [rs, sb]`` a point both flag is two rows of the same time and series
    with two expected values: a fresh-eyes analyst could not tell which was which without
    ``--output``. The column shows only then; one detector keeps the table as it was."""
    two = GOOD.format(db="x.db") + (
        "    history: 14d\n    detectors: [rs, sb]\n"
        "detectors:\n  rs: {type: robust_seasonal}\n  sb: {type: seasonal_baseline}\n")
    args = ["--start", "2026-01-27", "--end", "2026-01-28", "--no-feedback"]
    out = tmp_path / "a.csv"
    result = runner.invoke(app, ["backtest", "-c", str(write(tmp_path, two)), *args,
                                 "--output", str(out)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    flagged = set(pd.read_csv(out)["detector"])
    assert flagged == {"rs", "sb"}  # both flag the scripted incident
    header = next(line for line in result.output.splitlines() if "series" in line)
    assert header.split("┃")[3].strip() == "detector"
    rows = [[c.strip() for c in line.split("│")] for line in result.output.splitlines()
            if line.startswith("│")]
    assert {r[3] for r in rows} == flagged
    one = runner.invoke(app, ["backtest", "-c", str(write(
        tmp_path, GOOD.format(db="x.db") + "    history: 14d\n")), *args],
        env={"COLUMNS": "250"})
    assert one.exit_code == 0, one.output
    assert "detector" not in next(line for line in one.output.splitlines() if "series" in line)


def test_backtest_says_until_when_the_detectors_warmed_up(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "-c", str(write(tmp_path, GOOD.format(db="x.db"))),
                                 "--start", "2026-01-05", "--end", "2026-01-14"])
    assert result.exit_code == 0, result.output
    assert ("checkout_dropoff_rate: detectors warming up until 2026-01-12 00:00 UTC "
            "(robust_seasonal needs 1w)") in result.output


def test_alerts_status_shows_causes_and_no_next_attempt_for_dead_or_suppressed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from monitor import cli

    monkeypatch.setattr(cli.console, "width", 250)  # one line per row, whatever the terminal
    from datetime import UTC, datetime

    import httpx

    from alerts.notifiers.base import NotifyError
    from alerts.notifiers.http import post_json
    from monitor.model import Notification
    from monitor.store import Store

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        post_json(httpx.Client(timeout=2), f"http://me:pw@127.0.0.1:{port}/hook?token=sekrit",
                  b"{}", {}, "webhook hook")
    except NotifyError as exc:
        error = str(exc)
    assert error == f"webhook hook: ConnectError: connection refused to 127.0.0.1:{port}"
    db = tmp_path / "s.db"
    t0 = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
    with Store(f"sqlite:///{db}") as store:
        store.migrate()
        with store.transaction() as tx:
            tx.enqueue([Notification("a", "hook", "inc-a"), Notification("b", "hook", "inc-b")],
                       t0)
            tx.record_suppressed([(Notification("c", "hook", "inc-c"), "silenced by s1")], t0)
        ids = {r.idempotency_key: r.id for r in store.notifications()}
        store.mark_retry(ids["a"], error, datetime(2026, 1, 27, 12, 0, 5, tzinfo=UTC))
        store.mark_dead(ids["b"], error)
    result = runner.invoke(app, ["alerts", "status", "-c", str(write(
        tmp_path, GOOD.format(db=db)))], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): [c.strip() for c in line.split("│")[1:-1]]
            for line in result.output.splitlines() if line.count("│") > 5
            and line.split("│")[2].strip() in ("pending", "dead", "suppressed")}
    assert rows["pending"][6] == "2026-01-27 12:00:05 UTC"  # one time format
    assert rows["dead"][6] == "-" and rows["suppressed"][6] == "-"  # never attempted again
    assert "ConnectError: connection refused to 127.0.0.1" in rows["dead"][7]
    assert rows["dead"][2] == "first message"  # which message of its incident each one is
    assert "`cxmon alerts retry ID...` (or --all)" in result.output  # the way back
    assert "sekrit" not in result.output and "pw@" not in result.output


def test_read_only_commands_ignore_unset_variables_of_other_sections(tmp_path: Path) -> None:
    """GRAFANA_TOKEN (and a source's ${VAR}) unset: only the commands that use that section
    fail; ``validate`` still reports every unset variable."""
    text = GOOD.format(db=tmp_path / "u.db").replace(
        '"2026-01-05T00:00:00Z"', '"${CXMON_TEST_ANCHOR}"'
    ) + 'grafana: {url: "http://127.0.0.1:3000", token: "${CXMON_TEST_GRAFANA_TOKEN}"}\n'
    cfg = write(tmp_path, text)
    Store.open(f"sqlite:///{tmp_path / 'u.db'}").close()  # an empty store: status reads it
    env = {"CXMON_TEST_ANCHOR": None, "CXMON_TEST_GRAFANA_TOKEN": None, "COLUMNS": "200"}
    routes = runner.invoke(app, ["routes", "test", "-c", str(cfg), "journey=checkout"], env=env)
    assert routes.exit_code == 0, routes.output
    assert routes.output.strip() == "console"
    for args in (["alerts", "status"], ["silence", "query"]):
        result = runner.invoke(app, [*args, "-c", str(cfg)], env=env)
        assert result.exit_code == 0, (args, result.output)
    # the delivery worker needs the receivers, not the sources (it stopped on their ${VAR})
    deliver = runner.invoke(app, ["alerts", "deliver", "--until-empty", "-c", str(cfg)],
                            env={**env, "CXMON_TEST_GRAFANA_TOKEN": "t"})
    assert deliver.exit_code == 0, deliver.output
    assert "CXMON_TEST_ANCHOR" not in deliver.output
    checked = runner.invoke(app, ["validate", "-c", str(cfg)], env=env)
    assert checked.exit_code == 2
    assert "CXMON_TEST_ANCHOR is not set" in checked.output
    assert "CXMON_TEST_GRAFANA_TOKEN is not set" in checked.output
    push = runner.invoke(app, ["dashboards", "push", "-c", str(cfg)], env=env)
    assert push.exit_code == 2 and "CXMON_TEST_GRAFANA_TOKEN is not set" in push.output
    assert "CXMON_TEST_ANCHOR" not in push.output


def test_backtest_output_that_cannot_be_written_is_one_line_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write refused by the file system (permissions, a full disk) was a traceback."""
    import pandas as pd

    def refuse(self, path, **kw):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", refuse)
    cfg = write(tmp_path, GOOD.format(db="x.db"))
    result = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2026-01-05",
                                 "--end", "2026-01-06", "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 1, result.output
    assert "cannot write" in result.output and "Permission denied" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_alerts_status_lists_a_new_dead_notification_behind_many_old_suppressed_ones(
    tmp_path: Path,
) -> None:
    """The table kept the oldest ``--show`` rows: after a month of silenced incidents, the
    notification dead-lettered today was cut off, with no word that rows were left out."""
    from datetime import timedelta

    from monitor.model import Notification
    from monitor.store import Store

    cfg_path = write(tmp_path, INCIDENT.format(db=tmp_path / "s.db"))
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        with store.transaction() as tx:
            for i in range(25):
                n = Notification(f"old-{i}|opened|x|console", "console", f"old-{i}", {})
                tx.record_suppressed([(n, "silenced by s1")],
                                     INCIDENT_NOW - timedelta(days=30 - i))
            tx.enqueue([Notification("new|opened|x|console", "console", "new-incident", {})],
                       INCIDENT_NOW)
        (row,) = store.notifications("pending")
        store.mark_dead(row.id, "webhook hook: HTTP 404")
    result = runner.invoke(app, ["alerts", "status", "-c", str(cfg_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "new-incident" in text and "HTTP 404" in text
    assert "6 more not shown (--show)" in text


def test_alerts_status_does_not_show_an_expired_lease_as_a_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-send leaves its lease on the row: long after it expired (nobody
    holds the row), ``alerts status`` still said ``claimed by <dead worker> until <past>``."""
    from datetime import timedelta

    from monitor.clock import FakeClock
    from monitor.model import Notification
    from monitor.store import Store

    cfg_path = write(tmp_path, INCIDENT.format(db=tmp_path / "s.db"))
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        with store.transaction() as tx:
            tx.enqueue([Notification("k|opened|x|console", "console", "inc-k", {})],
                       INCIDENT_NOW)
        assert store.claim_due(INCIDENT_NOW, lease=timedelta(minutes=2), owner="w1")
    monkeypatch.setattr("monitor.cli_status.SystemClock", lambda: FakeClock(INCIDENT_NOW))
    held = runner.invoke(app, ["alerts", "status", "-c", str(cfg_path)], env={"COLUMNS": "200"})
    assert "claimed by w1 until 2026-01-27 13:07:00 UTC" in " ".join(held.output.split())
    later = INCIDENT_NOW + timedelta(hours=1)
    monkeypatch.setattr("monitor.cli_status.SystemClock", lambda: FakeClock(later))
    result = runner.invoke(app, ["alerts", "status", "-c", str(cfg_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "inc-k" in result.output and "claimed" not in result.output


@pytest.mark.parametrize("command", [["alerts", "deliver", "--until-empty"], ["serve-feedback"]])
def test_delivery_and_feedback_commands_do_not_create_a_missing_store(
    tmp_path: Path, command: list[str]
) -> None:
    """``alerts deliver`` and ``serve-feedback`` created a fresh, empty store at a mistyped
    path (and its folders), then delivered nothing / knew no anomaly, and exited 0."""
    db = tmp_path / "typo" / "s.db"
    cfg = write(tmp_path, INCIDENT.format(db=db) + "  feedback: {signing_secret: s, "
                "listen: '127.0.0.1:0'}\n")
    result = runner.invoke(app, [*command, "-c", str(cfg)], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert f"nostoreat{db}" in "".join(result.output.split())
    assert not db.parent.exists()


def test_alerts_status_rejects_a_negative_show(tmp_path: Path) -> None:
    """``--show -1`` was taken as a Python slice: every row but the last one."""
    cfg = write(tmp_path, INCIDENT.format(db=tmp_path / "s.db"))
    result = runner.invoke(app, ["alerts", "status", "-c", str(cfg), "--show", "-1"])
    assert result.exit_code == 2 and "Invalid value for '--show'" in result.output


def test_backtest_reports_a_series_that_stops_arriving(tmp_path: Path) -> None:
    """A series that stops while the others continue is a no_data anomaly in `run`; the
    backtest left it out, so it did not say what cxmon would have told us."""
    times = pd.date_range("2026-01-01", periods=24 * 10, freq="h")
    rows = [(t, ch, 10) for t in times for ch in ("app", "web") if ch == "app" or t.day < 8]
    pd.DataFrame(rows, columns=["ts", "channel", "n"]).to_csv(tmp_path / "d.csv", index=False)
    cfg = write(tmp_path, "sources:\n  f: {type: files, path: d.csv}\nmetrics:\n"
                "  - {name: contacts, source: f, interval: 1h, timestamp: ts, value: n,\n"
                "     dimensions: [channel], no_data_after: 3h}\n")
    out = tmp_path / "a.csv"
    result = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2026-01-06",
                                 "--end", "2026-01-10", "--output", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    gone = frame[frame["kind"] == "no_data"]
    assert list(gone["series"]) == ['contacts{channel="web"}']
    assert list(gone["timestamp"]) == ["2026-01-08T02:00:00+00:00"]
    assert 'contacts{channel="web"}' in result.output and "Traceback" not in result.output


def test_alerts_status_says_a_suppressed_notification_was_told_later(tmp_path: Path) -> None:
    """A notification muted by a silence stayed listed as "suppressed" after the silence
    ended and the incident was sent: on-call read it as "never told"."""
    from datetime import timedelta

    from monitor.model import Notification
    from monitor.store import Store

    cfg_path = write(tmp_path, INCIDENT.format(db=tmp_path / "s.db"))
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        with store.transaction() as tx:
            for key in ("told", "still-muted"):
                n = Notification(f"{key}|opened|x|console", "console", key, {})
                tx.record_suppressed([(n, "silenced by s1")], INCIDENT_NOW - timedelta(hours=2))
            tx.enqueue([Notification("told|opened|y|console", "console", "told", {})],
                       INCIDENT_NOW)
        (row,) = store.notifications("pending")
        store.mark_sent(row.id, INCIDENT_NOW)
    result = runner.invoke(app, ["alerts", "status", "-c", str(cfg_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = {ln.split("│")[5].strip(): ln for ln in result.output.splitlines() if ln.count("│") > 6}
    assert f"told later (#{row.id})" in lines["told"]
    assert "told later" not in lines["still-muted"]


def _one_event_every_5_minutes(tmp_path: Path, days: int) -> tuple[datetime, MonitorConfig]:
    """A files source with one event every 5 minutes from 2026-01-05 for ``days`` days, and
    an hourly ``events`` metric (1 day of history) counting them."""
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    stamps = pd.date_range(t0, t0 + timedelta(days=days), freq="5min", inclusive="left")
    pd.DataFrame({"ts": stamps, "n": 1}).to_csv(tmp_path / "events.csv", index=False)
    return t0, parse_config(f"""
sources: {{f: {{type: files, path: "{tmp_path}/events.csv"}}}}
metrics: [{{name: events, source: f, interval: 1h, timestamp: ts, value: n, history: 1d}}]
""", env={})


def test_backtest_replays_whole_buckets_when_start_and_end_fall_inside_one(
        tmp_path: Path) -> None:
    """An unaligned --start/--end (or an --end clipped to now) split buckets: the first and
    last were scored half-counted, and each weekly chunk boundary scored one bucket twice."""
    from monitor.backtest import run_backtest

    t0, cfg = _one_event_every_5_minutes(tmp_path, days=9)
    half = timedelta(minutes=30)
    result = run_backtest(cfg, ["events"], t0 + timedelta(days=1) + half,
                          t0 + timedelta(days=9) - half)
    assert result.summary["events"]["points"] == 8 * 24 - 1  # 01-06 00:00 .. 01-13 22:00
    # what was replayed, for the summary line (the typed range was shown)
    assert (result.summary["events"]["start"], result.summary["events"]["end"]) == (
        t0 + timedelta(days=1), t0 + timedelta(days=9) - timedelta(hours=1))
    assert result.summary["events"]["rows"] == (8 * 24 - 1) * 12
    assert result.anomalies.empty  # every hour holds its 12 events


def test_backtest_retries_a_transient_source_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill retried a flaky source with backoff; a backtest failed the whole replay on
    the first transient error. Both now fetch through the same retrying helper."""
    import monitor.backtest as bt
    from sources.base import RetriableSourceError

    t0, cfg = _one_event_every_5_minutes(tmp_path, days=3)
    real = bt.create_source
    failures = iter([True, True])  # the first two fetches fail

    def flaky(name: str, config: object) -> object:
        src = real(name, config)
        fetch = src.fetch

        def sometimes(request: object) -> pd.DataFrame:
            if next(failures, False):
                raise RetriableSourceError("source f: HTTP 503")
            return fetch(request)

        src.fetch = sometimes  # type: ignore[method-assign]
        return src

    monkeypatch.setattr(bt, "create_source", flaky)
    waits: list[float] = []
    result = bt.run_backtest(cfg, ["events"], t0 + timedelta(days=1), t0 + timedelta(days=3),
                             sleep=waits.append)
    assert waits == [1.0, 2.0]  # backoff, injected: the test never waits
    assert result.summary["events"]["points"] == 2 * 24


@pytest.mark.parametrize("command", ["backtest", "backfill"])
def test_times_must_be_iso_not_a_month_or_day_first_guess(tmp_path: Path, command: str) -> None:
    # pandas reads 10/11/2026 as October 11: a European analyst meant November 10
    cfg = str(write(tmp_path, GOOD.format(db="x.db")))
    extra = ["--metric", "checkout_dropoff_rate"] if command == "backfill" else []
    result = runner.invoke(app, [command, "-c", cfg, *extra, "--start", "10/11/2025",
                                 "--end", "2026-01-28"])
    assert result.exit_code == 2, result.output
    assert "not a time: '10/11/2025' (use ISO 8601" in " ".join(result.output.split())


def test_alerts_retry_all_leaves_superseded_updates_and_reminders_dead(tmp_path: Path) -> None:
    """After a day-long Slack outage, --all re-sent every dead reminder and update hours out
    of date; now it sends per incident the first message, the resolution and the newest
    message, and says which it left (--stale sends those too)."""
    from datetime import UTC, datetime

    from monitor.model import Notification
    from monitor.store import Store

    db = tmp_path / "r.db"
    t0 = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
    reminder = {"update": True, "repeat": True, "status": "firing"}
    with Store(f"sqlite:///{db}") as store:
        store.migrate()
        with store.transaction() as tx:
            tx.enqueue([Notification("first", "hook", "inc", {"status": "firing"}),
                        Notification("remind1", "hook", "inc", reminder),
                        Notification("update", "hook", "inc", {"update": True}),
                        Notification("remind2", "hook", "inc", reminder),
                        Notification("resolved", "hook", "inc", {"status": "resolved"}),
                        Notification("other", "hook", "inc2", reminder)], t0)
        ids = {r.idempotency_key: r.id for r in store.notifications()}
        for i in ids.values():
            store.mark_dead(i, "webhook hook: HTTP 503")
    cfg = write(tmp_path, GOOD.format(db=db))
    out = runner.invoke(app, ["alerts", "retry", "-c", str(cfg), "--all"])
    assert out.exit_code == 0, out.output
    sent = [ids[k] for k in ("first", "resolved", "other")]
    assert f"requeued 3 notification(s): {', '.join(map(str, sorted(sent)))} " in out.output
    assert (f"left dead 3 update(s)/reminder(s) a later message of the same incident "
            f"superseded: {ids['remind1']} (by {ids['resolved']}), {ids['update']} (by "
            f"{ids['resolved']}), {ids['remind2']} (by {ids['resolved']}) (--stale sends "
            "them too)") in " ".join(out.output.split())
    again = runner.invoke(app, ["alerts", "retry", "-c", str(cfg), "--all", "--stale"])
    assert again.exit_code == 0 and "requeued 3 notification(s)" in again.output
    with Store(f"sqlite:///{db}") as store:
        assert store.outbox_counts().get("dead", 0) == 0


def test_alerts_retry_requeues_dead_letters_and_refuses_others(tmp_path: Path) -> None:
    """The SRE's way back for an alert dead-lettered while its receiver was down."""
    from datetime import UTC, datetime

    from monitor.model import Notification
    from monitor.store import Store

    db = tmp_path / "r.db"
    t0 = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
    with Store(f"sqlite:///{db}") as store:
        store.migrate()
        with store.transaction() as tx:
            tx.enqueue([Notification("a", "hook", "inc-a"), Notification("b", "hook", "inc-b"),
                        Notification("c", "pd", "inc-c")], t0)
        ids = {r.idempotency_key: r.id for r in store.notifications()}
        for key in ("a", "c"):
            store.mark_dead(ids[key], "webhook hook: HTTP 404 Not Found")
    cfg = write(tmp_path, GOOD.format(db=db))
    none = runner.invoke(app, ["alerts", "retry", "-c", str(cfg)])
    assert none.exit_code == 2 and "--all" in none.output
    wrong = runner.invoke(app, ["alerts", "retry", "-c", str(cfg), str(ids["a"]), str(ids["b"])])
    assert wrong.exit_code == 1
    assert f"requeued 1 notification(s): {ids['a']} " in wrong.output
    assert f"notification {ids['b']} is not dead-lettered" in wrong.output
    rest = runner.invoke(app, ["alerts", "retry", "-c", str(cfg), "--all", "-r", "pd"])
    assert rest.exit_code == 0 and f"requeued 1 notification(s): {ids['c']} " in rest.output
    with Store(f"sqlite:///{db}") as store:
        assert store.outbox_counts()["dead"] == 0
        assert {r.id for r in store.notifications("pending")} == set(ids.values())
    empty = runner.invoke(app, ["alerts", "retry", "-c", str(cfg), "--all"])
    assert empty.exit_code == 0 and "no dead-lettered notifications" in empty.output


@pytest.mark.parametrize(("typed", "hint"), [
    ("status", "Did you mean 'cxmon alerts status'?"),
    ("build", "Did you mean 'cxmon dashboards build'?"),
])
def test_unknown_command_that_a_subgroup_has_names_where_it_lives(typed: str,
                                                                  hint: str) -> None:
    out = runner.invoke(app, [typed, "-c", "cxmon.yaml"], prog_name="cxmon")
    assert out.exit_code == 2
    assert f"No such command '{typed}'. {hint}" in out.output


def test_unknown_command_keeps_its_close_match_and_has_no_hint_otherwise() -> None:
    close = runner.invoke(app, ["anomaly"])  # a close match: click's own suggestion only
    assert close.exit_code == 2
    assert "No such command 'anomaly'. Did you mean 'anomalies'?\n" in close.output
    unknown = runner.invoke(app, ["bogus"])
    assert unknown.exit_code == 2
    assert "No such command 'bogus'." in unknown.output
    assert "Did you mean" not in unknown.output


def _table_rows(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines()
            if line.startswith("│")]


def test_backtest_table_prints_numbers_as_alerts_do(tmp_path: Path) -> None:
    """The table printed raw values (``3.542``, ``0.4127``) where the alert about the same
    point said ``3.54 / 5`` or ``41.3%``: a ratio reads as a percentage and a scaled CSAT
    with its decimals and scale, as :func:`alerts.payload.readable` says them; --output keeps
    the detector's raw numbers."""
    from alerts.display import Names
    from alerts.payload import readable

    times = pd.date_range("2026-01-01", periods=24 * 10, freq="h", tz="UTC")
    rows = []
    for i, t in enumerate(times):
        low = t == pd.Timestamp("2026-01-09T12:00Z")  # one bad hour
        for j in range(20):
            rows.append((t.isoformat(), 2 if low and j < 14 else 4 + (i + j) % 2,
                         1 if (j < 15 if low else (i + j) % 10 == 0) else 0))
    pd.DataFrame(rows, columns=["ts", "rating", "abandoned"]).assign(started=1).to_csv(
        tmp_path / "d.csv", index=False)
    cfg = write(tmp_path, "sources:\n  f: {type: files, path: d.csv}\nmetrics:\n"
                "  - {name: csat, source: f, interval: 1h, timestamp: ts, value: {mean: rating},"
                "\n     scale_max: 5, decimals: 2, history: 7d}\n"
                "  - {name: dropoff, source: f, interval: 1h, timestamp: ts,\n"
                "     value: {ratio: [abandoned, started]}, history: 7d}\n")
    out = tmp_path / "a.csv"
    result = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2026-01-08",
                                 "--end", "2026-01-11", "--no-feedback", "--output", str(out)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    names = Names.from_config(parse_config(cfg.read_text(), env={}))
    shown = _table_rows(result.output)
    assert {r[1].split("{")[0] for r in shown} == {"csat", "dropoff"}
    assert len(shown) == len(frame)  # fewer than 50: every anomaly has its row
    for (_, a), row in zip(frame.iterrows(), shown, strict=True):
        assert a["series"] == row[1]
        text = readable(a.to_dict(), percent=a["metric"] == "dropoff", names=names)["text"]
        assert row[2:5] == [text["value"], text["expected"], text["band"]]
        if a["metric"] == "csat":
            assert row[2] == f"{a['value']:.2f} / 5" and row[4].endswith(" / 5")
        else:
            assert row[2] == f"{a['value'] * 100:.3g}%" and row[3].endswith("%")
    # the machine output stays raw: the CSV's value is the detector's float, not text
    assert frame["value"].dtype == float and "/ 5" not in out.read_text()
