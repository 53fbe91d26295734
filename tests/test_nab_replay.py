"""The NAB replay tool (scripts/nab_replay.py) must replay exactly what ``novelty`` does: the
"what was tried" table in docs/benchmarks.md was measured with it, and an experiment that starts
from a replay that drifted from the detector would measure the wrong thing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.bench.nab import NabFile

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "nab_replay.py"


def _load():
    spec = importlib.util.spec_from_file_location("nab_replay", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nab_replay"] = mod
    spec.loader.exec_module(mod)
    return mod


def _file(name: str, values: np.ndarray, freq: str) -> NabFile:
    ts = pd.date_range("2026-01-01", periods=len(values), freq=freq).to_numpy("datetime64[ns]")
    return NabFile(name, ts, values, [(len(values) - 300, len(values) - 200)])


def test_replay_reproduces_the_detector_scores_point_by_point() -> None:
    nr = _load()
    rng = np.random.default_rng(3)
    n = 1500
    day = 10 * np.sin(np.arange(n) / 288 * 2 * np.pi)  # 5-minute data: the same-time view
    daily = day + rng.normal(size=n)
    daily[n - 250:n - 240] += 25  # a burst the detector alarms on (refractory, fatigue)
    hourly = np.cumsum(rng.normal(size=n)) + rng.standard_t(3, size=n)  # no same-time view
    cfg = {"history": 600}
    rec = {f.name: nr.record_file(f, cfg)
           for f in (_file("a.csv", daily, "5min"), _file("b.csv", hourly, "2h"))}
    assert rec["a.csv"]["has_lags"] and not rec["b.csv"]["has_lags"]
    replayed = nr.replay_scores(rec, nr.NoveltyConfig(**cfg))
    for name, r in rec.items():
        np.testing.assert_allclose(replayed[name], r["score"], rtol=0, atol=1e-12)
        assert (r["score"] > 0.999).any(), name  # alarms happened, so the post stage ran


def test_replay_notices_a_changed_stage() -> None:
    nr = _load()
    rng = np.random.default_rng(4)
    values = rng.normal(size=800)
    values[600] += 30
    rec = {"c.csv": nr.record_file(_file("c.csv", values, "1h"), {"history": 400})}
    cfg = nr.NoveltyConfig(history=400)
    same = nr.replay_scores(rec, cfg)["c.csv"]
    shorter = nr.replay_scores(rec, cfg.model_copy(update={"refractory": 0}))["c.csv"]
    np.testing.assert_allclose(same, rec["c.csv"]["score"], atol=1e-12)
    assert not np.allclose(shorter, same)
