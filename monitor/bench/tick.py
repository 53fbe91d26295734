"""``cxmon bench tick``: one whole pipeline tick (poll, frame and roll-ups, detection, root
cause, store writes, checkpoints) on generated contact counts, per store, side by side, and
the first tick after a restart (detectors restored from their checkpoints).

Why: ``bench detect`` times the detectors alone; what a team sizing a laptop or a database
needs is the wall time of a tick with every roll-up series written to the store, and of the
first tick that loads the history.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from monitor.bench.options import DocOut, JsonOut, Postgres
from monitor.bench.report import publish, write_json
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.store import Store, detector_checkpoints_t
from sources.base import PollRequest, Source, SourceConfig

STEP = timedelta(hours=1)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
#: the run whose figures ``docs/benchmarks.md`` publishes (leaves, ticks)
PUBLISHED_SIZE = (10_000, 5)


class ContactCounts(Source):
    """Hourly contact counts per channel x region x reason (Poisson around a daily cycle)."""

    def __init__(self, leaves: int, seed: int = 0, step: timedelta = STEP) -> None:
        super().__init__("gen", SourceConfig(type="demo"))
        self.step = step
        channels = 10
        regions = 10 if leaves >= 100 else 1
        reasons = max(1, leaves // (channels * regions))
        a, b, c = np.meshgrid(np.arange(channels), np.arange(regions), np.arange(reasons),
                              indexing="ij")
        self.dims = pd.DataFrame({"channel": [f"c{i}" for i in a.ravel()],
                                  "region": [f"r{i}" for i in b.ravel()],
                                  "reason": [f"x{i}" for i in c.ravel()]})
        self.rng = np.random.default_rng(seed)

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        frames = []
        for ts in pd.date_range(request.since, request.until, freq=self.step,
                                inclusive="left"):
            rate = 20.0 + 10.0 * np.sin(ts.hour / 24 * 2 * np.pi)
            frames.append(self.dims.assign(ts=ts, n=self.rng.poisson(rate, len(self.dims))))
        if not frames:
            return pd.DataFrame(columns=["ts", "channel", "region", "reason", "n"])
        return pd.concat(frames, ignore_index=True)


_CONFIG = """
store: {{url: "{url}"{every}}}
sources: {{gen: {{type: demo}}}}
metrics:
  - name: contacts
    source: gen
    interval: {interval}
    timestamp: ts
    dimensions: [channel, region, reason]
    value: n
    history: {history}
    labels: {{journey: support}}
alerting:
  receivers: [{{name: console, console: {{format: json}}}}]
