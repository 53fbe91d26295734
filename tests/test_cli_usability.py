"""The command line as a new user meets it: ``-`` for stdin/stdout, one-line usage errors
(exit 2) instead of tracebacks, help without ``<bool>`` or stray backticks, ``--version``,
anomaly ids that can be found, and error lines that a pipe does not see hard-wrapped."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.model import Anomaly, Direction, Series
from monitor.store import Store

runner = CliRunner()
NAB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nab"


def series_csv(n: int = 60, bad: dict[int, str] | None = None) -> str:
    ts = pd.date_range("2026-01-05", periods=n, freq="h", tz="UTC")
    values = [f"{10 + np.sin(i / 4):.3f}" for i in range(n)]
    for i, text in (bad or {}).items():
        values[i] = text
    lines = ["timestamp,value", *(f"{t:%Y-%m-%dT%H:%M:%SZ},{v}" for t, v in zip(
        ts, values, strict=True))]
    return "\n".join(lines) + "\n"


def test_score_dash_reads_stdin_and_writes_clean_csv_to_stdout() -> None:
    res = runner.invoke(app, ["score", "-d", "surprise", "-i", "-"], input=series_csv())
    assert res.exit_code == 0, res.output
    out = pd.read_csv(io.StringIO(res.stdout))  # stdout is the CSV alone
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
    assert len(out) == 60
    assert "scored 60 rows -> stdout" in res.stderr
    assert not Path("-").exists()


def test_score_keeps_the_other_input_columns_after_the_score() -> None:
    """A label column was silently dropped: comparing scores with labels meant a join."""
    text = series_csv().splitlines()
    rows = ["label,timestamp,value"] + [f"{i % 2},{line}" for i, line in enumerate(text[1:])]
    res = runner.invoke(app, ["score", "-d", "surprise"], input="\n".join(rows) + "\n")
    assert res.exit_code == 0, res.output
    out = pd.read_csv(io.StringIO(res.stdout))
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert out["label"].tolist() == [i % 2 for i in range(60)]


def test_score_defaults_are_stdin_and_stdout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["score", "-d", "surprise"], input=series_csv(10))
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("timestamp,value,anomaly_score")
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_score_reports_repeated_timestamps_and_scores_only_the_first(tmp_path: Path) -> None:
    """A second value for a time already seen is counted, named by row and left unscored;
    the remaining rows score exactly as the file without the repeats."""
    lines = series_csv(40).splitlines()
    dup = [*lines[:11], lines[10].replace(",", ",9", 1)[:-1] + "99", *lines[11:]]
    # line 12 repeats line 11's timestamp with another value (header = line 1)
    src, dst, ref_src, ref = (tmp_path / n for n in ("d.csv", "o.csv", "c.csv", "r.csv"))
    src.write_text("\n".join(dup) + "\n")
    ref_src.write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["score", "-d", "surprise", "-i", str(src), "-o", str(dst)])
    assert res.exit_code == 0, res.output
    assert ("1 line(s) repeat an earlier line's timestamp (line 12): only the first line of each "
            "time is fed to the detector") in res.stderr
    assert "not a number" not in res.stderr
    out = pd.read_csv(dst)
    assert len(out) == 41 and out["anomaly_score"].isna().tolist() == [i == 10 for i in range(41)]
    assert runner.invoke(app, ["score", "-d", "surprise", "-i", str(ref_src), "-o",
                               str(ref)]).exit_code == 0
    np.testing.assert_array_equal(out["anomaly_score"].dropna(), pd.read_csv(ref)["anomaly_score"])


def test_score_says_when_the_first_value_of_a_repeated_time_is_not_a_number() -> None:
    lines = series_csv(40).splitlines()
    lines[11] = lines[11].split(",")[0] + ",abc"  # line 12: the first value at its time
    dup = [*lines[:12], lines[11].split(",")[0] + ",7", *lines[12:]]  # line 13 repeats it
    res = runner.invoke(app, ["score", "-d", "surprise"], input="\n".join(dup) + "\n")
    assert res.exit_code == 0, res.output
    assert "1 value(s) not a number (line 12)" in res.stderr
    assert ("1 line(s) repeat an earlier line's timestamp (line 13): only the first line of each "
            "time is fed to the detector, the repeats are not (empty anomaly_score); at 1 of "
            "these times the first line is not a number either (line 12), so that time has no "
            "score") in res.stderr
    assert "was scored" not in res.stderr
    assert pd.read_csv(io.StringIO(res.stdout))["anomaly_score"].isna().sum() == 2


def test_score_skips_and_reports_lines_with_extra_fields(tmp_path: Path) -> None:
    """A line with more fields than the header is counted, named by its line in the file and
    left out; the others score as the file without it (a blank line is counted as a line)."""
    lines = series_csv(40).splitlines()
    bad = [*lines[:5], lines[5] + ",extra", "", *lines[6:20], lines[20] + ",x,y", *lines[21:]]
    src, dst, ref_src, ref = (tmp_path / n for n in ("b.csv", "o.csv", "c.csv", "r.csv"))
    src.write_text("\n".join(bad) + "\n")
    ref_src.write_text("\n".join([*lines[:5], *lines[6:20], *lines[21:]]) + "\n")
    res = runner.invoke(app, ["score", "-d", "surprise", "-i", str(src), "-o", str(dst),
                              "--interval", "1h"])
    assert res.exit_code == 0, res.output
    assert ("2 line(s) have more fields than the header (lines 6, 22): skipped (not scored, "
            "not in the output)") in res.stderr
    assert "scored 38 rows" in res.stderr
    assert runner.invoke(app, ["score", "-d", "surprise", "-i", str(ref_src), "-o", str(ref),
                               "--interval", "1h"]).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(dst), pd.read_csv(ref))


def test_score_warns_when_interval_does_not_match_the_data() -> None:
    res = runner.invoke(app, ["score", "-d", "surprise", "--interval", "5m"], input=series_csv())
    assert res.exit_code == 0
    assert "warning: --interval 5m but the data's median step is 1h" in res.stderr
    quiet = runner.invoke(app, ["score", "-d", "surprise", "--interval", "1h"],
                          input=series_csv())
    assert "warning" not in quiet.stderr


def test_score_says_which_rows_came_during_warm_up() -> None:
    """A 0 written during warm-up is 'not scored yet'; the user is told how many rows that is,
    and, when nothing could be scored at all, how much history the detector needs."""
    res = runner.invoke(app, ["score", "-d", "novelty"], input=series_csv(60))
    assert res.exit_code == 0
    assert "41 row(s) up to 2026-01-06T16:00:00Z came while novelty was warming up" in res.stderr
    none = runner.invoke(app, ["score", "-d", "robust_seasonal"], input=series_csv(60))
    assert none.exit_code == 0
    assert "no row was scored yet: robust_seasonal was still warming up" in none.stderr
    assert "it needs 1w of history" in none.stderr
    assert ": all 60 scored rows have anomaly_score 0\n" in none.stderr
    assert (pd.read_csv(io.StringIO(none.stdout))["anomaly_score"] == 0).all()


def test_score_warm_up_hint_suggests_only_settings_that_shorten_it() -> None:
    """``-d seasonal_baseline -p warmup=1d`` scored nothing in 4 days and was told "it needs
    1d of history; shorter: --param warmup=1d, or --param season=day": the need was a week
    (weekly slots) and the first suggestion was what it had. The hint is now worked out for
    the type and params given, and following it scores."""
    four_days = series_csv(96)
    res = runner.invoke(app, ["score", "-d", "seasonal_baseline", "-p", "warmup=1d"],
                        input=four_days)
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert "(it needs 1w of history; shorter: --param season=day): all 96 scored rows" in err
    default = runner.invoke(app, ["score", "-d", "seasonal_baseline"], input=four_days)
    assert "shorter: --param season=day --param warmup=1d)" in " ".join(default.stderr.split())
    hinted = runner.invoke(app, ["score", "-d", "seasonal_baseline", "-p", "warmup=1d", "-p",
                                 "season=day"], input=four_days)
    assert hinted.exit_code == 0 and "no row was scored yet" not in hinted.stderr
    assert (pd.read_csv(io.StringIO(hinted.stdout))["anomaly_score"] > 0).any()


def test_score_warm_up_message_counts_only_the_rows_it_scored() -> None:
    """"every anomaly_score is 0" was said of a file whose skipped rows (unreadable timestamp,
    a value that is not a number, a repeated time) have an empty anomaly_score: the message
    counts the scored rows and says how many were skipped, and why."""
    lines = series_csv(60).splitlines()
    lines[3] = "yesterday," + lines[3].split(",")[1]  # line 4: not a time
    lines[8] = "," + lines[8].split(",")[1]  # line 9: no timestamp
    lines[20] = lines[20].split(",")[0] + ",abc"  # line 21: not a number
    lines.insert(31, lines[30])  # line 32 repeats line 31's time
    res = runner.invoke(app, ["score", "-d", "robust_seasonal"], input="\n".join(lines) + "\n")
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert ("no row was scored yet: robust_seasonal was still warming up at the last row (it "
            "needs 1w of history; shorter: --param warmup=1d, or --param season=day): all 57 "
            "scored rows have anomaly_score 0 (4 rows skipped: 2 unreadable timestamp, 1 "
            "repeated timestamp, 1 value not a number, empty anomaly_score)") in err
    assert ("scored 57 of 61 rows -> stdout (4 rows skipped: 2 unreadable timestamp, "
            "1 repeated timestamp, 1 value not a number, empty anomaly_score)") in err
    scores = pd.read_csv(io.StringIO(res.stdout))["anomaly_score"]
    assert (scores == 0).sum() == 57 and scores.isna().sum() == 4


def test_score_checks_the_output_directory_before_scoring(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(series_csv())
    res = runner.invoke(app, ["score", "-i", str(src), "-o", str(tmp_path / "no" / "o.csv")])
    assert res.exit_code == 2
    assert "no directory" in res.output and "Traceback" not in res.output
    assert "scored" not in res.output


def test_score_reports_non_numeric_values_and_scores_them_as_missing(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(series_csv(bad={5: "abc", 9: ""}))
    res = runner.invoke(app, ["score", "-d", "surprise", "-i", str(src), "-o", str(dst)])
    assert res.exit_code == 0, res.output
    assert "2 value(s) not a number (lines 7, 11)" in res.stderr
    out = pd.read_csv(dst)
    assert out["anomaly_score"].isna().tolist() == [i in (5, 9) for i in range(60)]
    # the missing rows are skipped, not scored as 0: the other rows score as without them
    clean = tmp_path / "clean.csv"
    pd.read_csv(src).drop(index=[5, 9]).to_csv(clean, index=False)
    ref = tmp_path / "ref.csv"
    assert runner.invoke(app, ["score", "-d", "surprise", "-i", str(clean), "-o", str(ref),
                               "--interval", "1h"]).exit_code == 0
    res = runner.invoke(app, ["score", "-d", "surprise", "-i", str(src), "-o", str(dst),
                              "--interval", "1h"])
    np.testing.assert_array_equal(pd.read_csv(dst)["anomaly_score"].dropna(),
                                  pd.read_csv(ref)["anomaly_score"])


def test_score_skips_and_reports_timestamps_that_are_not_times(tmp_path: Path) -> None:
    """One unreadable timestamp stopped the whole run (exit 2) while a value that is not a
    number was counted and skipped: now such a row is skipped alike (not scored, not
    learned), counted and named on stderr, and written last with an empty anomaly_score."""
    lines = series_csv(40).splitlines()
    lines = ["label," + lines[0], *(f"r{i}," + line for i, line in enumerate(lines[1:]))]
    bad = list(lines)
    bad[6] = "r5,nope," + lines[6].split(",")[2]  # line 7
    bad[14] = "r13,,3.5"  # line 15: empty timestamp
    src, dst, ref_src, ref = (tmp_path / n for n in ("b.csv", "o.csv", "c.csv", "r.csv"))
    src.write_text("\n".join(bad) + "\n")
    ref_src.write_text("\n".join(line for i, line in enumerate(lines) if i not in (6, 14))
                       + "\n")
    res = runner.invoke(app, ["score", "-d", "surprise", "-i", str(src), "-o", str(dst),
                              "--interval", "1h"])
    assert res.exit_code == 0, res.output
    assert ("2 timestamp(s) not a time (lines 7, 15; first: 'nope'): skipped (not scored, not "
            "learned): empty anomaly_score, written after the rows that have a time"
            ) in res.stderr
    assert "not a number" not in res.stderr  # line 15's value is a number: counted once
    assert ("scored 38 of 40 rows -> " + str(dst) + " (2 rows skipped: 2 unreadable timestamp, "
            "empty anomaly_score)") in " ".join(res.stderr.split())
    out = pd.read_csv(dst, keep_default_na=False, dtype=str)
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert out["label"].tolist()[-2:] == ["r5", "r13"]
    assert out["timestamp"].tolist()[-2:] == ["nope", ""]
    assert out["anomaly_score"].tolist()[-2:] == ["", ""]
    assert (out["anomaly_score"][:-2] != "").all()
    # the other rows score as the file without those lines: they were not learned either
    assert runner.invoke(app, ["score", "-d", "surprise", "-i", str(ref_src), "-o", str(ref),
                               "--interval", "1h"]).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(dst).iloc[:-2], pd.read_csv(ref),
                                  check_dtype=False)
    one = runner.invoke(app, ["score", "-d", "surprise"],
                        input="\n".join([lines[0], *lines[1:4], "r9,2026-13-45,1"]) + "\n")
    assert one.exit_code == 0, one.output
    assert "1 timestamp(s) not a time (line 5: '2026-13-45'): skipped" in one.stderr


def test_score_sorts_rows_out_of_time_order(tmp_path: Path) -> None:
    """Rows out of time order are scored and written in time order, as the sorted file."""
    lines = series_csv(40).splitlines()
    rows = lines[1:]
    shuffled = [rows[i] for i in np.random.default_rng(3).permutation(len(rows))]
    res = runner.invoke(app, ["score", "-d", "surprise"],
                        input="\n".join([lines[0], *shuffled]) + "\n")
    ref = runner.invoke(app, ["score", "-d", "surprise"], input="\n".join(lines) + "\n")
    assert res.exit_code == 0 and ref.exit_code == 0, res.output
    assert res.stdout == ref.stdout


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["-i", "nope.csv"], None, "nope.csv does not exist"),
    (["-p", "bogus=1"], "", "--param: bogus: unknown setting"),
    (["-d", "surprise", "-p", "refractory=abc"], "", "refractory: Input should be"),
    (["-d", "nope"], "", "unknown detector 'nope'; valid:"),
    (["-d", "surprize"], "", "unknown detector 'surprize' (did you mean 'surprise'?); valid:"),
    (["-d", "surprise", "-p", "refractry=3"], "",
     "--param: refractry: unknown setting (did you mean 'refractory'?)"),
    # nothing close: the detector's settings are listed instead of a trip to the README
    (["-d", "surprise", "-p", "bogus=1"], "",
     "--param: bogus: unknown setting (settings: predict_halflife, scale_halflife, window,"),
    # worded as in a config file: one problem at the key, no "Value error, " prefix, no
    # union member paths such as history.int
    (["-d", "novelty", "-p", "history=abc"], "",
     "--param: history: Input should be a valid integer, unable to parse string as an "
     "integer or invalid duration 'abc'"),
    (["-d", "prophet", "-p", "holidays=XX"], "", "--param: holidays: unknown holidays country"),
    (["-i", "-"], "", "stdin: not a CSV"),
    (["-i", "-"], "time,value\n1,2\n",
     "lacks column(s) timestamp (its header: time, value; rename the time and value columns)"),
    (["-i", "-"], "timestamp,value\nyesterday-ish,2\n", "line 2: not a time"),
    (["-i", "-"], "timestamp,value\n\nnope,1\n,2\n",
     "stdin line 3: not a time: 'nope' (no line has a timestamp that can be read)"),
    # an epoch export (the files source reads Unix seconds; score reads ISO 8601 only)
    (["-i", "-"], "timestamp,value\n1767225600,3\n1767229200,4\n",
     "stdin line 2: not a time: '1767225600' (no line has a timestamp that can be read; Unix "
     "times are not read here: write ISO 8601, e.g. 2026-01-05T00:00Z)"),
    (["--interval", "0m"], "", "--interval: must be positive, got 0m"),
    (["-i", "-"], "timestamp;value\n2026-01-05;1\n",
     'lacks column(s) timestamp, value (the header is one column holding ";": the file must '
     "be comma-separated)"),
])
def test_score_usage_errors_are_one_line_exit_2(args, stdin, expected) -> None:
    res = runner.invoke(app, ["score", *args], input=stdin)
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output and "pydantic" not in res.output
    error = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1  # off a terminal: plain, not boxed, not wrapped


def test_score_help_lists_every_registered_detector() -> None:
    import detectors  # noqa: F401
    from detectors.registry import detector_types

    res = runner.invoke(app, ["score", "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0
    for name in detector_types():
        assert name in res.output, name
    assert {"novelty", "surprise"} <= set(detector_types())


def test_log_level_is_a_choice_everywhere(tmp_path: Path) -> None:
    """Every command with --log-level takes the standard level names in any case, and refuses
    anything else as a usage error (not a ValueError from logging once the command runs)."""
    import typer.main

    root = typer.main.get_command(app)
    with_level = []
    for path in _commands():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        if any("--log-level" in getattr(p, "opts", ()) for p in cmd.params):
            with_level.append(list(path))
    assert {("run",), ("demo",), ("alerts", "deliver"), ("serve-feedback",)} <= set(
        map(tuple, with_level))
    # and the root's, for every command: cxmon --log-level debug validate
    assert [] in with_level
    for path in with_level:
        args = ["-c", str(tmp_path / "x.yaml")] if path != ["demo"] else []
        res = runner.invoke(app, [*path, *args, "--log-level", "loud"] if path
                            else ["--log-level", "loud", "validate", *args])
        assert res.exit_code == 2, (path, res.output)
        assert ("'loud' is not one of 'debug', 'info', 'warning', 'error', 'critical'"
                in res.output), path
        assert "Traceback" not in res.output
    res = runner.invoke(app, ["alerts", "deliver", "-c", str(tmp_path / "x.yaml"),
                              "--log-level", "DEBUG"])
    assert "config file not found" in res.output  # accepted: it got as far as the config


def _commands(group=None, path=()):
    import typer.main

    group = group or typer.main.get_command(app)
    yield path
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, (*path, name))


def test_no_help_shows_a_bool_metavar_or_double_backticks() -> None:
    paths = list(_commands())
    assert ("bench", "nab") in paths and ("anomalies",) in paths
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, (path, res.output)
        assert "<bool>" not in res.output, path
        assert "<list[" not in res.output, path  # Python's spelling of "repeatable"
        assert "``" not in res.output, path
    add = runner.invoke(app, ["silence", "add", "--help"], env={"COLUMNS": "200"}).output
    assert "Who (default: $USER)" in add


def test_no_help_paragraph_breaks_its_lines_mid_sentence() -> None:
    """Typer's rich help keeps every newline of a docstring: ``backtest --help`` printed
    "the metric's `history:`" alone on a line and "before --start" on the next, at any
    terminal width. A paragraph is one line of help text unless it is a block (indented
    lines, such as validate's examples, or click's ``\\b``)."""
    import typer.main

    root = typer.main.get_command(app)
    checked = 0
    for path in _commands():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        for para in (cmd.help or "").split("\n\n")[1:]:  # typer joins the summary's
            lines = para.strip("\n").split("\n")
            if para.startswith("\b") or any(line[:1].isspace() for line in lines[1:]):
                continue
            checked += 1
            assert len(lines) == 1, (path, para)
    assert checked > 10
    out = runner.invoke(app, ["backtest", "--help"], env={"COLUMNS": "200"}).output
    assert "from the metric's `history:` before --start." in out


def test_every_example_in_a_help_text_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``Example:`` line of a command's help is what gets pasted: it goes through the
    command's own parser (options renamed since would fail here, not in the user's shell)."""
    import re
    import shlex

    import typer.main

    monkeypatch.setenv("CXMON_CONFIG", "cxmon.yaml")
    root = typer.main.get_command(app)
    parsed = []
    for path in _commands():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        block = (cmd.help or "").partition("Example")[2]
        for line in re.findall(r"^\W*(cxmon .*?)\s*$", block, re.M):
            words = shlex.split(re.split(r" >| #", line)[0])[1:]
            assert words[: len(path)] == list(path), line
            cmd.make_context(" ".join(["cxmon", *path]), words[len(path):])
            parsed.append(line)
    assert len(parsed) >= 5, parsed  # validate's four, backtest's, score's


