"""``cxmon backfill``: history loaded chunk by chunk with the tick's validation and roll-ups,
points upserted (re-runs are harmless), no detection, the cursor untouched, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.backfill import backfill
from monitor.cli import app
from monitor.config import load_config
from monitor.store import Store
from sources.base import PollRequest, RetriableSourceError, Source, SourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)

CONFIG = """
store: "sqlite:///{tmp}/cx.db"
sources:
  exports: {{type: files, path: "{tmp}/orders-*.csv"}}
metrics:
  - name: orders
    source: exports
    interval: 1h
    timestamp: ts
    dimensions: [channel]
    value: count
"""


def write_history(tmp, days: int = 2) -> None:
    hours = pd.date_range(T0, T0 + timedelta(days=days), freq="1h", inclusive="left")
    for d in range(days):
        part = hours[d * 24:(d + 1) * 24]
        rows = [{"ts": ts.isoformat(), "channel": c, "count": 10 + i}
                for ts in part for i, c in enumerate(("app", "web"))]
        rows.append({"ts": "not a time", "channel": "app", "count": 1})  # skipped by source
        pd.DataFrame(rows).to_csv(tmp / f"orders-{d}.csv", index=False)


def test_cli_backfill_loads_history(tmp_path) -> None:
    write_history(tmp_path)
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    args = ["backfill", "-c", str(path), "--metric", "orders",
            "--start", "2026-01-05T00:00Z", "--end", "2026-01-07T00:00Z", "--chunk", "12h"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "4 chunk(s)" in text and "96 rows" in text
    # the 'not a time' row of each file, dropped by the source itself, is counted as
    # `validate --poll` and a tick count it (the summary said "0 rejected" for them)
    assert "2 rejected (bad_timestamp 2)" in text
    store = Store.open(f"sqlite:///{tmp_path}/cx.db")
    points = store.load_points(metric="orders")
    assert len(points) == 48 * 3  # 48 hours x (total, app, web)
    total = points[points["series"] == "orders"]
    assert set(total["value"]) == {21.0}
    assert store.get_cursor("orders") is None  # live polling is not moved
    assert store.anomalies().empty
    store.close()
    again = CliRunner().invoke(app, args)  # idempotent
    assert again.exit_code == 0
    store = Store.open(f"sqlite:///{tmp_path}/cx.db")
    assert len(store.load_points(metric="orders")) == 48 * 3
    store.close()


def test_cli_backfill_rejects_unknown_metric(tmp_path) -> None:
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    out = CliRunner().invoke(app, ["backfill", "-c", str(path), "--metric", "nope",
                                   "--start", "2026-01-05", "--end", "2026-01-06"])
    assert out.exit_code != 0
    assert "unknown metric" in out.output


def test_cli_backfill_refuses_a_chunk_of_zero(tmp_path) -> None:
    """0s used to be rounded up to one bucket per request (1,440 requests a day of minutes)."""
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    out = CliRunner().invoke(app, ["backfill", "-c", str(path), "--metric", "orders", "--start",
                                   "2026-01-05", "--end", "2026-01-06", "--chunk", "0s"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 2
    assert "Invalid value for '--chunk': must be positive (got 0s)" in out.output


@pytest.mark.parametrize(("args", "expected"), [
    (["--metric", "nope"], "Invalid value for '--metric': unknown metric 'nope'; defined: orders"),
    (["--start", "yesterday-ish"], "Invalid value for '--start': not a time: 'yesterday-ish'"),
    (["--end", "soon"], "Invalid value for '--end': not a time: 'soon'"),
    (["--start", "2026-01-07"], "Invalid value for '--end': must be after --start (2026-01-07)"),
    (["--start", "2998-01-01", "--end", "2999-01-01"],
     "Invalid value for '--start': 2998-01-01 is after the last complete bucket"),
    (["--chunk", "2x"], "Invalid value for '--chunk': "),
    (["--start", "2026-01-05T10:00Z", "--end", "2026-01-05T10:30Z"],
     "Invalid value for '--start' / '--end': --start 2026-01-05T10:00Z to --end "
     "2026-01-05T10:30Z holds no complete 1h bucket of orders"),
])
def test_cli_backfill_option_errors_name_the_option(tmp_path, args, expected) -> None:
    """They said only 'Invalid value:', without naming the option."""
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    given = {"--metric": "orders", "--start": "2026-01-05", "--end": "2026-01-06"}
    given.update(dict(zip(args[::2], args[1::2], strict=True)))
    out = CliRunner().invoke(app, ["backfill", "-c", str(path),
                                   *(x for kv in given.items() for x in kv)],
                             env={"COLUMNS": "300"})
    assert out.exit_code == 2, out.output
    assert expected in out.output
    assert "Invalid value:" not in out.output and "Traceback" not in out.output


class Flaky(Source):
    def __init__(self, failures: int) -> None:
        super().__init__("exports", SourceConfig(type="files"))
        self.failures = failures
        self.requests: list[PollRequest] = []

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        self.requests.append(request)
        if self.failures:
            self.failures -= 1
            raise RetriableSourceError("source exports: HTTP 503")
        hours = pd.date_range(request.since, request.until, freq="1h", inclusive="left")
        return pd.DataFrame({"ts": hours, "channel": "app", "count": 1})


def test_backfill_retries_with_injected_sleep_and_reports_progress(tmp_path, caplog) -> None:
    """Each retry is logged: an unreachable source used to keep `cxmon backfill` silent for
    over a minute (backoff plus connect timeouts) before its error."""
    cfg = load_config_text(tmp_path)
    store = Store.open(cfg.store.url)
    waits: list[float] = []
    seen: list[tuple[datetime, datetime]] = []
    src = Flaky(failures=2)
    result = backfill(cfg, store, "orders", T0 + timedelta(minutes=30), T0 + timedelta(hours=12),
                      source=src, chunk=timedelta(hours=3), sleep=waits.append,
                      on_chunk=lambda lo, hi, _r: seen.append((lo, hi)))
    assert waits == [1.0, 2.0] and result.retries == 2
    assert [r.getMessage() for r in caplog.records] == [
        "orders: chunk from 2026-01-05 00:00: source exports: HTTP 503; retry 1 of 5 in 1s",
        "orders: chunk from 2026-01-05 00:00: source exports: HTTP 503; retry 2 of 5 in 2s"]
    assert seen[0] == (T0, T0 + timedelta(hours=3))  # start floored to a bucket
    assert result.chunks == 4 and result.points == 12 * 2
    store.close()


def test_a_long_rate_limit_is_not_retried_within_seconds(tmp_path) -> None:
    """A 429 asking for an hour (more than the source's retry.max_wait): the replay stops at
    once with the server's wait in the error. Before, it asked again 5 times in 31 s (and
    `backtest`, which shares this retry, still did after the backfill CLI stopped)."""
    import pytest

    from monitor.backfill import fetch_retrying

    class RateLimited(Flaky):
        def fetch(self, request: PollRequest) -> pd.DataFrame:
            self.requests.append(request)
            raise RetriableSourceError("source exports: HTTP 429; server asked to wait 3600s",
                                       retry_after=3600.0)

    src, waits = RateLimited(failures=0), []
    request = PollRequest("orders", T0, T0 + timedelta(hours=1))
    with pytest.raises(RetriableSourceError, match="wait 3600s") as caught:
        fetch_retrying(src, request, sleep=waits.append)
    assert caught.value.retry_after == 3600.0 and waits == [] and len(src.requests) == 1


class IgnoresTheRange(Flaky):
    """A source (an API) that returns its whole 12-hour export whatever range is asked."""

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        hours = pd.date_range(T0, T0 + timedelta(hours=12), freq="1h", inclusive="left")
        return pd.DataFrame({"ts": hours, "channel": "app", "count": 1})


def test_backfill_does_not_count_rows_of_other_chunks_as_rejected(tmp_path) -> None:
    cfg = load_config_text(tmp_path)
    store = Store.open(cfg.store.url)
    result = backfill(cfg, store, "orders", T0, T0 + timedelta(hours=12),
                      source=IgnoresTheRange(0), chunk=timedelta(hours=3))
    assert result.chunks == 4 and result.points == 12 * 2
    assert result.rejected == {}  # was {"before_cursor": 18}: rows of the earlier chunks
    store.close()


def load_config_text(tmp_path):
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    return load_config(path, env={})


EVENTS = """
store: "sqlite:///{tmp}/cx.db"
sources:
  exports: {{type: files, path: "{tmp}/events.csv"}}
