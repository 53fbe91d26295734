"""``type: files``: CSV, Parquet and JSON lines; a path or a glob; new and changed files
picked up at the next poll; bad timestamps counted once; unreadable files are fatal."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sources.base import FatalSourceError, MissingSourceError, PollRequest, RetriableSourceError
from sources.files import FilesSource, FilesSourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def rows(start_hour: int, hours: int) -> pd.DataFrame:
    ts = [T0 + timedelta(hours=h) for h in range(start_hour, start_hour + hours)]
    return pd.DataFrame({"ts": [t.isoformat() for t in ts], "channel": "app",
                         "contacts": range(hours)})


def src(path: str, **kw) -> FilesSource:
    return FilesSource("exports", FilesSourceConfig(type="files", path=path, **kw))


def req(hours: int = 24, query: str | None = None) -> PollRequest:
    return PollRequest("contacts", T0, T0 + timedelta(hours=hours), query, {}, "ts")


def test_csv_parquet_jsonl_by_extension(tmp_path) -> None:
    rows(0, 2).to_csv(tmp_path / "a.csv", index=False)
    rows(2, 2).to_parquet(tmp_path / "b.parquet")
    rows(4, 2).to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    df = src(str(tmp_path / "*")).fetch(req())
    assert len(df) == 6
    assert sorted(pd.to_datetime(df["ts"], utc=True, format="mixed")) == [
        pd.Timestamp(T0 + timedelta(hours=h)) for h in range(6)]


def test_new_and_changed_files_are_picked_up(tmp_path) -> None:
    s = src("exports/*.csv", base_dir=str(tmp_path))
    (tmp_path / "exports").mkdir()
    with pytest.raises(RetriableSourceError):  # nothing yet: the cursor waits
        s.fetch(req())
    rows(0, 3).to_csv(tmp_path / "exports" / "day1.csv", index=False)
    assert len(s.fetch(req())) == 3
    rows(3, 2).to_csv(tmp_path / "exports" / "day2.csv", index=False)
    assert len(s.fetch(req())) == 5
    path = tmp_path / "exports" / "day2.csv"
    rows(3, 4).to_csv(path, index=False)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert len(s.fetch(req())) == 7
    os.remove(tmp_path / "exports" / "day1.csv")
    assert len(s.fetch(req())) == 4


def test_range_filter_and_metric_query_glob(tmp_path) -> None:
    rows(0, 10).to_csv(tmp_path / "x.csv", index=False)
    rows(0, 1).to_csv(tmp_path / "other.csv", index=False)
    s = src(str(tmp_path / "*.csv"))
    window = PollRequest("c", T0 + timedelta(hours=2), T0 + timedelta(hours=5),
                         str(tmp_path / "x.csv"), {}, "ts")
    df = s.fetch(window)
    assert len(df) == 3


def test_unix_second_timestamps_are_in_range(tmp_path) -> None:
    """A column of Unix seconds was read as nanoseconds (1970): no row was ever in range."""
    df = rows(0, 3).assign(ts=[int((T0 + timedelta(hours=h)).timestamp()) for h in range(3)])
    df.to_csv(tmp_path / "a.csv", index=False)
    assert len(src(str(tmp_path / "a.csv")).fetch(req())) == 3


def test_bad_timestamps_counted_once_per_file_version(tmp_path) -> None:
    df = rows(0, 3)
    df.loc[1, "ts"] = "yesterday-ish"
    df.to_csv(tmp_path / "a.csv", index=False)
    s = src(str(tmp_path / "a.csv"))
    assert len(s.fetch(req())) == 2
    assert len(s.fetch(req())) == 2
    assert s.skipped["bad_timestamp"] == 1


def test_bad_timestamps_are_logged_with_the_first_value(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="sources.files")  # whatever earlier tests set
    df = rows(0, 3)
    df.loc[1, "ts"] = "notatime"
    df.to_csv(tmp_path / "a.csv", index=False)
    s = src(str(tmp_path / "a.csv"))
    s.fetch(req())
    s.fetch(req())
    said = [r.getMessage() for r in caplog.records if "no readable time" in r.getMessage()]
    assert len(said) == 1 and "a.csv: 1 row(s)" in said[0] and "'notatime'" in said[0]


def test_a_csv_line_with_extra_fields_is_skipped_counted_and_logged(tmp_path, caplog) -> None:
    """One malformed line must not stop the metric (it used to fail every tick)."""
    caplog.set_level(logging.WARNING, logger="sources.files")
    path = tmp_path / "a.csv"
    rows(0, 3).to_csv(path, index=False)
    with path.open("a") as f:
        f.write(f"{(T0 + timedelta(hours=3)).isoformat()},app,5,extra,fields\n")
        f.write(f"{(T0 + timedelta(hours=4)).isoformat()},app,6\n")
    s = src(str(path))
    assert len(s.fetch(req())) == 4
    assert len(s.fetch(req())) == 4
    assert s.skipped["bad_line"] == 1
    said = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert said == ["source exports: a.csv: 1 malformed line(s) skipped "
                    "(line 5: expected 3 fields, saw 5)"]


def test_empty_file_being_written_is_ignored(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("")
    assert len(src(str(tmp_path / "*.csv")).fetch(req())) == 0


@pytest.mark.parametrize("name,content,needle", [
    ("a.xlsx", "x", "format"),
    ("a.csv", "when,value\n2026-01-05,1\n", "no column 'ts'"),
    ("a.parquet", "not parquet", "cannot read"),
])
def test_unusable_files_are_fatal(tmp_path, name: str, content: str, needle: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(FatalSourceError) as info:
        src(str(tmp_path / name)).fetch(req())
    assert "exports" in str(info.value) and needle in str(info.value)


def test_a_misspelt_timestamp_column_gets_a_did_you_mean(tmp_path) -> None:
    """``timestamp: hours`` for a file whose column is ``hour``: the value column's message
    had a did-you-mean, the timestamp's listed the columns only."""
    (tmp_path / "a.csv").write_text("t_s,channel,contacts\n2026-01-05T00:00Z,app,1\n")
    with pytest.raises(FatalSourceError) as info:
        src(str(tmp_path / "a.csv")).fetch(req())
    assert str(info.value) == ("source exports: a.csv has no column 'ts' (did you mean 't_s'?) "
                               "(metric contacts's timestamp); columns: t_s, channel, contacts")


