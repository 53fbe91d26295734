"""The :class:`Store`: connecting to the database, migrating it, and the reads and upkeep.

It owns the engine (SQLite hooks, PostgreSQL pool settings, secrets kept out of messages),
runs the Alembic migrations, hands out write transactions and answers every query the
monitor, the alert workers and the CLI make."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from monitor.clock import Clock, SystemClock
from monitor.dburl import STORE_BACKENDS, STORE_EXAMPLES
from monitor.errors import StoreError
from monitor.redact import redact_url as _redact_url
from monitor.store import retention
from monitor.store.bulk import IN_CHUNK, _chunks, _insert, _select_series_ids, _utc_ns
from monitor.store.column_types import UTCDateTime, _require_aware
from monitor.store.instance_lock import InstanceLock
from monitor.store.outbox_row import OutboxRow, _outbox_row
from monitor.store.tables import (
    FEEDBACK_LABELS,
    MAX_ERROR_CHARS,
    OUTBOX_STATUSES,
    alert_groups_t,
    anomalies_t,
    detector_checkpoints_t,
    feedback_requests_t,
    feedback_t,
    incidents_t,
    notifications_t,
    points_t,
    poll_cursors_t,
    series_t,
    ticks_t,
)
from monitor.store.transaction import StoreTx

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000  # writers queue behind each other instead of failing


_SUPPORTED = STORE_BACKENDS


def redact_url(url: str | URL) -> str:
    """The URL with secrets masked (see :func:`monitor.redact.redact_url`)."""
    return _redact_url(url)


def _migrations_dir() -> resources.abc.Traversable:
    return resources.files("monitor") / "migrations"


def _refuse_newer_schema(cfg: Any, conn: Connection, where: str) -> None:
    """A StoreError that says what to do when the store was migrated by a newer cxmon.

    Why: after an upgrade on one host, an older cxmon elsewhere (a laptop's ``alerts status``,
    a delivery worker not yet upgraded) failed with Alembic's ``CommandError: Can't locate
    revision identified by '0007'``, which reads like a corrupt store."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    known = {r.revision for r in script.walk_revisions()}
    current = MigrationContext.configure(conn).get_current_heads()
    unknown = sorted(r for r in current if r not in known)
    if unknown:
        raise StoreError(
            f"{where} was migrated by a newer cxmon (schema revision "
            f"{', '.join(unknown)}; this cxmon knows up to {', '.join(sorted(script.get_heads()))}"
            "): upgrade cxmon here too; going back needs the backup taken before the upgrade "
            "(docs/operations.md, Upgrades)")


_HINTS = {  # SQLite's words for trouble an operator can fix: what to look at
    "database is locked": "another process held a write lock for over "
                          f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s",
    "readonly database": "check the permissions of the file and its folder",
    "disk is full": "free disk space",
    "disk I/O error": "check the disk",
}


def _unavailable_message(where: str, error: str) -> str:
    """``store <url> unavailable: <the driver's first line> (<hint>)``."""
    first = (error.strip().splitlines() or ["unknown error"])[0].strip()
    hint = next((h for words, h in _HINTS.items() if words in first), None)
    return f"store {where} unavailable: {first}" + (f" ({hint})" if hint else "")


