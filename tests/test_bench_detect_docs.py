"""A small ``cxmon bench detect`` run prints its figures but leaves the published ones alone."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app


def test_small_speed_run_does_not_overwrite_the_published_figures(tmp_path: Path) -> None:
    runner = CliRunner()
    doc = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    before = doc.read_text()
    res = runner.invoke(app, ["bench", "detect", "--series", "50", "--ticks", "5",
                              "--no-accuracy"])
    assert res.exit_code == 0, res.output
    assert "docs not updated: the published figures are for --series 100,000" in res.stderr
    assert doc.read_text() == before
    out = tmp_path / "b.md"
    res = runner.invoke(app, ["bench", "detect", "--series", "50", "--ticks", "5",
                              "--no-accuracy", "--doc", str(out)])
    assert res.exit_code == 0, res.output
    assert "| robust_seasonal | 50 x 5 |" in out.read_text()


def test_small_rca_run_does_not_overwrite_the_published_figures(tmp_path: Path,
                                                                monkeypatch) -> None:
    """``cxmon bench rca --cases 1 --leaves 200`` prints its table but leaves the checkout's
    published rca section alone; with --doc it writes there."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("<!-- bench:rca -->\n## rca\npublished\n<!-- /bench:rca -->\n")
    monkeypatch.setattr("monitor.bench.report.default_doc", lambda: doc)
    args = ["bench", "rca", "--cases", "1", "--leaves", "200"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "docs not updated: the published figures are for --cases 15" in res.stderr
    assert "published" in doc.read_text()
    out = tmp_path / "b.md"
    res = CliRunner().invoke(app, [*args, "--doc", str(out)])
    assert res.exit_code == 0, res.output
    assert "Mean F1" in out.read_text()


def test_accuracy_table_shows_a_missing_figure_as_a_dash() -> None:
    """No alerts has no precision and no incident found no time to detect: the table said
    ``None`` (Python's), in the terminal and in docs/benchmarks.md."""
    from monitor.bench.detect import accuracy_row

    row = accuracy_row("surprise", {"alerts": 0, "precision": None, "recall": 0.0,
                                    "incidents": 5, "median_ttd_hours": None})
    assert row == "| surprise | 0 | - | 0.0 (of 5) | - |"
    assert "None" not in (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
                          ).read_text().split("<!-- bench:detect-demo -->")[1].split("<!--")[0]


def test_small_run_leaves_the_accuracy_section_alone_too(monkeypatch, tmp_path: Path) -> None:
    """``cxmon bench detect --series 1000 --ticks 50`` said "docs not updated" for the speed
    figures, then rewrote the checkout's detect-demo section, stamped with that command."""
    import monitor.bench.detect as bench

    written: list[Path | None] = []
    monkeypatch.setattr(bench, "demo_accuracy", lambda t, params: {
        "alerts": 1, "precision": 1.0, "recall": 1.0, "incidents": 5, "median_ttd_hours": 0.0})
    monkeypatch.setattr("monitor.bench.report.update_section",
                        lambda name, body, doc: written.append(doc))
    args = ["bench", "detect", "--series", "20", "--ticks", "5"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert written == [] and "section detect-demo" in res.stderr
    res = CliRunner().invoke(app, [*args, "--no-speed"])  # how the section is published
    assert res.exit_code == 0, res.output
    assert written == [None]


def test_dask_run_reports_fits_per_second_beside_the_in_process_figure(tmp_path: Path) -> None:
    """``--dask N``: Prophet fits through the Dask executor on a local cluster, in the same run
    as the in-process fits, with the ratio, in its own section (detect-dask)."""
    import json

    import pytest

    pytest.importorskip("distributed")
    doc, out = tmp_path / "b.md", tmp_path / "b.json"
    res = CliRunner().invoke(app, ["bench", "detect", "--no-speed", "--no-accuracy",
                                   "--dask", "1", "--fits", "2", "--doc", str(doc),
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    figures = json.loads(out.read_text())["dask"]
    assert figures["dask"]["workers"] == 1 and figures["dask"]["failed"] == 0
    assert figures["inline"]["fits"] == figures["dask"]["fits"] == 2
    assert figures["ratio"] == round(figures["dask"]["fits_per_s"]
                                     / figures["inline"]["fits_per_s"], 2)
    text = doc.read_text()
    assert "<!-- bench:detect-dask -->" in text and "through the Dask executor" in text
    assert f"{figures['ratio']}x in process" in text
