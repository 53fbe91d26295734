"""``cxmon bench nab``: run a detector over the Numenta Anomaly Benchmark and score it.

The scorer is our own implementation of NAB v1.1's published rules (Lavin & Ahmad 2015,
``nab/sweeper.py``), vectorized:

* each labelled window ``[start, end]`` (row indices, inclusive) rewards the *first*
  detection in it with ``A_TP * S(p) / S(-1)``, where ``p = -(end - i + 1) / width`` is the
  relative position of row ``i`` and ``S(p) = 2 * sigmoid(-5 p) - 1``; an early detection
  earns about 1, one at the window's end about 0. A window without a detection costs
  ``-A_FN``;
* every detection outside a window costs ``A_FP * S(p)``: ``p = |i - end| / (width - 1)`` of
  the preceding window (``S = -1`` beyond ``p > 3``), or ``-A_FP`` before the first window;
* the first 15 % of each file (at most 750 rows) is probationary and not scored;
* one threshold for the whole corpus: every distinct anomaly score is tried and the best total
  kept, per profile (standard, reward_low_FP_rate, reward_low_FN_rate);
* normalized 0-100 between the null detector (no detections: ``-A_FN`` per window) and the
  perfect one (``A_TP`` per window).

The detector runs streaming over every file from scratch with one parameter set: row ``i``
is scored from rows ``<= i`` only (``score`` then ``learn``, the columnar contract), the
post-rules' default decision marks points learned cautiously, and the interval of each file is
its median timestamp step. Files of the same interval share one detector instance as separate
series, which the contract guarantees is the same as running them one at a time.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
import yaml

PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
DEFAULT_PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0},
}
PROBATION_PERCENT = 0.15
NOTES = (
    "Scores are NAB-normalized (null detector 0, perfect detector 100) with the threshold "
    "swept over the whole corpus per profile, as NAB does; the published rows come from "
    "results/final_results.json. Each file is scored from scratch, streaming, one parameter "
    "set for all files. Seconds are wall time on the machine named above."
)


@dataclass(frozen=True, slots=True)
class Cost:
    """One NAB application profile's weights."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0

    @classmethod
    def of(cls, matrix: Mapping[str, float]) -> Cost:
        return cls(float(matrix["tpWeight"]), float(matrix["fpWeight"]),
                   float(matrix["fnWeight"]))


@dataclass(slots=True)
class NabFile:
    """One data file of the corpus with its labelled windows as row indices (inclusive)."""

    name: str  # e.g. "realKnownCause/nyc_taxi.csv"
    timestamps: np.ndarray  # datetime64[ns]
    values: np.ndarray  # float64
    windows: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


