"""Differential test: cxmon's route tree against the real Alertmanager (``amtool``).

Hypothesis generates random route trees (depth up to 4, ``continue``, every matcher kind in
the new string form and the legacy ``match`` / ``match_re`` maps, inherited receivers) and
random label sets; for every case the receivers cxmon's :class:`Router` returns must equal what
``amtool config routes test`` prints for the same file. ``amtool`` comes from Debian's
``prometheus-alertmanager`` (``scripts/install-system-deps.sh``, run by ``make test``). The test
skips locally without it and fails in CI.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from alerts.routing import Router
from monitor.config import parse_config
from tests.conftest import in_ci

AMTOOL = shutil.which("amtool")
MIN_CASES = 500
RECEIVERS = [f"r{i}" for i in range(6)]
NAMES = ["team", "journey", "channel", "severity", "region"]
VALUES = ["checkout", "search", "app", "web", "high", "critical", "", "uk", "us-east", "x y",
          'q"uote', "a,b"]
REGEXES = ["check.*", "high|critical", "us-.*", "a|web", ".*", "", "(app|web)", "[a-z]+",
           "u.", "(?i)CHECKOUT", "[[:alpha:]]+", "x y|search", "a,b", ".+", "s.*h", "\\w+"]


def require_amtool() -> str:
    if AMTOOL is None:
        if in_ci():
            pytest.fail("amtool is not installed (scripts/install-system-deps.sh)")
        pytest.skip("amtool not installed (run scripts/install-system-deps.sh)")
    return AMTOOL


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def matcher_strings(draw: st.DrawFn) -> str:
    """One entry of ``matchers:``: one or two matchers, quoted or (when safe) not."""
    parts = []
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(NAMES))
        op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
        value = draw(st.sampled_from(REGEXES if "~" in op else VALUES))
        safe = value and all(c.isalnum() or c in "-.|*+" for c in value)
        text = value if safe and draw(st.booleans()) else _quote(value)
        spaces = draw(st.sampled_from(["", " "]))
        parts.append(f"{name}{spaces}{op}{spaces}{text}")
    text = ", ".join(parts)
    return "{" + text + "}" if len(parts) > 1 and draw(st.booleans()) else text


@st.composite
def routes(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if draw(st.booleans()):
        node["receiver"] = draw(st.sampled_from(RECEIVERS))
    form = draw(st.sampled_from(["matchers", "match", "match_re", "mixed", "none"]))
    if form in ("matchers", "mixed"):
        node["matchers"] = draw(st.lists(matcher_strings(), min_size=1, max_size=2))
    if form in ("match", "mixed"):
        node["match"] = draw(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES),
                                             min_size=1, max_size=2))
    if form == "match_re":
        node["match_re"] = draw(st.dictionaries(st.sampled_from(NAMES),
                                                st.sampled_from(REGEXES), min_size=1, max_size=2))
    if draw(st.booleans()):
        node["continue"] = True
    if depth < 4 and draw(st.integers(0, 3)) > 0:
        node["routes"] = draw(st.lists(routes(depth + 1), min_size=1, max_size=3))
    return node


@st.composite
def trees(draw: st.DrawFn) -> dict[str, Any]:
    root: dict[str, Any] = {"receiver": draw(st.sampled_from(RECEIVERS))}
    root["routes"] = draw(st.lists(routes(2), min_size=1, max_size=4))
    return root


label_sets = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), max_size=5)


def amtool_receivers(amtool: str, config: Path, labels: dict[str, str]) -> str:
    args = [f"{k}={_quote(v)}" for k, v in labels.items()]
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def cxmon_router(route: dict[str, Any]) -> Router:
    doc = {
        "sources": {"s": {"type": "sql", "url": "sqlite://"}},
        "metrics": [{"name": "m", "source": "s", "value": "v"}],
        "alerting": {"receivers": [{"name": r} for r in RECEIVERS], "route": route},
    }
    return Router.from_config(parse_config(yaml.safe_dump(doc), env={}).alerting)


def test_routes_match_amtool_on_generated_trees(tmp_path: Path) -> None:
    amtool = require_amtool()
    cases: list[int] = [0]
    differences: list[str] = []
    pool = ThreadPoolExecutor(max_workers=10)

    # No shrinking: each step would re-run amtool; a failure already prints its config.
    @settings(max_examples=60, deadline=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(tree=trees(), lsets=st.lists(label_sets, min_size=10, max_size=10))
    def check(tree: dict[str, Any], lsets: list[dict[str, str]]) -> None:
        path = tmp_path / "am.yml"
        path.write_text(yaml.safe_dump(
            {"route": tree, "receivers": [{"name": r} for r in RECEIVERS]}))
        router = cxmon_router(tree)
        expected = list(pool.map(lambda ls: amtool_receivers(amtool, path, ls), lsets))
        for ls, want in zip(lsets, expected, strict=True):
            cases[0] += 1
            got = ",".join(router.receivers(ls))
            if got != want:
                differences.append(f"{ls}: cxmon {got!r} amtool {want!r}\n{path.read_text()}")
            assert got == want, differences[-1]

    try:
        check()
    finally:
        pool.shutdown()
    assert not differences
    assert cases[0] >= MIN_CASES, cases[0]
