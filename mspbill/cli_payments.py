"""Command line for the payment processor: the Stripe key, payment methods on file,
charging one invoice, refunds and finding out about unsettled charges.

`mspbill keys set stripe` reads the key from a prompt that does not echo, or
from standard input -- never from an argument, which would land in the shell's
history and the process list.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mspbill.cli_documents import EXIT_ERROR, EXIT_OK
from mspbill.context import AppContext
from mspbill.money import format_amount
from mspbill.payments.gateway import KeyProblem, ProcessorError


class PaymentsCliError(RuntimeError):
    """A sentence for the person at the terminal; exit code 2."""


def _gateway(ctx: AppContext) -> Any:
    from mspbill.payments.processor import open_gateway

    return open_gateway(ctx.db, ctx.paths.data_dir)


def _emit(document: Any) -> None:
    from mspbill.cli import emit_json

    emit_json(document)


def _confirm_live(gateway: Any, what: str, yes: bool) -> None:
    """Live mode moves real money: ask, unless --yes (a scheduled task that was set up on purpose)."""
    if not gateway.mode.moves_money or yes:
        return
    if sys.stdin is None or not sys.stdin.isatty():
        raise PaymentsCliError(f"This would {what} in Stripe LIVE mode (real money). Run it at a terminal to "
                               "confirm, or add --yes.")
    answer = input(f"Stripe LIVE mode: this will {what} with real money. Type LIVE to go on: ")
    if answer.strip() != "LIVE":
        raise PaymentsCliError("Nothing was done.")


# --- keys -------------------------------------------------------------------------


def cmd_keys_set_stripe() -> int:
    from mspbill.cli_documents import _read_secret
    from mspbill.payments.processor import save_stripe_key

    text = _read_secret("Stripe secret key")
    try:
        status = save_stripe_key(text)
    except KeyProblem as exc:
        raise PaymentsCliError(str(exc)) from None
    print(f"Saved the Stripe secret key {status.masked} ({status.mode.label if status.mode else ''}"
          f"{', restricted' if status.restricted else ''}) in {status.keyring}.")
    return EXIT_OK


def stripe_status_lines() -> list[str]:
    from mspbill.payments.processor import stripe_key_status

    status = stripe_key_status()
    if status.problem:
        return [f"Stripe secret key: unknown ({status.problem})"]
    if not status.saved:
        return ["Stripe secret key: not saved"]
    mode = status.mode.label if status.mode else ""
    return [f"Stripe secret key: saved, {status.masked} ({mode}{', restricted' if status.restricted else ''})"]


# --- processor --------------------------------------------------------------------


def cmd_payments_use(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.processor import (
        PaymentSettingsDraft,
        save_settings,
        settings_draft,
    )

    with ctx.db.write_session() as s, s.begin():
        draft = settings_draft(s)
        save_settings(s, PaymentSettingsDraft(args.processor, draft.setup_success_url, draft.setup_link_hours))
    texts = {"stripe": "Payments now go through Stripe (the key saved on each computer says test or live).",
             "sandbox": "Payments now go through the sandbox: simulated, no money moves.",
             "none": "Payments through a processor are off; record payments by hand."}
    print(texts[args.processor])
    return EXIT_OK


def cmd_payments_test(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.processor import check_connection

    gateway = _gateway(ctx)
    report = check_connection(ctx.db, gateway)
    info = report.info
    if args.json:
        _emit({"mode": info.mode.value, "account_id": info.account_id, "name": info.display_name,
               "restricted_key": info.restricted_key, "country": info.country,
               "default_currency": info.default_currency, "warning": report.warning})
        return EXIT_OK
    who = " ".join(x for x in (info.display_name, f"({info.account_id})" if info.account_id else "") if x)
    print(f"Connected to {info.mode.label}{': ' + who if who else ''}.")
    if report.warning:
        print(f"Warning: {report.warning}")
    return EXIT_OK


# --- clients' payment methods ---------------------------------------------------------


def cmd_clients_methods(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.methods import (
        payment_profile,
        poll_setup_links,
        refresh_methods,
    )
    from mspbill.payments.processor import current_mode

    if args.refresh:
        gateway = _gateway(ctx)
        poll_setup_links(ctx.db, gateway, client_id=args.client)
        refresh_methods(ctx.db, gateway, args.client)
    with ctx.db.session() as s:
        profile = payment_profile(s, args.client, current_mode(ctx.db))
    if args.json:
        _emit({"client_id": profile.client_id, "mode": profile.mode.value if profile.mode else None,
               "customer_id": profile.customer_id, "autopay": profile.autopay,
               "methods": [{"id": m.id, "label": m.label, "kind": m.kind, "expiry": m.expiry,
                            "default": m.is_default, "usable": m.usable,
                            "expires_before_next_run": m.expires_before_next_run} for m in profile.methods],
               "open_setup_link": profile.open_link.url if profile.open_link else None,
               "warnings": profile.warnings})
        return EXIT_OK
    print(f"{profile.client_name} — {profile.mode.label if profile.mode else 'no processor'}"
          + (f", customer {profile.customer_id}" if profile.customer_id else ""))
    if not profile.methods:
        print("No card or bank account on file.")
    for m in profile.methods:
        flags = [f for f, on in (("default", m.is_default), ("EXPIRED", m.expired),
                                 ("expires before the next run", m.expires_before_next_run and not m.expired),
                                 ("declined for good", m.hard_declined)) if on]
        print(f"  [{m.id}] {m.label}{'  exp ' + m.expiry if m.expiry else ''}"
              + (f"  ({', '.join(flags)})" if flags else ""))
    if profile.open_link:
        print(f"Open setup link (until {profile.open_link.expires_at:%Y-%m-%d %H:%M} UTC): {profile.open_link.url}")
    for w in profile.warnings:
        print(f"Note: {w}")
    return EXIT_OK


def cmd_clients_setup_link(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.methods import create_setup_link, queue_setup_link_email

    gateway = _gateway(ctx)
    link = create_setup_link(ctx.db, gateway, args.client)
    queued = None
    if args.email:
        with ctx.db.write_session() as s, s.begin():
            queued = queue_setup_link_email(s, link.link_id)
    if args.json:
        _emit({"link_id": link.link_id, "url": link.url, "expires_at": link.expires_at.isoformat(),
               "customer_id": link.customer_id, "mode": gateway.mode.value, "outbox_id": queued})
        return EXIT_OK
    print(link.url)
    print(f"({gateway.mode.label}; usable until {link.expires_at:%Y-%m-%d %H:%M} UTC"
          + ("; e-mail queued in the outbox: `mspbill outbox send`" if queued else "") + ")", file=sys.stderr)
    return EXIT_OK


def cmd_clients_link_customer(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.methods import find_existing_customers, link_existing_customer

    gateway = _gateway(ctx)
    if not args.customer:
        choices = find_existing_customers(ctx.db, gateway, args.client)
        if args.json:
            _emit([{"customer_id": c.customer_id, "name": c.name, "email": c.email,
                    "default_method": c.default_method_label, "methods": c.method_count,
                    "linked_to": c.linked_to_client} for c in choices])
            return EXIT_OK
        if not choices:
            print("No customer in Stripe has this client's billing e-mail address.")
        for c in choices:
            print(f"{c.customer_id}  {c.name or '(no name)'}  <{c.email}>  "
                  f"{c.default_method_label or 'no method'}"
                  + (f"  (linked to {c.linked_to_client})" if c.linked_to_client else ""))
        if choices:
            print("Link one with: mspbill clients link-customer "
                  f"{args.client} CUSTOMER_ID", file=sys.stderr)
        return EXIT_OK
    result = link_existing_customer(ctx.db, gateway, args.client, args.customer)
    if args.json:
        _emit({"customer_id": result.customer_id, "default_method": result.default_label,
               "methods": result.methods_found, "replaced": result.replaced_customer})
        return EXIT_OK
    print(f"Linked {result.customer_id}; "
          + (f"default method: {result.default_label}." if result.default_label
             else "it has no card or bank account yet: send a setup link."))
    return EXIT_OK


def cmd_clients_remove_method(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.methods import remove_method

    print(remove_method(ctx.db, _gateway(ctx), args.method) + ".")
    return EXIT_OK


# --- charges and refunds ------------------------------------------------------------


def _outcome_document(outcome: Any) -> dict[str, Any]:
    return {"attempt_id": outcome.attempt_id, "status": outcome.status.value, "invoice": outcome.invoice_number,
            "amount_cents": outcome.amount_cents, "currency": outcome.currency, "method": outcome.method_label,
            "mode": outcome.mode.value, "payment_id": outcome.payment_id, "intent_id": outcome.intent_id,
            "hard_decline": outcome.hard_decline, "message": outcome.message}


def cmd_payments_charge(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.db.models import ChargeAttemptStatus
    from mspbill.invoicing import find_invoice
    from mspbill.payments.charges import charge_invoice, plan_charge
    from mspbill.validation import Issue, ValidationError

    gateway = _gateway(ctx)
    with ctx.db.session() as s:
        inv = find_invoice(s, args.number)
        plan = plan_charge(s, inv.id, gateway.mode)
    if plan.problems:
        raise ValidationError([Issue("charge", p) for p in plan.problems])
    if plan.over_cap and not args.approve_over_cap:
        raise PaymentsCliError(f"{plan.amount_text} is above {plan.client_name}'s autopay cap of "
                               f"{format_amount(plan.cap_cents or 0, plan.currency)}; nothing was charged. "
                               "To charge it anyway, add --approve-over-cap.")
    _confirm_live(gateway, f"charge {plan.amount_text} to {plan.method_label} for {plan.invoice_number}", args.yes)
    outcome = charge_invoice(ctx.db, gateway, plan.invoice_id, approve_over_cap=args.approve_over_cap)
    if args.json:
        _emit(_outcome_document(outcome))
    else:
        print(f"[{outcome.mode.label}] {outcome.message}")
    return EXIT_OK if outcome.status in (ChargeAttemptStatus.SUCCEEDED, ChargeAttemptStatus.PROCESSING) \
        else EXIT_ERROR


def cmd_payments_refund(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.db.models import RefundStatus
    from mspbill.payments.refunds import plan_refund, refund_payment
    from mspbill.validation import Issue, ValidationError

    gateway = _gateway(ctx)
    with ctx.db.session() as s:
        plan = plan_refund(s, args.payment)
    if plan.problems:
        raise ValidationError([Issue("payment", p) for p in plan.problems])
    what = format_amount(plan.refundable_cents, plan.currency) if not args.amount else args.amount
    _confirm_live(gateway, f"refund {what} to {plan.client_name}", args.yes)
    outcome = refund_payment(ctx.db, gateway, args.payment, amount=args.amount, reason=args.reason,
                             credit_note=not args.still_owed)
    if args.json:
        _emit({"refund_id": outcome.refund_row_id, "status": outcome.status.value,
               "amount_cents": outcome.amount_cents, "currency": outcome.currency,
               "credit_note": outcome.credit_note_number, "message": outcome.message})
    else:
        print(f"[{gateway.mode.label}] {outcome.message}")
    return EXIT_OK if outcome.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING) else EXIT_ERROR


def cmd_payments_sync(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.payments.sync import sync_all

    report = sync_all(ctx.db, _gateway(ctx))
    if args.json:
        _emit(report.as_dict())
    else:
        for line in report.lines():
            print(line)
    return EXIT_ERROR if report.errors else EXIT_OK


# --- parser -------------------------------------------------------------------------


def add_client_payment_commands(clients: Any) -> None:
    m = clients.add_parser("methods", help="a client's cards and bank accounts on file, and warnings")
    m.add_argument("client", type=int, metavar="CLIENT_ID")
    m.add_argument("--refresh", action="store_true", help="ask the processor first (setup links, expiry dates)")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_clients_methods)
    sl = clients.add_parser("setup-link", help="a payment setup link for the client to save a card or bank account")
    sl.add_argument("client", type=int, metavar="CLIENT_ID")
    sl.add_argument("--email", action="store_true", help="also e-mail it to the client (through the outbox)")
    sl.add_argument("--json", action="store_true", help="print JSON")
    sl.set_defaults(func=cmd_clients_setup_link)
    lc = clients.add_parser("link-customer",
                            help="link an existing Stripe customer (without CUSTOMER_ID: find them by e-mail)")
    lc.add_argument("client", type=int, metavar="CLIENT_ID")
    lc.add_argument("customer", nargs="?", metavar="CUSTOMER_ID", help="cus_…")
    lc.add_argument("--json", action="store_true", help="print JSON")
    lc.set_defaults(func=cmd_clients_link_customer)
    rm = clients.add_parser("remove-method", help="remove a card or bank account from file (and from Stripe)")
    rm.add_argument("method", type=int, metavar="METHOD_ID", help="the [id] shown by `mspbill clients methods`")
    rm.set_defaults(func=cmd_clients_remove_method)


def add_processor_commands(payments: Any) -> None:
    use = payments.add_parser("use", help="choose how the office takes payments: stripe, sandbox or none")
    use.add_argument("processor", choices=["stripe", "sandbox", "none"])
    use.set_defaults(func=cmd_payments_use)
    test = payments.add_parser("test", help="check the Stripe key and the connection (Test connection)")
    test.add_argument("--json", action="store_true", help="print JSON")
    test.set_defaults(func=cmd_payments_test)
    ch = payments.add_parser("charge", help="charge an invoice's balance to the client's card or bank account now")
    ch.add_argument("number", metavar="NUMBER", help="the invoice number")
    ch.add_argument("--approve-over-cap", action="store_true", help="charge even above the client's autopay cap")
    ch.add_argument("--yes", action="store_true", help="do not ask in live mode")
    ch.add_argument("--json", action="store_true", help="print JSON")
    ch.set_defaults(func=cmd_payments_charge)
    rf = payments.add_parser("refund", help="refund all or part of a payment taken through Stripe")
    rf.add_argument("payment", type=int, metavar="PAYMENT_ID", help="from `mspbill payments list`")
    rf.add_argument("--amount", metavar="AMOUNT", help="part of it (default: all that can be refunded)")
    rf.add_argument("--reason", required=True, help="why (kept in the invoice's history)")
    rf.add_argument("--still-owed", action="store_true",
                    help="the client still owes the amount (no credit note: the invoice shows it due again)")
    rf.add_argument("--yes", action="store_true", help="do not ask in live mode")
    rf.add_argument("--json", action="store_true", help="print JSON")
    rf.set_defaults(func=cmd_payments_refund)
    sy = payments.add_parser("sync", help="collect saved methods from setup links, settle bank debits and "
                                          "find out about charges with no known outcome")
    sy.add_argument("--json", action="store_true", help="print JSON")
    sy.set_defaults(func=cmd_payments_sync)


CLI_ERRORS = (PaymentsCliError, ProcessorError, KeyProblem)
