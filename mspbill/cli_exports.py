"""`mspbill export qbo|quickbooks|xero|csv --from D --to D --out FILE [--json]`: the accountant's exports.

The range is inclusive (invoices by issue date, payments by the day received) and ends today at the latest.
The file is written through a temporary file and renamed, so a failure never leaves half a file (an
existing file of that name is replaced: exporting again is the normal thing to do).  The summary -- counts,
totals per currency, what was left out and why -- goes to standard output (with --json: one JSON document
and nothing else); "Saved ... to PATH" (or "Replaced PATH ..." when a file was there) goes to standard error.
--currency must name a currency the office uses (a client, invoice or payment in it).  Bad input: a
sentence, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from mspbill.cli_documents import EXIT_OK, DocumentCliError, write_file_atomically
from mspbill.cli_output import emit_json
from mspbill.context import AppContext
from mspbill.exports import (
    FORMATS,
    ExportOptions,
    build_export,
    check_currency,
    export_format,
    load_export_data,
    parse_range,
)
from mspbill.money import is_valid_currency


def _options(args: argparse.Namespace) -> ExportOptions:
    values: dict[str, Any] = {}
    currency = getattr(args, "currency", None)
    if currency is not None:
        code = currency.strip().upper()
        if not is_valid_currency(code):
            raise DocumentCliError(f"“{currency}” is not a currency code; use three letters such as USD or EUR.")
        values["currency"] = code
    if getattr(args, "date_format", None):
        values["date_order"] = args.date_format
    for name in ("item", "ar_account", "income_account", "tax_account", "deposit_account", "account_code",
                 "tax_type", "no_tax_type"):
        value = getattr(args, name, None)
        if value is not None:
            if not value.strip():
                raise DocumentCliError(f"--{name.replace('_', '-')} needs a name, not an empty text.")
            values[name] = value.strip()
    return ExportOptions(**values)


def _target(out: str | None, suggested: str, suffix: str) -> Path:
    path = Path(out).expanduser() if out else Path(suggested)
    if out and out.endswith(("/", os.sep)) and not path.is_dir():
        raise DocumentCliError(f"The folder {path} does not exist; create it or choose another.")
    if path.is_dir():
        path = path / suggested
    if suffix == ".zip" and path.suffix.lower() != ".zip":
        raise DocumentCliError(f"This export is a ZIP of several CSV files; give a file name ending in .zip, such as "
                               f"{path.with_suffix('.zip').name}.")
    return path


def cmd_export(ctx: AppContext, args: argparse.Namespace) -> int:
    fmt = export_format(args.format)
    start, end = parse_range(args.start, args.end, dt.date.today())
    options = _options(args)
    path = _target(args.out, fmt.filename(start, end), fmt.suffix)
    with ctx.db.session() as s:
        if options.currency is not None:
            check_currency(s, options.currency)
        data = load_export_data(s, start, end)
    result = build_export(data, fmt.key, options)
    replaced = path.exists()
    write_file_atomically(path, result.data)
    if args.json:
        emit_json({"path": str(path), "bytes": len(result.data), "replaced": replaced, **result.summary.as_json()})
    else:
        for line in result.summary.text_lines():
            print(line)
    if replaced:
        print(f"Replaced {path} with the {fmt.label} export", file=sys.stderr)
    else:
        print(f"Saved the {fmt.label} export to {path}", file=sys.stderr)
    return EXIT_OK


def _common(p: argparse.ArgumentParser, *, one_currency: bool, date_format: bool = True) -> None:
    p.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD",
                   help="first day of the range (invoices by issue date, payments by the day received)")
    p.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD",
                   help="last day of the range, included (today at the latest)")
    p.add_argument("--out", metavar="FILE",
                   help="the file to write (replaced if it exists); a folder takes the suggested name; default: "
                        "the suggested name in the current folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    if one_currency:
        p.add_argument("--currency", metavar="CUR",
                       help="the one currency of the file (default the company's); other currencies are left out")
    if date_format:
        p.add_argument("--date-format", choices=("mdy", "dmy"),
                       help="MM/DD/YYYY (mdy) or DD/MM/YYYY (dmy) in the file")


def add_export_commands(sub: Any) -> None:
    export = sub.add_parser(
        "export", help="exports for the accountant by date range: QuickBooks Online, QuickBooks Desktop, Xero, CSV",
        description="Write what was issued and received in a date range in a format the accountant's books "
                    "import. The same range exported twice gives the same file.").add_subparsers(
        dest="format", required=True, metavar="FORMAT")

    qbo = export.add_parser("qbo", help=FORMATS["qbo"].description, description=FORMATS["qbo"].description)
    _common(qbo, one_currency=True)
    qbo.add_argument("--item", metavar="NAME", help="the product/service of every line (default Services)")
    qbo.set_defaults(func=cmd_export)

    iif = export.add_parser("quickbooks", help=FORMATS["quickbooks"].description,
                            description=FORMATS["quickbooks"].description)
    _common(iif, one_currency=True, date_format=False)  # IIF dates are always month first
    iif.add_argument("--ar-account", metavar="NAME", help="default Accounts Receivable")
    iif.add_argument("--income-account", metavar="NAME", help="default Services")
    iif.add_argument("--tax-account", metavar="NAME", help="default Sales Tax Payable")
    iif.add_argument("--deposit-account", metavar="NAME", help="where payments go; default Undeposited Funds")
    iif.add_argument("--item", metavar="NAME", help="the item of every invoice line (default Services)")
    iif.set_defaults(func=cmd_export)

    xero = export.add_parser("xero", help=FORMATS["xero"].description, description=FORMATS["xero"].description)
    _common(xero, one_currency=False)
    xero.add_argument("--account-code", metavar="CODE", help="the revenue account code of every line (default 200)")
    xero.add_argument("--tax-type", metavar="NAME", help="the tax rate of taxable lines (default “Tax on Sales”)")
    xero.add_argument("--no-tax-type", metavar="NAME", help="the tax rate of untaxed lines (default “Tax Exempt”)")
    xero.set_defaults(func=cmd_export)

    plain = export.add_parser("csv", help=FORMATS["csv"].description, description=FORMATS["csv"].description)
    plain.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD",
                       help="first day of the range (invoices by issue date, payments by the day received)")
    plain.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD",
                       help="last day of the range, included (today at the latest)")
    plain.add_argument("--out", metavar="FILE", help="the ZIP to write (replaced if it exists)")
    plain.add_argument("--json", action="store_true", help="print the summary as JSON")
    plain.set_defaults(func=cmd_export)
