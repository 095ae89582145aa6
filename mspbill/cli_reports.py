"""Command line for the reports: `mspbill report aging` (A/R aging, a client's open invoices, CSV and
PDF) and `mspbill report kpis` (the office's key figures).

Every report is as of a day (default today; never a day to come).  --json prints
one JSON document on stdout and nothing else there; files written are named on
standard error.  Errors: one sentence on standard error, exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mspbill.cli_documents import (
    EXIT_OK,
    DocumentCliError,
    write_file_atomically,
)
from mspbill.cli_output import emit_json as _emit
from mspbill.cli_output import print_table as _table
from mspbill.cli_output import sentence_errors
from mspbill.context import AppContext
from mspbill.money import format_amount
from mspbill.reports import AsOfError, parse_as_of

if TYPE_CHECKING:
    from mspbill.aging import OpenItem
    from mspbill.pdf.layout import CompanyBlock
    from mspbill.reports.aging_report import AgingReport, ClientAging, CurrencyAging

AS_OF_HELP = "the day the report is as of, YYYY-MM-DD (default today; the end of that day)"


# A day a report cannot be made for: one sentence, exit 2 (cli.main handles the rest).
_handled = sentence_errors(AsOfError)


def _save(target: str, suggested: str, data: bytes, what: str) -> None:
    path = Path(target).expanduser()
    if path.is_dir():
        path = path / suggested
    write_file_atomically(path, data)
    print(f"Saved {what} to {path}", file=sys.stderr)


# --- aging -------------------------------------------------------------------------------

def _cell(cents: int, currency: str) -> str:
    return format_amount(cents, currency) if cents else "-"


def _client_line(r: ClientAging) -> list[str]:
    cur = r.currency
    return [r.client_name, *(_cell(c, cur) for c in r.buckets), _cell(r.total_cents, cur),
            _cell(r.credit_cents, cur), str(r.invoice_count), str(r.oldest_days_past_due) if r.invoice_count else "-"]


def _print_section(section: CurrencyAging, company_currency: str) -> None:
    from mspbill.aging import BUCKETS

    cur = section.currency
    title = cur if cur == company_currency else f"{cur} (not added to the {company_currency} totals)"
    print(title)
    rows = [_client_line(r) for r in section.rows]
    rows.append(["Total", *(format_amount(c, cur) for c in section.totals.buckets),
                 format_amount(section.total_cents, cur), format_amount(section.credit_cents, cur),
                 str(section.totals.count), str(section.oldest_days_past_due) if section.totals.count else "-"])
    _table(["Client", *(b.label for b in BUCKETS), "Total", "Credit", "Invoices", "Oldest (days)"], rows)
    line = (f"{section.client_count} client(s) owe {format_amount(section.total_cents, cur)} on "
            f"{section.totals.count} open invoice(s)")
    holding = sum(1 for r in section.rows if r.credit_cents)
    if holding:
        line += (f"; {holding} client(s) hold {format_amount(section.credit_cents, cur)} of credit, "
                 "not taken off what they owe")
    print(line + ".")


def print_aging(report: AgingReport) -> None:
    day = report.as_of.isoformat()
    if report.nothing_owed:
        print(f"Nothing is owed as of {day}.")
        if not report.sections:
            return
        print("Clients holding credit:\n")
    else:
        print(f"A/R aging as of {day} (days past due from each invoice's due date)\n")
    for i, section in enumerate(report.sections):
        if i:
            print()
        _print_section(section, report.company_currency)
    others = report.other_currencies
    if others and report.section(report.company_currency) is not None:
        print(f"\nAmounts in {', '.join(others)} are totalled on their own; they are not added to the "
              f"{report.company_currency} totals.")


def _client_report(ctx: AppContext, args: argparse.Namespace, as_of: dt.date, today: dt.date) -> int:
    """--client: that client's open invoices (the drill-down)."""
    from mspbill.aging import bucket_totals, by_currency, credit_as_of
    from mspbill.db.models import Client
    from mspbill.reports.aging_report import client_items, items_csv, items_json

    if args.pdf:
        raise DocumentCliError("--pdf prints the whole report; for one client's PDF use "
                               f"`mspbill clients statement {args.client} --to {as_of.isoformat()}`.")
    with ctx.db.session() as s:
        items = client_items(s, as_of, args.client, today=today)
        client = s.get(Client, args.client)
        assert client is not None  # client_items has said so otherwise
        name, currency = client.legal_name, client.currency
        credit = credit_as_of(s, as_of, args.client).get(args.client, 0)
    if args.csv:
        _save(args.csv, f"ar-aging-client-{args.client}-{as_of.isoformat()}.csv", items_csv(items),
              f"{name}'s open invoices")
    groups = by_currency(items)
    totals = {cur: bucket_totals(rows, cur) for cur, rows in groups.items()}
    if args.json:
        _emit({"as_of": as_of.isoformat(), "client_id": args.client, "client_name": name, "currency": currency,
               "items": items_json(items),
               "totals": [{"currency": cur, "total_cents": t.total_cents, "total": format_amount(t.total_cents, cur),
                           "buckets_cents": t.as_dict(), "invoice_count": t.count} for cur, t in totals.items()],
               "credit_cents": credit, "credit": format_amount(credit, currency)})
        return EXIT_OK
    if not items:
        print(f"{name} had no open invoices on {as_of.isoformat()}.")
    else:
        print(f"{name}: invoices open as of {as_of.isoformat()}\n")
        _print_items(items)
        for cur, t in totals.items():
            print(f"{t.count} open invoice(s), {format_amount(t.total_cents, cur)} owed"
                  + ("" if cur == currency else f" (in {cur}, not added to the {currency} amounts)") + ".")
    if credit:
        print(f"Credit on account: {format_amount(credit, currency)} (applied to the next invoice; not taken off "
              "the balances above).")
    return EXIT_OK


