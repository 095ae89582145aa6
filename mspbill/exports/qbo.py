"""QuickBooks Online's invoice import CSV (`mspbill export qbo`).

Followed: QuickBooks Online's "Import invoices" (Settings → Import data → Invoices; Intuit's help article
"Import invoices in batches", quickbooks.intuit.com/learn-support/.../import-invoices-in-batches/01/338729).
Its columns, auto-mapped when the headers are QuickBooks' own: Invoice number*, Customer*, Invoice date*,
Due date*, Terms, Location, Memo, Item (Product/Service), Item description, Item quantity, Item rate,
Item amount*, Item tax code / Taxable, Service date -- one row per invoice line, the invoice's fields
repeated on each row of the invoice (rows with the same invoice number make one invoice).  The header
names below are those of QuickBooks' own sample file (InvoiceNo, Customer, InvoiceDate, ...).

What mspbill writes and why:
- Dates MM/DD/YYYY (the US sample; the import asks for the date format, and --date-format dmy writes
  DD/MM/YYYY for a company file set up that way).
- Terms: "Net N" from the days between issue and due date, "Due on receipt" for autopay clients (both are
  names QuickBooks sets up by default).
- Item (Product/Service): one product/service for every line ("Services" unless --item names another); the
  line's own text goes in ItemDescription.  The autopay incentive is a line of its own with a negative
  rate and amount, as on the invoice: the import has no discount field.
- ItemQuantity × ItemRate = ItemAmount on every row (QuickBooks recomputes or rejects a row where it is
  not): a line whose amount is not quantity × price (prorated: × days ÷ period days) goes in as 1 × its
  amount, its description ending with the quantity and price it had (common.book_line).
- Taxable Y/N per line and TaxRate (the client's rate) per invoice: QuickBooks works the tax out itself.
- One currency per file: the import has no currency column.  Invoices in other currencies are left out
  with a sentence (export them with --currency).
- Left out, and said so in the summary: voided invoices (not a sale); credit notes (the invoice import
  does not take credit memos: enter them in QuickBooks as credit memos); invoices whose total is negative
  (QuickBooks takes no negative invoice); payments (not part of the invoice import: use Receive payment,
  the IIF export for QuickBooks Desktop, or the plain CSV).
"""

from __future__ import annotations

from mspbill.exports.common import (
    QBO,
    ExportData,
    ExportInvoice,
    ExportOptions,
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
    single_currency,
    terms_text,
    text_cell,
)

HEADERS = ("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Terms", "Location", "Memo",
           "Item(Product/Service)", "ItemDescription", "ItemQuantity", "ItemRate", "ItemAmount", "Taxable",
           "TaxRate", "ServiceDate")


def memo_of(inv: ExportInvoice) -> str:
    return " — ".join(p for p in (inv.title.strip(), inv.memo.strip()) if p)


def build_qbo(data: ExportData, options: ExportOptions) -> ExportResult:
    builder = SummaryBuilder(QBO, data, has_payments=False)
    currency, invoices, payments = single_currency(data, options, builder, "QuickBooks Online's invoice import")
    day = dmy if options.date_order == "dmy" else mdy
    rows: list[list[str]] = []
    voided = [i for i in invoices if not i.is_credit_note and i.is_void]
    credit_notes = [i for i in invoices if i.is_credit_note]
    negative = [i for i in invoices if not i.is_credit_note and not i.is_void and i.total_cents < 0]
    written_off = 0
    for inv in invoices:
        if inv.is_credit_note or inv.is_void or inv.total_cents < 0:
            continue
        written_off += inv.status == "uncollectible"
        rate = percent_text(inv.tax_rate_percent) if inv.tax_rate_percent else ""
        head = [text_cell(inv.number), text_cell(inv.client.name), day(inv.issue_date), day(inv.due_date),
                terms_text(inv.terms_days), "", text_cell(memo_of(inv))]
        for line in inv.lines:
            taxed = line.taxable and inv.tax_rate_percent  # a taxable line of a tax-exempt client is not taxed
            book = book_line(line, inv.currency)  # ItemQuantity × ItemRate must make ItemAmount
            rows.append([*head, text_cell(options.item), text_cell(book.description), quantity_text(book.quantity),
                         decimal_text(book.unit_price_cents, inv.currency),
                         decimal_text(line.amount_cents, inv.currency), "Y" if taxed else "N", rate,
                         day(line.service_start)])
        builder.invoice(inv)
    if voided:
        builder.left_out.append(f"{count_text(len(voided), 'voided invoice')} ({numbers_text(voided)}): a void "
                                "invoice is not a sale.")
    if credit_notes:
        total = sum(i.total_cents for i in credit_notes)
        builder.left_out.append(
            f"{count_text(len(credit_notes), 'credit note')} ({numbers_text(credit_notes)}, "
            f"{decimal_text(total, currency)} {currency}): QuickBooks Online's invoice import does not take credit "
            "memos. Enter them in QuickBooks as credit memos (the plain CSV export lists them).")
    if negative:
        builder.left_out.append(f"{count_text(len(negative), 'invoice')} with a negative total "
                                f"({numbers_text(negative)}): QuickBooks takes no negative invoice; enter each as "
                                "a credit memo.")
    own_payments = [p for p in payments if not p.is_refund]
    refunds = [p for p in payments if p.is_refund]
    if own_payments or refunds:
        parts = [count_text(len(own_payments), "payment")]
        if refunds:
            parts.append(count_text(len(refunds), "refund"))
        builder.left_out.append(f"{' and '.join(parts)} received in the range: the invoice import takes no "
                                "payments. Record them with Receive payment, or use the plain CSV export.")
    if written_off:
        builder.notes.append(f"{count_text(written_off, 'invoice')} written off as uncollectible in mspbill "
                             "are in the file as issued; record the write-off in QuickBooks.")
    if any(i.tax_cents for i in invoices if not i.is_credit_note and not i.is_void):
        builder.notes.append("QuickBooks Online works the sales tax out itself from the Taxable and TaxRate columns; "
                             "compare its tax with the invoices' after the import.")
    builder.notes.append("Import in QuickBooks Online: Settings → Import data → Invoices; choose "
                         + ("DD/MM/YYYY" if day is dmy else "MM/DD/YYYY") + " as the date format.")
    return ExportResult(csv_bytes(HEADERS, rows), builder.build())