"""


@contextmanager
def scratch_store(kind: str, postgres_url: str | None) -> Iterator[str]:
    """A store URL that is empty and removed afterwards: a temporary SQLite file, or a schema
    created (and dropped) in the PostgreSQL database of ``postgres_url``."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cxmon-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    assert postgres_url is not None
    url = sa.make_url(postgres_url)
    schema = f"cxmon_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        options = " ".join(filter(None, [url.query.get("options"), f"-csearch_path={schema}"]))
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def measure(url: str, leaves: int, ticks: int, history: str, interval: str = "1h",
            checkpoint_every: str | None = None) -> dict[str, Any]:
    """The first tick (history) and ``ticks`` steady ticks of one metric on store ``url``,
    buckets of ``interval``, detector checkpoints every tick or ``checkpoint_every``."""
    from monitor.pipeline import Pipeline

    every = f", checkpoint_every: {checkpoint_every}" if checkpoint_every else ""
    cfg = parse_config(_CONFIG.format(url=url, history=history, interval=interval,
                                      every=every), env={})
    step = cfg.metric("contacts").interval
    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + timedelta(days=40))
    pipeline = Pipeline(cfg, store, clock=clock,
                        sources={"gen": ContactCounts(leaves, step=step)},
                        notifiers={"console": _Discard()})  # type: ignore[dict-item]
    try:
        t = time.perf_counter()
        first = pipeline.tick("contacts")
        first_seconds = time.perf_counter() - t
        if first.error:
            raise RuntimeError(first.error)
        steady, series, written, saved = [], 0, 0, 0
        for _ in range(ticks):
            clock.advance(step)
            wall = datetime.now(UTC)
            t = time.perf_counter()
            r = pipeline.tick("contacts")
            steady.append(time.perf_counter() - t)
            if r.error:
                raise RuntimeError(r.error)
            series = r.rows_stored
            if r.checkpointed:
                saved += 1
                written += _checkpoint_bytes(store, since=wall)
        checkpoint_bytes = _checkpoint_bytes(store)
        # a restart: a new pipeline on the same store restores every detector from its
        # checkpoints on its first tick (the cursor says no history is to be learned again)
        pipeline.close()
        clock.advance(step)
        t = time.perf_counter()
        pipeline = Pipeline(cfg, store, clock=clock,
                            sources={"gen": ContactCounts(leaves, step=step)},
                            notifiers={"console": _Discard()})  # type: ignore[dict-item]
        r = pipeline.tick("contacts")
        restart_seconds = time.perf_counter() - t
        if r.error:
            raise RuntimeError(r.error)
    finally:
        pipeline.close()
        store.close()
    return {
        "leaves": len(ContactCounts(leaves).dims), "series": series,
        "first_tick_seconds": round(first_seconds, 2), "history_points": first.rows_stored,
        "history_points_per_second": round(first.rows_stored / first_seconds),
        "tick_median_seconds": round(statistics.median(steady), 2),
        "tick_max_seconds": round(max(steady), 2),
        "series_per_second": round(series / statistics.median(steady)),
        "restart_tick_seconds": round(restart_seconds, 2),
        "restart_replayed_buckets": r.replayed,
        "interval": interval,
        "checkpoint_every": checkpoint_every or "every tick",
        "checkpoint_bytes": checkpoint_bytes,
        "checkpoint_bytes_per_series": round(checkpoint_bytes / max(series, 1)),
        # what the steady ticks wrote: every tick all series, or only the due ones
        "checkpoint_bytes_per_tick": round(written / ticks),
        "ticks_checkpointed": saved,
    }


def _checkpoint_bytes(store: Store, since: datetime | None = None) -> int:
    """Bytes of detector state in the store (``since``: only the rows written since then,
    by the store's wall clock): what a checkpointing tick rewrites (every series polled)."""
    c = detector_checkpoints_t.c
    q = sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(c.state)), 0))
    if since is not None:
        q = q.where(c.updated_at >= since)
    with store.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


class _Discard:
    """A notifier that drops everything: delivery is not what is timed."""

    def send(self, payload: dict[str, Any]) -> None:
        return None


