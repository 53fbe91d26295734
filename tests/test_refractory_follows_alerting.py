"""A detector's refractory period starts where its metric alerts (monitor/detection.py)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

import detectors  # noqa: F401
from detectors.base import TickBatch
from detectors.postrules import PostRules
from detectors.registry import config_class
from monitor.detection import MetricDetectors

HOUR = timedelta(hours=1)


def built(detector: dict, min_severity: float) -> float:
    cfg = config_class(detector["type"]).model_validate(detector)
    md = MetricDetectors("kpi", HOUR, {"d": cfg}, PostRules(min_severity=min_severity))
    return md.detectors["d"].cfg.refractory_decades  # type: ignore[attr-defined]


def test_refractory_starts_at_the_alerting_threshold() -> None:
    # severity 25 = 4 decades, 50 = 6 decades (detectors/postrules.py)
    assert built({"type": "novelty"}, 25) == 4.0
    assert built({"type": "novelty"}, 50) == 6.0
    assert built({"type": "surprise"}, 25) == 4.0


def test_an_explicit_refractory_level_is_kept() -> None:
    assert built({"type": "novelty", "refractory_decades": 3.3}, 25) == 3.3


def test_a_point_too_weak_to_alert_does_not_silence_the_next() -> None:
    """A series with a weak oddity (not alertable at min_severity 60) and, 20 points later,
    a big spike: the spike is alerted. With the detector's own 3.3-decade refractory start,
    the weak oddity would have silenced it."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=700)
    values[600] += 6.0  # weak: about 4 decades (severity 60 needs 6.8)
    values[620] += 60.0  # strong
    alerts = {}
    for level in ("follow", "own"):
        det = {"type": "novelty", "history": 400}
        if level == "own":
            det["refractory_decades"] = 3.3
        cfg = config_class("novelty").model_validate(det)
        md = MetricDetectors("kpi", HOUR, {"d": cfg}, PostRules(min_severity=60))
        d, rs = md.detectors["d"], md.rule_states["d"]
        got = []
        for t, v in enumerate(values):
            batch = TickBatch.of(["s"], [t * 3600 * 10**9], [v])
            decision = rs.decide(batch, d.score(batch))
            d.learn(batch, decision.alert)
            if decision.alert[0]:
                got.append(t)
        alerts[level] = got
    assert 620 in alerts["follow"]
    assert 620 not in alerts["own"]