def _revisions(conn: Connection) -> str:
    """The store's schema revisions (Alembic heads), as one string for a log line."""
    from alembic.runtime.migration import MigrationContext

    return ", ".join(sorted(MigrationContext.configure(conn).get_current_heads()))


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL + foreign keys + busy timeout on every connection, and our own BEGIN.

    pysqlite's implicit BEGIN is deferred and only issued before DML, so a read-then-write
    transaction can hit "database is locked" without waiting. Write transactions therefore
    start with ``BEGIN IMMEDIATE`` (they queue on busy_timeout); reads use a plain BEGIN.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("cxmon_sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


class Store:
    """The database behind cxmon. ``Store.open(url)`` connects and migrates to the newest
    schema; ``Store(url)`` only connects (for tools that must not change the schema)."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url_redacted = redact_url(url)
        self._clock: Clock = clock or SystemClock()
        #: series key -> id of every series row seen committed (see StoreTx.series_ids)
        self._series_ids: dict[str, int] = {}
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise StoreError(f"invalid store URL {self.url_redacted}") from exc
        self._password = parsed.password
        backend = parsed.get_backend_name()
        if backend not in _SUPPORTED:
            raise StoreError(
                f"unsupported store backend {backend!r} in {self.url_redacted}; "
                + STORE_EXAMPLES
            )
        self._url = parsed
        kwargs: dict[str, Any] = {}
        if backend == "postgresql":
            kwargs["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine: Engine = sa.create_engine(parsed, **kwargs)
        except Exception as exc:
            raise StoreError(
                f"cannot create engine for {self.url_redacted}: {self._scrub(exc)}"
            ) from exc
        if backend == "sqlite":
            _install_sqlite_hooks(self.engine)

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None, create: bool = True) -> Store:
        """Connect and migrate to head: what the monitor does on start-up. ``create=False``
        (the read-only commands): a database without cxmon's tables is a :class:`StoreError`,
        not a fresh, empty store that reports all clear."""
        store = cls(url, clock=clock)
        try:
            if not create and not store.has_schema():
                raise StoreError(
                    f"no store at {store.url_redacted} (no cxmon tables in that database and "
                    "schema: check store: in the config, and the search_path in the URL's "
                    "options; `cxmon run` creates the store)")
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url_redacted!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def clock(self) -> Clock:
        """The clock the store stamps rows with (``created_at`` of feedback, ...): whoever
        acts on those rows beside it (a dismissal after a verdict) reads the same clock."""
        return self._clock

    def _scrub(self, exc: BaseException) -> str:
        """An error message without the password, in case a driver echoes the DSN."""
        text = str(exc)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    # -- connections ----------------------------------------------------------------------------

    @contextmanager
    def _write(self, *, wrap: bool = True) -> Iterator[Connection]:
        with self._unavailable(wrap), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(cxmon_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self, *, wrap: bool = True) -> Iterator[Connection]:
        with self._unavailable(wrap), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _unavailable(self, wrap: bool = True) -> Iterator[None]:
        """The database's own trouble (down, restarted, locked, read-only, disk full) as one
        :class:`StoreError` line naming the store, for the tick's error, the log and the
        ``ticks`` table: SQLAlchemy's message ran over three lines, with the SQL and a link.
        ``wrap=False``: opening the store says "cannot migrate/connect" itself."""
        try:
            yield
        except sa.exc.OperationalError as exc:
            if not wrap:
                raise
            raise StoreError(_unavailable_message(self.url_redacted,
                                                  self._scrub(exc.orig or exc))) from exc

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        """One database transaction: committed on exit, rolled back on any exception."""
        with self._write() as conn:
            tx = StoreTx(conn, self._clock, self._series_ids)
            yield tx
        self._series_ids.update(tx.learned)  # committed: those rows exist for good

    def migrate(self) -> None:
        """Upgrade the schema to head; safe to call on every start and from many processes."""
        try:
            if self.dialect == "sqlite":
                db = self._url.database
                if db and db != ":memory:" and not db.startswith("file:"):
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
            from alembic import command
            from alembic.config import Config

            with resources.as_file(_migrations_dir()) as script_dir:
                cfg = Config(str(script_dir / "alembic.ini"))
                cfg.set_main_option("script_location", str(script_dir).replace("%", "%%"))
                with self._write(wrap=False) as conn:
                    if self.dialect == "postgresql":  # serialize concurrent starts per schema
                        conn.exec_driver_sql(
                            "SELECT pg_advisory_xact_lock(hashtext('cxmon-migrate:' "
                            "|| coalesce(current_schema(), '')))"
                        )
                    cfg.attributes["connection"] = conn
                    _refuse_newer_schema(cfg, conn, self.url_redacted)
                    before = _revisions(conn)
                    command.upgrade(cfg, "heads")
                    after = _revisions(conn)
            if after != before:  # committed: an operator sees the upgrade in the journal
                log.info("store %s: schema %s", self.url_redacted,
                         f"migrated from {before} to {after}" if before
                         else f"created (revision {after})")
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"cannot migrate store {self.url_redacted}: "
                f"{type(exc).__name__}: {self._scrub(exc)}"
            ) from exc

    def instance_lock(self, holder: str) -> InstanceLock:
        """The lock that keeps a second ``cxmon run`` off this store (not yet taken: call
        ``acquire()``); ``holder`` is how a refused process names us."""
        return InstanceLock(self._url, where=self.url_redacted, holder=holder,
                            scrub=self._scrub)

    def has_schema(self) -> bool:
        """Whether cxmon's tables are there (``alembic_version`` in the connection's default
        schema: PostgreSQL's ``search_path``), without creating anything.

        Read-only commands check it so that a mistyped schema or database is an error, not a
        fresh, empty store that reports all clear."""
        try:
            with self._read(wrap=False) as conn:
                return sa.inspect(conn).has_table("alembic_version")
        except Exception as exc:
            raise StoreError(
                f"cannot connect to store {self.url_redacted}: "
                f"{type(exc).__name__}: {self._scrub(exc)}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- reads ----------------------------------------------------------------------------------

    def get_cursor(self, metric: str) -> datetime | None:
        with self._read() as conn:
            return conn.execute(
                sa.select(poll_cursors_t.c.cursor).where(poll_cursors_t.c.metric == metric)
            ).scalar_one_or_none()

    def checkpointed(self, metric: str) -> datetime | None:
        """Up to which bucket time ``metric``'s detector checkpoints are: its cursor where
        none was recorded (stores from before ``store.checkpoint_every`` checkpointed every
        tick); None for a metric never polled."""
        c = poll_cursors_t.c
        with self._read() as conn:
            row = conn.execute(sa.select(c.cursor, c.checkpointed)
                               .where(c.metric == metric)).one_or_none()
        return None if row is None else (row.checkpointed or row.cursor)

    def series_labels(self, metric: str, keys: Sequence[str] | None = None
                      ) -> dict[str, dict[str, str]]:
        """Labels of the metric's stored series by key (all, or only ``keys``): what a
        replay of stored points hands the detectors instead of the polled series."""
        q = sa.select(series_t.c.key, series_t.c.labels).where(series_t.c.metric == metric)
        out: dict[str, dict[str, str]] = {}
        with self._read() as conn:
            if keys is None:
                out.update({str(k): dict(v or {}) for k, v in conn.execute(q)})
            else:
                for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
                    rows = conn.execute(q.where(series_t.c.key.in_(chunk)))
                    out.update({str(k): dict(v or {}) for k, v in rows})
        return out

    def last_point_time(self, metric: str) -> datetime | None:
        """Start of the newest stored bucket of a metric (for staleness), or None."""
        q = (
            sa.select(sa.func.max(points_t.c.ts, type_=UTCDateTime()))
            .join_from(points_t, series_t)
            .where(series_t.c.metric == metric)
        )
        with self._read() as conn:
            return conn.execute(q).scalar_one_or_none()

    def last_good_ticks(self) -> dict[str, datetime]:
        """When each metric's newest tick without an error finished (metrics with none are
        absent)."""
        q = (sa.select(ticks_t.c.metric,
                       sa.func.max(ticks_t.c.finished_at, type_=UTCDateTime()))
             .where(ticks_t.c.error.is_(None)).group_by(ticks_t.c.metric))
        with self._read() as conn:
            return {str(m): t for m, t in conn.execute(q) if t is not None}

    def series_ids(self, keys: Sequence[str]) -> dict[str, int]:
        """Ids of the known keys; unknown keys are simply absent."""
        with self._read() as conn:
            return _select_series_ids(conn, keys)

    def forget_series_ids(self, keys: Sequence[str]) -> None:
        """Drop ``keys`` from the cache of series ids (their rows stay): a series forgotten
        for good must not keep an entry per churned dimension value in memory either."""
        for k in keys:
            self._series_ids.pop(k, None)

    def series_with_points_before(self, keys: Sequence[str], before: datetime) -> set[str]:
        """The ones of ``keys`` that have a stored point starting before ``before`` (a series
        met again after it was forgotten, rather than a new one)."""
        out: set[str] = set()
        before = _require_aware(before, "before")
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
                q = (sa.select(series_t.c.key).where(series_t.c.key.in_(chunk))
                     .where(sa.exists().where(points_t.c.series_id == series_t.c.id,
                                              points_t.c.ts < before)))
                out.update(str(k) for k in conn.execute(q).scalars())
        return out

    def load_checkpoints(
        self, detector: str, keys: Sequence[str] | None = None
    ) -> dict[str, bytes]:
        """Saved detector states by series key (all series, or only ``keys``)."""
        q = (
            sa.select(series_t.c.key, detector_checkpoints_t.c.state)
            .join_from(detector_checkpoints_t, series_t)
            .where(detector_checkpoints_t.c.detector == detector)
        )
        out: dict[str, bytes] = {}
        with self._read() as conn:
            if keys is None:
                out.update({k: bytes(s) for k, s in conn.execute(q)})
            else:
                for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
                    rows = conn.execute(q.where(series_t.c.key.in_(chunk)))
                    out.update({k: bytes(s) for k, s in rows})
        return out

    def load_points(
        self,
        *,
        metric: str | None = None,
        keys: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Points as a measure frame (MEASURE_COLUMNS), sorted by series then timestamp.

        ``start`` is inclusive and ``end`` exclusive, like the buckets themselves.
        """
        q = sa.select(
            series_t.c.key,
            points_t.c.ts,
            points_t.c.value,
            points_t.c.numerator,
            points_t.c.denominator,
        ).join_from(points_t, series_t)
        if metric is not None:
            q = q.where(series_t.c.metric == metric)
        if start is not None:
            q = q.where(points_t.c.ts >= _require_aware(start, "start"))
        if end is not None:
            q = q.where(points_t.c.ts < _require_aware(end, "end"))
        rows: list[sa.Row[Any]] = []
        with self._read() as conn:
            if keys is None:
                rows = list(conn.execute(q))
            else:
                for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
                    rows.extend(conn.execute(q.where(series_t.c.key.in_(chunk))))
        cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
        frame = pd.DataFrame(
            {
                "timestamp": _utc_ns(cols[1]),
                "series": pd.Series(cols[0], dtype="str"),
                "value": pd.Series(cols[2], dtype="float64"),
                "numerator": pd.Series(cols[3], dtype="float64"),
                "denominator": pd.Series(
                    [math.nan if d is None else d for d in cols[4]], dtype="float64"
                ),
            }
        )
        return frame.sort_values(["series", "timestamp"], kind="stable", ignore_index=True)

    def anomalies(
        self,
        *,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        ids: Collection[str] | None = None,
    ) -> pd.DataFrame:
        """Stored anomalies (table columns plus ``series`` key), oldest first; [start, end);
        ``ids``: only these."""
        q = (
            sa.select(anomalies_t, series_t.c.key.label("series"))
            .join_from(anomalies_t, series_t)
            .order_by(anomalies_t.c.ts, anomalies_t.c.id)
        )
        if metric is not None:
            q = q.where(anomalies_t.c.metric == metric)
        if start is not None:
            q = q.where(anomalies_t.c.ts >= _require_aware(start, "start"))
        if end is not None:
            q = q.where(anomalies_t.c.ts < _require_aware(end, "end"))
        if ids is not None:
            q = q.where(anomalies_t.c.id.in_(list(ids)))
        with self._read() as conn:
            result = conn.execute(q)
            columns = list(result.keys())
            rows = [tuple(r) for r in result]
        frame = pd.DataFrame(rows, columns=columns)
        for c in ("ts", "created_at"):
            frame[c] = _utc_ns(frame[c])
        for c in ("value", "expected", "lower", "upper", "score", "volume"):
            frame[c] = pd.to_numeric(frame[c]).astype("float64")
        frame["severity"] = frame["severity"].astype("int64")
        frame["incident_id"] = frame["incident_id"].astype("Int64")
        return frame

    # -- incidents --------------------------------------------------------------------------------

    def incidents(self, status: str | None = None) -> list[dict[str, Any]]:
        """Incidents (optionally of one status), oldest first, as plain dicts."""
        q = sa.select(incidents_t).order_by(incidents_t.c.id)
        if status is not None:
            q = q.where(incidents_t.c.status == status)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def open_incidents(self) -> list[dict[str, Any]]:
        """Open incidents, to rebuild the in-memory tracker after a restart."""
        return self.incidents("open")

    def dismissed_incidents(self) -> list[dict[str, Any]]:
        """Incidents closed as false alarms whose alert groups are still kept (until their
        group is quiet for ``resolve_after``, :mod:`alerts.dismiss`), oldest first: the
        tracker holds them after a restart, to take their group's anomalies quietly."""
        kept = sa.select(alert_groups_t.c.incident_key).distinct()
        q = (sa.select(incidents_t)
             .where(incidents_t.c.status == "resolved", incidents_t.c.key.in_(kept))
             .order_by(incidents_t.c.id))
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        return [r for r in rows if isinstance((r["summary"] or {}).get("dismissed"), dict)]

    def incident_anomaly_ids(self, key: str) -> list[str]:
        """Ids of the anomalies linked to the incident ``key``, oldest first (a Slack
        feedback click applies to all of them, not only those its button could hold)."""
        q = (sa.select(anomalies_t.c.id)
             .join(incidents_t, anomalies_t.c.incident_id == incidents_t.c.id)
             .where(incidents_t.c.key == key)
             .order_by(anomalies_t.c.ts, anomalies_t.c.id))
        with self._read() as conn:
            return [r[0] for r in conn.execute(q)]

    # -- outbox -----------------------------------------------------------------------------------

    def outbox_counts(self) -> dict[str, int]:
        q = sa.select(notifications_t.c.status, sa.func.count()).group_by(notifications_t.c.status)
        counts = dict.fromkeys(OUTBOX_STATUSES, 0)
        with self._read() as conn:
            counts.update({s: int(n) for s, n in conn.execute(q)})
        return counts

    def claim_due(
        self,
        now: datetime,
        limit: int = 100,
        *,
        lease: timedelta | None = None,
        owner: str | None = None,
        heads_only: bool = False,
        receivers: Sequence[str] | None = None,
        orphaned_before: datetime | None = None,
    ) -> list[OutboxRow]:
        """Pending notifications due at ``now`` and not leased by a worker, oldest first.

        With ``lease`` the rows are claimed: in one atomic statement they get ``lease_owner``
        (``owner``) and ``lease_until = now + lease``, so a concurrent worker cannot claim them
        (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the write transaction is serialized by
        ``BEGIN IMMEDIATE``), and a crashed worker's rows come back once the lease expires.
        ``heads_only``: only the oldest pending row of each (incident, receiver), so an update
        is never sent before, or beside, the message that precedes it. ``receivers``: only
        rows for these receivers (the ones the worker can send to), and rows for any other
        receiver due since before ``orphaned_before`` (no worker has taken them: the caller
        dead-letters them, visibly, instead of leaving them pending forever).
        """
        now = _require_aware(now, "now")
        t = notifications_t
        due = [t.c.status == "pending", t.c.next_attempt_at <= now,
               sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now)]
        if receivers is not None:
            mine = t.c.receiver.in_(list(receivers)) if receivers else sa.false()
            if orphaned_before is not None:
                mine = sa.or_(mine, t.c.next_attempt_at <= _require_aware(orphaned_before,
                                                                           "orphaned_before"))
            due.append(mine)
        if heads_only:
            earlier = t.alias("earlier")
            due.append(~sa.exists().where(
                earlier.c.incident_key == t.c.incident_key, earlier.c.receiver == t.c.receiver,
                earlier.c.status == "pending", earlier.c.id < t.c.id))
        if lease is None:
            with self._read() as conn:
                q_rows = sa.select(t).where(*due).order_by(t.c.id).limit(int(limit))
                return [_outbox_row(r) for r in conn.execute(q_rows)]
        q = sa.select(t.c.id).where(*due).order_by(t.c.id).limit(int(limit)).correlate(None)
        until = now + lease
        stmt = sa.update(t).values(lease_owner=owner or "cxmon", lease_until=until).returning(t)
        if self.dialect == "postgresql":
            # a materialized CTE: PostgreSQL may re-run an IN (... LIMIT) subquery per row
            claim = q.with_for_update(skip_locked=True, of=t).cte("claim")
            claim = claim.prefix_with("MATERIALIZED")
            stmt = stmt.add_cte(claim).where(t.c.id.in_(sa.select(claim.c.id)), *due)
        else:
            stmt = stmt.where(t.c.id.in_(q.scalar_subquery()), *due)
        with self._write() as conn:
            rows = [_outbox_row(r) for r in conn.execute(stmt)]
        return sorted(rows, key=lambda r: r.id)

    def release_leases(self, owners: Sequence[str]) -> int:
        """Give up the leases of these workers (known dead) at once; returns how many."""
        if not owners:
            return 0
        t = notifications_t
        with self._write() as conn:
            res = conn.execute(sa.update(t).where(t.c.status == "pending",
                                                  t.c.lease_owner.in_(list(owners)))
                               .values(lease_owner=None, lease_until=None))
            return int(res.rowcount or 0)

    def lease_owners(self, now: datetime) -> list[str]:
        """Workers holding an unexpired lease on a pending notification."""
        t = notifications_t
        q = sa.select(t.c.lease_owner).distinct().where(
            t.c.status == "pending", t.c.lease_owner.is_not(None),
            t.c.lease_until > _require_aware(now, "now"))
        with self._read() as conn:
            return [str(o) for o in conn.execute(q).scalars()]

    def _update_notification(
        self, notification_id: int, owner: str | None = None, **values: Any
    ) -> bool:
        """Update one row and drop its lease. With ``owner``, only while that worker still
        holds it: False if the lease was lost (expired and claimed by another worker)."""
        t = notifications_t
        where = [t.c.id == int(notification_id)]
        if owner is not None:
            where += [t.c.status == "pending",
                      sa.or_(t.c.lease_owner.is_(None), t.c.lease_owner == owner)]
        with self._write() as conn:
            res = conn.execute(sa.update(t).where(*where)
                               .values(lease_owner=None, lease_until=None, **values))
            if res.rowcount:
                return True
            exists = conn.execute(sa.select(t.c.id).where(t.c.id == int(notification_id)))
            if exists.first() is None:
                raise KeyError(f"no notification with id {notification_id}")
            return False

    def mark_sent(self, notification_id: int, now: datetime, *, owner: str | None = None
                  ) -> bool:
        return self._update_notification(
            notification_id, owner, status="sent", sent_at=_require_aware(now, "now")
        )

    def mark_retry(self, notification_id: int, error: str, next_attempt_at: datetime, *,
                   owner: str | None = None) -> bool:
        """A failed attempt that will be retried at ``next_attempt_at``."""
        return self._update_notification(
            notification_id,
            owner,
            status="pending",
            attempts=notifications_t.c.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
            next_attempt_at=_require_aware(next_attempt_at, "next_attempt_at"),
        )

    def mark_dead(self, notification_id: int, error: str, *, owner: str | None = None) -> bool:
        """A failed attempt after which the notification is given up (dead-lettered)."""
        return self._update_notification(
            notification_id,
            owner,
            status="dead",
            attempts=notifications_t.c.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
        )

    def requeue_dead(self, ids: Sequence[int] | None, now: datetime, *,
                     receiver: str | None = None) -> list[int]:
        """Put dead-lettered notifications back in the queue, due at ``now`` with a fresh
        attempt budget; returns the ids requeued, oldest first.

        Why: a receiver that was down past the retry budget, or a fixed config (a rotated
        token), left alerts that were never sent with no way back but SQL. ``ids`` None:
        every dead one (of ``receiver``, if given). ``last_error`` is kept, so ``alerts
        status`` still says why it died until the next attempt says more. The idempotency
        key is unchanged: the receiver deduplicates a send that did land after all."""
        now = _require_aware(now, "now")
        t = notifications_t
        where = [t.c.status == "dead"]
        if ids is not None:
            where.append(t.c.id.in_([int(i) for i in ids]))
        if receiver is not None:
            where.append(t.c.receiver == receiver)
        with self._write() as conn:
            found = sorted(int(i) for i in conn.execute(sa.select(t.c.id).where(*where))
                           .scalars())
            if found:
                conn.execute(sa.update(t).where(t.c.id.in_(found)).values(
                    status="pending", attempts=0, next_attempt_at=now, sent_at=None,
                    lease_owner=None, lease_until=None))
        return found

    def notifications(self, status: str | None = None) -> list[OutboxRow]:
        q = sa.select(notifications_t).order_by(notifications_t.c.id)
        if status is not None:
            q = q.where(notifications_t.c.status == status)
        with self._read() as conn:
            return [_outbox_row(r) for r in conn.execute(q)]

    # -- history, retention, feedback -----------------------------------------------------------

    def ticks(self, metric: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Most recent ticks first."""
        q = sa.select(ticks_t).order_by(ticks_t.c.id.desc()).limit(int(limit))
        if metric is not None:
            q = q.where(ticks_t.c.metric == metric)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def purge_points(self, older_than: datetime) -> int:
        """Delete points with a timestamp before ``older_than``; returns how many. One
        transaction per hour of points (:func:`monitor.store.retention.purge_points`), so a
        tick waits for a slice, not for the whole purge."""
        return retention.purge_points(self._write, older_than)

    def purge_history(self, older_than: datetime) -> dict[str, int]:
        """Retention of every table that grows with time (points, anomalies, ticks, finished
        notifications, delivery receipts) before ``older_than``, keeping what is still read;
        rows deleted per table. See :mod:`monitor.store.retention`."""
        return retention.purge_history(self._write, older_than)

    def remember_feedback_request(self, signature: str, request_ts: datetime, *,
                                  purge_before: datetime | None = None) -> bool:
        """Record a verified feedback request; False if its signature was seen before.

        Why: one ``INSERT ... ON CONFLICT DO NOTHING`` on the primary key is atomic, so two
        processes sharing the store cannot both accept the same replayed request (a
        check-then-insert could). ``purge_before`` deletes rows whose request time is older
        (in the same transaction), which keeps the table at one window of requests.
        """
        ts = _require_aware(request_ts, "request_ts")
        now = _require_aware(self._clock.now(), "clock.now()")
        with self._write() as conn:
            if purge_before is not None:
                cutoff = _require_aware(purge_before, "purge_before")
                conn.execute(sa.delete(feedback_requests_t)
                             .where(feedback_requests_t.c.request_ts < cutoff))
            res = conn.execute(
                _insert(conn, feedback_requests_t)
                .values(signature=signature, request_ts=ts, seen_at=now)
                .on_conflict_do_nothing(index_elements=[feedback_requests_t.c.signature])
                .returning(feedback_requests_t.c.signature)
            )
            return res.first() is not None  # rowcount is not reliable for upserts

    def purge_feedback_requests(self, older_than: datetime) -> int:
        """Delete remembered feedback requests sent before ``older_than``; returns how many
        (retention: past the replay window they can only be refused as stale)."""
        cutoff = _require_aware(older_than, "older_than")
        with self._write() as conn:
            res = conn.execute(sa.delete(feedback_requests_t)
                               .where(feedback_requests_t.c.request_ts < cutoff))
            return int(res.rowcount)

    def add_feedback(
        self,
        anomaly_id: str,
        label: str,
        *,
        source: str = "cli",
        user: str | None = None,
        note: str | None = None,
    ) -> int:
        """Record an analyst's verdict on an anomaly; returns the feedback id."""
        if label not in FEEDBACK_LABELS:
            raise ValueError(f"unknown feedback label {label!r}; expected one of {FEEDBACK_LABELS}")
        now = _require_aware(self._clock.now(), "clock.now()")
        with self._write() as conn:
            exists = conn.execute(
                sa.select(anomalies_t.c.id).where(anomalies_t.c.id == anomaly_id)
            ).first()
            if exists is None:
                raise KeyError(f"no anomaly with id {anomaly_id!r}")
            return int(
                conn.execute(
                    sa.insert(feedback_t)
                    .values(
                        anomaly_id=anomaly_id,
                        label=label,
                        source=source,
                        user=user,
                        note=note,
                        created_at=now,
                    )
                    .returning(feedback_t.c.id)
                ).scalar_one()
            )

    def feedback_after(self, metric: str, after_id: int = 0) -> list[dict[str, Any]]:
        """Feedback on a metric's anomalies with id > ``after_id``, oldest first: id, label,
        series (key), ts and severity of the anomaly (for detectors/feedback.py)."""
        q = (
            sa.select(
                feedback_t.c.id, feedback_t.c.label, series_t.c.key.label("series"),
                anomalies_t.c.ts, anomalies_t.c.severity,
            )
            .join_from(feedback_t, anomalies_t)
            .join(series_t, anomalies_t.c.series_id == series_t.c.id)
            .where(anomalies_t.c.metric == metric, feedback_t.c.id > int(after_id))
            .order_by(feedback_t.c.id)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def anomaly_ids(self, prefix: str, *, limit: int = 5) -> list[str]:
        """Anomaly ids equal to ``prefix``, else (at most ``limit``) starting with it."""
        with self._read() as conn:
            if conn.execute(sa.select(anomalies_t.c.id)
                            .where(anomalies_t.c.id == prefix)).first() is not None:
                return [prefix]
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = (sa.select(anomalies_t.c.id)
                 .where(anomalies_t.c.id.like(escaped + "%", escape="\\"))
                 .order_by(anomalies_t.c.id).limit(limit))
            return [r[0] for r in conn.execute(q)]

    def feedback_on(self, anomaly_id: str) -> list[dict[str, Any]]:
        """The feedback records of one anomaly (id, label, source, created_at), oldest first."""
        q = (sa.select(feedback_t).where(feedback_t.c.anomaly_id == anomaly_id)
             .order_by(feedback_t.c.id))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def feedback_for(self, series_key: str) -> list[dict[str, Any]]:
        """Feedback on a series' anomalies, oldest first, with the anomaly's ts/detector/kind."""
        q = (
            sa.select(
                feedback_t,
                anomalies_t.c.ts,
                anomalies_t.c.detector,
                anomalies_t.c.kind,
                anomalies_t.c.metric,
            )
            .join_from(feedback_t, anomalies_t)
            .join(series_t, anomalies_t.c.series_id == series_t.c.id)
            .where(series_t.c.key == series_key)
            .order_by(feedback_t.c.id)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
