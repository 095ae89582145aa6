"""Invoice e-mail templates: placeholders, their check, and their values.

A template is plain text with placeholders in braces, such as
"Invoice {number} from {company}".  Only the names in PLACEHOLDERS are
allowed, bare (no format spec or conversion); "{{" and "}}" stand for a
literal brace.  The check reports every problem of a template at once.
"""

from __future__ import annotations

import calendar
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
    "due_date": "The due date, e.g. December 1, 2026",
    "issue_date": "The date the invoice was issued",
    "period": "The billing period, e.g. November 2026 or Q4 2026",
    "payment_method": "How it will be paid: automatic payment for autopay clients, "
                      "otherwise payment by invoice with your payment instructions",
    "company": "Your company's name",
}

DEFAULT_INVOICE_SUBJECT = "Invoice {number} from {company}"
DEFAULT_INVOICE_BODY = """Dear {client},

please find attached invoice {number} for {period}, issued on {issue_date}.

Total: {total}
Balance due: {balance}
Due date: {due_date}

Payment: {payment_method}

If you have any questions about this invoice, just reply to this e-mail.

Thank you for your business,
{company}
"""

# Credit notes do not use the office's invoice template: its wording ("please
# pay by …") would be wrong for a document that gives money back.
CREDIT_NOTE_SUBJECT = "Credit note {number} from {company}"
CREDIT_NOTE_BODY = """Dear {client},

please find attached credit note {number}, issued on {issue_date}, for {total}.

It has been applied to your account; no payment is due for it.

If you have any questions, just reply to this e-mail.

Kind regards,
{company}
"""

AUTOPAY_WORDING = ("automatic payment (card on file): the amount will be charged to the payment method "
                   "we have on file for you, so there is nothing for you to do.")
BY_INVOICE_WORDING = "payment by invoice."
CREDIT_NOTE_WORDING = "no payment is due for a credit note."
VOID_WORDING = "no payment is due; this invoice has been voided."

_FORMATTER = string.Formatter()


def allowed_list() -> str:
    return ", ".join("{" + name + "}" for name in PLACEHOLDERS)


def check_template(text: str, field: str, what: str, issues: list[Issue]) -> None:
    """Add an Issue for an unbalanced brace or any placeholder not in PLACEHOLDERS."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        # "Single '}' encountered in format string", "expected '}' before end of string"
        issues.append(Issue(field, f"The {what} has an unbalanced brace ({exc}). Placeholders are written "
                                   f"in braces, such as {{number}}; write {{{{ or }}}} for a literal brace. "
                                   f"Allowed: {allowed_list()}."))
        return
    unknown: list[str] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
        if (name not in PLACEHOLDERS or spec or conversion) and shown not in unknown:
            unknown.append(shown)
    if unknown:
        listed = ", ".join(unknown)
        noun = "placeholder" if len(unknown) == 1 else "placeholders"
        issues.append(Issue(field, f"The {what} uses the unknown {noun} {listed}. Allowed: {allowed_list()}."))


def render(template: str, values: dict[str, str]) -> str:
    """The template with its placeholders filled (check it first)."""
    return template.format_map(values)


# --- values of one invoice --------------------------------------------------

def format_date(day: dt.date | None) -> str:
    if day is None:
        return ""
    return f"{calendar.month_name[day.month]} {day.day}, {day.year}"


def _short_date(day: dt.date) -> str:
    return f"{day.day} {calendar.month_abbr[day.month]} {day.year}"


def period_text(inv: Invoice) -> str:
    start, end = inv.period_start, inv.period_end
    if start is None:
        # One-time invoices have no billing period: name the month they were issued.
        return Month.of(inv.issue_date).label if inv.issue_date else ""
    if end is None or end == start:
        return Month.of(start).label if start.day == 1 else _short_date(start)
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
    return f"{_short_date(start)} – {_short_date(end)}"


def payment_method_text(inv: Invoice, client: Client, company: CompanyProfile | None) -> str:
    if inv.kind is InvoiceKind.CREDIT_NOTE:
        return CREDIT_NOTE_WORDING
    if inv.status is InvoiceStatus.VOID:
        return VOID_WORDING
    if client.autopay:
        return AUTOPAY_WORDING
    instructions = (company.payment_instructions if company else "").strip()
    return BY_INVOICE_WORDING + ("\n" + instructions if instructions else "")


def balance_cents(inv: Invoice) -> int:
    if inv.status is InvoiceStatus.VOID or inv.kind is InvoiceKind.CREDIT_NOTE:
        return 0
    return max(0, inv.balance_cents)


def invoice_values(session: Session, inv: Invoice) -> dict[str, str]:
    """Every placeholder's text for this invoice, as of now."""
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
        "payment_method": payment_method_text(inv, client, company),
        "company": company.name if company else "",
    }


def sample_values() -> dict[str, str]:
    """Example values, for a preview in Settings → E-mail."""
    return {
        "client": "Zürich Dental GmbH", "number": "INV-000123", "total": "$1,234.50", "balance": "$1,234.50",
        "due_date": "December 1, 2026", "issue_date": "November 1, 2026", "period": "November 2026",
        "payment_method": BY_INVOICE_WORDING, "company": "Your company",
    }
