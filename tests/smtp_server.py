"""Real mail servers for the e-mail tests, on 127.0.0.1 and a free port.

- `SmtpTestServer`: aiosmtpd that records every message it accepts; optional
  AUTH (a user and password), STARTTLS or implicit TLS with a self-signed
  certificate, recipients it refuses (550 or 450) and a size limit.
- `SilentServer`: accepts TCP connections and never says a word (a hung server).
- `free_port()`: a port nothing listens on (for a server that is down).
- `make_certificate()`: a self-signed certificate for localhost and 127.0.0.1,
  made with `cryptography`, and a client SSLContext that trusts only it.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --- certificates -----------------------------------------------------------------

@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Verifies certificates and host names like production, trusting only this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def make_certificate(directory: Path, names: tuple[str, ...] = ("localhost", HOST)) -> Certificate:
    """Self-signed, valid for `names` (DNS names or IP addresses) and nothing else."""
    alt_names: list[x509.GeneralName] = []
    for item in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(item)))
        except ValueError:
            alt_names.append(x509.DNSName(item))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mspbill tests")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Certificate(cert_file, key_file)


# --- the recording server ---------------------------------------------------------

@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    # address (lower case) → the reply that refuses it, e.g. "550 5.1.1 User unknown"
    refuse: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(data)))
        return "250 Message accepted for delivery"


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1; use as a context manager (or start()/stop())."""

    def __init__(self, *, port: int | None = None, users: dict[str, str] | None = None,
                 tls: str | None = None, certificate: Certificate | None = None,
                 data_size_limit: int | None = None, auth_require_tls: bool = True):
        """tls: None (plain), "starttls" or "ssl" (implicit TLS; needs a certificate)."""
        self.port = port or free_port()
        self.host = HOST
        self.handler = _Handler()
        self.users = dict(users or {})
        self.logins: list[tuple[str, bool]] = []  # (user, accepted)
        kwargs: dict[str, Any] = {}
        if self.users:
            # aiosmtpd counts only STARTTLS as TLS; an implicit-TLS connection is encrypted too.
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=auth_require_tls and tls != "ssl")
        if data_size_limit is not None:
            kwargs["data_size_limit"] = data_size_limit
        ssl_context = None
        if tls == "starttls":
            assert certificate is not None
            kwargs.update(tls_context=certificate.server_context(), require_starttls=False)
        elif tls == "ssl":
            assert certificate is not None
            ssl_context = certificate.server_context()
        self.controller = Controller(self.handler, hostname=HOST, port=self.port, ssl_context=ssl_context,
                                     server_hostname="mail.test", **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(user) == password
        self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def refuse(self, address: str, reply: str = "550 5.1.1 Recipient address rejected: User unknown") -> None:
        self.handler.refuse[address.lower()] = reply

    def accept(self, address: str) -> None:
        self.handler.refuse.pop(address.lower(), None)

    def start(self) -> Self:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- a server that never answers --------------------------------------------------

class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never writes a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((HOST, 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-smtp", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)  # held open, never answered

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self._sock.close()
