"""A tiny Stripe-shaped HTTP server on 127.0.0.1, for what localstripe cannot do.

stripe-python talks to it for real (HTTP, form encoding, its error classes,
retries, pagination); the tests script the answers:

    with StripeStub() as stub:
        stub.on("POST", "/v1/payment_intents", Reply(402, card_error("card_declined", "insufficient_funds")))
        gateway = StripeGateway(KEY, api_base=stub.url, max_network_retries=0)
        ...
        stub.requests[0].form["off_session"] == "true"

Each route answers with its replies in turn and then repeats the last one.  A
request no route matches gets Stripe's 404 for an unknown URL and is kept in
`unmatched`.  Every answer carries a `Request-Id` header (req_stub_1, ...).

Also here: `HungServer` (accepts connections and never answers) and builders
for the Stripe objects the tests return.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

HOST = "127.0.0.1"

JSON = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: JSON = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """A request as the stub received it.  `form` and `query` are Stripe's flat form
    encoding, e.g. form["metadata[invoice]"], form["allowed_payment_method_types[0]"]."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]   # lower-case names


Responder = Reply | Callable[[Recorded], Reply]


class StripeStub:
    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], re.Pattern[str], list[Responder]]] = []
        self._lock = threading.Lock()
        self._count = 0
        self.requests: list[Recorded] = []
        self.unmatched: list[Recorded] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                recorded = Recorded(method=self.command, path=parts.path,
                                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                                    form=dict(parse_qsl(body, keep_blank_values=True)),
                                    headers={k.lower(): v for k, v in self.headers.items()})
                reply = stub._reply(recorded)
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                headers = {"Request-Id": f"req_stub_{stub._count}", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{HOST}:{self.port}"
        # A short poll interval: shutdown() waits for one, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stripe-stub", daemon=True)
        self._thread.start()

    def on(self, method: str, path: str, *responders: Responder) -> None:
        """Answer `method path` (both regular expressions matched in full) with `responders` in turn.
        The route added last is tried first."""
        assert responders
        with self._lock:
            self._routes.insert(0, (re.compile(method.upper()), re.compile(path), list(responders)))

    def _reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self._count += 1
            self.requests.append(recorded)
            for method, pattern, responders in self._routes:
                if method.fullmatch(recorded.method) and pattern.fullmatch(recorded.path):
                    responder = responders.pop(0) if len(responders) > 1 else responders[0]
                    break
            else:
                self.unmatched.append(recorded)
                return Reply(404, error("invalid_request_error",
                                        f"Unrecognized request URL ({recorded.method}: {recorded.path})."))
        return responder(recorded) if callable(responder) else responder

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class HungServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word (a hung server or a dead proxy)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((HOST, 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hung-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --- Stripe-shaped bodies ----------------------------------------------------------------------


def error(type_: str, message: str, **fields: Any) -> JSON:
    """{"error": {...}} as Stripe sends it; `fields` adds code, decline_code, param, payment_intent, ..."""
    return {"error": {"type": type_, "message": message, **{k: v for k, v in fields.items() if v is not None}}}


def card_error(code: str, decline_code: str | None = None, message: str = "Your card was declined.",
               payment_intent: JSON | None = None) -> JSON:
    return error("card_error", message, code=code, decline_code=decline_code, payment_intent=payment_intent,
                 doc_url=f"https://stripe.com/docs/error-codes/{code}")


def listing(url: str, data: list[JSON], has_more: bool = False) -> JSON:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


def now() -> int:
    return int(time.time())


def customer(id: str = "cus_Stub1", *, email: str = "ap@example.com", name: str = "Acme Ltd",
             created: int | None = None, default_method: str | None = None, livemode: bool = False,
             metadata: Mapping[str, str] | None = None) -> JSON:
    return {"id": id, "object": "customer", "email": email, "name": name, "created": created or now(),
            "livemode": livemode, "metadata": dict(metadata or {}), "description": None, "balance": 0,
            "currency": None, "delinquent": False, "invoice_prefix": "ABC123", "phone": None,
            "invoice_settings": {"default_payment_method": default_method, "custom_fields": None, "footer": None,
                                 "rendering_options": None}}


def deleted_customer(id: str = "cus_Stub1") -> JSON:
    return {"id": id, "object": "customer", "deleted": True}


def card_method(id: str = "pm_Card1", *, customer: str | None = "cus_Stub1", brand: str = "visa",
                last4: str = "4242", exp_month: int = 12, exp_year: int = 2034, livemode: bool = False) -> JSON:
    return {"id": id, "object": "payment_method", "type": "card", "customer": customer, "livemode": livemode,
            "created": now(), "metadata": {}, "billing_details": {"email": None, "name": None},
            "card": {"brand": brand, "last4": last4, "exp_month": exp_month, "exp_year": exp_year,
                     "country": "US", "funding": "credit", "fingerprint": "fpStub"}}


def bank_method(id: str = "pm_Bank1", *, customer: str | None = "cus_Stub1", bank_name: str = "STRIPE TEST BANK",
                last4: str = "6789") -> JSON:
    return {"id": id, "object": "payment_method", "type": "us_bank_account", "customer": customer,
            "livemode": False, "created": now(), "metadata": {}, "billing_details": {"email": None, "name": None},
            "us_bank_account": {"bank_name": bank_name, "last4": last4, "account_type": "checking",
                                "account_holder_type": "company", "routing_number": "110000000"}}


def payment_intent(id: str = "pi_Stub1", *, status: str = "succeeded", amount: int = 12_500, currency: str = "usd",
                   customer: str = "cus_Stub1", payment_method: str = "pm_Card1",
                   metadata: Mapping[str, str] | None = None, last_payment_error: JSON | None = None,
                   created: int | None = None, livemode: bool = False) -> JSON:
    return {"id": id, "object": "payment_intent", "status": status, "amount": amount,
            "amount_received": amount if status == "succeeded" else 0, "currency": currency, "customer": customer,
            "payment_method": payment_method, "metadata": dict(metadata or {}), "created": created or now(),
            "livemode": livemode, "last_payment_error": last_payment_error, "latest_charge": "ch_Stub1",
            "cancellation_reason": None, "description": None, "next_action": None,
            "payment_method_types": ["card"], "capture_method": "automatic_async"}


def refund(id: str = "re_Stub1", *, status: str = "succeeded", amount: int = 500,
           payment_intent: str = "pi_Stub1", metadata: Mapping[str, str] | None = None,
           failure_reason: str | None = None) -> JSON:
    body: JSON = {"id": id, "object": "refund", "status": status, "amount": amount, "currency": "usd",
                  "payment_intent": payment_intent, "charge": "ch_Stub1", "metadata": dict(metadata or {}),
                  "created": now(), "reason": None}
    if failure_reason:
        body["failure_reason"] = failure_reason
    return body


def checkout_session(id: str = "cs_test_Stub1", *, status: str = "open", customer: str = "cus_Stub1",
                     setup_intent: str | JSON | None = "seti_Stub1", expires_at: int | None = None,
                     url: str | None = "https://checkout.stripe.com/c/pay/cs_test_Stub1") -> JSON:
    return {"id": id, "object": "checkout.session", "mode": "setup", "status": status, "customer": customer,
            "setup_intent": setup_intent, "expires_at": expires_at or now() + 86_400, "livemode": False,
            "url": url if status == "open" else None, "metadata": {}, "currency": "usd"}


def setup_intent(id: str = "seti_Stub1", *, status: str = "succeeded", payment_method: str | None = "pm_Card1") -> JSON:
    return {"id": id, "object": "setup_intent", "status": status, "payment_method": payment_method,
            "customer": "cus_Stub1", "livemode": False, "usage": "off_session", "metadata": {}}


def account(id: str = "acct_Stub1", *, name: str | None = "Acme IT Services",
            display_name: str | None = "Acme IT", email: str | None = "billing@acme.example",
            country: str = "US", default_currency: str = "usd") -> JSON:
    return {"id": id, "object": "account", "business_profile": {"name": name, "url": None},
            "settings": {"dashboard": {"display_name": display_name, "timezone": "America/New_York"}},
            "email": email, "country": country, "default_currency": default_currency, "charges_enabled": True,
            "type": "standard"}
