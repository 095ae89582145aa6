"""mspbill.db.server without a server: addresses, where a password may hide, which errors are the database's."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from mspbill.db.engine import Database
from mspbill.db.server import (
    DatabaseUrlError,
    explain,
    normalise,
    server_name,
    shown,
    without_password,
)

URL = "postgresql://office@db.example:5433/mspbill"


def test_any_postgresql_spelling_gets_the_psycopg_driver() -> None:
    for given in ("postgres://office@db.example:5433/mspbill", URL,
                  "postgresql+psycopg2://office@db.example:5433/mspbill"):
        assert normalise(given) == "postgresql+psycopg://office@db.example:5433/mspbill"
    assert normalise("sqlite:////tmp/x.sqlite3") == "sqlite:////tmp/x.sqlite3"


def test_a_password_in_the_query_string_becomes_the_urls_password_and_is_never_shown() -> None:
    url = normalise(URL + "?password=s%C3%A9cret%40x&sslmode=require")
    assert "password=" not in url.split("@", 1)[1]          # out of the query…
    assert url.startswith("postgresql+psycopg://office:s%C3%A9cret%40x@")  # …and into the password
    for text in (shown(url), without_password(url), Database(url).describe()):
        assert "cret" not in text and "sslmode=require" in text
    # Shown as a person types it; the server's name is what the keyring entry is called.
    assert shown(url) == "postgresql://office@db.example:5433/mspbill?sslmode=require"
    assert server_name(url) == "office@db.example:5433/mspbill"


def test_a_client_key_passphrase_in_the_address_is_refused() -> None:
    with pytest.raises(DatabaseUrlError, match="passphrase"):
        normalise(URL + "?sslpassword=hunter2")


@pytest.mark.parametrize("bad, words", [
    ("postgresql://office:p@ss@db.example/mspbill", "%40"),      # an unencoded '@' in the password
    ("postgresql://office@db.example:54x/mspbill", "port a number"),
    ("mysql://office@db.example/mspbill", "not supported"),
    ("postgresql://db.example/mspbill", "user name is missing"),
    ("postgresql://office@db.example/", "database name is missing"),
])
def test_addresses_that_cannot_work_are_refused_with_a_sentence(bad: str, words: str) -> None:
    with pytest.raises(DatabaseUrlError) as refused:
        normalise(bad)
    assert words in str(refused.value)
    assert "ss@" not in str(refused.value)  # no part of a password in the message


def _operational(text: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(text))


def test_only_the_database_drivers_errors_are_called_a_lost_server() -> None:
    url = normalise(URL)
    lost = explain(_operational("server closed the connection unexpectedly"), url, midway=True)
    assert lost and "connection to the database server at db.example:5433 was lost" in lost
    # A mail server, Stripe or a printer dropping its connection is not the database going away.
    assert explain(ConnectionResetError(104, "Connection reset by peer"), url, midway=True) is None
    assert explain(OSError("Could not connect to printer"), url, midway=True) is None
    busy = explain(PoolTimeoutError("QueuePool limit reached, connection timed out"), url, midway=True)
    assert busy and "free connection" in busy
    # A file office has no server to explain.
    assert explain(_operational("server closed the connection"), "sqlite:////tmp/x.sqlite3") is None


def test_an_unreachable_server_said_before_and_during_a_command() -> None:
    url = normalise(URL)
    refused = _operational('connection failed: connection to server at "10.0.0.5", port 5433 failed: '
                           "Connection refused")
    before = explain(refused, url)
    assert before and "cannot reach the database server at db.example:5433 (Connection refused)" in before
    assert "Nothing was changed" in before
    during = explain(refused, url, midway=True)
    assert during and "was lost" in during and "Nothing was changed" not in during


def test_the_advice_is_for_where_the_person_is() -> None:
    """Settings (the default), the server dialog's own fields, or the command that asked for the password."""
    from mspbill.db.server import ADVICE_DIALOG, ADVICE_PROMPT

    url = normalise(URL)
    refused = _operational('connection failed: FATAL:  password authentication failed for user "office"')
    assert "Settings → Data → Database → Change…" in (explain(refused, url) or "")
    dialog = explain(refused, url, advice=ADVICE_DIALOG) or ""
    assert "refused user 'office'" in dialog and "Check the user and the password above" in dialog
    assert "Settings" not in dialog and "keys set" not in dialog
    prompt = explain(refused, url, advice=ADVICE_PROMPT) or ""
    assert "Run the command again with the right password." in prompt
    assert "Settings" not in prompt and "keys set" not in prompt
    missing = _operational('connection failed: FATAL:  database "mspbill" does not exist')
    assert "check the database's name above" in (explain(missing, url, advice=ADVICE_DIALOG) or "")
    assert "check the name in the address you typed" in (explain(missing, url, advice=ADVICE_PROMPT) or "")


def test_no_keyring_at_all_is_not_called_a_password_missing_from_it() -> None:
    import keyring.backends.fail

    from mspbill.db.server import ADVICE_DIALOG
    from mspbill.secrets import SecretStore

    url = normalise(URL)
    no_password = _operational("connection failed: fe_sendauth: no password supplied")
    none = SecretStore(backend=keyring.backends.fail.Keyring())
    said = explain(no_password, url, store=none) or ""
    assert "asks for a password for 'office'" in said and "no secure keyring" in said
    assert "none is saved" not in said and "`mspbill keys status`" in said
    assert "then type the password above" in (explain(no_password, url, store=none, advice=ADVICE_DIALOG) or "")
