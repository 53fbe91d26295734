"""``cxmon bench retention``: how fast the store grows and what the retention job costs, per
store, side by side.

Why: a deployment of 20,000 series at 5 minutes writes 5.8 million points a day; sizing the
database and trusting the 6-hourly retention job (``Store.purge_history``) needs bytes per
point as stored (with the indexes) and the time of a retention run, measured, with the query
plans that show each delete goes by an index rather than a scan of the table.

The store is filled directly (points by the tick's own ``upsert_points``, tick records,
anomalies, notifications and receipts as a tick would write them), not by running ticks: what
is timed is the purge, and ``cxmon bench tick`` times the ticks.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import typer
from rich.console import Console

from monitor.bench.options import DocOut, JsonOut, Postgres
from monitor.bench.report import publish, write_json
from monitor.bench.tick import scratch_store
from monitor.clock import FakeClock
from monitor.model import MEASURE_COLUMNS, Anomaly, Direction, Series
from monitor.store import Store, delivery_receipts_t, notifications_t, ticks_t
from monitor.store import retention as store_retention

STEP = timedelta(minutes=5)
PER_DAY = int(timedelta(days=1) / STEP)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
#: the run ``docs/benchmarks.md`` publishes (series, days)
PUBLISHED_SIZE = (500, 3)
ANOMALY_RATE = 0.001  # anomalies per point: a noisy deployment
NOTIFICATIONS_PER_DAY = 50
RUN_EVERY = timedelta(hours=6)  # monitor.scheduler.RETENTION_EVERY
TABLES = ("points", "series", "detector_checkpoints", "anomalies", "ticks", "notifications",
          "delivery_receipts")


def fill(store: Store, series: int, days: int, metrics: int) -> dict[str, int]:
    """``days`` of 5-minute points of ``series`` series spread over ``metrics`` metrics, with
    the tick records, anomalies and notifications such a deployment writes."""
    keys = [Series(f"m{i % metrics}", {"dim": f"v{i}"}, ("dim",)) for i in range(series)]
    rng = np.random.default_rng(0)
    anomalies = notes = 0
    for day in range(days):
        start = T0 + timedelta(days=day)
        times = pd.date_range(start, periods=PER_DAY, freq=STEP)
        frame = pd.DataFrame({
            "timestamp": np.tile(times, series), "series": np.repeat([s.key for s in keys],
                                                                      PER_DAY),
            "value": rng.random(series * PER_DAY), "numerator": 1.0, "denominator": None,
        })[MEASURE_COLUMNS]
        picked = rng.choice(len(frame), max(1, int(len(frame) * ANOMALY_RATE)), replace=False)
        by_key = {s.key: s for s in keys}
        found = [_anomaly(by_key[frame["series"].iat[i]], frame["timestamp"].iat[i])
                 for i in picked]
        ticks = [{"metric": f"m{m}", "started_at": t, "finished_at": t, "since": t, "until": t,
                  "rows_in": series // metrics, "rows_stored": series // metrics,
                  "rejected": {}, "anomalies": 0}
                 for t in times.to_pydatetime() for m in range(metrics)]
        sent = [start + i * timedelta(days=1) / NOTIFICATIONS_PER_DAY
                for i in range(NOTIFICATIONS_PER_DAY)]
        with store.transaction() as tx:
            if day == 0:
                tx.ensure_series(keys)
            tx.upsert_points(frame)
            tx.add_anomalies(found)
            tx.conn.execute(sa.insert(ticks_t), ticks)
            for i, at in enumerate(sent):
                key = f"n{day}-{i}"
                tx.conn.execute(sa.insert(notifications_t).values(
                    idempotency_key=key, receiver="slack", incident_key=key, payload={"i": i},
                    status="sent", attempts=1, next_attempt_at=at, created_at=at, sent_at=at))
                tx.conn.execute(sa.insert(delivery_receipts_t).values(
                    idempotency_key=key, receiver="slack", incident_key=key, channel="#cx",
                    ts="1.0", started_at=at, posted_at=at))
        anomalies += len(found)
        notes += len(sent)
    return {"points": series * PER_DAY * days, "anomalies": anomalies,
            "ticks": PER_DAY * days * metrics, "notifications": notes}


def _anomaly(s: Series, ts: pd.Timestamp) -> Anomaly:
    return Anomaly(series=s.key, metric=s.metric, labels=s.labels,
                   timestamp=ts.to_pydatetime(), value=2.0, expected=1.0, lower=0.5, upper=1.5,
                   score=0.99, severity=80, direction=Direction.UP, detector="robust_seasonal")


def table_bytes(store: Store) -> dict[str, int]:
    """Bytes on disk per table, its indexes included (PostgreSQL: ``pg_total_relation_size``
    after a VACUUM; SQLite: the ``dbstat`` pages of the table and its indexes)."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM"))
            return {t: int(conn.execute(sa.text(f"SELECT pg_total_relation_size('{t}')"))
                           .scalar_one()) for t in TABLES}
        rows = conn.execute(sa.text(
            "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m "
            "ON m.name = d.name GROUP BY m.tbl_name")).all()
    sizes = {str(name): int(size) for name, size in rows}
    return {t: sizes.get(t, 0) for t in TABLES}


