"""`mspbill db use URL | --local`, `mspbill db status` and `mspbill keys set|delete database`.

Which database this workstation uses: its own SQLite file, or the office's PostgreSQL server.  None of
these commands opens the current database first (they are "paths only"): the current one may be the
server that is down or refuses the password, which is exactly what they are run to fix.

The server's password goes to the OS keyring (under `database:user@host:port`), never into the
settings file and never as an argument: it is read from a prompt that does not echo, or from the first
line of standard input.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mspbill.cli_output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, emit_json
from mspbill.db.schema import DatabaseOpenError, DatabaseServerError
from mspbill.db.server import (
    ADVICE_PROMPT,
    DatabaseUrlError,
    forget,
    forget_password,
    is_server,
    normalise,
    parse,
    remember,
    save_password,
    saved_url,
    secret_name,
    server_name,
    shown,
)
from mspbill.db.server_check import check_server_url
from mspbill.paths import AppPaths
from mspbill.secrets import KeyringUnavailableError, SecretStore
from mspbill.settings import Settings

log = logging.getLogger(__name__)
ENV_URL = "MSPBILL_DATABASE_URL"
# Where the choice of database came from, in the order mspbill.paths.resolve_database_url looks.
SOURCE_TEXT = {"--db": "the --db option", "environment": f"the {ENV_URL} environment variable",
               "settings": "this computer's settings (Settings → Data, `mspbill db use`)",
               "default": "the default: this computer's own file"}


class DbServerCliError(RuntimeError):
    """A sentence for the person at the terminal; nothing was saved."""


Handler = Callable[[AppPaths, argparse.Namespace], int]


def _guarded(func: Handler) -> Handler:
    """cli.main does not wrap paths-only commands: their sentences and anything unforeseen are handled here."""
    def run(paths: AppPaths, args: argparse.Namespace) -> int:
        try:
            return func(paths, args)
        except (DbServerCliError, DatabaseOpenError, DatabaseUrlError, KeyringUnavailableError) as exc:
            print(f"mspbill: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("mspbill: Stopped; nothing was saved.", file=sys.stderr)
            return EXIT_USAGE
        except Exception:
            log.exception("%s failed", func.__name__)
            print(f"mspbill: an unexpected error stopped the command; details are in {paths.log_file}",
                  file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = func.__name__
    return run


def read_password(label: str) -> str:
    """From a prompt that does not echo, or the first line of standard input; never an argument.

    May be empty: a server that trusts this computer needs none.
    """
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"{label}: ")
    return (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")


def where_from(paths: AppPaths, db_option: str | None) -> tuple[str, str]:
    """(url, source): the database this command would use and where that choice came from."""
    if db_option:
        return db_option, "--db"
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL], "environment"
    saved = saved_url(Settings(paths.settings_file))
    if saved:
        return saved, "settings"
    return paths.default_database_url, "default"


# --- db use ---------------------------------------------------------------------

@_guarded
def cmd_db_use(paths: AppPaths, args: argparse.Namespace) -> int:
    if args.local and args.url:
        raise DbServerCliError("Give a server's address or --local, not both.")
    if args.local:
        return _use_local(paths, args)
    if not args.url:
        raise DbServerCliError("Give the server's address, for example `mspbill db use "
                               "postgresql://mspbill@db.office.lan/mspbill`, or --local for this computer's file.")
    url = normalise(args.url)
    if not is_server(url):
        raise DbServerCliError("`mspbill db use` takes a PostgreSQL server's address "
                               "(postgresql://USER@SERVER[:PORT]/DATABASE); use --local for this computer's file.")
    in_url = parse(url).password
    name = server_name(url)
    if in_url:
        password: str | None = str(in_url)
    else:
        password = read_password(f"Password of {name}") or None
    check = check_server_url(url, password, advice=ADVICE_PROMPT)   # DatabaseServerError: nothing saved
    if not check.usable:
        raise DbServerCliError(f"{check.sentence()} This computer still uses what it used before.")
    from mspbill.db.moves import before_use, reclaim_saying
    from mspbill.db.server_check import connect_url

    move = before_use(connect_url(url, password), args.reclaim)  # the copy left behind: refused unless --reclaim
    settings = Settings(paths.settings_file)
    before = saved_url(settings)
    remember(settings, url, password)                # the keyring first: if it refuses, nothing is saved
    out = sys.stderr if args.json else sys.stdout
    if move is not None:
        reclaim_saying(connect_url(url, password), move, lambda line: print(line, file=out))
    document = {"database": shown(url), "state": check.state, "revision": check.revision,
                "clients": check.clients, "password_saved": bool(password),
                "settings_file": str(paths.settings_file)}
    if args.json:
        emit_json(document)
    else:
        print(check.sentence(), file=out)
        print(f"This computer now keeps its data on the office server {shown(url)}.", file=out)
        if password:
            keyring = SecretStore().describe()
            moved = " (taken out of the address you typed)" if in_url else ""
            print(f"Its password is saved in {keyring}{moved}; the settings file holds the address only.",
                  file=out)
        if check.state == "empty" and before is None and paths.database_file.exists():
            print(f"This computer's own file ({paths.database_file}) is left as it is. To move its office onto "
                  f"the server, run `mspbill --db sqlite:///{paths.database_file} db copy --to {shown(url)}`.",
                  file=out)
    _warn_overridden(args)
    return EXIT_OK


def _use_local(paths: AppPaths, args: argparse.Namespace) -> int:
    from mspbill.db.moves import before_use, reclaim_saying

    move = before_use(paths.default_database_url, args.reclaim)  # the copy left behind: refused unless --reclaim
    settings = Settings(paths.settings_file)
    before = saved_url(settings)
    forget(settings)
    if move is not None:
        reclaim_saying(paths.default_database_url, move,
                       lambda line: print(line, file=sys.stderr if args.json else sys.stdout))
    document = {"database": str(paths.database_file), "previous_server": shown(before) if before else None}
    if args.json:
        emit_json(document)
    else:
        print(f"This computer now keeps its data in its own file {paths.database_file}.")
        if before:
            print(f"The office server {shown(before)} and its data are untouched; its password stays in the "
                  f"keyring (`mspbill --db {shown(before)} keys delete database` removes it).")
    _warn_overridden(args)
    return EXIT_OK


def _warn_overridden(args: argparse.Namespace) -> None:
    if args.db or os.environ.get(ENV_URL):
        which = "--db" if args.db else f"the {ENV_URL} environment variable"
        print(f"Note: {which} is given, and it comes before this setting wherever it is given.", file=sys.stderr)


# --- db status ------------------------------------------------------------------

@_guarded
def cmd_db_status(paths: AppPaths, args: argparse.Namespace) -> int:
    url, source = where_from(paths, args.db)
    url = normalise(url)
    document: dict[str, Any] = {"source": source, "source_text": SOURCE_TEXT[source]}
    if is_server(url):
        document.update(_server_status(url))
    else:
        document.update(_file_status(url))
    if document.get("state") == "current":
        from mspbill.db.moves import status_of

        try:
            document.update(status_of(url))  # the copy left behind by a move: "moved to … on …"
        except DatabaseOpenError as exc:
            log.info("db status: moves not read: %s", exc)
    # A script (or a monitoring check) can tell from the exit status that the data cannot be reached.
    code = EXIT_OK if document["reachable"] else EXIT_ERROR
    if args.json:
        emit_json(document)
        return code
    print(f"Database: {document['database']}")
    print(f"Chosen by: {document['source_text']}")
    if "password_saved" in document:
        saved = document["password_saved"]
        print("Password: " + ("saved in the keyring" if saved else "not saved in the keyring" if saved is False
                              else "no secure keyring on this computer"))
    if document["revision"]:
        print(f"Schema: {document['revision']} ({'current' if document['current'] else 'not current'})")
    print(f"Status: {document['status']}")
    return code


def _server_status(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "server", "database": shown(url), "server": server_name(url)}
    try:
        out["password_saved"] = parse(url).password is not None or SecretStore().get(secret_name(url)) is not None
    except Exception as exc:  # noqa: BLE001 - a status reports what it can; the keyring is only one line of it
        log.info("keyring not read for db status: %r", exc)
        out["password_saved"] = None
    try:
        check = check_server_url(url)
    except DatabaseServerError as exc:
        out.update(reachable=False, state=None, revision=None, current=False, clients=None, status=str(exc))
        return out
    from mspbill.db.schema import head_revision

    out.update(reachable=True, state=check.state, revision=check.revision,
               current=check.revision == head_revision(), clients=check.clients, status=check.sentence())
    return out


def _file_status(url: str) -> dict[str, Any]:
    from mspbill.db.schema import head_revision, peek_sqlite_revision

    path = Path(str(parse(url).database or ""))
    out: dict[str, Any] = {"kind": "file", "database": str(path), "reachable": True, "clients": None}
    if not path.exists() or path.stat().st_size == 0:
        out.update(state="empty", revision=None, current=False,
                   status="The file is not created yet; mspbill creates it when it first opens it.")
        return out
    try:
        # Read-only: a status never writes (the engine would switch the file to WAL).
        rev, has_tables = peek_sqlite_revision(path)
    except DatabaseOpenError as exc:
        out.update(reachable=False, state=None, revision=None, current=False, status=str(exc))
        return out
    current = rev == head_revision()
    state = "current" if current else ("foreign" if rev is None and has_tables else
                                       "empty" if rev is None else "other")
    status = {"current": "This computer's own file, at this version.",
              "foreign": "The file holds tables but is not an mspbill database.",
              "empty": "The file holds no office yet.",
              "other": f"At schema {rev}: an earlier version is updated when mspbill opens it; "
                       "a newer one is refused."}[state]
    out.update(state=state, revision=rev, current=current, status=status)
    return out


# --- keys set|delete database ---------------------------------------------------

def _server_for_keys(paths: AppPaths, args: argparse.Namespace) -> str:
    url, _source = where_from(paths, args.db)
    url = normalise(url)
    if not is_server(url):
        raise DbServerCliError("This computer keeps its data in its own file, which has no password. To use the "
                               "office's database server, run `mspbill db use postgresql://USER@SERVER/DATABASE`.")
    return url


@_guarded
def cmd_keys_set_database(paths: AppPaths, args: argparse.Namespace) -> int:
    url = _server_for_keys(paths, args)
    name = server_name(url)
    password = read_password(f"Password of {name}")
    if not password:
        raise DbServerCliError(f"No password was given for {name}; nothing was saved.")
    try:
        check_server_url(url, password, advice=ADVICE_PROMPT)
        checked = "The server accepted it."
    except DatabaseServerError as exc:
        if _refused(exc):
            raise DbServerCliError(f"{exc} The password was not saved.") from exc
        # The server is down: the password may still be right; keep it, and say it was not checked.
        checked = f"It could not be checked now: {exc}"
    save_password(url, password)
    print(f"Saved the password of {name} in {SecretStore().describe()}. {checked}")
    return EXIT_OK


def _refused(exc: DatabaseServerError) -> bool:
    text = str(exc)
    return "refused user" in text or "asks for a password" in text


@_guarded
def cmd_keys_delete_database(paths: AppPaths, args: argparse.Namespace) -> int:
    url = _server_for_keys(paths, args)
    name = server_name(url)
    store = SecretStore()
    removed = forget_password(url, store)
    print(f"Removed the password of {name} from {store.describe()}." if removed
          else f"No password was saved for {name}.")
    return EXIT_OK


KEY_NAME = "database"
KEY_HELP = "database: the password of the office's database server this computer uses (or --db URL)"


def key_name_action(action: str) -> type[argparse.Action]:
    """The `name` argument of `keys set|delete`: for `database` the command runs without opening the database
    first (it cannot: it needs the password).  `action` is "set" or "delete"."""
    handler = {"set": cmd_keys_set_database, "delete": cmd_keys_delete_database}[action]

    class KeyName(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            setattr(namespace, self.dest, values)
            if values == KEY_NAME:
                namespace.paths_only = handler

    return KeyName


# --- parser ---------------------------------------------------------------------

def add_dbserver_commands(db: Any) -> None:
    """Register `use` and `status` on the `db` subparsers (cli.py's `db` group)."""
    use = db.add_parser(
        "use", help="use the office's PostgreSQL server from now on (or --local: this computer's own file)",
        description="Test the server, then save its address in this computer's settings and its password in "
                    "the operating system's keyring. The password is asked for (or read from the first line of "
                    "standard input); a password inside the address is moved to the keyring. Nothing is saved "
                    "when the server cannot be reached or refuses the password. --local goes back to this "
                    "computer's own SQLite file; the server's data is untouched.")
    use.add_argument("url", nargs="?", metavar="postgresql://USER@SERVER[:PORT]/DATABASE")
    use.add_argument("--local", action="store_true", help="back to this computer's own SQLite file")
    use.add_argument("--reclaim", action="store_true",
                     help="use it although the office was moved away from it (`db copy`): it becomes the office "
                          "again, lacking what was done at the new place")
    use.add_argument("--json", action="store_true", help="print JSON")
    use.set_defaults(paths_only=cmd_db_use)

    status = db.add_parser(
        "status", help="where the data is, who chose it, its schema, and whether the server answers",
        description="Works when the server is down: it says why it cannot be used. Never shows a password. "
                    "Exit status 0 when the database answers, 1 when it cannot be reached or read (the report, "
                    "or with --json the document with \"reachable\": false, is printed all the same).")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(paths_only=cmd_db_status)
