"""The columnar detector contract: score a whole tick for many series in one call.

Like river's ``score_one``/``learn_one`` (high score = anomalous) but over NumPy arrays, so
one call handles thousands of series. Scoring and deciding are separate: a detector only
scores; post-rules (:mod:`detectors.postrules`) decide what is an anomaly, and the decision is
fed back to :meth:`Detector.learn` so flagged points do not pollute the baseline.

Rules every detector follows (checked by the contract tests):

* no look-ahead: ``score`` for a tick uses only what ``learn`` was given before it;
* ``score`` does not change state; ``learn`` is the only mutator;
* NaN values mean "missing": scored as NaN, not learned;
* ``get_state`` -> ``set_state`` on a fresh instance gives identical future scores;
* scoring series together equals scoring them one at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict


class DetectorConfig(BaseModel):
    """Base of every detector's config class. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    type: str


@dataclass(frozen=True, slots=True)
class TickBatch:
    """One tick of many series, aligned by position.

    ``timestamps`` are int64 nanoseconds since the epoch (UTC), one per series.
    ``volumes`` is the denominator or count behind each value (NaN when the measure has
    none); detectors use it to know how noisy a rate or a mean is.
    """

    series: np.ndarray  # object array of series keys
    timestamps: np.ndarray  # int64 ns
    values: np.ndarray  # float64, NaN = missing
    volumes: np.ndarray  # float64, NaN = not applicable

    def __post_init__(self) -> None:
        n = len(self.series)
        for name in ("timestamps", "values", "volumes"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TickBatch.{name} has {len(getattr(self, name))} rows, not {n}")

    def __len__(self) -> int:
        return len(self.series)

    def take(self, index: np.ndarray) -> TickBatch:
        """The sub-batch at ``index`` (positions or boolean mask)."""
        return TickBatch(
            self.series[index], self.timestamps[index], self.values[index], self.volumes[index]
        )

    @classmethod
    def of(
        cls,
        series: Sequence[str],
        timestamps: Sequence[int] | np.ndarray,
        values: Sequence[float] | np.ndarray,
        volumes: Sequence[float] | np.ndarray | None = None,
    ) -> TickBatch:
        """Build a batch from plain sequences (volumes default to NaN)."""
        n = len(series)
        vol = np.full(n, np.nan) if volumes is None else np.asarray(volumes, dtype=np.float64)
        return cls(
            np.asarray(series, dtype=object),
            np.asarray(timestamps, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
            vol,
        )


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-series result of one tick, aligned with the batch.

    ``score`` is in [0, 1] and is ``1 - p`` where ``p`` is the detector's estimate of the
    two-sided tail probability of the point, so the same score means the same rarity across
    detectors (severity is derived from it). NaN where the detector cannot judge yet.
    """

    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Scores:
        nan = np.full(n, np.nan)
        return cls(nan.copy(), nan.copy(), nan.copy(), nan.copy())


class Detector(ABC):
    """A detector instance holds the state of every series it has seen."""

    Config: ClassVar[type[DetectorConfig]]
    type_name: ClassVar[str]

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        self.config = config
        self.interval = interval

    @abstractmethod
    def score(self, batch: TickBatch) -> Scores:
        """Score the batch against the state learned so far. Must not change state."""

    @abstractmethod
    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        """Update state with the batch; ``anomalous`` (bool) marks points to learn from
        cautiously, so an incident does not become the new normal at once."""

    @abstractmethod
    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Checkpoint: serialized state per series (all series when ``None``)."""

    @abstractmethod
    def set_state(self, states: Mapping[str, bytes]) -> None:
        """Restore series state from :meth:`get_state` output."""

    def forget(self, series: Sequence[str]) -> None:  # noqa: B027 - optional
        """Drop state for series that no longer exist."""

    def observe(self, batch: TickBatch) -> None:  # noqa: B027 - optional
        """Points scored but not learned (a calendar ``score`` day): a detector whose scores
        remember recent points (a sustained-deviation test) updates that memory here, so
        such a day is scored as usual; its baseline must not learn them."""
