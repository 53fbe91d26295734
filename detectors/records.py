"""Per-series state as one NumPy structured array: a row per series, a field per quantity.

Why: detectors that keep a fixed-size record per series (``surprise``, ``novelty``) score a
tick by gathering the rows of its series, computing on whole columns and scattering them
back. This base owns that table (series -> row), the cache that lets ``learn`` reuse what
``score`` computed for the same batch, and the checkpoint format (a magic prefix and the packed
record), so each detector only says what a record holds and how it moves.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np

from detectors.base import Detector, DetectorConfig, TickBatch

__all__ = ["RecordDetector"]


class RecordDetector(Detector):
    """A detector whose state is one fixed-size record per series (see module docstring)."""

    #: first bytes of every checkpoint, so a record of another detector is refused
    record_magic: ClassVar[bytes]

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        self._dtype: np.dtype = np.dtype([("n", "<i8")])
        self._st = np.zeros(0, dtype=self._dtype)
        self._slot: dict[str, int] = {}
        self._version = 0
        self._cache: tuple[TickBatch, int, Any] | None = None

    def _set_record(self, dtype: np.dtype) -> None:
        """Declare the record layout (in ``__init__``, before any series arrives)."""
        self._dtype = dtype
        self._st = np.zeros(0, dtype=dtype)

    # ------------------------------------------------------------------ rows

    def _rows(self, series: np.ndarray) -> np.ndarray:
        """State row of each series key, -1 for series not seen yet."""
        return np.array([self._slot.get(k, -1) for k in series.tolist()], dtype=np.int64)

    def _add_series(self, keys: Sequence[str]) -> int:
        """Zeroed records for new series; returns the row of the first one."""
        start = len(self._st)
        self._st = np.concatenate([self._st, np.zeros(len(keys), dtype=self._dtype)])
        self._slot.update({k: start + i for i, k in enumerate(keys)})
        self._version += 1
        return start

    def _step(self, batch: TickBatch) -> Any:
        """What ``batch`` implies (:meth:`_compute`), cached between ``score`` and ``learn``
        of one tick; any state change invalidates it."""
        cached = self._cache
        if cached is not None and cached[0] is batch and cached[1] == self._version:
            return cached[2]
        step = self._compute(batch)
        self._cache = (batch, self._version, step)
        return step

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        """Learn every finite point; NaN values are skipped. A series present twice in one
        batch has its points learned in time order, one at a time."""
        flagged = np.asarray(anomalous, dtype=bool)
        if flagged.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flagged.shape}, expected ({len(batch)},)")
        finite = np.isfinite(batch.values)
        if not finite.any():
            return
        keys = batch.series[finite]
        if len(set(keys.tolist())) < len(keys):
            for i in np.argsort(batch.timestamps, kind="stable"):
                if finite[i]:
                    self.learn(batch.take(np.array([i])), flagged[i:i + 1])
            return
        if finite.all():
            self._learn_points(batch, flagged)
        else:
            sub = np.flatnonzero(finite)
            self._learn_points(batch.take(sub), flagged[sub])

    @abstractmethod
    def _learn_points(self, batch: TickBatch, flagged: np.ndarray) -> None:
        """Learn a batch of finite values, one per series (new series included)."""

    @abstractmethod
    def _compute(self, batch: TickBatch) -> Any:
        """Score-and-update quantities for the series of ``batch`` that have state."""

    def _commit(self, rows: np.ndarray, records: np.ndarray) -> None:
        """Write updated records back."""
        self._st[rows] = records
        self._version += 1

    # ------------------------------------------------------------------ checkpoints

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Per-series checkpoint: the magic prefix and one packed record."""
        keys = list(self._slot) if series is None else [k for k in series if k in self._slot]
        magic = self.record_magic
        return {k: magic + self._st[self._slot[k]:self._slot[k] + 1].tobytes() for k in keys}

    def set_state(self, states: Mapping[str, bytes]) -> None:
        """Restore series from :meth:`get_state` (same config), overwriting present ones."""
        magic, size = self.record_magic, self._dtype.itemsize
        for key, blob in states.items():
            if bytes(blob[:len(magic)]) != magic or len(blob) != len(magic) + size:
                raise ValueError(f"state of {key!r} is not a {self.type_name} record for this "
                                 "config")
            rec = np.frombuffer(bytes(blob[len(magic):]), dtype=self._dtype)
            if key not in self._slot:
                self._slot[key] = len(self._st)
                self._st = np.concatenate([self._st, rec.copy()])
            else:
                self._st[self._slot[key]] = rec[0]
        self._version += 1

    def forget(self, series: Sequence[str]) -> None:
        """Drop the state of series that no longer exist."""
        gone = {self._slot[k] for k in series if k in self._slot}
        if not gone:
            return
        keep = [k for k in self._slot if self._slot[k] not in gone]
        rows = np.array([self._slot[k] for k in keep], dtype=np.int64)
        self._st = self._st[rows] if len(rows) else np.zeros(0, dtype=self._dtype)
        self._slot = {k: i for i, k in enumerate(keep)}
        self._version += 1
