"""`mspbill import clients FILE` and `mspbill import agreements FILE`: CSV in, with the
columns guessed from the header (or named with --map), every row checked, and the
whole file committed in one transaction only when every row is valid.

--dry-run prints what each row would do and writes nothing.  Errors: every problem
on standard error with its line and column, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mspbill.cli_output import (
    EXIT_OK,
    EXIT_USAGE,
    emit_json,
    print_table,
    sentence_errors,
)
from mspbill.context import AppContext
from mspbill.imports import plan_import, run_import
from mspbill.imports.mapping import (
    MappingError,
    apply_overrides,
    fields_for,
    guess_mapping,
    parse_map_options,
)
from mspbill.imports.plan import (
    ACTION_LABELS,
    ImportOptions,
    ImportPlan,
    ImportRefusedError,
)
from mspbill.imports.reading import CsvTable, ImportFileError, read_csv_file

_handled = sentence_errors(ImportFileError, MappingError)


def _mapping_json(kind: str, table: CsvTable, mapping: dict[str, int]) -> dict[str, str | None]:
    return {f.key: table.headers[mapping[f.key]] if f.key in mapping else None for f in fields_for(kind)}


def _print_mapping(kind: str, table: CsvTable, mapping: dict[str, int]) -> None:
    print(f"{table.file_name}: {table.describe()}.", file=sys.stderr)
    used = ", ".join(f"{f.key}←“{table.headers[mapping[f.key]]}”" for f in fields_for(kind) if f.key in mapping)
    print(f"Columns: {used}", file=sys.stderr)
    ignored = [h for i, h in enumerate(table.headers) if i not in mapping.values()]
    if ignored:
        print(f"Not imported: {', '.join(f'“{h}”' for h in ignored)}", file=sys.stderr)
    for notice in table.notices:
        print(f"Note: {notice}", file=sys.stderr)


def _print_plan(plan: ImportPlan) -> None:
    rows = []
    for r in plan.rows:
        what = r.reason
        if r.problems:
            what = "  ".join(p.sentence() if p.line != r.line else (f"{p.column}: " if p.column else "") + p.message
                             for p in r.problems)
        elif r.detail:
            what = f"{r.detail}. {what}".strip()
        rows.append([str(r.line), ACTION_LABELS[r.action], r.name, what])
    print_table(["Line", "Action", "Name", "Details"], rows)
    for notice in plan.notices:
        print(f"Note: {notice}")
    print()
    print(plan.summary())


def _report_refusal(plan: ImportPlan) -> int:
    sentences = plan.error_sentences()
    print(f"mspbill: {plan.file_name} was not imported; nothing was written. "
          f"{len(sentences)} problem{'s' if len(sentences) != 1 else ''} to fix:", file=sys.stderr)
    for sentence in sentences:
        print(f"  - {sentence}", file=sys.stderr)
    return EXIT_USAGE


@_handled
def cmd_import(ctx: AppContext, args: argparse.Namespace) -> int:
    kind: str = args.kind
    table = read_csv_file(args.file)
    mapping = apply_overrides(kind, table.headers, guess_mapping(kind, table.headers, table),
                              parse_map_options(args.map or []))
    options = ImportOptions(duplicates=args.duplicates, date_order=args.date_order)
    if not args.json:
        _print_mapping(kind, table, mapping)
    if args.dry_run:
        with ctx.db.session() as session:
            plan = plan_import(session, kind, table, mapping, options)
        if args.json:
            emit_json({**plan.as_json(), "dry_run": True, "encoding": table.encoding,
                       "separator": table.separator_name, "mapping": _mapping_json(kind, table, mapping)})
        else:
            _print_plan(plan)
        return EXIT_OK if plan.ok else EXIT_USAGE
    try:
        with ctx.db.write_session() as session, session.begin():
            result = run_import(session, kind, table, mapping, options)
    except ImportRefusedError as exc:
        if args.json:
            emit_json({**exc.plan.as_json(), "dry_run": False, "imported": False,
                       "encoding": table.encoding, "separator": table.separator_name,
                       "mapping": _mapping_json(kind, table, mapping)})
        return _report_refusal(exc.plan)
    if args.json:
        emit_json({"kind": kind, "file": table.file_name, "imported": True, "created": result.created,
                   "updated": result.updated, "skipped": result.skipped, "created_ids": list(result.created_ids),
                   "updated_ids": list(result.updated_ids), "encoding": table.encoding,
                   "separator": table.separator_name, "mapping": _mapping_json(kind, table, mapping)})
    else:
        print(result.summary())
    return EXIT_OK


def _field_list(kind: str) -> str:
    return "; ".join(f"{f.key}{' (required)' if f.required else ''}" for f in fields_for(kind))


def add_import_commands(sub: Any) -> None:
    """Register `mspbill import clients|agreements FILE`."""
    imp = sub.add_parser("import", help="import clients or agreements from a CSV file").add_subparsers(
        dest="subcommand", required=True)
    about = {
        "clients": ("import clients from a CSV file (PSA, QuickBooks or spreadsheet export)",
                    "A client matches an existing one by name (case aside) or billing e-mail."),
        "agreements": ("import agreements and their lines from a CSV file (one row per line)",
                       ("Rows with the same client and agreement name make one agreement. The client must "
                        "already be in mspbill (by name or billing e-mail). An agreement matches an existing "
                        "one of the same client with the same name.")),
    }
    for kind, (help_text, matching) in about.items():
        p = imp.add_parser(
            kind, help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}. UTF-8 (with or without BOM) or Windows-1252, "
                        f"separated by commas or semicolons. The columns are guessed from the header. {matching} "
                        "Nothing is written unless every row is valid.",
            epilog=f"Fields: {_field_list(kind)}.")
        p.add_argument("file", metavar="FILE", help="the CSV file")
        p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                       help="read FIELD from the column named COLUMN (or its number, #3); FIELD= ignores the field; "
                            "may be repeated")
        p.add_argument("--duplicates", choices=("skip", "update", "create"), default="skip",
                       help="what to do with a row that matches an existing record: skip it (default), update the "
                            "record from the file (blank cells keep its values), or create a new one anyway")
        p.add_argument("--date-order", choices=("auto", "mdy", "dmy"), default="auto",
                       help="how to read dates such as 03/04/2026: mdy (US, March 4), dmy (3 April); auto (default) "
                            "follows the file's other dates and refuses a date it cannot settle")
        p.add_argument("--dry-run", action="store_true", help="show what would happen and write nothing")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_import, kind=kind)
