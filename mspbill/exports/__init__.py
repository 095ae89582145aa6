"""Exports for the accountant, by date range (issue 8): QuickBooks Online invoice CSV (qbo.py), QuickBooks
Desktop IIF (iif.py), Xero (xero.py) and plain CSV (plain.py).  common.py reads the range into frozen
snapshots and holds what they share; each format module turns them into bytes and a summary.

    with db.session() as s:
        data = load_export_data(s, start, end)
    result = build_export(data, "qbo", ExportOptions())   # result.data: the file; result.summary: what is in it
"""

from __future__ import annotations

from collections.abc import Callable

from mspbill.exports.common import (
    FORMATS,
    ExportData,
    ExportFormat,
    ExportOptions,
    ExportResult,
    ExportSummary,
    check_currency,
    export_format,
    last_month,
    load_export_data,
    parse_range,
)

__all__ = ["FORMATS", "ExportData", "ExportFormat", "ExportOptions", "ExportResult", "ExportSummary", "build_export",
           "check_currency", "export_format", "last_month", "load_export_data", "parse_range"]


def _builders() -> dict[str, Callable[[ExportData, ExportOptions], ExportResult]]:
    from mspbill.exports.iif import build_iif
    from mspbill.exports.plain import build_plain
    from mspbill.exports.qbo import build_qbo
    from mspbill.exports.xero import build_xero

    return {"qbo": build_qbo, "quickbooks": build_iif, "xero": build_xero, "csv": build_plain}


def build_export(data: ExportData, key: str, options: ExportOptions | None = None) -> ExportResult:
    """The file of format `key` for `data` and the summary of what is in it (and what is not, and why)."""
    export_format(key)  # a sentence for an unknown key
    return _builders()[key](data, options or ExportOptions())
