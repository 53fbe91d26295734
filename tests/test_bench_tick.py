"""``cxmon bench tick``: whole ticks on every store, figures that add up, scratch stores
removed, and a small run never replacing the published figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from monitor.cli import app
from tests.conftest import pg_base_url, require_postgres

runner = CliRunner()
# 100 leaves = 10 channels x 10 regions x 1 reason; every subset of the 3 dimensions is a
# series: 1 + 10 + 10 + 1 + 100 + 10 + 10 + 100
SERIES = 242


def run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "tick.json"
    result = runner.invoke(app, ["bench", "tick", "--leaves", "100", "--ticks", "2",
                                 "--history", "1d", "--json", str(out), *extra],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "docs not updated: the published figures are for --leaves 10,000" in result.output
    return json.loads(out.read_text())


def test_bench_tick_on_sqlite_counts_every_rollup_and_the_history(tmp_path: Path) -> None:
    fig = run(tmp_path)
    f = fig["sqlite"]
    assert f["leaves"] == 100 and f["series"] == SERIES
    assert f["history_points"] == SERIES * 24  # the first tick stores a day of every series
    assert f["tick_max_seconds"] >= f["tick_median_seconds"] > 0
    assert "postgresql" not in fig and fig["peak_rss_mb"] > 0
    # a restart restores every series' detector state, which each tick rewrites
    assert f["restart_tick_seconds"] > 0
    assert abs(f["checkpoint_bytes"] / SERIES - f["checkpoint_bytes_per_series"]) <= 0.5
    assert f["checkpoint_bytes_per_series"] > 100
    assert f["ticks_checkpointed"] == 2 and f["checkpoint_bytes_per_tick"] == f[
        "checkpoint_bytes"]


def test_bench_tick_with_sparse_checkpoints_writes_less_and_replays_on_restart(
        tmp_path: Path) -> None:
    out = tmp_path / "tick.json"
    result = runner.invoke(app, ["bench", "tick", "--leaves", "100", "--ticks", "3",
                                 "--history", "1d", "--interval", "30m",
                                 "--checkpoint-every", "1h", "--json", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "docs not updated: the published figures are for --interval 1h" in result.output
    f = json.loads(out.read_text())["sqlite"]
    assert f["history_points"] == SERIES * 48 and f["checkpoint_every"] == "1h"
    # steady ticks at +30m, +1h (due: checkpoints), +1h30m; the restart replays that one
    assert f["ticks_checkpointed"] == 1 and f["restart_replayed_buckets"] == 1
    assert f["checkpoint_bytes_per_tick"] == round(f["checkpoint_bytes"] / 3)


@pytest.mark.postgres
def test_bench_tick_on_postgres_uses_a_schema_it_drops(tmp_path: Path) -> None:
    require_postgres()
    fig = run(tmp_path, "--postgres", pg_base_url())
    assert fig["postgresql"]["series"] == fig["sqlite"]["series"] == SERIES
    assert fig["postgresql"]["history_points"] == SERIES * 24
    engine = sa.create_engine(pg_base_url())
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM information_schema.schemata "
                                    "WHERE schema_name LIKE 'cxmon_bench_%'")).scalar()
    engine.dispose()
    assert left == 0
