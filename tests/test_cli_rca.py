"""``cxmon rca`` on CSV files: snapshot with expected values, history, bad input."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import pandas as pd
from click.testing import Result
from typer.testing import CliRunner

from monitor.cli import app

runner = CliRunner()


def _snapshot_csv(path: Path) -> Path:
    rows = []
    for a, b, c in product(["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2"]):
        exp = 100.0
        act = 250.0 if (a, b) == ("a1", "b2") else exp
        rows.append({"a": a, "b": b, "c": c, "actual": act, "expected": exp})
    rows = [r for r in rows if (r["a"], r["b"], r["c"]) != ("a3", "b3", "c2")]  # missing leaf
    rows.append({"a": "a3", "b": "b3", "c": "c1", "actual": 0.0, "expected": 0.0})  # zero
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _snapshot(tmp_path: Path, csv_text: str, dimensions: str = "channel,region") -> Result:
    """``cxmon rca`` in snapshot mode (actual vs expected per channel x region) on a CSV."""
    src = tmp_path / "c.csv"
    src.write_text(csv_text)
    return runner.invoke(app, ["rca", "--input", str(src), "--dimensions", dimensions,
                               "--actual", "actual", "--expected", "expected"])


def test_rca_snapshot_prints_ranked_root_causes(tmp_path: Path) -> None:
    csv = _snapshot_csv(tmp_path / "snap.csv")
    res = runner.invoke(app, ["rca", "--input", str(csv), "--dimensions", "a,b,c",
                              "--actual", "actual", "--expected", "expected", "--top", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["root_causes"][0]["elements"] == [{"a": "a1", "b": "b2"}]
    assert 0 < out["root_causes"][0]["score"] <= 1
    scores = [rc["score"] for rc in out["root_causes"]]
    assert len(scores) <= 2 and scores == sorted(scores, reverse=True)


def _rca_funnel(tmp_path: Path, rows: list[dict]) -> Result:
    """``cxmon rca`` with history on hourly funnel rows (t, channel, region, started,
    abandoned), the anomalous hour being 04:00."""
    path = tmp_path / "funnel.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    res = runner.invoke(app, ["rca", "--input", str(path), "--dimensions", "channel,region",
                              "--time-column", "t", "--at", "2026-01-05T04:00Z",
                              "--value", "abandoned", "--denominator", "started"])
    assert res.exit_code == 0, res.output
    return res


def test_rca_with_history_and_denominator(tmp_path: Path) -> None:
    rows = []
    for h in range(5):
        for ch, rg in product(["web", "app"], ["uk", "de", "fr"]):
            rate = 0.55 if (h == 4 and ch == "app" and rg == "uk") else 0.3
            started = 0 if (ch, rg) == ("web", "fr") else 1000  # a zero denominator
            rows.append({"t": f"2026-01-05T0{h}:00:00Z", "channel": ch, "region": rg,
                         "started": started, "abandoned": rate * started})
    res = _rca_funnel(tmp_path, rows)
    top = json.loads(res.stdout)["root_causes"][0]
    assert top["elements"] == [{"channel": "app", "region": "uk"}]
    assert top["share"] == 1.0


def test_rca_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    csv = _snapshot_csv(tmp_path / "snap.csv")
    cases = [
        (["--actual", "actual"], "go together"),
        (["--actual", "nope", "--expected", "expected"], "missing column"),
        (["--value", "actual"], "--time-column"),
        (["--value", "actual", "--time-column", "t", "--at", "2026-01-01"], "missing column"),
        (["--actual", "actual", "--expected", "expected", "--top", "0"], "--top"),
    ]
    for extra, message in cases:
        res = runner.invoke(app, ["rca", "--input", str(csv), "--dimensions", "a,b", *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert message in res.output, (extra, res.output)
    res = runner.invoke(app, ["rca", "--input", str(tmp_path / "none.csv"), "--dimensions",
                              "a", "--actual", "x", "--expected", "y"])
    assert res.exit_code == 2 and "none.csv does not exist" in res.output
    res = runner.invoke(app, ["rca", "--input", str(tmp_path), "--dimensions", "a",
                              "--actual", "x", "--expected", "y"])
    assert res.exit_code == 2 and "is a directory" in res.output
    assert "Traceback" not in res.output


def test_rca_dash_reads_stdin(tmp_path: Path) -> None:
    """``--input -`` looked for a file named '-' although ``cxmon score --input -`` reads
    stdin: both read it now, with the same answer as from the file."""
    csv = _snapshot_csv(tmp_path / "snap.csv")
    args = ["--dimensions", "a,b,c", "--actual", "actual", "--expected", "expected"]
    res = runner.invoke(app, ["rca", "--input", "-", *args], input=csv.read_text())
    assert res.exit_code == 0, res.output
    from_file = runner.invoke(app, ["rca", "--input", str(csv), *args])
    assert json.loads(res.stdout) == json.loads(from_file.stdout)
    assert json.loads(res.stdout)["root_causes"][0]["elements"] == [{"a": "a1", "b": "b2"}]
    empty = runner.invoke(app, ["rca", "--input", "-", *args], input="")
    assert empty.exit_code == 2 and "cannot read stdin" in empty.output, empty.output
    long = runner.invoke(app, ["rca", "--input", "-", *args],
                         input="a,b,c,actual,expected\nx,y,z,1,1\nx,y,w,1,1,9\n")
    assert long.exit_code == 2
    assert "stdin: 1 line(s) have more fields than the header (line 3)" in long.output


def test_rca_rejects_values_that_are_not_numbers(tmp_path: Path) -> None:
    """'abc' in a measure column is an error (exit 2), not an empty answer with exit 0."""
    src = tmp_path / "c.csv"
    src.write_text("channel,region,actual,expected\napp,uk,abc,10\nweb,uk,10,10\n")
    res = CliRunner().invoke(app, ["rca", "--input", str(src), "--dimensions", "channel,region",
                                   "--actual", "actual", "--expected", "expected"])
    assert res.exit_code == 2
    assert "column 'actual' is not a number in 1 row(s), first data row 1: 'abc'" in res.output


def test_rca_refuses_lines_with_more_fields_than_the_header(tmp_path: Path) -> None:
    """pandas took the first column as an index when line 2 had a field too many: every
    column shifted and the answer silently named nothing."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\napp,uk,200,100,5\napp,us,100,100\n"
                              "web,uk,100,100\nweb,us,100,100,7\n")
    assert res.exit_code == 2, res.output
    assert "2 line(s) have more fields than the header (lines 2, 5)" in res.output


