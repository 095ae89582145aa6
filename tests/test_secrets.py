"""Secrets live only in a secure OS keyring (house rule 6).

The secure path runs against a real GNOME Keyring on a private D-Bus session
(started by the `secret_service` fixture in conftest.py); the refusals use
keyring's fail and null backends and a plaintext backend defined here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import keyring.backends.fail
import keyring.backends.null
import pytest
from keyring.backend import KeyringBackend

from mspbill.secrets import (
    KNOWN_SECRETS,
    SMTP_PASSWORD,
    STRIPE_SECRET_KEY,
    KeyringUnavailableError,
    SecretStore,
    find_secure_backend,
    is_secure,
)

# Assembled at run time so that no literal key-shaped string sits in the repository.
FAKE_STRIPE_KEY = "sk_" + "test_" + "51FakeKeyForTestsOnly" + "x" * 24


class PlaintextFileKeyring(KeyringBackend):
    """What keyrings.alt's PlaintextKeyring does: secrets in a readable file."""

    priority = 1

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.writes = 0

    def get_password(self, service: str, username: str) -> str | None:
        if not self.path.exists():
            return None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            s, u, p = line.split("\t")
            if (s, u) == (service, username):
                return p
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.writes += 1
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{service}\t{username}\t{password}\n")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError("not found")


class ChainLike(KeyringBackend):
    """Like keyring's ChainerBackend: several backends, tried in order."""

    priority = 10

    def __init__(self, backends: list[KeyringBackend]):
        super().__init__()
        self.backends = backends

    def get_password(self, service: str, username: str) -> str | None:
        for b in self.backends:
            found = b.get_password(service, username)
            if found is not None:
                return found
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.backends[0].set_password(service, username, password)  # the first one wins, like the chainer

    def delete_password(self, service: str, username: str) -> None:
        self.backends[0].delete_password(service, username)


def _secret_service_backend() -> KeyringBackend:
    from keyring.backends import SecretService

    return SecretService.Keyring()


def _service_name() -> str:
    # Each test its own service name: the daemon is shared across this module.
    return f"mspbill-test-{uuid.uuid4().hex[:8]}"


# --- the real keyring -----------------------------------------------------------


def test_secret_round_trips_through_gnome_keyring(secret_service: dict[str, str]) -> None:
    service = _service_name()
    store = SecretStore(_secret_service_backend(), service=service)
    assert "SecretService" in store.describe()
    assert store.get(STRIPE_SECRET_KEY) is None
    store.set(STRIPE_SECRET_KEY, FAKE_STRIPE_KEY)
    assert store.get(STRIPE_SECRET_KEY) == FAKE_STRIPE_KEY
    # A new store (a new run of the app) finds it too.
    assert SecretStore(_secret_service_backend(), service=service).get(STRIPE_SECRET_KEY) == FAKE_STRIPE_KEY
    # Overwriting replaces, it does not add a second item.
    store.set(STRIPE_SECRET_KEY, FAKE_STRIPE_KEY + "2")
    assert store.get(STRIPE_SECRET_KEY) == FAKE_STRIPE_KEY + "2"