def plans(store: Store, cutoff: datetime) -> dict[str, str]:
    """How the database runs each retention delete (the first line naming a table access).
    The planner's choice depends on the share deleted: a steady run in production deletes 6 h
    of 90 days (0.3 %), far less than here, so an index scan here is one there too."""
    stmts: dict[str, Any] = {"points": sa.delete(store_retention.points_t)
                             .where(store_retention.points_t.c.ts < cutoff)}
    stmts.update(store_retention.statements(cutoff))
    prefix = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "

    def explain(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                executemany: bool) -> tuple[str, Any]:
        return prefix + statement, params  # the delete, bound as it runs, only planned

    out = {}
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
        sa.event.listen(conn, "before_cursor_execute", explain, retval=True)
        try:
            with conn.begin() as tx:
                for table, stmt in stmts.items():
                    text = [str(r[-1]) for r in conn.execute(stmt).all()]
                    access = [t for t in text if any(w in t for w in ("Scan", "SCAN", "SEARCH"))]
                    indexed = [t for t in access if "Index" in t or "INDEX" in t]
                    line = (indexed or access or text)[0]
                    out[table] = line.strip().lstrip("-> ").split("  (cost")[0].strip()
                tx.rollback()
        finally:
            sa.event.remove(conn, "before_cursor_execute", explain)
    return out


def measure(url: str, series: int, days: int, metrics: int) -> dict[str, Any]:
    """Fill, size, then two retention runs: a catch-up of the first day (as after a stop),
    then a steady run that deletes the 6 hours since."""
    store = Store.open(url, clock=FakeClock(T0 + timedelta(days=days)))
    try:
        t = time.perf_counter()
        written = fill(store, series, days, metrics)
        fill_seconds = time.perf_counter() - t
        sizes = table_bytes(store)
        cutoff = T0 + timedelta(days=1)
        t = time.perf_counter()
        catch_up = store.purge_history(cutoff)
        catch_up_seconds = time.perf_counter() - t
        plan = plans(store, cutoff + RUN_EVERY)  # the steady run's: a sliver of each table
        t = time.perf_counter()
        steady = store.purge_history(cutoff + RUN_EVERY)
        steady_seconds = time.perf_counter() - t
    finally:
        store.close()
    return {
        "written": written, "fill_seconds": round(fill_seconds, 1), "bytes": sizes,
        "bytes_per_point": round(sizes["points"] / written["points"], 1),
        "catch_up": catch_up, "catch_up_seconds": round(catch_up_seconds, 2),
        "steady": steady, "steady_seconds": round(steady_seconds, 2), "plans": plan,
    }


