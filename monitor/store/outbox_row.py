"""One outbox notification as a value: what the delivery workers get from the store.

A frozen dataclass instead of a database row, so notifiers and the CLI never depend on
SQLAlchemy or on column order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One notification as stored in the outbox."""

    id: int
    idempotency_key: str
    receiver: str
    incident_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    reason: str | None = None  # why a suppressed notification was not sent


def _outbox_row(row: sa.Row[Any]) -> OutboxRow:
    m = row._mapping
    return OutboxRow(
        id=m["id"],
        idempotency_key=m["idempotency_key"],
        receiver=m["receiver"],
        incident_key=m["incident_key"],
        payload=dict(m["payload"] or {}),
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
        reason=m["reason"],
    )
