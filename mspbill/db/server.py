"""The shared office database on a PostgreSQL server: which one, its password, and its errors in words.

Where the data is, in order: `--db URL`, the MSPBILL_DATABASE_URL environment variable, the server
named in Settings → Data (the settings file's `database_url`, saved without a password), else this
computer's SQLite file.  A server's password lives in the OS keyring under the server's name
(`user@host:port`), never in the URL on disk (house rule 6); it is added to the URL in memory
when the database is opened.  A URL typed on the command line may carry a password: it is used for
that command and never saved.

`explain` turns the driver's connection errors into sentences an office manager can act on.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from mspbill.secrets import DATABASE_SECRET_PREFIX, KeyringUnavailableError, SecretStore

log = logging.getLogger(__name__)

PG_DRIVER = "postgresql+psycopg"
DEFAULT_PORT = 5432
SETTINGS_KEY = "database_url"
# PostgreSQL's SQLSTATEs that get their own sentence.
_AUTH_FAILED = {"28P01", "28000"}
_NO_DATABASE = "3D000"
_LOCK_TIMEOUT = "55P03"
_NO_PRIVILEGE = "42501"
_SERVER_GONE = {"57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004"}


class DatabaseUrlError(ValueError):
    """A database URL mspbill cannot use; the message says why."""


# libpq also reads these from the query string (?password=…): secrets like the URL's own password.
_SECRET_QUERY_KEYS = ("password", "sslpassword")


def parse(url: str) -> URL:
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise DatabaseUrlError(
            f"'{_redact(url)}' is not a database address mspbill understands. Use "
            "postgresql://USER@SERVER:PORT/DATABASE for a database server (the port a number).") from exc
    if parsed.host and "@" in parsed.host:
        # "user:p@ss@server": the first '@' was taken as the end of the password.
        raise DatabaseUrlError(
            "The database address has more than one '@'. If the password contains '@', leave the password out "
            "of the address (mspbill asks for it and keeps it in the keyring) or write '@' in it as %40.")
    return parsed


def _strip_secrets(parsed: URL) -> URL:
    query = {k: v for k, v in parsed.query.items() if k.lower() not in _SECRET_QUERY_KEYS}
    return parsed._replace(password=None).set(query=query)  # .set(password=None) would keep it


def _redact(text: str) -> str:
    # A malformed URL may still carry a password between ':' and '@'.
    if "@" in text and "://" in text:
        scheme, rest = text.split("://", 1)
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"
    return text


def normalise(url: str) -> str:
    """The URL the engine uses: postgres:// and postgresql:// (any driver) become psycopg 3.

    SQLite URLs pass unchanged.  Other databases are refused: mspbill is tested on these two only.
    """
    parsed = parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return url
    if backend in ("postgresql", "postgres"):
        if not parsed.host:
            raise DatabaseUrlError("The database server's address is missing: postgresql://USER@SERVER/DATABASE.")
        if not parsed.database:
            raise DatabaseUrlError("The database name is missing: postgresql://USER@SERVER/DATABASE.")
        if not parsed.username:
            raise DatabaseUrlError("The user name is missing: postgresql://USER@SERVER/DATABASE.")
        query = dict(parsed.query)
        if "sslpassword" in {k.lower() for k in query}:
            raise DatabaseUrlError("mspbill does not take a client key's passphrase in the database address "
                                   "(it would be saved in plain text); use a client key without one.")
        in_query = next((k for k in query if k.lower() == "password"), None)
        if in_query is not None:
            # ?password=… is the URL's password by another name: it goes where that one goes (the keyring).
            value = query.pop(in_query)
            password = value if isinstance(value, str) else value[0]
            parsed = parsed.set(query=query)
            if not parsed.password:
                parsed = parsed.set(password=password)
        return parsed.set(drivername=PG_DRIVER).render_as_string(hide_password=False)
    raise DatabaseUrlError(
        f"mspbill keeps its data in its own SQLite file or on a PostgreSQL server; '{backend}' is not supported.")


def is_server(url: str) -> bool:
    return parse(url).get_backend_name() in ("postgresql", "postgres")


def server_name(url: str) -> str:
    """`user@host:port/database`: the keyring entry's name and what the app shows (never a password)."""
    parsed = parse(url)
    return f"{parsed.username}@{parsed.host}:{parsed.port or DEFAULT_PORT}/{parsed.database}"