metrics:
  - name: contacts
    source: exports
    interval: 5m
    timestamp: ts
    dimensions: [channel]
    value: n
"""


def test_cli_backfill_counts_identical_event_rows_and_reruns_do_not_double(tmp_path) -> None:
    """Three identical event rows are three contacts, not one plus two 'duplicates'; a re-run
    replaces the bucket (upsert) instead of adding to it."""
    (tmp_path / "events.csv").write_text("ts,channel,n\n" + "2026-11-27T10:05:00Z,app,1\n" * 3)
    path = tmp_path / "cx.yaml"
    path.write_text(EVENTS.format(tmp=tmp_path))
    args = ["backfill", "-c", str(path), "--metric", "contacts",
            "--start", "2026-11-27T10:00Z", "--end", "2026-11-27T11:00Z"]
    for _ in range(2):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 0, out.output
        assert "0 rejected" in " ".join(out.output.split())
        store = Store.open(f"sqlite:///{tmp_path}/cx.db")
        points = store.load_points(metric="contacts")
        store.close()
        assert sorted(points["value"]) == [3.0, 3.0]  # the total and channel=app


def test_backfill_never_splits_a_bucket_between_chunks(tmp_path) -> None:
    """A 90-minute chunk with hourly buckets is rounded up to 2h: otherwise the second half of
    a split bucket would replace the first half's point."""
    cfg = load_config_text(tmp_path)
    store = Store.open(cfg.store.url)

    class Minutely(Source):
        def __init__(self) -> None:
            super().__init__("exports", SourceConfig(type="files"))

        def fetch(self, request: PollRequest) -> pd.DataFrame:
            ts = pd.date_range(request.since, request.until, freq="1min", inclusive="left")
            return pd.DataFrame({"ts": ts, "channel": "app", "count": 1})

    seen: list[tuple[datetime, datetime]] = []
    backfill(cfg, store, "orders", T0, T0 + timedelta(hours=6), source=Minutely(),
             chunk=timedelta(minutes=90), on_chunk=lambda lo, hi, _r: seen.append((lo, hi)))
    assert seen[0] == (T0, T0 + timedelta(hours=2))
    total = store.load_points(metric="orders")
    total = total[total["series"] == "orders"]
    assert total["value"].tolist() == [60.0] * 6
    store.close()