def test_flags_off_by_default_have_no_no_twin_and_no_metavar_doubles_its_dots() -> None:
    """``--once`` needs no ``--no-once`` ("[default: no-once]" read as an option to pass);
    a repeatable argument's metavar names one value (click adds the ``...``: a metavar
    ``INCIDENT...`` showed ``INCIDENT......``); the log options look like every other
    option's value (``<level>``)."""
    import typer.main

    root = typer.main.get_command(app)
    for path in _commands():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        for p in cmd.params:
            if getattr(p, "is_flag", False) and p.default is False:
                assert not p.secondary_opts, (path, p.opts, p.secondary_opts)
            assert not (p.metavar or "").endswith("..."), (path, p.metavar)
    run = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "--no-once" not in run and "<level>" in run and "<format>" in run
    ack = runner.invoke(app, ["alerts", "ack", "--help"], env={"COLUMNS": "200"}).output
    assert "INCIDENT}..." in ack and "INCIDENT..." not in ack


def test_no_help_loses_a_bracketed_example_to_rich_markup() -> None:
    """Rich read ``split_by: [journey]`` in ``dashboards build --journey``'s help as a style
    tag and showed ``split_by:  label``: every ``[...]`` a command's or option's help writes
    must show."""
    import re

    import typer.main

    root = typer.main.get_command(app)
    checked = 0
    for path in _commands():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        helps = [cmd.help or "", *(getattr(p, "help", "") or "" for p in cmd.params)]
        brackets = [b.replace("\\[", "[") for h in helps
                    for b in re.findall(r"\\?\[[a-z_][^\]]*\]", h)]
        if not brackets:
            continue
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"})
        text = " ".join(res.output.replace("│", " ").split())
        for b in brackets:
            checked += 1
            assert " ".join(b.split()) in text, (path, b)
    assert checked  # dashboards build --journey at least


