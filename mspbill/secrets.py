"""Secrets (the Stripe key, the SMTP password) in the OS keyring, and nowhere else.

There is no plaintext fallback (house rule 6).  When the only keyring at hand
is insecure (keyrings.alt's files, the fail or null backend), `SecretStore`
refuses to save and says what to do instead.
"""

from __future__ import annotations

import logging
from typing import Any

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)

SERVICE = "mspbill"
STRIPE_SECRET_KEY = "stripe_secret_key"
SMTP_PASSWORD = "smtp_password"
KNOWN_SECRETS = (STRIPE_SECRET_KEY, SMTP_PASSWORD)
# A database server's password: one entry per user and server, named "database:user@host:port"
# (mspbill.db.server.secret_name).
DATABASE_SECRET_PREFIX = "database:"

# Backends that keep secrets encrypted by the operating system.
SECURE_BACKENDS = {
    "keyring.backends.Windows.WinVaultKeyring",
    "keyring.backends.macOS.Keyring",
    "keyring.backends.SecretService.Keyring",
    "keyring.backends.libsecret.Keyring",
    "keyring.backends.kwallet.DBusKeyring",
    "keyring.backends.kwallet.DBusKeyringKWallet4",
}


class KeyringUnavailableError(RuntimeError):
    """No secure keyring: nothing was saved.  The message says what to do."""


def _qualname(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(backend: KeyringBackend) -> str:
    return getattr(backend, "name", None) or _qualname(backend)


def is_secure(backend: KeyringBackend) -> bool:
    return _qualname(backend) in SECURE_BACKENDS


def _candidates(backend: KeyringBackend) -> list[KeyringBackend]:
    # The chainer (keyring's default when several backends load) writes to the
    # first that accepts; we pick the secure one ourselves instead.
    inner = getattr(backend, "backends", None)
    return list(inner) if inner else [backend]


def find_secure_backend(backend: KeyringBackend | None = None) -> KeyringBackend:
    chosen = backend or keyring.get_keyring()
    candidates = _candidates(chosen)
    for candidate in candidates:
        if is_secure(candidate):
            return candidate
    found = ", ".join(_describe(c) for c in candidates) or "none"
    raise KeyringUnavailableError(
        "No secure keyring is available on this computer (found: " + found + "). "
        "mspbill keeps keys and passwords only in the operating system's keyring: "
        "Windows Credential Manager, the macOS Keychain, or a Secret Service such as "
        "GNOME Keyring or KWallet on Linux. Start or unlock one and try again; nothing was saved.")


class SecretStore:
    """Get, set and delete mspbill's secrets in one secure keyring backend."""

    def __init__(self, backend: KeyringBackend | None = None, service: str = SERVICE):
        self._requested = backend
        self._backend: KeyringBackend | None = None
        self.service = service

    @property
    def backend(self) -> KeyringBackend:
        if self._backend is None:
            self._backend = find_secure_backend(self._requested)
        return self._backend

    def describe(self) -> str:
        try:
            return _describe(self.backend)
        except KeyringUnavailableError:
            return "no secure keyring"

    def _check_name(self, name: str) -> None:
        if name not in KNOWN_SECRETS and not (name.startswith(DATABASE_SECRET_PREFIX)
                                              and len(name) > len(DATABASE_SECRET_PREFIX)):
            raise ValueError(f"unknown secret {name!r}")

    def get(self, name: str) -> str | None:
        self._check_name(name)
        try:
            return self.backend.get_password(self.service, name)
        except KeyringUnavailableError:
            raise
        except Exception as exc:
            # KeyringError, and what a backend raises of its own (secretstorage/jeepney when the D-Bus
            # session or the keyring daemon has gone away): a sentence, never a traceback.
            raise KeyringUnavailableError(f"The keyring could not be read: {exc}. Unlock it and try again.") from exc

    def set(self, name: str, value: str) -> None:
        self._check_name(name)
        if not value:
            raise ValueError("an empty secret is not saved; use delete() to remove one")
        try:
            self.backend.set_password(self.service, name, value)
        except KeyringUnavailableError:
            raise
        except Exception as exc:  # as in get(): the backend's own errors too
            raise KeyringUnavailableError(
                f"The keyring refused to save the secret: {exc}. Unlock it and try again; nothing was saved.") from exc
        log.info("secret %s saved to %s", name, _describe(self.backend))  # the name, never the value

    def delete(self, name: str) -> bool:
        self._check_name(name)
        try:
            self.backend.delete_password(self.service, name)
        except keyring.errors.PasswordDeleteError:
            return False
        log.info("secret %s removed from %s", name, _describe(self.backend))
        return True

    def status(self) -> dict[str, Any]:
        """Which secrets are set (never their values), for `keys status` and Settings."""
        return {name: self.get(name) is not None for name in KNOWN_SECRETS}
