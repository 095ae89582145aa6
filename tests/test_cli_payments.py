"""The payment commands as a real child process: the Stripe key through GNOME Keyring (never an
argument, never a file), the processor choice, setup links, charging, refunds and sync on the
sandbox processor, and the live-mode guard against localstripe."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_keys import stripe_key
from localstripe_server import TEST_KEY, LocalStripe

from mspbill.db.schema import open_database

LIVE_KEY = stripe_key("sk", "live", "51Hx9QzKLmNoPqRsTuVwXyZ0123456789")


def _files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with LocalStripe.start() as server:
        yield server


# --- the key ---------------------------------------------------------------------------


@pytest.mark.keyring
def test_a_pasted_stripe_key_is_cleaned_kept_in_the_keyring_and_nowhere_else(
        cli, tmp_path: Path, secret_service: dict[str, str], localstripe: LocalStripe) -> None:
    data = tmp_path / "data"
    pasted = f'  "{TEST_KEY[:20]} {TEST_KEY[20:]}"  \n'  # quotes and spaces, as copied from an e-mail
    saved = cli("--data-dir", str(data), "keys", "set", "stripe", env=secret_service, input=pasted)
    assert saved.returncode == 0, saved.stderr
    assert "Saved the Stripe secret key sk_test_…p7dc (Stripe test mode)" in saved.stdout
    assert "Payments now go through Stripe" in saved.stdout
    assert TEST_KEY not in saved.stdout + saved.stderr

    from mspbill.secrets import STRIPE_SECRET_KEY, SecretStore

    assert SecretStore().get(STRIPE_SECRET_KEY) == TEST_KEY
    status = json.loads(cli("--data-dir", str(data), "keys", "status", "--json", env=secret_service).stdout)
    assert (status["stripe_secret_key"], status["stripe_mode"], status["stripe_key_masked"]) == (
        True, "test", "sk_test_…p7dc")

    # The key reaches Stripe (localstripe here) from the keyring.
    tested = cli("--data-dir", str(data), "payments", "test", env={**secret_service,
                                                                    "MSPBILL_STRIPE_API_BASE": localstripe.url})
    assert tested.returncode == 0, tested.stderr
    assert "Connected to Stripe test mode" in tested.stdout
    # No file under the data folder -- database, settings, logs -- holds the key.
    assert _files_containing(data, TEST_KEY.encode()) == []
    assert _files_containing(data, TEST_KEY[8:].encode()) == []

    live = cli("--data-dir", str(data), "keys", "set", "stripe", env=secret_service, input=LIVE_KEY + "\n")
    assert "Stripe LIVE" in live.stdout
    removed = cli("--data-dir", str(data), "keys", "delete", "stripe", env=secret_service)
    assert "Removed the Stripe secret key" in removed.stdout
    assert SecretStore().get(STRIPE_SECRET_KEY) is None


@pytest.mark.parametrize(("pasted", "message"), [
    (stripe_key("pk", "test", "a" * 24), "publishable key"),
    ("whsec_" + "a" * 24, "webhook signing secret"),
    ("hello world", "does not look like a Stripe secret key"),
    ("sk_test_abc", "incomplete"),
    (stripe_key("sk", "test", "a" * 10_000), "a Stripe key has at most 255"),
    (stripe_key("sk", "test", "ключ" * 8), "characters a Stripe key never has"),
])
def test_what_is_not_a_secret_key_is_refused_before_the_keyring(cli, tmp_path: Path, pasted: str,
                                                                message: str) -> None:
    result = cli("--data-dir", str(tmp_path), "keys", "set", "stripe", input=pasted + "\n")
    assert result.returncode == 2 and message in result.stderr


def test_the_key_is_never_taken_from_an_argument(cli, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "keys", "set", "stripe", TEST_KEY)
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_without_a_secure_keyring_the_key_is_not_saved(cli, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "keys", "set", "stripe", input=TEST_KEY + "\n",
                 env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 2 and "No secure keyring is available" in result.stderr
    assert _files_containing(tmp_path, TEST_KEY.encode()) == []


def test_stripe_without_a_key_says_what_to_do(cli, tmp_path: Path) -> None:
    cli("--data-dir", str(tmp_path), "payments", "use", "stripe")
    result = cli("--data-dir", str(tmp_path), "payments", "test",
                 env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 2 and "keyring" in result.stderr.lower()


# --- the sandbox from the command line --------------------------------------------------


def _office(data: Path) -> None:
    """A company and one autopay client, through the same services the app uses."""
    from billing_helpers import make_client, setup_office

    db = open_database(f"sqlite:///{data / 'mspbill.sqlite3'}", data / "backups")
    try:
        setup_office(db)
        make_client(db, "Cascade Dental", autopay=True)
    finally:
        db.dispose()


def test_setup_link_charge_refund_and_sync_on_the_sandbox(cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cli("--data-dir", str(data), "clients", "list")  # creates and migrates the database
    _office(data)
    assert "sandbox" in cli("--data-dir", str(data), "payments", "use", "sandbox").stdout

    link = json.loads(cli("--data-dir", str(data), "clients", "setup-link", "1", "--json").stdout)
    assert link["mode"] == "sandbox" and link["url"].startswith("https://sandbox.mspbill.invalid/setup/")
    from mspbill.payments.sandbox import SandboxGateway

    sandbox = SandboxGateway(data / "sandbox-processor.sqlite3")
    sandbox.complete_setup_session(link["url"].rsplit("/", 1)[1], "pm_card_visa")
    synced = cli("--data-dir", str(data), "payments", "sync")
    assert "Saved from a setup link — Cascade Dental: Visa ending 4242" in synced.stdout, synced.stderr
    shown = cli("--data-dir", str(data), "clients", "methods", "1")
    assert "Visa ending 4242" in shown.stdout and "(default)" in shown.stdout

    cli("--data-dir", str(data), "invoices", "list")
    from billing_helpers import issue_ids, one_time

    db = open_database(f"sqlite:///{data / 'mspbill.sqlite3'}", data / "backups")
    try:
        issue_ids(db, [one_time(db, 1, ("Firewall", "1", "100.00"))], dt.date.today())
    finally:
        db.dispose()
    charged = cli("--data-dir", str(data), "payments", "charge", "INV-000001")
    assert charged.returncode == 0, charged.stderr
    assert "[Sandbox (simulated; no money moves)] Charged $100.00 to Visa ending 4242 for INV-000001." \
        in charged.stdout
    again = cli("--data-dir", str(data), "payments", "charge", "INV-000001")
    assert again.returncode == 2 and "nothing left to pay" in again.stderr
    assert len(sandbox.ledger_charges()) == 1

    payments = json.loads(cli("--data-dir", str(data), "payments", "list", "--json").stdout)
    refund = cli("--data-dir", str(data), "payments", "refund", str(payments[0]["id"]), "--amount", "40",
                 "--reason", "Two seats fewer")
    assert refund.returncode == 0, refund.stderr
    assert "Refunded $40.00." in refund.stdout and "Credit note CN-000001" in refund.stdout
    assert [r.amount_cents for r in sandbox.ledger_refunds()] == [4000]
    # The refund shows where the payment does.
    listed = json.loads(cli("--data-dir", str(data), "payments", "list", "--json").stdout)
    assert [(p["amount_cents"], p["refunded_cents"]) for p in listed] == [(10000, 4000)]
    shown = cli("--data-dir", str(data), "invoices", "show", "INV-000001").stdout
    assert "Refunded" in shown and "$40.00" in shown


def test_a_declined_charge_exits_with_one_and_says_why(cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cli("--data-dir", str(data), "clients", "list")
    _office(data)
    cli("--data-dir", str(data), "payments", "use", "sandbox")
    link = json.loads(cli("--data-dir", str(data), "clients", "setup-link", "1", "--json").stdout)
    from mspbill.payments.sandbox import SandboxGateway

    SandboxGateway(data / "sandbox-processor.sqlite3").complete_setup_session(
        link["url"].rsplit("/", 1)[1], "pm_card_visa_chargeDeclinedLostCard")
    cli("--data-dir", str(data), "payments", "sync")
    from billing_helpers import issue_ids, one_time

    db = open_database(f"sqlite:///{data / 'mspbill.sqlite3'}", data / "backups")
    try:
        issue_ids(db, [one_time(db, 1, ("Firewall", "1", "100.00"))], dt.date.today())
    finally:
        db.dispose()
    result = cli("--data-dir", str(data), "payments", "charge", "INV-000001", "--json")
    assert result.returncode == 1
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["hard_decline"]) == ("declined", True)
    assert "will not be retried" in outcome["message"]


# --- live mode ------------------------------------------------------------------------


class LiveSandbox:
    """The sandbox dressed as Stripe LIVE: there is no live Stripe here, and what is tested is
    mspbill's guard, which looks only at the mode."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    @property
    def mode(self):  # type: ignore[no-untyped-def]
        from mspbill.payments.gateway import ProcessorMode

        return ProcessorMode.LIVE

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_live_mode_will_not_charge_from_a_script_without_yes(tmp_path: Path, monkeypatch, capsys) -> None:
    from billing_helpers import issue_ids, make_client, one_time, setup_office

    from mspbill import cli, cli_payments
    from mspbill.payments.methods import ensure_customer, store_method
    from mspbill.payments.sandbox import SandboxGateway

    data = tmp_path / "data"
    db = open_database(f"sqlite:///{data / 'mspbill.sqlite3'}", data / "backups")
    live = LiveSandbox(SandboxGateway(tmp_path / "ledger.sqlite3"))
    try:
        setup_office(db)
        client_id = make_client(db, "Cascade Dental", autopay=True)
        customer_id = ensure_customer(db, live, client_id)  # type: ignore[arg-type]
        facts = live.attach_test_method(customer_id, "pm_card_visa")  # type: ignore[attr-defined]
        with db.write_session() as s, s.begin():
            store_method(s, client_id, live.mode, facts, customer_id, "test", make_default=True)
        issue_ids(db, [one_time(db, client_id, ("Firewall", "1", "100.00"))], dt.date.today())
    finally:
        db.dispose()
    monkeypatch.setattr(cli_payments, "_gateway", lambda ctx: live)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))  # a scheduled task: no terminal

    assert cli.main(["--data-dir", str(data), "payments", "charge", "INV-000001"]) == 2
    assert "LIVE mode (real money)" in capsys.readouterr().err
    assert live.ledger_charges() == []  # type: ignore[attr-defined]
    assert cli.main(["--data-dir", str(data), "payments", "charge", "INV-000001", "--yes"]) == 0
    assert "[Stripe LIVE] Charged $100.00 to Visa ending 4242" in capsys.readouterr().out