# ---------------------------------------------------------------------------- scoring


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's ``S(p) = 2 sigmoid(-5p) - 1``, and ``-1`` for ``p > 3``.

    >>> scaled_sigmoid(np.array([-1.0, 0.0, 1.0, 3.5])).round(5).tolist()
    [0.98661, 0.0, -0.98661, -1.0]
    """
    p = np.asarray(position, dtype=np.float64)
    return np.where(p > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0)


def probationary_length(n: int, percent: float = PROBATION_PERCENT) -> float:
    """Rows at the start of a file that are not scored: ``min(floor(15% n), 750)``."""
    return min(math.floor(percent * n), percent * 5000)


def sweep_scores(n: int, windows: Sequence[tuple[int, int]], cost: Cost) -> np.ndarray:
    """The weighted score a detection at each row would earn (NAB's ``sweepScore``)."""
    idx = np.arange(n, dtype=np.float64)
    out = np.full(n, -cost.fp)  # before any window: a plain false positive
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (lo, hi) in enumerate(windows):
        width = float(hi - lo + 1)
        inside = idx[lo:hi + 1]
        out[lo:hi + 1] = scaled_sigmoid(-(hi - inside + 1) / width) * cost.tp / max_tp
        nxt = windows[k + 1][0] if k + 1 < len(windows) else n
        after = idx[hi + 1:nxt]
        if len(after):
            with np.errstate(divide="ignore", invalid="ignore"):
                out[hi + 1:nxt] = scaled_sigmoid(np.abs(hi - after) / (width - 1.0)) * cost.fp
    return out


@dataclass(frozen=True, slots=True)
class Sweep:
    """Corpus score at every candidate threshold (descending; the first detects nothing)."""

    thresholds: np.ndarray
    scores: np.ndarray
    windows_detected: np.ndarray
    false_positives: np.ndarray
    n_windows: int

    def best(self) -> int:
        """Index of the best threshold (the highest one among equal scores, as NAB)."""
        return int(np.argmax(self.scores))


def sweep_corpus(
    files: Sequence[tuple[np.ndarray, Sequence[tuple[int, int]]]], cost: Cost
) -> Sweep:
    """Threshold sweep over a corpus of ``(anomaly_scores, windows)`` pairs, one per file.

    A point is a detection when its score is ``>=`` the threshold. Every distinct score is a
    candidate; the result equals NAB's ``Sweeper.calcScoreByThreshold`` over the corpus.
    """
    thr: list[np.ndarray] = []
    delta: list[np.ndarray] = []
    d_win: list[np.ndarray] = []
    d_fp: list[np.ndarray] = []
    n_windows = 0
    for raw, windows in files:
        s = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0)
        n = len(s)
        sweep = sweep_scores(n, windows, cost)
        scored = np.arange(n) >= probationary_length(n)
        outside = scored.copy()
        for lo, hi in windows:
            outside[lo:hi + 1] = False
            rows = np.arange(lo, hi + 1)
            rows = rows[scored[lo:hi + 1]]
            if len(rows) == 0:
                continue
            n_windows += 1
            ws = s[rows]
            prev_max = np.concatenate(([-np.inf], np.maximum.accumulate(ws)[:-1]))
            rec = ws > prev_max  # the first row at or above each new, lower threshold
            value = np.maximum.accumulate(np.maximum(sweep[rows][rec][::-1], -cost.fn))
            gains = np.diff(np.concatenate(([-cost.fn], value)))
            thr.append(ws[rec][::-1])
            delta.append(gains)
            d_win.append(np.eye(1, len(gains), 0).ravel())
            d_fp.append(np.zeros(len(gains)))
        thr.append(s[outside])
        delta.append(sweep[outside])
        d_win.append(np.zeros(int(outside.sum())))
        d_fp.append(np.ones(int(outside.sum())))
    t = np.concatenate(thr) if thr else np.zeros(0)
    order = np.argsort(-t, kind="stable")
    t = t[order]
    cum = np.cumsum(np.concatenate(delta)[order]) if len(t) else np.zeros(0)
    cw = np.cumsum(np.concatenate(d_win)[order]) if len(t) else np.zeros(0)
    cf = np.cumsum(np.concatenate(d_fp)[order]) if len(t) else np.zeros(0)
    last = np.flatnonzero(np.append(t[1:] != t[:-1], True)) if len(t) else np.zeros(0, int)
    base = -cost.fn * n_windows
    return Sweep(
        thresholds=np.concatenate(([1.1], t[last])),
        scores=np.concatenate(([base], base + cum[last])),
        windows_detected=np.concatenate(([0], cw[last])).astype(np.int64),
        false_positives=np.concatenate(([0], cf[last])).astype(np.int64),
        n_windows=n_windows,
    )


@dataclass(frozen=True, slots=True)
class ProfileResult:
    profile: str
    score: float  # normalized 0-100
    raw: float
    threshold: float
    windows_detected: int
    n_windows: int
    false_positives: int
    null: float  # raw score of the null detector

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "raw": self.raw, "threshold": self.threshold,
            "windows_detected": self.windows_detected, "windows": self.n_windows,
            "false_positives": self.false_positives,
        }


def score_profile(
    files: Sequence[tuple[np.ndarray, Sequence[tuple[int, int]]]], cost: Cost, name: str = ""
) -> ProfileResult:
    """Best-threshold NAB score of a corpus for one profile, normalized with the null
    detector (a constant score: no useful threshold) and the perfect one (every window)."""
    sw = sweep_corpus(files, cost)
    i = sw.best()
    null = sweep_corpus([(np.full(len(s), 0.5), w) for s, w in files], cost)
    base = float(null.scores[null.best()])
    perfect = cost.tp * sw.n_windows
    raw = float(sw.scores[i])
    norm = 100.0 * (raw - base) / (perfect - base) if perfect != base else float("nan")
    return ProfileResult(name, norm, raw, float(sw.thresholds[i]), int(sw.windows_detected[i]),
                         sw.n_windows, int(sw.false_positives[i]), base)


