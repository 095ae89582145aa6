"""`mspbill backup [--out FILE]`, `mspbill backup list` and `mspbill restore FILE`.

None of them opens the database through open_context (which would migrate it, and
refuses a damaged one): they work on the SQLite file itself, so `restore` can replace
a database that no longer opens.  A database server (--db postgresql://…) is backed up
with its own tools; the commands say so.  `--json` prints one JSON document on stdout;
errors are one sentence on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mspbill.backups import (
    BackupError,
    DatabaseFacts,
    backup_now,
    facts_of,
    list_backups,
    plan_restore,
    restore,
    suggested_file_name,
)
from mspbill.cli_output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, emit_json, print_table
from mspbill.paths import AppPaths, resolve_database_url

log = logging.getLogger(__name__)
CONFIRM_WORD = "restore"


def _fail(message: str) -> int:
    print(f"mspbill: {message}", file=sys.stderr)
    return EXIT_USAGE


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _facts_json(f: DatabaseFacts) -> dict[str, Any]:
    return {"file": f.path, "size_bytes": f.size_bytes, "taken_at": f.taken_at, "reason": f.reason,
            "automatic": f.automatic, "schema": f.revision, "clients": f.clients, "invoices": f.invoices,
            "payments": f.payments, "last_change": f.last_change, "problem": f.problem or None}


def _guarded(func: Callable[[AppPaths, argparse.Namespace], int]) -> Callable[[AppPaths, argparse.Namespace], int]:
    """cli.main does not wrap paths-only commands: anything unforeseen is a sentence and the log, too."""
    def run(paths: AppPaths, args: argparse.Namespace) -> int:
        try:
            return func(paths, args)
        except KeyboardInterrupt:
            return _fail("Stopped; nothing was changed.")
        except Exception:
            log.exception("%s failed", func.__name__)
            print(f"mspbill: an unexpected error stopped the command; details are in {paths.log_file}",
                  file=sys.stderr)
            return EXIT_ERROR

    return run


@_guarded
def cmd_backup(paths: AppPaths, args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "list":
        return cmd_backup_list(paths, args)
    url = resolve_database_url(paths, args.db)
    out: Path | None = None
    if args.out:
        out = Path(args.out).expanduser()
        if out.is_dir():
            out = out / suggested_file_name()
    try:
        path = backup_now(paths, url, out=out)
    except BackupError as exc:
        return _fail(str(exc))
    facts = facts_of(path)
    if args.json:
        emit_json(_facts_json(facts))
    else:
        print(f"Backed up to {path} ({_size(facts.size_bytes)}; {facts.counts_text}).")
    return EXIT_OK


def cmd_backup_list(paths: AppPaths, args: argparse.Namespace) -> int:
    from mspbill.backups import sqlite_file

    try:
        sqlite_file(resolve_database_url(paths, args.db))
    except BackupError as exc:
        return _fail(str(exc))
    rows = list_backups(paths.backup_dir)
    if args.json:
        emit_json({"folder": str(paths.backup_dir), "backups": [_facts_json(f) for f in rows]})
        return EXIT_OK
    print_table(["Taken", "Reason", "Size", "Schema", "Clients", "Invoices", "File"],
                [[f.taken_at.strftime("%Y-%m-%d %H:%M") if f.taken_at else "", f.reason_text, _size(f.size_bytes),
                  f.revision or (f.problem or "-"), "" if f.clients is None else str(f.clients),
                  "" if f.invoices is None else str(f.invoices), Path(f.path).name] for f in rows])
    print(f"\n{len(rows)} backup(s) in {paths.backup_dir}")
    return EXIT_OK


def _confirmed(lines: list[str], *, yes: bool, to: Any) -> bool | str:
    """True to go on, False when the person said no; a sentence when nobody can be asked."""
    for line in lines:
        print(line, file=to)
        print(file=to)
    if yes:
        return True
    if not sys.stdin.isatty():
        return ("Restoring replaces the database; at a terminal, type \"restore\" when asked, or pass --yes "
                "(for a script). Nothing was changed.")
    try:
        answer = input(f'Type "{CONFIRM_WORD}" to replace the database, anything else to stop: ')
    except EOFError:
        answer = ""
    return answer.strip().lower() == CONFIRM_WORD


@_guarded
def cmd_restore(paths: AppPaths, args: argparse.Namespace) -> int:
    url = resolve_database_url(paths, args.db)
    source = Path(args.file).expanduser()
    try:
        plan = plan_restore(url, source)
    except BackupError as exc:
        return _fail(str(exc))
    # With --json, stdout carries the one JSON document: the confirmation goes to stderr.
    ok = _confirmed(plan.confirmation(), yes=args.yes, to=sys.stderr if args.json else sys.stdout)
    if isinstance(ok, str):
        return _fail(ok)
    if not ok:
        print("Not restored; nothing was changed.", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = restore(paths, url, source, plan=plan)
    except BackupError as exc:
        return _fail(str(exc))
    if args.json:
        emit_json({"restored": report.source, "database": report.database,
                   "backup_taken_at": report.backup_taken_at, "before_restore_backup": report.before_restore,
                   "damaged_database_kept_as": report.moved_aside, "migrated_from": report.migrated_from,
                   "clients": report.clients, "invoices": report.invoices, "payments": report.payments,
                   "interrupted_runs": report.released_runs})
    else:
        for line in report.lines():
            print(line)
    return EXIT_OK


def add_backup_commands(sub: Any) -> None:
    """Register the command(s) on the top-level subparsers."""
    backup = sub.add_parser(
        "backup", help="back up the database now (into the backups folder, or --out FILE); `backup list`",
        description="Back up the SQLite database with SQLite's online backup API (safe while mspbill runs). "
                    "Without --out the copy goes into the backups folder, named by mspbill; manual backups there "
                    "are never pruned. `mspbill backup list` shows the backups.")
    backup.add_argument("--out", metavar="FILE", help=f"write the backup to FILE (a folder: {suggested_file_name()} "
                                                      "in it); an existing file is not overwritten")
    backup.add_argument("--json", action="store_true", help="print JSON")
    actions = backup.add_subparsers(dest="action", metavar="list")
    ls = actions.add_parser("list", help="list the backups in the backups folder, newest first")
    ls.add_argument("--json", action="store_true", help="print JSON")
    backup.set_defaults(paths_only=cmd_backup)

    res = sub.add_parser(
        "restore", help="replace the database with a backup (asks first; the current one is backed up)",
        description="Check FILE (an undamaged mspbill backup, not from a newer version), back up the current "
                    "database, then put the backup in its place, updated to this version. Works when the current "
                    "database is damaged. At a terminal you are asked to type \"restore\"; elsewhere pass --yes.")
    res.add_argument("file", metavar="FILE", help="the backup file (see `mspbill backup list`)")
    res.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    res.add_argument("--json", action="store_true", help="print JSON")
    res.set_defaults(paths_only=cmd_restore)