def test_rca_refuses_values_too_large_to_analyse(tmp_path: Path) -> None:
    """1e308 crashed with an OverflowError traceback in the noise estimate."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\napp,uk,1e308,100\napp,us,1e308,100\n"
                              "web,uk,100,100\n")
    assert res.exit_code == 2, res.output
    assert "column 'actual' has 2 value(s) beyond +-1e+150, first data row 1: 1e+308" \
        in res.output


def test_rca_header_without_rows_is_an_error(tmp_path: Path) -> None:
    """A header-only file answered 'nothing stands out from the noise' with exit 0."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\n")
    assert res.exit_code == 2, res.output
    assert "has a header but no data rows" in res.output


def test_rca_names_a_semicolon_separated_file(tmp_path: Path) -> None:
    """'missing column(s): channel, region, actual, expected' did not say why."""
    res = _snapshot(tmp_path, "channel;region;actual;expected\napp;uk;1;100\n")
    assert res.exit_code == 2, res.output
    assert 'holding ";": the file must be comma-separated' in res.output


def test_rca_missing_column_says_the_close_name_and_the_columns(tmp_path: Path) -> None:
    """``--dimensions channel,regoin`` said only "missing column(s): regoin"."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\napp,uk,1,100\n",
                    dimensions="channel,regoin")
    assert res.exit_code == 2, res.output
    assert ("missing column(s): regoin (did you mean 'region'?); columns: channel, region, "
            "actual, expected") in res.output


def test_rca_names_the_column_and_row_of_a_bad_time(tmp_path: Path) -> None:
    """'cannot parse time 'garbage'' did not say where it was."""
    src = tmp_path / "h.csv"
    src.write_text("ts,channel,contacts\n2026-01-05T10:00Z,app,5\ngarbage,app,5\n"
                   "2026-01-05T11:00Z,app,9\n")
    res = runner.invoke(app, ["rca", "--input", str(src), "--dimensions", "channel",
                              "--time-column", "ts", "--at", "2026-01-05T11:00Z",
                              "--value", "contacts"])
    assert res.exit_code == 2, res.output
    assert "column 'ts' is not a time in 1 row(s), first data row 2: 'garbage'" in res.output


def test_rca_reports_empty_measure_cells(tmp_path: Path) -> None:
    """An empty cell counts as 0; it was not reported at all, unlike 'abc'."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\napp,uk,200,100\napp,us,,100\n"
                              "web,uk,100,100\nweb,us,100,\n")
    assert res.exit_code == 0, res.output
    assert "note: column 'actual' has 1 empty cell(s), first data row 2: counted as 0" \
        in res.stderr
    assert "note: column 'expected' has 1 empty cell(s), first data row 4" in res.stderr
    json.loads(res.stdout)  # stdout stays clean JSON


def test_rca_says_why_it_names_nothing(tmp_path: Path) -> None:
    """An empty answer with exit 0 left users guessing; a short history that cannot be
    matched by time of day is named too."""
    rows = [{"ts": f"2026-01-05T{h:02d}:00Z", "channel": c, "region": r,
             "contacts": 10 + h % 3}
            for h in range(6) for c, r in product(["app", "web"], ["uk", "de"])]
    csv = tmp_path / "h.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    res = runner.invoke(app, ["rca", "--input", str(csv), "--dimensions", "channel,region",
                              "--time-column", "ts", "--at", "2026-01-05T05:00Z",
                              "--value", "contacts"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["root_causes"] == []
    assert out["note"].startswith("no combination of dimension values stands out")
    assert out["expected_from"] == ("all history (5 points; fewer than 3 at the same time of "
                                    "day, so hours of different levels are mixed)")