@pytest.mark.parametrize(("command", "shown"), [
    ("backtest", ["--start <time>", "--end <time>", "--metric <name>", "--no-feedback",
                  "Example: cxmon backtest -c cxmon.yaml --start 2026-01-01"]),
    ("score", ["--detector -d <type>", "--param -p <k=v>", "--interval <duration>",
               "Example: cxmon score -d surprise -i in.csv -o scored.csv"]),
])
def test_backtest_and_score_help_name_what_each_option_takes(command: str,
                                                             shown: list[str]) -> None:
    """``<str>`` and ``<list[str]>`` said nothing of what to type, and neither command's help
    had an example."""
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.replace("│", " ").split())
    for part in shown:
        assert part in text, part
    assert "<str>" not in text and "<list[str]>" not in text


@pytest.mark.parametrize(("command", "shown"), [
    (["backfill"], ["--metric <name>", "--start <time>", "--end <time>", "--chunk <duration>"]),
    (["demo"], ["--store <url>", "--anchor <time>"]),
    (["anomalies"], ["--metric <name>"]),
    (["rca"], ["--dimensions <columns>", "--at <time>", "--value <column>",
               "--denominator <column>"]),
    (["dashboards", "build"], ["--journey <journey>", "--prometheus-url <url>"]),
])
def test_help_names_what_each_option_takes(command: list[str], shown: list[str]) -> None:
    """They said ``<str>`` where backtest says ``<time>`` and ``<name>`` for the same things."""
    res = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.replace("│", " ").split())
    for part in shown:
        assert part in text, part
    assert "<str>" not in text


