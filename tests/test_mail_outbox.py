"""The outbox against a real aiosmtpd on 127.0.0.1 and a real SQLite file:
what arrives, what happens when the server is down, hangs, refuses the login or
a recipient, and after a crash mid-send.  A message is never lost."""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from billing_helpers import issue_ids, make_client, one_time, setup_office
from pypdf import PdfReader
from smtp_server import SilentServer, SmtpTestServer, free_port, make_certificate
from sqlalchemy import select, update

from mspbill import audit
from mspbill.clients import client_detail, update_client
from mspbill.db.engine import Database
from mspbill.db.models import AuditEntry, OutboxMessage, OutboxStatus
from mspbill.invoicing import create_credit_note, void_invoice
from mspbill.logs import setup_logging
from mspbill.mail import (
    MailSettingsDraft,
    backoff,
    discard_messages,
    email_status_by_invoice,
    list_outbox,
    outbox_counts,
    queue_invoice_email,
    queue_unsent_invoices,
    retry_messages,
    save_mail_settings,
    send_outbox,
)
from mspbill.validation import ValidationError

# aiosmtpd's own notices when a test server allows a login without TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS",
                                        "ignore:Session.login_data is deprecated")

PASSWORD = "correct-hörse-battery-staple"
USER = "billing@acme-it.example"
FROM = "billing@acme-it.example"
CLIENT = "Zürich Dental GmbH"
TO, CC = "ap@zuerich-dental.example", "chef@zuerich-dental.example"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Office:
    db: Database
    client_id: int
    invoice_id: int

    def configure(self, port: int, *, security: str = "none", username: str = "", **extra: object) -> None:
        draft = MailSettingsDraft(host="127.0.0.1", port=str(port), security=security, username=username,
                                  from_address=FROM, from_name="Acme IT – Büro", reply_to="office@acme-it.example")
        for key, value in extra.items():
            setattr(draft, key, value)
        with self.db.write_session() as s, s.begin():
            save_mail_settings(s, draft)

    def queue(self, invoice_id: int | None = None, now: dt.datetime | None = None) -> int:
        with self.db.write_session() as s, s.begin():
            return queue_invoice_email(s, invoice_id or self.invoice_id, now=now)

    def message(self, outbox_id: int) -> OutboxMessage:
        with self.db.session() as s:
            msg = s.get(OutboxMessage, outbox_id)
            assert msg is not None
            s.expunge(msg)
            return msg

    def history(self, invoice_id: int | None = None) -> list[AuditEntry]:
        with self.db.session() as s:
            return audit.history(s, "invoice", invoice_id or self.invoice_id)

    def set_emails(self, emails: str) -> None:
        with self.db.write_session() as s, s.begin():
            draft = client_detail(s, self.client_id).draft
            draft.billing_emails = emails
            update_client(s, self.client_id, draft)


@pytest.fixture
def office(db: Database) -> Office:
    setup_office(db, name="Acme IT", payment_instructions="Wire to First Bank, account 12345")
    cid = make_client(db, CLIENT, billing_emails=f"{TO}, {CC}", payment_terms_days="14")
    iid = one_time(db, cid, ("Firewall appliance", "1", "1200.00"), ("Installation", "3", "95.50"))
    issue_ids(db, [iid])
    return Office(db, cid, iid)


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as srv:
        yield srv


# --- the text ---------------------------------------------------------------------------

def test_an_edited_text_is_used_as_written(office: Office) -> None:
    office.configure(free_port(), invoice_body="Hello {client},\n\nplease find {number} attached.\n")
    assert office.message(office.queue()).body == f"Hello {CLIENT},\n\nplease find INV-000001 attached.\n"


# --- what arrives ---------------------------------------------------------------------

