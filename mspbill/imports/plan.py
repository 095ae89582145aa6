"""What an import will do, row by row, before anything is written: the preview, and the
all-or-nothing rule that the commit enforces.

A plan is frozen plain data (safe to hand from a worker thread to the screen).  The
commit plans again inside its own write transaction, so what it writes is judged
against the database as it is then, not as it was at the preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mspbill.validation import Issue, ValidationError

CREATE, UPDATE, SKIP, ERROR = "create", "update", "skip", "error"
ACTIONS = (CREATE, UPDATE, SKIP, ERROR)
ACTION_LABELS = {CREATE: "Create", UPDATE: "Update", SKIP: "Skip", ERROR: "Error"}

DUPLICATE_CHOICES = {
    "skip": "Skip the row (keep what is in mspbill)",
    "update": "Update the existing record from the file",
    "create": "Create a new record anyway",
}


@dataclass(frozen=True)
class ImportOptions:
    duplicates: str = "skip"      # skip | update | create
    date_order: str = "auto"      # auto | mdy | dmy

    def __post_init__(self) -> None:
        if self.duplicates not in DUPLICATE_CHOICES:
            raise ValueError(f"duplicates is skip, update or create, not {self.duplicates!r}")
        if self.date_order not in ("auto", "mdy", "dmy"):
            raise ValueError(f"date_order is auto, mdy or dmy, not {self.date_order!r}")


@dataclass(frozen=True)
class Problem:
    line: int
    column: str      # the file's column header, or "" when the problem is not one cell's
    message: str

    def sentence(self) -> str:
        where = f"Line {self.line}" + (f", column “{self.column}”" if self.column else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class PlannedRow:
    line: int                          # where the record starts in the file
    action: str                        # create | update | skip | error
    name: str                          # the client, or "client — agreement"
    reason: str = ""                   # why update or skip ("matches the client … by e-mail")
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()        # worth a look, not stopping the import
    target_id: int | None = None       # the existing record an update or skip refers to
    lines: tuple[int, ...] = ()        # every line of the file this entry reads (agreement lines)
    detail: str = ""                   # a short summary ("3 lines, $1,250.00 per month")


@dataclass(frozen=True)
class ImportPlan:
    kind: str                          # clients | agreements
    file_name: str
    rows: tuple[PlannedRow, ...]
    options: ImportOptions
    # Problems of the whole file (a missing column): nothing can be imported while any stands.
    file_problems: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    date_order_used: str = ""          # what "auto" settled on ("dmy", "mdy" or "")

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def counts(self) -> dict[str, int]:
        return {a: self.count(a) for a in ACTIONS}

    @property
    def problems(self) -> list[Problem]:
        return [p for r in self.rows for p in r.problems]

    @property
    def ok(self) -> bool:
        return not self.file_problems and not any(r.action == ERROR for r in self.rows)

    def error_sentences(self) -> list[str]:
        return list(self.file_problems) + [p.sentence() for p in sorted(self.problems, key=lambda p: p.line)]

    def summary(self) -> str:
        noun = "client" if self.kind == "clients" else "agreement"
        c = self.counts
        parts = [f"{c[CREATE]} to create", f"{c[UPDATE]} to update", f"{c[SKIP]} to skip"]
        text = f"{len(self.rows)} {noun}{'s' if len(self.rows) != 1 else ''}: " + ", ".join(parts)
        if self.file_problems:
            return text + f"; the file cannot be imported: {self.file_problems[0]}"
        if c[ERROR]:
            n = len(self.problems)
            return (text + f"; {c[ERROR]} with errors ({n} problem{'s' if n != 1 else ''}). "
                    "Nothing is imported until every error is fixed.")
        return text + "."

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "file": self.file_name, "ok": self.ok, "counts": self.counts,
            "duplicates": self.options.duplicates, "date_order": self.date_order_used or self.options.date_order,
            "file_problems": list(self.file_problems), "notices": list(self.notices),
            "rows": [{"line": r.line, "lines": list(r.lines or (r.line,)), "action": r.action, "name": r.name,
                      "reason": r.reason, "detail": r.detail, "target_id": r.target_id, "notes": list(r.notes),
                      "problems": [{"line": p.line, "column": p.column, "message": p.message} for p in r.problems]}
                     for r in self.rows],
        }


class ImportRefusedError(ValidationError):
    """The import has errors: nothing was written.  Each issue's message names the line."""

    def __init__(self, plan: ImportPlan):
        self.plan = plan
        super().__init__([Issue("import", s) for s in plan.error_sentences()])


@dataclass(frozen=True)
class ImportResult:
    kind: str
    file_name: str
    created: int
    updated: int
    skipped: int
    created_ids: tuple[int, ...] = field(default_factory=tuple)
    updated_ids: tuple[int, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        noun = "client" if self.kind == "clients" else "agreement"
        return (f"Imported {self.file_name}: {self.created} {noun}{'s' if self.created != 1 else ''} created, "
                f"{self.updated} updated, {self.skipped} skipped.")
