"""The command line: automation, support and tests.  `mspbill` alone opens the app.

`--json` prints one JSON document on stdout and nothing else there; errors go
to stderr with a non-zero exit and a sentence a person can act on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import logging
import sys
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from mspbill import __version__
from mspbill.context import AppContext, open_context
from mspbill.db.schema import DatabaseOpenError
from mspbill.demo import DEFAULT_CLIENTS, DemoRefusedError
from mspbill.money import format_amount
from mspbill.secrets import KeyringUnavailableError
from mspbill.validation import NotFoundError, ValidationError

log = logging.getLogger("mspbill.cli")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, default=_json_default, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _display_width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [_display_width(h) for h in headers]
    for row in rows:
        widths = [max(w, _display_width(c)) for w, c in zip(widths, row, strict=True)]
    print("  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip())


# --- commands -------------------------------------------------------------

def cmd_demo(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.demo import create_demo_office

    with ctx.db.write_session() as session, session.begin():
        summary = create_demo_office(session, clients=args.clients, seed=args.seed)
    if args.json:
        emit_json({"clients": summary.clients, "agreements": summary.agreements,
                   "database": ctx.db.describe()})
    else:
        print(f"Demo office created: {summary.clients} clients, {summary.agreements} agreements "
              f"in {ctx.db.describe()}.")
    return EXIT_OK


def cmd_clients_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.clients import list_clients

    with ctx.db.session() as session:
        rows = list_clients(session, include_archived=args.all, search=args.search or "")
    if args.json:
        emit_json([{**dataclasses.asdict(r),
                    "monthly_value": format_amount(r.monthly_value_cents, r.currency)} for r in rows])
        return EXIT_OK
    _print_table(["ID", "Client", "Billing e-mail", "City", "Autopay", "Agreements", "Monthly", "Status"],
                 [[str(r.id), r.legal_name, r.primary_email, r.city, "yes" if r.autopay else "no",
                   str(r.agreement_count), format_amount(r.monthly_value_cents, r.currency), r.status]
                  for r in rows])
    print(f"\n{len(rows)} client(s)")
    return EXIT_OK


def cmd_agreements_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.agreements import list_agreements

    with ctx.db.session() as session:
        rows = list_agreements(session, include_archived=args.all, client_id=args.client)
    if args.json:
        emit_json([{**dataclasses.asdict(r), "monthly_value_cents": r.monthly_value_cents} for r in rows])
        return EXIT_OK
    _print_table(["ID", "Client", "Agreement", "Frequency", "Start", "End", "Per period", "Status"],
                 [[str(r.id), r.client_name, r.name, r.frequency, r.start_date.isoformat(),
                   r.end_date.isoformat() if r.end_date else "", format_amount(r.period_amount_cents, r.currency),
                   r.status] for r in rows])
    print(f"\n{len(rows)} agreement(s)")
    return EXIT_OK


def cmd_db_upgrade(ctx: AppContext, args: argparse.Namespace) -> int:
    # open_context has already checked, backed up and migrated.
    from mspbill.db.schema import current_revision

    rev, _ = current_revision(ctx.db)
    if args.json:
        emit_json({"database": ctx.db.describe(), "revision": rev})
    else:
        print(f"Database {ctx.db.describe()} is at the current schema ({rev}).")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    # Imported by name so that the core never imports Qt (house rule 1):
    # only this command, which opens the window, loads the ui package.
    app = importlib.import_module("ui.app")
    argv = [sys.argv[0]]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.db:
        argv += ["--db", args.db]
    result: int = app.main(argv)
    return result


# --- parser ---------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mspbill", description="Billing for Managed Service Providers. With no command, opens the app.")
    parser.add_argument("--version", action="version", version=f"mspbill {__version__}")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="keep the database, backups, logs and settings in DIR (env MSPBILL_DATA_DIR)")
    parser.add_argument("--db", metavar="URL",
                        help="SQLAlchemy database URL instead of the SQLite file (env MSPBILL_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="create a realistic demo office in an empty database")
    demo.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, metavar="N",
                      help=f"number of clients (default {DEFAULT_CLIENTS})")
    demo.add_argument("--seed", type=int, default=2026, help=argparse.SUPPRESS)
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.set_defaults(func=cmd_demo)

    clients = sub.add_parser("clients", help="clients").add_subparsers(dest="subcommand", required=True)
    cl = clients.add_parser("list", help="list clients")
    cl.add_argument("--all", action="store_true", help="include archived clients")
    cl.add_argument("--search", metavar="TEXT", help="only clients whose name or e-mail contains TEXT")
    cl.add_argument("--json", action="store_true", help="print JSON")
    cl.set_defaults(func=cmd_clients_list)

    agreements = sub.add_parser("agreements", help="agreements").add_subparsers(dest="subcommand", required=True)
    al = agreements.add_parser("list", help="list agreements")
    al.add_argument("--all", action="store_true", help="include archived agreements")
    al.add_argument("--client", type=int, metavar="ID", help="only this client's agreements")
    al.add_argument("--json", action="store_true", help="print JSON")
    al.set_defaults(func=cmd_agreements_list)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="subcommand", required=True)
    up = db.add_parser("upgrade", help="back up the database and bring it to the current schema")
    up.add_argument("--json", action="store_true", help="print JSON")
    up.set_defaults(func=cmd_db_upgrade)
    return parser


def _utf8_output() -> None:
    """Client names are any script; never crash printing them (Windows pipes default to cp1252)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        if encoding == "utf8" or not hasattr(stream, "reconfigure"):
            continue
        if stream.isatty():
            stream.reconfigure(errors="replace")
        else:
            stream.reconfigure(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    _utf8_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return cmd_gui(args)
    func: Callable[[AppContext, argparse.Namespace], int] = args.func
    try:
        ctx = open_context(args.data_dir, args.db)
    except DatabaseOpenError as exc:
        print(f"mspbill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return func(ctx, args)
    except ValidationError as exc:
        print("mspbill: the input has problems:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  - {issue.field}: {issue.message}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, DemoRefusedError, NotFoundError, KeyringUnavailableError, DatabaseOpenError) as exc:
        print(f"mspbill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except Exception:
        log.exception("command %s failed", args.command)
        print(f"mspbill: an unexpected error stopped the command; details are in {ctx.paths.log_file}",
              file=sys.stderr)
        return EXIT_ERROR
    finally:
        ctx.close()
