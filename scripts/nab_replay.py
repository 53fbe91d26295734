"""Record ``novelty``'s per-channel evidence on NAB once, then replay its last stages in seconds.

A research tool for the NAB table in docs/benchmarks.md ("NAB: what was tried"), not part of
cxmon. Running the detector over the 58 files takes minutes; most ideas change only how the
channels' distances become decades and how those are combined, fatigued and made refractory.
``record`` runs the shipped detector and stores, per file and point, every channel's distance
and the moments it was compared with; ``replay`` recomputes the rest from those arrays and
scores the corpus with cxmon's own NAB scorer. It first checks that the plain replay gives
exactly the shipped detector's scores, so an experiment starts from the real thing.

    python scripts/nab_replay.py record --data ../shared/datasets/nab --out /tmp/nab.pkl
    python scripts/nab_replay.py replay /tmp/nab.pkl

An experiment imports this module and passes its own ``combine`` or ``post`` to
:func:`replay_scores` (``tests/test_nab_replay.py`` keeps the replay equal to the detector).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.base import TickBatch
from detectors.novelty import _ARC_MIN_MEANS, _SEQ_MIN_SURPRISES, Novelty, NoveltyConfig
from detectors.postrules import PostRules
from detectors.surprise import log10_gauss_tail
from monitor.bench.nab import (
    DEFAULT_PROFILES,
    Cost,
    NabFile,
    infer_interval,
    load_corpus,
    score_profile,
)

Record = dict[str, Any]
_LN10 = math.log(10.0)


class RecordingNovelty(Novelty):
    """The shipped detector, keeping what each scored point looked like."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: dict[str, list[tuple[np.ndarray, ...]]] = {}

    def _compute(self, batch: TickBatch) -> Any:
        sp = super()._compute(batch)
        st = self._st[sp.rows]
        for j, key in enumerate(batch.series[sp.sel].tolist()):
            self.log.setdefault(key, []).append(
                (sp.dist[j].copy(), st["mu"][j].copy(), st["var"][j].copy(),
                 st["cnt"][j].copy(), np.abs(st["m"][j]), int(batch.timestamps[sp.sel[j]])))
        return sp


def record_file(f: NabFile, config: dict[str, Any] | None = None) -> Record:
    """Stream one file through a fresh detector (as ``cxmon bench nab``: each file from
    scratch) and return its per-point arrays (NaN rows where nothing was scored)."""
    det = RecordingNovelty(NoveltyConfig(**(config or {})),
                           interval=infer_interval(f.timestamps))
    rules = PostRules()
    stamps = f.timestamps.astype(np.int64)
    score = np.full(len(f), np.nan)
    for i in range(len(f)):
        batch = TickBatch.of([f.name], [int(stamps[i])], [float(f.values[i])])
        s = det.score(batch)
        score[i] = s.score[0]
        det.learn(batch, rules.decide(batch, s))
    rows = {ts: r for r, ts in enumerate(stamps.tolist())}
    log = det.log.get(f.name, [])
    k = len(log[0][0]) if log else 0
    out: Record = {name: np.full((len(f), k), np.nan) for name in ("dist", "mu", "var")}
    out["cnt"] = np.zeros((len(f), k))
    out["level"] = np.zeros(len(f))
    for dist, mu, var, cnt, level, ts in log:
        r = rows[ts]
        out["dist"][r], out["mu"][r], out["var"][r], out["cnt"][r] = dist, mu, var, cnt
        out["level"][r] = level
    out.update(score=np.clip(np.nan_to_num(score), 0.0, 1.0), windows=list(f.windows),
               timestamps=f.timestamps, values=f.values,
               has_lags=bool(det._lags), sequence=bool(det._seq), arc=bool(det._arc))
    return out


# ------------------------------------------------------------------------- the replayed stages


