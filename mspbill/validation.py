"""Validation that reports every problem at once (DESIGN.md house rule 5).

A form shows each Issue at its field; an import shows them per row; the CLI
prints them all.  Nothing is saved while any Issue stands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(ValueError):
    """Raised by a service when its input has problems; carries all of them."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        super().__init__("; ".join(str(i) for i in self.issues) or "invalid input")

    def by_field(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for issue in self.issues:
            out.setdefault(issue.field, []).append(issue.message)
        return out


class NotFoundError(LookupError):
    """The thing asked for does not exist (any more)."""
