"""A realistic demo office: an MSP with its clients, recurring agreements and
a few months of billing behind it.

The office has invoiced the three months before the current one (issued on
the 1st of each month), most of those invoices are paid -- autopay clients by
ACH on the day, the others by check or wire some weeks later -- and some are
still open or overdue.  The current month is generated but left as drafts, so
the first thing to try is issuing them.

Deterministic for a given seed and day, so screenshots, tests and benchmarks
see the same office.  Everything goes through the same services as the app's
forms and the command line.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill.agreements import AgreementDraft, LineDraft, create_agreement
from mspbill.clients import ClientDraft, ContactDraft, create_client
from mspbill.company import CompanyDraft, get_company, save_company
from mspbill.db.engine import Database
from mspbill.db.models import (
    Client,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    PaymentMethod,
    ProcessorKind,
)
from mspbill.generation import generate_period
from mspbill.invoicing import create_credit_note, issue_month
from mspbill.money import format_amount
from mspbill.payments.manual import record_payment
from mspbill.payments.processor import payment_settings
from mspbill.periods import Month

DEFAULT_CLIENTS = 60
HISTORY_MONTHS = 3  # issued months before the current one

COMPANY = CompanyDraft(
    name="Northwind Managed IT, LLC", address_line1="1200 NW Naito Parkway", address_line2="Suite 410",
    city="Portland", region="OR", postal_code="97209", country="United States",
    email="billing@northwind-it.example", phone="(503) 555-0142", tax_id="93-1234567",
    currency="USD", invoice_number_pattern="INV-{n:06d}", default_payment_terms_days="30",
    paper_size="letter",
    payment_instructions=("ACH or wire: First Cascade Bank, routing 123000848, account 4401 2278 19\n"
                          "Checks payable to Northwind Managed IT, LLC: 1200 NW Naito Parkway, Suite 410, Portland, OR 97209"),
)

# Real-looking client names; a few on purpose with accents, other scripts and apostrophes.
CLIENT_NAMES = [
    "Cascade Family Dental", "Harbor & Pine Law Group", "Summit Ridge Veterinary Clinic",
    "Bluewater Property Management", "Evergreen Accounting Partners", "O'Brien & Sons Construction",
    "Zürich Dental GmbH", "Riverside Montessori School", "Ironwood Architects", "Maple Street Bakery",
    "Pioneer Title & Escrow", "Columbia Physical Therapy", "Alder Creek Winery", "Brightpath Counseling",
    "Keystone Insurance Agency", "Lakeside Orthodontics", "Northstar Logistics", "Oakmont Senior Living",
    "Pacific Crest Realty", "Quarry Hill Engineering", "Redwood Financial Advisors", "Silverline Manufacturing",
    "Timberline Outdoor Supply", "Union Street Chiropractic", "Valley View Medical Group",
    "Westside Community Credit Union", "Willamette Dermatology", "Café Olé Roasters", "Müller & Söhne Präzisionstechnik",
    "株式会社さくらデザイン", "Greenleaf Landscaping", "Highland Plumbing & Heating", "Juniper Yoga Studio",
    "Kestrel Aviation Services", "Lighthouse Church", "Meridian Staffing", "Nordic Home Furnishings",
    "Orchard Pediatrics", "Paloma Restaurant Group", "Rainier Auto Body", "Sequoia Wealth Management",
    "Trillium Hospice", "Umpqua Valley Farms", "Vista Optometry", "Wildflower Florist",
    "Aspen Hearing Center", "Birchwood Apartments", "Coastal Marine Supply", "Douglas Fir Millwork",
    "Elm & Ivy Interiors", "Foothills Animal Hospital", "Glacier Peak Brewing", "Hawthorne Pharmacy",
    "Ivy League Tutoring", "Jade Garden Restaurant", "Klamath Tribal Health", "Lumen Photography",
    "Mt. Hood Ski Rentals", "Nautilus Diving Center", "Osprey Environmental Consulting",
]
_PREFIXES = ["Alpine", "Beacon", "Cedar", "Delta", "Eastside", "Falcon", "Granite", "Horizon", "Inland",
             "Jetty", "Kingfisher", "Laurel", "Mesa", "Northgate", "Olympic", "Prairie", "Quartz", "Ridgeway",
             "Sterling", "Tidewater", "Upland", "Vantage", "Whitney", "Yarrow", "Zenith"]
_TRADES = ["Dental", "Law Offices", "Accounting", "Veterinary", "Realty", "Engineering", "Medical Clinic",
           "Insurance", "Construction", "Architects", "Physical Therapy", "Logistics", "Credit Union",
           "Optometry", "Pharmacy", "Consulting", "Property Management", "Academy", "Foods", "Printing"]
_FIRST = ["Maria", "James", "Aiko", "David", "Priya", "Michael", "Sofia", "Daniel", "Fatima", "Robert",
          "Linh", "Jennifer", "Carlos", "Emily", "Kwame", "Sarah", "Ahmed", "Laura", "Sean", "Ingrid"]
_LAST = ["Nguyen", "Smith", "García", "Johnson", "Tanaka", "O'Connor", "Patel", "Müller", "Williams",
         "Kowalski", "Brown", "Haddad", "Davis", "Larsen", "Okafor", "Martin", "Chen", "Rossi"]
_CITIES = [("Portland", "OR", "972"), ("Beaverton", "OR", "970"), ("Vancouver", "WA", "986"),
           ("Salem", "OR", "973"), ("Hillsboro", "OR", "971"), ("Lake Oswego", "OR", "970"),
           ("Gresham", "OR", "970"), ("Tigard", "OR", "972")]
_STREETS = ["SW Broadway", "NE Sandy Blvd", "SE Hawthorne Blvd", "N Williams Ave", "NW 23rd Ave",
            "SW Macadam Ave", "Main St", "Commercial St SE", "Cornell Rd", "Kruse Way"]


@dataclass(frozen=True)
class DemoSummary:
    clients: int
    agreements: int
    invoices_issued: int = 0
    payments: int = 0
    drafts: int = 0
    draft_month: str = ""


class DemoRefusedError(RuntimeError):
    pass


def _client_name(i: int) -> str:
    if i < len(CLIENT_NAMES):
        return CLIENT_NAMES[i]
    n = i - len(CLIENT_NAMES)
    prefix = _PREFIXES[n % len(_PREFIXES)]
    trade = _TRADES[(n // len(_PREFIXES)) % len(_TRADES)]
    series = n // (len(_PREFIXES) * len(_TRADES))
    return f"{prefix} {trade}" + (f" {series + 1}" if series else "")


def _slug(name: str, i: int) -> str:
    ascii_part = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())[:30]
    return ascii_part or f"client{i}"


def _lines(rng: random.Random, seats: int) -> list[LineDraft]:
    lines = [LineDraft("Managed workstations (per seat)", str(seats), rng.choice(["45.00", "55.00", "65.00"]))]
    servers = rng.choice([0, 1, 1, 2, 3, 4])
    if servers:
        lines.append(LineDraft("Managed servers", str(servers), rng.choice(["150.00", "195.00", "250.00"])))
    lines.append(LineDraft("Microsoft 365 Business Premium licences", str(seats + rng.randint(0, 3)), "22.00",
                           taxable=False))
    tb = rng.choice(["0.5", "1", "1.5", "2", "3.25", "4", "8"])
    lines.append(LineDraft("Cloud backup (per TB)", tb, "95.00"))
    if rng.random() < 0.7:
        lines.append(LineDraft("Firewall monitoring", str(rng.choice([1, 1, 2])), "75.00"))
    if rng.random() < 0.4:
        lines.append(LineDraft("Security awareness training (per user)", str(seats), "3.50"))
    return lines


def _second_agreement(rng: random.Random, seats: int) -> tuple[str, str, list[LineDraft]]:
    choice = rng.random()
    if choice < 0.4:
        return "Quarterly vCIO review", "quarterly", [LineDraft("Virtual CIO strategy session", "1", "750.00")]
    if choice < 0.75:
        return "Domains, DNS & SSL", "annual", [
            LineDraft("Domain registration and DNS hosting", str(rng.randint(1, 4)), "35.00"),
            LineDraft("Wildcard SSL certificate", "1", "189.00")]
    return "After-hours support block", "monthly", [
        LineDraft("After-hours support (hours)", rng.choice(["2", "4", "7.5"]), "165.00")]


def create_demo_office(session: Session, clients: int = DEFAULT_CLIENTS, seed: int = 2026,
                       today: dt.date | None = None, *, history: bool = True) -> DemoSummary:
    """Fill an empty database with a demo MSP.  Refuses if any client exists.

    With history=False the office has clients and agreements but has never
    invoiced (the benchmarks' first month-end run).
    """
    if clients < 1 or clients > 100_000:
        raise DemoRefusedError("The demo office has between 1 and 100,000 clients.")
    existing = session.scalar(select(func.count(Client.id))) or 0
    if existing:
        raise DemoRefusedError(
            f"This database already has {existing} clients; the demo office goes into an empty one. "
            "Use --data-dir to make a separate demo folder.")
    rng = random.Random(seed)
    today = today or dt.date.today()
    # The demo office takes payments through the sandbox: simulated, no money moves.
    payment_settings(session).processor = ProcessorKind.SANDBOX
    if get_company(session) is None:
        logo = (files("mspbill_resources") / "demo-logo.png").read_bytes()
        save_company(session, COMPANY, logo_png=logo, is_demo=True)
    agreements = 0
    for i in range(clients):
        name = _client_name(i)
        city, region, zip3 = rng.choice(_CITIES)
        slug = _slug(name, i)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        emails = f"ap@{slug}.example"
        if rng.random() < 0.3:
            emails += f", {first.lower()}@{slug}.example"
        draft = ClientDraft(
            legal_name=name, billing_emails=emails, phone=f"(503) 555-{rng.randint(1000, 9999)}",
            address_line1=f"{rng.randint(100, 9999)} {rng.choice(_STREETS)}", city=city, region=region,
            postal_code=f"{zip3}{rng.randint(10, 99)}", country="United States", currency="USD",
            tax_rate=rng.choice(["0", "0", "0", "0", "8.25", "9.5"]),
            payment_terms_days=rng.choice(["15", "30", "30", "45"]), autopay=rng.random() < 0.6,
            contacts=[ContactDraft(f"{first} {last}", rng.choice(["Office manager", "Owner", "Controller"]),
                                   f"{first.lower()}.{_slug(last, 0)}@{slug}.example",
                                   f"(503) 555-{rng.randint(1000, 9999)}")],
        )
        client = create_client(session, draft)
        seats = rng.choice([4, 6, 8, 12, 15, 20, 25, 35, 50, 80])
        start = today.replace(day=1) - dt.timedelta(days=rng.randint(60, 1100))
        start = start.replace(day=1)
        create_agreement(session, AgreementDraft(
            client_id=client.id, name="Managed IT services", start_date=start, frequency="monthly",
            lines=_lines(rng, seats)))
        agreements += 1
        titles: set[str] = set()
        for chance in (0.9, 0.1):  # about two agreements per client, as in a real office
            if rng.random() >= chance:
                continue
            title, freq, lines = _second_agreement(rng, seats)
            end = None
            if rng.random() < 0.08:
                end = today.replace(day=1) + dt.timedelta(days=rng.randint(20, 200))
            if title in titles:
                continue  # the same service twice would look like double billing
            titles.add(title)
            create_agreement(session, AgreementDraft(
                client_id=client.id, name=title, start_date=start, end_date=end, frequency=freq, lines=lines))
            agreements += 1
        if i % 500 == 499:
            session.flush()
            session.expunge_all()
    session.flush()
    session.expunge_all()
    if not history:
        return DemoSummary(clients=clients, agreements=agreements)
    # Its own generator, so the clients and agreements above stay what they were for a seed.
    history_rng = random.Random(f"{seed}:billing-history")
    issued, payments = _billing_history(session, history_rng, today)
    current = Month.of(today)
    drafts = generate_period(session, current).created
    session.expunge_all()
    return DemoSummary(clients=clients, agreements=agreements, invoices_issued=issued, payments=payments,
                       drafts=drafts, draft_month=str(current))


# --- a few months of billing ------------------------------------------------

_PAID_SHARE = {3: 0.95, 2: 0.88, 1: 0.75}  # of invoices by months ago, for clients paying by invoice


def _billing_history(session: Session, rng: random.Random, today: dt.date) -> tuple[int, int]:
    """Generate and issue the last HISTORY_MONTHS months; record who has paid since."""
    issued = payments = 0
    current = Month.of(today)
    goodwill_done = False
    for ago in range(HISTORY_MONTHS, 0, -1):
        month = current.shift(-ago)
        generate_period(session, month)
        numbers = issue_month(session, month, month.first_day)
        issued += len(numbers)
        autopay_clients = set(session.scalars(select(Client.id).where(Client.autopay.is_(True))))
        # Held here, so that record_payment finds each one in the session instead of loading it again.
        invoices = list(session.scalars(
            select(Invoice).where(Invoice.kind == InvoiceKind.INVOICE, Invoice.status == InvoiceStatus.OPEN,
                                  Invoice.issue_date == month.first_day).order_by(Invoice.number_seq)))
        for inv in invoices:
            invoice_id, number, total, issue_date, due_date = (inv.id, inv.number, inv.total_cents,
                                                               inv.issue_date, inv.due_date)
            assert number is not None and issue_date is not None and due_date is not None  # issued
            autopay = inv.client_id in autopay_clients
            payment = _demo_payment(rng, number, total, issue_date, due_date, inv.currency, autopay, ago,
                                    today, inv.client_id)
            if payment is None:
                if not goodwill_done and not autopay and ago == HISTORY_MONTHS and total >= 500_00:
                    # One client complained about an outage; the office credited part of the invoice.
                    credit_day = min(issue_date + dt.timedelta(days=12), today)
                    create_credit_note(session, invoice_id, "Goodwill credit: email outage of "
                                       f"{(credit_day - dt.timedelta(days=3)).strftime('%d %b').lstrip('0')}",
                                       "50.00", issue_date=credit_day)
                    goodwill_done = True
                continue
            amount, method, reference, received = payment
            record_payment(session, invoice_id, amount, method, reference=reference, received_on=received,
                           today=today)
            payments += 1
        session.flush()
        session.expunge_all()
    return issued, payments


def _demo_payment(rng: random.Random, number: str, total: int, issue_date: dt.date, due_date: dt.date,
                  currency: str, autopay: bool, months_ago: int, today: dt.date, client_id: int = 0
                  ) -> tuple[str, PaymentMethod, str, dt.date] | None:
    """(amount, method, reference, date received) of the payment an invoice got, or None: still open."""
    amount = format_amount(total, currency, symbol=False)
    if autopay:
        # Charged on issue; the odd one bounced and is still open.  (Card and ACH
        # through the processor come with the batch run; these stand in for them.)
        if rng.random() < 0.03:
            return None
        return amount, PaymentMethod.ACH, f"AUTOPAY-{number}", min(issue_date + dt.timedelta(days=1), today)
    if rng.random() >= _PAID_SHARE.get(months_ago, 0.9):
        return None
    terms = (due_date - issue_date).days
    # Most clients pay within their terms, some a little late, a few chronically late (the
    # Dashboard's payment behaviour has real differences to show).
    profile = client_id % 10
    if profile <= 5:
        low, high = 5, max(6, terms - 1)
    elif profile <= 8:
        low, high = max(5, terms - 5), terms + 12
    else:
        low, high = terms + 10, terms + 45
    received = issue_date + dt.timedelta(days=rng.randint(low, high))
    if received > today:
        return None  # not paid yet
    roll = rng.random()
    if roll < 0.7:
        method, reference = PaymentMethod.CHECK, str(rng.randint(1001, 9899))
    elif roll < 0.9:
        method, reference = PaymentMethod.WIRE, f"FW{rng.randint(10**9, 10**10 - 1)}"
    else:
        method, reference = PaymentMethod.ACH, f"ACH {rng.randint(100000, 999999)}"
    if rng.random() < 0.06 and total >= 200_00:
        # Paid part of it: a round sum, the rest still owed.
        amount = format_amount(total // 2 // 100_00 * 100_00 or 100_00, currency, symbol=False)
    return amount, method, reference, received


# --- cards and bank accounts on file (sandbox) ------------------------------------

# What the autopay clients saved through their setup links: mostly cards, some bank
# accounts, and a few that show what can go wrong at month end.
_METHOD_MIX = [("pm_card_visa", 0.45), ("pm_card_mastercard", 0.2), ("pm_card_amex", 0.1),
               ("pm_usBankAccount_success", 0.15)]
_TROUBLE = ["pm_card_visa_expiring", "pm_card_visa_chargeDeclinedInsufficientFunds",
            "pm_card_visa_chargeDeclinedLostCard"]


def demo_payment_methods(db: Database, gateway: Any, seed: int = 2026) -> int:
    """Give the demo's autopay clients a sandbox customer and a saved method (the last
    two none: they have not finished their setup link).  `gateway` is a SandboxGateway.
    Returns how many methods were saved."""
    from mspbill.payments.methods import customer_row, ensure_customer, store_method

    rng = random.Random(f"{seed}:methods")
    with db.session() as s:
        autopay = list(s.scalars(select(Client.id).where(Client.autopay.is_(True)).order_by(Client.id)))
    saved = 0
    trouble = list(_TROUBLE)
    for n, client_id in enumerate(autopay[:-2] if len(autopay) > 4 else autopay):
        with db.session() as s:
            if customer_row(s, client_id, gateway.mode) is not None:
                continue
        customer_id = ensure_customer(db, gateway, client_id)
        if trouble and n % 7 == 3:
            token = trouble.pop(0)
        else:
            roll, token = rng.random(), "pm_card_visa"
            for candidate, share in _METHOD_MIX:
                if roll < share:
                    token = candidate
                    break
                roll -= share
        facts = gateway.attach_test_method(customer_id, token)
        with db.write_session() as s, s.begin():
            store_method(s, client_id, gateway.mode, facts, customer_id, "demo", make_default=True)
        saved += 1
    return saved