def test_command_lists_do_not_break_a_summary_mid_sentence() -> None:
    """A docstring's first paragraph spanning two source lines was shown with its line
    break in the group's command list (``... not sent: pending`` / ``(with the worker``)."""
    alerts = runner.invoke(app, ["alerts", "--help"], env={"COLUMNS": "250"}).output
    assert "notifications not sent: pending (with the worker holding them)" in alerts
    bench = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "250"}).output
    assert "fits per second, and precision / recall" in bench


def test_version_from_package_metadata() -> None:
    from importlib.metadata import version

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"cxmon {version('cxmon')}"


def test_config_errors_are_not_wrapped_off_a_terminal(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: sqlite:///x.db\nsources:\n  shop: {type: demo}\nmetrics:\n"
                   "  - {name: kpi, source: shop, query: checkout, value: started, "
                   "detectors: [" + "a_detector_name_that_is_long_enough_to_wrap" * 2 + "]}\n")
    res = runner.invoke(app, ["validate", "-c", str(cfg)], env={"COLUMNS": "80"})
    assert res.exit_code == 2
    line = next(s for s in res.stderr.splitlines() if "metrics[0].detectors[0]" in s)
    assert len(line) > 80 and "a_detector_name_that_is_long_enough_to_wrap" * 2 in line


