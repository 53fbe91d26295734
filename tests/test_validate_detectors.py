"""``cxmon validate``'s detector count and its warning for a detector no metric lists: the
implicit ``default`` was counted when no metric used it (4 defined read "5 detector(s)"), and
a tuned detector left out of every metric's ``detectors:`` scored nothing without a word."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import parse_config

runner = CliRunner()

SOURCES = "sources: {shop: {type: demo}}\n"
DETECTORS = """detectors:
  fast: {type: robust_seasonal}
  slow: {type: robust_seasonal}
  tails: {type: seasonal_baseline}
  spare: {type: surprise}
"""


def _metric(name: str, detectors: str | None = None) -> str:
    listed = f", detectors: [{detectors}]" if detectors is not None else ""
    return (f"  - {{name: {name}, source: shop, query: checkout, timestamp: ts, "
            f"value: started, history: 4w{listed}}}\n")


def _validate(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "cxmon.yaml"
    path.write_text(text)
    res = runner.invoke(app, ["validate", "-c", str(path)], env={"COLUMNS": "300"})
    return res.exit_code, " ".join(res.output.split())


def test_four_defined_and_no_default_used_count_four(tmp_path: Path) -> None:
    code, out = _validate(tmp_path, SOURCES + DETECTORS + "metrics:\n"
                          + _metric("a", "fast, slow") + _metric("b", "tails, spare"))
    assert code == 0, out
    assert "2 metric(s), 4 detector(s)," in out
    assert "warning" not in out


def test_the_implicit_default_counts_when_a_metric_uses_it(tmp_path: Path) -> None:
    code, out = _validate(tmp_path, SOURCES + DETECTORS + "metrics:\n"
                          + _metric("a", "fast, slow") + _metric("b", "tails, spare")
                          + _metric("c"))
    assert code == 0, out
    assert "3 metric(s), 5 detector(s)," in out


def test_an_unused_detector_is_a_warning_naming_it(tmp_path: Path) -> None:
    code, out = _validate(tmp_path, SOURCES + DETECTORS + "metrics:\n"
                          + _metric("a", "fast, slow") + _metric("b", "tails"))
    assert code == 0, out  # a warning, not an error
    assert "1 metric(s)" not in out and "4 detector(s)," in out  # defined: counted
    assert ("warning detectors.spare: no metric lists 'spare' in its detectors, so it "
            "scores nothing") in out
    assert out.count("warning") == 1  # the implicit default, unused, is no warning


def test_a_written_default_no_metric_uses_is_one_too(tmp_path: Path) -> None:
    text = (SOURCES + "detectors:\n  default: {type: surprise}\n  fast: "
            "{type: robust_seasonal}\nmetrics:\n" + _metric("a", "fast"))
    code, out = _validate(tmp_path, text)
    assert code == 0, out
    assert "2 detector(s)," in out and "warning detectors.default: no metric lists" in out
    assert "(every metric lists its detectors)" in out
    # written just as the implicit one is: that one (a dumped config reads the same)
    code, out = _validate(tmp_path, text.replace("{type: surprise}", "{type: robust_seasonal}"))
    assert code == 0 and "1 detector(s)," in out and "warning" not in out, out


def test_a_detector_of_a_paused_metric_is_used() -> None:
    cfg = parse_config(SOURCES + DETECTORS + "metrics:\n" + _metric("a", "fast, slow, tails")
                       + _metric("b", "spare").replace("}\n", ", enabled: false}\n"),
                       env={})
    assert cfg.unused_detectors() == []
    assert cfg.used_detectors() == ["fast", "slow", "tails", "spare"]
