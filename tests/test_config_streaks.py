"""A streak rule that a one-point-per-incident detector can never satisfy is a config error."""

from __future__ import annotations

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError


def _config(metric_extra: str, detectors: str) -> str:
    return f"""
sources:
  shop: {{type: demo, seed: 7}}
metrics:
  - name: m
    source: shop
    interval: 1h
    query: checkout_dropoff_rate
    value: {{ratio: [abandoned, started]}}
    detectors: [d]
{metric_extra}
detectors:
  d: {detectors}
"""


@pytest.mark.parametrize(("extra", "where"), [
    ("    consecutive: 2", "metrics[0].consecutive"),
    ("    window: {k: 2, n: 5}", "metrics[0].window"),
])
def test_refractory_detector_with_a_streak_rule_is_rejected(extra: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config(extra, "{type: novelty}"))
    assert where in str(err.value) and "would never alert" in str(err.value)


@pytest.mark.parametrize("detectors", ["{type: novelty, refractory: 0}",
                                       "{type: robust_seasonal}"])
def test_streak_rules_are_fine_when_the_detector_reports_every_point(detectors: str) -> None:
    cfg = parse_config(_config("    consecutive: 2", detectors))
    assert cfg.metrics[0].consecutive == 2


def test_one_point_rules_are_fine_with_a_refractory_detector() -> None:
    cfg = parse_config(_config("    window: {k: 1, n: 5}", "{type: surprise}"))
    assert cfg.metrics[0].window is not None and cfg.metrics[0].window.k == 1
