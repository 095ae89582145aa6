"""The command line: automation, support and tests.  `mspbill` alone opens the app.

`--json` prints one JSON document on stdout and nothing else there; errors go
to stderr with a non-zero exit and a sentence a person can act on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mspbill import (
    __version__,
    cli_audit,
    cli_backups,
    cli_batch,
    cli_collections,
    cli_db,
    cli_documents,
    cli_exports,
    cli_imports,
    cli_payments,
    cli_reports,
)
from mspbill.cli_output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, emit_json
from mspbill.cli_output import print_table as _print_table
from mspbill.context import AppContext, open_context, prepare_paths
from mspbill.db.models import QUANTITY_SCALE
from mspbill.db.schema import DatabaseOpenError
from mspbill.demo import DEFAULT_CLIENTS, DemoRefusedError
from mspbill.generation import ConcurrentGenerationError
from mspbill.mail.smtp import MailError
from mspbill.money import format_amount, format_decimal
from mspbill.paths import AppPaths
from mspbill.periods import PeriodError, parse_period
from mspbill.secrets import KeyringUnavailableError
from mspbill.validation import NotFoundError, ValidationError

if TYPE_CHECKING:
    from mspbill.generation import GenerationPlan, PlannedInvoice
    from mspbill.invoicing import InvoiceRow

log = logging.getLogger("mspbill.cli")



class CliError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


# --- commands -------------------------------------------------------------

def cmd_demo(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.demo import create_demo_office

    with ctx.db.write_session() as session, session.begin():
        summary = create_demo_office(session, clients=args.clients, seed=args.seed)
    from mspbill.demo import demo_payment_methods
    from mspbill.payments.processor import sandbox_gateway

    methods_saved = demo_payment_methods(ctx.db, sandbox_gateway(ctx.paths.data_dir), seed=args.seed)
    if args.json:
        emit_json({**dataclasses.asdict(summary), "payment_methods": methods_saved, "database": ctx.db.describe()})
    else:
        print(f"Demo office created: {summary.clients} clients, {summary.agreements} agreements "
              f"in {ctx.db.describe()}.")
        print(f"It has issued {summary.invoices_issued} invoices over the last three months and recorded "
              f"{summary.payments} payments; {summary.drafts} drafts for {summary.draft_month} are ready: "
              f"`mspbill invoices issue --period {summary.draft_month}`.")
        print(f"Payments go through the sandbox processor (simulated; no money moves): {methods_saved} autopay "
              "clients have a card or bank account on file.")
    return EXIT_OK


def cmd_clients_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.clients import list_clients

    with ctx.db.session() as session:
        rows = list_clients(session, include_archived=args.all, search=args.search or "")
    if args.json:
        emit_json([{**dataclasses.asdict(r),
                    "monthly_value": format_amount(r.monthly_value_cents, r.currency),
                    "credit": format_amount(r.credit_cents, r.currency)} for r in rows])
        return EXIT_OK
    _print_table(["ID", "Client", "Billing e-mail", "City", "Autopay", "Agreements", "Monthly", "Credit", "Status"],
                 [[str(r.id), r.legal_name, r.primary_email, r.city, "yes" if r.autopay else "no",
                   str(r.agreement_count), format_amount(r.monthly_value_cents, r.currency),
                   format_amount(r.credit_cents, r.currency) if r.credit_cents else "", r.status]
                  for r in rows])
    print(f"\n{len(rows)} client(s)")
    if any(r.credit_cents for r in rows):
        print("Credit is the client's credit on account, applied to the next invoice issued.")
    return EXIT_OK


def _check_client(session: Any, client_id: int | None) -> None:
    """`--client ID` names a client that exists (archived ones too)."""
    from mspbill.db.models import Client

    if client_id is not None and session.get(Client, client_id) is None:
        raise NotFoundError(f"There is no client with ID {client_id}.")


def cmd_agreements_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.agreements import list_agreements

    with ctx.db.session() as session:
        _check_client(session, args.client)
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


# --- invoices ---------------------------------------------------------------

def _money_totals(by_currency: dict[str, Any]) -> str:
    return ", ".join(f"{format_amount(t.total_cents, cur)}" for cur, t in by_currency.items())


def _span(start: dt.date | None, end: dt.date | None) -> str:
    if start is None:
        return ""
    return start.isoformat() if end is None or end == start else f"{start.isoformat()} – {end.isoformat()}"


def _planned_json(inv: PlannedInvoice) -> dict[str, Any]:
    return {
        "client_id": inv.client_id, "client_name": inv.client_name, "agreement_id": inv.agreement_id,
        "agreement_name": inv.agreement_name, "title": inv.title, "period_start": inv.period_start,
        "period_end": inv.period_end, "currency": inv.currency, "autopay": inv.autopay, "notes": inv.notes,
        "prorated": inv.prorated, "adjusted": inv.adjusted, "tax_rate_percent": inv.tax_rate_percent,
        "subtotal_cents": inv.totals.subtotal_cents, "tax_cents": inv.totals.tax_cents,
        "total_cents": inv.totals.total_cents,
        "lines": [{"kind": ln.kind.value, "description": ln.description,
                   "quantity": format_decimal(Decimal(ln.quantity_e4) / QUANTITY_SCALE), "unit_price_cents": ln.unit_price_cents,
                   "amount_cents": ln.amount_cents, "taxable": ln.taxable} for ln in inv.lines],
    }


def _plan_json(plan: GenerationPlan, *, dry_run: bool, invoice_ids: list[int]) -> dict[str, Any]:
    return {
        "period": str(plan.month), "dry_run": dry_run, "created": len(invoice_ids), "invoice_ids": invoice_ids,
        "summary": plan.summary(),
        "invoices": [_planned_json(inv) for inv in plan.invoices],
        "left_out": [dataclasses.asdict(x) for x in plan.left_out],
        "totals": {cur: {"invoices": sum(1 for i in plan.invoices if i.currency == cur),
                         **dataclasses.asdict(t), "total": format_amount(t.total_cents, cur)}
                   for cur, t in plan.totals_by_currency().items()},
        "instalments_due": plan.instalments_due,
    }


def _print_plan(plan: GenerationPlan) -> None:
    if plan.invoices:
        _print_table(
            ["Client", "Agreement / title", "Period", "Notes", "Subtotal", "Tax", "Total"],
            [[inv.client_name, inv.title, _span(inv.period_start, inv.period_end), inv.notes,
              format_amount(inv.totals.subtotal_cents, inv.currency),
              format_amount(inv.totals.tax_cents, inv.currency),
              format_amount(inv.totals.total_cents, inv.currency)] for inv in plan.invoices])
    else:
        print(f"No invoices to generate for {plan.month.label}.")
    if plan.left_out:
        print(f"\nLeft out ({len(plan.left_out)}):")
        _print_table(["Client", "Agreement", "Reason"],
                     [[x.client_name, x.agreement_name, x.reason] for x in plan.left_out])
    if plan.invoices:
        print("\nTotals:")
        for cur, t in plan.totals_by_currency().items():
            count = sum(1 for i in plan.invoices if i.currency == cur)
            print(f"  {cur}: {count} invoice(s), subtotal {format_amount(t.subtotal_cents, cur)}, "
                  f"tax {format_amount(t.tax_cents, cur)}, total {format_amount(t.total_cents, cur)}")
    if plan.instalments_due:
        print(f"\n{plan.instalments_due} instalment(s) of split invoices fall due in {plan.month.label}; "
              "they are issued with this month's invoices.")


def cmd_invoices_generate(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.generation import generate_period, plan_period

    month = parse_period(args.period)
    if args.dry_run:
        # A read-only session: a preview never writes, whatever happens.
        with ctx.db.session() as session:
            plan = plan_period(session, month)
        if args.json:
            emit_json(_plan_json(plan, dry_run=True, invoice_ids=[]))
            return EXIT_OK
        print(f"Preview of the invoices for {month.label} (dry run: nothing is written)\n")
        _print_plan(plan)
        if plan.invoices:
            print(f"\n{plan.summary()} Run again without --dry-run to create the drafts.")
        else:
            print(f"\n{plan.summary()}")
        if plan.drafts_waiting or plan.instalments_due:
            print(f"Issue the waiting drafts with `mspbill invoices issue --period {month}`.")
        return EXIT_OK
    with ctx.db.write_session() as session, session.begin():
        result = generate_period(session, month)
    plan = result.plan
    if args.json:
        emit_json(_plan_json(plan, dry_run=False, invoice_ids=result.invoice_ids))
        return EXIT_OK
    if result.created:
        print(f"Created {result.created} draft invoice(s) for {month.label}, "
              f"{_money_totals(plan.totals_by_currency())} in all.")
    else:
        print(f"Nothing new to generate for {month.label}: every agreement due is already invoiced "
              "or not due this month.")
    if plan.left_out:
        print(f"{len(plan.left_out)} agreement(s) left out; `mspbill invoices generate --period {month} "
              "--dry-run` says why.")
    if plan.instalments_due:
        print(f"{plan.instalments_due} instalment(s) of split invoices also fall due this month.")
    if plan.drafts_waiting and not result.created:
        print(f"{plan.drafts_waiting} draft(s) for {month.label} are waiting to be issued.")
    if result.created or plan.instalments_due or plan.drafts_waiting:
        print(f"Review them with `mspbill invoices list --status draft --period {month}`, "
              f"then issue them with `mspbill invoices issue --period {month}`.")
    return EXIT_OK


def cmd_invoices_issue(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.invoicing import issue_month, parse_issue_date

    month = parse_period(args.period)
    issue_date = parse_issue_date(args.date)
    with ctx.db.write_session() as session, session.begin():
        numbers = issue_month(session, month, issue_date)
    if args.json:
        emit_json({"period": str(month), "issue_date": issue_date, "issued": len(numbers), "numbers": numbers,
                   "first": numbers[0] if numbers else None, "last": numbers[-1] if numbers else None})
        return EXIT_OK
    if not numbers:
        print(f"There are no drafts for {month.label} to issue: its invoices are issued already, or not "
              f"generated yet (`mspbill invoices generate --period {month} --dry-run` shows which).")
        return EXIT_OK
    span = numbers[0] if len(numbers) == 1 else f"{numbers[0]} to {numbers[-1]}"
    print(f"Issued {len(numbers)} invoice(s) for {month.label}, dated {issue_date.isoformat()}: {span}.")
    return EXIT_OK


def _status_text(row: InvoiceRow) -> str:
    if row.kind == "credit_note":
        return "Applied"  # issued and applied at once; it owes nothing and falls due never
    if row.overdue:
        return f"{row.status}, overdue {row.overdue_days} day{'s' if row.overdue_days != 1 else ''}"
    return row.status


def _row_json(row: InvoiceRow) -> dict[str, Any]:
    return {**dataclasses.asdict(row), "display_number": row.display_number, "overdue": row.overdue,
            "status_text": _status_text(row), "total": format_amount(row.total_cents, row.currency),
            "balance": format_amount(row.balance_cents, row.currency)}


def cmd_invoices_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.invoicing import list_invoices

    month = parse_period(args.period) if args.period else None
    with ctx.db.session() as session:
        _check_client(session, args.client)
        rows = list_invoices(session, status=args.status, client_id=args.client, month=month,
                             overdue_only=args.overdue)
    if args.json:
        emit_json([_row_json(r) for r in rows])
        return EXIT_OK
    _print_table(["Number", "Client", "Title", "Issued", "Due", "Total", "Balance", "Status"],
                 # A draft has no number yet: its id is what `invoices show/pdf --id` take.
                 [[r.number or f"Draft id {r.id}", r.client_name, r.title,
                   r.issue_date.isoformat() if r.issue_date else "",
                   r.due_date.isoformat() if r.due_date and r.kind == "invoice" else "",
                   format_amount(r.total_cents, r.currency),
                   format_amount(r.balance_cents, r.currency) if r.kind == "invoice" else "", _status_text(r)]
                  for r in rows])
    owed: dict[str, int] = {}
    for r in rows:
        if r.status == "open" and r.kind == "invoice":
            owed[r.currency] = owed.get(r.currency, 0) + r.balance_cents
    tail = f"; {', '.join(format_amount(v, c) for c, v in owed.items())} outstanding" if owed else ""
    print(f"\n{len(rows)} invoice(s){tail}")
    return EXIT_OK


def _find(session: Any, number: str) -> Any:
    from mspbill.invoicing import find_invoice

    return find_invoice(session, number)


def cmd_invoices_show(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.invoicing import get_invoice, invoice_detail

    if args.number is None and args.id is None:
        raise CliError("Give the invoice number to show, for example `mspbill invoices show INV-000123`, "
                       "or --id ID for a draft (which has no number yet).")
    if args.number is not None and args.id is not None:
        raise CliError("Give either an invoice number or --id for a draft, not both.")
    with ctx.db.session() as session:
        inv = _find(session, args.number) if args.number is not None else get_invoice(session, args.id)
        detail = invoice_detail(session, inv.id)
    if args.json:
        document = dataclasses.asdict(detail)
        document["row"] = _row_json(detail.row)
        emit_json(document)
        return EXIT_OK
    row, cur = detail.row, detail.row.currency

    def money(cents: int) -> str:
        return format_amount(cents, cur)

    kind = "Credit note" if row.kind == "credit_note" else "Invoice"
    print(f"{kind} {row.display_number}: {row.title}")
    facts = [("Client", f"{row.client_name} (client {row.client_id})"), ("Status", _status_text(row))]
    if detail.status_reason:
        facts.append(("Reason", detail.status_reason))
    if row.period_start:
        facts.append(("Period", _span(row.period_start, detail.period_end)))
    if row.issue_date:
        facts.append(("Issued", row.issue_date.isoformat()))
    if row.due_date and row.kind == "invoice":
        facts.append(("Due", row.due_date.isoformat()))
    if detail.credit_for:
        facts.append(("Credits", detail.credit_for))
    if detail.instalment:
        facts.append(("Instalment", detail.instalment))
    bill_to = detail.bill_to or {}
    if bill_to:
        facts.append(("Bill to", "; ".join([bill_to.get("name", ""), *bill_to.get("address", [])])))
    if detail.memo and detail.memo != detail.status_reason:
        # A credit note keeps its reason as its memo too: say it once.
        facts.append(("Note", detail.memo))
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        print(f"  {key + ':':<{width + 1}} {value}")
    print()
    _print_table(["Description", "Qty", "Unit price", "Amount", "Tax"],
                 [[ln.description, format_decimal(ln.quantity), money(ln.unit_price_cents),
                   money(ln.amount_cents), "taxable" if ln.taxable else ""] for ln in detail.lines])
    sums = [("Subtotal", detail.subtotal_cents),
            (f"Tax ({format_decimal(detail.tax_rate_percent)}%)", detail.tax_cents),
            ("Total", row.total_cents)]
    for label, cents in (("Client credit applied", detail.credit_applied_cents), ("Paid", detail.paid_cents),
                         ("Credited", detail.credited_cents)):
        if cents:
            sums.append((label, -cents))
    if row.kind == "invoice" and row.status != "draft":
        sums.append(("Balance due", row.balance_cents))
    print()
    label_width = max(len(k) for k, _ in sums)
    amount_width = max(len(money(v)) for _, v in sums)
    for label, cents in sums:
        print(f"  {label:>{label_width}}  {money(cents):>{amount_width}}")
    if detail.payments:
        print("\nPayments:")
        refunds = any(p.refunded_cents for p in detail.payments)
        _print_table(["Received", "Method", "Reference", "Amount", "Applied"] + (["Refunded"] if refunds else []),
                     [[p.received_on.isoformat(), p.method, p.reference, money(p.amount_cents),
                       money(p.applied_cents)] + ([money(p.refunded_cents) if p.refunded_cents else ""]
                                                  if refunds else []) for p in detail.payments])
    if detail.credit_notes:
        print("\nCredit notes:")
        _print_table(["Number", "Issued", "Total"],
                     [[n.display_number, n.issue_date.isoformat() if n.issue_date else "", money(n.total_cents)]
                      for n in detail.credit_notes])
    if detail.history:
        print("\nHistory:")
        for h in detail.history:
            print(f"  {h.at.astimezone().strftime('%Y-%m-%d %H:%M')}  {h.actor}  {h.summary}")
    return EXIT_OK


def cmd_invoices_void(ctx: AppContext, args: argparse.Namespace) -> int:

    from mspbill.invoicing import void_invoice

    with ctx.db.write_session() as session, session.begin():
        inv = void_invoice(session, _find(session, args.number).id, args.reason)
        number, reason, currency = inv.number, inv.status_reason, inv.currency
        # Voiding gives back the client credit the invoice had used.
        returned = inv.credit_applied_cents
    if args.json:
        emit_json({"number": number, "status": "void", "reason": reason, "currency": currency,
                   "credit_returned_cents": returned})
    else:
        text = f"Voided {number}: {reason}"
        if returned:
            text += (f"\nThe {format_amount(returned, currency)} of client credit it had used was returned to "
                     "the client's credit, for the next invoice issued.")
        print(text)
    return EXIT_OK


def cmd_invoices_credit(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.invoicing import create_credit_note

    with ctx.db.write_session() as session, session.begin():
        inv = _find(session, args.number)
        credited_before = inv.credited_cents
        note = create_credit_note(session, inv.id, args.reason, args.amount)
        # The note reduces the invoice's balance first; the rest goes to the client's credit.
        off_balance = inv.credited_cents - credited_before
        document = {"credit_note": note.number, "invoice": inv.number, "currency": inv.currency,
                    "total_cents": note.total_cents, "invoice_status": inv.status.value,
                    "invoice_balance_cents": max(0, inv.balance_cents),
                    "balance_reduced_cents": off_balance,
                    "client_credit_cents": note.total_cents - off_balance}
    if args.json:
        emit_json(document)
    else:
        cur = document["currency"]
        parts = []
        if document["balance_reduced_cents"]:
            parts.append(f"{format_amount(document['balance_reduced_cents'], cur)} off the invoice's balance")
        if document["client_credit_cents"]:
            parts.append(f"{format_amount(document['client_credit_cents'], cur)} to the client's credit, "
                         "applied to the next invoice issued")
        print(f"Issued credit note {document['credit_note']} for {format_amount(document['total_cents'], cur)} "
              f"on {document['invoice']}: {' and '.join(parts)}. {document['invoice']}'s balance is now "
              f"{format_amount(document['invoice_balance_cents'], cur)} ({document['invoice_status']}).")
    return EXIT_OK


# --- payments ---------------------------------------------------------------

def cmd_payments_record(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.manual import OverpaymentError, record_payment

    with ctx.db.write_session() as session, session.begin():
        inv = _find(session, args.number)
        try:
            payment = record_payment(session, inv.id, args.amount, args.method, reference=args.reference or "",
                                     received_on=args.date, credit_excess=args.credit_excess)
        except OverpaymentError as exc:
            raise CliError(_overpayment_message(exc, inv.number, inv.currency)) from None
        document = {
            "payment_id": payment.id, "invoice": inv.number, "client_id": inv.client_id,
            "received_on": payment.received_on, "method": payment.method.value, "reference": payment.reference,
            "currency": payment.currency, "amount_cents": payment.amount_cents,
            "applied_cents": payment.applied_cents, "credit_cents": payment.amount_cents - payment.applied_cents,
            "invoice_status": inv.status.value, "invoice_balance_cents": inv.balance_cents,
            "method_label": payment.method.label}
    if args.json:
        emit_json(document)
        return EXIT_OK
    cur = document["currency"]
    how = document["method_label"] + (f", ref {document['reference']}" if document["reference"] else "")
    text = (f"Recorded a payment of {format_amount(document['amount_cents'], cur)} ({how}) on "
            f"{document['invoice']}, received {document['received_on'].isoformat()}")
    if document["credit_cents"]:
        text += f"; {format_amount(document['credit_cents'], cur)} kept as client credit"
    if document["invoice_status"] == "paid":
        text += f"; {document['invoice']} is paid in full."
    else:
        text += f"; {format_amount(document['invoice_balance_cents'], cur)} still due."
    print(text)
    return EXIT_OK


def _overpayment_message(exc: Any, number: str | None, currency: str) -> str:
    owed = (f"its balance is {format_amount(exc.balance_cents, currency)}" if exc.balance_cents
            else "it is already paid in full")
    return (f"{format_amount(exc.amount_cents, currency)} is more than {number} owes ({owed}), so nothing was "
            f"recorded. To record it and keep the excess of {format_amount(exc.excess_cents, currency)} as "
            "client credit for the next invoice, run the command again with --credit-excess.")


def cmd_payments_list(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.manual import list_payments

    month = parse_period(args.period) if args.period else None
    with ctx.db.session() as session:
        _check_client(session, args.client)
        rows = list_payments(session, client_id=args.client, month=month)
    if args.json:
        emit_json([{**dataclasses.asdict(r), "credit_cents": r.credit_cents,
                    "amount": format_amount(r.amount_cents, r.currency)} for r in rows])
        return EXIT_OK
    _print_table(["ID", "Received", "Client", "Invoice", "Method", "Reference", "Amount", "To credit", "Refunded"],
                 [[str(r.id), r.received_on.isoformat(), r.client_name, r.invoice_number or "", r.method_label, r.reference,
                   format_amount(r.amount_cents, r.currency),
                   format_amount(r.credit_cents, r.currency) if r.credit_cents else "",
                   format_amount(r.refunded_cents, r.currency) if r.refunded_cents else ""] for r in rows])
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.currency] = totals.get(r.currency, 0) + r.amount_cents
    tail = f"; {', '.join(format_amount(v, c) for c, v in totals.items())} received" if totals else ""
    print(f"\n{len(rows)} payment(s){tail}")
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
    cli_documents.add_client_document_commands(clients)
    cli_payments.add_client_payment_commands(clients)

    agreements = sub.add_parser("agreements", help="agreements").add_subparsers(dest="subcommand", required=True)
    al = agreements.add_parser("list", help="list agreements")
    al.add_argument("--all", action="store_true", help="include archived agreements")
    al.add_argument("--client", type=int, metavar="ID", help="only this client's agreements")
    al.add_argument("--json", action="store_true", help="print JSON")
    al.set_defaults(func=cmd_agreements_list)

    _add_invoice_commands(sub)
    _add_payment_commands(sub)
    cli_batch.add_batch_commands(sub)
    cli_collections.add_collections_commands(sub)
    cli_reports.add_report_commands(sub)
    cli_documents.add_mail_commands(sub)
    cli_documents.add_key_commands(sub)
    cli_imports.add_import_commands(sub)
    cli_exports.add_export_commands(sub)
    cli_backups.add_backup_commands(sub)
    cli_audit.add_audit_commands(sub)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="subcommand", required=True)
    up = db.add_parser("upgrade", help="back up the database and bring it to the current schema")
    up.add_argument("--json", action="store_true", help="print JSON")
    up.set_defaults(func=cmd_db_upgrade)
    cli_db.add_db_copy_command(db)
    from mspbill import cli_dbserver

    cli_dbserver.add_dbserver_commands(db)
    return parser


def _add_invoice_commands(sub: Any) -> None:
    invoices = sub.add_parser("invoices", help="generate, issue, list and correct invoices").add_subparsers(
        dest="subcommand", required=True)
    period_help = "the billing month, YYYY-MM (for example 2026-11)"

    gen = invoices.add_parser("generate", help="create the month's draft invoices from the agreements")
    gen.add_argument("--period", required=True, metavar="YYYY-MM", help=period_help)
    gen.add_argument("--dry-run", action="store_true",
                     help="show what would be created, who is left out and why, and the totals; write nothing")
    gen.add_argument("--json", action="store_true", help="print JSON")
    gen.set_defaults(func=cmd_invoices_generate)

    iss = invoices.add_parser("issue", help="issue the month's drafts: numbers, due dates, client credit")
    iss.add_argument("--period", required=True, metavar="YYYY-MM", help=period_help)
    iss.add_argument("--date", metavar="YYYY-MM-DD", help="issue date (default today)")
    iss.add_argument("--json", action="store_true", help="print JSON")
    iss.set_defaults(func=cmd_invoices_issue)

    ls = invoices.add_parser("list", help="list invoices and credit notes, newest first")
    ls.add_argument("--status", choices=["draft", "open", "paid", "void", "uncollectible", "unpaid"],
                    help="only invoices in this state (unpaid: open with a balance)")
    ls.add_argument("--client", type=int, metavar="ID", help="only this client's invoices")
    ls.add_argument("--period", metavar="YYYY-MM", help="only invoices billing this month")
    ls.add_argument("--overdue", action="store_true", help="only open invoices past their due date")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_invoices_list)

    show = invoices.add_parser("show", help="one invoice: lines, totals, payments, history")
    show.add_argument("number", nargs="?", metavar="NUMBER", help="the invoice number, for example INV-000123")
    show.add_argument("--id", type=int, metavar="ID", help="a draft (which has no number yet) by its id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_invoices_show)

    void = invoices.add_parser("void", help="void an issued invoice that nothing has been paid on")
    void.add_argument("number", metavar="NUMBER", help="the invoice number")
    void.add_argument("--reason", required=True, metavar="TEXT", help="why; kept with the invoice")
    void.add_argument("--json", action="store_true", help="print JSON")
    void.set_defaults(func=cmd_invoices_void)

    credit = invoices.add_parser("credit", help="issue a credit note against an invoice")
    credit.add_argument("number", metavar="NUMBER", help="the invoice number")
    credit.add_argument("--reason", required=True, metavar="TEXT", help="why; printed on the credit note")
    credit.add_argument("--amount", metavar="AMOUNT",
                        help="amount before tax (default: the whole invoice); its tax is credited too")
    credit.add_argument("--json", action="store_true", help="print JSON")
    credit.set_defaults(func=cmd_invoices_credit)

    cli_documents.add_invoice_document_commands(invoices)


def _add_payment_commands(sub: Any) -> None:
    payments = sub.add_parser(
        "payments", help="payments: record by hand, charge and refund through Stripe").add_subparsers(
        dest="subcommand", required=True)
    rec = payments.add_parser("record", help="record a check, cash, wire or ACH payment against an invoice")
    rec.add_argument("number", metavar="NUMBER", help="the invoice number, for example INV-000123")
    rec.add_argument("--amount", required=True, metavar="AMOUNT", help="the amount received, for example 1250.00")
    rec.add_argument("--method", required=True, metavar="METHOD", help="check, cash, wire, ach or other")
    rec.add_argument("--reference", metavar="R", help="check number, wire reference ...")
    rec.add_argument("--date", metavar="YYYY-MM-DD", help="date received (default today)")
    rec.add_argument("--credit-excess", action="store_true",
                     help="if the amount is more than the balance, keep the excess as client credit")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(func=cmd_payments_record)

    ls = payments.add_parser("list", help="list payments received, newest first")
    ls.add_argument("--client", type=int, metavar="ID", help="only this client's payments")
    ls.add_argument("--period", metavar="YYYY-MM", help="only payments received in this month")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_payments_list)
    cli_payments.add_processor_commands(payments)


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
    paths_only: Callable[[AppPaths, argparse.Namespace], int] | None = getattr(args, "paths_only", None)
    if paths_only is not None:
        # A command that must not open the database first (restore: the database may be the damaged thing).
        return paths_only(prepare_paths(args.data_dir), args)
    func: Callable[[AppContext, argparse.Namespace], int] = args.func
    try:
        ctx = open_context(args.data_dir, args.db)
    except DatabaseOpenError as exc:
        print(f"mspbill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return func(ctx, args)
    except ValidationError as exc:
        # The messages are sentences for a person; the field names are the program's.
        messages = [issue.message for issue in exc.issues] or [str(exc)]
        if len(messages) == 1:
            print(f"mspbill: {messages[0]}", file=sys.stderr)
        else:
            print(f"mspbill: {len(messages)} problems:", file=sys.stderr)
            for message in messages:
                print(f"  - {message}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, *cli_payments.CLI_ERRORS, cli_documents.DocumentCliError, MailError, DemoRefusedError, NotFoundError, KeyringUnavailableError, DatabaseOpenError, PeriodError,
            ConcurrentGenerationError) as exc:
        print(f"mspbill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        from mspbill.db.server import explain

        # The office's database server went away mid-command, or another workstation held it too long.
        sentence = explain(exc, ctx.db.url, midway=True)
        if sentence is not None:
            log.warning("command %s stopped: %s", args.command, exc)
            print(f"mspbill: {sentence}", file=sys.stderr)
            return EXIT_ERROR
        log.exception("command %s failed", args.command)
        print(f"mspbill: an unexpected error stopped the command; details are in {ctx.paths.log_file}",
              file=sys.stderr)
        return EXIT_ERROR
    finally:
        ctx.close()
