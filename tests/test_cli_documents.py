"""The document and mail commands as a user runs them: `invoices pdf`, `clients statement`,
`invoices email`, `outbox list|send|retry`, `mail test` — real child processes, a real
SQLite office made by `mspbill demo`, PDFs read back with pypdf, mail received by aiosmtpd."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader
from smtp_server import SmtpTestServer, free_port
from sqlalchemy import select

from mspbill.db.models import Client, Invoice, InvoiceStatus
from mspbill.db.schema import open_database
from mspbill.mail import MailSettingsDraft, save_mail_settings
from mspbill.paths import DB_FILENAME

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def office_dir(tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    """A demo office made once for the module by the real CLI."""
    folder = tmp_path_factory.mktemp("office")
    made = cli("--data-dir", str(folder), "demo", "--clients", "12")
    assert made.returncode == 0, made.stderr
    return folder


def _text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _open_invoice(folder: Path) -> tuple[str, str, int]:
    """(number, client name, client id) of an open invoice of a client with a billing e-mail."""
    db = open_database(f"sqlite:///{folder / DB_FILENAME}", None)
    try:
        with db.session() as s:
            inv, client = s.execute(
                select(Invoice, Client).join(Client, Client.id == Invoice.client_id)
                .where(Invoice.status == InvoiceStatus.OPEN, Client.billing_emails != "")
                .order_by(Invoice.id)).first()
            return str(inv.number), client.legal_name, client.id
    finally:
        db.dispose()


def _configure_mail(folder: Path, port: int) -> None:
    db = open_database(f"sqlite:///{folder / DB_FILENAME}", None)
    try:
        with db.write_session() as s, s.begin():
            save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port=str(port), security="none",
                                                    from_address="billing@northwind-it.example",
                                                    from_name="Northwind Managed IT"))
    finally:
        db.dispose()


# --- PDFs -----------------------------------------------------------------------------

def test_invoice_pdf_is_saved_where_asked_and_reads_back(cli, office_dir: Path, tmp_path: Path) -> None:
    number, client, _ = _open_invoice(office_dir)
    out = tmp_path / "inv.pdf"
    result = cli("--data-dir", str(office_dir), "invoices", "pdf", number, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Invoice {number}" in result.stdout and str(out) in result.stdout
    text = _text(out.read_bytes())
    assert number in text and client in text

    # A folder gets the suggested file name; --json says where it went.
    folder = tmp_path / "pdfs"
    folder.mkdir()
    doc = json.loads(cli("--data-dir", str(office_dir), "invoices", "pdf", number.lower(), "--out", str(folder),
                         "--json").stdout)
    saved = Path(doc["file"])
    assert saved.parent == folder and saved.name.startswith(number) and saved.suffix == ".pdf"
    assert doc["bytes"] == saved.stat().st_size


def test_invoice_pdf_to_standard_output(office_dir: Path) -> None:
    number, _, _ = _open_invoice(office_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSPBILL_")}
    result = subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", str(office_dir), "invoices", "pdf",
                             number, "--out", "-"], capture_output=True, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"%PDF-") and number in _text(result.stdout)


def test_draft_pdf_by_id_and_unknown_numbers(cli, office_dir: Path, tmp_path: Path) -> None:
    drafts = json.loads(cli("--data-dir", str(office_dir), "invoices", "list", "--status", "draft",
                            "--json").stdout)
    assert drafts, "the demo office has drafts"
    out = tmp_path / "draft.pdf"
    result = cli("--data-dir", str(office_dir), "invoices", "pdf", "--id", str(drafts[0]["id"]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "DRAFT" in _text(out.read_bytes()).upper()

    missing = cli("--data-dir", str(office_dir), "invoices", "pdf", "INV-999999")
    assert missing.returncode == 2 and "no issued invoice numbered “INV-999999”" in missing.stderr
    neither = cli("--data-dir", str(office_dir), "invoices", "pdf")
    assert neither.returncode == 2 and "Give the invoice number" in neither.stderr


def test_an_unwritable_target_is_refused_and_leaves_nothing(cli, office_dir: Path, tmp_path: Path) -> None:
    number, _, _ = _open_invoice(office_dir)
    missing_folder = tmp_path / "no" / "such" / "folder" / "x.pdf"
    result = cli("--data-dir", str(office_dir), "invoices", "pdf", number, "--out", str(missing_folder))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            refused = cli("--data-dir", str(office_dir), "invoices", "pdf", number, "--out", str(locked / "x.pdf"))
            assert refused.returncode == 2 and "may not write" in refused.stderr
            assert list(locked.iterdir()) == []
        finally:
            locked.chmod(0o700)


def test_client_statement(cli, office_dir: Path, tmp_path: Path) -> None:
    _, client, client_id = _open_invoice(office_dir)
    out = tmp_path / "statement.pdf"
    result = cli("--data-dir", str(office_dir), "clients", "statement", str(client_id), "--from", "2026-01-01",
                 "--to", dt.date.today().isoformat(), "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = _text(out.read_bytes())
    assert client in text and "Statement" in text
    future = cli("--data-dir", str(office_dir), "clients", "statement", str(client_id), "--to",
                 (dt.date.today() + dt.timedelta(days=9)).isoformat())
    assert future.returncode == 2 and "cannot end after today" in future.stderr

    backwards = cli("--data-dir", str(office_dir), "clients", "statement", str(client_id), "--from", "2026-11-30",
                    "--to", "2026-01-01")
    assert backwards.returncode == 2 and backwards.stderr.startswith("mspbill: ")
    bad_date = cli("--data-dir", str(office_dir), "clients", "statement", str(client_id), "--from", "31/11/2026")
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr


# --- e-mail ---------------------------------------------------------------------------

@pytest.fixture
def mail_office(tmp_path: Path, cli) -> Iterator[Path]:
    folder = tmp_path / "office"
    made = cli("--data-dir", str(folder), "demo", "--clients", "8")
    assert made.returncode == 0, made.stderr
    yield folder


def test_invoice_email_is_sent_with_its_pdf(cli, mail_office: Path) -> None:
    number, client, _ = _open_invoice(mail_office)
    with SmtpTestServer() as server:
        _configure_mail(mail_office, server.port)
        result = cli("--data-dir", str(mail_office), "invoices", "email", number)
        assert result.returncode == 0, result.stderr
        assert f"E-mailed {number}." in result.stdout
        assert len(server.received) == 1
        msg = server.received[0].message
    assert number in msg["Subject"]
    attachments = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(attachments) == 1 and attachments[0].get_filename().startswith(number)
    text = _text(attachments[0].get_content())
    assert number in text and client in text

    listed = json.loads(cli("--data-dir", str(mail_office), "outbox", "list", "--json").stdout)
    assert listed["counts"]["sent"] == 1 and listed["messages"][0]["invoice"] == number


def test_a_down_server_keeps_the_message_queued_until_outbox_send(cli, mail_office: Path) -> None:
    number, _, _ = _open_invoice(mail_office)
    port = free_port()
    _configure_mail(mail_office, port)
    down = cli("--data-dir", str(mail_office), "invoices", "email", number)
    assert down.returncode == 1
    assert "stays in the outbox" in down.stderr and down.stderr.count("refused the connection") == 1
    assert f"127.0.0.1 refused the connection on port {port}" in down.stderr
    queued = json.loads(cli("--data-dir", str(mail_office), "outbox", "list", "--status", "queued",
                            "--json").stdout)
    assert [m["invoice"] for m in queued["messages"]] == [number]
    assert queued["messages"][0]["attempts"] == 1 and queued["messages"][0]["last_error"]

    with SmtpTestServer(port=port) as server:
        # Not due yet (it waits a minute after a failure): `retry` sends it now.
        retried = cli("--data-dir", str(mail_office), "outbox", "retry", str(queued["messages"][0]["id"]))
        assert retried.returncode == 0, retried.stderr
        assert "1 sent" in retried.stdout, retried.stdout + retried.stderr
        assert len(server.received) == 1
        # And nothing is sent twice.
        again = cli("--data-dir", str(mail_office), "outbox", "send")
        assert again.returncode == 0 and "The outbox has nothing waiting." in again.stdout
        assert len(server.received) == 1


def test_email_all_unsent_asks_first_and_reports_clients_without_an_address(cli, mail_office: Path) -> None:
    db = open_database(f"sqlite:///{mail_office / DB_FILENAME}", None)
    try:
        with db.write_session() as s, s.begin():
            # One client of an issued invoice loses its billing e-mail.
            inv = s.scalars(select(Invoice).where(Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PAID]))
                            .order_by(Invoice.id)).first()
            client = s.get(Client, inv.client_id)
            client.billing_emails = ""
            no_email_name = client.legal_name
            issued = s.scalars(select(Invoice.id).where(
                Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PAID]))).all()
            without = s.scalars(select(Invoice.id).where(
                Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PAID]),
                Invoice.client_id == client.id)).all()
    finally:
        db.dispose()
    can_go = len(issued) - len(without)
    with SmtpTestServer() as server:
        _configure_mail(mail_office, server.port)
        # Without --yes (and no terminal to ask at) nothing is sent; --dry-run only counts.
        unasked = cli("--data-dir", str(mail_office), "invoices", "email", "--unsent")
        assert unasked.returncode == 2 and "add --yes" in unasked.stdout
        dry = json.loads(cli("--data-dir", str(mail_office), "invoices", "email", "--unsent", "--dry-run",
                             "--json").stdout)
        assert dry["would_queue"] == can_go and dry["queued"] == 0
        assert server.received == []
        listed = json.loads(cli("--data-dir", str(mail_office), "outbox", "list", "--json").stdout)
        assert listed["messages"] == []

        result = cli("--data-dir", str(mail_office), "invoices", "email", "--unsent", "--yes", "--json")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["queued"] == doc["sent"] == can_go == len(server.received)
        assert {x["client"] for x in doc["skipped"]} == {no_email_name}
        assert len(doc["skipped"]) == len(without)
        again = cli("--data-dir", str(mail_office), "invoices", "email", "--unsent", "--yes")
        # Only the client without an address is left: said once, and not "nothing to e-mail".
        assert "Cannot e-mail" in again.stdout and "Nothing was queued." in again.stdout
        assert "every issued invoice has been e-mailed" not in again.stdout
        assert len(server.received) == can_go


def test_a_down_server_is_reported_once_and_outbox_send_says_what_waits(cli, mail_office: Path) -> None:
    port = free_port()
    _configure_mail(mail_office, port)
    down = cli("--data-dir", str(mail_office), "invoices", "email", "--unsent", "--yes")
    assert down.returncode == 1
    assert down.stderr.count("refused the connection") == 1, down.stderr
    waiting = cli("--data-dir", str(mail_office), "outbox", "send")
    assert waiting.returncode == 0
    assert "Nothing is due now" in waiting.stdout and "waiting to be retried" in waiting.stdout
    assert "outbox send --all" in waiting.stdout
    with SmtpTestServer(port=port) as server:
        sent = cli("--data-dir", str(mail_office), "outbox", "send", "--all", "--json")
        assert sent.returncode == 0, sent.stderr
        doc = json.loads(sent.stdout)
        assert doc["sent"] == len(server.received) > 0 and doc["still_queued"] == 0


def test_drafts_are_listed_with_the_id_that_pdf_takes(cli, office_dir: Path, tmp_path: Path) -> None:
    listed = cli("--data-dir", str(office_dir), "invoices", "list", "--status", "draft")
    first = next(line for line in listed.stdout.splitlines() if line.startswith("Draft id "))
    draft_id = first.split()[2]
    out = tmp_path / "d.pdf"
    made = cli("--data-dir", str(office_dir), "invoices", "pdf", "--id", draft_id, "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "DRAFT" in _text(out.read_bytes()).upper()


def test_mail_test_command(cli, mail_office: Path) -> None:
    unset = cli("--data-dir", str(mail_office), "mail", "test", "--to", "me@example.com")
    assert unset.returncode == 2 and "Settings → E-mail" in unset.stderr
    with SmtpTestServer() as server:
        _configure_mail(mail_office, server.port)
        result = cli("--data-dir", str(mail_office), "mail", "test", "--to", "office@northwind-it.example")
        assert result.returncode == 0, result.stderr
        assert server.received[0].rcpt_tos == ["office@northwind-it.example"]
    down = cli("--data-dir", str(mail_office), "mail", "test", "--to", "office@northwind-it.example")
    assert down.returncode == 2 and "127.0.0.1" in down.stderr


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_written_file_gets_ordinary_permissions_not_mkstemps_private_ones(tmp_path: Path) -> None:
    from mspbill.cli_documents import write_file_atomically

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "october.zip"
    write_file_atomically(target, b"PK")
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
