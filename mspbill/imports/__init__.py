"""CSV import of clients and of agreements with their lines (issue 8).

    read_csv_file(path)                   -> CsvTable  (encoding, separator, records with line numbers)
    guess_mapping(kind, headers, table)   -> {field: column index}
    plan_import(session, kind, table, mapping, options)  -> ImportPlan  (the preview; reads only)
    run_import(session, kind, table, mapping, options)   -> ImportResult, or ImportRefusedError

`kind` is "clients" or "agreements".  run_import writes in the caller's transaction and
writes nothing when any row has a problem.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from mspbill.imports.mapping import ColumnMapping
from mspbill.imports.plan import ImportOptions, ImportPlan, ImportResult
from mspbill.imports.reading import CsvTable

KINDS = ("clients", "agreements")


def plan_import(session: Session, kind: str, table: CsvTable, mapping: ColumnMapping,
                options: ImportOptions | None = None) -> ImportPlan:
    if kind == "clients":
        from mspbill.imports.clients import plan_client_import

        return plan_client_import(session, table, mapping, options)
    if kind == "agreements":
        from mspbill.imports.agreements import plan_agreement_import

        return plan_agreement_import(session, table, mapping, options)
    raise ValueError(f"unknown import kind {kind!r}")


def run_import(session: Session, kind: str, table: CsvTable, mapping: ColumnMapping,
               options: ImportOptions | None = None) -> ImportResult:
    if kind == "clients":
        from mspbill.imports.clients import import_clients

        return import_clients(session, table, mapping, options)
    if kind == "agreements":
        from mspbill.imports.agreements import import_agreements

        return import_agreements(session, table, mapping, options)
    raise ValueError(f"unknown import kind {kind!r}")
