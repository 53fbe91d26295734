"""``cxmon validate`` warns about a SQL metric whose query does not bound the polled range
with ``:since``/``:until``: it polls fine, but every tick read the whole table and dropped
all but the polled buckets as ``before_cursor``, noticed only in ``run``'s warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from sources.base import FatalSourceError, PollRequest
from sources.sql import SqlSource, SqlSourceConfig, driver_problem, range_problem

runner = CliRunner()
T0 = datetime(2026, 1, 5, tzinfo=UTC)

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


# -- the URL's driver ------------------------------------------------------------------------


def _validate_url(tmp_path: Path, url: str) -> tuple[int, str]:
    path = tmp_path / "cxmon.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "x.db", query="select hour, n from kpi "
                                  "where hour >= :since and hour < :until").replace(
        f"sqlite:///{tmp_path / 'x.db'}\"", f"{url}\""))
    result = runner.invoke(app, ["validate", "-c", str(path)])
    return result.exit_code, " ".join(result.output.split())


def test_postgres_scheme_is_a_config_error_saying_what_to_write(tmp_path) -> None:
    """``postgres://`` (libpq's and Heroku's spelling) got "unknown database dialect"."""
    code, out = _validate_url(tmp_path, "postgres://cx:Hunter2secret@db.example/cx")
    assert code == 2
    assert "sources.wh.url: SQLAlchemy has no 'postgres' dialect: write " \
        "postgresql+psycopg://" in out
    assert "Hunter2secret" not in out


def test_a_url_whose_driver_is_missing_is_a_warning_and_a_fatal_poll_naming_the_fix(
        tmp_path) -> None:
    """``mysql://`` loads mysqlclient (``MySQLdb``), which cxmon does not install: validate
    passed and every poll failed with ``ModuleNotFoundError: No module named 'MySQLdb'``."""
    pytest.importorskip("pymysql")
    code, out = _validate_url(tmp_path, "mysql://cx:Hunter2secret@127.0.0.1/cx")
    assert code == 0, out
    assert ("warning sources.wh.url: the driver of mysql:// (MySQLdb) is not installed; "
            "write mysql+pymysql:// (pymysql is installed)") in out
    src = SqlSource("wh", SqlSourceConfig(type="sql", url="mysql://cx:Hunter2secret@h/cx"))
    with pytest.raises(FatalSourceError) as err:
        src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1), "select 1"))
    assert "source wh: url: the driver of mysql:// (MySQLdb) is not installed" in str(err.value)
    assert "Hunter2secret" not in str(err.value)


def test_a_missing_recommended_driver_says_to_install_it(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pymysql" else real(name, *a))
    assert driver_problem("mariadb://h/db") == (
        "url: the driver of mariadb:// (MySQLdb) is not installed; pip install pymysql and "
        "write mariadb+pymysql://")
    assert driver_problem("mssql+pyodbc://h/db").endswith("; install pyodbc where cxmon runs")


# -- bind parameters without a value ---------------------------------------------------------

PARAMS = """
sources:
  wh: {{type: sql, url: "sqlite:///{db}"}}
metrics:
  - name: conversions
    source: wh
    interval: 1h
    query: "select hour, n from kpi where hour >= :since and hour < :until and site = :sitte"
    params: {params}
    timestamp: hour
    value: n
"""


def _problems(tmp_path: Path, params: str) -> tuple[int, str]:
    path = tmp_path / "cxmon.yaml"
    path.write_text(PARAMS.format(db=tmp_path / "x.db", params=params))
    result = runner.invoke(app, ["validate", "-c", str(path)])
    return result.exit_code, " ".join(result.output.split())


def test_a_bind_parameter_without_a_value_is_a_config_error_with_its_path(tmp_path) -> None:
    """``:sitte`` with ``params: {site: uk}`` validated, then every poll failed with "A value
    is required for bind parameter 'sitte'"."""
    code, out = _problems(tmp_path, "{site: uk}")
    assert code == 2
    assert ("metrics[0].query: no value for :sitte (did you mean :site?): set it in params "
            "(params: site); :since and :until are bound by cxmon") in out


def test_params_named_since_or_until_are_refused(tmp_path) -> None:
    code, out = _problems(tmp_path, "{sitte: uk, until: '2026-01-01'}")
    assert code == 2
    assert "metrics[0].params.until: :until is the polled range, bound by cxmon" in out
    assert "metrics[0].query" not in out  # :sitte has its value


def test_every_bind_value_given_validates(tmp_path) -> None:
    code, out = _problems(tmp_path, "{sitte: uk, unused: 1}")  # an unused param is fine
    assert code == 0, out
