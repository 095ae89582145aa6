"""CLI commands for documents and mail: invoice and statement PDFs, e-mail, the outbox, keys.

Kept apart from cli.py so each file stays about one thing; cli.py wires them in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mspbill.cli_output import (  # re-exported to the command modules
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
)
from mspbill.context import AppContext
from mspbill.validation import Issue, ValidationError


class DocumentCliError(RuntimeError):
    """A problem the user can fix; printed without a traceback (cli.main catches it)."""


# --- writing files ------------------------------------------------------------

def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so a failure leaves no half-written PDF."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mspbill-", suffix=".part", dir=folder)
    except FileNotFoundError as exc:
        raise DocumentCliError(f"The folder {folder} does not exist; create it or choose another.") from exc
    except PermissionError as exc:
        raise DocumentCliError(f"mspbill may not write in {folder}; choose another folder.") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            # mkstemp makes the file private (0600); a saved PDF or export is an ordinary document.
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o666 & ~_UMASK)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except IsADirectoryError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DocumentCliError(f"{path} is a folder; give a file name such as {path / 'invoice.pdf'}.") from exc
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DocumentCliError(f"Could not write {path}: {exc.strerror or exc}. Nothing was written.") from exc


def _output_path(out: str | None, suggested: str) -> Path | None:
    """None means standard output."""
    if out == "-":
        return None
    if out is None:
        return Path(suggested)
    path = Path(out).expanduser()
    return path / suggested if path.is_dir() else path


def _emit_pdf(data: bytes, out: str | None, suggested: str, what: str, json_out: bool) -> int:
    from mspbill.cli import emit_json

    path = _output_path(out, suggested)
    if path is None:
        if json_out:
            raise DocumentCliError("--json and --out - both want standard output; choose one.")
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    write_file_atomically(path, data)
    if json_out:
        emit_json({"file": str(path.resolve()), "bytes": len(data)})
    else:
        print(f"Saved {what} to {path}")
    return EXIT_OK


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError([Issue(what, f"The {what} date “{text}” is not a date; write it as YYYY-MM-DD.")]) from exc


# --- PDFs ---------------------------------------------------------------------

def cmd_invoices_pdf(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.invoicing import find_invoice, get_invoice
    from mspbill.pdf.invoice import invoice_pdf

    if (args.number is None) == (args.id is None):
        raise DocumentCliError("Give the invoice number, for example `mspbill invoices pdf INV-000123`, "
                               "or --id ID for a draft (which has no number yet).")
    with ctx.db.session() as session:
        inv = find_invoice(session, args.number) if args.number is not None else get_invoice(session, args.id)
        rendered = invoice_pdf(session, inv.id)
    return _emit_pdf(rendered.data, args.out, rendered.filename, rendered.title, args.json)


def cmd_clients_statement(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.pdf.statement import statement_pdf

    today = dt.date.today()
    end = _date(args.to, "end") if args.to else today
    if args.from_:
        start = _date(args.from_, "start")
    else:  # this month and the two before it
        months = end.year * 12 + end.month - 1 - 2
        start = dt.date(months // 12, months % 12 + 1, 1)
    with ctx.db.session() as session:
        rendered = statement_pdf(session, args.client, start, end)
    return _emit_pdf(rendered.data, args.out, rendered.filename, rendered.title, args.json)


# --- e-mail -------------------------------------------------------------------

def _smtp_password() -> str | None:
    """Asked only when the account has a user name; the keyring's refusal is a message, not a crash."""
    from mspbill.secrets import SMTP_PASSWORD, SecretStore

    return SecretStore().get(SMTP_PASSWORD)


def _send(ctx: AppContext, message_ids: list[int] | None) -> Any:
    from mspbill.mail import send_outbox

    def progress(done: int, total: int, text: str) -> None:
        if total > 1 and sys.stderr.isatty():
            print(f"\r{done}/{total} {text}"[:79].ljust(79), end="", file=sys.stderr, flush=True)

    report = send_outbox(ctx.db, _smtp_password, message_ids=message_ids, progress=progress)
    if sys.stderr.isatty():
        print("\r" + " " * 79 + "\r", end="", file=sys.stderr, flush=True)
    return report


def _report_json(report: Any) -> dict[str, Any]:
    return {"sent": report.sent, "failed": report.failed, "still_queued": report.still_queued,
            "stopped_reason": report.stopped_reason,
            "errors": {str(k): v for k, v in report.errors.items()}}