def test_validate_refuses_urls_that_run_would_refuse(tmp_path: Path) -> None:
    """An unsupported store and a sql source's unusable url are config problems with their
    paths, found by validate rather than by the first tick of cxmon run."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: 'mysqlx://u:pw@h/db'\nsources:\n  dw: {type: sql, url: notaurl}\n"
                   "  dw2: {type: sql, url: 'nosuchdb://h/x'}\n  ok: {type: sql, url: "
                   "'sqlite://'}\nmetrics:\n  - {name: kpi, source: dw, query: q, value: v}\n")
    res = runner.invoke(app, ["validate", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert "3 problem(s)" in res.stderr
    assert "store.url: unsupported database 'mysqlx'" in res.stderr
    assert "sources.dw.url: not a SQLAlchemy URL" in res.stderr
    assert "sources.dw2.url: unknown database dialect 'nosuchdb'" in res.stderr
    assert "pw" not in res.stderr.replace("password", "")


@pytest.mark.parametrize(("anchor", "expected"), [
    ("BADVALUE", "'BADVALUE' is not a date"),
    ("2026-01-05T03:00Z", "'2026-01-05T03:00Z' is not at 00:00 UTC"),
])
def test_demo_anchor_errors_name_the_option_and_the_value(anchor: str, expected: str) -> None:
    res = runner.invoke(app, ["demo", "--once", "--anchor", anchor], env={"COLUMNS": "300"})
    assert res.exit_code == 2, res.output
    assert f"Invalid value for --anchor: {expected}" in res.output
    assert "expected a UTC date such as 2026-01-05" in res.output
    assert "demo.yaml" not in res.output and "***" not in res.output


def _store_with_anomaly(tmp_path: Path) -> tuple[Path, Anomaly]:
    db = tmp_path / "fb.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"store: sqlite:///{db}\nsources:\n  shop: {{type: demo}}\nmetrics:\n"
        "  - {name: kpi, source: shop, query: checkout, value: started}\n")
    store = Store.open(f"sqlite:///{db}")
    store.migrate()
    a = Anomaly(series='kpi{region="uk"}', metric="kpi", labels={"region": "uk"},
                timestamp=datetime(2026, 1, 5, tzinfo=UTC), value=3.0, expected=1.0,
                lower=0.5, upper=1.5, score=0.999999, severity=50, direction=Direction.UP,
                detector="default")
    with store.transaction() as tx:
        tx.ensure_series([Series("kpi", {"region": "uk"})])
        tx.add_anomalies([a])
    store.close()
    return cfg, a


def test_anomalies_lists_ids_that_feedback_accepts(tmp_path: Path) -> None:
    cfg, a = _store_with_anomaly(tmp_path)
    res = runner.invoke(app, ["anomalies", "-c", str(cfg), "--last", "5"])
    assert res.exit_code == 0, res.output
    header, row = res.stdout.splitlines()
    assert header.startswith("ID") and row.startswith(a.id)
    assert 'kpi{region="uk"}' in row and "2026-01-05 00:00" in row
    res = runner.invoke(app, ["feedback", row.split()[0], "not_anomaly", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    bad = runner.invoke(app, ["anomalies", "-c", str(cfg), "--metric", "nope"])
    assert bad.exit_code == 2 and "unknown metric 'nope'; defined: kpi" in bad.output
    typo = runner.invoke(app, ["anomalies", "-c", str(cfg), "--metric", "kpj"])
    assert typo.exit_code == 2
    assert "unknown metric 'kpj' (did you mean 'kpi'?); defined: kpi" in typo.output


def test_anomalies_shows_the_kind_and_no_value_for_a_silence(tmp_path: Path) -> None:
    from dataclasses import replace

    cfg, a = _store_with_anomaly(tmp_path)
    silent = replace(a, timestamp=datetime(2026, 1, 5, 1, tzinfo=UTC), kind="no_data",
                     detector="no_data", value=24.0, expected=0.0)
    store = Store.open(f"sqlite:///{tmp_path / 'fb.db'}")
    with store.transaction() as tx:
        tx.add_anomalies([silent])
    store.close()
    res = runner.invoke(app, ["anomalies", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    header, first, second = res.stdout.splitlines()
    assert "KIND" in header
    assert first.split()[4:7] == ["no_data", "-", "-"]  # not "24" vs "0"
    assert second.split()[4:7] == ["outlier", "3", "1"]


def test_anomalies_reads_a_rate_as_the_alert_did_with_its_stored_volume(
        tmp_path: Path) -> None:
    """A rate lists as 58.7% (not 0.587) with the volume the alert said ("from 1,204
    sessions"): the volume is stored with the anomaly, not lost after the tick."""
    db = tmp_path / "r.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"store: sqlite:///{db}\nsources:\n  shop: {{type: demo}}\nmetrics:\n"
        "  - {name: rate, source: shop, query: checkout, value: {ratio: [abandoned, started]},"
        " volume_unit: sessions}\n")
    store = Store.open(f"sqlite:///{db}")
    a = Anomaly(series='rate{region="uk"}', metric="rate", labels={"region": "uk"},
                timestamp=datetime(2026, 1, 5, tzinfo=UTC), value=0.587, expected=0.334,
                lower=0.3, upper=0.4, score=0.99, severity=50, direction=Direction.UP,
                detector="default", volume=1204.0)
    with store.transaction() as tx:
        tx.ensure_series([Series("rate", {"region": "uk"})])
        tx.add_anomalies([a])
    store.close()
    res = runner.invoke(app, ["anomalies", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    header, row = res.stdout.splitlines()
    assert "FROM" in header
    assert row.split()[5:9] == ["58.7%", "33.4%", "1,204", "sessions"]
    # feedback repeats which point it marked, as the alert said it: a wrong id shows at once
    marked = runner.invoke(app, ["feedback", a.id[:10], "not_anomaly", "-c", str(cfg)])
    assert marked.exit_code == 0, marked.output
    assert marked.stdout.splitlines()[1] == (
        '  rate · region=uk at 2026-01-05 00:00 UTC: 58.7% (expected 33.4%, from 1,204 '
        "sessions), severity 50")


def test_feedback_twice_stores_the_verdict_once(tmp_path: Path) -> None:
    """The same verdict again stores no second row (it would count twice as a stored
    verdict) and says so, exit 0; a different verdict is recorded beside the first."""
    cfg, a = _store_with_anomaly(tmp_path)
    first = runner.invoke(app, ["feedback", a.id, "not_anomaly", "-c", str(cfg)])
    assert first.exit_code == 0 and "already" not in first.output
    again = runner.invoke(app, ["feedback", a.id[:10], "not_anomaly", "-c", str(cfg),
                                "--note", "again"])
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == (
        f"{a.id} is already marked not_anomaly (feedback 1): nothing stored")
    assert "marked not_anomaly\n" not in again.stdout
    store = Store.open(f"sqlite:///{tmp_path / 'fb.db'}")
    try:
        assert [f["label"] for f in store.feedback_on(a.id)] == ["not_anomaly"]
    finally:
        store.close()
    other = runner.invoke(app, ["feedback", a.id, "confirmed", "-c", str(cfg)])
    assert other.exit_code == 0
    assert "feedback 2: " in other.output
    assert "already marked not_anomaly (feedback 1); both are kept" in other.output
    back = runner.invoke(app, ["feedback", a.id, "not_anomaly", "-c", str(cfg)])
    assert "feedback 3: " in back.output  # the verdict in force was confirmed: recorded
    store = Store.open(f"sqlite:///{tmp_path / 'fb.db'}")
    try:
        assert [f["label"] for f in store.feedback_on(a.id)] == [
            "not_anomaly", "confirmed", "not_anomaly"]
    finally:
        store.close()


def test_feedback_requires_config_and_quotes_the_unknown_id(tmp_path: Path) -> None:
    cfg, _ = _store_with_anomaly(tmp_path)
    res = runner.invoke(app, ["feedback", "deadbeef", "not_anomaly", "-c", str(cfg)])
    assert res.exit_code == 1
    assert "no anomaly with id 'deadbeef' (ids: cxmon anomalies)" in res.stderr
    res = runner.invoke(app, ["feedback", "deadbeef", "not_anomaly"])
    assert res.exit_code == 2 and "--config" in res.output


def test_feedback_names_a_bad_verdict_and_the_closest_one(tmp_path: Path) -> None:
    """The old message, "expected not_anomaly, expected or confirmed", read as four words."""
    cfg, _ = _store_with_anomaly(tmp_path)
    res = runner.invoke(app, ["feedback", "deadbeef", "notanomaly", "-c", str(cfg)])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert ("'notanomaly' is not a verdict; use one of not_anomaly, expected, confirmed "
            "(did you mean 'not_anomaly'?)") in text
    res = runner.invoke(app, ["feedback", "deadbeef", "wrong", "-c", str(cfg)])
    assert res.exit_code == 2 and "did you mean" not in res.output
    assert "'wrong' is not a verdict" in " ".join(res.output.split())


def test_bench_default_doc_is_the_checkouts_not_the_working_directory() -> None:
    from monitor.bench.report import default_doc

    root = Path(__file__).resolve().parents[1]
    assert default_doc() == root / "docs" / "benchmarks.md"


@pytest.mark.parametrize(("args", "expected"), [
    (["--data", "{nab}", "--file", "nope.csv"], "--file: not in the NAB labels: ['nope.csv']"),
    (["--data", "{tmp}"], "has no labels/combined_windows.json"),
    (["--data", "{nab}", "--detector", "nope"], "--detector: unknown detector 'nope'"),
    (["--data", "{nab}", "--param", "bogus=1"], "--param: bogus: unknown setting"),
    (["--data", "{nab}", "--also", "nope"], "--also: unknown detector 'nope'"),
    (["--data", "{nab}", "--json", "{tmp}/no/x.json"], "--json: no directory"),
])
def test_bench_nab_usage_errors_are_one_line_exit_2(tmp_path: Path, args, expected) -> None:
    labels = tmp_path / "nab" / "labels"
    labels.mkdir(parents=True)
    (labels / "combined_windows.json").write_text("{}")
    args = [a.format(nab=tmp_path / "nab", tmp=tmp_path) for a in args]
    res = runner.invoke(app, ["bench", "nab", *args])
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output


@pytest.mark.skipif(not NAB.exists(), reason="NAB data set not present")
def test_bench_nab_subset_says_docs_not_updated_and_reports_progress(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    res = runner.invoke(app, ["bench", "nab", "--data", str(NAB), "--detector", "surprise",
                              "--file", "realTraffic/speed_7578.csv", "--jobs", "1",
                              "--doc", str(doc)])
    assert res.exit_code == 0, res.output
    assert "docs not updated (subset run" in res.stderr
    assert "surprise: 1/1 files, 1,127/1,127 rows done" in res.stderr
    assert not doc.exists()


def test_readme_routing_examples_are_true(tmp_path: Path) -> None:
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("```yaml\nalerting:\n  route:\n    receiver: cx-ops")
    block = yaml.safe_load(readme[start + len("```yaml\n"):readme.index("```", start + 8)])
    block["alerting"]["receivers"] = [{"name": n, "console": {}}
                                      for n in ("cx-ops", "checkout", "pager")]
    block.update(store=f"sqlite:///{tmp_path / 'rt.db'}", sources={"shop": {"type": "demo"}},
                 metrics=[{"name": "kpi", "source": "shop", "query": "checkout",
                           "value": "started"}])
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(yaml.safe_dump(block))
    examples = re.findall(r"cxmon routes test -c cxmon\.yaml ((?:[\w-]+=[\w-]+ ?)+)\s*"
                          r"#\s*-> ([\w,-]+)", readme)
    assert len(examples) >= 2
    for labels, expected in examples:
        res = runner.invoke(app, ["routes", "test", "-c", str(cfg), *labels.split()])
        assert res.exit_code == 0, res.output
        assert res.stdout.strip() == expected, labels


def test_logs_are_plain_single_lines_off_a_terminal() -> None:
    import logging
    import sys

    from monitor.cli import _setup_logging

    _setup_logging("info")  # pytest's stderr is not a terminal
    long = "x" * 150
    saved, sys.stderr = sys.stderr, io.StringIO()  # the handler follows sys.stderr
    try:
        logging.getLogger("cxmon.test").error("tick failed: %s", long)
        lines = sys.stderr.getvalue().splitlines()
    finally:
        sys.stderr = saved
        logging.getLogger().handlers.clear()
    assert len(lines) == 1 and lines[0].endswith(f"ERROR cxmon.test: tick failed: {long}")


def test_plain_log_lines_are_stamped_in_utc_whatever_the_local_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every time in the messages is UTC; a line stamped in local time beside them misled."""
    import logging
    import time

    from monitor.cli import _setup_logging

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        _setup_logging("info")  # pytest's stderr is not a terminal: plain lines
        record = logging.LogRecord("cxmon.tick", logging.INFO, __file__, 1, "tick", None, None)
        record.created, record.msecs = 0.25, 250.0
        line = logging.getLogger().handlers[0].format(record)
    finally:
        logging.getLogger().handlers.clear()
        monkeypatch.delenv("TZ")
        time.tzset()
    assert line == "1970-01-01T00:00:00.250Z INFO cxmon.tick: tick"


def test_feedback_without_a_store_fails_and_creates_none(tmp_path: Path) -> None:
    cfg, _ = _store_with_anomaly(tmp_path)
    (tmp_path / "fb.db").unlink()
    res = runner.invoke(app, ["feedback", "deadbeef", "not_anomaly", "-c", str(cfg)])
    assert res.exit_code == 1 and "no store at" in res.stderr
    assert not (tmp_path / "fb.db").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["alerts", "status"], ["anomalies"],
                                     ["silence", "query"]])
def test_read_commands_on_an_empty_postgres_schema_fail_and_create_nothing(
        tmp_path: Path, pg_url: str, command: list[str]) -> None:
    # a mistyped search_path: the schema is there but holds no cxmon tables; migrating it
    # would report "pending 0 · dead 0" from a store that never saw an alert
    import sqlalchemy as sa

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store: '{pg_url}'\nsources:\n  shop: {{type: demo}}\nmetrics:\n"
                   "  - {name: kpi, source: shop, query: checkout, value: started}\n")
    res = runner.invoke(app, [*command, "-c", str(cfg)])
    assert res.exit_code == 1, res.output
    assert "no store at" in res.stderr and "search_path" in res.stderr
    engine = sa.create_engine(pg_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    with Store.open(pg_url):  # once `cxmon run` has created it, the command works
        pass
    res = runner.invoke(app, [*command, "-c", str(cfg)])
    assert res.exit_code == 0, res.output


def test_feedback_accepts_a_unique_id_prefix(tmp_path: Path) -> None:
    import sqlite3

    cfg, a = _store_with_anomaly(tmp_path)
    res = runner.invoke(app, ["feedback", a.id[:8], "not_anomaly", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    assert f"{a.id} marked not_anomaly" in res.stdout
    short = runner.invoke(app, ["feedback", a.id[:7], "not_anomaly", "-c", str(cfg)])
    assert short.exit_code == 1 and "no anomaly with id" in short.stderr
    assert "a prefix needs at least 8 characters" in short.stderr
    store = Store.open(f"sqlite:///{tmp_path / 'fb.db'}")
    b = Anomaly(series=a.series, metric="kpi", labels=a.labels,
                timestamp=datetime(2026, 1, 6, tzinfo=UTC), value=3.0, expected=1.0,
                lower=0.5, upper=1.5, score=0.999999, severity=50, direction=Direction.UP,
                detector="default")
    with store.transaction() as tx:
        tx.add_anomalies([b])
    store.close()
    with sqlite3.connect(tmp_path / "fb.db") as conn:  # two ids sharing 8 characters
        conn.execute("UPDATE anomalies SET id = ? WHERE id = ?", ("abcd1234" + b.id[8:], b.id))
        conn.execute("UPDATE feedback SET anomaly_id = ? WHERE anomaly_id = ?",
                     ("abcd1234" + a.id[8:], a.id))
        conn.execute("UPDATE anomalies SET id = ? WHERE id = ?", ("abcd1234" + a.id[8:], a.id))
    res = runner.invoke(app, ["feedback", "abcd1234", "confirmed", "-c", str(cfg)])
    assert res.exit_code == 1 and "prefix 'abcd1234' is ambiguous" in res.stderr


def test_score_output_that_cannot_be_written_is_one_line_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write refused by the file system (permissions, a full disk) was a traceback."""
    def refuse(self, path, **kw):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(path))

    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n" + "".join(
        f"2026-01-05T{h:02d}:00Z,{h % 5}\n" for h in range(24)))
    monkeypatch.setattr(pd.DataFrame, "to_csv", refuse)
    res = runner.invoke(app, ["score", "--detector", "surprise", "--input", str(src),
                              "--output", str(tmp_path / "out.csv")])
    assert res.exit_code == 1, res.output
    assert "cannot write" in res.output and "Permission denied" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_score_reports_progress_on_long_series() -> None:
    """Scoring thousands of points (Prophet refits, novelty's search) takes minutes: the
    scorer reports its progress, which `cxmon score` shows as a bar on a terminal."""
    from monitor.cli_score import score_frame

    n = 250
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=n, freq="h"),
                          "value": [str(i % 7) for i in range(n - 1)] + ["x"]})
    calls: list[tuple[int, int]] = []
    score_frame(frame, "surprise", {}, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, n - 1) and calls[-1] == (n - 1, n - 1)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) >= 3


