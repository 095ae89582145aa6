"""Can this workstation use that database server, and what is on it?

What `mspbill db use`, `mspbill db status` and Settings → Data's "Test connection" say: the server's
refusal in words (mspbill.db.server.explain, through schema.check_server), or what the database holds —
nothing yet, this office at this version (and how many clients), an earlier version (updated when
opened), a newer version (refused), or someone else's tables (refused).  Also the fields of the
Settings dialog turned into a URL, every problem at once (house rule 5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from mspbill.db.engine import Database
from mspbill.db.schema import (
    DatabaseOpenError,
    DatabaseServerError,
    check_server,
    current_revision,
    head_revision,
    known_revisions,
)
from mspbill.db.server import (
    ADVICE_SETTINGS,
    DEFAULT_PORT,
    PG_DRIVER,
    DatabaseUrlError,
    explain,
    is_server,
    normalise,
    parse,
    server_name,
    shown,
    with_saved_password,
)
from mspbill.secrets import SecretStore
from mspbill.validation import Issue, ValidationError

EMPTY, CURRENT, OLDER, NEWER, FOREIGN = "empty", "current", "older", "newer", "foreign"


@dataclass(frozen=True)
class ServerCheck:
    """What a connection to the server found (never a password)."""

    where: str                 # postgresql://user@host:port/db
    state: str                 # EMPTY, CURRENT, OLDER, NEWER or FOREIGN
    revision: str | None
    clients: int | None = None

    @property
    def usable(self) -> bool:
        """mspbill can open it: as it is, or after setting up / updating its tables."""
        return self.state in (EMPTY, CURRENT, OLDER)

    def sentence(self) -> str:
        """One line for the CLI and the dialog, starting "Connected: "."""
        if self.state == EMPTY:
            return ("Connected: an empty database. mspbill sets up its tables there when it first opens it; "
                    "to bring this computer's office along, copy it there first.")
        if self.state == CURRENT:
            return f"Connected: an mspbill database at this version, {_clients(self.clients)}."
        if self.state == OLDER:
            return (f"Connected: an mspbill database of an earlier version (schema {self.revision}), "
                    f"{_clients(self.clients)}; mspbill updates it when it opens it.")
        if self.state == NEWER:
            return (f"Connected, but this database was written by a newer version of mspbill (schema "
                    f"{self.revision}). Install the newer version on this computer to use it; it was not changed.")
        return ("Connected, but this database holds other tables and is not an mspbill database. Use an empty "
                "database of its own for mspbill; this one was not changed.")


def _clients(n: int | None) -> str:
    if n is None:
        return "clients not counted"
    return f"{n} client{'s' if n != 1 else ''}"


def connect_url(url: str, password: str | None = None, store: SecretStore | None = None) -> str:
    """The URL the engine uses: the driver named, and `password` (else the keyring's) added in memory."""
    url = normalise(url)
    if password:
        return parse(url).set(password=password).render_as_string(hide_password=False)
    return with_saved_password(url, store)


def check_server_url(url: str, password: str | None = None, store: SecretStore | None = None, *,
                     advice: str = ADVICE_SETTINGS) -> ServerCheck:
    """Connect once and look: DatabaseServerError (with explain()'s sentence) when that fails.

    `advice`: where the sentence sends the person to put a password or a name right (mspbill.db.server's
    ADVICE_SETTINGS, ADVICE_DIALOG — the dialog's own fields — or ADVICE_PROMPT — run the command again).
    Reads only; nothing is created or changed on the server.
    """
    try:
        full = connect_url(url, password, store)
    except DatabaseUrlError as exc:
        raise DatabaseServerError(str(exc)) from exc
    if not is_server(full):
        raise DatabaseServerError("That is not a database server's address: postgresql://USER@SERVER/DATABASE.")
    db = Database(full)
    try:
        try:
            check_server(db)
        except DatabaseServerError as exc:
            # check_server's sentence sends the person to Settings; say it for where they are.
            cause = exc.__cause__
            again = explain(cause, full, advice=advice, store=store) if cause is not None else None
            if again is None:
                raise
            raise DatabaseServerError(again) from cause
        try:
            rev, has_tables = current_revision(db)
            state = _state(rev, has_tables)
            clients = _count_clients(db) if state in (CURRENT, OLDER) else None
        except SQLAlchemyError as exc:
            sentence = explain(exc, full, advice=advice, store=store)
            raise DatabaseServerError(sentence or f"mspbill cannot read the database {shown(full)}: "
                                                  f"{getattr(exc, 'orig', None) or exc}") from exc
        except DatabaseOpenError as exc:
            cause = exc.__cause__
            sentence = explain(cause, full, advice=advice, store=store) if cause is not None else None
            raise DatabaseServerError(sentence or str(exc)) from exc
    finally:
        db.dispose()
    return ServerCheck(where=shown(full), state=state, revision=rev, clients=clients)


def _state(rev: str | None, has_tables: bool) -> str:
    if rev is None:
        return FOREIGN if has_tables else EMPTY
    if rev == head_revision():
        return CURRENT
    return OLDER if rev in known_revisions() else NEWER


def _count_clients(db: Database) -> int | None:
    with db.engine.connect() as conn:
        value = conn.execute(text("SELECT count(*) FROM clients")).scalar()
    return int(value) if value is not None else None


def data_location(url: str) -> str:
    """Where the data is, for the status bar and Settings → Data (never a password)."""
    if is_server(url):
        return f"Office server: {server_name(url)}"
    return f"This computer's file: {parse(url).database}"


# --- the Settings dialog's fields ----------------------------------------------

@dataclass(frozen=True)
class ServerFields:
    host: str
    port: str
    database: str
    user: str
    password: str = field(default="", repr=False)     # as typed; never in a repr, a log line or a traceback


# libpq reads a password from the query string too: never kept from an address, never put into one.
_SECRET_QUERY_KEYS = ("password", "sslpassword")
Query = Mapping[str, str | Sequence[str]]


def query_options(url: str | None) -> dict[str, str | tuple[str, ...]]:
    """The address's connection options (sslmode=require, sslrootcert=…), without any password in them."""
    if not url or not is_server(url):
        return {}
    return {k: (v if isinstance(v, str) else tuple(v)) for k, v in parse(url).query.items()
            if k.lower() not in _SECRET_QUERY_KEYS}


def options_text(query: Query) -> str:
    """"sslmode=require, sslrootcert=/etc/office-ca.pem" for the dialog."""
    parts: list[str] = []
    for key, value in query.items():
        for one in ([value] if isinstance(value, str) else list(value)):
            parts.append(f"{key}={one}")
    return ", ".join(parts)


def server_url(fields: ServerFields, *, with_password: bool = False, query: Query | None = None) -> str:
    """postgresql+psycopg://user@host:port/database from the fields, or ValidationError with every problem.

    Host, port, database and user are trimmed; the password is taken exactly as typed (it may hold spaces
    and any script) and only put in the URL when asked — the one saved never carries it.  `query`: connection
    options kept from the address saved before (query_options); a password among them is dropped.
    """
    host, port_text = fields.host.strip(), fields.port.strip()
    database, user = fields.database.strip(), fields.user.strip()
    issues: list[Issue] = []
    if not host:
        issues.append(Issue("host", "Enter the database server's name or address, for example db.office.lan."))
    elif any(ch.isspace() for ch in host) or any(ch in host for ch in "/@?#"):
        issues.append(Issue("host", "A server's name has no spaces or / @ ? #, for example db.office.lan."))
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            issues.append(Issue("port", f"The port is a number from 1 to 65535 (PostgreSQL's is {DEFAULT_PORT})."))
        else:
            port = int(port_text)
    if not database:
        issues.append(Issue("database", "Enter the name of the database on the server, for example mspbill."))
    elif "/" in database or "?" in database:
        issues.append(Issue("database", "A database name has no / or ?."))
    if not user:
        issues.append(Issue("user", "Enter the user name mspbill signs in to the server with."))
    if issues:
        raise ValidationError(issues)
    password = fields.password if with_password and fields.password else None
    options = {k: v for k, v in (query or {}).items() if k.lower() not in _SECRET_QUERY_KEYS}
    return URL.create(PG_DRIVER, username=user, password=password, host=host, port=port,
                      database=database, query=options).render_as_string(hide_password=False)


def same_server(url: str | None, fields: ServerFields) -> bool:
    """The fields name the server (host and port) of `url`: its connection options still apply."""
    if not url or not is_server(url):
        return False
    parsed = parse(url)
    port = fields.port.strip()
    return (fields.host.strip().lower() == (parsed.host or "").lower()
            and (int(port) if port.isdigit() else None) == (parsed.port or DEFAULT_PORT))


def fields_of(url: str | None) -> ServerFields:
    """The dialog's fields for a saved server (no password), or empty ones with the default port."""
    if not url or not is_server(url):
        return ServerFields("", str(DEFAULT_PORT), "", "")
    parsed = parse(url)
    return ServerFields(parsed.host or "", str(parsed.port or DEFAULT_PORT), parsed.database or "",
                        parsed.username or "")