def test_a_missing_plain_path_is_missing_not_fatal_and_names_the_full_path(tmp_path) -> None:
    """Later ticks retry a missing file, so it is no fatal error (an alert on fatal errors
    paged for a drop folder that was briefly empty); it is retried like a retriable one."""
    s = src("exports/contacts.csv", base_dir=str(tmp_path))
    with pytest.raises(MissingSourceError) as info:
        s.fetch(req())
    assert isinstance(info.value, RetriableSourceError)
    assert not isinstance(info.value, FatalSourceError)
    full = tmp_path / "exports" / "contacts.csv"
    assert str(info.value) == (f"source exports: file {full} does not exist "
                               f"('exports/contacts.csv' is relative to {tmp_path}); "
                               "metric contacts waits for it")
    (tmp_path / "exports").mkdir()
    rows(0, 2).to_csv(full, index=False)
    assert len(s.fetch(req())) == 2


def test_a_glob_matching_no_file_fails_the_poll_so_the_cursor_waits(tmp_path) -> None:
    """Returning "no data" let a first tick move the cursor past the whole history, so a
    typo in the glob lost it for good even after the fix."""
    s = src("exports/*.csv", base_dir=str(tmp_path))
    with pytest.raises(MissingSourceError) as info:
        s.fetch(req())
    full = tmp_path / "exports" / "*.csv"
    assert str(info.value) == (
        f"source exports: no file matches {full} ('exports/*.csv' is relative to {tmp_path}) "
        "yet; metric contacts waits for one (nothing is skipped)")
    (tmp_path / "exports").mkdir()
    rows(0, 2).to_csv(tmp_path / "exports" / "a.csv", index=False)
    assert len(s.fetch(req())) == 2


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path, monkeypatch) -> None:
    from monitor.config import load_config

    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    rows(0, 3).to_csv(conf / "data" / "contacts.csv", index=False)
    (conf / "cx.yaml").write_text("""
sources:
  a: {type: files, path: data/contacts.csv}
  b: {type: files, path: contacts.csv, base_dir: data}
  c: {type: files, path: contacts.csv, base_dir: /elsewhere}
metrics: [{name: contacts, source: a, value: contacts, timestamp: ts}]
""")
    monkeypatch.chdir(tmp_path)  # another working directory, as under cron
    cfg = load_config("conf/cx.yaml", env={})
    for name in "ab":
        s = FilesSource(name, cfg.sources[name])  # type: ignore[arg-type]
        assert len(s.fetch(req())) == 3, name
    assert cfg.sources["c"].base_dir == "/elsewhere"  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["drop/contacts.csv", "drop/*.csv"])
