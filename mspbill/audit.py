"""The audit log: one append-only entry for every change a person makes."""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.db.models import AuditEntry


def current_actor() -> str:
    try:
        return getpass.getuser()[:100] or "unknown"
    except Exception:  # no login name (some services, containers)
        return "unknown"


def record(session: Session, action: str, entity_type: str, entity_id: int | None,
           summary: str, details: dict[str, Any] | None = None) -> AuditEntry:
    entry = AuditEntry(actor=current_actor(), action=action, entity_type=entity_type,
                       entity_id=entity_id, summary=summary[:500], details=details)
    session.add(entry)
    return entry


def history(session: Session, entity_type: str, entity_id: int) -> list[AuditEntry]:
    stmt = (select(AuditEntry)
            .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == entity_id)
            .order_by(AuditEntry.at, AuditEntry.id))
    return list(session.scalars(stmt))


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields that changed, as JSON-safe text."""
    return {k: [_jsonable(before.get(k)), _jsonable(v)]
            for k, v in after.items() if before.get(k) != v}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