def without_password(url: str) -> str:
    return _strip_secrets(parse(url)).render_as_string(hide_password=False)


def shown(url: str) -> str:
    """The URL as a person may type it: the plain postgresql:// scheme and no password."""
    parsed = _strip_secrets(parse(url))
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def secret_name(url: str) -> str:
    """The keyring entry of the URL's password: "database:user@host:port".

    Without the database's name: a PostgreSQL password belongs to the user on the server, so the one
    saved for the office's database also opens an empty one to copy into (or a mistyped name is
    said to be missing, not to lack a password)."""
    parsed = parse(url)
    return f"{DATABASE_SECRET_PREFIX}{parsed.username}@{parsed.host}:{parsed.port or DEFAULT_PORT}"


def with_saved_password(url: str, store: SecretStore | None = None) -> str:
    """Add the keyring's password to a server URL that has none (in memory only)."""
    if not is_server(url):
        return url
    parsed = parse(url)
    if parsed.password:
        return url
    try:
        password = (store or SecretStore()).get(secret_name(url))
    except KeyringUnavailableError as exc:
        # The server may not need one (trust, peer, a .pgpass); if it does, its refusal is explained then.
        log.info("no keyring to look up the database password in: %s", exc)
        return url
    if not password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def save_password(url: str, password: str, store: SecretStore | None = None) -> None:
    (store or SecretStore()).set(secret_name(url), password)


def forget_password(url: str, store: SecretStore | None = None) -> bool:
    return (store or SecretStore()).delete(secret_name(url))


def saved_url(settings: Any) -> str | None:
    """The server this workstation uses (Settings → Data), or None for its own SQLite file."""
    value = settings.get(SETTINGS_KEY)
    return value if isinstance(value, str) and value.strip() else None


def remember(settings: Any, url: str, password: str | None = None, store: SecretStore | None = None) -> str:
    """Use this server from now on: the URL (without password) to the settings file, the password to the keyring.

    A password inside the URL goes to the keyring too. Returns the URL as saved.
    """
    url = normalise(url)
    parsed = parse(url)
    password = password or parsed.password
    if password:
        save_password(url, str(password), store)  # KeyringUnavailableError: nothing is saved at all
    clean = without_password(url)
    settings.set(SETTINGS_KEY, clean)
    return clean


def forget(settings: Any) -> None:
    """Back to this computer's own SQLite file (the server and its data are left as they are)."""
    settings.set(SETTINGS_KEY, None)


# --- errors in words ---------------------------------------------------------

def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.Error)


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)


def _where(url: str) -> tuple[str, str, str, str]:
    parsed = parse(url)
    return (f"{parsed.host}:{parsed.port or DEFAULT_PORT}", str(parsed.database), str(parsed.username),
            server_name(url))


# Where a sentence tells the person to put the password or the database's name right (explain's `advice`).
ADVICE_SETTINGS = "settings"   # the default: Settings → Data in the app, `keys set database` on the command line
ADVICE_DIALOG = "dialog"       # the server dialog itself, whose fields are right above the sentence
ADVICE_PROMPT = "prompt"       # a command that read the password (`db use`, `keys set database`): run it again

_KEYRING_KINDS = ("Windows Credential Manager, the macOS Keychain, or a Secret Service such as GNOME Keyring or "
                  "KWallet on Linux")


def _no_keyring(store: SecretStore | None) -> bool:
    """This computer has no secure keyring at all (so no password can have been saved in one)."""
    try:
        return (store or SecretStore()).backend is None
    except KeyringUnavailableError:
        return True
    except Exception:  # noqa: BLE001 - a keyring that fails otherwise is said when it is used
        return False


