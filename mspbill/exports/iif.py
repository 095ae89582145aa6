"""QuickBooks Desktop's Intuit Interchange Format (`mspbill export quickbooks`): invoices, credit memos and
payments.

Followed: Intuit's IIF reference for transactions (QuickBooks Desktop help, "Import files: transactions",
support.quickbooks.intuit.com .../IIF/iif_reference_transactions.html) and "Intuit Interchange Format
(.IIF) files" (support.quickbooks.intuit.com/support/Articles/HOW12778):
- an IIF file is tab-separated text; rows starting with "!" name the columns of the rows of that keyword
  (!TRNS, !SPL, !ENDTRNS); a transaction is one TRNS row, its distribution (SPL) rows, then ENDTRNS;
- TRNSTYPE, ACCNT and AMOUNT are required; TRNSTYPE here is INVOICE, CREDIT MEMO or PAYMENT;
- DATE is month/day/year (written MM/DD/YYYY, which QuickBooks reads);
- the TRNS amount is the transaction's side on its account and the SPL amounts the other sides, so a
  transaction's amounts add up to zero (tests/test_exports_iif.py checks every one):

  INVOICE      TRNS Accounts Receivable +total;  SPL income -line (a discount line +), Sales Tax Payable -tax
  CREDIT MEMO  TRNS Accounts Receivable -total;  SPL income +line, Sales Tax Payable +tax
  PAYMENT      TRNS Undeposited Funds +amount;   SPL Accounts Receivable -amount

  SPL quantities follow Intuit's sample invoice (QNTY -2, PRICE 10, AMOUNT -20): QNTY × PRICE = AMOUNT;
  a line whose amount is not quantity × price (prorated) is written as 1 × its amount (common.book_line).
- Account and item names are the usual ones of a new company file, each changeable (--ar-account,
  --income-account, --tax-account, --deposit-account, --item).  The sales tax is its own split to the sales
  tax account (the amount mspbill charged), not QuickBooks' automatic tax line (AUTOSTAX), so QuickBooks
  does not work it out a second time.

Text: a cell holding a comma or a double quote is quoted the way a spreadsheet saving tab-delimited text
quotes it ("Smith, Jones & ""Partners"" LLC"): Intuit suggests editing IIF files in a spreadsheet, and
QuickBooks also reads comma-separated IIF, so an unquoted comma in a name would be taken for a column
break.  QuickBooks Desktop is a Windows program that reads IIF as ANSI text, so the file is Windows-1252
with CRLF line endings: a character Windows-1252 lacks becomes its base letter (ź -> z, Ł -> L) or "?"
(a client's name that would lose letters gets a stand-in naming its id instead, iif_name; two clients
that would be one customer are refused),
and the summary says how many names or texts changed.  Tabs and line breaks inside a text would break the
row and become spaces.  Intuit suggests viewing IIF files in a spreadsheet, so text cells also go through
mspbill.csv_cells.formula_safe: a client named "=HYPERLINK(...)" is inert there too (QuickBooks shows the
leading apostrophe as part of the name).

Left out, with a sentence: voided invoices, other currencies than the file's (IIF has no currency column),
refunds (record them in QuickBooks: a check or refund to the customer against Accounts Receivable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mspbill.exports.common import (
    IIF,
    ExportClient,
    ExportData,
    ExportInvoice,
    ExportOptions,
    ExportPayment,
    ExportResult,
    SummaryBuilder,
    book_line,
    count_text,
    cp1252_loses_letters,
    decimal_text,
    mdy,
    numbers_text,
    one_line,
    percent_text,
    quantity_text,
    single_currency,
    terms_text,
    text_cell,
    to_cp1252,
)
from mspbill.validation import Issue, ValidationError

TRNS_HEADERS = ("!TRNS", "TRNSID", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "MEMO", "CLEAR",
                "TOPRINT", "DUEDATE", "TERMS", "PAYMETH")
SPL_HEADERS = ("!SPL", "SPLID", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "MEMO", "CLEAR", "QNTY",
               "PRICE", "INVITEM", "TAXABLE")
END_HEADERS = ("!ENDTRNS",)
# QuickBooks Desktop keeps this many characters of a document number.
DOCNUM_MAX = 11


def iif_name(client: ExportClient) -> tuple[str, bool]:
    """The client's QuickBooks customer name in the file, and whether it is a stand-in.

    Windows-1252 keeps accents (Müller) and turns a letter it lacks into its base letter (Łódź -> Lódz), but
    a name in another script would become "???????", and two such names of the same length one customer.
    Such a name is written as its Latin part, if any, and the client's id: "Sakura Design #57", "Client #57"."""
    text = text_cell(client.name)
    if not cp1252_loses_letters(text):
        return to_cp1252(text)[0], False
    kept = to_cp1252(text)[0].replace("?", " ")
    latin = " ".join(kept.split()).strip(" -–—,.;:()[]&/")
    if not re.search(r"\w", latin):
        latin = "Client"
    return f"{latin} #{client.id}", True


