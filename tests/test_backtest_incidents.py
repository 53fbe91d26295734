"""``cxmon backtest --incidents``: score a replay against incidents known to have happened."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.backtest_incidents import (
    IncidentsError,
    KnownIncident,
    parse_incidents,
    score_incidents,
)
from monitor.cli import app

runner = CliRunner()
ENV = {"COLUMNS": "200"}
RANGE = ["--start", "2026-01-15", "--end", "2026-01-29"]


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hourly contacts per channel (app, web) with a daily cycle, 2026-01-01..01-29, and:
    an app outage (x5, 01-20 10:00-13:00), a subtle app bump (+3%, 01-23 10:00-12:00), and
    a web spike nobody filed as an incident (x5, 01-26 15:00)."""
    tmp = tmp_path_factory.mktemp("bt")
    rng = np.random.default_rng(7)
    rows = []
    for t in pd.date_range("2026-01-01", "2026-01-29", freq="h", inclusive="left", tz="UTC"):
        for ch, base in (("app", 400), ("web", 300)):
            v = int(rng.poisson(base * (1 + 0.3 * np.sin(2 * np.pi * t.hour / 24))))
            if ch == "app" and _ts("2026-01-20 10:00") <= t < _ts("2026-01-20 13:00"):
                v *= 5
            if ch == "app" and _ts("2026-01-23 10:00") <= t < _ts("2026-01-23 12:00"):
                v = int(v * 1.03)
            if ch == "web" and t == _ts("2026-01-26 15:00"):
                v *= 5
            rows.append((t.isoformat(), ch, v))
    pd.DataFrame(rows, columns=["ts", "channel", "n"]).to_csv(tmp / "d.csv", index=False)
    path = tmp / "cxmon.yaml"
    path.write_text(f"sources:\n  f: {{type: files, path: '{tmp / 'd.csv'}'}}\nmetrics:\n"
                    "  - {name: contacts, source: f, interval: 1h, timestamp: ts, value: n,\n"
                    "     dimensions: [channel], history: 14d}\n")
    return path


def _backtest(cfg: Path, tmp_path: Path, csv: str, *extra: str) -> tuple[object, Path]:
    incidents = tmp_path / "incidents.csv"
    incidents.write_text(csv)
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["backtest", "-c", str(cfg), *RANGE, "--incidents",
                                 str(incidents), "--incidents-json", str(report), *extra],
                           env=ENV)
    return result, report


