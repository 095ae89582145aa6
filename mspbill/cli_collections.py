"""Command line for collections: payment reminders and late fees.

`mspbill collections run` is what a scheduled task calls (the app runs the same pass at
start and every hour); running it as often as anyone likes sends each reminder step and
assesses each fee at most once.  The other commands list and waive fees, pause a client's
reminders, show an invoice's reminders, and read or change the settings.

--json prints one JSON document on stdout and nothing else there.  Errors: one sentence
(or every problem of a form, listed) on standard error, exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mspbill.cli_documents import EXIT_OK
from mspbill.cli_output import emit_json as _emit
from mspbill.cli_output import print_table as _table
from mspbill.cli_output import sentence_errors
from mspbill.context import AppContext
from mspbill.money import format_amount, format_decimal, from_minor

if TYPE_CHECKING:
    from mspbill.collections.late_fees import DueFee, FeeRow, SkippedFee
    from mspbill.collections.reminders import DueReminder, Skipped
    from mspbill.collections.run import CollectionsPlan, CollectionsReport
    from mspbill.collections.settings import CollectionPolicy

FEE_STATUSES = ("pending", "billed", "waived")


class CollectionsCliError(RuntimeError):
    """A sentence for the person at the terminal; nothing was done (exit code 2)."""


# CollectionsCliError: one sentence, exit 2 (cli.main handles ValidationError and the rest).
_handled = sentence_errors(CollectionsCliError)


def parse_today(text: str | None, computer_today: dt.date | None = None) -> dt.date:
    """The day the pass is for: the computer's date, or an earlier day given as YYYY-MM-DD (catching up)."""
    computer_today = computer_today or dt.date.today()
    cleaned = (text or "").strip()
    if not cleaned:
        return computer_today
    try:
        if len(cleaned) != 10:
            raise ValueError(cleaned)
        day = dt.date.fromisoformat(cleaned)
    except ValueError:
        raise CollectionsCliError(f"{cleaned[:40]!r} is not a date; write it as YYYY-MM-DD, for example "
                                  f"{computer_today.isoformat()}.") from None
    if day > computer_today:
        raise CollectionsCliError(f"{day.isoformat()} is after today ({computer_today.isoformat()}); reminders "
                                  "and fees are only worked out for today or an earlier day.")
    if day.year < 2000:
        raise CollectionsCliError(f"{day.isoformat()} is before 2000; check the year.")
    return day


def _money(cents: int, currency: str) -> str:
    return format_amount(cents, currency)


def _totals_text(by_currency: dict[str, int]) -> str:
    return ", ".join(_money(v, c) for c, v in sorted(by_currency.items())) or "-"


# --- run -----------------------------------------------------------------------------------


def _candidate_json(c: Any) -> dict[str, Any]:
    return {"invoice_id": c.invoice_id, "invoice": c.number, "client_id": c.client_id, "client_name": c.client_name,
            "due_date": c.due_date, "balance_cents": c.balance_cents, "currency": c.currency,
            "balance": _money(c.balance_cents, c.currency)}


def _reminder_json(d: DueReminder) -> dict[str, Any]:
    return {**_candidate_json(d.candidate), "offset_days": d.step.offset_days, "step": d.step.label,
            "step_on": d.step_on}


def _skipped_json(s: Skipped | SkippedFee) -> dict[str, Any]:
    return {**_candidate_json(s.candidate), "reason": s.reason}


def _fee_json(f: DueFee) -> dict[str, Any]:
    c = f.candidate
    return {**_candidate_json(c), "sequence": f.sequence, "days_overdue": f.days_overdue,
            "amount_cents": f.amount_cents, "amount": _money(f.amount_cents, c.currency),
            "description": f.description}


def report_json(report: CollectionsReport) -> dict[str, Any]:
    r, f = report.reminders, report.fees
    return {
        "today": report.today, "dry_run": False, "changed": report.changed, "lines": report.lines(),
        "reminders": {"enabled": r.enabled, "mail_configured": not r.not_configured,
                      "queued": [_reminder_json(d) for d in r.queued],
                      "skipped": [_skipped_json(s) for s in r.skipped],
                      "withdrawn": r.withdrawn, "already": r.already},
        "fees": {"enabled": f.enabled, "assessed": [_fee_json(d) for d in f.assessed],
                 "own_invoices": f.own_invoices, "pending": f.pending,
                 "skipped": [_skipped_json(s) for s in f.skipped], "already": f.already},
    }