def test_invoice_email_arrives_with_its_pdf(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port, bcc_office=True, invoice_subject="Invoice {number} for {client} ({total})")
    outbox_id = office.queue()
    report = send_outbox(office.db, None)
    assert (report.sent, report.failed, report.still_queued, report.stopped_reason) == (1, 0, 0, None)

    [got] = server.received
    # The office's blind copy is in the envelope only.
    assert got.mail_from == FROM and sorted(got.rcpt_tos) == sorted([TO, CC, FROM])
    msg = got.message
    assert "Bcc" not in msg
    assert msg["To"] == TO and msg["Cc"] == CC
    assert msg["From"].addresses[0].display_name == "Acme IT – Büro"
    assert msg["Reply-To"] == "office@acme-it.example"
    assert msg["Subject"] == f"Invoice INV-000001 for {CLIENT} ($1,486.50)"
    assert b"=?utf-8?" in got.data.split(b"\r\n\r\n", 1)[0].lower()  # encoded words, not raw 8-bit headers
    stored = office.message(outbox_id)
    assert msg["Message-ID"].strip() == stored.message_id and stored.message_id.startswith("<")
    assert msg["Date"] is not None
    body = _body(msg)
    assert f"Dear {CLIENT}," in body and "INV-000001" in body and "$1,486.50" in body
    assert "Wire to First Bank, account 12345" in body  # payment by invoice, with the instructions

    from mspbill.pdf.invoice import invoice_pdf
    with office.db.session() as s:
        expected = invoice_pdf(s, office.invoice_id)
    [pdf] = list(msg.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == expected.filename and "Zürich" in expected.filename
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.get_content())).pages)
    assert "INV-000001" in text
    # The e-mail writes its dates as the attached PDF does (1 Nov 2026, not November 1, 2026).
    assert "issued on 1 Nov 2026." in body and "Due date: 15 Nov 2026" in body
    assert "1 Nov 2026" in text and "15 Nov 2026" in text and "November 1, 2026" not in body

    assert stored.status is OutboxStatus.SENT and stored.sent_at is not None and stored.attempts == 1
    assert stored.attachment_name == expected.filename
    [emailed] = [e for e in office.history() if e.action == "invoice.emailed"]
    assert emailed.summary == f"E-mailed INV-000001 to {TO}, {CC}"
    with office.db.session() as s:
        status = email_status_by_invoice(s, [office.invoice_id])[office.invoice_id]
        assert outbox_counts(s) == {"queued": 0, "sending": 0, "sent": 1, "failed": 0}
    assert status.status == "sent" and status.outbox_id == outbox_id and status.error == ""


def test_nothing_due_sends_nothing_and_a_sent_message_is_not_sent_again(office: Office,
                                                                         server: SmtpTestServer) -> None:
    office.configure(server.port)
    office.queue()
    assert send_outbox(office.db, None).sent == 1
    again = send_outbox(office.db, None)
    assert (again.sent, again.failed, again.still_queued) == (0, 0, 0)
    assert len(server.received) == 1