def test_the_config_can_come_from_cxmon_config(tmp_path: Path) -> None:
    """``export CXMON_CONFIG=cxmon.yaml`` once instead of ``-c`` on every command; an
    explicit ``-c`` still wins, and neither given says how to give one."""
    good = tmp_path / "cxmon.yaml"
    good.write_text("sources: {s: {type: demo}}\n"
                    "metrics: [{name: m, source: s, query: q, value: count}]\n")
    out = runner.invoke(app, ["validate"], env={"CXMON_CONFIG": str(good)})
    assert out.exit_code == 0, out.output
    assert "cxmon.yaml: 1 source(s), 1 metric(s)" in out.output
    out = runner.invoke(app, ["validate", "-c", str(tmp_path / "other.yaml")],
                        env={"CXMON_CONFIG": str(good)})
    assert out.exit_code != 0 and "other.yaml" in out.output
    out = runner.invoke(app, ["validate"], env={"CXMON_CONFIG": None})
    assert out.exit_code == 2 and "--config" in out.output and "CXMON_CONFIG" in out.output


def test_demo_of_one_day_says_day(tmp_path: Path) -> None:
    """``cxmon demo --once --days 1`` said "Replaying 1 days"."""
    res = runner.invoke(app, ["demo", "--once", "--days", "1", "--anchor", "2026-01-05",
                              "--store", f"sqlite:///{tmp_path / 'd.db'}"],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Replaying 1 day of" in res.output


def test_readme_first_config_validates_and_backtests(tmp_path: Path) -> None:
    """The README's "Your first config" is a working files config: its CSV header and YAML
    validate as written, and a backtest over generated rows in that form finds a spike."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Your first config"):readme.index("## Using it")]
    csv_head = re.search(r"```csv\n(.*?)```", section, re.S).group(1).splitlines()[0]
    config = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert csv_head == "hour,channel,contacts"
    (tmp_path / "exports").mkdir()
    hours = pd.date_range("2026-01-01", "2026-01-29", freq="h", tz="UTC", inclusive="left")
    rng = np.random.default_rng(3)
    rows = [csv_head]
    for t in hours:
        for channel, base in (("app", 60), ("web", 40)):
            level = base * (1 + 0.5 * np.sin(t.hour / 24 * 2 * np.pi))
            if channel == "app" and t == pd.Timestamp("2026-01-25T14:00Z"):
                level *= 4
            rows.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{channel},{rng.poisson(level)}")
    (tmp_path / "exports" / "contacts.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "cxmon.yaml"
    path.write_text(config + f"store: sqlite:///{tmp_path / 'cxmon.db'}\n")
    result = runner.invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 detector(s), 1 receiver(s)" in result.output  # what the README says it counts
    result = runner.invoke(app, ["backtest", "-c", str(path), "--start", "2026-01-15",
                                 "--end", "2026-01-29"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2026-01-25 14:00" in result.output
    assert "no rows for this range" not in result.output
    # a range the file does not cover is said to be unscored, not a quiet "no anomalies"
    result = runner.invoke(app, ["backtest", "-c", str(path), "--start", "2025-01-15",
                                 "--end", "2025-01-29"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ("contact_volume: the source returned no rows for this range, so nothing was "
            "scored; check --start/--end (UTC) against the times in your data") in " ".join(
                result.output.split())


def test_score_warns_that_slash_dates_are_read_month_first_where_they_can_be() -> None:
    """'04/05/2026' (4 May in most of Europe) was scored as 5 April, '13/05/2026' as 13 May:
    a day-first export had its days silently mixed up."""
    rows = ["timestamp,value"] + [f"{d:02d}/05/2026 10:00,{d}" for d in range(1, 20)]
    res = runner.invoke(app, ["score", "-d", "surprise"], input="\n".join(rows) + "\n")
    assert res.exit_code == 0, res.output
    text = " ".join(res.stderr.split())
    assert ("warning: timestamps such as '01/05/2026 10:00' are ambiguous: read month first "
            "(2026-01-05) where that is a date and day first otherwise ('13/05/2026 10:00' is "
            "2026-05-13), so a day-first file gets its days mixed up; pass --date-order dmy "
            "(or mdy), or write ISO 8601") in text
    # dashes are read the same way (04-05-2026 was 5 April too), and warned about alike
    dashes = [row.replace("/", "-") for row in rows]
    res = runner.invoke(app, ["score", "-d", "surprise"], input="\n".join(dashes) + "\n")
    assert res.exit_code == 0, res.output
    assert ("timestamps such as '01-05-2026 10:00' are ambiguous: read month first "
            "(2026-01-05)") in " ".join(res.stderr.split())
    iso = ["timestamp,value"] + [f"2026-05-{d:02d}T10:00,{d}" for d in range(1, 20)]
    res = runner.invoke(app, ["score", "-d", "surprise"], input="\n".join(iso) + "\n")
    assert res.exit_code == 0 and "ambiguous" not in res.stderr
    # told which way: every row read day first, in day order, no warning
    res = runner.invoke(app, ["score", "-d", "surprise", "--date-order", "dmy"],
                        input="\n".join(rows) + "\n")
    assert res.exit_code == 0 and "ambiguous" not in res.stderr
    out = [line.split(",") for line in res.stdout.strip().splitlines()[1:]]
    assert [v for _, v, _ in out] == [str(d) for d in range(1, 20)]  # 01/05 .. 19/05 in order
    assert out[0][0].startswith("2026-05-01") and out[-1][0].startswith("2026-05-19")
    bad = runner.invoke(app, ["score", "--date-order", "ymd"], input="\n".join(rows) + "\n")
    assert bad.exit_code == 2 and "dmy or mdy" in bad.output


def _anomaly_at(t: datetime) -> Anomaly:
    return Anomaly('c{journey="checkout"}', "c", {"journey": "checkout"}, t, 0.02, 0.24, 0.15,
                   0.34, 0.999, 30, Direction.DOWN, "default")


def test_tick_log_says_a_first_ticks_history_anomalies_were_not_alerted(
        caplog: pytest.LogCaptureFixture) -> None:
    from monitor.cli_run import _log_tick
    from monitor.pipeline import TickResult

    newest = datetime(2026, 11, 29, 11, tzinfo=UTC)
    first = TickResult("c", since=datetime(2026, 11, 22, tzinfo=UTC), until=newest,
                       silent_before=newest - pd.Timedelta("1h"),
                       anomalies=[_anomaly_at(datetime(2026, 11, 28, 7, tzinfo=UTC)),
                                  _anomaly_at(newest - pd.Timedelta("1h"))])
    later = TickResult("c", since=newest, until=newest + pd.Timedelta("1h"),
                       anomalies=[_anomaly_at(newest)])
    with caplog.at_level("INFO", logger="cxmon.tick"):
        _log_tick(first)
        _log_tick(later)
    said = [r.getMessage() for r in caplog.records]
    assert said[0].endswith("anomalies=2 (1 in the learned history: stored, not alerted; "
                            "cxmon anomalies lists them)")
    assert said[1].endswith("anomalies=1")  # a later tick alerts on all it finds


@pytest.mark.parametrize(("argv", "said"), [
    (["validate", "--log-level", "debug"],
     "No such option: --log-level: validate has none of its own; put it before the command: "
     "cxmon --log-level <level> validate ..."),
    (["alerts", "status", "--log-format=json"],
     "No such option: --log-format: alerts status has none of its own; put it before the "
     "command: cxmon --log-format <format> alerts status ..."),
])
def test_a_global_log_option_after_a_command_without_its_own_says_where_it_goes(
        tmp_path: Path, argv: list[str], said: str) -> None:
    config = tmp_path / "cxmon.yaml"
    config.write_text("sources: {shop: {type: demo}}\nmetrics: []\n")
    res = runner.invoke(app, [*argv, "-c", str(config)], env={"COLUMNS": "300"})
    assert res.exit_code == 2
    assert said in " ".join(res.output.split())
