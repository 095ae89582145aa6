"""Command line for moving the office's data: `mspbill db copy --to URL` and `mspbill db reclaim`.

The office's database (this computer's SQLite file, or whatever --db names) is copied into a new, empty
database -- usually the office's PostgreSQL server -- and every table's row count and totals are checked
before the copy is committed (mspbill/db/copy.py).  Then the source is marked as moved (mspbill.db.moves):
the copy left behind is refused when opened, so that nothing is billed or charged twice from it.  When
that mark could not be made the report says so loudly and the command exits 1 (the copy itself is good).

The server's password: in the URL (used for this command, never saved or printed), else the first line
of standard input when it is not a terminal (`echo "$PW" | mspbill db copy --to …`, as `mspbill db use`
reads it), else the one saved in this computer's keyring for that server, else asked for at a prompt
when the server wants one and this is a terminal.  --json prints one JSON document; errors are one
sentence on stderr, exit 2.

`mspbill db reclaim` makes the copy left behind by a move the office again, on purpose (the database
--db, MSPBILL_DATABASE_URL or the settings name, else this computer's file).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from mspbill.cli_output import EXIT_ERROR, EXIT_OK, emit_json, sentence_errors
from mspbill.db.copy import CopyRefusedError, CopyReport, copy_database
from mspbill.db.server import DatabaseUrlError, is_server, normalise, parse, server_name

if TYPE_CHECKING:
    from mspbill.context import AppContext
    from mspbill.paths import AppPaths


def add_db_copy_command(db_subparsers: Any) -> None:
    cp = db_subparsers.add_parser(
        "copy", help="copy this office's data into a new, empty database (a PostgreSQL server) and check it",
        description="Copy every table of this office's database into a new, empty database, check every table's "
                    "row count and totals, and commit only if all match. Nothing in this office's database is "
                    "changed or deleted.")
    cp.add_argument("--to", required=True, metavar="URL",
                    help="the empty database: postgresql://USER@SERVER:PORT/DATABASE (the password from the "
                         "keyring, or asked for), or sqlite:///NEW-FILE")
    cp.add_argument("--json", action="store_true", help="print the result as JSON")
    cp.set_defaults(func=cmd_db_copy)

    rc = db_subparsers.add_parser(
        "reclaim", help="make the copy left behind by a move (`db copy`) the office again",
        description="A database the office was copied away from is refused when opened: it lacks everything "
                    "done since at the new place, and billing from it would bill and charge twice. This makes "
                    "it the office again anyway (the database --db names, else the one this computer uses), "
                    "after saying what it lacks. Only when the office really stopped working at the new place.")
    rc.add_argument("--json", action="store_true", help="print the result as JSON")
    rc.set_defaults(paths_only=cmd_db_reclaim)


def _progress(done: int, total: int, text: str) -> None:
    if sys.stderr.isatty():
        figure = f"{done:,}/{total:,} " if total else ""
        print(f"\r{figure}{text}"[:79].ljust(79), end="", file=sys.stderr, flush=True)


def _clear_progress() -> None:
    if sys.stderr.isatty():
        print("\r" + " " * 79 + "\r", end="", file=sys.stderr, flush=True)


def _with_prompted_password(url: str) -> str | None:
    """The URL with a password typed at a prompt, or None when there is nobody to ask."""
    if sys.stdin is None or not sys.stdin.isatty():
        return None
    try:
        password = getpass.getpass(f"Password for {server_name(url)}: ")
    except (EOFError, KeyboardInterrupt):
        return None
    if not password:
        return None
    return parse(normalise(url)).set(password=password).render_as_string(hide_password=False)


def _with_piped_password(url: str) -> str:
    """A server URL without a password gets the first line of standard input when that is not a terminal
    (like `mspbill db use`); an empty line or none leaves it to the keyring."""
    if sys.stdin is None or sys.stdin.isatty():
        return url
    try:
        normalised = normalise(url)
        if not is_server(normalised) or parse(normalised).password:
            return url
    except DatabaseUrlError:
        return url  # copy_database says what is wrong with it
    from mspbill.cli_dbserver import read_password

    password = read_password(f"Password of {server_name(normalised)}")
    if not password:
        return url
    return parse(normalised).set(password=password).render_as_string(hide_password=False)


def _copy(ctx: AppContext, url: str, quiet: bool) -> CopyReport:
    progress = None if quiet else _progress
    url = _with_piped_password(url)
    try:
        return copy_database(ctx.db, url, progress)
    except CopyRefusedError as exc:
        _clear_progress()
        if exc.kind != "password" or parse(url).password:
            raise
        retry = _with_prompted_password(url)
        if retry is None:
            raise
        return copy_database(ctx.db, retry, progress)
    finally:
        _clear_progress()


def next_steps(report: CopyReport) -> list[str]:
    """Where the data now is, and how this computer and the others start using it."""
    if report.source_marked:
        left = (f"{report.source} is kept, marked as the copy left behind: mspbill refuses to open it from now "
                "on, on every computer, so that nothing is billed or charged twice from it.")
    else:
        left = report.warning()
    if report.target_url.startswith("postgresql"):
        return [
            f"The office's data is now on {report.target}. {left}",
            (f"Switch this computer: run `mspbill db use {report.target_url}` (or Settings → Data → Database → "
             "Change…)."),
            "Point every other workstation at the server the same way.",
        ]
    return [f"The office's data is now in {report.target}. {left}",
            f"To work from the new file: `mspbill --db {report.target_url}` (or Settings → Data)."]


def _document(report: CopyReport) -> dict[str, Any]:
    return {
        "source": report.source, "target": report.target, "target_url": report.target_url,
        "rows": report.rows, "tables": [
            {"table": t.table, "source_rows": t.source_rows, "target_rows": t.target_rows,
             "totals": {c: {"source": a, "target": b} for c, (a, b) in t.totals.items() if c != "id"},
             "id_sum": {"source": t.totals["id"][0], "target": t.totals["id"][1]} if "id" in t.totals else None,
             "decimal_totals": {c: {"source": str(a), "target": str(b)} for c, (a, b) in t.decimal_totals.items()},
             "matches": t.matches} for t in report.tables],
        "matches": report.matches, "seconds": round(report.seconds, 3), "summary": report.summary(),
        "source_marked_moved": report.source_marked, "warning": report.warning() or None,
        "next_steps": next_steps(report),
    }


@sentence_errors(CopyRefusedError, DatabaseUrlError)
def cmd_db_copy(ctx: AppContext, args: argparse.Namespace) -> int:
    report = _copy(ctx, args.to, quiet=args.json)
    code = EXIT_OK if report.source_marked else EXIT_ERROR
    if not report.source_marked:
        print(f"mspbill: {report.warning()}", file=sys.stderr)
    if args.json:
        emit_json(_document(report))
        return code
    for line in report.lines():
        print(line)
    print()
    for line in next_steps(report):
        print(line)
    return code


def cmd_db_reclaim(paths: AppPaths, args: argparse.Namespace) -> int:
    from mspbill.cli_dbserver import _guarded

    return _guarded(_reclaim)(paths, args)


def _reclaim(paths: AppPaths, args: argparse.Namespace) -> int:
    from mspbill.cli_dbserver import where_from
    from mspbill.db.moves import peek_move, reclaim_saying
    from mspbill.db.server import shown

    url, _source = where_from(paths, args.db)
    url = normalise(url)
    where = shown(url) if is_server(url) else str(parse(url).database)
    move = peek_move(url)
    said: list[str] = []
    if move is None:
        message = f"{where} was not moved away: it is the office already; nothing was changed."
        if args.json:
            emit_json({"database": where, "reclaimed": False, "moved_to": None, "messages": [message]})
        else:
            print(message)
        return EXIT_OK

    def say(line: str) -> None:
        said.append(line)
        print(line, file=sys.stderr if args.json else sys.stdout)

    reclaim_saying(url, move, say)
    if args.json:
        emit_json({"database": where, "reclaimed": True, "moved_to": move.moved_to,
                   "moved_at": move.moved_at.isoformat(), "messages": said})
    return EXIT_OK