def channel_decades(r: Record, cfg: NoveltyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's -log10 tail probability and whether the channel is known (as
    ``Novelty._compute``)."""
    mu, var, cnt = r["mu"], r["var"], r["cnt"]
    floor = np.maximum(r["level"] * 1e-9, 1e-12)[:, None]
    sd = np.sqrt(np.maximum(np.nan_to_num(var), 0.0))
    known = cnt >= cfg.min_distances
    if r.get("arc"):  # the column before the sequence model's, or the last
        col = -2 if r["sequence"] else -1
        known[:, col] = cnt[:, col] >= _ARC_MIN_MEANS
    if r["sequence"]:
        known[:, -1] &= cnt[:, -1] >= _SEQ_MIN_SURPRISES
    with np.errstate(invalid="ignore"):
        z = (r["dist"] - mu) / np.maximum(sd, np.maximum(1e-6 * np.abs(mu), floor))
    return log10_gauss_tail(np.where(np.isfinite(z) & known, z, 0.0)), known


def combine(r: Record, dec: np.ndarray, known: np.ndarray, cfg: NoveltyConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    """Decades before fatigue, and readiness (as ``Novelty._compute``)."""
    k = len(cfg.windows)
    fine = np.median(dec[:, :k], axis=1)
    if r["sequence"]:
        both = np.median(np.column_stack([dec[:, :k], dec[:, -1]]), axis=1)
        fine = np.where(known[:, -1], both, fine)
    if r["has_lags"]:
        fine = np.maximum(fine, 0.5 * (fine + dec[:, k]))
        k += 1
    return np.max(np.column_stack([fine, dec[:, k:]]), axis=1), known[:, :len(cfg.windows)].all(1)


def post(decades: np.ndarray, ready: np.ndarray, cfg: NoveltyConfig) -> np.ndarray:
    """Alarm fatigue and the refractory period, point by point (as ``Novelty._update``)."""
    keep = 2.0 ** (-1.0 / cfg.fatigue_halflife)
    out = np.zeros(len(decades))
    load, cool = 0.0, 0
    for i, d in enumerate(decades):
        d = max(d - cfg.fatigue_decades * load * keep, 0.0) if ready[i] else 0.0
        out[i] = 0.0 if cool > 0 else d
        alarm = bool(ready[i]) and d >= cfg.refractory_decades and cool == 0
        load = load * keep + alarm
        cool = cool - 1 if cool > 0 else (cfg.refractory if alarm else 0)
    return out


Combine = Callable[[Record, np.ndarray, np.ndarray, NoveltyConfig], tuple[np.ndarray, np.ndarray]]
Post = Callable[[np.ndarray, np.ndarray, NoveltyConfig], np.ndarray]


def replay_scores(rec: dict[str, Record], cfg: NoveltyConfig | None = None,
                  combine_fn: Combine = combine, post_fn: Post = post) -> dict[str, np.ndarray]:
    """Anomaly score per point of every recorded file under the given last stages."""
    cfg = cfg or NoveltyConfig()
    out = {}
    for name, r in rec.items():
        dec, known = channel_decades(r, cfg)
        decades, ready = combine_fn(r, dec, known, cfg)
        out[name] = -np.expm1(-post_fn(decades, ready, cfg) * _LN10)
    return out


def standard(rec: dict[str, Record], scores: dict[str, np.ndarray]) -> Any:
    """NAB's standard profile over the recorded files."""
    return score_profile([(scores[k], rec[k]["windows"]) for k in sorted(rec)],
                         Cost.of(DEFAULT_PROFILES["standard"]), "standard")


# ------------------------------------------------------------------------- command line


def _record_all(files: list[NabFile], jobs: int) -> Iterator[tuple[str, Record]]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from zip((f.name for f in files), pool.map(record_file, files), strict=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("record", help="run novelty over NAB and store the channels")
    rp.add_argument("--data", type=Path, default=Path("../shared/datasets/nab"))
    rp.add_argument("--out", type=Path, required=True)
    rp.add_argument("--jobs", type=int, default=2)
    pp = sub.add_parser("replay", help="replay the last stages and score")
    pp.add_argument("recording", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        files = sorted(load_corpus(args.data), key=len, reverse=True)
        rec = {}
        for n, (name, r) in enumerate(_record_all(files, args.jobs), 1):
            rec[name] = r
            print(f"[{n}/{len(files)}] {name}", file=sys.stderr)
        args.out.write_bytes(pickle.dumps(rec))
    else:
        rec = pickle.loads(args.recording.read_bytes())
    shipped = standard(rec, {k: r["score"] for k, r in rec.items()})
    again = standard(rec, replay_scores(rec))
    print(f"shipped: {shipped.score:.3f} ({shipped.windows_detected} windows, "
          f"{shipped.false_positives} FP rows); replay: {again.score:.3f}")
    return 0 if math.isclose(shipped.score, again.score, abs_tol=1e-9) else 1


if __name__ == "__main__":
    raise SystemExit(main())