def bench_retention(
    series: Annotated[int, typer.Option(min=1, help="Series, each a point every 5 minutes.")]
    = PUBLISHED_SIZE[0],
    days: Annotated[int, typer.Option(min=2, help="Days of points written before purging.")]
    = PUBLISHED_SIZE[1],
    metrics: Annotated[int, typer.Option(min=1, help="Metrics the series are spread over "
                                         "(one tick record each per 5 minutes).")] = 50,
    target: Annotated[int, typer.Option(help="Series count the figures are scaled to.")]
    = 20_000,
    retention_days: Annotated[int, typer.Option(help="store.retention, for the size at "
                                                "steady state.")] = 90,
    postgres: Postgres = None,
    json_out: JsonOut = None,
    doc: DocOut = None,
) -> None:
    """Store growth (bytes per point, per table) and the time of the retention job, per store,
    scaled to --target series."""
    console = Console()
    kinds = ["sqlite"] + (["postgresql"] if postgres else [])
    figures: dict[str, Any] = {"series": series, "days": days, "metrics": metrics,
                               "target": target, "retention_days": retention_days}
    for kind in kinds:
        with console.status(f"{kind}: {days} days of {series} series, then retention"), \
                scratch_store(kind, postgres) as url:
            figures[kind] = f = measure(url, series, days, metrics)
        console.print(f"{kind}: {f['bytes_per_point']} B/point; catch-up of a day "
                      f"{f['catch_up_seconds']} s, steady 6 h run {f['steady_seconds']} s; "
                      f"plans {f['plans']}")
    write_json(json_out, figures)
    publish("retention", _markdown(figures, kinds), doc, {"series": series, "days": days},
            {"series": PUBLISHED_SIZE[0], "days": PUBLISHED_SIZE[1]})


def _markdown(figures: dict[str, Any], kinds: list[str]) -> str:
    series, target = figures["series"], figures["target"]
    scale = target / series
    per_day = target * PER_DAY
    lines = [
        f"{series:,} series with a point every 5 minutes for {figures['days']} days, over "
        f"{figures['metrics']} metrics (a tick record per metric and 5 minutes), "
        f"{ANOMALY_RATE:.1%} of points anomalous, {NOTIFICATIONS_PER_DAY} notifications a day, "
        f"written as ticks write them. Then `Store.purge_history` twice: a catch-up that "
        f"deletes the first day (as after a stop), and a steady run deleting the 6 hours the "
        f"job (every 6 h) finds at each run. *Scaled* columns multiply by {scale:,.0f} "
        f"({target:,} series, {per_day:,} points a day): a linear extrapolation.",
        "",
        "| store | bytes/point (with indexes) | points/day scaled | "
        f"size at {figures['retention_days']}d retention scaled | catch-up (1 day) | "
        "steady run (6 h) | steady run scaled |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in kinds:
        f = figures[kind]
        total = sum(f["bytes"][t] for t in ("points", "anomalies", "ticks", "notifications",
                                            "delivery_receipts"))
        per_day_bytes = total / figures["days"]
        growth = (per_day_bytes - f["bytes"]["ticks"] / figures["days"]) * scale + (
            f["bytes"]["ticks"] / figures["days"])  # tick records follow metrics, not series
        size = growth * figures["retention_days"] / 1e9
        lines.append(
            f"| {kind} | {f['bytes_per_point']:.0f} | {growth / 1e9:.2f} GB | {size:.0f} GB | "
            f"{f['catch_up_seconds']:.2f} s ({f['catch_up']['points']:,} points) | "
            f"{f['steady_seconds']:.2f} s ({f['steady']['points']:,} points) | "
            f"{f['steady_seconds'] * scale:.0f} s |")
    lines += ["", "Rows deleted per table (catch-up / steady) and how the steady run's delete "
              "is run (the table access of its query plan, after ANALYZE; it deletes a far "
              "larger share of each table here than 6 h of 90 days would):", "",
              "| store | table | catch-up | steady | plan |", "|---|---|---:|---:|---|"]
    for kind in kinds:
        f = figures[kind]
        for table in store_retention.TABLES:
            lines.append(f"| {kind} | {table} | {f['catch_up'][table]:,} | "
                         f"{f['steady'][table]:,} | `{f['plans'][table]}` |")
    lines += ["", "Bytes per table after the fill (indexes included): " + "; ".join(
        f"{kind}: " + ", ".join(f"{t} {figures[kind]['bytes'][t] / 1e6:.1f} MB"
                                for t in TABLES if figures[kind]['bytes'][t])
        for kind in kinds) + ".",
        "", f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(a shared machine)."]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("retention")(bench_retention)
