"""docs/operations.md, its Prometheus rules and the commands it and the README give: what an SRE
copies must work as written."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import in_ci

DOCS = Path(__file__).parent.parent / "docs"
#: labels Prometheus adds to every scraped series (the rules keep them to be per instance)
TARGET_LABELS = frozenset({"job", "instance"})


def _exported() -> dict[str, tuple[str, ...]]:
    """Every metric name ``cxmon run`` exports, with its label names."""
    from datetime import UTC, datetime

    from dashboards.exporter import Exporter
    from sources.metrics import SourceMetrics

    registry = CollectorRegistry()
    Exporter(registry=registry)
    SourceMetrics(registry=registry).lag.update("s", "m", datetime(2026, 1, 5, tzinfo=UTC))
    out: dict[str, tuple[str, ...]] = {}
    for name, c in registry._names_to_collectors.items():
        labels = getattr(c, "_labelnames", None)
        if labels is None:  # a custom collector (the lag, computed at scrape time)
            labels = tuple({k for fam in c.collect() for smp in fam.samples for k in smp.labels})
        out[name] = tuple(labels)
    return out


def _promtool() -> str:
    """promtool's path; a failure in CI (the project installs it), a skip elsewhere."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if in_ci():
            pytest.fail("promtool is not installed (scripts/install-system-deps.sh)")
        pytest.skip("promtool not installed (run scripts/install-system-deps.sh)")
    return promtool


