"""``cxmon bench retention``: the figures add up (what was written, what each retention run
deleted), the plans are reported, and a small run never replaces
the published figures unless asked to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.store import retention as store_retention
from tests.conftest import pg_base_url, require_postgres

runner = CliRunner()
SERIES, DAYS, METRICS = 10, 2, 2
PER_DAY = 288


def run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "retention.json"
    result = runner.invoke(app, ["bench", "retention", "--series", str(SERIES), "--days",
                                 str(DAYS), "--metrics", str(METRICS), "--json", str(out),
                                 *extra], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def check(f: dict) -> None:
    assert f["written"]["points"] == SERIES * PER_DAY * DAYS
    assert f["written"]["ticks"] == METRICS * PER_DAY * DAYS
    # the catch-up deletes the first day, the steady run the 6 hours after it
    assert f["catch_up"]["points"] == SERIES * PER_DAY
    assert f["steady"]["points"] == SERIES * PER_DAY // 4
    assert f["catch_up"]["ticks"] == METRICS * PER_DAY
    assert f["catch_up"]["notifications"] == f["catch_up"]["delivery_receipts"] > 0
    assert set(f["plans"]) == set(store_retention.TABLES)
    assert f["bytes"]["points"] > 0 and f["bytes_per_point"] > 0


def test_bench_retention_on_sqlite(tmp_path: Path) -> None:
    fig = run(tmp_path)
    check(fig["sqlite"])
    assert "postgresql" not in fig


def test_a_small_run_writes_the_document_only_when_asked(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    result = runner.invoke(app, ["bench", "retention", "--series", "5", "--days", "2",
                                 "--metrics", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "docs not updated: the published figures are for --series 500" in result.output
    run(tmp_path, "--doc", str(doc))
    text = doc.read_text()
    assert "<!-- bench:retention -->" in text and "| sqlite | points |" in text


@pytest.mark.postgres
def test_bench_retention_on_postgres(tmp_path: Path) -> None:
    """(The scratch schema is ``bench tick``'s, whose test checks it is dropped: checking
    here too would race with that test on another worker.)"""
    require_postgres()
    fig = run(tmp_path, "--postgres", pg_base_url())
    check(fig["postgresql"])
    assert fig["postgresql"]["written"] == fig["sqlite"]["written"]
