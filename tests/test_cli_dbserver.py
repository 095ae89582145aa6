"""`mspbill db use|status` and `keys set|delete database` against a real PostgreSQL server and a real
GNOME Keyring: the password goes to the keyring, the settings file holds the address only, a later command
connects with the keyring's password, and a server that refuses or does not answer is a sentence with
nothing saved.  The first test runs the real console script (conftest's `cli`); the others call cli.main in
this process with standard input replaced (the console script's start-up costs seconds each)."""

from __future__ import annotations

import io
import json
import socket
import sys
from pathlib import Path

import pytest

from mspbill.db.server import forget_password, remember, secret_name, shown
from mspbill.settings import Settings
from tests.pg_server import SUPERUSER_PASSWORD, PgServer


def _typed(pg_server: PgServer, name: str, password: str | None = None) -> str:
    """The address as a person types it: postgresql://user@host:port/db."""
    url = pg_server.url(name, password=password)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings_text(data: Path) -> str:
    path = data / "settings.json"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _keyring_password(url: str) -> str | None:
    from mspbill.secrets import SecretStore

    return SecretStore().get(secret_name(url))


def _main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
          input: str = "") -> tuple[int, str, str]:
    from mspbill.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(input))     # not a terminal: the first line is the password
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def office_db(pg_server: PgServer):
    name = pg_server.new_database()
    yield name
    pg_server.drop_database(name)


@pytest.mark.keyring
def test_db_use_puts_the_password_in_the_keyring_and_later_commands_connect_with_it(
        cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_server: PgServer, office_db: str, secret_service: dict[str, str]) -> None:
    data = tmp_path / "data"
    url = _typed(pg_server, office_db)
    used = cli("--data-dir", str(data), "db", "use", url, input=SUPERUSER_PASSWORD + "\n", env=secret_service)
    assert used.returncode == 0, used.stderr
    assert "Connected: an mspbill database at this version, 0 clients." in used.stdout
    assert f"now keeps its data on the office server {url}" in used.stdout
    assert SUPERUSER_PASSWORD not in used.stdout + used.stderr

    # The settings file names the server and holds no password, in any spelling.
    text = _settings_text(data)
    assert json.loads(text)["database_url"] == pg_server.url(office_db, password=None)
    assert SUPERUSER_PASSWORD not in text and "p%C3%A4ssword" not in text and "***" not in text
    assert _keyring_password(url) == SUPERUSER_PASSWORD

    # A later command opens the server (open_context) with the keyring's password.
    opened = cli("--data-dir", str(data), "db", "upgrade", "--json", env=secret_service)
    assert opened.returncode == 0, opened.stderr
    code, out, _err = _main(capsys, monkeypatch, "--data-dir", str(data), "db", "status", "--json")
    doc = json.loads(out)
    assert doc["source"] == "settings" and doc["kind"] == "server" and doc["reachable"] is True
    assert doc["database"] == url and doc["password_saved"] is True and doc["state"] == "current"
    assert SUPERUSER_PASSWORD not in opened.stdout + out

    # Back to this computer's own file: the server's office stays where it is.
    code, out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "db", "use", "--local")
    assert code == 0, err
    assert "untouched" in out
    assert json.loads(_settings_text(data))["database_url"] is None


@pytest.mark.keyring
def test_a_wrong_password_is_refused_with_the_sentence_and_nothing_is_saved(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_server: PgServer,
        office_db: str, secret_service: dict[str, str]) -> None:
    data = tmp_path / "data"
    url = _typed(pg_server, office_db)
    forget_password(url)    # the keyring is the module's, and an entry serves every database of user@server
    code, _out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "db", "use", url,
                            input="not-the-password\n")
    assert code == 2
    assert err.startswith("mspbill: The database server at 127.0.0.1") and "refused user 'mspbill_test'" in err
    # Said for the person at the prompt: not Settings, not `keys set database`.
    assert "Run the command again with the right password." in err
    assert "keys set" not in err and "Settings" not in err
    assert "database_url" not in _settings_text(data)
    assert _keyring_password(url) is None

    # keys set database: checked against the server first; a refused one is not kept, the right one is.
    code, _out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "--db", url, "keys", "set", "database",
                            input="nope\n")
    assert code == 2 and "The password was not saved." in err and "Run the command again" in err
    assert _keyring_password(url) is None
    code, out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "--db", url, "keys", "set", "database",
                           input=SUPERUSER_PASSWORD + "\n")
    assert code == 0, err
    assert "Saved the password of mspbill_test@127.0.0.1" in out and "The server accepted it." in out
    assert _keyring_password(url) == SUPERUSER_PASSWORD
    code, out, _err = _main(capsys, monkeypatch, "--data-dir", str(data), "--db", url, "keys", "delete", "database")
    assert code == 0 and "Removed the password" in out and _keyring_password(url) is None


@pytest.mark.keyring
def test_a_password_inside_the_address_is_moved_to_the_keyring(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_server: PgServer,
        secret_service: dict[str, str]) -> None:
    empty = pg_server.new_database(template=None)
    try:
        data = tmp_path / "data"
        with_password = _typed(pg_server, empty, password=SUPERUSER_PASSWORD)
        code, out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "db", "use", with_password)
        assert code == 0, err
        assert "Connected: an empty database." in out and "taken out of the address you typed" in out
        assert "p%C3%A4ssword" not in _settings_text(data) and SUPERUSER_PASSWORD not in _settings_text(data)
        assert _keyring_password(with_password) == SUPERUSER_PASSWORD
    finally:
        pg_server.drop_database(empty)


