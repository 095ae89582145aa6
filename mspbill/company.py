"""The company profile: who the MSP is, as printed on every invoice."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.clients import check_email, check_name, parse_terms
from mspbill.db.models import NAME_MAX, CompanyProfile
from mspbill.money import MoneyError, format_decimal, is_valid_currency, parse_decimal
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

LOGO_MAX_BYTES = 5_000_000
LOGO_MAX_PIXELS = 600
DEFAULT_PATTERN = "INV-{n:06d}"
DEFAULT_CREDIT_NOTE_PATTERN = "CN-{n:06d}"
MAX_AUTOPAY_DISCOUNT = Decimal(50)
PAPER_SIZES = {"letter": "Letter (8.5 × 11 in)", "a4": "A4 (210 × 297 mm)"}
PAYMENT_INSTRUCTIONS_MAX = 1000


@dataclass
class CompanyDraft:
    name: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    email: str = ""
    phone: str = ""
    tax_id: str = ""
    currency: str = "USD"
    invoice_number_pattern: str = DEFAULT_PATTERN
    default_payment_terms_days: str = "30"
    credit_note_number_pattern: str = DEFAULT_CREDIT_NOTE_PATTERN
    # Percent off generated invoices for autopay clients; "0" for none.
    autopay_discount_percent: str = "0"
    paper_size: str = "letter"  # "letter" or "a4"
    # How clients who pay by invoice can pay: printed on their invoices.
    payment_instructions: str = ""


@dataclass(frozen=True)
class CompanySnapshot:
    draft: CompanyDraft
    logo_png: bytes | None
    is_demo: bool


def format_invoice_number(pattern: str, n: int) -> str:
    return pattern.format(n=n)


def check_pattern(pattern: str, issues: list[Issue], field: str = "invoice_number_pattern",
                  example: str = DEFAULT_PATTERN) -> str:
    pattern = (pattern or "").strip()
    if not pattern:
        issues.append(Issue(field, f"Enter a number pattern, for example {example}."))
        return pattern
    if not re.search(r"\{n(:[^{}]*)?\}", pattern):
        issues.append(Issue(field, f"The pattern must contain {{n}} where the number goes, for example {example}."))
        return pattern
    try:
        first, later = format_invoice_number(pattern, 1), format_invoice_number(pattern, 123456)
    except (ValueError, KeyError, IndexError) as exc:
        issues.append(Issue(field, f"The pattern cannot be used: {exc}."))
        return pattern
    if first == later:
        issues.append(Issue(field, "The pattern must change with the number."))
    elif len(later) > 30:
        issues.append(Issue(field, "Numbers from this pattern are too long (30 characters at most)."))
    return pattern


def check_discount(text: str, issues: list[Issue]) -> Decimal:
    try:
        value = parse_decimal(text or "0", what="autopay discount", max_places=2)
    except MoneyError as exc:
        issues.append(Issue("autopay_discount_percent", str(exc)))
        return Decimal(0)
    if not 0 <= value <= MAX_AUTOPAY_DISCOUNT:
        issues.append(Issue("autopay_discount_percent",
                            f"The autopay discount is a percentage from 0 to {MAX_AUTOPAY_DISCOUNT}."))
        return Decimal(0)
    return value


def normalise_logo(data: bytes) -> bytes:
    """Any common image (PNG, JPEG, GIF, BMP, WebP) → a PNG at most 600 px wide or tall."""
    if not data:
        raise ValidationError([Issue("logo", "The logo file is empty.")])
    if len(data) > LOGO_MAX_BYTES:
        raise ValidationError([Issue("logo", "The logo file is larger than 5 MB; choose a smaller image.")])
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img.thumbnail((LOGO_MAX_PIXELS, LOGO_MAX_PIXELS))
            rgb: Image.Image = img if img.mode in ("RGB", "RGBA", "L", "LA") else img.convert("RGBA")
            out = io.BytesIO()
            rgb.save(out, format="PNG", optimize=True)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        # Pillow's own words name internal objects ("<_io.BytesIO object at 0x…>"): the log keeps them.
        log.info("Logo refused (%d bytes): %s", len(data), exc)
        raise ValidationError([Issue("logo", "That file is not an image mspbill can read, or it is damaged. "
                                             "Choose a PNG, JPEG, GIF, BMP or WebP image.")]) from exc


def validate_company(draft: CompanyDraft) -> tuple[dict[str, Any], list[Issue]]:
    issues: list[Issue] = []
    v: dict[str, Any] = {"name": check_name(draft.name, "name", "company name", issues)}
    for name, label, limit in (
        ("address_line1", "address", NAME_MAX), ("address_line2", "second address line", NAME_MAX),
        ("city", "city", 100), ("region", "state or region", 100),
        ("postal_code", "postal code", 20), ("country", "country", 100),
        ("phone", "phone number", 50), ("tax_id", "tax ID", 50),
    ):
        v[name] = check_name(getattr(draft, name), name, label, issues, required=False, limit=limit)
    email = (draft.email or "").strip()
    v["email"] = (check_email(email, "email", issues) or email) if email else ""
    currency = (draft.currency or "").strip().upper()
    if not is_valid_currency(currency):
        issues.append(Issue("currency", "Currency is a three-letter ISO code such as USD or EUR."))
    v["currency"] = currency
    v["invoice_number_pattern"] = check_pattern(draft.invoice_number_pattern, issues)
    v["credit_note_number_pattern"] = check_pattern(
        draft.credit_note_number_pattern, issues, "credit_note_number_pattern", DEFAULT_CREDIT_NOTE_PATTERN)
    if v["credit_note_number_pattern"] and v["credit_note_number_pattern"] == v["invoice_number_pattern"]:
        issues.append(Issue("credit_note_number_pattern",
                            "Credit notes need a pattern of their own (for example CN-{n:06d}), "
                            "or their numbers would clash with invoice numbers."))
    v["autopay_discount_percent"] = check_discount(draft.autopay_discount_percent, issues)
    paper = (draft.paper_size or "").strip().lower()
    if paper not in PAPER_SIZES:
        issues.append(Issue("paper_size", "Paper size is Letter or A4."))
    v["paper_size"] = paper
    instructions = (draft.payment_instructions or "").replace("\r\n", "\n").strip()
    if len(instructions) > PAYMENT_INSTRUCTIONS_MAX:
        issues.append(Issue("payment_instructions",
                            f"Payment instructions are printed on every invoice; keep them under "
                            f"{PAYMENT_INSTRUCTIONS_MAX} characters (these have {len(instructions)})."))
    elif len(instructions.splitlines()) > 8:
        issues.append(Issue("payment_instructions", "Payment instructions fit in 8 lines on the invoice."))
    v["payment_instructions"] = instructions
    v["default_payment_terms_days"] = parse_terms(draft.default_payment_terms_days,
                                                  "default_payment_terms_days", issues)
    return v, issues


US_COUNTRY_NAMES = {"us", "usa", "u.s.", "u.s.a.", "united states", "united states of america"}


def is_us(country: str) -> bool:
    """Whether a country as typed names the United States (dates written month first, 03/04 = March 4)."""
    return (country or "").strip().casefold() in US_COUNTRY_NAMES


def get_company(session: Session) -> CompanyProfile | None:
    return session.get(CompanyProfile, 1)


def company_snapshot(session: Session) -> CompanySnapshot | None:
    c = get_company(session)
    if c is None:
        return None
    draft = CompanyDraft(**{f: getattr(c, f) for f in CompanyDraft.__dataclass_fields__
                            if f not in ("default_payment_terms_days", "autopay_discount_percent")},
                         default_payment_terms_days=str(c.default_payment_terms_days),
                         autopay_discount_percent=format_decimal(c.autopay_discount_percent))
    return CompanySnapshot(draft, c.logo_png, c.is_demo)


_UNSET = object()


def save_company(session: Session, draft: CompanyDraft, *, logo_png: bytes | None | object = _UNSET,
                 is_demo: bool | None = None) -> CompanyProfile:
    """Create or update the profile.  `logo_png=None` removes the logo; omitted keeps it."""
    values, issues = validate_company(draft)
    if issues:
        raise ValidationError(issues)
    company = get_company(session)
    created = company is None
    if company is None:
        company = CompanyProfile(id=1)
        session.add(company)
    before = {k: getattr(company, k, None) for k in values}
    for k, val in values.items():
        setattr(company, k, val)
    if logo_png is not _UNSET:
        company.logo_png = normalise_logo(logo_png) if isinstance(logo_png, bytes) else None
    if is_demo is not None:
        company.is_demo = is_demo
    session.flush()
    changes = audit.diff(before, values)
    if logo_png is not _UNSET:
        changes["logo"] = ["", "changed" if logo_png else "removed"]
    if created or changes:  # saving the form unchanged is not a change
        audit.record(session, "company.created" if created else "company.updated", "company", 1,
                     f"{'Set up' if created else 'Updated'} company profile {company.name}"
                     + ("" if created else f": {', '.join(sorted(changes))}"), {"changes": changes})
    return company