def explain(exc: BaseException, url: str, *, midway: bool = False, advice: str = ADVICE_SETTINGS,
            store: SecretStore | None = None) -> str | None:
    """A sentence for a database server error, or None when it is not one we know.

    `midway`: the database was open and a command under way, so a server that cannot be reached now
    went away meanwhile (its "connection refused" must not say that nothing was changed).
    `advice`: where the person puts a wrong password or database name right (ADVICE_SETTINGS, ADVICE_DIALOG
    or ADVICE_PROMPT).  `store`: the keyring asked whether there is one at all (for "no password supplied")."""
    if not is_server(url):
        return None
    if isinstance(exc, PoolTimeoutError):
        return ("mspbill waited too long for a free connection to the office database (every one was busy). "
                "Try again in a moment; nothing was half-saved.")
    if not _is_database_error(exc):
        # A mail server, Stripe or a printer that dropped its connection is not the database server.
        return None
    address, database, user, _name = _where(url)
    state = _sqlstate(exc)
    text = str(exc.orig if isinstance(exc, DBAPIError) else exc)
    lowered = text.lower()
    settings_fix = f"Settings → Data → Database → Change… (or run `mspbill --db {shown(url)} keys set database`)"
    if state in _AUTH_FAILED or "password authentication failed" in lowered:
        fix = {ADVICE_DIALOG: "Check the user and the password above, then test again.",
               ADVICE_PROMPT: "Run the command again with the right password."
               }.get(advice, f"Set the right password in {settings_fix}.")
        return (f"The database server at {address} refused user '{user}': the password is wrong or the user does "
                f"not exist there. {fix} Nothing was changed.")
    if "no password supplied" in lowered or "fe_sendauth" in lowered:
        if _no_keyring(store):
            then = {ADVICE_DIALOG: "then type the password above and test again.",
                    ADVICE_PROMPT: "then run the command again."
                    }.get(advice, f"then enter the password in {settings_fix}.")
            return (f"The database server at {address} asks for a password for '{user}', and this computer has no "
                    f"secure keyring to keep one in. mspbill keeps passwords only in the operating system's "
                    f"keyring ({_KEYRING_KINDS}): start or unlock one (`mspbill keys status` shows which one "
                    f"mspbill finds), {then} Nothing was changed.")
        fix = {ADVICE_DIALOG: "Type it in the Password field above.",
               ADVICE_PROMPT: "Run the command again and type the password when it is asked for."
               }.get(advice, f"Enter it in {settings_fix}.")
        return (f"The database server at {address} asks for a password for '{user}', and none is saved for "
                f"{user} on {address} in this computer's keyring. {fix} Nothing was changed.")
    if state == _NO_DATABASE or (f'database "{database}" does not exist' in text):
        check = {ADVICE_DIALOG: "check the database's name above",
                 ADVICE_PROMPT: "check the name in the address you typed"
                 }.get(advice, "check the name in Settings → Data → Database → Change…")
        return (f"There is no database '{database}' on the server at {address}. Ask whoever looks after the server "
                f"to create an empty one for mspbill (CREATE DATABASE \"{database}\" OWNER \"{user}\";), or {check}.")
    if state == _NO_PRIVILEGE:
        return (f"User '{user}' may not create or change mspbill's tables in '{database}' on {address} "
                f"({text.strip().splitlines()[0]}). Ask whoever looks after the server to make '{user}' the "
                "database's owner.")
    if state == _LOCK_TIMEOUT:
        return ("Another workstation kept the office database busy for too long, so this change was not saved. "
                "Try again in a moment; nothing was half-saved.")
    unreachable = ("connection refused", "could not connect", "timeout expired", "could not translate host name",
                   "name or service not known", "no route to host", "network is unreachable", "connection timed out",
                   "nodename nor servname", "temporary failure in name resolution")
    gone = ("server closed the connection", "terminating connection", "connection is closed",
            "the database system is shutting down", "the database system is starting up",
            "consuming input failed", "ssl syscall error", "connection reset", "broken pipe",
            "the connection is lost", "connection already closed", "server conn crashed")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated or state in _SERVER_GONE \
            or any(g in lowered for g in gone) or (midway and any(u in lowered for u in unreachable)):
        return (f"The connection to the database server at {address} was lost ({_first_line(text)}). What was "
                "being saved when it went was not saved; what was saved before is safe. Check the server and the "
                "network, then try again.")
    if any(u in lowered for u in unreachable):
        return (f"mspbill cannot reach the database server at {address} ({_first_line(text)}). Check that the "
                "server is running and that this computer is on the office network (or VPN), then try again. "
                "Nothing was changed.")
    return None


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            # psycopg's "connection failed: connection to server at "h" (ip), port p failed: <why>"
            return line.rsplit("failed: ", 1)[-1].strip().rstrip(".")
    return "no answer"