def load_profiles(root: Path | None) -> dict[str, Cost]:
    """The profiles from ``config/profiles.json`` of the NAB folder, else NAB's defaults."""
    path = root / "config" / "profiles.json" if root else None
    if path is not None and path.exists():
        raw = json.loads(path.read_text())
        return {k: Cost.of(raw[k]["CostMatrix"]) for k in PROFILE_NAMES if k in raw}
    return {k: Cost.of(v) for k, v in DEFAULT_PROFILES.items()}


def score_all(
    files: Sequence[tuple[np.ndarray, Sequence[tuple[int, int]]]], profiles: Mapping[str, Cost]
) -> dict[str, ProfileResult]:
    return {name: score_profile(files, cost, name) for name, cost in profiles.items()}


# ---------------------------------------------------------------------------- corpus


def load_corpus(root: Path, only: Iterable[str] | None = None) -> list[NabFile]:
    """Every data file of the NAB folder ``root`` (``data/``, ``labels/combined_windows.json``),
    or those whose relative path or file name is in ``only``."""
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    wanted = set(only) if only is not None else None
    out = []
    for name in sorted(labels):
        if wanted is not None and name not in wanted and Path(name).name not in wanted:
            continue
        df = pd.read_csv(root / "data" / name)
        ts = pd.to_datetime(df["timestamp"]).to_numpy("datetime64[ns]")
        pos = {t: i for i, t in reversed(list(enumerate(ts.tolist())))}
        windows = []
        for lo, hi in labels[name]:
            a = pos[pd.Timestamp(lo).to_datetime64().astype("datetime64[ns]").tolist()]
            b = pos[pd.Timestamp(hi).to_datetime64().astype("datetime64[ns]").tolist()]
            windows.append((a, b))
        out.append(NabFile(name, ts, df["value"].to_numpy(np.float64), windows))
    if wanted is not None and len(out) < len(wanted):
        found = {f.name for f in out} | {Path(f.name).name for f in out}
        raise FileNotFoundError(f"not in the NAB labels: {sorted(wanted - found)}")
    return out


def infer_interval(timestamps: np.ndarray) -> timedelta:
    """The median step between timestamps (at least one second)."""
    steps = np.diff(timestamps.astype("datetime64[s]").astype(np.int64))
    step = float(np.median(steps)) if len(steps) else 60.0
    return timedelta(seconds=max(1.0, step))


# ---------------------------------------------------------------------------- detection


def _run_group(args: tuple[dict[str, Any], float, list[NabFile]]) -> dict[str, np.ndarray]:
    """Stream the files of one interval through one detector instance, row by row."""
    from detectors.base import TickBatch
    from detectors.postrules import PostRules
    from detectors.registry import create

    config, seconds, files = args
    det = create(dict(config), interval=timedelta(seconds=seconds))
    rules = PostRules()
    names = np.array([f.name for f in files], dtype=object)
    lengths = np.array([len(f) for f in files])
    longest = int(lengths.max())
    ts = np.zeros((len(files), longest), np.int64)
    vals = np.full((len(files), longest), np.nan)
    for j, f in enumerate(files):
        ts[j, : len(f)] = f.timestamps.astype(np.int64)
        vals[j, : len(f)] = f.values
    out = np.full((len(files), longest), np.nan)
    nan_vol = np.full(len(files), np.nan)
    for i in range(longest):
        live = np.flatnonzero(lengths > i)
        batch = TickBatch(names[live], ts[live, i], vals[live, i], nan_vol[live])
        scores = det.score(batch)
        out[live, i] = scores.score
        det.learn(batch, rules.decide(batch, scores))
    return {f.name: out[j, : len(f)] for j, f in enumerate(files)}


