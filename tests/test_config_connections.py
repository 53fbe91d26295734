"""``connections:``: the storage_options several files sources share, defined once in the main
file and named by each source (a team file's too)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

SECRET = "S3-secret-Conn-4242"

MAIN = """\
include: [teams/*.yaml]
sources:
  shop: {type: demo}
connections:
  lake:
    storage_options:
      endpoint_url: http://127.0.0.1:9
      key: lake-key-id
      secret: "${S3_SECRET}"
      config_kwargs: {connect_timeout: 1, retries: {max_attempts: 1}}
metrics:
  - {name: kpi, source: shop, query: checkout, value: started}
"""

TEAM = """\
sources:
  orders: {type: files, path: "s3://cx/orders/*.csv", connection: lake,
           storage_options: {config_kwargs: {connect_timeout: 2}}}
  refunds: {type: files, path: "s3://cx/refunds/*.csv", connection: lake}
metrics:
  - {name: orders, source: orders, timestamp: ts, value: n}
"""


def _files(tmp_path: Path, team: str = TEAM, main: str = MAIN) -> Path:
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "shop.yaml").write_text(team)
    (tmp_path / "cxmon.yaml").write_text(main)
    return tmp_path / "cxmon.yaml"


def test_a_team_source_gets_the_connections_storage_options(tmp_path: Path) -> None:
    cfg = load_config(_files(tmp_path), env={"S3_SECRET": SECRET})
    assert cfg.sources["refunds"].storage_options == {
        "endpoint_url": "http://127.0.0.1:9", "key": "lake-key-id", "secret": SECRET,
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    # the source's own keys win, nested mappings merged key by key
    assert cfg.sources["orders"].storage_options["config_kwargs"] == {
        "connect_timeout": 2, "retries": {"max_attempts": 1}}
    assert cfg.sources["orders"].storage_options["secret"] == SECRET


def test_an_unknown_connection_is_named_in_the_team_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_files(tmp_path, TEAM.replace("connection: lake,", "connection: lakes,")),
                    env={"S3_SECRET": SECRET})
    assert [(p.file, p.path, p.message) for p in info.value.problems] == [
        ("teams/shop.yaml", "sources.orders.connection",
         "connection 'lakes' is not defined (did you mean 'lake'?); defined connections "
         "(top-level connections:): lake")]


def test_connection_problems_have_their_path() -> None:
    """A connection on a local path, an unknown key in a connection, none defined."""
    text = MAIN.replace("include: [teams/*.yaml]\n", "").replace(
        "retries: {max_attempts: 1}}\n", "retries: {max_attempts: 1}}\n    endpoint: x\n"
    ).replace(
        "sources:\n  shop: {type: demo}\n",
        "sources:\n  shop: {type: demo}\n  local: {type: files, path: a.csv, connection: lake}\n"
        "  other: {type: files, path: s3://b/x.csv, connection: nowhere}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"S3_SECRET": SECRET})
    problems = {p.path: p.message for p in info.value.problems}
    assert problems["sources.local.connection"].startswith(
        "connection applies to a URL path (s3://bucket/...) only")
    assert problems["connections.lake.endpoint"] == ("unknown key 'endpoint' "
                                                     "(keys here: storage_options)")
    assert problems["sources.other.connection"].startswith("connection 'nowhere' is not "
                                                           "defined")
    assert SECRET not in str(info.value.problems)
    with pytest.raises(ConfigError) as none:
        parse_config("sources:\n  o: {type: files, path: s3://b/x.csv, connection: lake}\n"
                     "metrics:\n  - {name: k, source: o, timestamp: ts, value: n}\n")
    assert [p.message for p in none.value.problems] == [
        "connection 'lake' is not defined; defined connections (top-level connections:): none"]


def test_show_masks_the_merged_secret(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["validate", "-c", str(_files(tmp_path)), "--show",
                                   "sources.orders"], env={"S3_SECRET": SECRET})
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output and "lake-key-id" not in res.output
    assert "connection: lake" in res.stdout and "secret: '***'" in res.stdout
    assert "endpoint_url: http://127.0.0.1:9" in res.stdout


def test_the_teams_example_connection_works_once_uncommented(tmp_path: Path) -> None:
    """examples/teams/checkout.yaml shows a bucket source in comments (a live one would make
    validate list a bucket): uncommented, it loads with the main file's connection."""
    examples = Path(__file__).parent.parent / "examples"
    shutil.copytree(examples / "teams", tmp_path / "teams")
    shutil.copy(examples / "teams.yaml", tmp_path / "teams.yaml")
    team = tmp_path / "teams" / "checkout.yaml"
    text = team.read_text()
    block = re.search(r"^# sources:\n(?:#  .*\n)+", text, re.M)
    assert block is not None
    team.write_text(re.sub(r"^# ", "", block.group(0), flags=re.M) + text.replace(
        block.group(0), "").replace("metrics:\n", "metrics:\n  - {name: checkout_files, "
                                    "source: checkout_exports, timestamp: ts, value: n}\n", 1))
    cfg = load_config(tmp_path / "teams.yaml", env={})
    assert cfg.sources["checkout_exports"].storage_options == {
        "endpoint_url": "https://s3.eu-west-1.amazonaws.com",
        "config_kwargs": {"connect_timeout": 2, "retries": {"max_attempts": 3}}}
