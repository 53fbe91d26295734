"""Run a metric's detectors over a measure frame, bucket by bucket, in time order.

Shared by the live pipeline and ``cxmon backtest`` so both see exactly the same decisions.
Each bucket is scored against state learned from earlier buckets only (no look-ahead), then
post-rules decide, then the detectors learn with the decision (flagged points learn slowly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.postrules import PostRules, severity_from_score
from detectors.registry import create as create_detector
from monitor.model import Anomaly, Direction, Series

SCORE_COLUMNS = ["timestamp", "series", "value", "expected", "lower", "upper", "score", "severity"]


@dataclass(slots=True)
class DetectionResult:
    anomalies: list[Anomaly] = field(default_factory=list)
    scores: pd.DataFrame | None = None  # SCORE_COLUMNS, first detector's view of each point


class MetricDetectors:
    """The detectors configured for one metric, with their per-series state."""

    def __init__(
        self,
        metric: str,
        interval: timedelta,
        detectors: Mapping[str, DetectorConfig],
        rules: PostRules,
    ) -> None:
        self.metric = metric
        self.rules = rules
        self.detectors: dict[str, Detector] = {
            name: create_detector(cfg, interval=interval) for name, cfg in detectors.items()
        }

    def checkpoint_name(self, detector: str) -> str:
        """Name under which a detector's state is checkpointed (unique per metric)."""
        return f"{self.metric}/{detector}"

    def run(
        self, frame: pd.DataFrame, series: Mapping[str, Series], *, keep_scores: bool = False
    ) -> DetectionResult:
        """Score, decide and learn every bucket of ``frame`` (MEASURE_COLUMNS) in time order."""
        result = DetectionResult()
        if frame.empty:
            return result
        frame = frame.sort_values(["timestamp", "series"], kind="stable")
        ts_ns = frame["timestamp"].dt.as_unit("ns").astype("int64").to_numpy()
        keys = frame["series"].to_numpy(dtype=object)
        values = frame["value"].to_numpy(dtype=np.float64)
        volumes = frame["denominator"].to_numpy(dtype=np.float64)
        bounds = np.flatnonzero(np.diff(ts_ns)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(ts_ns)]])
        score_parts: list[pd.DataFrame] = []
        for lo, hi in zip(starts, ends, strict=True):
            batch = TickBatch(keys[lo:hi], ts_ns[lo:hi], values[lo:hi], volumes[lo:hi])
            first = True
            for name, det in self.detectors.items():
                scores = det.score(batch)
                flags = self.rules.decide(batch, scores)
                det.learn(batch, flags)
                if flags.any():
                    result.anomalies.extend(self._anomalies(name, batch, scores, flags, series))
                if keep_scores and first:
                    score_parts.append(
                        pd.DataFrame(
                            {
                                "timestamp": ts_ns[lo:hi],
                                "series": keys[lo:hi],
                                "value": values[lo:hi],
                                "expected": scores.expected,
                                "lower": scores.lower,
                                "upper": scores.upper,
                                "score": scores.score,
                                "severity": severity_from_score(scores.score),
                            }
                        )
                    )
                first = False
        if keep_scores and score_parts:
            scores_df = pd.concat(score_parts, ignore_index=True)
            scores_df["timestamp"] = pd.to_datetime(scores_df["timestamp"], utc=True)
            result.scores = scores_df
        return result

    def _anomalies(
        self,
        detector: str,
        batch: TickBatch,
        scores: Scores,
        flags: np.ndarray,
        series: Mapping[str, Series],
    ) -> list[Anomaly]:
        idx = np.flatnonzero(flags)
        sev = severity_from_score(scores.score[idx])
        out = []
        for j, i in enumerate(idx):
            key = str(batch.series[i])
            s = series.get(key)
            value = float(batch.values[i])
            expected = float(scores.expected[i])
            out.append(
                Anomaly(
                    series=key,
                    metric=self.metric,
                    labels=dict(s.labels) if s else {},
                    timestamp=datetime.fromtimestamp(int(batch.timestamps[i]) / 1e9, tz=UTC),
                    value=value,
                    expected=expected,
                    lower=float(scores.lower[i]),
                    upper=float(scores.upper[i]),
                    score=float(scores.score[i]),
                    severity=int(sev[j]),
                    direction=Direction.UP if value > expected else Direction.DOWN,
                    detector=detector,
                )
            )
        return out
