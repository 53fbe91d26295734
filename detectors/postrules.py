"""Post-rules: turn scores into decisions. Detectors score; these rules decide.

Kept apart from scoring (as in river's ``anomaly/filter.py`` and Merlion's post-processing) so
that analysts can tune what alerts without touching how normality is learned, and so the
decision can be fed back to the detector (flagged points do not pollute the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.base import Scores, TickBatch
from monitor.model import Direction

#: -log10(p) at which severity starts above 0, and the number of decades from 0 to 100.
_SEVERITY_FLOOR = 2.0
_SEVERITY_DECADES = 8.0


def severity_from_score(score: np.ndarray | float) -> np.ndarray:
    """Severity 0-100 from a score ``1 - p``: a log scale of the tail probability ``p``.

    The same severity means the same rarity for every series and detector, because every
    detector's score is a tail probability. p = 1e-2 -> 0, 1e-6 -> 50, 1e-10 or rarer -> 100.

    >>> severity_from_score(np.array([0.99, 0.999999, 1.0])).tolist()
    [0, 50, 100]
    """
    s = np.asarray(score, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        decades = -np.log10(np.clip(1.0 - s, 0.0, 1.0))
    sev = (decades - _SEVERITY_FLOOR) * (100.0 / _SEVERITY_DECADES)
    sev = np.where(np.isnan(s), 0.0, np.clip(sev, 0.0, 100.0))
    return np.rint(sev).astype(np.int64)


def score_for_severity(severity: float) -> float:
    """Inverse of :func:`severity_from_score`: the score a point needs to reach ``severity``.

    >>> round(score_for_severity(50), 8)
    0.999999
    """
    decades = _SEVERITY_FLOOR + severity * _SEVERITY_DECADES / 100.0
    return 1.0 - 10.0 ** (-decades)


@dataclass(frozen=True, slots=True)
class PostRules:
    """What makes a scored point an anomaly worth telling someone about."""

    min_severity: float = 25.0  # p <= 1e-4
    direction: Direction = Direction.BOTH
    min_change: float = 0.0  # relative change |value - expected| / |expected|
    min_abs_change: float = 0.0  # absolute change |value - expected|, in the KPI's units
    min_volume: float = 0.0  # minimum denominator / count behind the value

    def decide(self, batch: TickBatch, scores: Scores) -> np.ndarray:
        """Boolean mask of anomalous points in the batch."""
        value, expected = batch.values, scores.expected
        with np.errstate(invalid="ignore"):
            flag = scores.score >= score_for_severity(self.min_severity)
            if self.direction is Direction.UP:
                flag &= value > expected
            elif self.direction is Direction.DOWN:
                flag &= value < expected
            if self.min_change > 0:
                with np.errstate(divide="ignore"):
                    change = np.abs(value - expected) / np.abs(expected)
                flag &= change >= self.min_change
            if self.min_abs_change > 0:
                flag &= np.abs(value - expected) >= self.min_abs_change
            if self.min_volume > 0:
                flag &= ~(batch.volumes < self.min_volume)  # NaN volume (sums) passes
        return flag & np.isfinite(value) & np.isfinite(scores.score)
