"""``cxmon validate`` warns about a SQL metric whose query does not bound the polled range
with ``:since``/``:until``: it polls fine, but every tick read the whole table and dropped
all but the polled buckets as ``before_cursor``, noticed only in ``run``'s warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from sources.sql import range_problem

runner = CliRunner()

CONFIG = """
store: sqlite:///{db}
sources:
  wh: {{type: sql, url: "sqlite:///{db}"}}
metrics:
  - name: conversions
    source: wh
    interval: 1h
    history: 1w
    query: "{query}"
    timestamp: hour
    value: n
"""


def validate(tmp_path: Path, query: str) -> str:
    path = tmp_path / "cxmon.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "x.db", query=query))
    result = runner.invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_a_query_without_since_and_until_is_warned_about_with_the_fix(tmp_path) -> None:
    out = validate(tmp_path, "select hour, n from kpi")
    assert "warning metrics[0].query: uses neither :since nor :until" in out
    assert "where hour >= :since and hour < :until" in out  # the metric's own column


def test_a_bounded_query_gets_no_warning(tmp_path) -> None:
    out = validate(tmp_path, "select hour, n from kpi where hour >= :since and hour < :until")
    assert "warning" not in out


@pytest.mark.parametrize(("query", "said"), [
    ("select hour, n from kpi where hour >= :since", "add: and hour < :until"),
    ("select hour, n from kpi where hour < :until", "add: hour >= :since and"),
])
def test_one_missing_bound_is_named(query: str, said: str) -> None:
    problem = range_problem(query, "hour")
    assert problem is not None and said in problem


def test_casts_and_other_params_are_not_mistaken_for_the_bounds() -> None:
    """PostgreSQL's ``::`` casts are no bind parameters; other params do not count."""
    assert range_problem("select ts::date d, n from kpi where site = :site") is not None
    assert range_problem("select ts, n from kpi where ts::timestamp >= :since "
                         "and ts < :until and site = :site") is None
