"""Chaos harness: ``kill -9`` a real ``cxmon run`` again and again, then check that nothing was
lost or duplicated.

Why: the store's one-transaction-per-tick and the outbox promise that an anomaly, once
detected, ends up delivered or visibly dead-lettered across crashes. Unit tests check each
piece with a fake clock; this checks the whole process, in real time, as an SRE would.

What it does (docs/operations.md, "Chaos test"):

* writes a ``files`` source folder: 3 h of 1-minute history for 4 journeys x 2 channels, then
  one CSV per minute as the minute ends (current timestamps), with random spikes;
* watches three metrics of those files whose ticks overlap (``contacts`` every minute,
  ``waits`` every 2 minutes, ``abandons`` every minute with a heavier detection: river
  Half-Space Trees on top of the robust one), so kills also hit one metric's commit while
  another detects or the delivery thread flushes (``--metrics 1``: ``contacts`` only);
* calls a random open incident a false alarm now and then (``--dismiss-every``), from this
  process as the feedback server or ``cxmon feedback`` would, racing ticks and flushes;
* serves a webhook receiver that records every POST (idempotency key and body) and answers
  500 (``--fail-rate``) or hangs past the notifier's timeout (``--hang-rate``) at random;
* starts ``cxmon run`` on that config and ``kill -9``s it at random moments ``--kills``
  times (now and then right while the receiver holds a request: a kill during delivery),
  restarting it each time; then lets one last run drain with a healthy receiver and stops it
  with SIGTERM;
* checks the store and the receiver's log: no notification pending or lost (sent in the store
  but never received), every incident whose anomalies should alert has notifications, no
  idempotency key received with two different bodies, no anomaly stored twice, no two open
  incidents of one journey and metric, no bucket skipped by the cursor (no gap in any
  series' points, each metric's ticks' ranges contiguous), no point beyond a metric's cursor
  and the cursor where its last tick says, and a detector checkpoint for every stored series;
  per incident and receiver at most one first message and one resolution.

Run it from the repository root (it takes ``--kills`` x ~25 s plus the drain)::

    .venv/bin/python scripts/chaos_restart.py --kills 10
    .venv/bin/python scripts/chaos_restart.py --kills 10 \
        --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

With ``--postgres`` a fresh database ``cxmon_chaos_<pid>`` is created on that server and
dropped at the end. Exit 0 when every check holds, 1 otherwise (the problems are printed).
Not part of ``make test``: it runs in real time (minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

JOURNEYS = ["checkout", "returns", "delivery", "support"]
CHANNELS = ["web", "app"]
INTERVAL = timedelta(minutes=1)
HISTORY = timedelta(hours=3)
WEBHOOK_TIMEOUT = 2.0  # seconds; a hang lasts longer than this

#: (name = its CSV column, interval, detectors): ticks of different metrics overlap, and
#: ``abandons``' detection is the heaviest (tree ensembles per series)
METRICS = [("contacts", timedelta(minutes=1), ["fast"]),
           ("waits", timedelta(minutes=2), ["fast"]),
           ("abandons", timedelta(minutes=1), ["fast", "heavy"])]

METRIC = """\
  - name: {name}
    source: drop
    interval: {minutes}m
    delay: 10s
    history: 3h
    timestamp: ts
    split_by: [journey]
    dimensions: [channel]
    value: {name}
    labels: {{team: cx}}
    detectors: [{detectors}]
"""

CONFIG = """\
store: {store}
scheduler: {{jitter: 0s}}
exporter: {{port: 0}}
sources:
  drop: {{type: files, path: "{data}/*.csv"}}
metrics:
{metrics}detectors:
  fast: {{type: robust_seasonal, season: none, min_points: 30}}
  heavy: {{type: river, model: HalfSpaceTrees, params: {{n_trees: 25, height: 8}},
           min_points: 60}}
alerting:
  resolve_after: 3m
  delivery: {{max_attempts: 6, backoff: 1s, max_backoff: 8s}}
  route: {{receiver: hook, group_by: [journey], group_wait: 5s, group_interval: 20s,
           repeat_interval: 1h}}
  receivers:
    - {{name: hook, webhook: {{url: "http://127.0.0.1:{port}/hook", timeout: {timeout:g}s}}}}