def plan_lines(plan: CollectionsPlan, mail_ready: bool) -> list[str]:
    out: list[str] = []
    r, f = plan.reminders, plan.fees
    if not r.enabled:
        out.append("Reminders are off (Settings → Collections).")
    else:
        n = len(r.due)
        if n and not mail_ready:
            out.append(f"E-mail is not set up, so none of the {n} reminder{'s' if n != 1 else ''} due would be "
                       "queued (Settings → E-mail).")
        elif n:
            out.append(f"{n} reminder{'s' if n != 1 else ''} would be queued:")
        for reminder in r.due:
            c = reminder.candidate
            out.append(f"  {c.number} ({c.client_name}): {reminder.step.label.lower()}, "
                       f"{_money(c.balance_cents, c.currency)} open")
        for skipped in r.skipped:
            out.append(f"Not sent: {skipped.candidate.number} ({skipped.candidate.client_name}): {skipped.reason}")
    if f.enabled:
        if f.due:
            out.append(f"{len(f.due)} late fee{'s' if len(f.due) != 1 else ''} would be assessed:")
        for fee in f.due:
            c = fee.candidate
            out.append(f"  {c.number} ({c.client_name}): {_money(fee.amount_cents, c.currency)} — {fee.description}")
        for no_fee in f.skipped:
            out.append(f"No late fee on {no_fee.candidate.number} ({no_fee.candidate.client_name}): {no_fee.reason}")
    return out or ["Nothing to follow up today."]


def plan_json(plan: CollectionsPlan, mail_ready: bool) -> dict[str, Any]:
    r, f = plan.reminders, plan.fees
    return {
        "today": plan.today, "dry_run": True, "changed": False, "lines": plan_lines(plan, mail_ready),
        "reminders": {"enabled": r.enabled, "mail_configured": mail_ready,
                      "due": [_reminder_json(d) for d in r.due], "skipped": [_skipped_json(s) for s in r.skipped]},
        "fees": {"enabled": f.enabled, "due": [_fee_json(d) for d in f.due],
                 "skipped": [_skipped_json(s) for s in f.skipped]},
    }


