"""docs/operations.md and its Prometheus rules: what an SRE copies must work as written."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import in_ci

DOCS = Path(__file__).parent.parent / "docs"


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


def test_the_rules_file_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if in_ci():
            pytest.fail("promtool is not installed (scripts/install-system-deps.sh)")
        pytest.skip("promtool not installed (run scripts/install-system-deps.sh)")
    out = subprocess.run([promtool, "check", "rules", str(DOCS / "cxmon.rules.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout


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
            if not used <= set(labels):
                wrong.append(f"{rule['alert']}: {name} has no label(s) {used - set(labels)}")
        for label in re.findall(r"\$labels\.([a-z_]+)", str(rule.get("annotations", {}))):
            names = re.findall(r"(cxmon_[a-z_]+)", expr)
            if names and not any(label in exported.get(n, ()) for n in names):
                wrong.append(f"{rule['alert']}: annotation uses $labels.{label}")
    assert len(rules) == 5 and not wrong, wrong


def test_the_operations_page_names_real_commands_and_options() -> None:
    """Every `cxmon <command> ...` line of the runbook parses (it is what gets pasted)."""
    from typer.main import get_command

    from monitor.cli import app

    text = (DOCS / "operations.md").read_text()
    root = get_command(app)
    seen = set()
    for line in re.findall(r"^(?:ExecStart(?:Pre)?=\S*/)?cxmon ([a-z -]+)", text, re.M):
        words = line.split()
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
    promtool = shutil.which("promtool")
    if promtool is None:
        if in_ci():
            pytest.fail("promtool is not installed (scripts/install-system-deps.sh)")
        pytest.skip("promtool not installed (run scripts/install-system-deps.sh)")
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": [str(DOCS / "cxmon.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [{
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
        }],
    }))
    out = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
