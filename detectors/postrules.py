"""Post-rules: turn scores into decisions. Detectors score; these rules decide.

Kept apart from scoring (as in river's ``anomaly/filter.py`` and Merlion's post-processing) so
that analysts can tune what alerts without touching how normality is learned, and so the
decision can be fed back to the detector (flagged points do not pollute the baseline).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    return 1.0 - 10.0 ** (-decades_for_severity(severity))


def decades_for_severity(severity: float) -> float:
    """``-log10 p`` of a point at ``severity`` (25 -> 4.0: a 1-in-10,000 point).

    >>> decades_for_severity(25), decades_for_severity(0)
    (4.0, 2.0)
    """
    return _SEVERITY_FLOOR + severity * _SEVERITY_DECADES / 100.0


class MissingPolicy(enum.StrEnum):
    """What a bucket without a value for a known series means."""

    SKIP = "skip"  # nothing: the series is not scored this bucket
    ZERO = "zero"  # zero (counts: nothing happened); scored and learned
    CARRY = "carry"  # the last value again; scored, not learned


class WindowRule(BaseModel):
    """``window: {k: 3, n: 5}``: alert only when k of the last n points are unusual."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(ge=1, le=64)
    n: int = Field(ge=1, le=64)

    @model_validator(mode="after")
    def _k_le_n(self) -> WindowRule:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


@dataclass(frozen=True, slots=True)
class PostRules:
    """What makes a scored point an anomaly worth telling someone about."""

    min_severity: float = 25.0  # p <= 1e-4
    direction: Direction = Direction.BOTH
    min_change: float = 0.0  # relative change |value - expected| / |expected|
    min_abs_change: float = 0.0  # absolute change |value - expected|, in the KPI's units
    min_volume: float = 0.0  # minimum denominator / count behind the value
    # Stateful rules, applied per series by :class:`RuleState` (defaults: off).
    consecutive: int = 1  # this many unusual points in a row before alerting
    window_k: int = 1  # ... and k of the last n points unusual
    window_n: int = 1
    warmup: timedelta = timedelta(0)  # no alerts this long after a series' first point
    suppress: timedelta = timedelta(0)  # no new alert this long after an alert
    missing: MissingPolicy = None  # type: ignore[assignment]  # set in __post_init__
    no_data_after: int = 3  # intervals without data -> a "no_data" anomaly (0 = never)

    def __post_init__(self) -> None:
        object.__setattr__(self, "missing", MissingPolicy(self.missing or "skip"))
        if not 1 <= self.window_k <= self.window_n <= 64:
            raise ValueError("window needs 1 <= k <= n <= 64")
        if not 1 <= self.consecutive <= 64:
            raise ValueError("consecutive must be within 1..64")

    def rare(
        self, batch: TickBatch, scores: Scores, min_severity: np.ndarray | None = None
    ) -> np.ndarray:
        """Boolean mask of points at or above the severity bar, whichever way they deviate.

        Why separate from :meth:`decide`: a detector must learn a rare point cautiously even
        when it is not worth an alert. With ``direction: up`` a two-day drop is not an alert,
        but learned at full weight it drags the baseline down, and the recovery to normal
        then alerts as a rise.
        """
        with np.errstate(invalid="ignore"):
            if min_severity is None:
                flag = scores.score >= score_for_severity(self.min_severity)
            else:
                need = 1.0 - 10.0 ** -(_SEVERITY_FLOOR + np.asarray(min_severity, np.float64)
                                       * _SEVERITY_DECADES / 100.0)
                flag = (scores.score >= need) & (np.asarray(min_severity) <= 100.0)
        return flag & np.isfinite(batch.values) & np.isfinite(scores.score)

    def decide(
        self, batch: TickBatch, scores: Scores, min_severity: np.ndarray | None = None,
        rare: np.ndarray | None = None,
    ) -> np.ndarray:
        """Boolean mask of unusual points in the batch (the per-point rules only): rare
        (:meth:`rare`, or ``rare`` when already computed), in the bad direction, changed
        enough, on enough volume.

        ``min_severity`` (per point) overrides the configured one, e.g. raised by feedback.
        """
        value, expected = batch.values, scores.expected
        flag = self.rare(batch, scores, min_severity) if rare is None else rare.copy()
        with np.errstate(invalid="ignore"):
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
        return flag