@_handled
def cmd_collections_run(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.run import plan_collections, run_collections

    today = parse_today(args.today)
    if args.dry_run:
        from mspbill.mail.settings import is_configured

        plan = plan_collections(ctx.db, today)
        with ctx.db.session() as s:
            mail_ready = is_configured(s)
        if args.json:
            _emit(plan_json(plan, mail_ready))
        else:
            print(f"Collections for {today.isoformat()} (dry run; nothing was queued or assessed):")
            for text in plan_lines(plan, mail_ready):
                print(text)
        return EXIT_OK
    report = run_collections(ctx.db, today)
    if args.json:
        _emit(report_json(report))
        return EXIT_OK
    print(f"Collections for {today.isoformat()}:")
    for text in report.lines():
        print(text)
    if report.reminders.queued or report.fees.own_invoices:
        print("The outbox sends the e-mails (`mspbill outbox send`, or the app).")
    return EXIT_OK


# --- fees ----------------------------------------------------------------------------------


def fee_row_json(r: FeeRow) -> dict[str, Any]:
    return {"id": r.id, "invoice_id": r.invoice_id, "invoice": r.invoice_number, "client_id": r.client_id,
            "client_name": r.client_name, "assessed_on": r.assessed_on, "days_overdue": r.days_overdue,
            "amount_cents": r.amount_cents, "currency": r.currency, "amount": _money(r.amount_cents, r.currency),
            "description": r.description, "status": r.status, "where": r.where,
            "billed_invoice_id": r.billed_invoice_id, "waive_reason": r.waive_reason}


def _print_fees(rows: Sequence[FeeRow]) -> None:
    _table(["ID", "Invoice", "Client", "Assessed", "Days overdue", "Amount", "Status", "Where"],
           [[str(r.id), r.invoice_number, r.client_name, r.assessed_on.isoformat(), str(r.days_overdue),
             _money(r.amount_cents, r.currency), r.status, r.where] for r in rows])


def _require_client(session: Any, client_id: int) -> None:
    from mspbill.db.models import Client

    if session.get(Client, client_id) is None:
        raise CollectionsCliError(f"There is no client {client_id}; `mspbill clients list` shows their ids.")


@_handled
def cmd_collections_fees(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.late_fees import fee_totals, list_fees

    with ctx.db.session() as s:
        if args.client is not None:
            _require_client(s, args.client)
        rows = list_fees(s, status=args.status, client_id=args.client)
    totals = fee_totals(rows)
    if args.json:
        _emit({"status": args.status, "client_id": args.client, "fees": [fee_row_json(r) for r in rows],
               "totals": {status: {"count": sum(1 for r in rows if r.status == status),
                                   "cents": totals.get(status, {}),
                                   "text": _totals_text(totals.get(status, {}))}
                          for status in FEE_STATUSES if args.status in (None, status)}})
        return EXIT_OK
    if not rows:
        what = f"{args.status} " if args.status else ""
        print(f"No {what}late fees" + (f" for client {args.client}." if args.client is not None else "."))
        return EXIT_OK
    _print_fees(rows)
    print()
    for status in FEE_STATUSES:
        count = sum(1 for r in rows if r.status == status)
        if count:
            print(f"{status.capitalize()}: {count} ({_totals_text(totals.get(status, {}))})")
    return EXIT_OK


@_handled
def cmd_collections_waive(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.late_fees import list_fees, waive_fee

    with ctx.db.write_session() as s, s.begin():
        fee = waive_fee(s, args.fee_id, args.reason, today=dt.date.today())
        invoice_id, fee_id = fee.invoice_id, fee.id
    with ctx.db.session() as s:
        row = next(r for r in list_fees(s, invoice_id=invoice_id) if r.id == fee_id)
        note = None
        from mspbill.db.models import Invoice, LateFee

        stored = s.get(LateFee, fee_id)
        if stored is not None and stored.waive_credit_note_id is not None:
            credit = s.get(Invoice, stored.waive_credit_note_id)
            note = credit.number if credit is not None else None
    if args.json:
        _emit({"fee": fee_row_json(row), "credit_note": note})
        return EXIT_OK
    print(f"Waived late fee {row.id} ({_money(row.amount_cents, row.currency)} on {row.invoice_number}, "
          f"{row.client_name}): {row.waive_reason}"
          + (f". Credit note {note} takes it off the invoice." if note else "."))
    return EXIT_OK


# --- pause / resume ------------------------------------------------------------------------


def _set_paused(ctx: AppContext, args: argparse.Namespace, paused: bool) -> int:
    from mspbill.collections.reminders import set_reminders_paused

    with ctx.db.write_session() as s, s.begin():
        _require_client(s, args.client_id)
        client = set_reminders_paused(s, args.client_id, paused, getattr(args, "note", None) or "")
        name, note = client.legal_name, client.reminders_pause_note
    if args.json:
        _emit({"client_id": args.client_id, "client_name": name, "reminders_paused": paused, "note": note})
    elif paused:
        print(f"Reminders paused for {name}" + (f" ({note})" if note else "")
              + "; reminders waiting in the outbox were withdrawn.")
    else:
        print(f"Reminders resumed for {name}: the next pass sends only the latest step due, not the ones missed.")
    return EXIT_OK


@_handled
def cmd_collections_pause(ctx: AppContext, args: argparse.Namespace) -> int:
    return _set_paused(ctx, args, True)


@_handled
def cmd_collections_resume(ctx: AppContext, args: argparse.Namespace) -> int:
    return _set_paused(ctx, args, False)


# --- one invoice ---------------------------------------------------------------------------


@_handled
def cmd_collections_invoice(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.late_fees import list_fees
    from mspbill.collections.reminders import invoice_reminders
    from mspbill.invoicing import find_invoice

    today = parse_today(args.today)
    with ctx.db.session() as s:
        inv = find_invoice(s, args.number)
        number, invoice_id, client = inv.number or "", inv.id, inv.client.legal_name
        reminders = invoice_reminders(s, invoice_id, today)
        fees = list_fees(s, invoice_id=invoice_id)
    if args.json:
        _emit({"invoice": number, "invoice_id": invoice_id, "client_name": client, "today": today,
               "summary": reminders.summary,
               "reminders": [{"label": r.label, "step_on": r.step_on, "status": r.status, "detail": r.detail,
                              "offset_days": r.offset_days} for r in reminders.rows],
               "fees": [fee_row_json(r) for r in fees]})
        return EXIT_OK
    print(f"{number} ({client})")
    print(reminders.summary)
    if reminders.rows:
        print("\nReminders:")
        _table(["Step", "On", "Status", "Detail"],
               [[r.label, r.step_on.isoformat(), r.status, r.detail] for r in reminders.rows])
    if fees:
        print("\nLate fees:")
        _print_fees(fees)
    else:
        print("\nNo late fees on this invoice.")
    return EXIT_OK


# --- settings ------------------------------------------------------------------------------


def _currency(session: Any) -> str:
    from mspbill.db.models import CompanyProfile

    company = session.get(CompanyProfile, 1)
    return company.currency if company else "USD"


def settings_json(policy: CollectionPolicy, currency: str) -> dict[str, Any]:
    fees = policy.fees
    return {
        "reminders_enabled": policy.reminders_enabled,
        "steps": [{"offset_days": st.offset_days, "label": st.label, "subject": st.subject, "body": st.body}
                  for st in policy.steps],
        "late_fees": {"enabled": fees.enabled, "kind": fees.kind.value, "flat_cents": fees.flat_cents,
                      "flat": _money(fees.flat_cents, currency), "percent": format_decimal(fees.percent),
                      "after_days": fees.after_days, "repeat": fees.repeat.value, "placement": fees.placement.value,
                      "min_balance_cents": fees.min_balance_cents,
                      "min_balance": _money(fees.min_balance_cents, currency), "currency": currency,
                      "description": fees.describe(currency)},
    }


def print_settings(policy: CollectionPolicy, currency: str) -> None:
    print(f"Reminders: {'on' if policy.reminders_enabled else 'off'}")
    if policy.steps:
        _table(["Day", "Step", "Subject"], [[f"{st.offset_days:+d}" if st.offset_days else "0", st.label, st.subject]
                                            for st in policy.steps])
    else:
        print("No reminder steps.")
    print(f"\nLate fees: {policy.fees.describe(currency)}")


@_handled
def cmd_collections_settings(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.settings import collection_policy

    with ctx.db.session() as s:
        policy, currency = collection_policy(s), _currency(s)
    if args.json:
        _emit(settings_json(policy, currency))
    else:
        print_settings(policy, currency)
    return EXIT_OK


@_handled
def cmd_collections_set_fees(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.settings import (
        LateFeeDraft,
        collection_policy,
        save_late_fees,
    )

    with ctx.db.write_session() as s, s.begin():
        currency = _currency(s)
        now = collection_policy(s).fees
        # What is not given stays as it is.
        draft = LateFeeDraft(
            enabled=now.enabled if args.enabled is None else args.enabled,
            kind=args.kind if args.kind is not None else now.kind.value,
            flat_amount=args.amount if args.amount is not None else f"{from_minor(now.flat_cents, currency):f}",
            percent=args.percent if args.percent is not None else format_decimal(now.percent),
            after_days=args.after_days if args.after_days is not None else now.after_days,
            repeat=args.repeat if args.repeat is not None else now.repeat.value,
            placement=args.placement if args.placement is not None else now.placement.value,
            min_balance=(args.min_balance if args.min_balance is not None
                         else f"{from_minor(now.min_balance_cents, currency):f}"))
        save_late_fees(s, draft)
        policy = collection_policy(s)
    if args.json:
        _emit(settings_json(policy, currency))
    else:
        print(f"Late fees: {policy.fees.describe(currency)}")
    return EXIT_OK


@_handled
def cmd_collections_set_reminders(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.collections.settings import (
        StepDraft,
        collection_policy,
        save_reminders,
    )

    with ctx.db.write_session() as s, s.begin():
        steps = collection_policy(s).steps
        save_reminders(s, args.on, [StepDraft(st.offset_days, st.subject, st.body) for st in steps])
        policy, currency = collection_policy(s), _currency(s)
    if args.json:
        _emit(settings_json(policy, currency))
    elif policy.reminders_enabled:
        print("Reminders are on: " + (", ".join(st.label.lower() for st in policy.steps) or "no steps") + ".")
    else:
        print("Reminders are off; reminders already in the outbox still go unless withdrawn.")
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------


def add_collections_commands(sub: Any) -> None:
    col = sub.add_parser(
        "collections", help="payment reminders and late fees: run the day's pass, list and waive fees, "
                            "pause a client's reminders, settings").add_subparsers(dest="subcommand", required=True)

    run = col.add_parser(
        "run", help="queue the reminders due today and assess today's late fees (for a scheduled task)",
        description="One pass of collections: queue each reminder step due today in the outbox and assess the "
                    "late fees due today. Safe to run as often as you like: each step and each fee is taken at "
                    "most once per invoice.")
    run.add_argument("--dry-run", action="store_true", help="show what would be queued and assessed; change nothing")
    run.add_argument("--json", action="store_true", help="print JSON")
    run.add_argument("--today", metavar="YYYY-MM-DD", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_collections_run)

    fees = col.add_parser("fees", help="the late fees assessed, with totals per status")
    fees.add_argument("--status", choices=FEE_STATUSES, help="only fees in this state")
    fees.add_argument("--client", type=int, metavar="ID", help="only this client's fees")
    fees.add_argument("--json", action="store_true", help="print JSON")
    fees.set_defaults(func=cmd_collections_fees)

    waive = col.add_parser("waive", help="waive a late fee (a billed one through a credit note)")
    waive.add_argument("fee_id", type=int, metavar="FEE_ID", help="the fee's id from `mspbill collections fees`")
    waive.add_argument("--reason", required=True, metavar="TEXT", help="why; kept with the invoice")
    waive.add_argument("--json", action="store_true", help="print JSON")
    waive.set_defaults(func=cmd_collections_waive)

    pause = col.add_parser("pause", help="stop reminders for a client (those waiting in the outbox are withdrawn)")
    pause.add_argument("client_id", type=int, metavar="CLIENT_ID")
    pause.add_argument("--note", metavar="TEXT", help="why, shown with the client's invoices")
    pause.add_argument("--json", action="store_true", help="print JSON")
    pause.set_defaults(func=cmd_collections_pause)

    resume = col.add_parser("resume", help="send a client's reminders again (only the latest step due)")
    resume.add_argument("client_id", type=int, metavar="CLIENT_ID")
    resume.add_argument("--json", action="store_true", help="print JSON")
    resume.set_defaults(func=cmd_collections_resume)

    inv = col.add_parser("invoice", help="an invoice's reminders (sent, waiting, to come) and its late fees")
    inv.add_argument("number", metavar="NUMBER", help="the invoice number, for example INV-000123")
    inv.add_argument("--json", action="store_true", help="print JSON")
    inv.add_argument("--today", metavar="YYYY-MM-DD", help=argparse.SUPPRESS)
    inv.set_defaults(func=cmd_collections_invoice)

    st = col.add_parser("settings", help="the reminder schedule and the late-fee policy")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_collections_settings)

    sf = col.add_parser("set-fees", help="change the late-fee policy (what is not given stays as it is)")
    on_off = sf.add_mutually_exclusive_group()
    on_off.add_argument("--enabled", dest="enabled", action="store_const", const=True, default=None,
                        help="charge late fees")
    on_off.add_argument("--disabled", dest="enabled", action="store_const", const=False, help="no late fees")
    sf.add_argument("--kind", metavar="flat|percent", help="a flat amount, or a percentage of the overdue balance")
    sf.add_argument("--amount", metavar="X", help="the flat fee, for example 25.00 (company currency)")
    sf.add_argument("--percent", metavar="P", help="the percentage of the overdue balance, for example 1.5")
    sf.add_argument("--after-days", metavar="N", help="days past the due date before a fee")
    sf.add_argument("--repeat", metavar="once|monthly", help="one fee per invoice, or another each month unpaid")
    sf.add_argument("--placement", metavar="next_invoice|own_invoice",
                    help="a line on the client's next invoice, or an invoice of its own")
    sf.add_argument("--min-balance", metavar="X", help="no fee on an overdue balance under this")
    sf.add_argument("--json", action="store_true", help="print the settings as JSON")
    sf.set_defaults(func=cmd_collections_set_fees)

    sr = col.add_parser("set-reminders", help="turn payment reminders on or off (the schedule stays)")
    which = sr.add_mutually_exclusive_group(required=True)
    which.add_argument("--on", dest="on", action="store_const", const=True, help="send reminders")
    which.add_argument("--off", dest="on", action="store_const", const=False, help="send no reminders")
    sr.add_argument("--json", action="store_true", help="print the settings as JSON")
    sr.set_defaults(func=cmd_collections_set_reminders)
