"""The detector contract, checked for every registered detector type with its default config.

Each rule below is something the pipeline relies on (see :mod:`detectors.base`): a detector
that breaks one would produce look-ahead bias in backtests, lose state on restart, or give
different answers depending on how series are batched.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from pydantic import ValidationError

import detectors  # noqa: F401  (registers every built-in detector type)
from detectors.base import Detector, Scores, TickBatch
from detectors.registry import create, detector_types

HOUR_NS = 3_600 * 10**9
START_NS = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC, a Monday
N_SERIES = 20
N_TICKS = 24 * 9  # past a one-week warm-up, so real scores are compared, not NaNs
EXTRA = 50
DECISION = 0.9999  # a fixed stand-in for the post-rules, so "anomalous" is exercised

TYPES = sorted(detector_types())


#: Settings that keep slow detectors fast enough here without changing what is checked:
#: Prophet first fits after 6 days, then weekly (1-2 fits per series per run, not 8), with
#: fewer band samples; fits run inline (its default executor), so the contract holds exactly.
CONTRACT_SETTINGS: dict[str, dict] = {
    "prophet": {"refit": "7d", "min_history": "6d", "uncertainty_samples": 30},
}


def make_detector(type_name: str) -> Detector:
    return create({"type": type_name, **CONTRACT_SETTINGS.get(type_name, {})},
                  interval=timedelta(hours=1))


def make_data(n_ticks: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixed hourly series: rates with volumes, counts, plain levels; gaps and spikes.

    Returns ``(keys, values[t, s], volumes[t, s])``. Data is drawn for the longest run and
    cut, so runs of different lengths see the same past.
    """
    total, n_ticks = n_ticks, N_TICKS + EXTRA
    rng = np.random.default_rng(seed)
    keys = np.array([f'kpi{{journey="j{i % 4}",region="r{i}"}}' for i in range(N_SERIES)],
                    dtype=object)
    t = np.arange(n_ticks)[:, None]
    hour, dow = t % 24, (t // 24) % 7
    shape = 1.0 + 0.4 * np.sin((hour - 8) / 24 * 2 * np.pi) - 0.3 * (dow >= 5)
    kind = np.arange(N_SERIES) % 3
    noise = rng.normal(size=(n_ticks, N_SERIES))
    volumes = np.where(kind == 0, np.round(2_000 * shape * rng.uniform(0.8, 1.2, (n_ticks, 1))),
                       np.nan)
    rate = np.clip(0.3 * shape + 0.01 * noise, 0.0, 1.0)
    counts = rng.poisson(50 * shape * np.ones((1, N_SERIES))).astype(np.float64)
    level = 4.2 + 0.3 * shape + 0.05 * noise
    values = np.where(kind == 0, rate, np.where(kind == 1, counts, level))
    spikes = rng.random((n_ticks, N_SERIES)) < 0.01
    values = np.where(spikes, values * 3 + 1, values)
    values[rng.random((n_ticks, N_SERIES)) < 0.03] = np.nan
    return keys, values[:total], volumes[:total]


def batch_at(keys: np.ndarray, values: np.ndarray, volumes: np.ndarray, t: int) -> TickBatch:
    n = len(keys)
    return TickBatch(keys, np.full(n, START_NS + t * HOUR_NS, np.int64), values[t].copy(),
                     volumes[t].copy())


def run(det: Detector, keys: np.ndarray, values: np.ndarray, volumes: np.ndarray,
        ticks: range) -> list[Scores]:
    """Score, decide, learn tick by tick, as the pipeline does."""
    out = []
    for t in ticks:
        batch = batch_at(keys, values, volumes, t)
        scores = det.score(batch)
        det.learn(batch, np.nan_to_num(scores.score) >= DECISION)
        out.append(scores)
    return out


def stack(scores: list[Scores], field: str) -> np.ndarray:
    return np.stack([getattr(s, field) for s in scores])


def assert_same(a: list[Scores], b: list[Scores]) -> None:
    for field in ("expected", "lower", "upper", "score"):
        np.testing.assert_array_equal(stack(a, field), stack(b, field), err_msg=field)


def test_every_built_in_detector_is_under_contract() -> None:
    """The suite is parametrized over the registry, so a detector whose module is no longer
    imported by ``detectors/__init__.py`` would silently drop out of it: pin the built-ins,
    and keep the slow-detector settings pointing at registered types."""
    assert {"robust_seasonal", "seasonal_baseline", "prophet", "river", "surprise"} <= set(TYPES)
    assert set(CONTRACT_SETTINGS) <= set(TYPES)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_data(N_TICKS + EXTRA)


@pytest.mark.parametrize("type_name", TYPES)
def test_default_config_is_valid_and_strict(type_name: str) -> None:
    cls = detector_types()[type_name]
    assert cls.Config.model_validate({"type": type_name}).type == type_name
    with pytest.raises(ValidationError):
        cls.Config.model_validate({"type": type_name, "no_such_option": 1})


@pytest.mark.parametrize("type_name", TYPES)
def test_no_look_ahead(type_name: str) -> None:
    """Scores up to tick N do not change when the run goes on, or when the data after N
    is different: a detector sees only what it was given before."""
    keys, values, volumes = make_data(N_TICKS)
    _, longer, longer_vol = make_data(N_TICKS + EXTRA)
    longer[N_TICKS:] += 100.0  # a very different future
    short = run(make_detector(type_name), keys, values, volumes, range(N_TICKS))
    long = run(make_detector(type_name), keys, longer, longer_vol, range(N_TICKS + EXTRA))
    assert_same(short, long[:N_TICKS])
    assert np.isfinite(stack(short, "score")[-24:]).mean() > 0.5  # real scores compared


@pytest.mark.parametrize("type_name", TYPES)
def test_score_does_not_change_state(type_name: str, data: tuple) -> None:
    keys, values, volumes = data
    det = make_detector(type_name)
    run(det, keys, values, volumes, range(N_TICKS))
    before = det.get_state()
    batch = batch_at(keys, values, volumes, N_TICKS)
    first = det.score(batch)
    other = batch_at(keys, values * 2.0, volumes, N_TICKS + 1)
    det.score(other)
    second = det.score(batch_at(keys, values, volumes, N_TICKS))
    assert det.get_state() == before
    assert_same([first], [second])


@pytest.mark.parametrize("type_name", TYPES)
def test_checkpoint_restore_gives_identical_scores(type_name: str, data: tuple) -> None:
    keys, values, volumes = data
    det = make_detector(type_name)
    run(det, keys, values, volumes, range(N_TICKS))
    state = det.get_state()
    assert set(state) == set(keys)
    assert all(isinstance(v, bytes) for v in state.values())
    fresh = make_detector(type_name)
    fresh.set_state(state)
    assert fresh.get_state() == state
    later = range(N_TICKS, N_TICKS + EXTRA)
    assert_same(run(det, keys, values, volumes, later), run(fresh, keys, values, volumes, later))


@pytest.mark.parametrize("type_name", TYPES)
def test_partial_checkpoint(type_name: str, data: tuple) -> None:
    keys, values, volumes = data
    det = make_detector(type_name)
    run(det, keys, values, volumes, range(48))
    some = list(keys[:3])
    assert set(det.get_state(some)) == set(some)
    assert det.get_state(["never_seen"]) == {}


@pytest.mark.parametrize("type_name", TYPES)
def test_nan_is_scored_nan_and_not_learned(type_name: str, data: tuple) -> None:
    keys, values, volumes = data
    det = make_detector(type_name)
    run(det, keys, values, volumes, range(N_TICKS))
    target = str(keys[5])
    before = det.get_state([target])
    holes = values[N_TICKS].copy()
    holes[5] = np.nan
    batch = TickBatch(keys, np.full(len(keys), START_NS + N_TICKS * HOUR_NS, np.int64), holes,
                      volumes[N_TICKS].copy())
    scores = det.score(batch)
    assert np.isnan(scores.score[5])
    det.learn(batch, np.zeros(len(keys), dtype=bool))
    assert det.get_state([target]) == before

    # A series whose only values are NaN: no crash, NaN scores, and no state made up.
    lonely = TickBatch.of(["only_nan"], [START_NS], [np.nan])
    assert np.isnan(det.score(lonely).score).all()
    det.learn(lonely, np.zeros(1, dtype=bool))
    assert det.get_state(["only_nan"]) == {}


@pytest.mark.parametrize("type_name", TYPES)
def test_vectorized_equals_one_series_at_a_time(type_name: str, data: tuple) -> None:
    """Batching must not change results: each series alone in its own instance scores
    the same as all of them together (up to float rounding, for vectorized math)."""
    keys, values, volumes = data
    together = stack(run(make_detector(type_name), keys, values, volumes, range(N_TICKS)),
                     "score")
    for s in range(len(keys)):
        alone = stack(run(make_detector(type_name), keys[s:s + 1], values[:, s:s + 1],
                          volumes[:, s:s + 1], range(N_TICKS)), "score")
        np.testing.assert_allclose(alone[:, 0], together[:, s], rtol=1e-12, atol=0,
                                   err_msg=str(keys[s]))


@pytest.mark.parametrize("type_name", TYPES)
def test_scores_and_band_are_well_formed(type_name: str, data: tuple) -> None:
    keys, values, volumes = data
    scores = run(make_detector(type_name), keys, values, volumes, range(N_TICKS + EXTRA))
    score = stack(scores, "score")
    assert score.shape == (N_TICKS + EXTRA, len(keys))
    finite = score[np.isfinite(score)]
    assert finite.size > 0
    assert ((finite >= 0.0) & (finite <= 1.0)).all()
    assert np.isnan(score[np.isnan(values)]).all()
    lower, expected, upper = (stack(scores, f) for f in ("lower", "expected", "upper"))
    known = np.isfinite(expected)
    assert (np.isfinite(lower) == known).all() and (np.isfinite(upper) == known).all()
    assert (lower[known] <= expected[known]).all()
    assert (expected[known] <= upper[known]).all()


@pytest.mark.parametrize("type_name", TYPES)
def test_unknown_series_and_empty_batches(type_name: str) -> None:
    det = make_detector(type_name)
    empty = TickBatch.of([], [], [])
    assert len(det.score(empty).score) == 0
    det.learn(empty, np.zeros(0, dtype=bool))
    fresh = det.score(TickBatch.of(["new"], [START_NS], [1.0]))
    assert np.isnan(fresh.score).all()  # nothing learned yet: no judgement
