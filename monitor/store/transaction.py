"""All writes of one tick, in one database transaction (:class:`StoreTx`).

Points, detector checkpoints, anomalies, incidents, outbox rows, the poll cursor and the
tick record are committed together or not at all, which is what makes re-running a failed
tick safe."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.clock import Clock
from monitor.model import MEASURE_COLUMNS, Anomaly, Notification, Series
from monitor.store.bulk import (
    IN_CHUNK,
    _chunks,
    _copy_checkpoints,
    _copy_points,
    _float_or_none,
    _insert,
    _select_series_ids,
    _sqlite_checkpoints,
    _sqlite_points,
    _utc_index,
)
from monitor.store.column_types import _require_aware
from monitor.store.tables import (
    MAX_ERROR_CHARS,
    anomalies_t,
    detector_checkpoints_t,
    incidents_t,
    notifications_t,
    points_t,
    poll_cursors_t,
    series_t,
    ticks_t,
)

log = logging.getLogger(__name__)


WRITE_CHUNK = 10_000  # rows per executemany call: bounded memory, few round trips
#: From this many points, PostgreSQL gets them by COPY into a temporary table and one
#: INSERT ... SELECT ... ON CONFLICT (a first tick's history: millions of rows), not by
#: executemany, which sends one statement per row
COPY_MIN_ROWS = 5_000


def _require_series(tx: StoreTx, keys: Sequence[str]) -> dict[str, int]:
    """Series ids for ``keys``; an unknown key means ``ensure_series`` was skipped."""
    ids = tx.series_ids(keys)
    unknown = [k for k in dict.fromkeys(keys) if k not in ids]
    if unknown:
        shown = ", ".join(unknown[:5]) + (
            f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        )
        raise KeyError(f"unknown series (call ensure_series first): {shown}")
    return ids


class StoreTx:
    """All writes of one database transaction; get one from :meth:`Store.transaction`."""

    def __init__(self, conn: Connection, clock: Clock,
                 known: Mapping[str, int] | None = None) -> None:
        self.conn = conn
        self._clock = clock
        self._known = known if known is not None else {}
        #: ids this transaction looked up or created (the store learns them at commit)
        self.learned: dict[str, int] = {}

    def series_ids(self, keys: Sequence[str]) -> dict[str, int]:
        """Ids of the stored ones of ``keys``, asking the database only about keys neither
        the store nor this transaction has seen. Why: a tick writes points, checkpoints and
        anomalies of the same tens of thousands of series; looking their ids up again for
        each was a third of a steady tick on PostgreSQL. Ids are safe to remember: a series
        row is never deleted or re-keyed."""
        out: dict[str, int] = {}
        missing = []
        for k in dict.fromkeys(keys):
            i = self.learned.get(k)
            if i is None:
                i = self._known.get(k)
            if i is None:
                missing.append(k)
            else:
                out[k] = i
        if missing:
            found = _select_series_ids(self.conn, missing)
            self.learned.update(found)
            out.update(found)
        return out

    def _now(self) -> datetime:
        return _require_aware(self._clock.now(), "clock.now()")

    def ensure_series(self, series: Sequence[Series]) -> dict[str, int]:
        """Ids of the series, creating the missing ones (one select + one multi-row insert)."""
        wanted: dict[str, Series] = {}
        for s in series:
            wanted.setdefault(s.key, s)
        if not wanted:
            return {}
        ids = self.series_ids(list(wanted))
        missing = [k for k in wanted if k not in ids]
        if missing:
            now = self._now()
            rows = [
                {
                    "key": k,
                    "metric": wanted[k].metric,
                    "labels": dict(wanted[k].labels),
                    "created_at": now,
                }
                for k in missing
            ]
            stmt = (
                _insert(self.conn, series_t)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(series_t.c.key, series_t.c.id)
            )
            created = {k: i for k, i in self.conn.execute(stmt, rows)}
            self.learned.update(created)
            ids.update(created)
            raced = [k for k in missing if k not in ids]  # inserted concurrently by another tick
            if raced:
                ids.update(self.series_ids(raced))
        return {k: ids[k] for k in wanted}

    def upsert_points(self, frame: pd.DataFrame) -> int:
        """Insert or correct points (a re-poll may revise a bucket); returns rows written.

        ``frame`` has :data:`~monitor.model.MEASURE_COLUMNS` with ``series`` as the key.
        Duplicate (series, timestamp) rows keep the last one.
        """
        missing_cols = [c for c in MEASURE_COLUMNS if c not in frame.columns]
        if missing_cols:
            raise ValueError(f"points frame lacks columns {missing_cols}")
        if frame.empty:
            return 0
        codes, keys = pd.factorize(frame["series"])  # one str per series, not per row
        df = pd.DataFrame(
            {
                "series": codes,
                "ts": _utc_index(frame["timestamp"]),
                "value": pd.to_numeric(frame["value"]).to_numpy(dtype=float),
                "numerator": pd.to_numeric(frame["numerator"]).to_numpy(dtype=float),
                "denominator": pd.to_numeric(frame["denominator"]).to_numpy(dtype=float),
            }
        ).drop_duplicates(["series", "ts"], keep="last")
        if df["value"].isna().any() or df["numerator"].isna().any():
            raise ValueError("points frame has NaN in value or numerator")
        names = [str(k) for k in keys]
        ids = _require_series(self, names)
        series_ids = np.array([ids[k] for k in names], dtype=np.int64)[df["series"].to_numpy()]
        stamps = pd.DatetimeIndex(df["ts"])
        values, nums, dens = (df[c].to_numpy() for c in ("value", "numerator", "denominator"))
        if self.conn.dialect.name == "postgresql" and len(df) >= COPY_MIN_ROWS:
            _copy_points(self.conn, series_ids, stamps, values, nums, dens)
            return len(df)
        if self.conn.dialect.name == "sqlite":
            _sqlite_points(self.conn, series_ids, stamps, values, nums, dens, WRITE_CHUNK)
            return len(df)
        ins = _insert(self.conn, points_t)
        stmt = ins.on_conflict_do_update(
            index_elements=["series_id", "ts"],
            set_={
                "value": ins.excluded.value,
                "numerator": ins.excluded.numerator,
                "denominator": ins.excluded.denominator,
            },
        )
        # row dicts one chunk at a time: for a first tick's history (millions of points) a
        # list of all of them would cost about 0.5 KB of memory per point
        for lo in range(0, len(df), WRITE_CHUNK):
            hi = lo + WRITE_CHUNK
            self.conn.execute(stmt, [
                {"series_id": s, "ts": t, "value": v, "numerator": n,
                 "denominator": _float_or_none(d)}
                for s, t, v, n, d in zip(series_ids[lo:hi].tolist(),
                                         stamps[lo:hi].to_pydatetime(), values[lo:hi].tolist(),
                                         nums[lo:hi].tolist(), dens[lo:hi].tolist(), strict=True)
            ])
        return len(df)

    def set_cursor(self, metric: str, cursor: datetime) -> None:
        """Remember how far a metric has been polled (moves backwards too, for backfills)."""
        cursor = _require_aware(cursor, "cursor")
        now = self._now()
        ins = _insert(self.conn, poll_cursors_t).values(
            metric=metric, cursor=cursor, updated_at=now
        )
        self.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["metric"],
                set_={"cursor": ins.excluded.cursor, "updated_at": ins.excluded.updated_at},
            )
        )

    def mark_checkpointed(self, metric: str, at: datetime) -> None:
        """Record that ``metric``'s detector checkpoints are up to bucket time ``at`` (call
        after :meth:`set_cursor` in the same transaction); a restart replays the points
        stored from there to the cursor (``store.checkpoint_every``)."""
        at = _require_aware(at, "at")
        self.conn.execute(sa.update(poll_cursors_t).where(poll_cursors_t.c.metric == metric)
                          .values(checkpointed=at))

    def save_checkpoints(self, detector: str, states: Mapping[str, bytes]) -> None:
        """Upsert detector state per series key, so a restart resumes instead of re-learning."""
        if not states:
            return
        ids = _require_series(self, list(states))
        now = self._now()
        if self.conn.dialect.name == "postgresql" and len(states) >= COPY_MIN_ROWS:
            _copy_checkpoints(self.conn, detector, now,
                              [(ids[k], bytes(v)) for k, v in states.items()])
            return
        if self.conn.dialect.name == "sqlite":
            _sqlite_checkpoints(self.conn, detector, now,
                                [(ids[k], bytes(v)) for k, v in states.items()], WRITE_CHUNK)
            return
        rows = [
            {"detector": detector, "series_id": ids[k], "state": bytes(v), "updated_at": now}
            for k, v in states.items()
        ]
        ins = _insert(self.conn, detector_checkpoints_t)
        stmt = ins.on_conflict_do_update(
            index_elements=["detector", "series_id"],
            set_={"state": ins.excluded.state, "updated_at": ins.excluded.updated_at},
        )
        for chunk in _chunks(rows, WRITE_CHUNK):
            self.conn.execute(stmt, list(chunk))

    def delete_checkpoints(self, detectors: Sequence[str], keys: Sequence[str]) -> int:
        """Delete the checkpoints of ``keys`` under every name in ``detectors``; returns rows
        deleted. Why: a series forgotten (``forget_after``) must not be restored from its old
        state after a restart. Series rows stay (points and anomalies refer to them)."""
        if not detectors or not keys:
            return 0
        ids = list(self.series_ids(keys).values())
        c = detector_checkpoints_t.c
        deleted = 0
        for chunk in _chunks(ids, IN_CHUNK):
            res = self.conn.execute(sa.delete(detector_checkpoints_t).where(
                c.detector.in_(list(detectors)), c.series_id.in_(list(chunk))))
            deleted += max(int(res.rowcount), 0)
        return deleted

    def add_anomalies(self, anomalies: Sequence[Anomaly]) -> list[str]:
        """Insert anomalies; returns the ids actually inserted (already-stored ones ignored)."""
        unique: dict[str, Anomaly] = {}
        for a in anomalies:
            unique.setdefault(a.id, a)
        if not unique:
            return []
        ids = _require_series(self, [a.series for a in unique.values()])
        now = self._now()
        rows = [
            {
                "id": aid,
                "series_id": ids[a.series],
                "ts": _require_aware(a.timestamp, "anomaly timestamp"),
                "metric": a.metric,
                "detector": a.detector,
                "kind": a.kind,
                "value": _float_or_none(a.value),
                "expected": _float_or_none(a.expected),
                "lower": _float_or_none(a.lower),
                "upper": _float_or_none(a.upper),
                "score": _float_or_none(a.score),
                "severity": int(a.severity),
                "direction": str(a.direction),
                "labels": {str(k): str(v) for k, v in a.labels.items()},
                "incident_id": None,
                "created_at": now,
                "volume": _float_or_none(a.volume),
            }
            for aid, a in unique.items()
        ]
        stmt = (
            _insert(self.conn, anomalies_t)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(anomalies_t.c.id)
        )
        inserted: set[str] = set()
        for chunk in _chunks(rows, WRITE_CHUNK):
            inserted.update(self.conn.execute(stmt, list(chunk)).scalars())
        return [aid for aid in unique if aid in inserted]

    def enqueue(self, notifications: Sequence[Notification], now: datetime) -> int:
        """Write notifications to the outbox, due at ``now``; a known idempotency key is a
        no-op so a re-run tick never notifies twice. Returns how many were new."""
        return sum(self.enqueue_by_receiver(notifications, now).values())

    def enqueue_by_receiver(self, notifications: Sequence[Notification], now: datetime
                            ) -> Counter[str]:
        """:meth:`enqueue`, returning the new rows per receiver (for the exporter)."""
        now = _require_aware(now, "now")
        unique: dict[str, Notification] = {}
        for n in notifications:
            unique.setdefault(n.idempotency_key, n)
        if not unique:
            return Counter()
        rows = [
            {
                "idempotency_key": n.idempotency_key,
                "receiver": n.receiver,
                "incident_key": n.incident_key,
                "payload": dict(n.payload),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "created_at": now,
                "sent_at": None,
            }
            for n in unique.values()
        ]
        stmt = (
            _insert(self.conn, notifications_t)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(notifications_t.c.receiver)
        )
        by_receiver = Counter[str]()
        for chunk in _chunks(rows, WRITE_CHUNK):
            by_receiver.update(r[0] for r in self.conn.execute(stmt, list(chunk)))
        return by_receiver

    def record_suppressed(
        self, items: Sequence[tuple[Notification, str]], now: datetime
    ) -> int:
        """Keep notifications that were not sent (silenced, muted, inhibited) in the outbox
        with status ``suppressed`` and the reason, so ``cxmon alerts status`` shows them.
        A known idempotency key is a no-op. Returns how many were new."""
        now = _require_aware(now, "now")
        rows = {
            n.idempotency_key: {
                "idempotency_key": n.idempotency_key, "receiver": n.receiver,
                "incident_key": n.incident_key, "payload": dict(n.payload),
                "status": "suppressed", "attempts": 0, "next_attempt_at": now,
                "last_error": None, "created_at": now, "sent_at": None,
                "reason": reason[:MAX_ERROR_CHARS],
            }
            for n, reason in items
        }
        if not rows:
            return 0
        stmt = (
            _insert(self.conn, notifications_t)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(notifications_t.c.id)
        )
        return len(self.conn.execute(stmt, list(rows.values())).all())

    def open_incident(
        self,
        key: str,
        *,
        journey: str | None,
        severity: int,
        at: datetime,
        summary: Mapping[str, Any],
    ) -> int:
        """Open (or update) the incident ``key`` and return its id.

        An existing incident keeps its id and ``opened_at``; its severity only rises, and
        ``updated_at``/``summary`` are replaced. A resolved incident with the same key is
        re-opened (``resolved_at`` cleared): the key already pins the journey and time window.
        """
        at = _require_aware(at, "at")
        ins = _insert(self.conn, incidents_t).values(
            key=key,
            journey=journey,
            status="open",
            severity=int(severity),
            opened_at=at,
            updated_at=at,
            resolved_at=None,
            summary=dict(summary),
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "status": "open",
                "severity": sa.case(
                    (ins.excluded.severity > incidents_t.c.severity, ins.excluded.severity),
                    else_=incidents_t.c.severity,
                ),
                "updated_at": ins.excluded.updated_at,
                "summary": ins.excluded.summary,
                "resolved_at": None,
            },
        ).returning(incidents_t.c.id)
        return int(self.conn.execute(stmt).scalar_one())

    def resolve_incident(self, key: str, at: datetime) -> None:
        """Resolve an open incident. Already resolved or unknown keys are a logged no-op:
        failing here would roll back the whole tick and repeat forever."""
        at = _require_aware(at, "at")
        res = self.conn.execute(
            sa.update(incidents_t)
            .where(incidents_t.c.key == key, incidents_t.c.status == "open")
            .values(status="resolved", resolved_at=at, updated_at=at)
        )
        if res.rowcount == 0:
            log.warning("resolve_incident: no open incident with key %r", key)

    def absorb_into_closed(self, key: str, *, severity: int, at: datetime,
                           summary: Mapping[str, Any]) -> int | None:
        """Anomalies that joined an incident closed as a false alarm (:mod:`alerts.dismiss`):
        its severity (only rises), ``updated_at`` and summary are updated, and it stays
        resolved; returns its id, or None when there is no such incident."""
        at = _require_aware(at, "at")
        row = self.conn.execute(
            sa.select(incidents_t.c.id, incidents_t.c.severity)
            .where(incidents_t.c.key == key, incidents_t.c.status == "resolved")).first()
        if row is None:
            log.warning("absorb_into_closed: no resolved incident with key %r", key)
            return None
        self.conn.execute(sa.update(incidents_t).where(incidents_t.c.id == row.id).values(
            severity=max(int(row.severity), int(severity)), updated_at=at,
            summary=dict(summary)))
        return int(row.id)

    def link_anomalies(self, incident_id: int, anomaly_ids: Sequence[str]) -> None:
        """Attach anomalies to an incident (unknown anomaly ids are ignored)."""
        unique = list(dict.fromkeys(anomaly_ids))
        for chunk in _chunks(unique, IN_CHUNK):
            self.conn.execute(
                sa.update(anomalies_t)
                .where(anomalies_t.c.id.in_(chunk))
                .values(incident_id=int(incident_id))
            )

    def record_tick(
        self,
        *,
        metric: str,
        started_at: datetime,
        finished_at: datetime,
        since: datetime | None,
        until: datetime | None,
        rows_in: int,
        rows_stored: int,
        rejected: Mapping[str, int],
        anomalies: int,
        error: str | None = None,
    ) -> None:
        """One row of run history per tick, successful or not (for ``cxmon status``)."""
        self.conn.execute(
            sa.insert(ticks_t).values(
                metric=metric,
                started_at=_require_aware(started_at, "started_at"),
                finished_at=_require_aware(finished_at, "finished_at"),
                since=None if since is None else _require_aware(since, "since"),
                until=None if until is None else _require_aware(until, "until"),
                rows_in=int(rows_in),
                rows_stored=int(rows_stored),
                rejected={str(k): int(v) for k, v in rejected.items()},
                anomalies=int(anomalies),
                error=None if error is None else error[:MAX_ERROR_CHARS],
            )
        )
