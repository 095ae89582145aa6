"""`mspbill keys`: the SMTP password goes into GNOME Keyring from standard input, never an argument.

Runs the real CLI as a child process against a private GNOME Keyring
(conftest's secret_service fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PASSWORD = "Corr3ct-h0rse-bättery"


def _files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.keyring
def test_smtp_password_round_trips_through_the_keyring_and_touches_no_file(
        cli, tmp_path: Path, secret_service: dict[str, str]) -> None:
    data = tmp_path / "data"
    before = json.loads(cli("--data-dir", str(data), "keys", "status", "--json", env=secret_service).stdout)
    assert before["smtp_password"] is False
    assert "Secret" in before["keyring"] or "secret" in before["keyring"].lower()

    saved = cli("--data-dir", str(data), "keys", "set", "smtp", env=secret_service, input=PASSWORD + "\n")
    assert saved.returncode == 0, saved.stderr
    assert "Saved the SMTP password" in saved.stdout
    assert PASSWORD not in saved.stdout + saved.stderr

    after = json.loads(cli("--data-dir", str(data), "keys", "status", "--json", env=secret_service).stdout)
    assert after["smtp_password"] is True and after["stripe_secret_key"] is False

    # The keyring holds exactly what was typed (the trailing newline is not part of it).
    from mspbill.secrets import SMTP_PASSWORD, SecretStore

    assert SecretStore().get(SMTP_PASSWORD) == PASSWORD
    # Nothing under the data folder (database, settings, log) contains it.
    assert _files_containing(data, PASSWORD.encode()) == []

    removed = cli("--data-dir", str(data), "keys", "delete", "smtp", env=secret_service)
    assert removed.returncode == 0 and "Removed" in removed.stdout
    assert SecretStore().get(SMTP_PASSWORD) is None
    again = cli("--data-dir", str(data), "keys", "delete", "smtp", env=secret_service)
    assert "No SMTP password was saved" in again.stdout


@pytest.mark.keyring
def test_an_empty_password_is_refused_and_nothing_is_saved(cli, tmp_path: Path,
                                                           secret_service: dict[str, str]) -> None:
    result = cli("--data-dir", str(tmp_path), "keys", "set", "smtp", env=secret_service, input="")
    assert result.returncode == 2
    assert "No SMTP password was given; nothing was saved." in result.stderr
    from mspbill.secrets import SMTP_PASSWORD, SecretStore

    assert SecretStore().get(SMTP_PASSWORD) is None


def test_the_password_is_never_taken_from_an_argument(cli, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "keys", "set", "smtp", PASSWORD)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_without_a_secure_keyring_nothing_is_saved_and_the_message_says_why(cli, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "keys", "set", "smtp", input=PASSWORD + "\n",
                 env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 2
    assert "No secure keyring is available" in result.stderr and "nothing was saved" in result.stderr
    assert _files_containing(tmp_path, PASSWORD.encode()) == []
