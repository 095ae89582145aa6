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

from mspbill.context import AppContext
from mspbill.validation import Issue, ValidationError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class DocumentCliError(RuntimeError):
    """A problem the user can fix; printed without a traceback (cli.main catches it)."""


# --- writing files ------------------------------------------------------------

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


# --- keys ---------------------------------------------------------------------

KEY_NAMES = {"smtp": "smtp_password"}


def _read_secret(label: str) -> str:
    """From a prompt that does not echo, or the first line of standard input; never an argument."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(f"{label}: ")
    else:
        value = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if not value:
        raise DocumentCliError(f"No {label.lower()} was given; nothing was saved.")
    return value


def cmd_keys_set(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.secrets import SecretStore

    store = SecretStore()
    store.set(KEY_NAMES[args.name], _read_secret("SMTP password"))
    print(f"Saved the {args.name.upper()} password in {store.describe()}.")
    return EXIT_OK


def cmd_keys_delete(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.secrets import SecretStore

    store = SecretStore()
    removed = store.delete(KEY_NAMES[args.name])
    print(f"Removed the {args.name.upper()} password from {store.describe()}." if removed
          else f"No {args.name.upper()} password was saved.")
    return EXIT_OK


def cmd_keys_status(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.cli import emit_json
    from mspbill.secrets import SecretStore

    store = SecretStore()
    status = store.status()  # which are set, never their values
    document = {"keyring": store.describe(), "smtp_password": status["smtp_password"],
                "stripe_secret_key": status["stripe_secret_key"]}
    if args.json:
        emit_json(document)
    else:
        print(f"Keyring: {document['keyring']}")
        print(f"SMTP password: {'saved' if document['smtp_password'] else 'not saved'}")
        print(f"Stripe secret key: {'saved' if document['stripe_secret_key'] else 'not saved'}")
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


def add_client_document_commands(clients: Any) -> None:
    st = clients.add_parser("statement", help="a client's statement of account as a PDF")
    st.add_argument("client", type=int, metavar="CLIENT_ID", help="the client's id (see `mspbill clients list`)")
    st.add_argument("--from", dest="from_", metavar="YYYY-MM-DD",
                    help="first day of the statement (default: the start of the month two months back)")
    st.add_argument("--to", metavar="YYYY-MM-DD", help="last day (default: today)")
    st.add_argument("--out", metavar="FILE", help="a file, a folder, or - for standard output")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_clients_statement)


def add_key_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="passwords and keys kept in the operating system's keyring").add_subparsers(
        dest="subcommand", required=True)
    ks = keys.add_parser("set", help="save a password in the keyring, read from a prompt or standard input")
    ks.add_argument("name", choices=sorted(KEY_NAMES), help="smtp: the password of the outgoing mail account")
    ks.set_defaults(func=cmd_keys_set)
    kd = keys.add_parser("delete", help="remove a password from the keyring")
    kd.add_argument("name", choices=sorted(KEY_NAMES))
    kd.set_defaults(func=cmd_keys_delete)
    st = keys.add_parser("status", help="which passwords and keys are saved (never their values)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_keys_status)