def _confirm(question: str) -> bool:
    if sys.stdin is None or not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _print_send_outcome(report: Any, number: str | None) -> None:
    """What was sent, then one line per distinct problem (not one per message)."""
    if report.sent:
        print(f"E-mailed {number}." if number else
              f"E-mailed {report.sent} invoice{'s' if report.sent != 1 else ''}.")
    reasons: dict[str, int] = {}
    for error in report.errors.values():
        if error != report.stopped_reason:
            reasons[error] = reasons.get(error, 0) + 1
    for error, n in reasons.items():
        print(f"mspbill: {error}" + (f" ({n} messages)" if n > 1 else ""), file=sys.stderr)
    if report.stopped_reason:
        print(f"mspbill: {report.stopped_reason}", file=sys.stderr)
    waiting = report.still_queued + report.failed
    if waiting:
        print(f"{waiting} message{'s' if waiting != 1 else ''} not sent stay{'s' if waiting == 1 else ''} in the "
              "outbox (`mspbill outbox list`); `mspbill outbox send --all` tries again.", file=sys.stderr)


def cmd_invoices_email(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.cli import emit_json
    from mspbill.invoicing import find_invoice
    from mspbill.mail import (
        count_unsent_invoices,
        queue_invoice_email,
        queue_unsent_invoices,
    )

    if (args.number is None) == (not args.unsent):
        raise DocumentCliError("Give the invoice number to e-mail, for example `mspbill invoices email INV-000123`, "
                               "or --unsent for every issued invoice not e-mailed yet.")
    if args.number is not None and (args.dry_run or args.yes):
        raise DocumentCliError("--dry-run and --yes go with --unsent.")
    skipped: list[Any] = []
    if args.unsent:
        with ctx.db.session() as session:
            unsent = count_unsent_invoices(session)
        count = unsent.can_go
        if args.dry_run or (count and not args.yes and not _confirm(
                f"E-mail {count} invoice{'s' if count != 1 else ''} that {'were' if count != 1 else 'was'} "
                "never e-mailed, with their PDFs?")):
            if args.json:
                emit_json({"would_queue": count, "queued": 0, "no_address": unsent.no_address})
                return EXIT_OK
            if unsent.no_address:
                print(f"{unsent.no_address} more cannot be e-mailed: the client has no billing e-mail address.")
            print(f"{count} invoice{'s' if count != 1 else ''} never e-mailed would be e-mailed."
                  + ("" if args.dry_run else " Nothing was sent: add --yes to send them (or answer y at the prompt)."))
            return EXIT_OK if args.dry_run or not count else EXIT_USAGE
        with ctx.db.write_session() as session, session.begin():
            queued = queue_unsent_invoices(session)
        message_ids, skipped = queued.outbox_ids, queued.skipped
    else:
        with ctx.db.write_session() as session, session.begin():
            message_ids = [queue_invoice_email(session, find_invoice(session, args.number).id)]
    report = _send(ctx, message_ids) if message_ids else None
    if args.json:
        emit_json({"queued": len(message_ids),
                   "skipped": [{"number": x.number, "client": x.client_name, "reason": x.reason} for x in skipped],
                   **(_report_json(report) if report else {"sent": 0, "failed": 0, "still_queued": 0,
                                                             "stopped_reason": None, "errors": {}})})
    else:
        for x in skipped:
            print(f"Cannot e-mail {x.number} ({x.client_name}): {x.reason}")
        if report is None:
            print("Nothing was queued." if skipped else
                  "Nothing to e-mail: every issued invoice has been e-mailed or queued already.")
        else:
            _print_send_outcome(report, args.number)
    if report is not None and (report.still_queued or report.failed):
        return EXIT_ERROR
    return EXIT_OK


def cmd_outbox_send(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.cli import emit_json
    from mspbill.db.models import OutboxMessage
    from mspbill.mail import queued_message_ids

    with ctx.db.session() as session:
        queued = queued_message_ids(session)  # due first, so queued[0] is the next try
        first = session.get(OutboxMessage, queued[0]) if queued else None
        later = first.next_attempt_at if first is not None else None
    message_ids = queued if args.all else None
    report = _send(ctx, message_ids) if message_ids is None or message_ids else None
    if args.json:
        emit_json(_report_json(report) if report else {"sent": 0, "failed": 0, "still_queued": 0,
                                                       "stopped_reason": None, "errors": {}})
    elif report is not None and (report.sent or report.failed or report.still_queued):
        print(report.summary)
    elif queued:
        when = f"; the next try is at {later.astimezone().strftime('%H:%M')}" if later else ""
        print(f"Nothing is due now: {len(queued)} message{'s are' if len(queued) != 1 else ' is'} waiting to be "
              f"retried{when}. `mspbill outbox send --all` sends them now.")
    else:
        print("The outbox has nothing waiting.")
    if report is None:
        return EXIT_OK
    return EXIT_ERROR if report.stopped_reason or report.failed else EXIT_OK


def cmd_outbox_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.cli import _print_table, emit_json
    from mspbill.mail import list_outbox, outbox_counts

    with ctx.db.session() as session:
        rows = list_outbox(session, status=args.status, limit=args.limit)
        counts = outbox_counts(session)
    if args.json:
        emit_json({"counts": counts, "messages": [
            {"id": r.id, "kind": r.kind, "status": r.status, "to": r.to, "cc": r.cc, "subject": r.subject,
             "invoice": r.invoice_number, "client": r.client_name, "attempts": r.attempts,
             "last_error": r.last_error, "next_attempt_at": r.next_attempt_at, "sent_at": r.sent_at,
             "created_at": r.created_at} for r in rows]})
        return EXIT_OK

    def when(r: Any) -> str:
        moment = r.sent_at if r.status == "sent" else r.next_attempt_at if r.status == "queued" else None
        return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else ""

    _print_table(["Id", "Status", "Invoice", "To", "When", "Last error"],
                 [[str(r.id), r.status, r.invoice_number or r.kind, r.to, when(r), r.last_error[:70]] for r in rows])
    print("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return EXIT_OK


def cmd_outbox_retry(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.mail import retry_messages

    with ctx.db.write_session() as session, session.begin():
        ids = retry_messages(session, args.ids)
    report = _send(ctx, ids)
    print(report.summary if report.sent else "Nothing was sent.")
    if not report.sent:
        _print_send_outcome(report, None)
    return EXIT_ERROR if report.stopped_reason or report.failed else EXIT_OK


def cmd_mail_test(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.mail import mail_settings_draft, send_test_email

    with ctx.db.session() as session:
        draft = mail_settings_draft(session)
    if not draft.host:
        raise DocumentCliError("No mail server is set up yet; fill in Settings → E-mail in the app first.")
    send_test_email(draft, _smtp_password() if draft.username else None, args.to)
    print(f"Sent a test e-mail to {args.to} through {draft.host}:{draft.port}.")
    return EXIT_OK


# --- keys ---------------------------------------------------------------------

KEY_NAMES = {"smtp": "smtp_password", "stripe": "stripe_secret_key"}
KEY_LABELS = {"smtp": "SMTP password", "stripe": "Stripe secret key"}


def _read_secret(label: str) -> str:
    """From a prompt that does not echo, or the first line of standard input; never an argument."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(f"{label}: ")
    else:
        value = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if not value:
        raise DocumentCliError(f"No {label} was given; nothing was saved.")
    return value


def cmd_keys_set(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.secrets import SecretStore

    if args.name == "stripe":
        from mspbill.cli_payments import cmd_keys_set_stripe

        code = cmd_keys_set_stripe()
        _suggest_processor(ctx)
        return code
    store = SecretStore()
    store.set(KEY_NAMES[args.name], _read_secret("SMTP password"))
    print(f"Saved the {args.name.upper()} password in {store.describe()}.")
    return EXIT_OK


def _suggest_processor(ctx: AppContext) -> None:
    """A first Stripe key turns Stripe on; an office on the sandbox is told how to switch."""
    from mspbill.db.models import ProcessorKind
    from mspbill.payments.processor import (
        PaymentSettingsDraft,
        payment_settings,
        save_settings,
    )

    with ctx.db.write_session() as s, s.begin():
        row = payment_settings(s)
        if row.processor is ProcessorKind.NONE:
            save_settings(s, PaymentSettingsDraft("stripe", row.setup_success_url, str(row.setup_link_hours)))
            print("Payments now go through Stripe. Check the key with `mspbill payments test`.")
        elif row.processor is ProcessorKind.SANDBOX:
            print("This office uses the sandbox; switch with `mspbill payments use stripe` when ready.")


def cmd_keys_delete(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.secrets import SecretStore

    store = SecretStore()
    removed = store.delete(KEY_NAMES[args.name])
    label = KEY_LABELS[args.name]
    print(f"Removed the {label} from {store.describe()}." if removed else f"No {label} was saved.")
    return EXIT_OK


def cmd_keys_status(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.cli import emit_json
    from mspbill.cli_payments import stripe_status_lines
    from mspbill.payments.processor import stripe_key_status
    from mspbill.secrets import SecretStore

    store = SecretStore()
    status = store.status()  # which are set, never their values
    stripe = stripe_key_status(store)
    document = {"keyring": store.describe(), "smtp_password": status["smtp_password"],
                "stripe_secret_key": status["stripe_secret_key"],
                "stripe_mode": stripe.mode.value if stripe.mode else None,
                "stripe_key_masked": stripe.masked or None, "stripe_key_restricted": stripe.restricted}
    if args.json:
        emit_json(document)
    else:
        print(f"Keyring: {document['keyring']}")
        print(f"SMTP password: {'saved' if document['smtp_password'] else 'not saved'}")
        for line in stripe_status_lines():
            print(line)
    return EXIT_OK


# --- parser -------------------------------------------------------------------

def add_invoice_document_commands(invoices: Any) -> None:
    pdf = invoices.add_parser("pdf", help="save an invoice or credit note as a PDF")
    pdf.add_argument("number", nargs="?", metavar="NUMBER", help="the invoice number, for example INV-000123")
    pdf.add_argument("--id", type=int, metavar="ID", help="a draft (which has no number yet) by its id")
    pdf.add_argument("--out", metavar="FILE",
                     help="where to save it: a file, a folder, or - for standard output "
                          "(default: the suggested name in the current folder)")
    pdf.add_argument("--json", action="store_true", help="print JSON")
    pdf.set_defaults(func=cmd_invoices_pdf)

    email = invoices.add_parser("email", help="e-mail an invoice with its PDF now (through the outbox)")
    email.add_argument("number", nargs="?", metavar="NUMBER", help="the invoice number, for example INV-000123")
    email.add_argument("--unsent", action="store_true",
                       help="every issued invoice never e-mailed (asks first; --yes for a scheduled task)")
    email.add_argument("--dry-run", action="store_true", help="with --unsent: say how many, send nothing")
    email.add_argument("--yes", action="store_true", help="with --unsent: do not ask")
    email.add_argument("--json", action="store_true", help="print JSON")
    email.set_defaults(func=cmd_invoices_email)


def add_client_document_commands(clients: Any) -> None:
    st = clients.add_parser("statement", help="a client's statement of account as a PDF")
    st.add_argument("client", type=int, metavar="CLIENT_ID", help="the client's id (see `mspbill clients list`)")
    st.add_argument("--from", dest="from_", metavar="YYYY-MM-DD",
                    help="first day of the statement (default: the start of the month two months back)")
    st.add_argument("--to", metavar="YYYY-MM-DD", help="last day (default: today)")
    st.add_argument("--out", metavar="FILE", help="a file, a folder, or - for standard output")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_clients_statement)


def add_mail_commands(sub: Any) -> None:
    outbox = sub.add_parser("outbox", help="e-mails waiting to go, sent or failed").add_subparsers(
        dest="subcommand", required=True)
    ls = outbox.add_parser("list", help="the outbox, newest first")
    ls.add_argument("--status", choices=["queued", "sending", "sent", "failed"], help="only messages in this state")
    ls.add_argument("--limit", type=int, default=200, metavar="N", help="at most N messages (default 200)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_outbox_list)
    send = outbox.add_parser("send", help="send every queued message that is due (for a scheduled task)")
    send.add_argument("--all", action="store_true",
                      help="also the messages still waiting for their next retry (after fixing the server)")
    send.add_argument("--json", action="store_true", help="print JSON")
    send.set_defaults(func=cmd_outbox_send)
    retry = outbox.add_parser("retry", help="queue failed messages again and send them now")
    retry.add_argument("ids", type=int, nargs="+", metavar="ID", help="message ids from `mspbill outbox list`")
    retry.set_defaults(func=cmd_outbox_retry)

    mail = sub.add_parser("mail", help="the outgoing mail account").add_subparsers(dest="subcommand", required=True)
    test = mail.add_parser("test", help="send a test e-mail with the saved settings")
    test.add_argument("--to", required=True, metavar="ADDRESS", help="who receives the test e-mail")
    test.set_defaults(func=cmd_mail_test)


def add_key_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="passwords and keys kept in the operating system's keyring").add_subparsers(
        dest="subcommand", required=True)
    ks = keys.add_parser("set", help="save a password in the keyring, read from a prompt or standard input")
    from mspbill.cli_dbserver import KEY_HELP, KEY_NAME, key_name_action

    ks.add_argument("name", choices=sorted([*KEY_NAMES, KEY_NAME]), action=key_name_action("set"),
                    help="smtp: the password of the outgoing mail account; stripe: the Stripe secret key "
                         f"(sk_live_… or sk_test_…); {KEY_HELP}")
    ks.set_defaults(func=cmd_keys_set)
    kd = keys.add_parser("delete", help="remove a password from the keyring")
    kd.add_argument("name", choices=sorted([*KEY_NAMES, KEY_NAME]), action=key_name_action("delete"))
    kd.set_defaults(func=cmd_keys_delete)
    st = keys.add_parser("status", help="which passwords and keys are saved (never their values)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_keys_status)