def test_an_unreachable_server_is_refused_and_nothing_is_saved(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"postgresql://mspbill@127.0.0.1:{_closed_port()}/office"
    code, _out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "db", "use", url, input="secret\n")
    assert code == 2
    assert "mspbill cannot reach the database server at 127.0.0.1" in err and "Nothing was changed." in err
    assert "database_url" not in _settings_text(data)


def test_status_works_while_the_server_is_down_and_shows_no_password(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import keyring.backends.fail

    # No keyring on this computer either (and none of an earlier test's, which keyring caches in-process).
    monkeypatch.setattr("mspbill.secrets.keyring.get_keyring", lambda: keyring.backends.fail.Keyring())
    data = tmp_path / "data"
    data.mkdir()
    url = f"postgresql://mspbill:in-memory-only@127.0.0.1:{_closed_port()}/office"
    remember(Settings(data / "settings.json"), shown(url))
    code, out, err = _main(capsys, monkeypatch, "--data-dir", str(data), "db", "status", "--json")
    assert code == 1, err                                     # a script can tell the server is not there…
    doc = json.loads(out)                                     # …and still reads the whole document
    assert doc["source"] == "settings" and doc["database"] == shown(url)
    assert doc["reachable"] is False and "cannot reach the database server" in doc["status"]
    assert doc["password_saved"] is None                      # no keyring to ask: said, not a crash
    code, out, _err = _main(capsys, monkeypatch, "--data-dir", str(data), "--db", url, "db", "status")
    assert code == 1
    assert f"Database: {shown(url)}" in out and "Chosen by: the --db option" in out and "cannot reach" in out
    assert "in-memory-only" not in out


def test_check_server_url_says_what_the_database_holds(pg_server: PgServer, office_db: str) -> None:
    """In-process: empty, this version, and a newer version (refused; nothing changed)."""
    import psycopg

    from mspbill.db.server_check import CURRENT, EMPTY, NEWER, check_server_url

    assert check_server_url(pg_server.url(office_db)).state == CURRENT
    empty = pg_server.new_database(template=None)
    try:
        assert check_server_url(pg_server.url(empty)).state == EMPTY
        with psycopg.connect(host=pg_server.host, port=pg_server.port, user="mspbill_test",
                             password=SUPERUSER_PASSWORD, dbname=empty, autocommit=True) as conn:
            conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
        newer = check_server_url(pg_server.url(empty))
        assert newer.state == NEWER and not newer.usable
        assert "newer version of mspbill" in newer.sentence()
    finally:
        pg_server.drop_database(empty)


def test_server_fields_report_every_problem_at_once() -> None:
    from mspbill.db.server_check import ServerFields, server_url
    from mspbill.validation import ValidationError

    with pytest.raises(ValidationError) as bad:
        server_url(ServerFields(host=" ", port="70000", database="", user=""))
    assert set(bad.value.by_field()) == {"host", "port", "database", "user"}
    url = server_url(ServerFields(host=" db.office.lan ", port=" 5433", database="mspbill ", user=" anna",
                                  password=" pässwörd "), with_password=True)
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    assert (parsed.host, parsed.port, parsed.database, parsed.username) == ("db.office.lan", 5433, "mspbill", "anna")
    assert parsed.password == " pässwörd "       # exactly as typed: spaces kept, any script


def test_no_keyring_at_all_is_said_when_the_server_asks_for_a_password(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_server: PgServer,
        office_db: str) -> None:
    """Not "none is saved in this computer's keyring": there is no keyring to save one in, and what to do."""
    import keyring.backends.fail

    monkeypatch.setattr("mspbill.secrets.keyring.get_keyring", lambda: keyring.backends.fail.Keyring())
    url = _typed(pg_server, office_db)
    code, _out, err = _main(capsys, monkeypatch, "--data-dir", str(tmp_path / "data"), "db", "use", url, input="\n")
    assert code == 2
    assert "asks for a password for 'mspbill_test'" in err and "no secure keyring" in err
    assert "none is saved" not in err
    assert "`mspbill keys status`" in err and "then run the command again" in err
    assert "database_url" not in _settings_text(tmp_path / "data")


def test_the_fields_keep_the_saved_connection_options_and_never_show_a_password() -> None:
    from sqlalchemy.engine import make_url

    from mspbill.db.server_check import ServerFields, query_options, same_server, server_url

    saved = "postgresql+psycopg://anna@db.office.lan:5432/office?sslmode=require&sslrootcert=/etc/office-ca.pem"
    options = query_options(saved + "&password=leaked&SSLPassword=leaked2")
    assert options == {"sslmode": "require", "sslrootcert": "/etc/office-ca.pem"}
    fields = ServerFields("db.office.lan", "5432", "office2", "anna", password="hunter2")
    assert "hunter2" not in repr(fields)
    assert same_server(saved, fields) and not same_server(saved, ServerFields("other.lan", "5432", "x", "anna"))
    url = server_url(fields, query={**options, "password": "leaked"})
    parsed = make_url(url)
    assert dict(parsed.query) == options and parsed.database == "office2" and parsed.password is None
    assert "leaked" not in url