"""


# --- the webhook receiver ------------------------------------------------------------------

@dataclass
class Received:
    """What the receiver saw: every POST (key, body digest), and how it answered."""

    posts: list[tuple[str, str]] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def serve_webhook(rec: Received, rng: random.Random, fail_rate: float,
                  hang_rate: float, healthy: threading.Event) -> ThreadingHTTPServer:
    """A receiver on a free port that records every POST and sometimes fails or hangs."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get("Idempotency-Key", "")
            notification = json.loads(body)["notification"]
            digest = hashlib.sha256(json.dumps(notification, sort_keys=True).encode()).hexdigest()
            roll = 1.0 if healthy.is_set() else rng.random()
            if roll < hang_rate:  # the sender times out: it must retry, not count it sent
                rec.in_flight.set()
                time.sleep(WEBHOOK_TIMEOUT + 1.0)
                rec.in_flight.clear()
                outcome = 0
            elif roll < hang_rate + fail_rate:
                outcome = 500
            else:
                outcome = 200
            with rec.lock:
                rec.answered[str(outcome)] += 1
                if outcome == 200:
                    rec.posts.append((key, digest))
            try:
                self.send_response(outcome or 200)
                self.end_headers()
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- the data --------------------------------------------------------------------------------

def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def write_bucket(folder: Path, start: datetime, rng: random.Random, spike_rate: float) -> None:
    """One CSV with every series' row of the minute ``start``: a value per metric, each
    sometimes a spike."""
    names = [m[0] for m in METRICS]
    lines = [",".join(["ts", "journey", "channel", *names])]
    for j in JOURNEYS:
        for c in CHANNELS:
            values = []
            for _ in names:
                value = 100 + rng.randint(-8, 8)
                if rng.random() < spike_rate:
                    value *= 4
                values.append(str(value))
            lines.append(",".join([f"{start:%Y-%m-%dT%H:%M:%SZ}", j, c, *values]))
    tmp = folder / f".{start:%Y%m%d%H%M}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(folder / f"m-{start:%Y%m%d%H%M}.csv")  # atomic: a poll never reads half a file


def write_history(folder: Path, now: datetime, rng: random.Random) -> None:
    """``HISTORY`` of quiet minutes up to the last complete one."""
    t = floor_minute(now) - HISTORY
    while t < floor_minute(now):
        write_bucket(folder, t, rng, spike_rate=0.0)
        t += INTERVAL


def feed(folder: Path, rng: random.Random, spike_rate: float, stop: threading.Event) -> None:
    """Write each minute's CSV one second after the minute ends."""
    done = floor_minute(datetime.now(UTC))
    while not stop.is_set():
        now = datetime.now(UTC)
        if floor_minute(now) > done and now.second >= 1:
            write_bucket(folder, done, rng, spike_rate)
            done += INTERVAL
        stop.wait(0.5)


# --- the analyst ------------------------------------------------------------------------------

def dismiss_loop(store_url: str, rng: random.Random, every: float, stop: threading.Event,
                 dismissed: set[str]) -> None:
    """Now and then (``every`` s on average) call one open incident a false alarm, as the
    feedback server or ``cxmon feedback`` does from another process: every anomaly of it
    ``not_anomaly``, then :func:`alerts.dismiss.dismiss_false_alarms`, racing the ticks'
    commits and the delivery thread's flushes on its alert groups."""
    from alerts.dismiss import dismiss_false_alarms
    from monitor.store import Store

    while not stop.wait(rng.expovariate(1.0 / every)):
        try:
            store = Store(store_url)
            try:
                with store.engine.connect() as conn:
                    keys = [r[0] for r in conn.execute(sa.text(
                        "select key from incidents where status = 'open' order by key"))]
                if not keys:
                    continue
                key = rng.choice(keys)
                ids = store.incident_anomaly_ids(key)
                for anomaly_id in ids:
                    store.add_feedback(anomaly_id, "not_anomaly", source="cli", user="chaos")
                dismissed.update(dismiss_false_alarms(store, ids, by="chaos",
                                                      now=datetime.now(UTC)))
            finally:
                store.close()
        except Exception as exc:  # the store locked or migrating: try again later
            print(f"dismissal failed: {type(exc).__name__}: {exc}", flush=True)


