"""Silences: mute notifications whose labels match every matcher, between ``starts_at`` and
``ends_at`` (Alertmanager's semantics; ``cxmon silence add|query|expire``).

Stored in the ``silences`` table. Checked when a group flushes: a silenced notification is
kept in the outbox with status ``suppressed`` and the reason ``silenced by <silence id>``
(:mod:`alerts.grouping`), never sent; a resolution is never silenced.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from alerts.matchers import Matcher, matches_all, parse_matchers
from monitor.store import Store, silences_t

__all__ = [
    "Silence",
    "active_silences",
    "add_silence",
    "expire_silence",
    "list_silences",
    "silenced_by",
    "unended_ids",
]


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime

    def parsed(self) -> list[Matcher]:
        return [m for line in self.matchers for m in parse_matchers(line)]

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.parsed(), labels)


def add_silence(
    store: Store, matchers: Sequence[str], *, now: datetime, duration: timedelta | None = None,
    ends_at: datetime | None = None, starts_at: datetime | None = None,
    created_by: str = "cxmon", comment: str = "",
) -> Silence:
    """Store a new silence; ``ValueError`` on bad matchers or an empty window."""
    parsed = [m for line in matchers for m in parse_matchers(line)]  # raises MatcherError
    if not parsed:
        raise ValueError("a silence needs at least one matcher")
    if all(m.matches_value("") for m in parsed):
        raise ValueError("at least one matcher must not match the empty string "
                         "(a silence would match every alert)")
    start = starts_at or now
    end = ends_at or (start + (duration if duration is not None else timedelta(hours=1)))
    if end <= start:
        raise ValueError("the silence must end after it starts")
    silence = Silence(str(uuid.uuid4()), tuple(str(m) for m in parsed), start, end,
                      created_by, comment, now)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(silences_t).values(
            id=silence.id, matchers=list(silence.matchers), starts_at=start, ends_at=end,
            created_by=created_by, comment=comment, created_at=now))
    return silence


def list_silences(store: Store) -> list[Silence]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(silences_t).order_by(silences_t.c.created_at)).all()
    return [Silence(r.id, tuple(r.matchers), r.starts_at, r.ends_at, r.created_by, r.comment,
                    r.created_at) for r in rows]


def active_silences(store: Store, now: datetime) -> list[Silence]:
    return [s for s in list_silences(store) if s.active(now)]


def unended_ids(store: Store, prefix: str, now: datetime) -> list[str]:
    """Ids of the silences not yet ended (active or pending) equal to ``prefix``, else
    starting with it: ``silence expire`` takes the first characters of an id, as
    ``feedback`` does."""
    ids = [s.id for s in list_silences(store) if s.ends_at > now]
    return [prefix] if prefix in ids else [i for i in ids if i.startswith(prefix)]


def expire_silence(store: Store, silence_id: str, now: datetime) -> bool:
    """End a silence now; False if there is no such silence or it already ended."""
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(silences_t.c.starts_at).where(
            silences_t.c.id == silence_id, silences_t.c.ends_at > now)).first()
        if row is None:
            return False
        conn.execute(sa.update(silences_t).where(silences_t.c.id == silence_id)
                     .values(ends_at=now, starts_at=min(row.starts_at, now)))
    return True


def silenced_by(silences: Sequence[Silence], labels: Mapping[str, str], now: datetime
                ) -> Silence | None:
    """The first active silence matching ``labels``, if any."""
    for s in silences:
        if s.active(now) and s.matches(labels):
            return s
    return None
