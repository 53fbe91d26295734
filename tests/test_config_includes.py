"""``include:``: a config split over team files, problems named in the file that has them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError, Problem

runner = CliRunner()

MAIN = """\
include: [teams/*.yaml]
store: sqlite:///{db}
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - name: checkout_dropoff_rate
    source: shop
    query: checkout
    interval: 1h
    timestamp: ts
    dimensions: [channel, region]
    value: {{ratio: [abandoned, started]}}
"""

SUPPORT = """\
sources:
  exports: {type: files, path: "exports/*.csv"}
metrics:
  - name: csat
    source: shop
    query: csat
    interval: 1h
    timestamp: ts
    split_by: [journey]
    value: {mean: [rating_sum, responses]}
  - name: contacts
    source: exports
    interval: 1h
    timestamp: ts
    value: contacts
"""

RETURNS = """\
detectors:
  slow: {type: robust_seasonal}
metrics:
  - name: complaints
    source: shop
    query: complaints
    interval: 1h
    timestamp: ts
    value: complaints
    detectors: [slow]
"""


def tree(tmp_path: Path, main: str = MAIN, **teams: str) -> Path:
    (tmp_path / "teams").mkdir()
    for name, text in teams.items():
        (tmp_path / "teams" / f"{name}.yaml").write_text(text)
    path = tmp_path / "cxmon.yaml"
    path.write_text(main.format(db=tmp_path / "s.db"))
    return path


def problems(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    return err.value.problems


def test_included_files_add_metrics_sources_and_detectors_in_sorted_order(
        tmp_path: Path) -> None:
    cfg = load_config(tree(tmp_path, support=SUPPORT, returns=RETURNS), env={})
    # the main file's metrics first, then each file's, files in sorted order
    assert [m.name for m in cfg.metrics] == ["checkout_dropoff_rate", "complaints", "csat",
                                             "contacts"]
    assert set(cfg.sources) == {"shop", "exports"}
    assert "slow" in cfg.detectors
    # a relative path is taken from the folder of the file that has it
    assert Path(cfg.sources["exports"].base_dir) == (tmp_path / "teams").resolve()


def test_problems_name_the_included_file_and_the_path_inside_it(tmp_path: Path) -> None:
    bad = SUPPORT.replace("source: exports", "source: exprots").replace("timestamp: ts\n    "
                                                                        "split_by", "timestmp: "
                                                                        "ts\n    split_by")
    found = problems(tree(tmp_path, support=bad, returns=RETURNS))
    shown = [str(p) for p in found]
    assert any(s.startswith("teams/support.yaml: metrics[1].source: source 'exprots' is not "
                            "defined") for s in shown), shown
    assert any(s.startswith("teams/support.yaml: metrics[0].timestmp") for s in shown), shown
    # in file order: returns.yaml is read before support.yaml, the main file first
    assert all(p.file == "teams/support.yaml" for p in found)


def test_a_name_defined_twice_and_sections_that_belong_in_the_main_file(
        tmp_path: Path) -> None:
    twice = ("sources:\n  shop: {type: demo}\nstore: sqlite://\ninclude: [x.yaml]\n"
             "alerting: {resolve_after: 1d}\n")
    found = problems(tree(tmp_path, support=SUPPORT, dup=twice))
    shown = [str(p) for p in found]
    assert ("teams/dup.yaml: sources.shop: source 'shop' is already defined in the main config"
            in shown), shown
    assert any(s.startswith("teams/dup.yaml: store: an included file holds only sources, "
                            "metrics, detectors, alerting") for s in shown), shown
    assert any(s.startswith("teams/dup.yaml: alerting.resolve_after: an included file's "
                            "alerting holds only receivers and routes") for s in shown), shown
    assert any(s.startswith("teams/dup.yaml: include: included files do not include")
               for s in shown), shown


def test_a_pattern_matching_nothing_is_a_problem_not_silently_fewer_metrics(
        tmp_path: Path) -> None:
    main = MAIN.replace("include: [teams/*.yaml]", "include: [teams/*.yaml, team/*.yaml]")
    found = problems(tree(tmp_path, main, support=SUPPORT))
    assert [p.path for p in found] == ["include[1]"]
    assert "no config file matches 'team/*.yaml'" in found[0].message


def test_broken_yaml_in_an_included_file_is_reported_with_its_name(tmp_path: Path) -> None:
    found = problems(tree(tmp_path, support="metrics: [\n  - name: x\n"))
    assert found[0].file == "teams/support.yaml"
    assert "invalid YAML" in found[0].message


def test_include_in_text_without_a_file_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("include: [a.yaml]\nsources: {}\nmetrics: []\n", env={})
    assert err.value.problems[0].path == "include"


def test_validate_names_files_in_problems_and_warnings(tmp_path: Path) -> None:
    path = tree(tmp_path, support=SUPPORT)
    ok = runner.invoke(app, ["validate", "-c", str(path)], env={"COLUMNS": "300"})
    assert ok.exit_code == 0, ok.output
    assert "3 metric(s)" in ok.output
    # history 0s is shorter than robust_seasonal's warm-up: the warning names csat's own file
    assert "warning teams/support.yaml: metrics[0].history:" in ok.output
    assert "warning metrics[0].history:" in ok.output  # the main file's metric as before
    (tmp_path / "teams" / "support.yaml").write_text(SUPPORT.replace("source: shop",
                                                                     "source: shoop"))
    bad = runner.invoke(app, ["validate", "-c", str(path)], env={"COLUMNS": "300"})
    assert bad.exit_code == 2
    assert "teams/support.yaml: metrics[0].source" in bad.output


def test_without_include_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MAIN.split("\n", 1)[1].format(db=tmp_path / "s.db") + "    detector: x\n")
    found = problems(path)
    assert [(p.path, p.file) for p in found] == [("metrics[0].detector", None)]


TEAM_ALERTING = """\
alerting:
  receivers:
    - name: support-chat
      console: {}
  routes:
    - matchers: ['team="support"']
      receiver: support-chat
metrics:
  - name: csat
    source: shop
    query: csat
    interval: 1h
    timestamp: ts
    split_by: [journey]
    value: {mean: [rating_sum, responses]}
    labels: {team: support}
"""


def test_a_team_file_brings_its_receivers_and_routes(tmp_path: Path) -> None:
    main = MAIN.replace("dimensions:", "labels: {{team: checkout}}\n    dimensions:") + (
        "alerting:\n  receivers: [{{name: all, console: {{}}}}]\n"
        "  route:\n    receiver: all\n"
        "    routes: [{{matchers: ['team=\"checkout\"'], receiver: all}}]\n")
    path = tree(tmp_path, main, support=TEAM_ALERTING)
    cfg = load_config(path, env={})
    assert [r.name for r in cfg.alerting.receivers] == ["all", "support-chat"]
    # the team's routes are children of the main file's top route, after its own
    assert [r.receiver for r in cfg.alerting.route.routes] == ["all", "support-chat"]
    routed = runner.invoke(app, ["routes", "test", "-c", str(path), "team=support"])
    assert routed.exit_code == 0, routed.output
    assert routed.output.strip() == "support-chat"
    # a dead matcher in a team's route is named in the team's file
    (tmp_path / "teams" / "support.yaml").write_text(
        TEAM_ALERTING.replace('team="support"', 'team="suport"'))
    warned = runner.invoke(app, ["validate", "-c", str(path)], env={"COLUMNS": "300"})
    assert "warning teams/support.yaml: alerting.routes[0].matchers" in warned.output
    # a route to a receiver no file defines is reported in the team's file
    (tmp_path / "teams" / "support.yaml").write_text(
        TEAM_ALERTING.replace("receiver: support-chat", "receiver: suport-chat"))
    found = [str(p) for p in problems(path)]
    assert any(s.startswith("teams/support.yaml: alerting.routes[0].receiver") for s in found), \
        found


def test_a_name_used_twice_points_at_the_first_one_in_its_own_file(tmp_path: Path) -> None:
    """``(first at ...)`` of a duplicate metric or receiver names the file and the index
    inside it, not the index in the merged document (which no file has)."""
    again = RETURNS.replace("name: complaints", "name: csat").replace(
        "detectors:\n  slow: {type: robust_seasonal}\n", "") + (
        "alerting:\n  receivers:\n    - {name: ops, console: {}}\n")
    main = MAIN + ("alerting:\n  receivers: [{{name: ops, console: {{}}}}]\n"
                   "  route: {{receiver: ops}}\n")
    shown = [str(p) for p in problems(tree(tmp_path, main, support=SUPPORT, zz=again))]
    assert ("teams/zz.yaml: metrics[0].name: duplicate metric name 'csat' (first at "
            "teams/support.yaml: metrics[0])") in shown, shown
    assert ("teams/zz.yaml: alerting.receivers[0].name: duplicate receiver name 'ops' (first "
            "at alerting.receivers[0] of the main config)") in shown, shown


def test_a_typo_in_include_is_the_only_problem_of_a_main_file_without_metrics(
        tmp_path: Path) -> None:
    main = "include: [team/*.yaml]\nstore: sqlite:///{db}\n"
    found = problems(tree(tmp_path, main, support=SUPPORT))
    assert [p.path for p in found] == ["include[0]"], [str(p) for p in found]
    # without include, a file with no metrics still says so
    with pytest.raises(ConfigError) as err:
        parse_config("store: sqlite://\n", env={})
    assert "metrics" in [p.path for p in err.value.problems]