def run_detector(
    files: Sequence[NabFile], config: Mapping[str, Any], jobs: int = 1,
    on_done: Callable[[list[str], int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Anomaly score per row of every file (NaN scores, e.g. in warm-up, become 0).
    ``on_done(file_names, rows)`` is called as each group of files finishes (progress)."""
    groups: dict[float, list[NabFile]] = {}
    for f in files:
        groups.setdefault(infer_interval(f.timestamps).total_seconds(), []).append(f)
    tasks = []
    for seconds, group in groups.items():
        parts = max(1, min(jobs, len(group)))
        chunks: list[list[NabFile]] = [[] for _ in range(parts)]
        load = [0] * parts
        for f in sorted(group, key=len, reverse=True):
            k = load.index(min(load))
            chunks[k].append(f)
            load[k] += len(f)
        tasks += [(dict(config), seconds, c) for c in chunks if c]
    out: dict[str, np.ndarray] = {}

    def done(part: dict[str, np.ndarray]) -> None:
        out.update(part)
        if on_done is not None:
            on_done(list(part), sum(len(v) for v in part.values()))

    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for future in as_completed([pool.submit(_run_group, t) for t in tasks]):
                done(future.result())
    else:
        for task in tasks:
            done(_run_group(task))
    return {k: np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0) for k, v in out.items()}


# ---------------------------------------------------------------------------- validation


def load_published_results(results_dir: Path, detector: str, corpus: Sequence[NabFile]
                           ) -> list[np.ndarray] | None:
    """A published detector's per-row ``anomaly_score`` (``results/<det>/<cat>/<det>_<file>``),
    aligned with ``corpus``; ``None`` if any file is missing."""
    out = []
    for f in corpus:
        cat, base = f.name.split("/")
        path = results_dir / detector / cat / f"{detector}_{base}"
        if not path.exists():
            return None
        out.append(pd.read_csv(path, usecols=["anomaly_score"])["anomaly_score"].to_numpy(float))
    return out


def validate_scorer(results_dir: Path, corpus: Sequence[NabFile], profiles: Mapping[str, Cost],
                    published: Mapping[str, Mapping[str, float]],
                    thresholds: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Our scorer on each published detector's result files, beside its published scores:
    at our best threshold and, from ``config/thresholds.json``, at NAB's published one."""
    out: dict[str, dict[str, Any]] = {}
    for det in sorted(published):
        scores = load_published_results(results_dir, det, corpus)
        if scores is None:
            continue
        pairs = list(zip(scores, [f.windows for f in corpus], strict=True))
        ours = score_all(pairs, profiles)
        out[det] = {p: {"ours": r.score, "published": published[det].get(p)}
                    for p, r in ours.items()}
        for p, cost in profiles.items():
            at = (thresholds or {}).get(det, {}).get(p, {}).get("threshold")
            if at is not None:
                sw = sweep_corpus(pairs, cost)
                k = int(np.flatnonzero(sw.thresholds >= at)[-1])
                base = ours[p].null
                out[det][p]["ours_at_published_threshold"] = (
                    100.0 * (sw.scores[k] - base) / (cost.tp * sw.n_windows - base))
    return out


# ---------------------------------------------------------------------------- command


def parse_params(params: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; values are read as YAML scalars (``3``, ``0.5``, ``true``, ``12h``)."""
    out: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        out[key.strip()] = yaml.safe_load(value)
    return out


def detector_config(detector: str, params: Sequence[str], hint: str = "--detector"
                    ) -> dict[str, Any]:
    """``{"type": detector, **params}`` checked against the detector's config: an unknown type
    or a bad setting is a one-line usage error (exit 2), not a traceback."""
    from pydantic import ValidationError

    import detectors  # noqa: F401  (registers the built-in types)
    from detectors.registry import config_class, detector_types

    if detector not in detector_types():
        valid = ", ".join(sorted(detector_types()))
        hint_text = _did_you_mean(detector, detector_types())
        raise typer.BadParameter(f"unknown detector {detector!r}{hint_text}; valid: {valid}",
                                 param_hint=hint)
    config = {"type": detector, **parse_params(params)}
    cls = config_class(detector)
    try:
        cls.model_validate(config)
    except ValidationError as exc:
        fields = [f.alias or name for name, f in cls.model_fields.items() if name != "type"]
        raise typer.BadParameter(validation_message(exc, fields, config),
                                 param_hint="--param") from None
    return config


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validation_message(exc: Any, fields: Iterable[str] = (), data: Any = None) -> str:
    """A pydantic ``ValidationError`` as one line: ``key: problem; key: problem``, worded as
    the config file's problems are; an unknown key names the closest of ``fields`` (the
    config's settings)."""
    from monitor.config import validation_problems

    fields = list(fields)
    parts = []
    for where, msg in validation_problems(exc, data):
        if msg.startswith("unknown key"):  # no close one: list them, not a trip to the README
            msg = "unknown setting" + (_did_you_mean(where.rpartition(".")[2], fields)
                                       or (f" (settings: {', '.join(fields)})" if fields
                                           else ""))
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def _table(results: Mapping[str, Mapping[str, ProfileResult]],
           published: Mapping[str, Mapping[str, float]]) -> str:
    rows = [(f"**{name} (cxmon)**", {p: r.score for p, r in res.items()})
            for name, res in results.items()]
    rows += [(name, dict(vals)) for name, vals in published.items()]
    rows.sort(key=lambda r: -(r[1].get("standard") or -1e9))
    lines = ["| detector | standard | low FP | low FN |", "|---|---:|---:|---:|"]
    for name, vals in rows:
        cells = [f"{vals[p]:.2f}" if vals.get(p) is not None else "" for p in PROFILE_NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_nab(
    data: Path = typer.Option(..., "--data", metavar="<path>",
                              help="NAB folder (data/, labels/, config/, "
                              "results/final_results.json)."),
    detector: str = typer.Option("novelty", "--detector", metavar="<type>",
                                 help="Detector type (default: "
                                 "the streaming discord detector)."),
    param: list[str] = typer.Option([], "--param", metavar="<k=v>",
                                    help="Detector setting key=value "
                                    "(repeatable)."),
    files: list[str] = typer.Option([], "--file", metavar="<name>",
                                    help="Only these files (name or "
                                    "category/name; repeatable). Default: all 58."),
    also: list[str] = typer.Option([], "--also", metavar="<type>",
                                   help="More detector types (default "
                                   "settings) to run and list beside it (repeatable)."),
    jobs: int = typer.Option(min(2, os.cpu_count() or 1), "--jobs", help="Worker processes."),
    validate: Path | None = typer.Option(None, "--validate", metavar="<path>",
                                         help="A NAB results/ folder with "
                                         "published per-file results: score them with our "
                                         "scorer and compare to final_results.json."),
    json_out: Path | None = typer.Option(None, "--json", metavar="<path>",
                                         help="Write the figures here."),
    doc: Path | None = typer.Option(None, "--doc", metavar="<path>",
                                    help="Benchmarks document whose nab "
                                    "section a full run (no --file) rewrites; default: "
                                    "docs/benchmarks.md of the cxmon checkout. A --file "
                                    "subset run never writes it."),
) -> None:
    """Run a detector over the NAB corpus and score it with NAB's rules (3 profiles).

    Progress goes to stderr (a bar on a terminal, else a line per finished group of files)."""
    from monitor.bench.report import update_section, write_json

    config = detector_config(detector, param, "--detector")
    for extra in also:
        detector_config(extra, [], "--also")
    if jobs < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--jobs")
    for opt, path in (("--json", json_out), ("--doc", doc)):
        if path is not None and not path.parent.is_dir():
            raise typer.BadParameter(f"no directory {path.parent}", param_hint=opt)
    if validate is not None and not validate.is_dir():
        raise typer.BadParameter(f"{validate} is not a folder", param_hint="--validate")
    if not (data / "labels" / "combined_windows.json").is_file():
        raise typer.BadParameter(f"{data} has no labels/combined_windows.json (not a NAB "
                                 "folder?)", param_hint="--data")
    try:
        corpus = load_corpus(data, files or None)
    except FileNotFoundError as exc:
        hint = "--file" if str(exc).startswith("not in the NAB labels") else "--data"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    profiles = load_profiles(data)
    pub_path = data / "results" / "final_results.json"
    published = json.loads(pub_path.read_text()) if pub_path.exists() else {}
    rows = sum(len(f) for f in corpus)

    start = time.perf_counter()
    with _progress(detector, len(corpus), rows) as tick:
        scores = run_detector(corpus, config, jobs=jobs, on_done=tick)
    elapsed = time.perf_counter() - start
    results = score_all([(scores[f.name], f.windows) for f in corpus], profiles)
    label = detector + ("" if not param else " " + " ".join(param))
    ours = {label: results}
    others: dict[str, Any] = {}
    for extra in also:
        t0 = time.perf_counter()
        with _progress(extra, len(corpus), rows) as tick:
            extra_scores = run_detector(corpus, {"type": extra}, jobs=jobs, on_done=tick)
        spent = time.perf_counter() - t0
        ours[extra] = score_all([(extra_scores[f.name], f.windows) for f in corpus], profiles)
        others[extra] = {"seconds": spent,
                         "profiles": {p: r.as_dict() for p, r in ours[extra].items()}}

    table = _table(ours, published if not files else {})
    typer.echo(table)
    typer.echo(f"\n{len(corpus)} files, {rows} rows in {elapsed:.1f} s "
               f"({rows / max(elapsed, 1e-9):,.0f} rows/s, {jobs} jobs)")
    detail = [f"- {p}: raw {r.raw:.2f}, threshold {r.threshold:.6f}, windows detected "
              f"{r.windows_detected}/{r.n_windows}, false-positive rows {r.false_positives}"
              for p, r in results.items()]
    typer.echo("\n".join(detail))

    figures: dict[str, Any] = {
        "detector": config, "files": len(corpus), "rows": rows, "seconds": elapsed,
        "profiles": {p: r.as_dict() for p, r in results.items()},
        "published": published, "also": others,
    }
    body = [
        f"Detector `{detector}`" + (f" with {', '.join(param)}" if param else " (defaults)")
        + f", {len(corpus)} files, {rows:,} rows, streaming (row i scored from rows <= i), "
        f"each file from scratch; {elapsed:.1f} s with {jobs} processes. Scored by our "
        "implementation of NAB v1.1's rules (threshold swept per profile over the corpus).",
        "", table, "", f"`{detector}` at the best threshold of each profile:", "", *detail,
        *[f"- `{k}` (defaults) ran in {v['seconds']:.1f} s." for k, v in others.items()],
        "", NOTES,
    ]
    if validate is not None:
        thr_path = data / "config" / "thresholds.json"
        thresholds = json.loads(thr_path.read_text()) if thr_path.exists() else None
        check = validate_scorer(validate, corpus, profiles, published, thresholds)
        figures["scorer_validation"] = check
        pairs = [v for d in check.values() for v in d.values() if v["published"] is not None]
        at = [abs(v["ours_at_published_threshold"] - v["published"]) for v in pairs
              if "ours_at_published_threshold" in v]
        same = sum(abs(v["ours"] - v["published"]) < 1e-4 for v in pairs)
        higher = sum(v["ours"] - v["published"] >= 1e-4 for v in pairs)
        lower = len(pairs) - same - higher
        worst = max(at) if at else float("nan")
        lines = ["", "Scorer validation: our scorer on the published per-file results of "
                 f"{len(check)} detectors, beside `final_results.json`. At NAB's published "
                 f"thresholds (`config/thresholds.json`) {len(at)} of {len(pairs)} scores are "
                 f"reproduced, largest difference {worst:.6f} points. With our exhaustive "
                 f"threshold sweep {same} are identical, {higher} higher (NAB's published "
                 f"optimizer missed the best threshold there) and {lower} lower.", "",
                 "| detector | profile | ours (best threshold) | ours at NAB's threshold "
                 "| published |", "|---|---|---:|---:|---:|"]
        for det, vals in check.items():
            for p, v in vals.items():
                pubv = "" if v["published"] is None else f"{v['published']:.4f}"
                at = v.get("ours_at_published_threshold")
                atv = "" if at is None else f"{at:.4f}"
                lines.append(f"| {det} | {p} | {v['ours']:.4f} | {atv} | {pubv} |")
        typer.echo("\n".join(lines))
        body += lines
    write_json(json_out, figures)
    if files:
        typer.echo(f"note: the threshold was tuned on these {len(corpus)} file(s) only, so this "
                   "score is not comparable to a whole-corpus score or to the published "
                   "scoreboard", err=True)
        typer.echo("docs not updated (subset run: only a run over the whole corpus writes the "
                   "nab section)", err=True)
    else:
        update_section("nab", "\n".join(body), doc)


@contextmanager
def _progress(label: str, n_files: int, n_rows: int
              ) -> Iterator[Callable[[list[str], int], None]]:
    """A progress callback for ``run_detector``: a rich bar on stderr when it is a terminal,
    else one line per finished group of files (a log stays readable)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    err = Console(stderr=True)
    start = time.perf_counter()
    done = {"files": 0, "rows": 0}
    if err.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task(f"{label}: {n_files} files", total=n_rows)
            yield lambda _names, rows: bar.advance(task, rows)
        return

    def line(names: list[str], rows: int) -> None:
        done["files"] += len(names)
        done["rows"] += rows
        print(f"{label}: {done['files']}/{n_files} files, {done['rows']:,}/{n_rows:,} rows "
              f"done ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)

    yield line


def register(app: typer.Typer) -> None:
    """Add ``nab`` to the ``cxmon bench`` group."""
    app.command("nab")(bench_nab)
