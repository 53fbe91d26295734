"""``cxmon bench detect``: detector throughput, state size, fit rate, and accuracy on the
demo's scripted incidents.

* **Throughput** (streaming detectors): ``--series N`` generated CX-like hourly series
  (drop-off rates with volumes, complaint counts, CSAT-like levels; daily and weekly shape,
  noise, spikes, gaps) for ``--ticks T`` ticks; only ``score`` + ``learn`` are timed (data
  generation is not), in CPU seconds of the process (one thread: the figure is per core and
  does not depend on what else the machine runs). Reported as series-points per second, and the mean
  checkpoint bytes per series. Per-point (``river``) and history-search (``novelty``)
  detectors run on a subset.
* **Fits per second**: Prophet (``fit_forecast`` on two weeks of hourly history, inline)
  and the seasonal baseline (building a series' baseline from four weeks of history,
  vectorized over many series).
* **Demo accuracy**: each detector as the demo config's ``default``, backtested over the
  demo's four weeks. Anomalies of a journey closer than 3 h form one alert; an alert is a
  true positive when it overlaps a scripted incident of that journey (window + 3 h).
  Precision = true alerts / alerts, recall = incidents found / incidents, time to detect =
  first anomaly in the window - incident start (median over found incidents).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from monitor.bench.options import DocOut, JsonOut

H = 3_600 * 10**9
START = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC (a Monday)
STREAMING = ("robust_seasonal", "seasonal_baseline")
_JOURNEY = re.compile(r'journey="([^"]*)"')


class SeriesGenerator:
    """CX-like hourly series, one tick at a time (so 100k series x T ticks fit in memory)."""

    def __init__(self, n: int, seed: int = 7) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.kind = np.arange(n) % 3  # 0 rate with volume, 1 count, 2 level (CSAT-like)
        self.base = self.rng.uniform(0.5, 2.0, n)
        self.keys = np.array([f'kpi{{journey="j{i % 8}",slice="{i}"}}' for i in range(n)],
                             dtype=object)

    def tick(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        hour, dow = t % 24, (t // 24) % 7
        shape = 1.0 + 0.5 * np.sin((hour - 8) / 24 * 2 * np.pi) - 0.3 * (dow >= 5)
        rng = self.rng
        vol = np.round(500 * self.base * shape * rng.uniform(0.8, 1.2, self.n))
        rate = np.clip(0.3 + 0.05 * shape + rng.normal(0, 0.02, self.n), 0, 1)
        counts = rng.poisson(20 * self.base * shape).astype(np.float64)
        level = 4.2 + 0.2 * shape + rng.normal(0, 0.05, self.n)
        values = np.where(self.kind == 0, rate, np.where(self.kind == 1, counts, level))
        values = np.where(rng.random(self.n) < 0.002, values * 3 + 1, values)
        values[rng.random(self.n) < 0.01] = np.nan
        volumes = np.where(self.kind == 0, vol, np.nan)
        return self.keys, np.full(self.n, START + t * H, np.int64), values, volumes


def throughput(type_name: str, n: int, ticks: int) -> dict[str, Any]:
    """Series-points/s of score + learn, and mean state bytes per series."""
    from detectors.base import TickBatch
    from detectors.registry import create

    det = create({"type": type_name}, interval=timedelta(hours=1))
    gen = SeriesGenerator(n)
    spent = 0.0
    points = 0
    for t in range(ticks):
        keys, ts, values, volumes = gen.tick(t)
        batch = TickBatch(keys, ts, values, volumes)
        t0 = time.process_time()
        scores = det.score(batch)
        det.learn(batch, np.nan_to_num(scores.score) >= 0.9999)
        spent += time.process_time() - t0
        points += n
    sample = list(gen.keys[: min(n, 1000)])
    state = det.get_state(sample)
    return {
        "series": n, "ticks": ticks, "seconds": round(spent, 3),
        "points_per_s": round(points / spent) if spent else None,
        "state_bytes_per_series": round(sum(map(len, state.values())) / max(len(state), 1)),
    }


def prophet_fits_per_s(fits: int = 5) -> dict[str, Any]:
    from detectors.prophet_detector import fit_forecast

    ts, values, settings = _fit_inputs()
    fit_forecast(ts, values, settings, H, 48)  # warm (Stan model load)
    t0 = time.perf_counter()  # wall time: Stan runs in a subprocess
    for _ in range(fits):
        fit_forecast(ts, values, settings, H, 48)
    spent = time.perf_counter() - t0
    return {"fits": fits, "seconds": round(spent, 3), "fits_per_s": round(fits / spent, 2),
            "history_points": len(values)}


def _fit_inputs() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Two weeks of one hourly series: what :func:`prophet_fits_per_s` fits."""
    from detectors.prophet_detector import ProphetConfig

    gen = SeriesGenerator(1, seed=3)
    hist = np.array([gen.tick(t)[2][0] for t in range(24 * 14)])
    ts = START + H * np.arange(len(hist), dtype=np.int64)
    ok = np.isfinite(hist)
    return ts[ok], hist[ok], ProphetConfig().model_dump(mode="json")