def test_secret_is_in_the_daemon_not_in_this_process(secret_service: dict[str, str]) -> None:
    """Another process on the same session bus reads the secret back from the daemon."""
    service = _service_name()
    SecretStore(_secret_service_backend(), service=service).set(SMTP_PASSWORD, "correct horse battery")
    code = ("import sys; from keyring.backends import SecretService; "
            "print(SecretService.Keyring().get_password(sys.argv[1], sys.argv[2]))")
    env = {**os.environ, **secret_service}
    out = subprocess.run([sys.executable, "-c", code, service, SMTP_PASSWORD], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "correct horse battery"
    # And it is not lying around in plaintext in the keyring's own files.
    for root, _dirs, files in os.walk(secret_service["XDG_DATA_HOME"]):
        for name in files:
            assert b"correct horse battery" not in Path(root, name).read_bytes(), name


def test_delete(secret_service: dict[str, str]) -> None:
    store = SecretStore(_secret_service_backend(), service=_service_name())
    assert store.delete(SMTP_PASSWORD) is False  # nothing to delete
    store.set(SMTP_PASSWORD, "hunter2-but-longer")
    assert store.delete(SMTP_PASSWORD) is True
    assert store.get(SMTP_PASSWORD) is None
    assert store.delete(SMTP_PASSWORD) is False


def test_status_reports_set_and_unset_without_values(secret_service: dict[str, str]) -> None:
    store = SecretStore(_secret_service_backend(), service=_service_name())
    assert store.status() == {STRIPE_SECRET_KEY: False, SMTP_PASSWORD: False}
    store.set(STRIPE_SECRET_KEY, FAKE_STRIPE_KEY)
    status = store.status()
    assert status == {STRIPE_SECRET_KEY: True, SMTP_PASSWORD: False}
    assert set(status) == set(KNOWN_SECRETS)
    assert all(isinstance(v, bool) for v in status.values())
    assert FAKE_STRIPE_KEY not in repr(status)


def test_secret_values_never_reach_the_log(secret_service: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = SecretStore(_secret_service_backend(), service=_service_name())
    store.set(STRIPE_SECRET_KEY, FAKE_STRIPE_KEY)
    store.get(STRIPE_SECRET_KEY)
    store.delete(STRIPE_SECRET_KEY)
    assert any("stripe_secret_key" in r.getMessage() for r in caplog.records)  # the name is logged
    assert all(FAKE_STRIPE_KEY not in r.getMessage() for r in caplog.records)  # the value never


def test_only_known_secrets_and_no_empty_values(secret_service: dict[str, str]) -> None:
    store = SecretStore(_secret_service_backend(), service=_service_name())
    with pytest.raises(ValueError):
        store.set("database_password", "x")
    with pytest.raises(ValueError):
        store.get("anything")
    with pytest.raises(ValueError):
        store.set(STRIPE_SECRET_KEY, "")
    assert store.get(STRIPE_SECRET_KEY) is None


def test_the_chainer_picks_the_secure_backend(secret_service: dict[str, str], tmp_path: Path) -> None:
    plaintext = PlaintextFileKeyring(tmp_path / "plain.txt")
    secure = _secret_service_backend()
    store = SecretStore(ChainLike([plaintext, secure]), service=_service_name())
    store.set(STRIPE_SECRET_KEY, FAKE_STRIPE_KEY)
    assert store.backend is secure
    assert secure.get_password(store.service, STRIPE_SECRET_KEY) == FAKE_STRIPE_KEY
    assert plaintext.writes == 0 and not plaintext.path.exists()


# --- no secure keyring: refuse, write nothing, say what to do ------------------------


def _insecure_backends(tmp_path: Path) -> list[KeyringBackend]:
    return [keyring.backends.fail.Keyring(), keyring.backends.null.Keyring(),
            PlaintextFileKeyring(tmp_path / "plain.txt")]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["fail", "null", "plaintext"])
def test_insecure_backend_is_refused_and_nothing_written(tmp_path: Path, index: int) -> None:
    backend = _insecure_backends(tmp_path)[index]
    assert not is_secure(backend)
    store = SecretStore(backend)
    with pytest.raises(KeyringUnavailableError) as excinfo:
        store.set(STRIPE_SECRET_KEY, FAKE_STRIPE_KEY)
    message = str(excinfo.value)
    assert "nothing was saved" in message
    assert "GNOME Keyring" in message and "macOS Keychain" in message and "Windows Credential Manager" in message
    assert "Start or unlock one" in message
    assert FAKE_STRIPE_KEY not in message
    if isinstance(backend, PlaintextFileKeyring):
        assert backend.writes == 0
        assert not backend.path.exists()
    assert store.describe() == "no secure keyring"
    with pytest.raises(KeyringUnavailableError):
        store.get(STRIPE_SECRET_KEY)
    with pytest.raises(KeyringUnavailableError):
        store.status()


def test_a_chain_of_only_insecure_backends_is_refused_and_names_them(tmp_path: Path) -> None:
    plaintext = PlaintextFileKeyring(tmp_path / "plain.txt")
    chain = ChainLike([keyring.backends.null.Keyring(), plaintext])
    with pytest.raises(KeyringUnavailableError) as excinfo:
        SecretStore(chain).set(SMTP_PASSWORD, "s3cret-smtp")
    assert "null Keyring" in str(excinfo.value)
    assert "PlaintextFileKeyring" in str(excinfo.value)
    assert plaintext.writes == 0 and not plaintext.path.exists()


def test_a_subclass_of_a_secure_backend_is_not_trusted_by_name_alone() -> None:
    from keyring.backends import SecretService

    class Imitation(SecretService.Keyring):
        pass

    assert is_secure(SecretService.Keyring())
    assert not is_secure(Imitation())


def test_find_secure_backend_with_the_default_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no argument, the process-wide keyring is examined (here: the fail backend)."""
    import keyring as keyring_module

    fail = keyring.backends.fail.Keyring()
    monkeypatch.setattr(keyring_module, "get_keyring", lambda: fail)
    with pytest.raises(KeyringUnavailableError, match="fail Keyring"):
        find_secure_backend()