def test_cli_backfill_relative_path_from_another_directory_and_missing_file(
        tmp_path, monkeypatch) -> None:
    """``path: events.csv`` is next to the config file whatever the working directory; a file
    that is not there is named in a clean error (exit 1), not 'no column(s) n'."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "events.csv").write_text("ts,channel,n\n" + "2026-11-27T10:05:00Z,app,1\n" * 3)
    (conf / "cx.yaml").write_text(EVENTS.format(tmp=tmp_path).replace(
        f"{tmp_path}/events.csv", "events.csv"))
    monkeypatch.chdir(tmp_path)
    args = ["backfill", "-c", "conf/cx.yaml", "--metric", "contacts",
            "--start", "2026-11-27T10:00Z", "--end", "2026-11-27T11:00Z"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "3 rows" in " ".join(out.output.split())
    (conf / "events.csv").unlink()
    out = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert out.exit_code == 1
    assert f"file {conf / 'events.csv'} does not exist" in "".join(out.output.splitlines())
    assert "Traceback" not in out.output


def test_cli_backfill_stops_at_the_last_complete_bucket(tmp_path, monkeypatch) -> None:
    """An --end after now stops at the last complete bucket, with a warning (a source has no
    rows after now, and a bucket still filling would be stored half-counted), like backtest;
    a --start after it is a bad option."""
    from monitor.clock import FakeClock

    monkeypatch.setattr("monitor.cli_sources.SystemClock",
                        lambda: FakeClock(datetime(2026, 11, 27, 10, 7, tzinfo=UTC)))
    (tmp_path / "events.csv").write_text("ts,channel,n\n2026-11-27T09:55:00Z,app,1\n"
                                         "2026-11-27T10:05:00Z,app,1\n")
    path = tmp_path / "cx.yaml"
    path.write_text(EVENTS.format(tmp=tmp_path))
    args = ["backfill", "-c", str(path), "--metric", "contacts", "--start", "2026-11-27T09:00Z"]
    out = CliRunner().invoke(app, [*args, "--end", "2026-11-28T00:00Z"], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert "the backfill stops at the last complete bucket (2026-11-27 10:05 UTC)" in out.output
    with Store(f"sqlite:///{tmp_path}/cx.db") as store:
        points = store.load_points(metric="contacts")
    assert points["timestamp"].max() == pd.Timestamp("2026-11-27T09:55Z")
    late = CliRunner().invoke(app, ["backfill", "-c", str(path), "--metric", "contacts",
                                    "--start", "2026-11-27T10:05Z", "--end", "2026-11-28T00:00Z"])
    assert late.exit_code == 2


def test_cli_backfill_error_keeps_brackets_of_the_source_message(tmp_path) -> None:
    """The failure was printed as Rich markup: a driver message quoting ``t[red]x[/]`` came
    out as ``tx`` (or crashed on a stray ``[/``), hiding the very name at fault."""
    path = tmp_path / "cx.yaml"
    path.write_text(f"""
store: "sqlite:///{tmp_path}/cx.db"
sources:
  wh: {{type: sql, url: "sqlite:///{tmp_path}/wh.db"}}
metrics:
  - name: orders
    source: wh
    interval: 1h
    query: 'select ts, n from "t[red]x[/]" where ts >= :since and ts < :until'
    timestamp: ts
    value: n
""")
    out = CliRunner().invoke(app, ["backfill", "-c", str(path), "--metric", "orders",
                                   "--start", "2026-01-05", "--end", "2026-01-06"],
                             env={"COLUMNS": "300"})
    assert out.exit_code == 1, out.output
    assert "no such table: t[red]x[/]" in out.output
    assert "Traceback" not in out.output


def test_cli_backfill_range_without_a_complete_bucket_is_an_error(tmp_path) -> None:
    """Half an hour of an hourly metric floored to no bucket and printed a success with 0
    chunks and 0 rows, as if the source had no data."""
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    out = CliRunner().invoke(app, ["backfill", "-c", str(path), "--metric", "orders",
                                   "--start", "2026-01-05T10:00Z", "--end", "2026-01-05T10:30Z"],
                             env={"COLUMNS": "300"})
    assert out.exit_code == 2
    assert "holds no complete 1h bucket of orders" in out.output


def test_cli_backfill_interrupted_says_what_is_stored(tmp_path, monkeypatch) -> None:
    """Ctrl-C ended a backfill with no word of what was kept or how to finish."""
    import monitor.backfill as bf

    write_history(tmp_path)
    path = tmp_path / "cx.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    real = bf.create_source
    calls = iter(range(100))

    def interrupted_at_the_third_chunk(name, config):
        src = real(name, config)
        fetch = src.fetch

        def fetch_or_stop(request):
            if next(calls) == 2:
                raise KeyboardInterrupt
            return fetch(request)

        src.fetch = fetch_or_stop
        return src

    monkeypatch.setattr(bf, "create_source", interrupted_at_the_third_chunk)
    out = CliRunner().invoke(app, ["backfill", "-c", str(path), "--metric", "orders", "--start",
                                   "2026-01-05T00:00Z", "--end", "2026-01-07T00:00Z",
                                   "--chunk", "12h"], env={"COLUMNS": "200"})
    assert out.exit_code == 130, out.output
    assert ("backfill of orders interrupted: points stored up to 2026-01-06 00:00 UTC; re-run "
            "the same command to complete") in " ".join(out.output.split())
    store = Store.open(f"sqlite:///{tmp_path}/cx.db")
    assert len(store.load_points(metric="orders")) == 24 * 3  # the two chunks done are kept
    store.close()