# --- the cxmon process -----------------------------------------------------------------------

def start_cxmon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "-c", str(config),
                             "--log-format", "text"],
                            stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "200"})


def kill_loop(config: Path, log: Path, rec: Received, rng: random.Random, kills: int,
              max_up: float) -> list[str]:
    """Start ``cxmon run`` and ``kill -9`` it, ``kills`` times, each at one of three moments
    in turn: at random (3 s to ``max_up``), during a tick (0-4 s after the next minute's poll
    time), or while the receiver holds a request (a send in flight; at most 75 s); what
    each kill hit."""
    hits = []
    for n in range(kills):
        proc = start_cxmon(config, log)
        started = time.monotonic()
        mode = ("random", "tick", "send")[n % 3]
        if mode == "tick":  # polls run at :10 (delay 10s, no jitter); a catch-up at start
            now = datetime.now(UTC)
            poll = floor_minute(now) + timedelta(seconds=10)
            poll += INTERVAL if poll < now else timedelta(0)
            up = (poll - now).total_seconds() + rng.uniform(0.0, 4.0)
        elif mode == "send":
            up = 75.0
        else:
            up = rng.uniform(3.0, max_up)
        while time.monotonic() - started < up and proc.poll() is None:
            if mode == "send" and rec.in_flight.is_set():
                time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside the hung request
                break
            time.sleep(0.05)
        hit = "during a send" if rec.in_flight.is_set() else mode
        if proc.poll() is not None:
            hit = f"exited by itself ({proc.returncode})"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        hits.append(hit)
        print(f"kill {n + 1}/{kills}: SIGKILL after {time.monotonic() - started:.1f}s ({hit})",
              flush=True)
    return hits


def drain(config: Path, log: Path, engine: sa.Engine, healthy: threading.Event,
          stop_feed: threading.Event, settle: float) -> int:
    """Last run with a healthy receiver and no new data: wait until nothing is pending or
    waiting in an alert group, then SIGTERM; the exit status."""
    stop_feed.set()
    healthy.set()
    proc = start_cxmon(config, log)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        time.sleep(2.0)
        with engine.connect() as conn:
            pending = conn.execute(sa.text(
                "select count(*) from notifications where status = 'pending'")).scalar()
            waiting = conn.execute(sa.text(
                "select count(*) from alert_groups where pending is not null")).scalar()
        if not pending and not waiting and time.monotonic() > deadline - settle + 40:
            break
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=120)


# --- the checks ------------------------------------------------------------------------------

def check(engine: sa.Engine, rec: Received, intervals: dict[str, timedelta] | None = None,
          dismissed: set[str] | None = None) -> tuple[list[str], dict[str, int]]:
    """Every invariant the promise implies; the problems found and a few counts.
    ``intervals``: each metric's (``INTERVAL`` for one not named); ``dismissed``: the
    incidents called false alarms."""
    with engine.connect() as conn:
        return _check(conn, rec, intervals, dismissed)


