"""``cxmon bench rca``: root-cause localisation quality (F1) and speed on generated KPI cubes.

The generator follows the semi-synthetic setup of the Squeeze paper (Li et al., ISSRE 2019),
made harder in the ways real CX data is hard:

* 3-5 dimensions with 10-30 values each; 10^4 leaves drawn with Zipf-like value popularity
  (a sparse cube: most combinations never occur), leaf volumes log-normal.
* Additive measures (counts) and ratio measures (numerator / denominator, e.g. drop-off).
* 1-3 root causes per case, all at one depth (1, 2 or 3), disjoint, each holding at least
  0.5 % of the total volume when the cube has such an element at that depth (else the
  busiest one found), found through a leaf drawn by volume, identifiable (no other element
  of the same depth covers exactly the same leaves), each with its own
  magnitude (-70 % .. -25 % or +30 % .. +150 %, the rate for a ratio). Every leaf below a root
  cause changes by that magnitude (the ripple effect) times its own noise.
* Realistic noise: forecast error of 2-10 % per leaf (sd, per case) on the expected values,
  Poisson noise on counts; for ratios, binomial numerators, plus a traffic shift (+/-40 % of
  the denominator at a normal rate) in a random non-cause element, which a method that looks
  at the numerator alone would blame.

F1 is element-level, as in the Squeeze paper: the top-ranked set against the injected set,
an element counting only when it matches exactly (same dimensions and values).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from itertools import product
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from detectors.rootcause import localize, prepare
from monitor.bench.options import DocOut, JsonOut
from monitor.bench.report import publish, write_json

KINDS = ("additive", "ratio")
DEPTHS = (1, 2, 3)
COUNTS = (1, 2, 3)
#: An injected root cause holds at least this share of the total volume: a smaller segment
#: does not move the total enough to raise the alert that root-cause analysis explains.
MIN_CAUSE_SHARE = 0.005


@dataclass(frozen=True, slots=True)
class Case:
    """One generated cube: leaf rows and the injected root causes (ground truth)."""

    kind: str
    leaves: pd.DataFrame  # dims..., actual, expected[, denominator, expected_denominator]
    dimensions: tuple[str, ...]
    truth: tuple[dict[str, str], ...]


def generate_case(
    rng: np.random.Generator,
    *,
    kind: str,
    n_causes: int,
    depth: int,
    n_leaves: int = 10_000,
    n_dims: int | None = None,
) -> Case:
    """A random cube with ``n_causes`` injected root causes at ``depth``."""
    n_dims = n_dims or int(rng.integers(3, 6))
    sizes = rng.integers(10, 31, size=n_dims)
    dims = tuple(f"d{i}" for i in range(n_dims))
    codes = _leaf_codes(rng, sizes, n_leaves)
    n = len(codes)
    base = np.exp(rng.normal(np.log(200.0), 1.0, size=n))  # expected volume per leaf
    truth, masks = _causes(rng, codes, base, n_causes, depth)
    noise = rng.uniform(0.02, 0.10)  # forecast error (relative sd) of this case
    magnitude = np.ones(n)
    for m in masks:
        down = rng.random() < 0.5
        magnitude[m] = 1.0 + (rng.uniform(-0.7, -0.25) if down else rng.uniform(0.3, 1.5))
    cols: dict[str, np.ndarray] = {}
    if kind == "additive":
        truth_vals = base * np.exp(rng.normal(0.0, noise, size=n))
        cols["actual"] = rng.poisson(truth_vals * magnitude).astype(float)
        cols["expected"] = base
    else:
        rate = rng.beta(4.0, 10.0, size=n)  # ~0.29 mean
        traffic = np.exp(rng.normal(0.0, noise, size=n))
        shift = _distractor(rng, codes, masks)
        traffic[shift] *= rng.choice([0.6, 1.4])
        den = rng.poisson(base * traffic).astype(float)
        true_rate = np.clip(rate * np.exp(rng.normal(0.0, noise, size=n)) * magnitude, 0, 0.98)
        cols["actual"] = rng.binomial(den.astype(np.int64), true_rate).astype(float)
        cols["denominator"] = den
        cols["expected"] = rate * base
        cols["expected_denominator"] = base
    frame = pd.DataFrame({d: [f"{d}v{c}" for c in codes[:, i]] for i, d in enumerate(dims)})
    for k, v in cols.items():
        frame[k] = v
    named = tuple({dims[d]: f"{dims[d]}v{c}" for d, c in t.items()} for t in truth)
    return Case(kind, frame, dims, named)


def _leaf_codes(rng: np.random.Generator, sizes: np.ndarray, n_leaves: int) -> np.ndarray:
    """Unique leaf combinations, values drawn with Zipf-like popularity (s = 0.8)."""
    full = int(np.prod(sizes))
    if full <= n_leaves:
        grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1)
    probs = []
    for s in sizes:
        p = 1.0 / np.arange(1, s + 1) ** 0.8
        probs.append(rng.permutation(p / p.sum()))
    seen: np.ndarray = np.zeros((0, len(sizes)), dtype=np.int64)
    while len(seen) < n_leaves:
        draw = np.stack([rng.choice(len(p), size=n_leaves, p=p) for p in probs], axis=1)
        seen = np.unique(np.concatenate([seen, draw]), axis=0)
    return seen[rng.permutation(len(seen))[:n_leaves]]


def _causes(
    rng: np.random.Generator, codes: np.ndarray, volume: np.ndarray, n_causes: int, depth: int
) -> tuple[list[dict[int, int]], list[np.ndarray]]:
    """Disjoint elements at ``depth``, each found through a leaf drawn by volume (so it exists
    and busy segments are likelier), holding at least MIN_CAUSE_SHARE of the total volume
    (else the busiest candidate seen), and identifiable: no other element of the same depth
    covers exactly the same leaves (in a sparse cube a single leaf has many names)."""
    n, n_dims = codes.shape
    taken = np.zeros(n, dtype=bool)
    truth: list[dict[int, int]] = []
    masks: list[np.ndarray] = []
    p = volume / volume.sum()
    while len(truth) < n_causes:
        best: tuple[float, dict[int, int], np.ndarray] | None = None
        for _ in range(100):
            dims = sorted(int(d) for d in rng.choice(n_dims, size=depth, replace=False))
            leaf = int(rng.choice(n, p=p))
            element = {d: int(codes[leaf, d]) for d in dims}
            mask = np.all(codes[:, dims] == list(element.values()), axis=1)
            share = float(volume[mask].sum() / volume.sum())
            if taken[mask].any() or share > 0.3 or not _identifiable(codes, dims, mask):
                continue
            if best is None or share > best[0]:
                best = (share, element, mask)
            if share >= MIN_CAUSE_SHARE:
                break
        if best is None:
            break
        taken |= best[2]
        truth.append(best[1])
        masks.append(best[2])
    return truth, masks


def _identifiable(codes: np.ndarray, dims: list[int], mask: np.ndarray) -> bool:
    """No other combination of ``len(dims)`` dimensions names exactly the leaves in ``mask``."""
    from itertools import combinations

    for other in combinations(range(codes.shape[1]), len(dims)):
        if list(other) == dims:
            continue
        sub = codes[mask][:, list(other)]
        if (sub == sub[0]).all():
            same = np.all(codes[:, list(other)] == sub[0], axis=1)
            if (same == mask).all():
                return False
    return True


def _distractor(rng: np.random.Generator, codes: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """A depth-1 element outside the causes whose traffic shifts at a normal rate."""
    cause = np.any(masks, axis=0) if masks else np.zeros(len(codes), dtype=bool)
    d = int(rng.integers(codes.shape[1]))
    for leaf in rng.permutation(len(codes))[:50]:
        m = codes[:, d] == codes[leaf, d]
        if not (m & cause).any():
            return m
    return np.zeros(len(codes), dtype=bool)


def f1(found: tuple[dict[str, str], ...], truth: tuple[dict[str, str], ...]) -> float:
    """Element-level F1 of a found set against the injected set."""
    f = {tuple(sorted(e.items())) for e in found}
    t = {tuple(sorted(e.items())) for e in truth}
    tp = len(f & t)
    if tp == 0:
        return 1.0 if not f and not t else 0.0
    precision, recall = tp / len(f), tp / len(t)
    return 2 * precision * recall / (precision + recall)


def run_case(case: Case) -> tuple[float, float]:
    """(F1 of the top-ranked set, seconds) for one case."""
    score, seconds, _ = timed_case(case)
    return score, seconds


def timed_case(case: Case) -> tuple[float, float, float]:
    """(F1 of the top-ranked set, wall seconds, CPU seconds of this process) for one case."""
    ratio = case.kind == "ratio"
    c0 = time.process_time()
    t0 = time.perf_counter()
    cube = prepare(
        case.leaves,
        case.dimensions,
        actual="actual",
        expected="expected",
        denominator="denominator" if ratio else None,
        expected_denominator="expected_denominator" if ratio else None,
    )
    causes = localize(cube, top=1)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    found = causes[0].elements if causes else ()
    return f1(found, case.truth), seconds, cpu


def run_benchmark(cases: int, seed: int, n_leaves: int) -> dict[str, object]:
    """Every (kind, root causes, depth) setting, ``cases`` cubes each."""
    rng = np.random.default_rng(seed)
    settings = []
    for kind, count, depth in product(KINDS, COUNTS, DEPTHS):
        scores, times, cpus = [], [], []
        for _ in range(cases):
            case = generate_case(rng, kind=kind, n_causes=count, depth=depth, n_leaves=n_leaves)
            score, seconds, cpu = timed_case(case)
            scores.append(score)
            times.append(seconds)
            cpus.append(cpu)
        settings.append(
            {
                "kind": kind,
                "root_causes": count,
                "depth": depth,
                "cases": cases,
                "f1": float(np.mean(scores)),
                "mean_seconds": float(np.mean(times)),
                "max_seconds": float(np.max(times)),
                "mean_cpu_seconds": float(np.mean(cpus)),
                "max_cpu_seconds": float(np.max(cpus)),
            }
        )
    by_kind = {
        k: float(np.mean([s["f1"] for s in settings if s["kind"] == k])) for k in KINDS
    }
    return {
        "leaves": n_leaves,
        "cases_per_setting": cases,
        "seed": seed,
        "settings": settings,
        "mean_f1": by_kind,
        "mean_seconds": float(np.mean([s["mean_seconds"] for s in settings])),
        "max_seconds": float(np.max([s["max_seconds"] for s in settings])),
        "mean_cpu_seconds": float(np.mean([s["mean_cpu_seconds"] for s in settings])),
        "max_cpu_seconds": float(np.max([s["max_cpu_seconds"] for s in settings])),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _markdown(fig: dict[str, object]) -> str:
    lines = [
        f"Generated cubes: {fig['leaves']} leaves, 3-5 dimensions of 10-30 values, "
        f"{fig['cases_per_setting']} cases per setting, seed {fig['seed']}. F1 of the "
        "top-ranked set (element level, as in the Squeeze paper); time per case includes "
        "preparing the cube; wall-clock and CPU seconds of the process (the CPU figure is "
        f"what a case costs when the machine is shared; load average {fig['load_average']:.1f}).",
        "",
        "| measure | root causes | depth | F1 | mean s/case | max s/case | mean CPU s | "
        "max CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in fig["settings"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {s['kind']} | {s['root_causes']} | {s['depth']} | {s['f1']:.3f} | "
            f"{s['mean_seconds']:.3f} | {s['max_seconds']:.3f} | "
            f"{s['mean_cpu_seconds']:.3f} | {s['max_cpu_seconds']:.3f} |"
        )
    mean = fig["mean_f1"]
    lines += [
        "",
        f"Mean F1: additive {mean['additive']:.3f}, ratio {mean['ratio']:.3f} "  # type: ignore[index]
        f"(goal >= 0.9). Time per case: mean {fig['mean_seconds']:.3f} s, "
        f"max {fig['max_seconds']:.3f} s; CPU mean {fig['mean_cpu_seconds']:.3f} s, "
        f"max {fig['max_cpu_seconds']:.3f} s (goal <= 1 s).",
    ]
    return "\n".join(lines)


def bench_rca(
    cases: Annotated[int, typer.Option(help="Cases per setting.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    leaves: Annotated[int, typer.Option(help="Leaves per cube.")] = 10_000,
    json_file: JsonOut = None,
    doc: DocOut = None,
) -> None:
    """Root-cause localisation: F1 per setting and time per case on generated cubes."""
    fig = run_benchmark(cases, seed, leaves)
    table = Table(title="cxmon bench rca")
    for col in ("measure", "root causes", "depth", "F1", "mean s", "max s"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for s in fig["settings"]:  # type: ignore[attr-defined]
        table.add_row(s["kind"], str(s["root_causes"]), str(s["depth"]), f"{s['f1']:.3f}",
                      f"{s['mean_seconds']:.3f}", f"{s['max_seconds']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"mean F1 {fig['mean_f1']}; time per case mean {fig['mean_seconds']:.3f} s, "
                  f"max {fig['max_seconds']:.3f} s; CPU mean {fig['mean_cpu_seconds']:.3f} s, "
                  f"max {fig['max_cpu_seconds']:.3f} s")
    write_json(json_file, fig)
    publish("rca", _markdown(fig), doc, {"cases": cases, "leaves": leaves},
            {"cases": PUBLISHED_SIZE[0], "leaves": PUBLISHED_SIZE[1]})


#: the smallest run whose figures ``docs/benchmarks.md`` publishes (cases, leaves per cube)
PUBLISHED_SIZE = (15, 10_000)


def register(app: typer.Typer) -> None:
    app.command("rca")(bench_rca)