def iif_names(clients: Iterable[ExportClient]) -> tuple[dict[int, str], list[tuple[ExportClient, str]]]:
    """{client id: name in the file} and the clients given a stand-in name; a sentence (ValidationError) when
    two different clients would be one QuickBooks customer (QuickBooks matches names ignoring case)."""
    names: dict[int, str] = {}
    stand_ins: list[tuple[ExportClient, str]] = []
    owners: dict[str, ExportClient] = {}
    issues: list[Issue] = []
    for client in sorted({c.id: c for c in clients}.values(), key=lambda c: c.id):
        name, stand_in = iif_name(client)
        names[client.id] = name
        if stand_in:
            stand_ins.append((client, name))
        other = owners.setdefault(name.casefold(), client)
        if other.id != client.id:
            issues.append(Issue("clients", f"The clients “{other.name}” (#{other.id}) and “{client.name}” "
                                           f"(#{client.id}) would both be the QuickBooks customer “{name}” (an IIF "
                                           "file is Windows-1252, which drops some accents), so their invoices "
                                           "and payments would merge. Rename one of them in mspbill, then "
                                           "export again."))
    if issues:
        raise ValidationError(issues)
    return names, stand_ins


class _Writer:
    def __init__(self, names: dict[int, str]) -> None:
        self.rows: list[list[str]] = []
        self.changed_texts = 0
        self.names = names

    def name(self, client: ExportClient) -> str:
        """The client's customer name (iif_names): the same for every row of the client."""
        return self.names[client.id]

    def text(self, value: str) -> str:
        """A text cell: one line, inert in a spreadsheet, in Windows-1252."""
        text, changed = to_cp1252(text_cell(value))
        self.changed_texts += changed
        return text

    def row(self, cells: Sequence[str]) -> None:
        self.rows.append(list(cells))

    def data(self) -> bytes:
        lines = ["\t".join(TRNS_HEADERS), "\t".join(SPL_HEADERS), "\t".join(END_HEADERS)]
        lines.extend("\t".join(iif_cell(c) for c in row) for row in self.rows)
        return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def iif_cell(value: str) -> str:
    """One cell of a row: on one line, and quoted as a spreadsheet saving tab-delimited text quotes it (the way
    Intuit suggests IIF files be edited), when it holds a comma or a double quote: "Smith, Jones & ""P"" LLC"."""
    text = one_line(value)
    if "," in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _neg(cents: int, currency: str) -> str:
    return decimal_text(-cents, currency)


def _invoice(w: _Writer, inv: ExportInvoice, options: ExportOptions) -> None:
    """INVOICE (+total to A/R) or CREDIT MEMO (-total); the splits take the other side."""
    cur = inv.currency
    sign = -1 if inv.is_credit_note else 1
    kind = "CREDIT MEMO" if inv.is_credit_note else "INVOICE"
    name = w.name(inv.client)
    number = w.text(inv.number)
    day = mdy(inv.issue_date)
    memo = " — ".join(p for p in (inv.title.strip(), inv.memo.strip()) if p)
    w.row(["TRNS", "", kind, day, w.text(options.ar_account), name, decimal_text(sign * inv.total_cents, cur), number,
           w.text(memo), "N", "N", mdy(inv.due_date), "" if inv.is_credit_note else terms_text(inv.terms_days), ""])
    for line in inv.lines:
        taxed = line.taxable and inv.tax_rate_percent  # a taxable line of a tax-exempt client is not taxed
        book = book_line(line, cur)  # QNTY × PRICE = AMOUNT, prorated lines too
        w.row(["SPL", "", kind, day, w.text(options.income_account), "", _neg(sign * line.amount_cents, cur), number,
               w.text(book.description), "N", quantity_text(-sign * book.quantity),
               decimal_text(book.unit_price_cents, cur), w.text(options.item), "Y" if taxed else "N"])
    if inv.tax_cents:
        w.row(["SPL", "", kind, day, w.text(options.tax_account), "", _neg(sign * inv.tax_cents, cur), number,
               w.text(f"Sales tax {percent_text(inv.tax_rate_percent)}"),
               "N", "", "", "", "N"])
    w.row(["ENDTRNS"])