def _check(conn: sa.Connection, rec: Received, intervals: dict[str, timedelta] | None,
           dismissed: set[str] | None) -> tuple[list[str], dict[str, int]]:
    problems: list[str] = []

    def q(sql: str) -> list[sa.Row]:
        return list(conn.execute(sa.text(sql)).all())

    notes = q("select idempotency_key, incident_key, status, last_error from notifications")
    received = {k for k, _ in rec.posts}
    by_key: dict[str, set[str]] = defaultdict(set)
    for k, digest in rec.posts:
        by_key[k].add(digest)
    for key, status, err in ((n[0], n[2], n[3]) for n in notes):
        if status == "pending":
            problems.append(f"still pending after the drain: {key} ({err})")
        if status == "sent" and key not in received:
            problems.append(f"marked sent but never received: {key}")
    stored = {n[0] for n in notes}
    problems += [f"received but not in the store: {k}" for k in received - stored]
    problems += [f"key received with {len(d)} different bodies: {k}"
                 for k, d in by_key.items() if len(d) > 1]
    incidents = q("select i.key, i.journey, i.status, max(a.severity) from incidents i "
                  "join anomalies a on a.incident_id = i.id group by i.key, i.journey, "
                  "i.status")
    notified = {n[1] for n in notes}
    problems += [f"incident {k} (severity {sev}) has no notification"
                 for k, _j, _s, sev in incidents if sev >= 25 and k not in notified]
    open_by_journey: dict[str, int] = defaultdict(int)
    for _k, j, s, _sev in incidents:
        open_by_journey[j] += s == "open"
    problems += [f"{n} open incidents of journey {j}" for j, n in open_by_journey.items()
                 if n > 1]
    told: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, receiver in q("select idempotency_key, receiver from notifications "
                           "where status != 'suppressed'"):
        incident, kind = [*str(key).split("|"), ""][:2]
        told[(incident, receiver)] += {"late": ["opened", "resolved"], "opened": ["opened"],
                                       "resolved": ["resolved"],
                                       "dismissed": ["resolved"]}.get(kind, [])
    status = {k: s for k, _j, s, _sev in incidents}
    for (k, r), kinds in told.items():
        opened, resolved = kinds.count("opened"), kinds.count("resolved")
        if opened > 1 and k not in (dismissed or set()):  # a dismissed one may be told anew
            problems.append(f"incident {k} opened {opened} times to {r}")
        if resolved > opened:
            problems.append(f"incident {k} resolved {resolved} times to {r}, opened {opened}")
        if status.get(k) == "resolved" and resolved < opened:
            problems.append(f"incident {k} resolved but {r} never told so")
        if k in (dismissed or set()) and not resolved and opened:
            problems.append(f"incident {k} dismissed but {r} never told so")
    dup = q("select series_id, ts, detector, count(*) from anomalies "
            "group by series_id, ts, detector having count(*) > 1")
    problems += [f"anomaly stored {n} times: series {s} at {t}" for s, t, _d, n in dup]
    problems += _check_points(q, intervals or {})
    counts = {"notifications": len(notes), "received": len(rec.posts),
              "distinct_keys_received": len(received), "incidents": len(incidents),
              "anomalies": q("select count(*) from anomalies")[0][0],
              "ticks": q("select count(*) from ticks where error is null")[0][0],
              "failed_ticks": q("select count(*) from ticks where error is not null")[0][0],
              **{f"status_{s}": n for s, n in q(
                  "select status, count(*) from notifications group by status")},
              **{f"answered_{k}": v for k, v in rec.answered.items()}}
    return problems, counts


def _check_points(q: Callable[[str], list[sa.Row]], intervals: dict[str, timedelta]
                  ) -> list[str]:
    """Per metric: no bucket skipped (each series' points contiguous, successful ticks'
    ranges adjoining), no point beyond the cursor and the cursor where the last tick record
    says (points, cursor and tick commit together; a tick without new rows moves the cursor
    on), and every stored series checkpointed."""
    problems = []
    newest: dict[str, datetime] = {}
    for sid, metric, n, lo, hi in q(
            "select p.series_id, s.metric, count(*), min(p.ts), max(p.ts) from points p "
            "join series s on s.id = p.series_id group by p.series_id, s.metric"):
        lo, hi, step = _aware(lo), _aware(hi), intervals.get(metric, INTERVAL)
        newest[metric] = max(newest.get(metric, hi), hi)
        expected = int((hi - lo) / step) + 1
        if n != expected:
            problems.append(f"series {sid}: {n} points from {lo} to {hi}, {expected} expected "
                            "(a bucket skipped)")
    ranges: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for m, since, until in q("select metric, since, until from ticks "
                             "where error is null and since is not null"):
        ranges[m].append((_aware(since), _aware(until)))
    for m, spans in ranges.items():
        for (_s0, u0), (s1, _u1) in itertools.pairwise(sorted(spans)):
            if s1 > u0:
                problems.append(f"{m}: ticks skipped {u0}..{s1}")
    for m, cursor in q("select metric, cursor from poll_cursors"):
        cursor = _aware(cursor)
        if m in newest and newest[m] + intervals.get(m, INTERVAL) > cursor:
            problems.append(f"{m}: a point at {newest[m]}, beyond the cursor {cursor}")
        last = max((u for _s, u in ranges.get(m, [])), default=None)
        if last is not None and last != cursor:
            problems.append(f"{m}: cursor {cursor} but the last tick stored up to {last}")
    saved: dict[int, set[str]] = defaultdict(set)
    detectors: dict[str, set[str]] = defaultdict(set)
    for sid, m, det in q("select d.series_id, s.metric, d.detector from detector_checkpoints d "
                         "join series s on s.id = d.series_id"):
        saved[sid].add(det)
        detectors[m].add(det)
    for sid, m in q("select distinct s.id, s.metric from series s join points p "
                    "on p.series_id = s.id join poll_cursors c on c.metric = s.metric"):
        if missing := detectors[m] - saved[sid]:
            problems.append(f"series {sid} of {m} has points but no checkpoint of "
                            f"{', '.join(sorted(missing)) or 'any detector'}")
        elif not detectors[m]:
            problems.append(f"series {sid} of {m} has points but no detector checkpoint")
    return problems