def test_rca_names_empty_dimension_cells_instead_of_nan(tmp_path: Path) -> None:
    """An empty channel cell became a leaf named 'nan', silently."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\napp,uk,100,100\n,uk,900,100\n"
                              "web,uk,100,100\napp,us,100,100\n,us,100,100\nweb,us,100,100\n")
    assert res.exit_code == 0, res.output
    assert "note: column 'channel' has 2 empty cell(s), first data row 2: a value named " \
        "'(empty)'" in res.stderr
    assert "nan" not in res.stdout and "(empty)" in res.stdout


def test_rca_numbers_carry_no_float_noise(tmp_path: Path) -> None:
    """Sums of decimal values (0.1 + 0.2) print as 0.3, not 0.30000000000000004."""
    rows = ["channel,region,actual,expected"]
    for ch, rg in product(["web", "app", "kiosk"], ["uk", "de", "fr", "es"]):
        act = "0.1" if (ch, rg) != ("app", "uk") else "9.1"
        rows.append(f"{ch},{rg},{act},0.1")
    rows.append("app,uk,0.2,0.2")  # a second row of the same leaf: summed
    res = _snapshot(tmp_path, "\n".join(rows) + "\n")
    assert res.exit_code == 0, res.output
    top = json.loads(res.stdout)["root_causes"][0]
    assert top["elements"] == [{"channel": "app", "region": "uk"}]
    contribution = top["contributions"][0]
    assert contribution["expected"] == 0.3 and contribution["actual"] == 9.3
    assert "0000000" not in res.stdout


def test_rca_says_when_the_change_is_spread_over_everything(tmp_path: Path) -> None:
    # every leaf rose by 30 % (plus a little noise): before, the note said nothing stood out
    # from the noise, which reads as "no change", or (with enough leaves) named a few values
    wobble = [3, -2, 1, -3, 2, 0, -1, 4, -4, 1, 2, -2, 0, 3, -1, 1] * 4
    rows = [{"channel": f"c{i}", "region": f"r{j}", "actual": 1300 + 10 * wobble[8 * i + j],
             "expected": 1000} for i in range(8) for j in range(8)]
    src = tmp_path / "even.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    res = runner.invoke(app, ["rca", "--input", str(src), "--dimensions", "channel,region",
                              "--actual", "actual", "--expected", "expected"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["root_causes"] == []
    assert "spread over all dimension values" in out["note"]


def test_rca_says_when_a_rate_moved_with_its_volume_mix(tmp_path: Path) -> None:
    """Drop-off 0.2 on the app and 0.5 on the web, unchanged; the web's share of sessions
    went from 20% to 70%, so the total rose from 0.26 to 0.41. Before, `rca` named nothing
    and said the leaves' noise hid everything."""
    rows = []
    for h in range(5):
        web = 700 if h == 4 else 200
        for ch, rg in product(["web", "app"], ["uk", "de"]):
            started = (web if ch == "web" else 1000 - web) // 2
            rate = 0.5 if ch == "web" else 0.2
            rows.append({"t": f"2026-01-05T0{h}:00:00Z", "channel": ch, "region": rg,
                         "started": started, "abandoned": rate * started})
    res = _rca_funnel(tmp_path, rows)
    out = json.loads(res.stdout)
    mix = out["mix_shift"]
    assert (mix["dimension"], mix["value"]) == ("channel", "web")
    assert (mix["share_usual"], mix["share_now"], mix["rate_usual"]) == (0.2, 0.7, 0.5)
    assert (mix["rate_overall"], mix["rate_now"], mix["portion"]) == (0.26, 0.41, 1.0)
    assert "volume moved" in out["note"] and out["root_causes"] == []


def test_rca_names_a_long_line_after_a_good_first_line(tmp_path: Path) -> None:
    """A field too many on a later line surfaced as pandas' 'Error tokenizing data. C error'."""
    res = _snapshot(tmp_path, "channel,region,actual,expected\napp,uk,200,100\n"
                              "web,uk,100,100,7\n")
    assert res.exit_code == 2, res.output
    assert "1 line(s) have more fields than the header (line 3)" in res.output
    assert "tokenizing" not in res.output


def test_rca_refuses_a_dimension_that_is_also_a_measure(tmp_path: Path) -> None:
    """``--dimensions actual --actual actual`` was a TypeError traceback."""
    src = tmp_path / "c.csv"
    src.write_text("channel,actual,expected\napp,20,10\nweb,10,10\n")
    res = CliRunner().invoke(app, ["rca", "--input", str(src), "--dimensions", "channel,actual",
                                   "--actual", "actual", "--expected", "expected"])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "column 'actual' is both in --dimensions and --actual" in res.output
