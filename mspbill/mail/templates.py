"""Invoice e-mail templates: placeholders, their check, and their values.

A template is plain text with placeholders in braces, such as
"Invoice {number} from {company}".  Only the names in PLACEHOLDERS are
allowed, bare (no format spec or conversion); "{{" and "}}" stand for a
literal brace.  The check reports every problem of a template at once.
"""

from __future__ import annotations

import datetime as dt
import string

from sqlalchemy.orm import Session

from mspbill.db.models import (
    Client,
    CompanyProfile,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
)
from mspbill.money import format_amount
from mspbill.periods import Month
from mspbill.validation import Issue

PLACEHOLDERS: dict[str, str] = {
    "client": "The client's name, as billed",
    "number": "The invoice (or credit note) number, e.g. INV-000123",
    "total": "The invoice total with its currency, e.g. $1,234.50",
    "balance": "What is still owed when the e-mail is queued",
    "due_date": "The due date, e.g. 1 Dec 2026 (as on the PDF)",
    "issue_date": "The date the invoice was issued",
    "period": "The billing period, e.g. November 2026 or Q4 2026",
    "payment_method": "What the client has to do, as of when the e-mail is queued: nothing when it is paid "
                      "or will be charged automatically, otherwise your payment instructions",
    "company": "Your company's name",
}

DEFAULT_INVOICE_SUBJECT = "Invoice {number} from {company}"
DEFAULT_INVOICE_BODY = """Dear {client},

Please find attached invoice {number} for {period}, issued on {issue_date}.

Total: {total}
Balance due: {balance}
Due date: {due_date}

Payment: {payment_method}

If you have any questions about this invoice, just reply to this e-mail.

Thank you for your business,
{company}
"""

def invoice_body_template(saved: str | None) -> str:
    """The invoice body to use: the saved one, or the default when none is saved."""
    return saved if saved and saved.strip() else DEFAULT_INVOICE_BODY


# Credit notes do not use the office's invoice template: its wording ("please
# pay by …") would be wrong for a document that gives money back.
CREDIT_NOTE_SUBJECT = "Credit note {number} from {company}"
CREDIT_NOTE_BODY = """Dear {client},

Please find attached credit note {number}, issued on {issue_date}, for {total}.

It has been applied to your account; no payment is due for it.

If you have any questions, just reply to this e-mail.

Kind regards,
{company}
"""

# The {payment_method} texts: each is whole sentences, read after "Payment: ".
PAID_WORDING = "This invoice is paid in full — thank you; there is nothing to pay."
AUTOPAY_WORDING = ("The balance will be charged automatically on {due_date} to the payment method we have on "
                   "file for you, so there is nothing for you to do.")
AUTOPAY_NO_DUE_DATE_WORDING = ("The balance will be charged automatically to the payment method we have on file "
                               "for you, so there is nothing for you to do.")
AUTOPAY_FAILED_WORDING = "The automatic payment on {due_date} did not go through, so the balance is still due."
AUTOPAY_PROCESSING_WORDING = ("A bank debit for the balance is in progress and settles within a few business days, "
                              "so there is nothing for you to do.")
AUTOPAY_RETRYING_WORDING = ("The automatic payment on {due_date} did not go through. We will try the payment "
                            "method on file again {when}, so there is nothing you need to do.")
AUTOPAY_APPROVAL_WORDING = ("This invoice is above the amount we charge automatically without checking with you "
                            "first; we will confirm with you before charging it to the payment method on file.")
AUTOPAY_NEEDS_METHOD_WORDING = "We have no payment method on file that we can charge for this invoice."
BY_INVOICE_WORDING = "Please pay by {due_date} as follows:"
BY_INVOICE_PAST_DUE_WORDING = "This invoice was due on {due_date}; please pay the balance as follows:"
UNCOLLECTIBLE_WORDING = "The balance of {balance} is still due; please pay it as follows:"
CREDIT_NOTE_WORDING = "No payment is due for a credit note."
VOID_WORDING = "No payment is due; this invoice has been voided."

_FORMATTER = string.Formatter()


def allowed_list(allowed: dict[str, str] | None = None) -> str:
    return ", ".join("{" + name + "}" for name in (allowed or PLACEHOLDERS))