def _aware(value: datetime | str) -> datetime:
    """Timestamps read back with plain SQL (text on SQLite) as UTC datetimes."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--max-up", type=float, default=40.0,
                    help="longest run between kills, seconds (each is 3 s to this)")
    ap.add_argument("--fail-rate", type=float, default=0.2)
    ap.add_argument("--hang-rate", type=float, default=0.1)
    ap.add_argument("--spike-rate", type=float, default=0.08)
    ap.add_argument("--metrics", type=int, default=len(METRICS), choices=range(1, 4),
                    help="how many of contacts (1m), waits (2m), abandons (1m, heavy) to watch")
    ap.add_argument("--dismiss-every", type=float, default=30.0, metavar="SECONDS",
                    help="call a random open incident a false alarm this often on average "
                         "(0: never)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--postgres", metavar="URL", default=None,
                    help="server URL; a fresh database is created there and dropped")
    ap.add_argument("--workdir", type=Path, default=None, help="keep files here")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cxmon-chaos-"))
    (data := work / "data").mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}, files in {work}", flush=True)

    admin, store_url = None, f"sqlite:///{work / 'store.db'}"
    if args.postgres:
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        db = f"cxmon_chaos_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(sa.text(f"create database {db}"))
        store_url = sa.make_url(args.postgres).set(database=db).render_as_string(False)
    rec, healthy, stop_feed = Received(), threading.Event(), threading.Event()
    server = serve_webhook(rec, random.Random(seed + 1), args.fail_rate, args.hang_rate,
                           healthy)
    config = work / "cxmon.yaml"
    watched = METRICS[:args.metrics]
    metrics = "".join(METRIC.format(name=name, minutes=int(iv / INTERVAL),
                                    detectors=", ".join(dets)) for name, iv, dets in watched)
    config.write_text(CONFIG.format(store=store_url, data=data, port=server.server_port,
                                    timeout=WEBHOOK_TIMEOUT, metrics=metrics))
    write_history(data, datetime.now(UTC), rng)
    feeder = threading.Thread(target=feed, args=(data, random.Random(seed + 2),
                                                 args.spike_rate, stop_feed), daemon=True)
    feeder.start()
    dismissed: set[str] = set()
    if args.dismiss_every > 0:
        threading.Thread(target=dismiss_loop, args=(store_url, random.Random(seed + 3),
                                                    args.dismiss_every, stop_feed, dismissed),
                         daemon=True).start()
    log = work / "cxmon.log"
    engine = sa.create_engine(store_url)
    try:
        hits = kill_loop(config, log, rec, rng, args.kills, args.max_up)
        status = drain(config, log, engine, healthy, stop_feed, settle=150.0)
        problems, counts = check(engine, rec, {name: iv for name, iv, _d in watched},
                                 dismissed)
    finally:
        engine.dispose()
        server.shutdown()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f"drop database if exists {db} with (force)"))
            admin.dispose()
    if status != 0:
        problems.append(f"the last run exited {status} on SIGTERM (log: {log})")
    counts["kills"] = len(hits)
    counts["dismissed"] = len(dismissed)
    counts.update({f"kills_{h}": hits.count(h) for h in set(hits)})
    print(json.dumps(counts, sort_keys=True))
    for p in problems:
        print("PROBLEM:", p)
    print("OK: nothing lost or duplicated" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
