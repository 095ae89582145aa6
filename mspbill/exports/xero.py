"""Xero (`mspbill export xero`): one ZIP holding

- invoices.csv      Xero's sales invoice import template (Business → Invoices → Import);
- credit-notes.csv  the credit notes, in the same template with negative amounts;
- payments-CUR.csv  the payments received (and refunds, negative) as a bank statement CSV, one file per
                    currency (a bank account holds one currency);
- README.txt        what each file is and where it goes in Xero.

Followed: Xero's sales invoice import template, whose columns are (* required) *ContactName, EmailAddress,
POAddressLine1-4, POCity, PORegion, POPostalCode, POCountry, *InvoiceNumber, Reference, *InvoiceDate,
*DueDate, InventoryItemCode, *Description, *Quantity, *UnitAmount, Discount, *AccountCode, *TaxType,
TrackingName1, TrackingOption1, TrackingName2, TrackingOption2, Currency, BrandingTheme -- one row per
line, lines of one invoice sharing its InvoiceNumber; amounts without a currency symbol; TaxType the display
name of a tax rate of the organisation; the file is either all tax-exclusive or all tax-inclusive (chosen
when importing: these amounts are tax-exclusive); at most 500 invoices a file.  Payments: Xero has no CSV
import of customer payments (a long-standing feature request, productideas.xero.com), so they come as
Xero's bank statement CSV (Date, Amount, Payee, Description, Reference; money in positive, money out
negative), imported into the bank account (Manage Account → Import a Statement) and matched there to the
invoices, which is what reconciliation does anyway.

Choices:
- Dates DD/MM/YYYY, or MM/DD/YYYY for a US company (Xero reads the date order of the organisation's
  region); --date-format overrides.
- Xero works a line's amount out as Quantity × UnitAmount, so a line whose amount is not that (a prorated
  line: quantity × price × days ÷ period days) goes in as 1 × its amount, its description ending with the
  quantity and price it had (common.book_line).
- The autopay incentive is a line of its own with a negative UnitAmount, as on the invoice (the Discount
  column is a percentage of one line).
- AccountCode "200" (Sales in Xero's default chart), TaxType "Tax on Sales" for taxable lines and "Tax
  Exempt" for the others (a US organisation's names); --account-code, --tax-type, --no-tax-type change
  them.  Xero works the tax out from the rate named; the summary says so when clients have different rates.
- Every currency in one file with the Currency column filled in.
- Left out, with a sentence: voided invoices and invoices with a negative total (Xero takes neither).
- Text cells through mspbill.csv_cells.formula_safe; UTF-8 with a BOM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from mspbill.company import is_us
from mspbill.exports.common import (
    XERO,
    ExportData,
    ExportInvoice,
    ExportOptions,
    ExportPayment,
    ExportResult,
    SummaryBuilder,
    book_line,
    count_text,
    csv_bytes,
    decimal_text,
    dmy,
    mdy,
    numbers_text,
    percent_text,
    quantity_text,
    text_cell,
    zip_bytes,
)

INVOICE_HEADERS = ("*ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3",
                   "POAddressLine4", "POCity", "PORegion", "POPostalCode", "POCountry", "*InvoiceNumber", "Reference",
                   "*InvoiceDate", "*DueDate", "InventoryItemCode", "*Description", "*Quantity", "*UnitAmount",
                   "Discount", "*AccountCode", "*TaxType", "TrackingName1", "TrackingOption1", "TrackingName2",
                   "TrackingOption2", "Currency", "BrandingTheme")
PAYMENT_HEADERS = ("Date", "Amount", "Payee", "Description", "Reference")
INVOICES_FILE = "invoices.csv"
CREDIT_NOTES_FILE = "credit-notes.csv"
README_FILE = "README.txt"
XERO_MAX_INVOICES = 500

DayFormat = Callable[[dt.date | None], str]


def payments_file(currency: str) -> str:
    return f"payments-{currency}.csv"


def _invoice_rows(inv: ExportInvoice, options: ExportOptions, day: DayFormat) -> list[list[str]]:
    c = inv.client
    sign = -1 if inv.is_credit_note else 1
    reference = inv.title.strip()
    if inv.is_credit_note and inv.credit_for_number:
        reference = f"Credit note for {inv.credit_for_number}"
    head = [text_cell(c.name), text_cell(c.email), text_cell(c.address_line1), text_cell(c.address_line2), "", "",
            text_cell(c.city), text_cell(c.region), text_cell(c.postal_code), text_cell(c.country),
            text_cell(inv.number), text_cell(reference), day(inv.issue_date), day(inv.due_date), ""]
    rows = []
    for line in inv.lines:
        tax_type = options.tax_type if line.taxable and inv.tax_rate_percent else options.no_tax_type
        book = book_line(line, inv.currency)  # Xero's line amount is Quantity × UnitAmount
        rows.append([*head, text_cell(book.description), quantity_text(book.quantity),
                     decimal_text(sign * book.unit_price_cents, inv.currency), "", text_cell(options.account_code),
                     text_cell(tax_type), "", "", "", "", inv.currency, ""])
    return rows


def _payment_row(p: ExportPayment, day: DayFormat) -> list[str]:
    what = "Refund" if p.is_refund else "Payment"
    description = f"{what} ({p.method_label})" + (f" on {p.invoice_number}" if p.invoice_number else "")
    return [day(p.date), decimal_text(p.signed_cents, p.currency), text_cell(p.client.name), text_cell(description),
            text_cell(p.invoice_number or p.reference)]


def _readme(data: ExportData, entries: list[str], date_format: str) -> bytes:
    lines = [
        f"mspbill export for Xero: {data.start.isoformat()} to {data.end.isoformat()}",
        "",
        f"{INVOICES_FILE}: the invoices issued in the range, in Xero's sales invoice template.",
        "  Xero: Business > Invoices > Import. Amounts are tax exclusive; dates are " + date_format + ".",
        f"{CREDIT_NOTES_FILE}: the credit notes issued in the range, in the same template with negative",
        "  amounts (Reference names the invoice credited). Import it the same way after the invoices.",
    ]
    for name in entries:
        if name.startswith("payments-"):
            currency = name[len("payments-"):-len(".csv")]
            lines += [f"{name}: payments received in {currency} (refunds negative) as a bank statement.",
                      "  Xero has no import of customer payments: import this into the bank account the money went to",
                      "  (Accounting > Bank accounts > Manage Account > Import a Statement) and match each line",
                      "  to its invoice (the Reference column holds the invoice number)."]
    lines += ["", "Voided invoices and drafts are not included. Client names starting with = + - or @ carry a",
              "leading apostrophe so that a spreadsheet shows them as text."]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def build_xero(data: ExportData, options: ExportOptions) -> ExportResult:
    order = options.date_order or ("mdy" if is_us(data.company_country) else "dmy")
    day = mdy if order == "mdy" else dmy
    date_format = "MM/DD/YYYY" if order == "mdy" else "DD/MM/YYYY"
    invoice_rows: list[list[str]] = []
    credit_rows: list[list[str]] = []
    voided = [i for i in data.invoices if i.is_void]
    negative = [i for i in data.invoices if not i.is_credit_note and not i.is_void and i.total_cents < 0]
    included: list[ExportInvoice] = []
    for inv in data.invoices:
        if inv.is_void or (not inv.is_credit_note and inv.total_cents < 0):
            continue
        (credit_rows if inv.is_credit_note else invoice_rows).extend(_invoice_rows(inv, options, day))
        included.append(inv)
    by_currency: dict[str, list[list[str]]] = {}
    for p in data.payments:
        by_currency.setdefault(p.currency, []).append(_payment_row(p, day))
    payment_currencies = [c for c in data.currencies if c in by_currency] or [data.company_currency]
    entries = [INVOICES_FILE, CREDIT_NOTES_FILE, *(payments_file(c) for c in payment_currencies), README_FILE]
    builder = SummaryBuilder(XERO, data, has_payments=True, entries=tuple(entries))
    for inv in included:
        builder.invoice(inv)
    for p in data.payments:
        builder.payment(p)
    files = [(INVOICES_FILE, csv_bytes(INVOICE_HEADERS, invoice_rows)),
             (CREDIT_NOTES_FILE, csv_bytes(INVOICE_HEADERS, credit_rows)),
             *((payments_file(c), csv_bytes(PAYMENT_HEADERS, by_currency.get(c, []))) for c in payment_currencies),
             (README_FILE, _readme(data, entries, date_format))]
    if voided:
        builder.left_out.append(f"{count_text(len(voided), 'voided invoice')} ({numbers_text(voided)}): a void "
                                "invoice is not a sale.")
    if negative:
        builder.left_out.append(f"{count_text(len(negative), 'invoice')} with a negative total "
                                f"({numbers_text(negative)}): Xero takes no negative invoice; enter each as a "
                                "credit note.")
    rates = sorted({i.tax_rate_percent for i in included if i.tax_rate_percent and i.tax_cents})
    if len(rates) > 1:
        builder.notes.append(f"The clients have {len(rates)} different tax rates ("
                             f"{', '.join(percent_text(r) for r in rates)}) but the file names one tax rate, "
                             f"“{options.tax_type}”: Xero works the tax out from that rate, so check those "
                             "invoices' tax after the import.")
    elif rates:
        builder.notes.append(f"Taxable lines use the tax rate “{options.tax_type}” ({percent_text(rates[0])} in "
                             "mspbill): Xero works the tax out from its rate, which should be the same.")
    if builder.invoice_count > XERO_MAX_INVOICES:
        builder.notes.append(f"Xero imports at most {XERO_MAX_INVOICES} invoices a file: export the range in "
                             "smaller parts.")
    builder.notes.append(f"Import {INVOICES_FILE} in Xero (Business → Invoices → Import; amounts are tax "
                         f"exclusive, dates {date_format}), then {CREDIT_NOTES_FILE}; the payments files go into "
                         "the bank account (Import a Statement), as the README in the ZIP says.")
    return ExportResult(zip_bytes(files), builder.build())
