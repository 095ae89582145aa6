"""Plain CSV (`mspbill export csv`): a ZIP of three spreadsheets an accountant can open or load anywhere.

- invoices.csv  every invoice and credit note issued in the range, voided ones too (status "void"), one row
                each: ids, number, client, dates, currency, amounts, status and what settled it;
- lines.csv     their lines, in printed order (the autopay incentive is a line of kind "discount" with a
                negative amount; quantities may be fractional);
- payments.csv  payments received in the range (kind "payment") and refunds given back in it (kind
                "refund", amount negative);
- README.txt    what the columns mean.

One ZIP rather than three loose files, so that `--out FILE` is one file and nothing gets separated; the
entries always come in this order with a fixed date, so the same range gives the same bytes.  Dates are
ISO (YYYY-MM-DD: no spreadsheet reads them the wrong way round); amounts are plain numbers with the
currency's minor units ("1234.50", JPY "1234"), never a currency symbol, with the currency in its own
column (amounts in different currencies are not added anywhere).  Text cells go through
mspbill.csv_cells.formula_safe; the files are UTF-8 with a BOM and CRLF rows.

Status, paid, credited and balance are as they stand when the export is made (an invoice of the range
paid later shows as paid); everything else is fixed at issue.
"""

from __future__ import annotations

from mspbill.exports.common import (
    PLAIN,
    ExportData,
    ExportInvoice,
    ExportOptions,
    ExportPayment,
    ExportResult,
    SummaryBuilder,
    count_text,
    csv_bytes,
    decimal_text,
    iso,
    quantity_text,
    text_cell,
    zip_bytes,
)

INVOICE_HEADERS = ("invoice_id", "kind", "number", "status", "client_id", "client", "issue_date", "due_date",
                   "currency", "subtotal", "tax_rate_percent", "tax", "total", "credit_applied", "paid", "credited",
                   "balance", "credit_for", "title", "memo", "status_reason")
LINE_HEADERS = ("invoice_id", "number", "line", "line_kind", "description", "quantity", "unit_price", "amount",
                "taxable", "service_start", "service_end", "currency")
PAYMENT_HEADERS = ("kind", "id", "date", "client_id", "client", "invoice_number", "method", "reference", "currency",
                   "amount", "applied_to_invoice", "to_client_credit", "payment_id", "status")
FILES = ("invoices.csv", "lines.csv", "payments.csv", "README.txt")

README = """mspbill plain CSV export: {start} to {end}

invoices.csv  Every invoice and credit note issued in the range (issue date), voided ones too.
  kind: invoice or credit_note. status: open, paid, void or uncollectible (written off); a credit
  note's status is applied (and its settlement columns are empty).
  subtotal + tax = total. credit_applied: client credit used when issued; paid: payments applied;
  credited: credit notes applied; balance = total - credit_applied - paid - credited (0 when void).
  credit_for: the invoice a credit note credits. Status, paid, credited and balance are as they
  stood when the file was made; the rest is fixed at issue.
lines.csv     The lines of those invoices and credit notes, in printed order (line 0 first).
  line_kind: service, adjustment, discount (the autopay incentive, negative), item, instalment.
  amount is what was billed: quantity x unit_price rounded half up to the cent, except on a prorated
  line (part of a period: quantity x unit_price x days / period days, the days in its description and
  service_start..service_end) and on lines worked out otherwise. taxable: yes or no.
payments.csv  Payments received in the range (kind payment, by the day received) and refunds given
  back in it (kind refund, amount negative, by the day refunded; payment_id: the payment refunded).
  applied_to_invoice + to_client_credit = amount (a payment larger than the balance left client credit).

Amounts are plain numbers in the currency of the row; amounts in different currencies are never added.
Dates are YYYY-MM-DD. Client names starting with = + - or @ carry a leading apostrophe so that a
spreadsheet shows them as text.
"""


def _invoice_row(inv: ExportInvoice) -> list[str]:
    cur = inv.currency
    if inv.is_credit_note:
        # Applied when issued (to the invoice, or as client credit): it settles others and owes nothing.
        status, settled = "applied", ["", "", "", ""]
    else:
        status = inv.status
        balance = 0 if inv.is_void else inv.balance_cents  # a void invoice is owed by nobody
        settled = [decimal_text(inv.credit_applied_cents, cur), decimal_text(inv.paid_cents, cur),
                   decimal_text(inv.credited_cents, cur), decimal_text(balance, cur)]
    return [str(inv.id), inv.kind, text_cell(inv.number), status, str(inv.client.id), text_cell(inv.client.name),
            iso(inv.issue_date), iso(inv.due_date), cur, decimal_text(inv.subtotal_cents, cur),
            quantity_text(inv.tax_rate_percent),
            decimal_text(inv.tax_cents, cur), decimal_text(inv.total_cents, cur), *settled,
            text_cell(inv.credit_for_number), text_cell(inv.title), text_cell(inv.memo), text_cell(inv.status_reason)]


def _line_rows(inv: ExportInvoice) -> list[list[str]]:
    cur = inv.currency
    return [[str(inv.id), text_cell(inv.number), str(n), line.kind, text_cell(line.description),
             quantity_text(line.quantity), decimal_text(line.unit_price_cents, cur),
             decimal_text(line.amount_cents, cur), "yes" if line.taxable else "no", iso(line.service_start),
             iso(line.service_end), cur]
            for n, line in enumerate(inv.lines)]


def _payment_row(p: ExportPayment) -> list[str]:
    cur = p.currency
    applied = 0 if p.is_refund else p.applied_cents
    to_credit = 0 if p.is_refund else p.amount_cents - p.applied_cents
    return [p.kind, str(p.id), iso(p.date), str(p.client.id), text_cell(p.client.name),
            text_cell(p.invoice_number), p.method, text_cell(p.reference), cur, decimal_text(p.signed_cents, cur),
            decimal_text(applied, cur), decimal_text(to_credit, cur), str(p.payment_id), p.status]


def build_plain(data: ExportData, options: ExportOptions) -> ExportResult:
    del options  # the plain export has nothing to name: every currency, every status
    builder = SummaryBuilder(PLAIN, data, has_payments=True, entries=FILES)
    invoice_rows, line_rows = [], []
    for inv in data.invoices:
        invoice_rows.append(_invoice_row(inv))
        line_rows.extend(_line_rows(inv))
        if not inv.is_void:
            builder.invoice(inv)
    for p in data.payments:
        builder.payment(p)
    voided = [i for i in data.invoices if i.is_void]
    if voided:
        # In the file, but not in the totals: a void invoice is not a sale.
        builder.line_count += sum(len(i.lines) for i in voided)
        builder.notes.append(f"{count_text(len(voided), 'voided invoice')} are in the file with status void and "
                             "not counted in the totals above.")
    readme = README.format(start=data.start.isoformat(), end=data.end.isoformat()).replace("\n", "\r\n")
    files = [(FILES[0], csv_bytes(INVOICE_HEADERS, invoice_rows)), (FILES[1], csv_bytes(LINE_HEADERS, line_rows)),
             (FILES[2], csv_bytes(PAYMENT_HEADERS, [_payment_row(p) for p in data.payments])),
             (FILES[3], readme.encode("utf-8"))]
    return ExportResult(zip_bytes(files), builder.build())
