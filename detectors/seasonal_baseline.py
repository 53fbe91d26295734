"""``seasonal_baseline``: a fast, vectorized, per-slot robust baseline for very many series.

For every series and every time-of-week slot (slot size ``max(interval, 1h)``: 168 slots for
hourly and 5-minute data, 7 for daily data) the detector keeps the last ``depth`` values seen
in that slot (for hourly data: the same hour of the last ``depth`` weeks) in a small ring of
float32. A point is judged against::

    expected = median(ring of its slot) + offset
    sigma    = sqrt((k * (1.4826 * MAD(ring))^2 + 4 * s^2) / (k + 4))     k = values in ring
    score    = P(|T| < |z|),  z = (value - expected) / sigma,  T ~ Student-t(tail_dof)

``offset`` is a short exponentially weighted mean of the residual (drift since last week) and
``s`` a per-series robust scale of the residuals, which carries slots with few values. The
median and MAD make one bad week harmless; points the post-rules flagged enter the ring
clipped to ``expected +- k sigma``, so an incident does not become the baseline, while a
lasting shift still does after ``depth / 2`` weeks. No model is fitted: building a series'
baseline from history is learning its points, which is one vectorized step per tick for all
series (``cxmon bench detect`` reports it as fits per second).

>>> from datetime import timedelta
>>> det = SeasonalBaseline(SeasonalBaselineConfig(), interval=timedelta(hours=1))
>>> rng = np.random.default_rng(0)
>>> H = 3_600 * 10**9
>>> for t in range(24 * 7 * 3):
...     y = 100 + 30 * (t % 24 >= 9) + rng.normal(0, 2)
...     det.learn(TickBatch.of(["s"], [t * H], [y]), np.zeros(1, dtype=bool))
>>> t = 24 * 7 * 3 + 10
>>> ok, spike = det.score(TickBatch.of(["s", "s2"], [t * H] * 2, [130.0, 160.0])).score
>>> bool(ok < 0.99), bool(np.isnan(spike))
(True, True)
>>> float(det.score(TickBatch.of(["s"], [t * H], [160.0])).score[0]) > 0.9999
True
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.registry import register
from detectors.robust_seasonal import t_two_sided_cdf
from monitor.durations import Duration

__all__ = ["SeasonalBaseline", "SeasonalBaselineConfig"]

_NS_HOUR = 3_600 * 10**9
_NS_WEEK = 168 * _NS_HOUR
_MAD_SIGMA = 1.4826
_PRIOR = 4.0
_MAGIC = b"CXSB"
_HEADER = struct.Struct("<4sBHB")  # magic, version, slots, depth


def _ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1_000


class SeasonalBaselineConfig(DetectorConfig):
    """Settings of :class:`SeasonalBaseline`."""

    type: Literal["seasonal_baseline"] = "seasonal_baseline"
    depth: int = Field(4, ge=2, le=52, description="Values kept per time-of-week slot "
                       "(hourly data: weeks of history per slot).")
    season: Literal["week", "day"] = Field("week", description="Slot by time of week or of day.")
    warmup: Duration = Field(timedelta(weeks=1), description="History before scoring.")
    min_points: int = Field(24, ge=1, description="Points learned before scoring.")
    offset_halflife: int = Field(6, ge=1, description="Points: memory of the drift offset.")
    scale_halflife: int = Field(336, ge=1, description="Points: memory of the series scale.")
    k: float = Field(3.0, ge=1.0, description="Clip (sigmas) for flagged points and drift.")
    tail_dof: int = Field(8, ge=1, le=60, description="Student-t degrees of freedom of the "
                          "tail probability (as robust_seasonal).")
    z_band: float = Field(3.0, gt=0, description="Band half-width in sigmas.")
    anomaly_learning: float = Field(0.05, ge=0, le=1, description="Drift-offset learning "
                                    "rate factor for flagged points.")


def _median_sorted(s: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Median of the first ``k`` (>= 1) entries of each row of ``s`` (rows sorted, NaN last)."""
    rows = np.arange(len(s))
    lo = s[rows, np.maximum(k - 1, 0) // 2]
    hi = s[rows, np.maximum(k, 1) // 2]
    return np.where(k % 2 == 1, lo, 0.5 * (lo + hi))


@register("seasonal_baseline")
class SeasonalBaseline(Detector):
    """Median / MAD of the same time-of-week slot over the last few weeks (module docs)."""

    Config = SeasonalBaselineConfig

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, SeasonalBaselineConfig)
        self.cfg = c = config
        period = _NS_WEEK if c.season == "week" else 24 * _NS_HOUR
        self._slot_ns = max(_ns(interval), _NS_HOUR)
        self.slots = max(1, period // self._slot_ns)
        self._warmup_ns = _ns(c.warmup)
        self._a_off = 1.0 - 2.0 ** (-1.0 / c.offset_halflife)
        self._a_scale = 1.0 - 2.0 ** (-1.0 / c.scale_halflife)
        self._rows: dict[str, int] = {}
        self._free: list[int] = []
        self._cap = 0
        self._alloc(16)

    # -- storage ----------------------------------------------------------------------------

    _FIELDS = ("ring", "cnt", "off", "s", "ws", "n", "t0")

    def _alloc(self, cap: int) -> None:
        d, S = self.cfg.depth, self.slots
        new = {
            "ring": np.full((cap, S, d), np.nan, np.float32),
            "cnt": np.zeros((cap, S), np.uint16),  # values ever written to the slot
            "off": np.zeros(cap, np.float32),
            "s": np.zeros(cap, np.float32),
            "ws": np.zeros(cap, np.float32),
            "n": np.zeros(cap, np.uint32),
            "t0": np.zeros(cap, np.int64),
        }
        for name, arr in new.items():
            if self._cap:
                arr[: self._cap] = getattr(self, "_" + name)
            setattr(self, "_" + name, arr)
        self._free.extend(range(cap - 1, self._cap - 1, -1))
        self._cap = cap

    def _clear(self, rows: np.ndarray) -> None:
        self._ring[rows] = np.nan
        for name in ("cnt", "off", "s", "ws", "n", "t0"):
            getattr(self, "_" + name)[rows] = 0

    def _create(self, keys: Sequence[str]) -> None:
        need = len(keys) - len(self._free)
        if need > 0:
            self._alloc(max(self._cap * 2, self._cap + need))
        for key in keys:
            self._rows[key] = self._free.pop()

    def _lookup(self, series: np.ndarray) -> np.ndarray:
        get = self._rows.get
        return np.fromiter((get(k, -1) for k in series.tolist()), np.int64, len(series))

    # -- model ------------------------------------------------------------------------------

    def _predict(self, rows: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, ...]:
        slot = (ts // self._slot_ns) % self.slots
        ring = self._ring[rows, slot].astype(np.float64)  # [B, depth]
        k = np.minimum(self._cnt[rows, slot], self.cfg.depth).astype(np.int64)
        srt = np.sort(ring, axis=1)
        med = _median_sorted(srt, k)
        mad = _median_sorted(np.sort(np.abs(ring - med[:, None]), axis=1), k)
        s = self._s[rows].astype(np.float64)
        sig2 = (k * (_MAD_SIGMA * mad) ** 2 + _PRIOR * s * s) / (k + _PRIOR)
        expected = np.where(k > 0, med + self._off[rows], np.nan)
        sigma = np.sqrt(sig2)
        sigma = np.maximum(sigma, 1e-9 * np.abs(expected) + 1e-12)
        return slot, k, expected, sigma

    def score(self, batch: TickBatch) -> Scores:
        out = Scores.empty(len(batch))
        rows = self._lookup(batch.series)
        sel = np.flatnonzero(rows >= 0)
        if len(sel) == 0:
            return out
        r, ts, y = rows[sel], batch.timestamps[sel], batch.values[sel]
        with np.errstate(all="ignore"):
            _, k, expected, sigma = self._predict(r, ts)
            z = (y - expected) / sigma
            score = t_two_sided_cdf(z, self.cfg.tail_dof)
        ready = ((self._n[r] >= self.cfg.min_points) & (ts - self._t0[r] >= self._warmup_ns)
                 & (k > 0) & (self._ws[r] > 0) & np.isfinite(y))
        half = self.cfg.z_band * sigma
        out.expected[sel] = expected
        out.lower[sel] = expected - half
        out.upper[sel] = expected + half
        out.score[sel] = np.where(ready, score, np.nan)
        return out

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        flags = np.asarray(anomalous, dtype=bool)
        if flags.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flags.shape}, expected ({len(batch)},)")
        fin = np.flatnonzero(np.isfinite(batch.values))
        if len(fin) == 0:
            return
        keys = batch.series[fin]
        if len(set(keys.tolist())) < len(keys):  # a series twice: learn in time order
            order = fin[np.argsort(batch.timestamps[fin], kind="stable")]
            seen: set[str] = set()
            first = [i for i in order if not (str(batch.series[i]) in seen
                                              or seen.add(str(batch.series[i])))]
            rest = np.setdiff1d(order, first)
            self.learn(batch.take(np.array(first)), flags[first])
            self.learn(batch.take(rest), flags[rest])
            return
        rows = self._lookup(keys)
        if (rows < 0).any():
            self._create(list(dict.fromkeys(keys[rows < 0].tolist())))
            rows = self._lookup(keys)
        ts, y, fl = batch.timestamps[fin], batch.values[fin], flags[fin]
        c = self.cfg
        with np.errstate(all="ignore"):
            slot, k, expected, sigma = self._predict(rows, ts)
            known = k > 0
            err = np.where(known, y - expected, 0.0)
            trusted = known & (self._ws[rows] > 0)
            clip = np.where(trusted, c.k * sigma, np.inf)
            err_c = np.clip(err, -clip, clip)
            stored = np.where(fl & known, expected + err_c, y)
            # Drift offset from the clipped residual (flagged points move it slowly).
            learn = np.where(known, np.where(fl, c.anomaly_learning, 1.0), 0.0)
            off = self._off[rows] + learn * self._a_off * err_c
            # Series scale: robust running mean of |residual| of slots with values.
            w = np.where(known & ~fl, 1.0, 0.0)
            ws = self._ws[rows] + w
            rate = np.where(w > 0, np.maximum(self._a_scale, w / np.maximum(ws, 1.0)), 0.0)
            sample = 1.2533 * np.abs(err_c)
            s = self._s[rows] + rate * (sample - self._s[rows])
        pos = (self._cnt[rows, slot] % c.depth).astype(np.int64)
        self._ring[rows, slot, pos] = stored - np.where(known, self._off[rows], 0.0)
        self._cnt[rows, slot] = np.minimum(self._cnt[rows, slot].astype(np.int64) + 1, 60000)
        self._off[rows] = off
        self._s[rows] = s
        self._ws[rows] = np.minimum(ws, 1e9)
        new = self._n[rows] == 0
        self._t0[rows] = np.where(new, ts, self._t0[rows])
        self._n[rows] = self._n[rows] + 1

    # -- checkpoints ------------------------------------------------------------------------

    def _header(self) -> bytes:
        return _HEADER.pack(_MAGIC, 1, self.slots, self.cfg.depth)

    def _record_size(self) -> int:
        return sum(getattr(self, "_" + f)[0].nbytes for f in self._FIELDS)

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Per series: a short header and the packed ring, counts and scalars (float32;
        about ``slots * (4 * depth + 2)`` bytes: 3.0 KB for hourly data, depth 4)."""
        keys = list(self._rows) if series is None else [k for k in series if k in self._rows]
        if not keys:
            return {}
        rows = np.array([self._rows[k] for k in keys], np.int64)
        parts = [getattr(self, "_" + f)[rows].reshape(len(rows), -1).view(np.uint8)
                 for f in self._FIELDS]
        packed = np.concatenate(parts, axis=1)
        head = self._header()
        return {k: head + packed[i].tobytes() for i, k in enumerate(keys)}

    def set_state(self, states: Mapping[str, bytes]) -> None:
        if not states:
            return
        head, size = self._header(), self._record_size()
        for key, blob in states.items():
            if bytes(blob[: len(head)]) != head or len(blob) != len(head) + size:
                raise ValueError(f"state of {key!r} is not a seasonal_baseline record for "
                                 f"{self.slots} slots x depth {self.cfg.depth}")
        keys = list(states)
        missing = [k for k in keys if k not in self._rows]
        if missing:
            self._create(missing)
        rows = np.array([self._rows[k] for k in keys], np.int64)
        raw = np.frombuffer(b"".join(bytes(states[k][len(head):]) for k in keys), np.uint8)
        raw = raw.reshape(len(keys), size)
        at = 0
        for f in self._FIELDS:
            arr = getattr(self, "_" + f)
            width = arr[0].nbytes
            chunk = raw[:, at:at + width].copy().view(arr.dtype)
            arr[rows] = chunk.reshape((len(keys), *arr.shape[1:]))
            at += width

    def forget(self, series: Sequence[str]) -> None:
        rows = [self._rows.pop(k) for k in series if k in self._rows]
        if rows:
            self._clear(np.array(rows, np.int64))
            self._free.extend(rows)