def test_a_missing_file_is_counted_as_missing_and_logged_as_a_warning(
    tmp_path, caplog, path: str
) -> None:
    """A missing file was ``kind="fatal"`` in ``cxmon_source_poll_errors_total`` and an
    ERROR in the log, though the next tick retries it: an alert on fatal errors paged."""
    from prometheus_client import CollectorRegistry

    from dashboards.telemetry import Telemetry
    from monitor.clock import FakeClock
    from monitor.config import parse_config
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    cfg = parse_config(f"""
store: sqlite:///{tmp_path / 's.db'}
sources: {{exports: {{type: files, path: "{path}", base_dir: "{tmp_path}"}}}}
metrics: [{{name: contacts, source: exports, interval: 1h, timestamp: ts, value: contacts}}]
""")
    store = Store.open(cfg.store.url)
    tel = Telemetry(cfg, store, registry=CollectorRegistry())
    pipeline = Pipeline(cfg, store, clock=FakeClock(T0 + timedelta(hours=3)), notifiers={},
                        sources=tel.sources)
    caplog.set_level(logging.WARNING)
    try:
        result = pipeline.tick("contacts")
        tel.on_tick(result)
        text = tel.exporter.render().decode()
    finally:
        pipeline.close()
        store.close()
    assert result.error
    labels = 'source="exports",type="files"'
    assert f'cxmon_source_poll_errors_total{{kind="missing",{labels}}} 1.0' in text
    assert 'kind="fatal"' not in text
    failed = [r for r in caplog.records if r.getMessage().startswith("tick of contacts failed")]
    assert [r.levelno for r in failed] == [logging.WARNING]
    assert "(retried on the next tick)" in failed[0].getMessage()


def test_a_backfill_stops_at_a_missing_file_without_retrying(tmp_path) -> None:
    """No later tick in a backfill, and a file does not appear within seconds of backoff."""
    from monitor.backfill import fetch_retrying

    waits: list[float] = []
    with pytest.raises(MissingSourceError):
        fetch_retrying(src(str(tmp_path / "none.csv")), req(), sleep=waits.append)
    assert waits == []


@pytest.mark.parametrize("bad", ['{"ts": "2026-01-05T03:00:00+00:00", "chan',  # cut short
                                 "null", "[1, 2]", '"text"', "not json"])
def test_an_unreadable_jsonl_line_is_skipped_and_counted_not_the_whole_file(
        tmp_path, bad: str) -> None:
    """One bad line (an export still being appended, a stray ``null``) made the whole file
    a fatal error, or an uncaught TypeError; a CSV's malformed line is skipped and counted."""
    rows(0, 3).to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    with open(tmp_path / "c.jsonl", "a") as fh:
        fh.write(bad + "\n")
    s = src(str(tmp_path / "c.jsonl"))
    df = s.fetch(req())
    assert len(df) == 3 and list(df["contacts"]) == [0, 1, 2]
    assert s.skipped["bad_line"] == 1
    s.fetch(req())  # unchanged file: counted once per version
    assert s.skipped["bad_line"] == 1


def test_a_file_that_is_not_json_lines_at_all_is_still_fatal(tmp_path) -> None:
    """A pretty-printed JSON file is not one object per line: every line bad must not read
    as an empty export (and the message says what the format needs)."""
    (tmp_path / "c.json").write_text('[\n  {\n    "ts": "2026-01-05T03:00:00Z",\n'
                                     '    "contacts": 1\n  }\n]\n')
    with pytest.raises(FatalSourceError, match=r"cannot read c\.json as jsonl.*one object per"):
        src(str(tmp_path / "c.json")).fetch(req())
