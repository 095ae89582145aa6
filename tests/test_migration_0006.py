"""Migration 0006 (collections) on an office with data: nothing lost, no burst of reminders."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import func, select

from mspbill.collections.settings import collection_policy
from mspbill.db.engine import Database
from mspbill.db.models import Client, ClientContact, Invoice
from mspbill.db.schema import alembic_config, open_database, upgrade
from mspbill.demo import create_demo_office

BEFORE_0006 = "689c6de99d30"


def _counts(db) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return (s.scalar(select(func.count(Client.id))) or 0, s.scalar(select(func.count(ClientContact.id))) or 0,
                s.scalar(select(func.count(Invoice.id))) or 0)


def test_an_office_with_clients_and_invoices_upgrades_in_place_and_starts_with_reminders_off(tmp_path: Path) -> None:
    path = tmp_path / "office.sqlite3"
    db = open_database(f"sqlite:///{path}", tmp_path / "backups")
    with db.write_session() as s, s.begin():
        create_demo_office(s, clients=8, today=dt.date(2026, 11, 21))
    before = _counts(db)
    assert before[0] == 8 and before[1] >= 8 and before[2] > 0
    # Back to 0005 with the program's own downgrade (it must not rebuild `clients` either).
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, BEFORE_0006)
    with sqlite3.connect(path) as raw:
        columns = {row[1] for row in raw.execute("PRAGMA table_info(clients)")}
        assert "reminders_paused" not in columns
    db.dispose()

    db = Database(f"sqlite:///{path}")
    upgrade(db, None)
    assert _counts(db) == before            # no client, contact or invoice lost to a table rebuild
    with db.session() as s:
        policy = collection_policy(s)
        assert not policy.reminders_enabled  # an upgraded office turns reminders on itself
        assert [step.offset_days for step in policy.steps] == [-3, 0, 7, 14, 30]
        assert not policy.fees.enabled
        assert s.scalar(select(func.count(Client.id)).where(Client.reminders_paused.is_(True))) == 0
    db.dispose()


def test_a_new_office_has_reminders_on_and_late_fees_off(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'new.sqlite3'}", tmp_path / "backups")
    with db.session() as s:
        policy = collection_policy(s)
    assert policy.reminders_enabled and not policy.fees.enabled
    db.dispose()