def _payment(w: _Writer, p: ExportPayment, options: ExportOptions) -> None:
    cur = p.currency
    name = w.name(p.client)
    day = mdy(p.date)
    memo = f"Payment on {p.invoice_number}" if p.invoice_number else "Payment"
    if p.reference:
        memo += f" (ref {p.reference})"
    docnum = w.text(p.reference[:DOCNUM_MAX])
    w.row(["TRNS", "", "PAYMENT", day, w.text(options.deposit_account), name, decimal_text(p.amount_cents, cur), docnum,
           w.text(memo), "N", "N", "", "", w.text(p.method_label)])
    w.row(["SPL", "", "PAYMENT", day, w.text(options.ar_account), name, _neg(p.amount_cents, cur),
           w.text(p.invoice_number), w.text(memo), "N", "", "", "", ""])
    w.row(["ENDTRNS"])


def build_iif(data: ExportData, options: ExportOptions) -> ExportResult:
    builder = SummaryBuilder(IIF, data, has_payments=True)
    currency, invoices, payments = single_currency(data, options, builder, "an IIF file")
    voided = [i for i in invoices if i.is_void]
    names, stand_ins = iif_names([i.client for i in invoices if not i.is_void]
                                 + [p.client for p in payments if not p.is_refund])
    w = _Writer(names)
    # Names that lost accents (Łódź -> Lódz) are in the count of changed texts; stand-ins have notes of their own.
    shown = {c.id: c for c in [*(i.client for i in invoices), *(p.client for p in payments)] if c.id in names}
    w.changed_texts += sum(1 for c in shown.values() if names[c.id] != text_cell(c.name)
                           and all(c.id != s.id for s, _n in stand_ins))
    long_numbers = 0
    written_off = 0
    for inv in invoices:
        if inv.is_void:
            continue
        _invoice(w, inv, options)
        builder.invoice(inv)
        long_numbers += len(inv.number) > DOCNUM_MAX
        written_off += inv.status == "uncollectible"
    refunds = [p for p in payments if p.is_refund]
    for p in payments:
        if not p.is_refund:
            _payment(w, p, options)
            builder.payment(p)
    if voided:
        builder.left_out.append(f"{count_text(len(voided), 'voided invoice')} ({numbers_text(voided)}): a void "
                                "invoice is not a sale.")
    if refunds:
        total = sum(p.amount_cents for p in refunds)
        builder.left_out.append(f"{count_text(len(refunds), 'refund')} ({decimal_text(total, currency)} {currency}): "
                                "record them in QuickBooks as a refund to the customer against Accounts "
                                "Receivable (the plain CSV export lists them).")
    if long_numbers:
        builder.notes.append(f"{count_text(long_numbers, 'invoice number')} longer than {DOCNUM_MAX} characters: "
                             "QuickBooks Desktop keeps the first 11 of a document number.")
    if written_off:
        builder.notes.append(f"{count_text(written_off, 'invoice')} written off as uncollectible in mspbill "
                             "are in the file as issued; record the write-off in QuickBooks.")
    for client, name in stand_ins:
        builder.notes.append(f"The client “{client.name}” is “{name}” in the file: QuickBooks Desktop reads IIF as "
                             "Windows-1252, which has no letters for that name. Rename it in QuickBooks or give "
                             "the client a Latin name in mspbill.")
    if w.changed_texts:
        builder.notes.append(f"{w.changed_texts:,} {'name or text' if w.changed_texts == 1 else 'names or texts'} had letters QuickBooks Desktop cannot "
                             "read (it reads IIF as Windows-1252): written with the nearest plain letter or \"?\".")
    builder.notes.append(f"Accounts: {options.ar_account}, {options.income_account} (income, item "
                         f"{options.item}), {options.tax_account}, {options.deposit_account}: the company file should "
                         "have them under these names (the command line's --ar-account, --income-account, "
                         "--tax-account, --deposit-account and --item name others). Import in QuickBooks Desktop: File → "
                         "Utilities → Import → IIF Files (back up the company file first).")
    return ExportResult(w.data(), builder.build())
