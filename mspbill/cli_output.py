"""What the command-line modules share: exit codes, the one JSON document on stdout,
aligned tables, and turning a module's own "sentence" errors into a message and an exit code.

Its own module so that cli.py and the command modules it registers (cli_batch,
cli_collections, cli_reports) import it without importing each other."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mspbill.context import AppContext

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

Command = Callable[["AppContext", argparse.Namespace], int]


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(document: Any) -> None:
    json.dump(document, sys.stdout, default=_json_default, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def display_width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [display_width(h) for h in headers]
    for row in rows:
        widths = [max(w, display_width(c)) for w, c in zip(widths, row, strict=True)]
    print("  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip())


def sentence_errors(*errors: type[BaseException], exit_code: int = EXIT_USAGE) -> Callable[[Command], Command]:
    """A command decorator: these errors print "mspbill: <sentence>" on stderr and exit with
    `exit_code` (cli.main handles ValidationError and everything else)."""

    def wrap(func: Command) -> Command:
        def run(ctx: AppContext, args: argparse.Namespace) -> int:
            try:
                return func(ctx, args)
            except errors as exc:
                print(f"mspbill: {exc}", file=sys.stderr)
                return exit_code

        return run

    return wrap