def dask_fits_per_s(fits: int, workers: int = 0, scheduler: str | None = None) -> dict[str, Any]:
    """Prophet fits per second through ``monitor.executor`` with ``executor: {type: dask}``:
    ``fits`` handed out together (as ``cxmon run --once`` does), wall time until all are back.
    On ``scheduler``, or on a LocalCluster of ``workers`` processes of one thread each."""
    from concurrent.futures import wait

    from detectors.prophet_detector import fit_forecast
    from monitor.config import DaskExecutorConfig
    from monitor.executor import open_executor

    cluster = None
    if scheduler is None:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               protocol="tcp", dashboard_address=None)
        scheduler = cluster.scheduler_address
    ts, values, settings = _fit_inputs()
    try:
        config = DaskExecutorConfig(type="dask", address=scheduler)
        with open_executor(config) as ex:
            n_workers = len(ex._client.scheduler_info()["workers"])
            warm = [ex.executor.submit(fit_forecast, ts, values, settings, H, 48)
                    for _ in range(2 * max(n_workers, 1))]  # Stan model load, per worker
            wait(warm)
            t0 = time.perf_counter()
            futures = [ex.executor.submit(fit_forecast, ts, values, settings, H, 48)
                       for _ in range(fits)]
            wait(futures)
            spent = time.perf_counter() - t0
            failed = sum(f.exception() is not None for f in futures)
    finally:
        if cluster is not None:
            cluster.close()
    return {"fits": fits, "workers": n_workers, "seconds": round(spent, 3), "failed": failed,
            "fits_per_s": round(fits / spent, 2), "scheduler": "local" if cluster else scheduler}


def baseline_fits_per_s(n: int = 10_000, weeks: int = 4) -> dict[str, Any]:
    """Building the baseline of ``n`` series from ``weeks`` of hourly history."""
    from detectors.base import TickBatch
    from detectors.registry import create

    det = create({"type": "seasonal_baseline"}, interval=timedelta(hours=1))
    gen = SeriesGenerator(n, seed=5)
    ticks = [gen.tick(t) for t in range(weeks * 168)]
    none = np.zeros(n, bool)
    t0 = time.process_time()
    for keys, ts, values, volumes in ticks:
        det.learn(TickBatch(keys, ts, values, volumes), none)
    spent = time.process_time() - t0
    return {"series": n, "history_points": weeks * 168, "seconds": round(spent, 3),
            "fits_per_s": round(n / spent)}