_REC = struct.Struct("<4sqqqdQHB")  # magic, first, last real point, last alert, last value,
#                                     unusual-point bits (newest = bit 0), run, no-data sent
_REC_MAGIC = b"CXPR"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules made of one batch, aligned with it."""

    alert: np.ndarray  # bool: report these points as anomalies
    unusual: np.ndarray  # bool: the per-point rules flagged them (streaks count these)
    rare: np.ndarray  # bool: at or above the severity bar either way (detectors learn cautiously)


class RuleState:
    """Per-series state of the stateful post-rules: consecutive points, k-of-n window,
    warm-up, suppression after an alert, missing-data fill and "no data" timeouts.

    Kept in arrays (one row per series) so a tick of 100,000 series is a few vectorized
    steps. State per series is a 45-byte record (:meth:`get_state`), checkpointed beside
    the detector's, so a restart neither repeats nor forgets a suppression or a streak.

    >>> from datetime import timedelta
    >>> H = 3_600 * 10**9
    >>> rs = RuleState(PostRules(min_severity=0, consecutive=2), timedelta(hours=1))
    >>> sc = Scores(*(np.array([x]) for x in (1.0, 0.0, 2.0, 0.999999)))
    >>> [bool(rs.decide(TickBatch.of(["s"], [t * H], [9.0]), sc).alert[0]) for t in range(3)]
    [False, True, True]
    """

    def __init__(self, rules: PostRules, interval: timedelta) -> None:
        self.rules = rules
        self.interval_ns = interval // timedelta(microseconds=1) * 1_000
        self._warm_ns = rules.warmup // timedelta(microseconds=1) * 1_000
        self._supp_ns = rules.suppress // timedelta(microseconds=1) * 1_000
        self._mask = (1 << rules.window_n) - 1
        self._rows: dict[str, int] = {}
        self._keys: list[str] = []  # by row
        self._first = np.zeros(0, np.int64)
        self._last = np.zeros(0, np.int64)
        self._alert = np.zeros(0, np.int64)
        self._value = np.zeros(0, np.float64)
        self._bits = np.zeros(0, np.uint64)
        self._run = np.zeros(0, np.int64)
        self._nodata = np.zeros(0, bool)
        self.dirty: set[str] = set()

    _ARRAYS = ("_first", "_last", "_alert", "_value", "_bits", "_run", "_nodata")

    def _rows_for(self, keys: Sequence[str]) -> np.ndarray:
        new = [k for k in dict.fromkeys(keys) if k not in self._rows]
        if new:
            start = len(self._first)
            for i, k in enumerate(new):
                self._rows[k] = start + i
            self._keys += new
            for name in self._ARRAYS:
                arr = getattr(self, name)
                fill = np.full(len(new), np.iinfo(np.int64).min if arr.dtype == np.int64
                               and name != "_run" else 0, arr.dtype)
                if name == "_value":
                    fill[:] = np.nan
                setattr(self, name, np.concatenate([arr, fill]))
        return np.fromiter((self._rows[k] for k in keys), np.int64, len(keys))

    @property
    def series(self) -> list[str]:
        return list(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    # -- missing data -------------------------------------------------------------------------

    def fill(self, batch: TickBatch) -> tuple[TickBatch, np.ndarray]:
        """Apply the missing-data policy to one bucket (all points share a timestamp).

        Returns the batch to score (with known series that did not arrive, and NaN values,
        filled by ``zero`` or ``carry``) and a mask of the filled points.
        """
        policy = self.rules.missing
        if policy is MissingPolicy.SKIP or len(batch) == 0:
            return batch, np.zeros(len(batch), bool)
        present = set(batch.series.tolist())
        absent = [k for k in self._rows if k not in present]
        ts = int(batch.timestamps[0])
        keys = np.concatenate([batch.series, np.array(absent, dtype=object)])
        values = np.concatenate([batch.values, np.full(len(absent), np.nan)])
        volumes = np.concatenate([batch.volumes, np.full(len(absent), np.nan)])
        stamps = np.concatenate([batch.timestamps, np.full(len(absent), ts, np.int64)])
        holes = np.isnan(values)
        if holes.any():
            rows = self._rows_for([str(k) for k in keys[holes]])
            started = self._first[rows] != np.iinfo(np.int64).min
            fill = 0.0 if policy is MissingPolicy.ZERO else self._value[rows]
            values[np.flatnonzero(holes)] = np.where(started, fill, np.nan)
        filled = holes & np.isfinite(values)
        return TickBatch(keys, stamps, values, volumes), filled

    def recently_gone(self, batch: TickBatch, within: int) -> list[str]:
        """Series absent from ``batch`` (one bucket) whose last real point is at most
        ``within`` intervals old: under ``missing: skip`` they are not scored, but a sum's
        root cause must still see them (a channel that vanished is a channel at zero).

        >>> rs = RuleState(PostRules(), timedelta(hours=1))
        >>> H = 3_600 * 10**9
        >>> _ = rs.decide(TickBatch.of(["a", "b"], [0, 0], [1.0, 2.0]),
        ...               Scores(*(np.zeros(2) for _ in range(4))))
        >>> rs.recently_gone(TickBatch.of(["a"], [H], [1.0]), 3), rs.recently_gone(
        ...     TickBatch.of(["a"], [5 * H], [1.0]), 3)
        (['b'], [])
        """
        if len(batch) == 0 or not self._rows:
            return []
        ts = int(batch.timestamps[0])
        unset = np.iinfo(np.int64).min
        hits = np.flatnonzero((self._last != unset) & (self._last < ts)
                              & (ts - self._last <= within * self.interval_ns))
        if not len(hits):
            return []
        present = set(batch.series.tolist())
        return [k for k in (self._keys[i] for i in hits) if k not in present]

    # -- deciding -----------------------------------------------------------------------------

    def decide(
        self,
        batch: TickBatch,
        scores: Scores,
        *,
        filled: np.ndarray | None = None,
        min_severity: np.ndarray | None = None,
    ) -> Decision:
        """Per-point rules, then the per-series ones; updates the series' state."""
        r = self.rules
        rare = r.rare(batch, scores, min_severity)
        unusual = r.decide(batch, scores, rare=rare)
        n = len(batch)
        if n == 0:
            return Decision(unusual, unusual, rare)
        keys = [str(k) for k in batch.series]
        rows = self._rows_for(keys)
        ts = batch.timestamps
        real = np.isfinite(batch.values) & (np.ones(n, bool) if filled is None else ~filled)
        counted = np.isfinite(batch.values)  # missing points neither break nor extend a run
        unset = np.iinfo(np.int64).min
        first = np.where(self._first[rows] == unset, np.where(real, ts, unset), self._first[rows])
        bits = np.where(counted, ((self._bits[rows] << np.uint64(1))
                                  | unusual.astype(np.uint64)) & np.uint64(self._mask),
                        self._bits[rows])
        run = np.where(counted, np.where(unusual, self._run[rows] + 1, 0), self._run[rows])
        in_window = _popcount(bits) >= r.window_k
        warmed = (first != unset) & (ts - first >= self._warm_ns)
        last_alert = self._alert[rows]
        suppressed = (last_alert != unset) & (ts - last_alert < self._supp_ns) & (ts >= last_alert)
        alert = unusual & in_window & (run >= r.consecutive) & warmed & ~suppressed
        self._first[rows] = first
        self._bits[rows] = bits
        self._run[rows] = run
        self._alert[rows] = np.where(alert, ts, last_alert)
        self._last[rows] = np.where(real, np.maximum(self._last[rows], ts), self._last[rows])
        self._value[rows] = np.where(real, batch.values, self._value[rows])
        self._nodata[rows] &= ~real
        self.dirty.update(keys)
        return Decision(alert, unusual, rare)

    def no_data(self, until_ns: int, hold: Callable[[str], bool] | None = None
                ) -> list[tuple[str, int, float, int]]:
        """Series whose data stopped: no real point for ``no_data_after`` intervals before
        ``until_ns`` (the end of the newest polled bucket). Each gap is reported once, as
        ``(series, timestamp it became overdue, last value, end of its last bucket)``;
        ``hold(series)`` true keeps a gap for a later call (a shop closed for the day)."""
        after = self.rules.no_data_after
        if after <= 0 or not self._rows:
            return []
        unset = np.iinfo(np.int64).min
        due = self._last + (after + 1) * self.interval_ns  # the bucket `after` past the last
        hit = (self._last != unset) & ~self._nodata & (due <= until_ns)
        keys = list(self._rows)
        out = []
        for row in np.flatnonzero(hit):
            if hold is not None and hold(keys[row]):
                continue
            self._nodata[row] = True
            self.dirty.add(keys[row])
            out.append((keys[row], int(self._last[row] + after * self.interval_ns),
                        float(self._value[row]), int(self._last[row] + self.interval_ns)))
        return out

    # -- forgetting ---------------------------------------------------------------------------

    def stale(self, before_ns: int) -> list[str]:
        """Series whose last real point started before ``before_ns``: gone so long that
        keeping their state only costs memory (``forget_after``). One vectorized pass.

        >>> rs = RuleState(PostRules(), timedelta(hours=1))
        >>> H = 3_600 * 10**9
        >>> _ = rs.decide(TickBatch.of(["a", "b"], [0, 5 * H], [1.0, 2.0]),
        ...               Scores(*(np.zeros(2) for _ in range(4))))
        >>> rs.stale(3 * H)
        ['a']
        """
        unset = np.iinfo(np.int64).min
        hits = np.flatnonzero((self._last != unset) & (self._last < before_ns))
        return [self._keys[i] for i in hits]

    def forget(self, series: Sequence[str]) -> None:
        """Drop the state of ``series``; one that comes back starts afresh (warm-up,
        streaks, no-data all as for a new series).

        >>> rs = RuleState(PostRules(), timedelta(hours=1))
        >>> _ = rs.decide(TickBatch.of(["a", "b"], [0, 0], [1.0, 2.0]),
        ...               Scores(*(np.zeros(2) for _ in range(4))))
        >>> rs.forget(["a"]); rs.series, sorted(rs.get_state())
        (['b'], ['b'])
        """
        gone = {self._rows[k] for k in series if k in self._rows}
        if not gone:
            return
        keep = np.array([i for i in range(len(self._keys)) if i not in gone], np.int64)
        for name in self._ARRAYS:
            setattr(self, name, getattr(self, name)[keep])
        self._keys = [self._keys[i] for i in keep]
        self._rows = {k: i for i, k in enumerate(self._keys)}
        self.dirty.difference_update(series)

    # -- checkpoints --------------------------------------------------------------------------

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        keys = list(self._rows) if series is None else [k for k in series if k in self._rows]
        out = {}
        for k in keys:
            i = self._rows[k]
            out[k] = _REC.pack(_REC_MAGIC, int(self._first[i]), int(self._last[i]),
                               int(self._alert[i]), float(self._value[i]), int(self._bits[i]),
                               min(int(self._run[i]), 65535), int(self._nodata[i]))
        return out

    def set_state(self, states: Mapping[str, bytes]) -> None:
        keys = list(states)
        rows = self._rows_for(keys)
        for k, i in zip(keys, rows, strict=True):
            blob = bytes(states[k])
            if len(blob) != _REC.size or blob[:4] != _REC_MAGIC:
                raise ValueError(f"post-rule state of {k!r} is not a v1 record")
            _, first, last, alert, value, bits, run, nodata = _REC.unpack(blob)
            self._first[i], self._last[i], self._alert[i] = first, last, alert
            self._value[i], self._bits[i], self._run[i] = value, bits, run
            self._nodata[i] = bool(nodata)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, np.int64)
    for _ in range(64):
        if not x.any():
            break
        count += (x & np.uint64(1)).astype(np.int64)
        x = x >> np.uint64(1)
    return count
