"""``river``: run any river anomaly detector (``river.anomaly``) per series.

River detectors are per point (``score_one`` / ``learn_one``) and their raw scores are on
no common scale (Half-Space Trees give a mass-based score in [0, 1], others are unbounded).
The adapter keeps one river model per series and turns its raw score into a tail
probability, so that ``score = 1 - p`` means the same as for every other detector:

* ``p`` is the conformal p-value of the raw score among the last ``calibration`` raw scores
  of the same series (the share at least as high), and beyond the 90th percentile of that
  window an exponential tail fitted to the exceedances extrapolates, so a point far beyond
  anything seen gets a ``p`` much smaller than ``1 / calibration``.
* ``expected`` and the band come from a robust running level and scale of the series
  (exponentially weighted, Huber-clipped), so direction and minimum-change post-rules work
  for river models too. Flagged points are not learned by the model nor by the level.

State per series is the pickled model and the calibration window (zlib-compressed); it is
large for tree ensembles (tens of KB), so this adapter suits a few hundred series, not
100,000. Models are seeded (``seed: 42`` unless given) so results are reproducible.

>>> from datetime import timedelta
>>> det = RiverDetector(RiverConfig(), interval=timedelta(hours=1))
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> for t in range(300):
...     b = TickBatch.of(["s"], [t * 3_600 * 10**9], [10 + rng.normal()])
...     det.learn(b, np.zeros(1, dtype=bool))
>>> calm = det.score(TickBatch.of(["s"], [300 * 3_600 * 10**9], [10.0])).score[0]
>>> wild = det.score(TickBatch.of(["s"], [300 * 3_600 * 10**9], [60.0])).score[0]
>>> bool(wild > 0.99 > calm)
True
"""

from __future__ import annotations

import inspect
import math
import pickle
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.registry import register

__all__ = ["RiverConfig", "RiverDetector", "tail_p_value"]

_MAGIC = b"CXRV1"
_TAIL_QUANTILE = 0.9
#: Parameters the adapter sets when the config does not (river's HST default window of 250
#: would leave the trees empty for 250 points; one feature needs no 2^8 leaves).
_DEFAULTS: dict[str, dict[str, Any]] = {"HalfSpaceTrees": {"window_size": 50, "height": 6}}


def build_model(name: str, params: dict[str, Any], *, scale: bool) -> Any:
    """A river anomaly model ``name(**params)`` (after the adapter's defaults), min-max scaled
    first when ``scale``."""
    cls = _river_models()[name]
    params = {**_DEFAULTS.get(name, {}), **params}
    if "seed" in inspect.signature(cls).parameters:
        params.setdefault("seed", 42)
    model = cls(**params)
    if scale:
        from river import preprocessing

        model = preprocessing.MinMaxScaler() | model
    return model


def _river_models() -> dict[str, type]:
    from river import anomaly

    return {
        name: obj for name, obj in vars(anomaly).items()
        if inspect.isclass(obj) and hasattr(obj, "score_one") and hasattr(obj, "learn_one")
        and not inspect.isabstract(obj)
    }


class RiverConfig(DetectorConfig):
    """Settings of :class:`RiverDetector`."""

    type: Literal["river"] = "river"
    model: str = Field("HalfSpaceTrees", description="A class of river.anomaly.")
    scale: bool = Field(True, description="Min-max scale the value first (HST expects [0, 1]).")
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True,
                                   description="Its keyword arguments.")
    calibration: int = Field(200, ge=20, le=100_000, description="Raw scores kept per series "
                             "to turn a raw score into a tail probability.")
    min_points: int = Field(120, ge=1, description="Points learned before scores are given.")
    level_halflife: int = Field(24, ge=1, description="Points: memory of the expected level.")
    z_band: float = Field(3.0, gt=0, description="Band half-width in robust sigmas.")

    # Field validators, not one model validator: pydantic skips a model validator when any
    # field fails, which hid an unknown model or parameter behind any other mistake.
    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        models = _river_models()
        if value not in models:
            raise ValueError(f"unknown river model {value!r}; valid: {', '.join(sorted(models))}")
        return value

    @field_validator("params")
    @classmethod
    def _params_work(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("model")
        if name is None:  # the model itself is wrong: reported there
            return params
        accepted = inspect.signature(_river_models()[name]).parameters
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"{name} has no parameter(s) {', '.join(unknown)}")
        try:  # river checks few arguments itself: a wrong type surfaces on the first point
            model = build_model(name, dict(params), scale=info.data.get("scale", True))
            for y in (0.0, 1.0, 0.5):
                model.score_one({"x": y})
                model.learn_one({"x": y})
        except Exception as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise ValueError(f"{name}({shown}) does not work: "
                             f"{type(exc).__name__}: {exc}") from None
        return params


