"""One monitor per store: the lock a ``cxmon run`` holds for its whole life.

Why: two ``cxmon run`` processes on one store (a second one started by mistake, a deploy whose
old and new pods overlap, a cron ``--once`` still running when the next starts) poll every
source twice, each with its own in-memory detectors and incident tracker, and overwrite each
other's checkpoints; where their configs differ (old and new version) they alert twice. The
second one is refused instead, with a message naming the holder.

PostgreSQL: a session advisory lock on a connection of its own (per database and schema, like
the migration lock), named by ``application_name`` so the refused one can say who holds it and
an operator can find it in ``pg_stat_activity``. SQLite: ``flock`` on ``<file>.lock`` next to
the database, which holds the holder's description. Both are released by the operating
system or the server when the process dies, even by ``kill -9``.

``cxmon alerts deliver`` does not take it: delivery workers share the outbox by leases.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import NullPool

from monitor.errors import StoreError

log = logging.getLogger(__name__)

#: first key of the advisory lock (ASCII "cxmr"); the second is the schema's hash
PG_LOCK_CLASS = 0x63786D72
_PG_SCHEMA_KEY = "hashtext(coalesce(current_schema(), '')) & 2147483647"
_PG_NAME_MAX = 63  # NAMEDATALEN - 1: longer application_names are cut by the server


class InstanceLocked(StoreError):
    """Another ``cxmon run`` holds the store."""


def holder_name(now: datetime, *, pid: int | None = None, host: str | None = None) -> str:
    """Who we are, as the refused process will read it: host, pid and start time."""
    pid = os.getpid() if pid is None else pid
    host = socket.gethostname() if host is None else host
    return f"cxmon run pid {pid} on {host} since {now:%Y-%m-%dT%H:%M:%SZ}"


def _refusal(where: str, holder: str, hint: str) -> InstanceLocked:
    return InstanceLocked(
        f"another cxmon run holds the store {where} ({holder}): one monitor per store, "
        "since two would poll every source twice and overwrite each other's detector "
        f"checkpoints. Stop that one first (a deploy: stop the old one before starting the new "
        f"one); {hint}")


@dataclass
class _PgLock:
    url: URL
    holder: str
    where: str
    conn: Connection | None = None

    def _engine(self) -> sa.Engine:
        args: dict[str, Any] = {"application_name": self.holder[:_PG_NAME_MAX]}
        if "connect_timeout" not in self.url.query:
            args["connect_timeout"] = 10
        return sa.create_engine(self.url, poolclass=NullPool, connect_args=args)

    def acquire(self) -> None:
        engine = self._engine()
        conn = engine.connect()
        try:
            got = conn.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({PG_LOCK_CLASS}, {_PG_SCHEMA_KEY})").scalar_one()
            conn.commit()  # a session lock: it outlives the transaction that took it
            if not got:
                holder, pid = self._holder(conn)
                raise _refusal(self.where, holder,
                               "if that process is gone but its database session lingers (a "
                               "host lost on the network), end the session with SELECT "
                               f"pg_terminate_backend({pid or '<pid>'})")
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        self.conn = conn

    def _holder(self, conn: Connection) -> tuple[str, int | None]:
        """The holder's application_name and session, and its backend pid."""
        row = conn.exec_driver_sql(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            f"WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
            f"AND l.classid = {PG_LOCK_CLASS} AND l.objid = ({_PG_SCHEMA_KEY})::oid "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).one_or_none()
        conn.rollback()
        if row is None:
            return "a session that just ended or is not visible to this role", None
        name = row.application_name or "a session without application_name"
        client = f" from {row.client_addr}" if row.client_addr else ""
        return f"{name}; database session pid {row.pid}{client}", int(row.pid)

    def alive(self) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.exec_driver_sql("SELECT 1").scalar_one()
            self.conn.rollback()
            return True
        except Exception:
            self._drop()
            return False

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # a dead connection may fail to close: it is gone either way
                pass

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({PG_LOCK_CLASS}, {_PG_SCHEMA_KEY})")
                self.conn.commit()
            except Exception:  # the session's end releases it anyway
                pass
            engine = self.conn.engine
            self.conn.close()
            engine.dispose()
            self.conn = None