def _print_items(items: Sequence[OpenItem]) -> None:
    _table(["Invoice", "Issued", "Due", "Days past due", "Bucket", "Total", "Balance"],
           [[i.number, i.issue_date.isoformat(), i.due_date.isoformat(), str(i.days_overdue), i.bucket.label,
             format_amount(i.total_cents, i.currency), format_amount(i.balance_cents, i.currency)] for i in items])


def _company(session: Any) -> CompanyBlock:
    from mspbill.pdf.layout import (
        read_company,  # ReportLab is loaded only when a PDF is asked for
    )

    return read_company(session)


@_handled
def cmd_report_aging(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.reports.aging_report import aging_csv, aging_json, aging_report

    today = dt.date.today()
    as_of = parse_as_of(args.as_of, today)
    if args.client is not None:
        return _client_report(ctx, args, as_of, today)
    with ctx.db.session() as s:
        report = aging_report(s, as_of, today=today)
        company = _company(s) if args.pdf else None
    if args.csv:
        _save(args.csv, f"ar-aging-{as_of.isoformat()}.csv", aging_csv(report), "the A/R aging report")
    if args.pdf and company is not None:
        from mspbill.pdf.aging import render_aging

        rendered = render_aging(report, company)
        _save(args.pdf, rendered.filename, rendered.data, "the A/R aging PDF")
    if args.json:
        _emit(aging_json(report))
    else:
        print_aging(report)
    return EXIT_OK


# --- KPIs --------------------------------------------------------------------------------

@_handled
def cmd_report_kpis(ctx: AppContext, args: argparse.Namespace) -> int:
    today = dt.date.today()
    as_of = parse_as_of(args.as_of, today)
    from mspbill.reports.kpis import compute_kpis, kpis_json, kpis_text

    with ctx.db.session() as s:
        kpis = compute_kpis(s, as_of, today=today)
    if args.json:
        _emit(kpis_json(kpis))
    else:
        for line in kpis_text(kpis):
            print(line)
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------

def add_report_commands(sub: Any) -> None:
    report = sub.add_parser("report", help="reports: A/R aging and the office's key figures").add_subparsers(
        dest="subcommand", required=True)

    ag = report.add_parser(
        "aging", help="what each client owes, by days past due (current, 1–30, 31–60, 61–90, over 90)",
        description="The A/R aging report as of a day: each client's open balances by days past due and the "
                    "credit it holds, one table per currency (currencies are never added together).")
    ag.add_argument("--as-of", metavar="YYYY-MM-DD", help=AS_OF_HELP)
    ag.add_argument("--client", type=int, metavar="ID", help="only this client's open invoices (the drill-down)")
    ag.add_argument("--csv", metavar="FILE", help="also save it as a CSV file (a spreadsheet opens it)")
    ag.add_argument("--pdf", metavar="FILE", help="also save it as a PDF")
    ag.add_argument("--json", action="store_true", help="print JSON")
    ag.set_defaults(func=cmd_report_aging)

    kp = report.add_parser("kpis", help="the office's key figures: MRR, A/R, DSO, autopay adoption, collections")
    kp.add_argument("--as-of", metavar="YYYY-MM-DD", help=AS_OF_HELP)
    kp.add_argument("--json", action="store_true", help="print JSON")
    kp.set_defaults(func=cmd_report_kpis)
