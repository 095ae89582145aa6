"""`mspbill audit`: the audit trail — who (the operating-system user) changed what, and when.

Newest first, filtered by local day range, user, area, words in the summary, one invoice or
one client (with its invoices and agreements).  --json prints one JSON document on stdout and
nothing else there; --csv FILE writes every matching entry (not only the --limit shown), named
on standard error.  Errors: one sentence on standard error, exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from mspbill.cli_documents import DocumentCliError
from mspbill.cli_output import EXIT_OK, emit_json, print_table, sentence_errors
from mspbill.context import AppContext

DEFAULT_LIMIT = 50
SUMMARY_WIDTH = 90


class AuditCliError(ValueError):
    """Bad input to `mspbill audit`: the message is the sentence printed."""


_handled = sentence_errors(AuditCliError)


def _day(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise AuditCliError(f"{option} “{text}” is not a date; write it as YYYY-MM-DD, for example "
                            "2026-11-01.") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"“{text}” is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("give 1 or more")
    return value


def _filter(ctx: AppContext, args: argparse.Namespace) -> Any:
    from sqlalchemy import select

    from mspbill.audit import AuditFilter
    from mspbill.db.models import Client, Invoice

    entity_type = entity_id = None
    if args.invoice is not None:
        number = args.invoice.strip()
        with ctx.db.session() as s:
            entity_id = s.scalar(select(Invoice.id).where(Invoice.number == number))
        if entity_id is None:
            raise AuditCliError(f"There is no invoice numbered “{number}”; drafts have no number yet "
                                "(`mspbill invoices list` shows the numbers).")
        entity_type = "invoice"
    if args.client is not None:
        with ctx.db.session() as s:
            if s.get(Client, args.client) is None:
                raise AuditCliError(f"There is no client {args.client} (`mspbill clients list` shows their ids).")
    flt = AuditFilter(from_day=_day(args.from_day, "--from"), to_day=_day(args.to_day, "--to"),
                      actor=(args.user or "").strip() or None, area=args.area, text=args.search or "",
                      entity_type=entity_type, entity_id=entity_id, client_id=args.client)
    if flt.from_day and flt.to_day and flt.from_day > flt.to_day:
        raise AuditCliError(f"--to ({flt.to_day.isoformat()}) is before --from ({flt.from_day.isoformat()}); "
                            "the range would hold nothing.")
    return flt


def _short(text: str, width: int = SUMMARY_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


@_handled
def cmd_audit(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.audit import export_audit_csv, search_audit

    flt = _filter(ctx, args)
    if args.csv:
        path = Path(args.csv).expanduser()
        if path.is_dir():
            path = path / f"audit-trail-{dt.date.today().isoformat()}.csv"
        if not path.parent.is_dir():
            raise DocumentCliError(f"The folder {path.parent} does not exist; create it or choose another.")
        with ctx.db.session() as s:
            try:
                count = export_audit_csv(s, flt, path)
            except OSError as exc:
                raise DocumentCliError(f"Could not write {path}: {exc.strerror or exc}. Nothing was written.") \
                    from exc
        print(f"Saved {count:,} audit entr{'y' if count == 1 else 'ies'} to {path}", file=sys.stderr)
    with ctx.db.session() as s:
        page = search_audit(s, flt, limit=args.limit)
    if args.json:
        emit_json({"total": page.total, "limit": args.limit, "filter": {
            "from": flt.from_day, "to": flt.to_day, "user": flt.actor, "area": flt.area, "search": flt.text,
            "invoice": args.invoice, "client_id": flt.client_id},
            "entries": [r.as_json() for r in page.rows]})
        return EXIT_OK
    if not page.rows:
        print("No audit entries match.")
        return EXIT_OK
    print_table(["When", "Who", "Area", "What", "Item", "Summary"],
                [[f"{r.local_at:%Y-%m-%d %H:%M}", r.actor, r.area.label, r.action_label, _short(r.item, 40),
                  _short(r.summary)] for r in page.rows])
    more = "" if page.total <= len(page.rows) else \
        " — --limit N shows more, --csv FILE saves them all"
    print(f"\n{page.range_text} entries, newest first{more}.")
    return EXIT_OK


def add_audit_commands(sub: Any) -> None:
    """Register `mspbill audit` on the top-level subparsers."""
    from mspbill.audit import AREA_KEYS

    p = sub.add_parser(
        "audit", help="the audit trail: who changed what, and when",
        description="The audit trail, newest first: every change to invoices, payments, agreements, clients "
                    "and settings, with the operating-system user who made it. Days are local days, both "
                    "included.")
    p.add_argument("--from", dest="from_day", metavar="YYYY-MM-DD", help="from this day (included)")
    p.add_argument("--to", dest="to_day", metavar="YYYY-MM-DD", help="up to this day (included)")
    p.add_argument("--user", metavar="USER", help="only what this (operating-system) user did")
    p.add_argument("--area", choices=AREA_KEYS, help="only this part: " + ", ".join(AREA_KEYS))
    p.add_argument("--search", metavar="TEXT", help="only entries whose summary holds TEXT (any case)")
    p.add_argument("--invoice", metavar="NUMBER", help="only this invoice's entries")
    p.add_argument("--client", type=int, metavar="ID",
                   help="only this client's entries and those of its invoices and agreements")
    p.add_argument("--limit", type=_positive, default=DEFAULT_LIMIT, metavar="N",
                   help=f"show the newest N entries (default {DEFAULT_LIMIT})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--csv", metavar="FILE", help="also save every matching entry (not only --limit) as CSV")
    p.set_defaults(func=cmd_audit)
