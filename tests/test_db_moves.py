"""The copy left behind by `mspbill db copy` is marked as moved and refused (app, CLI, every workstation),
until it is reclaimed on purpose; `db copy` takes a touched-but-empty target, says when the target holds
a copy already, and reads a piped password.  Real SQLite files, a real PostgreSQL server, the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, inspect, select, text
from sqlalchemy.exc import OperationalError

import mspbill.db.copy as copy_mod
from mspbill.audit import action_label, current_actor
from mspbill.context import open_context
from mspbill.db.copy import CopyRefusedError, copy_database
from mspbill.db.engine import Database
from mspbill.db.models import AuditEntry, ReminderStep
from mspbill.db.moves import (
    current_move,
    moved_sentence,
    reclaim,
    reclaim_database,
    what_it_lacks,
)
from mspbill.db.schema import DatabaseMovedError, open_database
from mspbill.db.server import server_name, shown
from mspbill.demo import create_demo_office
from mspbill.settings import Settings
from tests.billing_helpers import issue_ids, make_client, one_time
from tests.pg_server import SUPERUSER_PASSWORD, PgServer

TODAY = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database]]:
    """A small demo office (sandbox payments, autopay clients, a history) in a data folder of its own."""
    folder = tmp_path_factory.mktemp("office")
    ctx = open_context(str(folder))
    with ctx.db.write_session() as s, s.begin():
        create_demo_office(s, clients=4, today=TODAY)
    try:
        yield folder, ctx.db
    finally:
        ctx.close()


def _small(path: Path, *names: str) -> Database:
    """A SQLite office with a client or two (quicker than a demo office)."""
    db = open_database(f"sqlite:///{path}", path.parent / "backups")
    for name in names:
        make_client(db, name)
    return db


def _empty_url(pg_server: PgServer) -> str:
    return pg_server.url(pg_server.new_database(template=None))


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {n: conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one()
                    for n in sorted(inspect(conn).get_table_names())}
    finally:
        engine.dispose()


def _actions(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- the user trial: copy to the server, work there, go back to the file ------------------------------

def test_the_file_left_behind_is_refused_until_reclaimed(office, pg_server, cli, monkeypatch) -> None:
    folder, source = office
    file_url = f"sqlite:///{folder / 'mspbill.sqlite3'}"
    url = _empty_url(pg_server)
    report = copy_database(source, url)
    assert report.source_marked and report.warning() == ""
    move = current_move(source)
    assert move is not None and move.moved_to == shown(url) and move.actor == current_actor()
    assert "password" not in move.moved_to and SUPERUSER_PASSWORD not in move.moved_to
    assert _actions(source)[-1] == "database.moved" and action_label("database.moved") != "Moved"
    # The target is the office: not marked, opens as usual; the office works there (December billed).
    target = open_database(url, folder / "b")
    try:
        assert current_move(target) is None
        invoice_id = one_time(target, make_client(target, "Neu seit dem Umzug"), ("Setup", "1", "250.00"))
        issue_ids(target, [invoice_id], TODAY)
    finally:
        target.dispose()

    # The app and the CLI refuse the file, with the sentence.
    sentence = (f"This office was moved to {shown(url)} on {move.when()} by {current_actor()} (mspbill db copy); "
                "this file is the copy left behind and lacks everything done there since. Work on the server: "
                f"`mspbill db use {shown(url)}` (or Settings → Data → Database). To make this file the office "
                "again anyway: `mspbill db use --local --reclaim`.")
    assert moved_sentence(move, file_url) == sentence
    with pytest.raises(DatabaseMovedError) as refused:
        open_context(str(folder))
    assert str(refused.value) == sentence
    assert (refused.value.moved_to, refused.value.moved_at) == (move.moved_to, move.moved_at)
    # open_database's header check (a plain open/close of the file) drops this process's SQLite locks on it,
    # and the connections still open here may then miss another process's commits: fresh ones from now on.
    source.dispose()
    before = _counts(file_url)
    done = cli("--data-dir", str(folder), "--db", file_url, "batch", "run", "--period", "next", "--yes")
    assert done.returncode == 2 and done.stderr == f"mspbill: {sentence}\n" and done.stdout == ""
    assert _counts(file_url) == before  # nothing billed, nothing charged, no run started

    # `db status` says where it went; `db use --local` refuses and changes nothing.
    Settings(folder / "settings.json").set("database_url", shown(url))
    status = cli("--data-dir", str(folder), "--db", file_url, "db", "status")
    assert status.returncode == 0 and f"Status: This office was moved to {shown(url)} on " in status.stdout
    status = cli("--data-dir", str(folder), "--db", file_url, "db", "status", "--json")
    assert json.loads(status.stdout)["state"] == "moved" and json.loads(status.stdout)["moved_to"] == shown(url)
    use = cli("--data-dir", str(folder), "db", "use", "--local")
    assert use.returncode == 2 and use.stderr.startswith(f"mspbill: {sentence} Nothing was changed")
    assert Settings(folder / "settings.json").get("database_url") == shown(url)

    # What the file lacks, looked at on the server (its password from the keyring; here, put in).
    monkeypatch.setattr("mspbill.context.with_saved_password",
                        lambda u: url if u.split("/")[-1] == url.split("/")[-1] else u)
    lacks = what_it_lacks(move)
    assert f"saved at {shown(url)} (among them 1 invoice issued and 0 payments recorded or charged)" in lacks

    # --reclaim: said what it lacks, then made the office again.
    use = cli("--data-dir", str(folder), "db", "use", "--local", "--reclaim")
    assert use.returncode == 0, use.stderr
    assert use.stdout.startswith(f"This file is the copy left behind when the office moved to {shown(url)} on ")
    assert "This file is the office again" in use.stdout
    assert Settings(folder / "settings.json").get("database_url") is None
    assert current_move(source) is None and _actions(source)[-1] == "database.reclaimed"
    open_context(str(folder)).close()


def test_a_server_moved_to_a_file_is_refused_on_every_workstation(pg_url, tmp_path: Path, cli) -> None:
    server = open_database(pg_url, tmp_path / "b")
    try:
        make_client(server, "Büro Nord")
        new_file = tmp_path / "office.sqlite3"
        report = copy_database(server, f"sqlite:///{new_file}")
        assert report.source_marked
        move = current_move(server)
        assert move is not None and move.moved_to == str(new_file.resolve()) and not move.to_server
        # Not even copied again: that would make a second stale office.
        with pytest.raises(CopyRefusedError, match="This office was moved to the file") as again:
            copy_database(server, f"sqlite:///{tmp_path / 'other.sqlite3'}")
        assert again.value.kind == "source" and not (tmp_path / "other.sqlite3").exists()
    finally:
        server.dispose()
    with pytest.raises(DatabaseMovedError) as refused:
        open_database(pg_url, tmp_path / "b")
    message = str(refused.value)
    assert message.startswith(f"This office was moved to the file {new_file.resolve()} (on the computer {socket.gethostname()}) on ")
    assert f"this database ({server_name(pg_url)}) is the copy left behind" in message
    assert f"`mspbill --db sqlite:///{new_file.resolve()}`" in message
    assert message.endswith(f"To make this database the office again anyway: `mspbill db use {shown(pg_url)} "
                            "--reclaim`.")
    assert SUPERUSER_PASSWORD not in message
    # Another workstation (another process) is refused alike.
    other = cli("--data-dir", str(tmp_path / "ws2"), "--db", pg_url, "clients", "list")
    assert other.returncode == 2 and other.stderr == f"mspbill: {message}\n"
    # The new file is the office; the server opens again once reclaimed (the app's dialog calls reclaim).
    open_database(f"sqlite:///{new_file}", tmp_path / "b").dispose()
    reclaim(pg_url)
    server = open_database(pg_url, tmp_path / "b")
    try:
        assert current_move(server) is None and _actions(server)[-1] == "database.reclaimed"
    finally:
        server.dispose()


def test_when_the_move_cannot_be_recorded_the_report_says_so_loudly(tmp_path: Path, monkeypatch) -> None:
    from mspbill.cli_db import next_steps

    source = _small(tmp_path / "office.sqlite3", "Kunde A")

    def broken(conn: Any, moved_to: str, summary: str = "") -> None:
        raise OperationalError("INSERT INTO database_moves", {}, Exception("disk I/O error"))

    monkeypatch.setattr(copy_mod, "record_move", broken)
    try:
        report = copy_database(source, f"sqlite:///{tmp_path / 'new.sqlite3'}")
        assert report.matches and not report.source_marked and "disk I/O error" in report.mark_problem
        assert report.lines()[-1] == report.warning() and report.warning().startswith(
            f"WARNING: {source.describe()} could NOT be marked as moved (disk I/O error).")
        assert any("billed or charged twice" in step for step in next_steps(report))
        assert current_move(source) is None  # nothing half-written in the source
    finally:
        source.dispose()


# --- B: a target a workstation opened before the copy -------------------------------------------------

def test_a_touched_but_empty_database_takes_the_copy(pg_url, tmp_path: Path) -> None:
    # pg_url: an empty database mspbill opened (migrated, its seeded rows) — what a workstation leaves.
    assert _counts(pg_url)["reminder_steps"] > 0 and _counts(pg_url)["clients"] == 0
    source = _small(tmp_path / "office.sqlite3", "Kunde A", "Kunde B")
    try:
        with source.write_session() as s, s.begin():
            s.execute(delete(ReminderStep).where(ReminderStep.offset_days != 7))
        report = copy_database(source, pg_url)
        assert report.matches and _counts(pg_url)["clients"] == 2
        assert _counts(pg_url)["reminder_steps"] == 1  # the office's own schedule replaced the seeded one
        # A touched SQLite file takes it too.
        touched = tmp_path / "touched.sqlite3"
        open_database(f"sqlite:///{touched}", tmp_path / "b").dispose()
        reclaim_database(source)
        assert copy_database(source, f"sqlite:///{touched}").matches
        assert _counts(f"sqlite:///{touched}")["clients"] == 2
    finally:
        source.dispose()


def test_a_touched_database_holding_anything_else_is_still_refused(pg_url, tmp_path: Path) -> None:
    target = open_database(pg_url, tmp_path / "b")
    with target.write_session() as s, s.begin():
        s.add(AuditEntry(actor="jordan", action="settings.mail", entity_type="settings", summary="x"))
    target.dispose()
    before = _counts(pg_url)
    source = _small(tmp_path / "office.sqlite3", "Kunde A")
    try:
        with pytest.raises(CopyRefusedError, match="already holds mspbill's tables .without clients or invoices, "
                                                   "but not as mspbill sets them up") as refused:
            copy_database(source, pg_url)
        assert refused.value.kind == "not_empty" and current_move(source) is None
    finally:
        source.dispose()
    assert _counts(pg_url) == before


# --- C: a second copy into the database that holds the office already --------------------------------

def test_a_second_copy_says_the_target_holds_a_copy_already(pg_server, tmp_path: Path) -> None:
    url = _empty_url(pg_server)
    source = _small(tmp_path / "office.sqlite3", "Kunde A")
    try:
        copy_database(source, url)
        reclaim_database(source)
        before = _counts(url)
        with pytest.raises(CopyRefusedError) as refused:
            copy_database(source, url)
        assert refused.value.kind == "already_copied"
        assert str(refused.value).startswith(
            f"The database {server_name(url)} already holds a copy of an office (copied from "
            f"{source.describe()} on ")
        assert f"to use it, `mspbill db use {shown(url)}`" in str(refused.value)
        assert "CREATE DATABASE" not in str(refused.value) and _counts(url) == before
        # No audit entry saying so (an older copy), but the same clients: said alike.
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(delete(AuditEntry).where(AuditEntry.action == "database.copied"))
        engine.dispose()
        with pytest.raises(CopyRefusedError, match=r"already holds this office's clients \(the same 1\)") as same:
            copy_database(source, url)
        assert same.value.kind == "already_copied"
    finally:
        source.dispose()


# --- D and E: the CLI -----------------------------------------------------------------------------------

def test_db_copy_reads_a_piped_password_and_shows_only_totals(pg_server, tmp_path: Path, cli) -> None:
    folder = tmp_path / "office"
    folder.mkdir()
    _small(folder / "mspbill.sqlite3", "Kunde A").dispose()
    name = pg_server.new_database(template=None)
    no_password = pg_server.url(name, password=None)
    done = cli("--data-dir", str(folder), "db", "copy", "--to", no_password, input=f"{SUPERUSER_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert _counts(pg_server.url(name))["clients"] == 1
    assert SUPERUSER_PASSWORD not in done.stdout + done.stderr
    assert "marked as the copy left behind" in done.stdout
    rows = {line.split()[0]: line.split()[2:] for line in done.stdout.split("\n\n")[0].splitlines()[1:]}
    assert rows["clients"] == ["autopay_cap,", "tax_rate_percent,", "autopay_discount_percent"]
    assert rows["client_contacts"] == ["-"] and "database_moves" not in rows
