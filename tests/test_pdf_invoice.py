"""Invoice and credit note PDFs, rendered from a real SQLite file and read back with pypdf."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging

import pypdf
import pytest
from billing_helpers import (
    d,
    draft_with_lines,
    issue_ids,
    make_client,
    one_time,
    setup_office,
)
from sqlalchemy import update

from mspbill.agreements import LineDraft
from mspbill.db.models import (
    ClientCredit,
    CompanyProfile,
    CreditReason,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
)
from mspbill.invoicing import create_credit_note, mark_uncollectible, void_invoice
from mspbill.payments.manual import record_payment
from mspbill.pdf.invoice import invoice_document, invoice_pdf, render_invoice
from mspbill.periods import Month
from mspbill.validation import NotFoundError

ISSUED = d("2026-11-01")
TODAY = d("2026-11-20")
NAMES = ["Zürich Dental GmbH", "Łódź IT Sp. z o.o.", "株式会社テスト"]


@dataclasses.dataclass
class Pdf:
    reader: pypdf.PdfReader
    filename: str
    title: str
    pages: int

    def text(self, page: int | None = None) -> str:
        pages = self.reader.pages if page is None else [self.reader.pages[page]]
        return "\n".join(p.extract_text() for p in pages)

    def fonts(self) -> dict[str, bool]:
        """Base font name → embedded, over every page."""
        found: dict[str, bool] = {}
        for p in self.reader.pages:
            for font in p["/Resources"]["/Font"].values():
                font = font.get_object()
                descendants = font.get("/DescendantFonts")
                descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
                found[str(font["/BaseFont"])] = descriptor is not None and any(
                    k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        return found

    def images(self) -> int:
        return sum(len(p["/Resources"].get("/XObject", {})) for p in self.reader.pages)


def render(db, invoice_id: int, today: dt.date = TODAY) -> Pdf:
    with db.session() as s:
        pdf = invoice_pdf(s, invoice_id, today=today)
    reader = pypdf.PdfReader(io.BytesIO(pdf.data))
    assert pdf.pages == len(reader.pages)
    return Pdf(reader, pdf.filename, pdf.title, pdf.pages)


def flat(text: str) -> str:
    return " ".join(text.split())


def _pay(db, invoice_id: int, amount: str, received: dt.date, **kw: object) -> None:
    with db.write_session() as s, s.begin():
        record_payment(s, invoice_id, amount, "check", received_on=received, today=TODAY, **kw)  # type: ignore[arg-type]


def _card_payment(db, invoice_id: int, cents: int, received: dt.date, reference: str) -> None:
    """A charge that came through the processor, recorded as the batch records it."""
    with db.write_session() as s, s.begin():
        inv = s.get(Invoice, invoice_id)
        s.add(Payment(client_id=inv.client_id, invoice_id=inv.id, method=PaymentMethod.CARD, amount_cents=cents,
                      applied_cents=cents, currency=inv.currency, received_on=received, reference=reference))
        inv.paid_cents += cents
        if inv.balance_cents == 0:
            inv.status = InvoiceStatus.PAID


@pytest.fixture
def office(db) -> None:
    setup_office(db, name="Acme IT Services", address_line1="120 Harbor Street", city="Portland", region="OR",
                 postal_code="97204", email="billing@acme.example", phone="+1 503 555 0100", tax_id="93-1234567")


def _one(db, client_name: str = "Zürich Dental GmbH", **client: object) -> int:
    cid = make_client(db, client_name, tax_rate="8.875", address_line1="Bahnhofstrasse 1", city="Zürich",
                      postal_code="8001", country="Switzerland", **client)
    inv = one_time(db, cid, ("Firewall appliance", "3", "45.00"), ("Installation hours", "1.5", "120.00"))
    issue_ids(db, [inv], ISSUED)
    return inv


@pytest.mark.parametrize("name", NAMES)
def test_number_client_and_totals_print_in_any_script_with_every_font_embedded(db, office, name: str) -> None:
    inv = _one(db, name)
    pdf = render(db, inv)
    text = pdf.text()
    # 3 × 45 + 1.5 × 120 = 315.00; tax 8.875% = 27.956… → 27.96; total 342.96.
    for expected in ("INV-000001", name, "Acme IT Services", "Firewall appliance", "$315.00", "Tax 8.875%",
                     "$27.96", "$342.96", "Balance due", "1 Nov 2026", "1 Dec 2026", "Net 30", "Bahnhofstrasse 1",
                     "billing@acme.example", "+1 503 555 0100", "Tax ID 93-1234567", "Page 1 of 1"):
        assert expected in text, expected
    # Quantities without needless decimals.
    assert " 3 $45.00" in flat(text) and " 1.5 $120.00" in flat(text)
    fonts = pdf.fonts()
    assert fonts and all(fonts.values()), fonts
    assert not any("Helvetica" in f for f in fonts), fonts
    # Windows refuses a file name ending in a dot: "… Sp. z o.o." loses its last one.
    assert pdf.filename == f"INV-000001 {name.rstrip('.')}.pdf"
    meta = pdf.reader.metadata
    assert meta.title == pdf.title == f"Invoice INV-000001 — {name}"
    assert meta.author == "Acme IT Services" and meta.creator == "mspbill"
    assert "INV-000001" in meta.subject and "$342.96" in meta.subject


def test_a_300_line_invoice_runs_over_pages_with_header_and_page_numbers(db, office) -> None:
    cid = make_client(db, "株式会社テスト", tax_rate="10")
    lines = [("service", "2", 1_000, f"Managed seat {i:03d} — 東京オフィス") for i in range(300)]
    inv = draft_with_lines(db, cid, lines, period=(d("2026-11-01"), d("2026-11-30")))
    issue_ids(db, [inv], ISSUED)
    pdf = render(db, inv)
    n = pdf.pages
    assert n >= 5
    assert f"Page 1 of {n}" in pdf.text(0) and f"Page {n} of {n}" in pdf.text(n - 1)
    second = pdf.text(1)
    # The compact header and the column heads repeat on every later page.
    for expected in ("Acme IT Services", "Invoice INV-000001", "株式会社テスト", "DESCRIPTION", "AMOUNT",
                     f"Page 2 of {n}"):
        assert expected in second, expected
    assert "Bill to".upper() not in second  # ...but not the first page's full header
    text = pdf.text()
    assert all(f"Managed seat {i:03d}" in text for i in range(300))
    # 300 × $20.00 = $6,000.00; tax 10% = $600.00.
    assert "$6,000.00" in text and "$6,600.00" in pdf.text(n - 1)
    assert "1 Nov 2026 – 30 Nov 2026" in pdf.text(0)


@pytest.mark.sqlite_only('writes a description longer than the column (validation caps it at 500)')
def test_a_2000_character_description_wraps(db, office) -> None:
    cid = make_client(db, "Łódź IT Sp. z o.o.")
    words = " ".join(f"word{i}" for i in range(400))[:1990]
    long_word = "X" * 2000  # not a single space to break at
    inv = draft_with_lines(db, cid, [("item", "1", 10_000, "START " + words + " END"),
                                     ("item", "1", 500, long_word), ("item", "1", 700, "After")])
    issue_ids(db, [inv], ISSUED)
    pdf = render(db, inv)
    text = flat(pdf.text())
    assert "START word0 word1" in text and "END" in text and "After" in text
    assert text.replace(" ", "").count("X" * 100) >= 1 and "$112.00" in text  # 100 + 5 + 7


@pytest.mark.parametrize(("paper", "size"), [("letter", (612, 792)), ("a4", (595, 842))])
def test_paper_size_follows_the_company_profile(db, office, paper: str, size: tuple[int, int]) -> None:
    with db.write_session() as s, s.begin():
        s.execute(update(CompanyProfile).values(paper_size=paper))
    pdf = render(db, _one(db))
    box = pdf.reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == size


def test_a_draft_is_marked_draft_and_has_no_number(db, office) -> None:
    cid = make_client(db, "Zürich Dental GmbH")
    inv = one_time(db, cid, ("Project", "1", "100.00"))
    pdf = render(db, inv)
    text = pdf.text()
    assert "Draft — not yet issued" in text and "DRAFT" in text and "INV-" not in text
    assert pdf.filename == f"Draft invoice {inv} Zürich Dental GmbH.pdf"
    assert pdf.title == "Draft invoice — Zürich Dental GmbH"
    # The watermark is drawn, big and translucent, on the page.
    content = pdf.reader.pages[0].get_contents().get_data()
    assert b"/GS" in content or b" gs" in content


def test_void_and_credit_notes(db, office) -> None:
    voided, credited = _one(db), _one(db, "Łódź IT Sp. z o.o.")
    with db.write_session() as s, s.begin():
        void_invoice(s, voided, "Billed the wrong client")
        note = create_credit_note(s, credited, "Firewall returned", "135.00", issue_date=d("2026-11-05")).id
    text = render(db, voided).text()
    assert "VOID" in text and "Billed the wrong client" in text and "nothing is owed" in text.lower()
    cn = render(db, note)
    text = cn.text()
    assert "Credit note" in text and "CN-000001" in text and "Credit for invoice" in text and "INV-000002" in text
    # 135.00 credited with its tax: 135 + 11.98 (8.875%, half up) = 146.98, all off INV-000002's balance.
    assert "$146.98" in text and "Applied to INV-000002" in text and "How to pay" not in text
    assert cn.title == "Credit note CN-000001 — Łódź IT Sp. z o.o." and cn.filename.startswith("CN-000001 ")
    original = flat(render(db, credited).text())
    assert "Credit note CN-000001 · 5 Nov 2026 -$146.98" in original
    assert "Balance due $195.98" in original  # 342.96 − 146.98


def test_a_credit_note_shows_each_credit_line_once_and_says_which_part_is_taxed(db, office) -> None:
    exempt = make_client(db, "Harbor Dental")  # 0% tax: the trial's two identical lines
    inv = one_time(db, exempt, ("Managed seats", "1", "243.50"), ("Licences", "1", "50.00", False))
    issue_ids(db, [inv], ISSUED)
    with db.write_session() as s, s.begin():
        note = create_credit_note(s, inv, "Goodwill credit", "50.00", issue_date=d("2026-11-05")).id
    text = flat(render(db, note).text())
    assert text.count("Goodwill credit") == 2, text  # the line and the REASON section
    assert "Credit on INV-000001: Goodwill credit 1 $50.00 $50.00" in text
    assert "part" not in text and "no tax" not in text and "not taxed" not in text
    # A taxed client: two lines, each named, and the untaxed one marked once.
    taxed = one_time(db, make_client(db, "Zürich Dental GmbH", tax_rate="8.875"),
                     ("Firewall appliance", "3", "45.00"), ("Licences", "1", "50.00", False))
    issue_ids(db, [taxed], ISSUED)
    with db.write_session() as s, s.begin():
        note = create_credit_note(s, taxed, "Goodwill credit", "100.00", issue_date=d("2026-11-05")).id
    text = flat(render(db, note).text())
    assert "Credit on INV-000002: Goodwill credit (taxable part)" in text
    assert "Credit on INV-000002: Goodwill credit (not taxed)" in text
    assert "(no tax)" not in text


def test_payments_name_the_method_as_the_client_knows_it(db, office) -> None:
    inv = _one(db)
    with db.write_session() as s, s.begin():
        record_payment(s, inv, "42.96", "ach", reference="TRX 55", received_on=d("2026-11-10"), today=TODAY)
    text = flat(render(db, inv).text())
    assert "Payment 10 Nov 2026 · Bank transfer (ACH) · TRX 55 -$42.96" in text
    assert "Stripe" not in text
    assert PaymentMethod.ACH.label == "ACH (outside Stripe)"  # the office's screens keep their word
    assert {m.client_label for m in PaymentMethod} == {"Check", "Cash", "Wire transfer", "Bank transfer (ACH)",
                                                       "Card", "Bank debit (ACH)", "Other"}


def test_payments_and_the_balance(db, office) -> None:
    inv = _one(db)
    _pay(db, inv, "42.96", d("2026-11-10"), reference="1043")
    text = flat(render(db, inv).text())
    assert "Payment 10 Nov 2026 · Check · 1043 -$42.96" in text
    assert "Balance due $300.00" in text and "PAID" not in text
    _pay(db, inv, "350.00", d("2026-11-15"), credit_excess=True)
    text = flat(render(db, inv).text())
    assert "PAID" in text and "Paid in full" in text and "Balance due $0.00" in text
    assert "of $350.00 received; the rest kept as account credit" in text and "How to pay" not in text


def test_credit_applied_at_issue_and_uncollectible(db, office) -> None:
    cid = make_client(db, "Zürich Dental GmbH")
    with db.write_session() as s, s.begin():
        s.add(ClientCredit(client_id=cid, amount_cents=2_500, reason=CreditReason.OVERPAYMENT, memo="test"))
    inv = one_time(db, cid, ("Project", "1", "100.00"))
    issue_ids(db, [inv], ISSUED)
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, inv, "Gone")
    text = flat(render(db, inv, today=d("2026-12-20")).text())
    assert "Account credit applied -$25.00" in text and "Balance due $75.00" in text
    assert "PAST DUE" in text and "19 days overdue" in text


def test_how_to_pay_uses_the_company_instructions_or_a_default(db, office) -> None:
    inv = _one(db)
    text = flat(render(db, inv).text())
    assert "HOW TO PAY" in text and "Please quote INV-000001 with your payment" in text
    assert "billing@acme.example" in text
    with db.write_session() as s, s.begin():
        s.execute(update(CompanyProfile).values(payment_instructions="Wire: First Bank, account 987654321\n"
                                                                     "Checks to 120 Harbor Street"))
    text = render(db, inv).text()
    assert "Wire: First Bank, account 987654321" in text and "Checks to 120 Harbor Street" in text
    assert "Please quote INV-000001" in text and "charged automatically" not in text
    # Instructions that already ask for the number are not repeated.
    with db.write_session() as s, s.begin():
        s.execute(update(CompanyProfile).values(payment_instructions="Wire to First Bank.\n"
                                                                     "Please quote the invoice number."))
    text = render(db, inv).text()
    assert "Please quote the invoice number." in text and "Please quote INV-000001" not in text


def test_autopay_wording(db, office) -> None:
    inv = _one(db, autopay=True)
    text = flat(render(db, inv, today=ISSUED).text())
    assert "Due on receipt" in text
    assert "Will be charged automatically on 1 Nov 2026 to the payment method on file." in text
    assert "How to pay".upper() not in text
    # Still unpaid after its due date: the charge failed; no promise of a charge in the past.
    text = flat(render(db, inv, today=TODAY).text())
    assert "The automatic charge to the payment method on file on 1 Nov 2026 has not gone through" in text
    assert "billing@acme.example" in text and "Will be charged" not in text
    _card_payment(db, inv, 34_296, d("2026-12-03"), "pi_3Nx")
    text = flat(render(db, inv).text())
    assert "Paid by card on 3 Dec 2026 (reference pi_3Nx)" in text and "PAID" in text
    # Issue 5 fills in the card on file; the wording takes it.
    with db.session() as s:
        doc = invoice_document(s, inv, TODAY)
    labelled = dataclasses.replace(doc, autopay_method_label="Visa ending 4242")
    text = flat("".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(render_invoice(labelled))).pages))
    assert "Paid by Visa ending 4242 on 3 Dec 2026" in text


def test_an_open_autopay_invoice_names_the_card_when_known(db, office) -> None:
    inv = _one(db, autopay=True)
    with db.session() as s:
        doc = dataclasses.replace(invoice_document(s, inv, ISSUED), autopay_method_label="Visa ending 4242")
    text = flat("".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(render_invoice(doc))).pages))
    assert "Will be charged automatically on 1 Nov 2026 to Visa ending 4242." in text


def test_adjustments_and_discounts_are_marked_and_the_memo_printed(db, office) -> None:
    cid = make_client(db, "Zürich Dental GmbH")
    inv = draft_with_lines(db, cid, [("service", "10", 5_000, "Managed seats"),
                                     ("adjustment", "1", -1_234, "Seats 12 → 10 from 15 Oct (17 of 31 days)"),
                                     ("discount", "1", -2_500, "Autopay discount 5%")],
                           memo="Thank you — 株式会社テスト sends regards.")
    issue_ids(db, [inv], ISSUED)
    text = flat(render(db, inv).text())
    assert "ADJUSTMENT Seats 12 → 10 from 15 Oct" in text and "-$12.34" in text
    assert "DISCOUNT Autopay discount 5%" in text and "-$25.00" in text
    assert "NOTES Thank you — 株式会社テスト sends regards." in text
    assert "$462.66" in text  # 500 − 12.34 − 25


def test_a_generated_invoice_shows_its_billing_period_and_euro_amounts(db, office) -> None:
    from billing_helpers import make_agreement, run_month

    cid = make_client(db, "Wien IT GmbH", currency="EUR", tax_rate="20")
    make_agreement(db, cid, "2026-01-01", [LineDraft("Managed workstation", "12", "35.50")])
    [inv] = run_month(db, Month(2026, 11))
    text = flat(render(db, inv).text())
    assert "Billing period 1 Nov 2026 – 30 Nov 2026" in text
    assert "€426.00" in text and "Tax 20% €85.20" in text and "€511.20" in text


def test_a_logo_is_drawn_and_a_corrupt_one_is_left_out(db, office, caplog) -> None:
    from mspbill_resources import __name__ as _  # noqa: F401 - the package ships the demo logo

    from mspbill.company import CompanyDraft, get_company, save_company
    from mspbill.pdf.fonts import font_dir

    logo = (font_dir().parent / "demo-logo.png").read_bytes()
    with db.write_session() as s, s.begin():
        company = get_company(s)
        save_company(s, CompanyDraft(name=company.name, email=company.email), logo_png=logo)
    inv = _one(db)
    assert render(db, inv).images() == 1
    with db.write_session() as s, s.begin():
        s.execute(update(CompanyProfile).values(logo_png=b"\x89PNG\r\n\x1a\n" + b"garbage" * 50))
    with caplog.at_level(logging.WARNING, logger="mspbill.pdf.layout"):
        pdf = render(db, inv)
    assert pdf.images() == 0 and "INV-000001" in pdf.text()
    assert any("logo" in r.getMessage() for r in caplog.records)


def test_an_unknown_invoice_is_not_found(db, office) -> None:
    with db.session() as s, pytest.raises(NotFoundError):
        invoice_pdf(s, 424242)