def demo_accuracy(type_name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Precision, recall and median time-to-detect on the demo's scripted incidents."""
    from detectors.registry import config_class
    from monitor.backtest import run_backtest
    from monitor.config import load_config
    from sources.demo import incidents_at

    anchor = datetime(2026, 1, 5, tzinfo=UTC)
    path = resources.files("monitor.examples").joinpath("demo.yaml")
    env = {**os.environ, "CXMON_DEMO_STORE": "sqlite://",
           "CXMON_DEMO_ANCHOR": anchor.isoformat().replace("+00:00", "Z")}
    config = load_config(Path(str(path)), env=env)
    config.detectors["default"] = config_class(type_name).model_validate(
        {"type": type_name, **(params or {})})
    end = anchor + timedelta(days=28)
    found = run_backtest(config, [m.name for m in config.metrics], anchor, end).anomalies
    truth = incidents_at(anchor)
    events: list[tuple[str, datetime, datetime]] = []  # journey, first, last
    if len(found):
        found = found.assign(
            ts=[datetime.fromisoformat(str(x)) if isinstance(x, str) else x.to_pydatetime()
                for x in found["timestamp"]],
            journey=[(_JOURNEY.search(s) or [None, ""])[1] for s in found["series"]])
        for journey, part in found.sort_values("ts").groupby("journey"):
            first = last = None
            for ts in part["ts"]:
                if last is not None and ts - last <= timedelta(hours=3):
                    last = ts
                    continue
                if first is not None:
                    events.append((str(journey), first, last))
                first = last = ts
            if first is not None:
                events.append((str(journey), first, last))

    def hits(ev: tuple[str, datetime, datetime], inc: Any) -> bool:
        return (ev[0] == inc.journey and ev[1] < inc.end + timedelta(hours=3)
                and ev[2] >= inc.start)

    true_events = sum(any(hits(ev, inc) for inc in truth) for ev in events)
    ttd = []
    for inc in truth:
        starts = [max(ev[1], inc.start) for ev in events if hits(ev, inc)]
        if starts:
            ttd.append((min(starts) - inc.start) / timedelta(hours=1))
    return {
        "alerts": len(events), "true_alerts": true_events,
        "precision": round(true_events / len(events), 3) if events else None,
        "recall": round(len(ttd) / len(truth), 3), "incidents": len(truth),
        "median_ttd_hours": float(np.median(ttd)) if ttd else None,
    }


def bench_detect(
    series: Annotated[int, typer.Option("--series", help="Generated series.")] = 10_000,
    ticks: Annotated[int, typer.Option("--ticks", help="Ticks (hourly points) per series.")]
    = 288,
    json_path: JsonOut = None,
    accuracy: Annotated[bool, typer.Option(help="Backtest the demo incidents per detector "
                                           "(section detect-demo).")] = True,
    speed: Annotated[bool, typer.Option(help="Measure throughput, state and fits per second "
                                        "(section detect).")] = True,
    doc: DocOut = None,
    dask: Annotated[int, typer.Option("--dask", help="Also fit Prophet through the Dask "
                                      "executor on a local cluster of N one-thread worker "
                                      "processes (section detect-dask).")] = 0,
    scheduler: Annotated[str | None, typer.Option("--scheduler", metavar="<addr>",
                                                  help="... or on the Dask "
                                                  "scheduler at ADDR (tcp://host:port).")]
    = None,
    fits: Annotated[int, typer.Option("--fits", help="Prophet fits per run of the Dask "
                                      "comparison (in-process and on Dask).")] = 40,
) -> None:
    """Throughput (series-points/s, one core), state bytes per series, fits per second, and
    precision / recall / time-to-detect on the demo's scripted incidents, per detector."""
    import detectors  # noqa: F401
    from detectors.registry import detector_types
    from monitor.bench.report import write_json

    figures: dict[str, Any] = {"series": series, "ticks": ticks, "throughput": {}}
    streaming = [t for t in detector_types() if t not in ("prophet", *SUBSET_DETECTORS)]
    if speed:
        _speed(figures, streaming, series, ticks, doc)
    if dask or scheduler:
        _dask(figures, fits, dask, scheduler, doc)
    if accuracy:
        # a quick try-out (--series 1000 --ticks 50) leaves the checkout alone, the accuracy
        # section too (it would be stamped with the try-out's command): --no-speed publishes it
        small = speed and doc is None and (series < PUBLISHED_SIZE[0]
                                           or ticks < PUBLISHED_SIZE[1])
        _accuracy(figures, streaming, doc, write=not small)
    write_json(json_path, figures)


#: Detectors too slow or too large per series for the full run, measured on (series, ticks):
#: ``river`` scores point by point; ``novelty`` searches 4,000 points of history per point.
SUBSET_DETECTORS: dict[str, tuple[int, int]] = {"river": (50, 300), "novelty": (200, 300)}


def _speed(figures: dict[str, Any], streaming: list[str], series: int, ticks: int,
           doc: Path | None) -> None:
    from monitor.bench.report import publish

    for t in streaming:
        typer.echo(f"throughput {t} ...", err=True)
        figures["throughput"][t] = throughput(t, series, ticks)
    for t, (n, k) in SUBSET_DETECTORS.items():
        typer.echo(f"throughput {t} (subset) ...", err=True)
        figures["throughput"][t] = throughput(t, min(series, n), min(ticks, k))
    typer.echo("fits per second ...", err=True)
    figures["fits"] = {"prophet": prophet_fits_per_s(),
                       "seasonal_baseline": baseline_fits_per_s(min(series, 10_000))}
    target = figures["throughput"].get("robust_seasonal", {})
    figures["default_meets_targets"] = bool(
        target and target["points_per_s"] >= 1_000_000
        and target["state_bytes_per_series"] <= 2048)

    lines = ["| detector | series x ticks | series-points/s (1 core) | state bytes/series |",
             "|---|---|---|---|"]
    for t, r in figures["throughput"].items():
        lines.append(f"| {t} | {r['series']:,} x {r['ticks']} | {r['points_per_s']:,} | "
                     f"{r['state_bytes_per_series']:,} |")
    f = figures["fits"]
    lines += ["", f"Fits per second: prophet {f['prophet']['fits_per_s']} "
              f"({f['prophet']['history_points']} hourly points, 48-step forecast); "
              f"seasonal_baseline {f['seasonal_baseline']['fits_per_s']:,} series/s "
              f"(4 weeks of hourly history, vectorized).",
              "", f"Default detector meets the targets (>= 1,000,000 points/s, <= 2 KB/series): "
              f"{'yes' if figures['default_meets_targets'] else 'no'}."]
    body = "\n".join(lines)
    typer.echo(body)
    publish("detect", body, doc, {"series": series, "ticks": ticks},
            {"series": PUBLISHED_SIZE[0], "ticks": PUBLISHED_SIZE[1]})


def _dask(figures: dict[str, Any], fits: int, workers: int, scheduler: str | None,
          doc: Path | None) -> None:
    """Prophet fits/s in this process and through the Dask executor, side by side."""
    from monitor.bench.report import update_section

    typer.echo("prophet fits in process ...", err=True)
    inline = prophet_fits_per_s(fits)
    typer.echo("prophet fits on dask ...", err=True)
    on_dask = dask_fits_per_s(fits, workers, scheduler)
    ratio = round(on_dask["fits_per_s"] / inline["fits_per_s"], 2)
    figures["dask"] = {"inline": inline, "dask": on_dask, "ratio": ratio}
    where = ("a LocalCluster of " if on_dask["scheduler"] == "local" else
             f"the scheduler at {on_dask['scheduler']} with ")
    body = (f"Prophet fits per second ({inline['history_points']} hourly points, 48-step "
            f"forecast, {fits} fits each): in process (one after another) "
            f"{inline['fits_per_s']}; through the Dask executor (`executor: {{type: dask}}`, "
            f"handed out together, wall time until all are back) on {where}"
            f"{on_dask['workers']} one-thread worker(s): {on_dask['fits_per_s']} "
            f"({ratio}x in process; {on_dask['failed']} failed). The seasonal baseline is "
            "not fitted on the executor (its learn is vectorized on the tick).")
    typer.echo(body)
    update_section("detect-dask", body, doc)


#: the size whose throughput ``docs/benchmarks.md`` publishes (the detectors issue's target)
PUBLISHED_SIZE = (100_000, 288)


#: Prophet on all ~325 demo series: fewer fits (first after a week, then every two weeks).
PROPHET_DEMO = {"refit": "14d", "min_history": "7d", "uncertainty_samples": 100}


def _accuracy(figures: dict[str, Any], streaming: list[str], doc: Path | None,
              write: bool = True) -> None:
    from monitor.bench.report import update_section

    figures["demo"] = {}
    for t in [*streaming, *SUBSET_DETECTORS, "prophet"]:
        typer.echo(f"demo accuracy {t} ...", err=True)
        params = PROPHET_DEMO if t == "prophet" else None
        figures["demo"][t] = demo_accuracy(t, params) | ({"params": params} if params else {})
    lines = ["Demo scripted incidents (28 days from 2026-01-05, demo.yaml post-rules, each "
             "detector as `default`; prophet with "
             + ", ".join(f"`{k}: {v}`" for k, v in PROPHET_DEMO.items()) + "):", "",
             "| detector | alerts | precision | recall (of incidents) | median time to "
             "detect (h) |", "|---|---|---|---|---|"]
    lines += [accuracy_row(t, r) for t, r in figures["demo"].items()]
    body = "\n".join(lines)
    typer.echo(body)
    if write:
        update_section("detect-demo", body, doc)
    else:
        typer.echo("docs not updated: section detect-demo is published by a run at the published "
                   "size or with --no-speed (or pass --doc FILE)", err=True)


def accuracy_row(detector: str, r: dict[str, Any]) -> str:
    """One row of the demo accuracy table; a figure that does not exist (the precision of no
    alerts, the time to detect of no incident found) is ``-``, not Python's ``None``."""
    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    return (f"| {detector} | {r['alerts']} | {cell(r['precision'])} | "
            f"{cell(r['recall'])} (of {r['incidents']}) | {cell(r['median_ttd_hours'])} |")


def register(app: typer.Typer) -> None:
    """Add ``detect`` to the ``cxmon bench`` group."""
    app.command("detect")(bench_detect)