def bench_tick(
    leaves: Annotated[int, typer.Option(help="Leaf series (channel x region x reason); every "
                                        "roll-up is a series too.")] = PUBLISHED_SIZE[0],
    ticks: Annotated[int, typer.Option(min=1, help="Steady ticks timed after the first.")] = (
        PUBLISHED_SIZE[1]),
    history: Annotated[str, typer.Option(metavar="<duration>",
                                         help="History loaded by the first tick.")] = "7d",
    interval: Annotated[str, typer.Option(metavar="<duration>",
                                          help="The metric's bucket interval.")] = "1h",
    checkpoint_every: Annotated[str | None, typer.Option(
        metavar="<duration>",
        help="store.checkpoint_every (default: checkpoints every tick); figures other than "
             "the defaults' update the docs only with --doc.")] = None,
    postgres: Postgres = None,
    json_out: JsonOut = None,
    doc: DocOut = None,
) -> None:
    """Wall time of whole pipeline ticks (poll, roll-ups, detection, root cause, store), per
    store, and the first tick that loads the history."""
    console = Console()
    kinds = ["sqlite"] + (["postgresql"] if postgres else [])
    figures: dict[str, Any] = {}
    for kind in kinds:
        status = f"{kind}: first tick ({history} of history), then {ticks} ticks"
        with console.status(status), scratch_store(kind, postgres) as url:
            figures[kind] = measure(url, leaves, ticks, history, interval, checkpoint_every)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    table = Table(title=f"cxmon tick, {figures['sqlite']['series']:,} series")
    for col in ("store", "first tick", "history points/s", "tick median", "tick max",
                "series/s", "restart tick", "checkpoint/tick"):
        table.add_column(col, justify="right")
    for kind in kinds:
        f = figures[kind]
        table.add_row(kind, f"{f['first_tick_seconds']:.1f} s",
                      f"{f['history_points_per_second']:,}", f"{f['tick_median_seconds']:.2f} s",
                      f"{f['tick_max_seconds']:.2f} s", f"{f['series_per_second']:,}",
                      f"{f['restart_tick_seconds']:.2f} s",
                      f"{f['checkpoint_bytes_per_tick'] / 1e6:.1f} MB")
    console.print(table)
    write_json(json_out, figures)
    if doc is None and (checkpoint_every is not None or interval != "1h"):
        console.print("docs not updated: the published figures are for --interval 1h and "
                      "checkpoints every tick (pass --doc FILE to write this run)")
        return
    publish("tick", _markdown(figures, kinds, history, ticks), doc,
            {"leaves": leaves, "ticks": ticks},
            {"leaves": PUBLISHED_SIZE[0], "ticks": PUBLISHED_SIZE[1]})


def every_word(interval: str) -> str:
    """``hourly`` for ``1h``, else ``5m``-bucket."""
    return "hourly" if interval == "1h" else f"{interval}-bucket"


def _written(f: dict[str, Any], ticks: int) -> str:
    """What the checkpoint/tick column measures, in words."""
    if f["checkpoint_every"] == "every tick":
        return "the detector state every tick rewrites (all series it polled)"
    return (f"the detector state the steady ticks wrote, on average (`store.checkpoint_every: "
            f"{f['checkpoint_every']}`: {f['ticks_checkpointed']} of {ticks} ticks wrote it; "
            f"the restart tick replayed {f['restart_replayed_buckets']} buckets)")


def _markdown(figures: dict[str, Any], kinds: list[str], history: str, ticks: int) -> str:
    f0 = figures["sqlite"]
    lines = [
        f"One metric of {every_word(f0['interval'])} contact counts with three dimensions: "
        f"{f0['leaves']:,} leaves, "
        f"{f0['series']:,} series with every roll-up (the total, each dimension value, each "
        f"pair). A tick polls a generated in-memory source, builds and rolls up the frame, "
        f"runs the default detector (`robust_seasonal`) and root cause, and writes points, "
        f"checkpoints and the tick record to the store; delivery is not timed. The first tick "
        f"also loads {history} of history. Steady figures: median and max of {ticks} ticks. "
        f"*Restart tick*: a new pipeline on the same store (as after `systemctl restart`), "
        f"whose first tick restores every detector from its checkpoints. *Checkpoint/tick*: "
        f"{_written(f0, ticks)}, {f0['checkpoint_bytes_per_series']:,} bytes a series.",
        "",
        "| store | first tick | history points | history points/s | tick median | tick max "
        "| series/s | restart tick | checkpoint/tick |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in kinds:
        f = figures[kind]
        lines.append(f"| {kind} | {f['first_tick_seconds']:.1f} s | {f['history_points']:,} | "
                     f"{f['history_points_per_second']:,} | {f['tick_median_seconds']:.2f} s | "
                     f"{f['tick_max_seconds']:.2f} s | {f['series_per_second']:,} | "
                     f"{f['restart_tick_seconds']:.2f} s | "
                     f"{f['checkpoint_bytes_per_tick'] / 1e6:.1f} MB |")
    lines += ["", f"Peak memory of the process (both runs): {figures['peak_rss_mb']:,} MB. "
              f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
              "(a shared machine)."]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("tick")(bench_tick)