def tail_p_value(raw: float, history: Sequence[float]) -> float:
    """Tail probability of ``raw`` among past raw scores: conformal rank, with an exponential
    tail beyond the 90th percentile so that unseen extremes get very small ``p``.

    >>> tail_p_value(0.5, [0.1] * 99)
    0.0
    >>> round(tail_p_value(0.1, [0.1, 0.2, 0.3]), 2)
    1.0
    """
    h = np.asarray(history, dtype=np.float64)
    n = len(h)
    ge = int((h >= raw).sum())
    p = (ge + 1) / (n + 1)
    u = float(np.quantile(h, _TAIL_QUANTILE))
    if raw > u:
        exceed = h[h > u] - u
        if len(exceed) == 0:
            return 0.0  # nothing above the 90th percentile ever: a new extreme
        tail = (len(exceed) + 1) / (n + 1) * math.exp(-(raw - u) / max(float(exceed.mean()), 1e-12))
        p = min(p, tail)
    return p


@dataclass
class _SeriesState:
    model: Any
    raw: deque[float] = field(default_factory=deque)
    n: int = 0
    level: float = math.nan
    mad: float = math.nan


@register("river")
class RiverDetector(Detector):
    """One river anomaly model per series; scores are calibrated tail probabilities."""

    Config = RiverConfig

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, RiverConfig)
        self.cfg = config
        self._states: dict[str, _SeriesState] = {}
        self._blobs: dict[str, bytes] = {}  # serialized state of series unchanged since
        self._alpha = 1.0 - 2.0 ** (-1.0 / config.level_halflife)

    def _new_model(self) -> Any:
        return build_model(self.cfg.model, dict(self.cfg.params), scale=self.cfg.scale)

    def score(self, batch: TickBatch) -> Scores:
        out = Scores.empty(len(batch))
        for i, key in enumerate(batch.series):
            st = self._states.get(str(key))
            if st is None or st.n == 0:
                continue
            sigma = max(1.4826 * st.mad, 1e-9 * abs(st.level) + 1e-12)
            out.expected[i] = st.level
            out.lower[i] = st.level - self.cfg.z_band * sigma
            out.upper[i] = st.level + self.cfg.z_band * sigma
            y = float(batch.values[i])
            if not math.isfinite(y) or st.n < self.cfg.min_points or len(st.raw) < 20:
                continue
            raw = float(st.model.score_one({"x": y}))
            out.score[i] = 1.0 - tail_p_value(raw, st.raw)
        return out

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        flags = np.asarray(anomalous, dtype=bool)
        if flags.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flags.shape}, expected ({len(batch)},)")
        order = np.argsort(batch.timestamps, kind="stable")
        for i in order:
            y = float(batch.values[i])
            if not math.isfinite(y):
                continue
            key = str(batch.series[i])
            st = self._states.get(key)
            if st is None:
                st = self._states[key] = _SeriesState(self._new_model(),
                                                      deque(maxlen=self.cfg.calibration))
            self._blobs.pop(key, None)
            if flags[i]:
                continue  # flagged points do not pollute the model or the level
            x = {"x": y}
            if st.n >= self.cfg.min_points // 3:
                st.raw.append(float(st.model.score_one(x)))
            st.model.learn_one(x)
            if st.n == 0:
                st.level, st.mad = y, 0.0
            else:
                sigma = 1.4826 * st.mad
                err = y - st.level
                if st.n > 10 and sigma > 0:
                    err = max(-3 * sigma, min(3 * sigma, err))
                a = max(self._alpha, 1.0 / (st.n + 1))
                st.level += a * err
                st.mad += a * (abs(err) - st.mad)
            st.n += 1

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        keys = list(self._states) if series is None else [k for k in series if k in self._states]
        out = {}
        for k in keys:
            blob = self._blobs.get(k)
            if blob is None:  # pickle is not byte-stable across a round trip: cache it
                blob = _MAGIC + zlib.compress(pickle.dumps(self._states[k], protocol=5), 1)
                self._blobs[k] = blob
            out[k] = blob
        return out

    def set_state(self, states: Mapping[str, bytes]) -> None:
        for key, blob in states.items():
            if not bytes(blob[:len(_MAGIC)]) == _MAGIC:
                raise ValueError(f"state of {key!r} is not a river adapter record")
            self._states[key] = pickle.loads(zlib.decompress(bytes(blob[len(_MAGIC):])))
            self._blobs[key] = bytes(blob)

    def forget(self, series: Sequence[str]) -> None:
        for key in series:
            self._states.pop(key, None)
            self._blobs.pop(key, None)