def test_found_missed_false_episode_time_to_detect_precision_recall(
        cfg: Path, tmp_path: Path) -> None:
    # the outage is filed from 08:00 (the first complaints), the detectors see it at 10:00
    result, report = _backtest(cfg, tmp_path, (
        "start,end,metric,labels,name\n"
        "2026-01-20T08:00Z,2026-01-20T13:00Z,contacts,,app outage\n"
        "2026-01-23T10:00:00+00:00,2026-01-23T12:00:00,,channel=app,subtle bump\n"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Known incidents" in out and "Traceback" not in out
    assert "missed: subtle bump (2026-01-23 10:00 – 2026-01-23 12:00 UTC" in out
    assert "missed: app outage" not in out
    row = next(line for line in out.splitlines() if line.startswith("│ contacts "))
    cells = [c.strip() for c in row.split("│")[1:-1]]
    # incidents, found, missed, detect median, detect max, episodes, false, precision, recall
    assert cells == ["contacts", "2", "1", "1", "2h", "2h", "2", "1", "50%", "50%"]
    data = json.loads(report.read_text())
    for score in (data["metrics"]["contacts"], data["overall"]):
        assert (score["incidents"], score["found"], score["missed"]) == (2, 1, 1)
        assert score["time_to_detect_median_s"] == score["time_to_detect_max_s"] == 7200
        assert (score["episodes"], score["true_episodes"], score["false_episodes"]) == (2, 1, 1)
        assert score["precision"] == score["recall"] == 0.5
        assert [m["name"] for m in score["missed_incidents"]] == ["subtle bump"]


def test_a_terminal_too_narrow_for_the_table_gets_a_line_per_metric(
        cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an 80-column terminal the ten-column table lost its metric names and cut the
    recall to "10…"; there each row is said as a line."""
    from rich.console import Console

    import monitor.cli as cli

    monkeypatch.setattr(cli, "_is_tty", lambda stream: True)
    monkeypatch.setattr(cli, "console", Console(width=80, color_system=None))
    result, _ = _backtest(cfg, tmp_path, (
        "start,end,metric,labels,name\n"
        "2026-01-20T08:00Z,2026-01-20T13:00Z,contacts,,app outage\n"
        "2026-01-23T10:00Z,2026-01-23T12:00Z,,channel=app,subtle bump\n"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # wrapped at 80 columns
    assert ("contacts: found 1 of 2 incident(s) (1 missed), detect median 2h, max 2h; 2 "
            "episode(s), 1 false; precision 50%, recall 50%") in text
    assert "all: found 1 of 2 incident(s)" in text
    assert "┃ metric" not in result.output


@pytest.mark.parametrize(("labels", "found"), [
    ("channel=web", True),   # the spiking series
    ("", True),              # any series: the roll-up and the web series spiked
    ("channel=app", False),  # app was quiet: the roll-up's anomaly does not count for it
])
def test_a_label_restricted_incident_is_found_only_through_a_matching_series(
        cfg: Path, tmp_path: Path, labels: str, found: bool) -> None:
    result, report = _backtest(cfg, tmp_path, (
        "start,end,labels,name\n"
        f"2026-01-26T15:00Z,2026-01-26T16:00Z,{labels},web spike\n"))
    assert result.exit_code == 0, result.output
    overall = json.loads(report.read_text())["overall"]
    assert overall["found"] == int(found)
    assert ("missed: web spike" in result.output) is not found
    # the outage episode is false here: no incident filed for it
    assert overall["false_episodes"] == 2 - int(found)


def test_grace_of_one_interval_after_end_and_the_bucket_holding_start() -> None:
    t = datetime(2026, 1, 20, 10, tzinfo=UTC)
    hour = timedelta(hours=1)
    spans = {"m": (t - 10 * hour, t + 10 * hour, hour)}

    def found(at: datetime, start: datetime, end: datetime) -> int:
        frame = pd.DataFrame({"metric": ["m"], "series": ["m"], "timestamp": [at]})
        inc = KnownIncident(2, "x", start, end, None)
        return score_incidents(frame, [inc], spans).overall.found

    assert found(t, t - hour, t)  # the bucket starting at end: the grace
    assert not found(t + hour, t - hour, t)  # one more: too late
    assert found(t, t + timedelta(minutes=30), t + 2 * hour)  # the bucket holding start
    assert not found(t - hour, t, t + 2 * hour)  # the bucket before start
    frame = pd.DataFrame({"metric": ["m"], "series": ["m"], "timestamp": [t]})
    late = score_incidents(frame, [KnownIncident(2, "x", t - 3 * hour, t, None)], spans)
    assert late.overall.detect == [3 * hour]


def test_incidents_outside_the_replay_are_left_out_with_a_warning(
        cfg: Path, tmp_path: Path) -> None:
    result, report = _backtest(cfg, tmp_path, (
        "start,end,name\n"
        "2026-01-20T08:00Z,2026-01-20T13:00Z,outage\n"
        "2025-06-01,2025-06-02,last summer\n"))
    assert result.exit_code == 0, result.output
    assert "incident last summer (row 3) left out: outside the replayed range" in result.output
    assert json.loads(report.read_text())["overall"]["incidents"] == 1


@pytest.mark.parametrize(("csv", "message"), [
    ("begin,end\n2026-01-20,2026-01-21\n", "missing column(s) start"),
    ("start,end\n2026-01-20,2026-01-21\n20/01/2026,2026-01-21\n",
     "row 3: start is not a time: '20/01/2026'"),
    ("start,end\n2026-01-20,soon\n", "row 2: end is not a time: 'soon'"),
    ("start,end,name\n2026-01-20T10:00Z,2026-01-20T10:00Z,x\n",
     "row 2: end 2026-01-20T10:00Z is not after start"),
    ("start,end,metric\n2026-01-20,2026-01-21,contacs\n",
     "row 2: unknown metric 'contacs' (did you mean 'contacts'? metrics: contacts)"),
    ("start,end,labels\n2026-01-20,2026-01-21,channel:app\n", "row 2: labels must be"),
    # a fresh-eyes analyst's slips, each once read silently into an incident that could
    # never match: an unquoted comma shifted the labels into the name, a comma inside the
    # labels made one label with the value "app,region=uk", a misspelt key matched nothing
    ("start,end,labels,name\n2026-01-20,2026-01-21,channel=app,region=uk,x\n",
     "row 2: more fields than the header's 4 columns; separate labels with ';'"),
    ('start,end,labels\n2026-01-20,2026-01-21,"channel=app,region=uk"\n',
     "row 2: labels are separated by ';', not ',': 'channel=app;region=uk'"),
    ("start,end,labels\n2026-01-20,2026-01-21,chanel=app\n",
     "row 2: no series of any metric has a label 'chanel' (did you mean 'channel'?); "
     "labels: channel"),
    ("start,end,metric,labels\n2026-01-20,2026-01-21,contacts,region=uk\n",
     "row 2: no series of contacts has a label 'region'; labels: channel"),
    ("start,end\n", "no incidents"),
])
def test_a_bad_incidents_csv_names_the_row_and_exits_2_before_the_replay(
        cfg: Path, tmp_path: Path, csv: str, message: str) -> None:
    result, report = _backtest(cfg, tmp_path, csv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and "Anomalies" not in result.output
    assert not report.exists()


def test_a_missing_incidents_file_exits_2(cfg: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", "-c", str(cfg), *RANGE, "--incidents",
                                 str(tmp_path / "nope.csv")], env=ENV)
    assert result.exit_code == 2 and "nope.csv" in result.output


def test_parse_incidents_reads_naive_as_utc_and_labels() -> None:
    (inc,) = parse_incidents("start,end,labels\n2026-01-20 10:00,2026-01-20T12:00+01:00,"
                             " region=uk ; channel=app\n", {"m"})
    assert inc.start == datetime(2026, 1, 20, 10, tzinfo=UTC)
    assert inc.end == datetime(2026, 1, 20, 11, tzinfo=UTC)
    assert inc.labels == (("channel", "app"), ("region", "uk"))
    assert inc.label == "2026-01-20 10:00"  # no name: its start
    with pytest.raises(IncidentsError, match="unknown column"):
        parse_incidents("start,end,severity\n2026-01-20,2026-01-21,high\n", {"m"})
