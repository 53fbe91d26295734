"""``cxmon bench nab``: our NAB scorer on hand-computed cases, against a literal port of NAB's
sweeper loop, and a smoke run of the command on two small files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from monitor.bench.nab import (
    Cost,
    infer_interval,
    parse_params,
    probationary_length,
    score_profile,
    sweep_corpus,
    sweep_scores,
)
from monitor.cli import app

STANDARD = Cost(1.0, 0.11, 1.0)
LOW_FN = Cost(1.0, 0.11, 2.0)
MAX_TP = math.tanh(2.5)  # 2 sigmoid(5) - 1: S at the window's left edge
NAB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nab"


def one_file(n: int, windows: list[tuple[int, int]], hits: dict[int, float]):
    scores = np.zeros(n)
    for row, value in hits.items():
        scores[row] = value
    return [(scores, windows)]


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probationary_length(100) == 15
    assert probationary_length(4032) == 604
    assert probationary_length(22695) == 750


def test_detection_at_window_start_earns_one_and_normalizes_to_100() -> None:
    res = score_profile(one_file(100, [(50, 59)], {50: 1.0}), STANDARD)
    assert res.raw == pytest.approx(1.0)
    assert res.score == pytest.approx(100.0)  # null = -1 (missed), perfect = +1
    assert (res.windows_detected, res.false_positives, res.threshold) == (1, 0, 1.0)


def test_late_detection_earns_little() -> None:
    # last row of a 10-row window: position -1/10, S = 2 sigmoid(0.5) - 1 = tanh(0.25)
    res = score_profile(one_file(100, [(50, 59)], {59: 1.0}), STANDARD)
    assert res.raw == pytest.approx(math.tanh(0.25) / MAX_TP)  # 0.24824
    assert res.score == pytest.approx(100 * (1 + 0.2482412) / 2, abs=1e-4)


def test_only_the_first_detection_in_a_window_counts() -> None:
    # rows 52 and 55 detected: only 52 (position -0.8, S = tanh(2)) counts, no FP for 55
    res = score_profile(one_file(100, [(50, 59)], {52: 1.0, 55: 1.0}), STANDARD)
    assert res.raw == pytest.approx(math.tanh(2.0) / MAX_TP)


def test_false_positive_costs_fp_weight() -> None:
    # The FP (row 20, before any window) outscores the TP: at threshold 0.9 both count.
    res = score_profile(one_file(100, [(50, 59)], {20: 1.0, 50: 0.9}), STANDARD)
    assert res.raw == pytest.approx(1.0 - 0.11)
    assert res.threshold == 0.9 and res.false_positives == 1
    # Right after a window, an FP costs the fp weight times S(|i - end| / (width - 1)).
    sweep = sweep_scores(100, [(50, 59)], STANDARD)
    assert sweep[69] == pytest.approx(-0.11 * math.tanh(2.5 * 10 / 9))
    assert sweep[59 + 28] == pytest.approx(-0.11)  # beyond 3 widths: a full FP
    assert sweep[20] == pytest.approx(-0.11)


def test_missed_window_costs_fn_weight_per_profile() -> None:
    files = one_file(200, [(50, 59), (150, 159)], {50: 1.0})
    std = score_profile(files, STANDARD)
    assert std.raw == pytest.approx(0.0)  # +1 - 1
    assert std.score == pytest.approx(50.0)  # null -2, perfect +2
    low_fn = score_profile(files, LOW_FN)
    assert low_fn.raw == pytest.approx(-1.0)  # +1 - 2
    assert low_fn.score == pytest.approx(100 * (-1 + 4) / (2 + 4))


def test_probationary_rows_are_not_scored() -> None:
    res = score_profile(one_file(100, [(50, 59)], {10: 1.0, 50: 0.5}), STANDARD)
    assert res.raw == pytest.approx(1.0)
    assert res.false_positives == 0


def test_one_threshold_for_the_whole_corpus() -> None:
    # File A's anomaly scores 0.6, file B's noise 0.7: no threshold gets A without B's FP.
    a = (np.where(np.arange(100) == 50, 0.6, 0.0), [(50, 59)])
    b = (np.where(np.arange(100) == 30, 0.7, 0.0), [])
    res = score_profile([a, b], STANDARD)
    assert res.threshold == 0.6
    assert res.raw == pytest.approx(1.0 - 0.11)


def _nab_reference(files, cost: Cost) -> float:
    """A literal port of NAB v1.1 ``Sweeper.calcSweepScore`` + ``calcScoreByThreshold``."""
    rows = []
    for f, (scores, windows) in enumerate(files):
        n, wl = len(scores), list(windows)
        prob = min(math.floor(0.15 * n), 0.15 * 5000)
        cur = name = width = right = prev_w = prev_r = None
        for i, s in enumerate(scores):
            if wl and i == wl[0][0]:
                cur = wl.pop(0)
                name, right, width = f"{f}|{cur[0]}", cur[1], float(cur[1] - cur[0] + 1)
            if cur is not None:
                pos = -(right - i + 1) / width
                w = (2 / (1 + math.exp(5 * pos)) - 1) * cost.tp / MAX_TP
            else:
                if prev_r is None:
                    u = -1.0
                else:
                    p = abs(prev_r - i) / (prev_w - 1)
                    u = -1.0 if p > 3 else 2 / (1 + math.exp(5 * p)) - 1
                w = u * cost.fp
            rows.append((s, w, name if i >= prob else "probationary"))
            if cur is not None and i == cur[1]:
                prev_r, prev_w, cur, name = i, width, None, None
    rows = sorted([r for r in rows if r[2] != "probationary"], key=lambda r: r[0], reverse=True)
    parts = {"fp": 0.0} | {r[2]: -cost.fn for r in rows if r[2] is not None}
    best, thr = sum(parts.values()), 1.1
    for s, w, name in rows:
        if s != thr:
            best, thr = max(best, sum(parts.values())), s
        if name is None:
            parts["fp"] += w
        else:
            parts[name] = max(parts[name], w)
    return max(best, sum(parts.values()))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorized_sweep_equals_nabs_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    files = []
    for _ in range(4):
        n = int(rng.integers(60, 200))
        starts = np.sort(rng.choice(np.arange(30, n - 12, 12), size=2, replace=False))
        windows = [(int(s), int(s) + int(rng.integers(2, 10))) for s in starts]
        scores = np.round(rng.random(n) ** 3, 2)  # ties on purpose
        files.append((scores, windows))
    for cost in (STANDARD, LOW_FN, Cost(1.0, 0.22, 1.0)):
        sw = sweep_corpus(files, cost)
        assert sw.scores.max() == pytest.approx(_nab_reference(files, cost), abs=1e-9)


def test_parse_params_and_interval() -> None:
    assert parse_params(["window=5", "shift_weight=0.5", "k=true"]) == {
        "window": 5, "shift_weight": 0.5, "k": True}
    ts = np.array(["2024-01-01T00:00", "2024-01-01T00:05", "2024-01-01T00:15",
                   "2024-01-01T00:20"], dtype="datetime64[ns]")
    assert infer_interval(ts).total_seconds() == 300


@pytest.mark.skipif(not NAB.exists(), reason="NAB data set not present")
def test_command_on_two_small_files_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "nab.json"
    doc = tmp_path / "benchmarks.md"
    result = CliRunner().invoke(app, [
        "bench", "nab", "--data", str(NAB), "--detector", "surprise",
        "--file", "realTraffic/speed_7578.csv", "--file", "iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
        "--also", "robust_seasonal", "--jobs", "1", "--json", str(out), "--doc", str(doc),
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["files"] == 2 and figures["rows"] == 1127 + 1243
    assert set(figures["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    std = figures["profiles"]["standard"]
    assert std["windows"] == 6 and -100.0 <= std["score"] <= 100.0
    assert set(figures["also"]) == {"robust_seasonal"}
    assert "**surprise (cxmon)**" in result.output
    assert "**robust_seasonal (cxmon)**" in result.output
    assert not doc.exists()  # a subset run does not overwrite the published section


def test_surprise_fires_once_then_stays_quiet_for_the_refractory_period() -> None:
    from datetime import timedelta

    from detectors.base import TickBatch
    from detectors.surprise import Surprise, SurpriseConfig

    det = Surprise(SurpriseConfig(refractory=20), interval=timedelta(minutes=5))
    rng = np.random.default_rng(3)
    values = np.concatenate([50 + rng.normal(size=400), 80 + rng.normal(size=60)])
    scores = []
    for t, v in enumerate(values):
        batch = TickBatch.of(["s"], [t * 300 * 10**9], [v])
        scores.append(det.score(batch).score[0])
        det.learn(batch, np.zeros(1, dtype=bool))
    scores = np.nan_to_num(np.array(scores))
    fired = np.flatnonzero(scores >= 1 - 10**-3.3)
    assert fired[0] >= 400 and fired[0] <= 403  # the jump, within a few points
    assert (scores[fired[0] + 1:fired[0] + 21] == 0.0).all()  # its echo is not reported
    assert scores[:400].max() < 1 - 10**-3.3  # no alarm on the noise before it