def test_credit_note_email_uses_credit_note_wording(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    with office.db.write_session() as s, s.begin():
        note_id = create_credit_note(s, office.invoice_id, "Installation not needed", "100.00").id
    office.queue(note_id)
    assert send_outbox(office.db, None).sent == 1
    msg = server.received[0].message
    assert msg["Subject"] == "Credit note CN-000001 from Acme IT"
    body = _body(msg)
    assert "credit note CN-000001" in body and "no payment is due" in body


def test_progress_and_cancel(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    ids = [office.queue()]
    for n in range(2):
        iid = one_time(office.db, office.client_id, (f"Extra {n}", "1", "10.00"))
        issue_ids(office.db, [iid])
        ids.append(office.queue(iid))
    seen: list[tuple[int, int, str]] = []
    report = send_outbox(office.db, None, progress=lambda d, t, text: seen.append((d, t, text)),
                         cancelled=lambda: sum(1 for _d, _t, text in seen if text.startswith("Sent")) >= 1)
    assert report.cancelled and report.sent == 1 and report.still_queued == 2
    assert len(server.received) == 1
    assert seen[0][1] == 3 and any(text.startswith("Sent to ap@") for _d, _t, text in seen)
    # The ones not reached are untouched: still due, no attempt counted.
    assert [office.message(i).attempts for i in ids[1:]] == [0, 0]
    assert send_outbox(office.db, None).sent == 2 and len(server.received) == 3


# --- login and encryption -----------------------------------------------------------

def test_login_with_the_right_password_and_a_wrong_one(office: Office) -> None:
    with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
        office.configure(srv.port, username=USER)
        outbox_id = office.queue()
        now = _now()
        report = send_outbox(office.db, "wrong-password", now=now)
        assert report.sent == 0 and report.still_queued == 1
        assert report.stopped_reason and "refused the login" in report.stopped_reason
        msg = office.message(outbox_id)
        assert msg.status is OutboxStatus.QUEUED and msg.attempts == 1
        assert "refused the login as “billing@acme-it.example”" in msg.last_error
        assert "Settings → E-mail" in msg.last_error
        assert msg.next_attempt_at == now + dt.timedelta(minutes=1)
        # Not due yet: nothing is tried.
        assert send_outbox(office.db, PASSWORD, now=now + dt.timedelta(seconds=30)).sent == 0
        # The password comes from a callable (the keyring), asked only when needed.
        asked: list[int] = []

        def from_keyring() -> str:
            asked.append(1)
            return PASSWORD

        report = send_outbox(office.db, from_keyring, now=now + dt.timedelta(minutes=2))
        assert report.sent == 1 and asked == [1]
        assert srv.logins == [(USER, False), (USER, True)]
        assert len(srv.received) == 1
        assert office.message(outbox_id).last_error == ""


def test_login_required_but_no_password_saved(office: Office) -> None:
    with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
        office.configure(srv.port, username=USER)
        outbox_id = office.queue()
        report = send_outbox(office.db, None)
        assert report.sent == 0 and srv.logins == []
        msg = office.message(outbox_id)
        assert msg.status is OutboxStatus.QUEUED
        assert "no password is saved" in msg.last_error and "save the password in Settings → E-mail" in msg.last_error


def test_a_refused_login_stops_the_run_and_keeps_every_message_queued(office: Office) -> None:
    with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
        office.configure(srv.port, username=USER)
        ids = [office.queue()]
        for n in range(2):
            iid = one_time(office.db, office.client_id, (f"Extra {n}", "1", "10.00"))
            issue_ids(office.db, [iid])
            ids.append(office.queue(iid))
        report = send_outbox(office.db, "nope")
        assert (report.sent, report.failed, report.still_queued) == (0, 0, 3)
        assert srv.logins == [(USER, False)]  # one login attempt for the run, not one per message
        for i in ids:
            msg = office.message(i)
            assert msg.status is OutboxStatus.QUEUED and "refused the login" in msg.last_error
            assert msg.next_attempt_at is not None


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_encrypted_connection_with_login(office: Office, tmp_path: Path, tls: str) -> None:
    cert = make_certificate(tmp_path / "cert")
    with SmtpTestServer(users={USER: PASSWORD}, tls=tls, certificate=cert) as srv:
        office.configure(srv.port, security=tls, username=USER)
        outbox_id = office.queue()
        # Production's default context does not trust a self-signed certificate: nothing is sent.
        report = send_outbox(office.db, PASSWORD)
        assert report.sent == 0 and srv.received == [] and srv.logins == []
        assert "certificate" in office.message(outbox_id).last_error
        report = send_outbox(office.db, PASSWORD, message_ids=[outbox_id], ssl_context=cert.client_context())
        assert report.sent == 1 and srv.logins == [(USER, True)]
        assert srv.received[0].message["Subject"] == "Invoice INV-000001 from Acme IT"


# --- the server is down, hangs, or refuses -------------------------------------------

def test_server_down_then_up_sends_exactly_once(office: Office) -> None:
    port = free_port()
    office.configure(port)
    outbox_id = office.queue()
    now = _now()
    report = send_outbox(office.db, None, now=now)
    assert report.sent == 0 and report.still_queued == 1
    assert report.stopped_reason and f"refused the connection on port {port}" in report.stopped_reason
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.QUEUED and msg.attempts == 1
    assert msg.last_error == report.stopped_reason and msg.next_attempt_at == now + dt.timedelta(minutes=1)
    later = now + dt.timedelta(minutes=2)
    report = send_outbox(office.db, None, now=later)
    msg = office.message(outbox_id)
    assert msg.attempts == 2 and msg.next_attempt_at == later + dt.timedelta(minutes=5)
    with office.db.session() as s:
        status = email_status_by_invoice(s)[office.invoice_id]
    assert status.status == "queued" and "refused the connection" in status.error

    with SmtpTestServer(port=port) as srv:
        much_later = later + dt.timedelta(minutes=10)
        assert send_outbox(office.db, None, now=much_later).sent == 1
        assert send_outbox(office.db, None, now=much_later + dt.timedelta(hours=1)).sent == 0
        assert len(srv.received) == 1
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.SENT and msg.attempts == 3


def test_server_that_never_answers_times_out_and_stays_queued(office: Office) -> None:
    with SilentServer() as silent:
        office.configure(silent.port)
        outbox_id = office.queue()
        report = send_outbox(office.db, None, timeout=0.5)
    assert report.sent == 0 and report.still_queued == 1
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.QUEUED and msg.next_attempt_at is not None
    assert f"127.0.0.1:{silent.port} accepted the connection but did not greet within 0.5 seconds" in msg.last_error


def test_refused_recipient_fails_then_retry_after_fixing_the_address(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    office.set_emails(TO)
    server.refuse(TO, "550 5.1.1 <ap@zuerich-dental.example>: Recipient address rejected: User unknown")
    outbox_id = office.queue()
    report = send_outbox(office.db, None)
    assert (report.sent, report.failed, report.still_queued) == (0, 1, 0) and report.stopped_reason is None
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.FAILED and msg.next_attempt_at is None
    assert "User unknown" in msg.last_error and "550" in msg.last_error and TO in msg.last_error
    [failed] = [e for e in office.history() if e.action == "invoice.email_failed"]
    assert failed.summary.startswith(f"E-mail of INV-000001 to {TO} failed: ") and "User unknown" in failed.summary
    # A failed message is not picked up again by itself.
    assert send_outbox(office.db, None).sent == 0 and server.received == []

    office.set_emails("accounts@zuerich-dental.example")
    with office.db.write_session() as s, s.begin():
        assert retry_messages(s, [outbox_id]) == [outbox_id]
    assert office.message(outbox_id).to_addrs == "accounts@zuerich-dental.example"
    assert send_outbox(office.db, None).sent == 1
    assert server.received[0].rcpt_tos == ["accounts@zuerich-dental.example"]
    assert office.message(outbox_id).status is OutboxStatus.SENT


def test_a_refused_copy_does_not_stop_delivery_to_the_client(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    server.refuse(CC)
    outbox_id = office.queue()
    assert send_outbox(office.db, None).sent == 1
    assert server.received[0].rcpt_tos == [TO]
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.SENT and CC in msg.last_error


def test_temporary_refusal_keeps_it_queued(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    office.set_emails(TO)
    server.refuse(TO, "450 4.2.0 Greylisted, please try again later")
    outbox_id = office.queue()
    report = send_outbox(office.db, None)
    assert (report.sent, report.failed, report.still_queued) == (0, 0, 1)
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.QUEUED and "Greylisted" in msg.last_error and msg.next_attempt_at


def test_message_too_big_fails(office: Office) -> None:
    with SmtpTestServer(data_size_limit=2000) as srv:
        office.configure(srv.port)
        outbox_id = office.queue()
        report = send_outbox(office.db, None)
    assert report.failed == 1 and srv.received == []
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.FAILED and "too big" in msg.last_error


def test_invoice_voided_after_queueing_is_not_sent(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    outbox_id = office.queue()
    with office.db.write_session() as s, s.begin():
        void_invoice(s, office.invoice_id, "Entered twice")
    report = send_outbox(office.db, None)
    assert report.failed == 1 and server.received == []
    msg = office.message(outbox_id)
    assert msg.status is OutboxStatus.FAILED and "voided" in msg.last_error
    assert any(e.action == "invoice.email_failed" and "INV-000001 was voided" in e.summary
               for e in office.history())
    with office.db.write_session() as s, s.begin(), pytest.raises(ValidationError, match="void"):
        retry_messages(s, [outbox_id])


# --- a crash mid-send ------------------------------------------------------------------

def test_message_left_sending_by_a_crash_is_sent_again(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    outbox_id = office.queue()
    now = _now()
    with office.db.write_session() as s, s.begin():
        s.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(
            status=OutboxStatus.SENDING, updated_at=now - dt.timedelta(minutes=3)))
    # Three minutes: maybe another workstation is sending it right now; leave it.
    assert send_outbox(office.db, None, now=now).sent == 0 and server.received == []
    with office.db.write_session() as s, s.begin(), pytest.raises(ValidationError, match="being sent"):
        retry_messages(s, [outbox_id], now=now)
    # Eleven minutes: the sender died; it counts as queued.
    report = send_outbox(office.db, None, now=now + dt.timedelta(minutes=8))
    assert report.sent == 1 and len(server.received) == 1
    assert server.received[0].message["Message-ID"].strip() == office.message(outbox_id).message_id


# --- queueing ------------------------------------------------------------------------------

def test_queueing_refuses_with_every_reason_at_once(db: Database) -> None:
    setup_office(db)
    cid = make_client(db, CLIENT, billing_emails="")
    draft = one_time(db, cid, ("Firewall", "1", "10.00"))
    with db.write_session() as s, s.begin(), pytest.raises(ValidationError) as caught:
        queue_invoice_email(s, draft)
    messages = [i.message for i in caught.value.issues]
    assert "Issue the invoice before e-mailing it." in messages
    assert f"{CLIENT} has no billing e-mail address; add one under Clients." in messages
    assert any("not set up" in m and "Settings → E-mail" in m for m in messages)
    with db.session() as s:
        assert list_outbox(s) == []


def test_void_invoice_is_not_queued(office: Office) -> None:
    office.configure(free_port())
    with office.db.write_session() as s, s.begin():
        void_invoice(s, office.invoice_id, "Wrong client")
    with office.db.write_session() as s, s.begin(), pytest.raises(ValidationError, match="INV-000001 is void"):
        queue_invoice_email(s, office.invoice_id)


def test_queueing_again_updates_the_waiting_message(office: Office) -> None:
    office.configure(free_port())
    first = office.queue()
    office.set_emails("new@zuerich-dental.example")
    assert office.queue() == first
    assert office.message(first).to_addrs == "new@zuerich-dental.example"
    with office.db.session() as s:
        assert outbox_counts(s)["queued"] == 1


def test_queue_all_new_invoices_reports_what_it_skipped(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    office.queue()
    assert send_outbox(office.db, None).sent == 1              # INV-000001: already sent
    silent_client = make_client(office.db, "Quiet Dental LLC", billing_emails="")
    no_mail = one_time(office.db, silent_client, ("Backup", "1", "50.00"))
    fresh = one_time(office.db, office.client_id, ("Switch", "1", "300.00"))
    issue_ids(office.db, [no_mail, fresh])                       # INV-000002, INV-000003
    draft = one_time(office.db, office.client_id, ("Draft only", "1", "5.00"))

    with office.db.write_session() as s, s.begin():
        report = queue_unsent_invoices(s)
    assert report.queued == [fresh] and len(report.outbox_ids) == 1
    # Queue-all lists what needs doing; what went before is only counted.
    assert [(k.invoice_id, k.number, k.client_name, k.reason) for k in report.skipped] == [
        (no_mail, "INV-000002", "Quiet Dental LLC",
         "Quiet Dental LLC has no billing e-mail address; add one under Clients.")]
    assert report.already_handled == 1
    assert report.summary == "1 invoice e-mail queued; 1 skipped; 1 e-mailed before."

    with office.db.write_session() as s, s.begin():
        again = queue_unsent_invoices(s)
        chosen = queue_unsent_invoices(s, [office.invoice_id, no_mail, fresh, draft])
    assert again.queued == [] and again.already_handled == 2
    assert chosen.queued == []
    reasons = {k.invoice_id: k.reason for k in chosen.skipped}
    assert reasons[office.invoice_id].startswith("Already e-mailed (") and TO in reasons[office.invoice_id]
    assert reasons[no_mail].startswith("Quiet Dental LLC has no billing e-mail address")
    assert reasons[fresh] == "Already waiting in the outbox."
    assert reasons[draft] == "Issue the invoice before e-mailing it."
    assert send_outbox(office.db, None).sent == 1 and len(server.received) == 2


# --- status, retry, discard ------------------------------------------------------------

def test_list_outbox_rows_and_discard(office: Office) -> None:
    office.configure(free_port())
    outbox_id = office.queue()
    with office.db.session() as s:
        [row] = list_outbox(s)
        assert list_outbox(s, status="sent") == []
    assert (row.id, row.kind, row.status, row.to, row.cc) == (outbox_id, "invoice", "queued", TO, CC)
    assert row.invoice_number == "INV-000001" and row.client_name == CLIENT
    assert row.subject == "Invoice INV-000001 from Acme IT" and row.attempts == 0
    with office.db.write_session() as s, s.begin():
        assert discard_messages(s, [outbox_id]) == 1
    with office.db.session() as s:
        assert list_outbox(s) == [] and email_status_by_invoice(s) == {}
    assert any(e.action == "invoice.email_discarded" for e in office.history())


def test_sent_messages_cannot_be_discarded_or_retried(office: Office, server: SmtpTestServer) -> None:
    office.configure(server.port)
    outbox_id = office.queue()
    send_outbox(office.db, None)
    with office.db.write_session() as s, s.begin():
        with pytest.raises(ValidationError, match="only queued or failed"):
            discard_messages(s, [outbox_id])
        with pytest.raises(ValidationError, match="already sent"):
            retry_messages(s, [outbox_id])
    assert office.message(outbox_id).status is OutboxStatus.SENT


def test_backoff_never_gives_up() -> None:
    minutes = [backoff(n).total_seconds() / 60 for n in range(1, 9)]
    assert minutes == [1, 5, 15, 30, 60, 60, 60, 60]


# --- the password stays secret ------------------------------------------------------------

@pytest.mark.sqlite_only('reads the SQLite file byte by byte')
def test_password_is_never_in_the_database_or_the_log(office: Office, tmp_path: Path, db_path: Path) -> None:
    log_file = tmp_path / "logs" / "mspbill.log"
    setup_logging(log_file, logging.DEBUG)
    root = logging.getLogger()
    try:
        with SmtpTestServer(users={USER: PASSWORD}, auth_require_tls=False) as srv:
            office.configure(srv.port, username=USER)
            office.queue()
            send_outbox(office.db, PASSWORD + "-typo")          # refused: the error is logged and stored
            assert send_outbox(office.db, PASSWORD, message_ids=[m.id for m in _all(office.db)]).sent == 1
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "baseFilename", None) == str(log_file):
                root.removeHandler(handler)
                handler.close()
    office.db.dispose()  # checkpoint the WAL into the file
    stored = db_path.read_bytes() + b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "-*"))
    logged = log_file.read_bytes()
    assert b"sent outbox message" in logged                      # the log does say what happened
    for secret in (PASSWORD, PASSWORD + "-typo"):
        plain = secret.encode()
        auth_plain = base64.b64encode(f"\0{USER}\0{secret}".encode())
        for blob in (stored, logged):
            assert plain not in blob and auth_plain not in blob and base64.b64encode(plain) not in blob


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _all(db: Database) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMessage)))