def _promtool_test(tmp_path: Path, test: dict[str, Any]) -> None:
    """Run one promtool rule unit test (series, alerts expected) on docs/cxmon.rules.yml."""
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": [str(DOCS / "cxmon.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [test],
    }))
    out = subprocess.run([_promtool(), "test", "rules", str(tmp_path / "test.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_the_rules_file_passes_promtool() -> None:
    promtool = _promtool()
    out = subprocess.run([promtool, "check", "rules", str(DOCS / "cxmon.rules.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout


def test_the_rules_use_exported_metrics_and_their_real_labels() -> None:
    """A rule on a misspelt metric or label never fires: the worst kind of monitoring bug."""
    exported = _exported()
    rules = [r for g in yaml.safe_load((DOCS / "cxmon.rules.yml").read_text())["groups"]
             for r in g["rules"]]
    wrong = []
    for rule in rules:
        expr = rule["expr"]
        for name, matchers in re.findall(r"(cxmon_[a-z_]+)(\{[^}]*\})?", expr):
            labels = exported.get(name)
            if labels is None:
                wrong.append(f"{rule['alert']}: {name} is not exported")
                continue
            used = set(re.findall(r"([a-z_]+)\s*=", matchers or ""))
            used |= {w for by in re.findall(r"by \(([^)]*)\)", expr)
                     for w in re.split(r"\s*,\s*", by.strip())}
            if not used <= set(labels) | TARGET_LABELS:
                wrong.append(f"{rule['alert']}: {name} has no label(s) {used - set(labels)}")
        for label in re.findall(r"\$labels\.([a-z_]+)", str(rule.get("annotations", {}))):
            names = re.findall(r"(cxmon_[a-z_]+)", expr)
            if names and label not in TARGET_LABELS and not any(
                    label in exported.get(n, ()) for n in names):
                wrong.append(f"{rule['alert']}: annotation uses $labels.{label}")
    assert len(rules) == 6 and not wrong, wrong


def test_the_operations_page_names_real_commands_and_options() -> None:
    """Every `cxmon <command> ...` line of the runbook parses (it is what gets pasted)."""
    from typer.main import get_command

    from monitor.cli import app

    text = (DOCS / "operations.md").read_text()
    root = get_command(app)
    seen = set()
    for line in re.findall(r"^(?:ExecStart(?:Pre)?=\S*/)?cxmon ([a-z -]+)", text, re.M):
        words = line.split()
        _root_options(root, words)
        cmd, path = root, []
        for w in words:
            sub = getattr(cmd, "commands", {}).get(w)
            if sub is None:
                break
            cmd, path = sub, [*path, w]
        assert path, f"cxmon {line}: no such command"
        seen.add(" ".join(path))
    assert {"run", "validate", "alerts retry", "alerts status"} <= seen


def test_the_lag_alert_names_the_metric_it_fires_for(tmp_path: Path) -> None:
    """promtool runs the rules on series labelled as cxmon exports them: the lag alert's
    summary names the metric (``$labels.cx_metric``), not an empty string, and the alert
    carries ``cx_metric`` so a ``on(cx_metric)`` silence or route matches it."""
    _promtool_test(tmp_path, {
        "interval": "1m",
        "input_series": [{
            "series": 'cxmon_source_lag_seconds{source="shop",cx_metric="orders"}',
            "values": "20000x30",
        }],
        "alert_rule_test": [{
            "eval_time": "20m",
            "alertname": "CxmonSourceLagging",
            "exp_alerts": [{
                "exp_labels": {"severity": "ticket", "source": "shop",
                               "cx_metric": "orders"},
                "exp_annotations": {"summary": "cxmon: orders from shop is 5h 33m 20s behind"},
            }],
        }],
    })


def test_a_metric_failing_from_its_first_tick_pages(tmp_path: Path) -> None:
    """Found deploying cxmon with a wrong source password: the metric never had a good tick,
    so it had no ``cxmon_last_tick_timestamp_seconds`` (CxmonMetricNotTicking saw nothing)
    and no stored point (no lag either), and no rule fired while /readyz said failing.
    CxmonMetricFailing fires for it, and not for a metric whose ticks fail now and then."""
    ticks = 'cxmon_ticks_total{{job="cxmon",instance="{i}",cx_metric="{m}",outcome="{o}"}}'
    _promtool_test(tmp_path, {
        "interval": "1m",
        "input_series": [
            # every tick fails, from the first (hourly metric: one a minute here, the rule
            # only counts them)
            {"series": ticks.format(i="a", m="contacts", o="error"), "values": "1+1x60"},
            {"series": ticks.format(i="a", m="contacts", o="ok"), "values": "0x60"},
            # another cxmon (staging) whose metric of that name ticks: no cover for "a"
            {"series": ticks.format(i="b", m="contacts", o="error"), "values": "0x60"},
            {"series": ticks.format(i="b", m="contacts", o="ok"), "values": "0+1x60"},
            # a flaky one: a failure now and then, good ticks between
            {"series": ticks.format(i="a", m="orders", o="error"), "values": "0+0x20 1+0x40"},
            {"series": ticks.format(i="a", m="orders", o="ok"), "values": "0+1x60"},
            {"series": 'up{job="cxmon"}', "values": "1x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "CxmonMetricFailing", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "CxmonMetricFailing", "exp_alerts": [{
                "exp_labels": {"severity": "page", "cx_metric": "contacts", "job": "cxmon",
                               "instance": "a", "outcome": "error"},
                "exp_annotations": {
                    "summary": "cxmon: every tick of contacts fails",
                    "description": "journalctl -u cxmon says why (tick of ... failed); "
                                   "/readyz names it as failing."},
            }]},
            {"eval_time": "30m", "alertname": "CxmonMetricNotTicking", "exp_alerts": []},
        ],
    })


def test_a_receiver_failing_pages_per_cxmon_instance(tmp_path: Path) -> None:
    """Two cxmon instances scraped by one Prometheus, both sending to a receiver named
    ``slack``: the delivery alerts were summed by receiver, so they named no instance and the
    instance whose sends fail was not told apart from the one delivering. Each alert is per
    instance now, for the failing instance only."""
    sends = ('cxmon_notification_attempts_total'
             '{{job="cxmon",instance="{i}",receiver="{r}",outcome="{o}"}}')
    _promtool_test(tmp_path, {
        "interval": "1m",
        "input_series": [
            # "a" cannot reach slack: every attempt is retried
            {"series": sends.format(i="a", r="slack", o="retry"), "values": "0+1x60"},
            {"series": sends.format(i="a", r="slack", o="sent"), "values": "0x60"},
            # "b" delivers to its slack, and dead-letters one to pagerduty at 31m
            {"series": sends.format(i="b", r="slack", o="retry"), "values": "0x60"},
            {"series": sends.format(i="b", r="slack", o="sent"), "values": "0+5x60"},
            {"series": sends.format(i="b", r="pagerduty", o="dead"), "values": "0x30 1x30"},
            {"series": 'up{job="cxmon"}', "values": "1x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "CxmonReceiverFailing", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "CxmonReceiverFailing", "exp_alerts": [{
                "exp_labels": {"severity": "page", "job": "cxmon", "instance": "a",
                               "receiver": "slack", "outcome": "retry"},
                "exp_annotations": {
                    "summary": "cxmon on a cannot deliver to receiver slack (retrying)",
                    "description": "cxmon alerts status shows the error of every pending "
                                   "notification."},
            }]},
            {"eval_time": "20m", "alertname": "CxmonNotificationDeadLettered",
             "exp_alerts": []},
            {"eval_time": "40m", "alertname": "CxmonNotificationDeadLettered",
             "exp_alerts": [{
                 "exp_labels": {"severity": "page", "job": "cxmon", "instance": "b",
                                "receiver": "pagerduty", "outcome": "dead"},
                 "exp_annotations": {
                     "summary": "cxmon on b dead-lettered a notification to pagerduty",
                     "description": "cxmon alerts status (why); cxmon alerts retry ID once "
                                    "the receiver is fixed."},
             }]},
        ],
    })


def _root_options(root, words: list[str]) -> None:
    """Take the options given before the command (``cxmon --log-level debug validate``) off
    ``words``, parsed by the root's own parser: a misspelt one or a bad value raises."""
    taken = []
    while words and words[0].startswith("-"):
        taken.append(words.pop(0))
        param = next((p for p in root.params if taken[-1].split("=")[0] in p.opts), None)
        if param is not None and not param.is_flag and "=" not in taken[-1] and words:
            taken.append(words.pop(0))
    if taken:
        root.make_context("cxmon", [*taken, *words[:1]])


def _doc_command_lines() -> list[tuple[str, str]]:
    """``(doc, command line)`` for every ``cxmon ...`` line of a code block in the README and
    the runbook, and of the example configs' comments (continuation lines joined, comments and
    redirections cut), as pasted."""
    out = []
    examples = sorted([*(DOCS.parent / "examples").rglob("*.yaml"),
                       *(DOCS.parent / "monitor" / "examples").glob("*.yaml")])
    for doc in (DOCS.parent / "README.md", DOCS / "operations.md", *examples):
        text = doc.read_text()
        if doc.suffix == ".yaml":  # its indented comment lines are the one block
            text = "```\n" + "\n".join(re.findall(r"^#\s{2,}(.*)$", text, re.M)) + "\n```"
        for body in re.findall(r"```\w*\n(.*?)```", text, re.S):
            for line in re.sub(r"\\\n\s*", " ", body).splitlines():
                line = re.sub(r"^(\$ |ExecStart(Pre)?=\S*/|[A-Z_]+=\S+ |.*\| )", "", line.strip())
                if line.startswith("cxmon "):
                    out.append((doc.name, re.split(r" #| >| <", line)[0]))
    return out


def test_every_documented_command_line_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copied command with a renamed or misspelt option, or a missing argument, fails in the
    user's shell; here each one goes through the command's own parser (the runbook's lines
    take the config from CXMON_CONFIG, as its unit file sets it)."""
    import shlex

    from typer.main import get_command

    from monitor.cli import app

    monkeypatch.setenv("CXMON_CONFIG", "cxmon.yaml")
    root = get_command(app)
    lines = _doc_command_lines()
    wrong, parsed = [], 0
    for doc, line in lines:
        words = shlex.split(re.sub(r"\[([^]]*)\]", r"\1", line).replace("...", ""))[1:]
        try:
            _root_options(root, words)
        except Exception as exc:
            wrong.append(f"{doc}: {line}: {getattr(exc, 'format_message', exc.__str__)()}")
            continue
        cmd, path = root, []
        while words and words[0] in getattr(cmd, "commands", {}):
            cmd, path = cmd.commands[words[0]], [*path, words.pop(0)]
        if hasattr(cmd, "commands"):
            wrong.append(f"{doc}: {line}: no such command")
            continue
        try:
            cmd.make_context(" ".join(["cxmon", *path]), words)
            parsed += 1
        except Exception as exc:  # click's usage errors: what the user would see
            wrong.append(f"{doc}: {line}: {getattr(exc, 'format_message', exc.__str__)()}")
    assert not wrong, wrong
    assert parsed >= 40, parsed  # the README's and the runbook's blocks were all found


def test_every_inline_command_uses_real_options() -> None:
    """The prose names commands too (`cxmon backtest --no-feedback`): each option it gives
    exists on that command."""
    from typer.main import get_command

    from monitor.cli import app

    root = get_command(app)
    wrong, seen = [], 0
    for doc in (DOCS.parent / "README.md", DOCS / "operations.md"):
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S).replace("\n", " ")
        for span in re.findall(r"`cxmon ([a-z][^`]*)`", text):
            words = span.replace("[", " ").replace("]", " ").replace("|", " ").split()
            try:
                _root_options(root, words)
            except Exception as exc:
                wrong.append(f"{doc.name}: `cxmon {span}`: {exc}")
                continue
            cmd, path = root, []
            while words and words[0] in getattr(cmd, "commands", {}):
                cmd, path = cmd.commands[words[0]], [*path, words.pop(0)]
            if not path:
                continue  # prose such as `cxmon running: ...`, a log line
            opts = {o for p in getattr(cmd, "params", []) for o in (*p.opts, *p.secondary_opts)}
            for w in words:
                if w.startswith("-") and w != "-" and w.split("=")[0] not in opts:
                    wrong.append(f"{doc.name}: `cxmon {span}`: {w}")
            seen += 1
    assert not wrong, wrong
    assert seen >= 100, seen