def check_template(text: str, field: str, what: str, issues: list[Issue],
                   allowed: dict[str, str] | None = None) -> None:
    """Add an Issue for an unbalanced brace or any placeholder not in `allowed` (default PLACEHOLDERS)."""
    allowed = allowed or PLACEHOLDERS
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        # "Single '}' encountered in format string", "expected '}' before end of string"
        issues.append(Issue(field, f"The {what} has an unbalanced brace ({exc}). Placeholders are written "
                                   f"in braces, such as {{number}}; write {{{{ or }}}} for a literal brace. "
                                   f"Allowed: {allowed_list(allowed)}."))
        return
    unknown: list[str] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
        if (name not in allowed or spec or conversion) and shown not in unknown:
            unknown.append(shown)
    if unknown:
        listed = ", ".join(unknown)
        noun = "placeholder" if len(unknown) == 1 else "placeholders"
        issues.append(Issue(field, f"The {what} uses the unknown {noun} {listed}. Allowed: {allowed_list(allowed)}."))


def render(template: str, values: dict[str, str]) -> str:
    """The template with its placeholders filled (check it first)."""
    return template.format_map(values)


# --- values of one invoice --------------------------------------------------

def format_date(day: dt.date | None) -> str:
    """The date as the PDF prints it (1 Oct 2026), so the e-mail and its attachment agree."""
    if day is None:
        return ""
    # Imported here: ReportLab loads only when a document or an e-mail is made, not
    # whenever mspbill.mail is imported (the command line starts without it).
    from mspbill.pdf.layout import fmt_date
    return fmt_date(day)


def period_text(inv: Invoice) -> str:
    start, end = inv.period_start, inv.period_end
    if start is None:
        # One-time invoices have no billing period: name the month they were issued.
        return Month.of(inv.issue_date).label if inv.issue_date else ""
    if end is None or end == start:
        return Month.of(start).label if start.day == 1 else format_date(start)
    first_month, last_month = Month.of(start), Month.of(end)
    if start == first_month.first_day and end == last_month.last_day:
        months = (last_month.year - first_month.year) * 12 + last_month.month - first_month.month + 1
        if months == 1:
            return first_month.label
        if months == 3 and start.month % 3 == 1:
            return f"Q{(start.month - 1) // 3 + 1} {start.year}"
        if months == 12 and start.month == 1:
            return str(start.year)
        return f"{first_month.label} – {last_month.label}"
    return f"{format_date(start)} – {format_date(end)}"


def is_past_due(inv: Invoice, today: dt.date) -> bool:
    return inv.due_date is not None and today > inv.due_date and balance_cents(inv) > 0


def _contact(company: CompanyProfile | None) -> str:
    email = (company.email if company else "").strip()
    return f"contact us at {email}" if email else "contact our office"


def _how_to_pay(inv: Invoice, company: CompanyProfile | None) -> str:
    """The office's payment instructions and the number to quote (as the PDF's "How to pay")."""
    instructions = (company.payment_instructions if company else "").strip()
    quote = f"Please quote {inv.number} with your payment." if inv.number else ""
    if not instructions:
        return " ".join(filter(None, [quote, f"For our payment details, {_contact(company)}."]))
    if quote and "quote" not in instructions.casefold():  # the office may have said it already
        instructions += "\n" + quote
    return instructions


