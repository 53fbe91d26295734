"""``novelty``: a streaming discord detector: how unlike anything in the recent past is the
shape the series has just drawn? The default of ``cxmon bench nab``.

Model, per series (vectorized over the series of a tick)::

    d_w       = distance from the last w points to their nearest neighbour among the
                earlier, non-overlapping w-point windows of the last ``history`` points
                (the left matrix profile of Yeh et al. 2016, for w in ``windows``)
    decades_w = -log10 P(N > (d_w - mu_w) / sd_w)      mu_w, sd_w: EW moments of d_w
                                                       (half-life likelihood_halflife)
    decades   = mean over w of decades_w
    score     = 1 - 10 ** -decades

Why: most incidents in machine and business series draw a shape the series has not drawn
before (a spike higher than the usual ones, a step, a missing daily peak, a changed rhythm),
while the recurring oddities of a healthy series (the nightly batch spike, the Monday peak)
have a near twin in its history. Comparing the nearest-neighbour distance with the series'
*own* history of such distances turns it into a tail probability calibrated per series, so
one threshold suits noisy and quiet series. Averaging three window lengths rewards anomalies
that stand out at several scales. After a point reaches ``refractory_decades`` the detector
reports 0 for ``refractory`` points: the first point of an incident carries the news.

The expected value and band come from an EW mean and mean absolute deviation (as
:mod:`detectors.surprise`); they describe the level, not the shape.

Cost: O(history x sum(windows)) per point and ``8 x (history + max window)`` bytes of
state per series (about 32 KB at the default), so this is a detector for hundreds of key
series, not for the long tail (use ``robust_seasonal`` there).

Example: a noisy daily pattern that suddenly skips its peak.

>>> from datetime import timedelta
>>> import numpy as np
>>> det = Novelty(NoveltyConfig(history=600), interval=timedelta(hours=1))
>>> rng = np.random.default_rng(1)
>>> day = 10 * np.sin(np.arange(24) / 24 * 2 * np.pi)
>>> values = np.concatenate([np.tile(day, 30), np.zeros(12)]) + rng.normal(size=732)
>>> scores = []
>>> for t, v in enumerate(values):
...     batch = TickBatch.of(["kpi"], [t * 3600 * 10**9], [v])
...     scores.append(det.score(batch).score[0])
...     det.learn(batch, np.zeros(1, dtype=bool))
>>> scores = np.nan_to_num(scores)
>>> bool(scores[200:720].max() < 0.9), bool(scores[720:].max() > 0.99)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.registry import register
from detectors.surprise import _LN10, _ew_moments, _rate, log10_gauss_tail

__all__ = ["Novelty", "NoveltyConfig"]

_MAGIC = b"CXNV1"


class NoveltyConfig(DetectorConfig):
    """Settings of :class:`Novelty`. Lengths are in points (rows), not durations."""

    type: Literal["novelty"] = "novelty"
    windows: list[int] = Field(default_factory=lambda: [4, 8, 16], min_length=1,
                               max_length=8, description="Shape lengths compared (points).")
    history: int = Field(4000, ge=16, le=100_000, description="Points searched for a "
                         "nearest neighbour (memory of the series).")
    likelihood_halflife: float = Field(1000.0, gt=0.0, le=1e7, description="Half-life "
                                       "(points) of the history each distance is compared "
                                       "with.")
    min_distances: int = Field(10, ge=2, le=100_000, description="Distances seen before the "
                               "first score.")
    refractory: int = Field(100, ge=0, le=10**7, description="Points reported as 0 after a "
                            "point reaches refractory_decades (0 disables).")
    refractory_decades: float = Field(2.8, gt=0.0, le=300.0, description="-log10 p that "
                                      "starts the refractory period.")
    level_halflife: float = Field(3.0, gt=0.0, le=1e6, description="Half-life (points) of "
                                  "the EW mean reported as the expected value.")
    scale_halflife: float = Field(200.0, gt=0.0, le=1e7, description="Half-life (points) of "
                                  "the mean absolute deviation behind the band.")
    z_band: float = Field(3.0, gt=0.0, le=50.0, description="Half-width of the band in "
                          "mean absolute deviations.")

    @field_validator("windows")
    @classmethod
    def _windows_positive(cls, v: list[int]) -> list[int]:
        if any(w < 1 or w > 1000 for w in v):
            raise ValueError("every window must be between 1 and 1000 points")
        return sorted(set(v))


@dataclass(slots=True)
class _Step:
    """What one batch implies for the series that have state (score and update)."""

    sel: np.ndarray  # positions in the batch
    rows: np.ndarray  # state rows
    x: np.ndarray
    dist: np.ndarray  # (len(rows), len(windows)); NaN where not computable yet
    decades: np.ndarray
    ready: np.ndarray


@register("novelty")
class Novelty(Detector):
    """Nearest-neighbour distance of the latest shape, as a per-series tail probability."""

    Config = NoveltyConfig

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, NoveltyConfig)
        self.cfg: NoveltyConfig = config
        self._len = config.history + max(config.windows)
        k = len(config.windows)
        self._dtype = np.dtype([
            ("buf", "<f8", (self._len,)), ("n", "<i8"), ("cool", "<i8"),
            ("mu", "<f8", (k,)), ("var", "<f8", (k,)), ("cnt", "<f8", (k,)),
            ("m", "<f8"), ("s", "<f8"),
        ])
        self._st = np.zeros(0, dtype=self._dtype)
        self._slot: dict[str, int] = {}
        self._a_lik = _rate(config.likelihood_halflife)
        self._a_level = _rate(config.level_halflife)
        self._a_scale = _rate(config.scale_halflife)
        self._version = 0
        self._cache: tuple[TickBatch, int, _Step] | None = None

    # ------------------------------------------------------------------ model

    def _rows(self, series: np.ndarray) -> np.ndarray:
        return np.array([self._slot.get(k, -1) for k in series.tolist()], dtype=np.int64)

    def _step(self, batch: TickBatch) -> _Step:
        cached = self._cache
        if cached is not None and cached[0] is batch and cached[1] == self._version:
            return cached[2]
        sp = self._compute(batch)
        self._cache = (batch, self._version, sp)
        return sp

    def _distances(self, buf: np.ndarray, n: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Nearest-neighbour distance of the window ending at ``x`` for every window length.

        ``buf`` holds the past, oldest first (the newest ``n`` entries are real).
        """
        series = np.concatenate([buf, x[:, None]], axis=1)  # (S, L + 1), x last
        series -= x[:, None]  # centred on the newest value: no cancellation in the sums below
        total = series.shape[1]
        have = np.minimum(n, self._len) + 1  # real points, x included
        csq = np.concatenate([np.zeros((len(x), 1)), np.cumsum(series * series, axis=1)], axis=1)
        out = np.full((len(x), len(self.cfg.windows)), np.nan)
        for j, w in enumerate(self.cfg.windows):
            past_n = total - 2 * w + 1  # windows ending at or before t - w
            if past_n <= 0:
                continue
            cur = series[:, total - w:]
            dot = np.zeros((len(x), past_n))
            for k in range(w):
                dot += series[:, k:k + past_n] * cur[:, k:k + 1]
            sq_past = csq[:, w:w + past_n] - csq[:, :past_n]
            sq_cur = csq[:, -1] - csq[:, total - w]
            d2 = sq_past + sq_cur[:, None] - 2.0 * dot
            # a past window is real when all its points are: it starts at or after total-have
            start = np.arange(past_n)
            d2 = np.where(start[None, :] >= (total - have)[:, None], d2, np.inf)
            best = d2.min(axis=1)
            out[:, j] = np.where(np.isfinite(best), np.sqrt(np.maximum(best, 0.0)), np.nan)
        return out

    def _compute(self, batch: TickBatch) -> _Step:
        c = self.cfg
        rows_all = self._rows(batch.series)
        sel = np.flatnonzero((rows_all >= 0) & np.isfinite(batch.values))
        rows = rows_all[sel]
        st = self._st[rows]
        x = batch.values[sel]
        dist = self._distances(st["buf"], st["n"], x)
        scale = np.maximum(np.abs(st["m"]) * 1e-9, 1e-12)[:, None]
        sd = np.sqrt(np.maximum(st["var"], 0.0))
        with np.errstate(invalid="ignore"):
            z = (dist - st["mu"]) / np.maximum(sd, np.maximum(1e-6 * np.abs(st["mu"]), scale))
        per_w = np.where(np.isfinite(z) & (st["cnt"] >= c.min_distances), z, -np.inf)
        decades = log10_gauss_tail(np.where(np.isfinite(per_w), per_w, 0.0)).mean(axis=1)
        ready = (st["cnt"] >= c.min_distances).all(axis=1)
        return _Step(sel, rows, x, dist, np.where(ready, decades, 0.0), ready)

    # ------------------------------------------------------------------ contract

    def score(self, batch: TickBatch) -> Scores:
        """Score the tick (no mutation); NaN until ``min_distances`` distances are known."""
        out = Scores.empty(len(batch))
        if len(batch) == 0 or not self._slot:
            return out
        sp = self._step(batch)
        if len(sp.rows) == 0:
            return out
        st = self._st[sp.rows]
        score = np.where(st["cool"] > 0, 0.0, -np.expm1(-sp.decades * _LN10))
        started = st["n"] > 0
        band = self.cfg.z_band * st["s"]
        out.expected[sp.sel] = np.where(started, st["m"], np.nan)
        out.lower[sp.sel] = np.where(started, st["m"] - band, np.nan)
        out.upper[sp.sel] = np.where(started, st["m"] + band, np.nan)
        out.score[sp.sel] = np.where(sp.ready, score, np.nan)
        return out

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        """Remember every finite point (a shape seen once is known afterwards); a series
        present twice in one batch has its points learned in time order."""
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
        new = [k for k in keys.tolist() if k not in self._slot]
        if new:
            start = len(self._st)
            self._st = np.concatenate([self._st, np.zeros(len(new), dtype=self._dtype)])
            self._slot.update({k: start + i for i, k in enumerate(new)})
            self._version += 1
        self._update(batch.take(np.flatnonzero(finite)))

    def _update(self, batch: TickBatch) -> None:
        sp = self._step(batch)
        st = self._st[sp.rows]
        n = st["n"].astype(np.float64)
        for j in range(len(self.cfg.windows)):
            d = sp.dist[:, j]
            ok = np.isfinite(d)
            cnt = st["cnt"][:, j]
            mu, var = _ew_moments(st["mu"][:, j], st["var"][:, j], np.where(ok, d, 0.0), cnt,
                                  self._a_lik)
            st["mu"][:, j] = np.where(ok, mu, st["mu"][:, j])
            st["var"][:, j] = np.where(ok, var, st["var"][:, j])
            st["cnt"][:, j] = cnt + ok
        fire = (self.cfg.refractory > 0) & sp.ready & (sp.decades >= self.cfg.refractory_decades)
        st["cool"] = np.where(st["cool"] > 0, st["cool"] - 1,
                              np.where(fire, self.cfg.refractory, 0))
        err = sp.x - st["m"]
        first = st["n"] == 0
        st["m"] = np.where(first, sp.x, st["m"] + self._a_level * err)
        st["s"] = np.where(first, 0.0, np.where(
            n < 30, st["s"] + (np.abs(err) - st["s"]) / np.maximum(n, 1.0),
            st["s"] + self._a_scale * (np.abs(err) - st["s"])))
        st["buf"] = np.concatenate([st["buf"][:, 1:], sp.x[:, None]], axis=1)
        st["n"] = st["n"] + 1
        self._st[sp.rows] = st
        self._version += 1

    # ------------------------------------------------------------------ checkpoints

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Per-series checkpoint: a magic prefix and one packed record."""
        keys = list(self._slot) if series is None else [k for k in series if k in self._slot]
        return {k: _MAGIC + self._st[self._slot[k]:self._slot[k] + 1].tobytes() for k in keys}

    def set_state(self, states: Mapping[str, bytes]) -> None:
        """Restore series from :meth:`get_state` (same config), overwriting present ones."""
        size = self._dtype.itemsize
        for key, blob in states.items():
            if bytes(blob[:len(_MAGIC)]) != _MAGIC or len(blob) != len(_MAGIC) + size:
                raise ValueError(f"state of {key!r} is not a novelty record for this config")
            rec = np.frombuffer(bytes(blob[len(_MAGIC):]), dtype=self._dtype)
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