@dataclass
class _FileLock:
    path: Path
    holder: str
    where: str
    file: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "a process that has not written its name yet"
            f.close()
            raise _refusal(self.where, holder,
                           f"the lock is {self.path} (flock, released when its process ends)"
                           ) from None
        except BaseException:
            f.close()
            raise
        f.seek(0)
        f.truncate()
        f.write(self.holder + "\n")
        f.flush()
        self.file = f

    def alive(self) -> bool:
        return self.file is not None  # a flock cannot be lost while its file is open

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing releases the flock; the file stays (see acquire)
            self.file = None


class InstanceLock:
    """The lock of one ``cxmon run`` on its store (see the module docstring).

    ``acquire()`` raises :class:`InstanceLocked` naming the holder; ``check()`` (every few
    seconds, from a thread) notices a PostgreSQL lock lost with its connection (a database
    restart, ``pg_terminate_backend``) and takes it again, raising ``InstanceLocked`` if
    another process took it meanwhile."""

    def __init__(self, url: URL, *, where: str, holder: str,
                 scrub: Callable[[BaseException], str] = str) -> None:
        self.where = where
        self.holder = holder
        self._scrub = scrub  # the store's: a driver may echo the DSN, password included
        self._impl: _PgLock | _FileLock | None = None
        backend = url.get_backend_name()
        if backend == "postgresql":
            self._impl = _PgLock(url, holder, where)
        elif backend == "sqlite":
            db = url.database
            if db and db != ":memory:" and not db.startswith("file:"):
                path = Path(db).resolve()
                self._impl = _FileLock(path.with_name(path.name + ".lock"), holder, where)

    def acquire(self) -> None:
        if self._impl is None:
            return
        try:
            self._impl.acquire()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot lock store {self.where}: {type(exc).__name__}: "
                             f"{self._first_line(exc)}") from exc

    def check(self) -> bool:
        """True while the lock is held; False when it was lost and cannot be taken back yet
        (the database is down: no one else can write either). Raises InstanceLocked when
        another process holds it now."""
        if self._impl is None or self._impl.alive():
            return True
        log.warning("store lock: the connection holding it was lost; taking it again")
        try:
            self._impl.acquire()
        except InstanceLocked:
            raise
        except Exception as exc:
            log.warning("store lock: cannot take it again yet (%s: %s)",
                        type(exc).__name__, self._first_line(exc))
            return False
        log.warning("store lock: held again")
        return True

    def release(self) -> None:
        if self._impl is not None:
            self._impl.release()

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _first_line(self, exc: BaseException) -> str:
        return (self._scrub(exc).splitlines() or [""])[0]


class LockWatch:
    """Checks an :class:`InstanceLock` every ``every`` seconds from a daemon thread, so a
    PostgreSQL lock lost with its connection is taken back before another ``cxmon run`` can
    start, and the monitor stops (``on_taken``) if one did."""

    def __init__(self, lock: InstanceLock, *, on_taken: Callable[[], None],
                 every: float = 15.0) -> None:
        self.lock = lock
        self.every = every
        self.on_taken = on_taken
        #: the refusal, once another process holds the lock
        self.taken: InstanceLocked | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cxmon-store-lock",
                                        daemon=True)

    def check(self) -> bool:
        """One check; False (after logging and calling ``on_taken``) when another process
        holds the lock now."""
        try:
            self.lock.check()
        except InstanceLocked as exc:
            self.taken = exc
            log.error("store lock lost: %s; stopping this one", exc)
            self.on_taken()
            return False
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.every) and self.check():
            pass

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.every + 5)