def payment_method_text(inv: Invoice, client: Client, company: CompanyProfile | None,
                        today: dt.date | None = None, autopay: str = "ready",
                        next_try_on: dt.date | None = None) -> str:
    """What the client has to do about this invoice as of today: it follows the invoice's
    state (paid, open, past due, written off), not only whether the client is on autopay."""
    today = today or dt.date.today()
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        return CREDIT_NOTE_WORDING
    if inv.status is InvoiceStatus.VOID:
        return VOID_WORDING
    if balance_cents(inv) == 0:
        return PAID_WORDING
    due = format_date(inv.due_date)
    if inv.status is InvoiceStatus.UNCOLLECTIBLE:
        # Written off in the office's books, but the client still owes it: never "nothing to do".
        balance = format_amount(balance_cents(inv), inv.currency)
        return UNCOLLECTIBLE_WORDING.format(balance=balance) + "\n" + _how_to_pay(inv, company)
    if client.autopay and autopay == "processing":
        return AUTOPAY_PROCESSING_WORDING
    if client.autopay and autopay == "needs_method":
        # Nothing can charge it: the client pays like anyone who pays by invoice, and is asked for a method.
        ask = f" Please {_contact(company)} to give us a card or bank account, or pay as follows:"
        return AUTOPAY_NEEDS_METHOD_WORDING + ask + "\n" + _how_to_pay(inv, company)
    if client.autopay and autopay == "retrying":
        # A soft decline the month-end batch tries again: asking the client to pay by hand now
        # could have them pay twice (their check, then the retry).
        when = f"on {format_date(next_try_on)}" if next_try_on and next_try_on > today else "in the next few days"
        return AUTOPAY_RETRYING_WORDING.format(due_date=due or "the due date", when=when) + \
            f" To pay another way or to update your payment method, please {_contact(company)} first."
    if client.autopay and autopay == "approval":
        return AUTOPAY_APPROVAL_WORDING + f" If you would rather pay another way, please {_contact(company)}."
    if client.autopay:
        if not is_past_due(inv, today):
            return AUTOPAY_WORDING.format(due_date=due) if due else AUTOPAY_NO_DUE_DATE_WORDING
        # Still open after its due date: the charge on the due date failed.
        failed = AUTOPAY_FAILED_WORDING.format(due_date=due)
        if not (company.payment_instructions if company else "").strip():
            quoting = f", quoting {inv.number}" if inv.number else ""
            return f"{failed} Please {_contact(company)} to pay another way or to update your payment method{quoting}."
        return (f"{failed} Please pay it as follows, or {_contact(company)} to update your payment method:\n"
                + _how_to_pay(inv, company))
    if not due:
        return _how_to_pay(inv, company)
    wording = BY_INVOICE_PAST_DUE_WORDING if is_past_due(inv, today) else BY_INVOICE_WORDING
    return wording.format(due_date=due) + "\n" + _how_to_pay(inv, company)


def balance_cents(inv: Invoice) -> int:
    if inv.status is InvoiceStatus.VOID or inv.kind is InvoiceKind.CREDIT_NOTE:
        return 0
    return max(0, inv.balance_cents)


def invoice_values(session: Session, inv: Invoice, today: dt.date | None = None) -> dict[str, str]:
    """Every placeholder's text for this invoice, as of today (default: the computer's date)."""
    client = inv.client
    company = session.get(CompanyProfile, 1)
    bill_to_name = (inv.bill_to or {}).get("name") if isinstance(inv.bill_to, dict) else None
    return {
        "client": str(bill_to_name or client.legal_name),
        "number": inv.number or "",
        "total": format_amount(abs(inv.total_cents) if inv.kind is InvoiceKind.CREDIT_NOTE else inv.total_cents,
                               inv.currency),
        "balance": format_amount(balance_cents(inv), inv.currency),
        "due_date": format_date(inv.due_date),
        "issue_date": format_date(inv.issue_date),
        "period": period_text(inv),
        "payment_method": payment_method_text(inv, client, company, today, *_autopay(session, inv, today)),
        "company": company.name if company else "",
    }


def _autopay(session: Session, inv: Invoice, today: dt.date | None) -> tuple[str, dt.date | None]:
    if not inv.client.autopay or inv.kind is not InvoiceKind.INVOICE:
        return "ready", None
    from mspbill.payments.charges import autopay_state

    state = autopay_state(session, inv, today)
    return state.kind, state.next_try_on


def sample_values() -> dict[str, str]:
    """Example values, for a preview in Settings → E-mail."""
    return {
        "client": "Zürich Dental GmbH", "number": "INV-000123", "total": "$1,234.50", "balance": "$1,234.50",
        "due_date": "1 Dec 2026", "issue_date": "1 Nov 2026", "period": "November 2026",
        "payment_method": BY_INVOICE_WORDING.format(due_date="1 Dec 2026")
        + "\n(your payment instructions)\nPlease quote INV-000123 with your payment.",
        "company": "Your company",
    }
