"""Settings → E-mail: defaults, validation (every problem at once), templates and
their placeholders, and the values an invoice fills them with."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from billing_helpers import (
    issue_ids,
    make_agreement,
    make_client,
    one_time,
    run_month,
    setup_office,
)
from sqlalchemy import select

from mspbill.agreements import LineDraft
from mspbill.db.models import AuditEntry, Invoice, MailSettings
from mspbill.invoicing import create_credit_note, mark_uncollectible
from mspbill.mail import (
    PLACEHOLDERS,
    MailSettingsDraft,
    is_configured,
    mail_settings_draft,
    save_mail_settings,
)
from mspbill.mail.templates import (
    CREDIT_NOTE_BODY,
    CREDIT_NOTE_WORDING,
    DEFAULT_INVOICE_BODY,
    DEFAULT_INVOICE_SUBJECT,
    PAID_WORDING,
    check_template,
    invoice_values,
    render,
    sample_values,
)
from mspbill.payments.manual import record_payment
from mspbill.pdf.layout import fmt_date
from mspbill.periods import Month
from mspbill.validation import Issue, ValidationError


def _good(**changes: object) -> MailSettingsDraft:
    draft = MailSettingsDraft(host="smtp.acme-it.example", port="587", security="starttls",
                              username="billing@acme-it.example", from_address="billing@acme-it.example",
                              from_name="Acme IT", reply_to="office@acme-it.example")
    for key, value in changes.items():
        setattr(draft, key, value)
    return draft


def _issues(text: str) -> list[Issue]:
    issues: list[Issue] = []
    check_template(text, "invoice_body", "text", issues)
    return issues


# --- templates ----------------------------------------------------------------------

def test_default_templates_use_only_known_placeholders_and_render() -> None:
    assert _issues(DEFAULT_INVOICE_SUBJECT) == [] and _issues(DEFAULT_INVOICE_BODY) == []
    values = {name: f"<{name}>" for name in PLACEHOLDERS}
    body = render(DEFAULT_INVOICE_BODY, values)
    for name in ("client", "number", "total", "balance", "due_date", "payment_method", "company"):
        assert f"<{name}>" in body
    assert "{" not in render(DEFAULT_INVOICE_SUBJECT, values)


def test_default_texts_start_their_sentences_with_a_capital() -> None:
    assert DEFAULT_INVOICE_BODY.startswith("Dear {client},\n\nPlease find attached invoice")
    assert CREDIT_NOTE_BODY.startswith("Dear {client},\n\nPlease find attached credit note")
    assert "please find" not in DEFAULT_INVOICE_BODY + CREDIT_NOTE_BODY


def test_placeholders_are_the_documented_ones() -> None:
    assert set(PLACEHOLDERS) == {"client", "number", "total", "balance", "due_date", "issue_date", "period",
                                 "payment_method", "company"}
    assert all(PLACEHOLDERS.values())


@pytest.mark.parametrize("text, needle", [
    ("Invoice {nummer} from {company}", "{nummer}"),
    ("Invoice {0}", "{0}"),
    ("Invoice {}", "{}"),
    ("Total {total:>10}", "{total:>10}"),
    ("Client {client!r}", "{client!r}"),
    ("Invoice {client.name}", "{client.name}"),
])
def test_unknown_placeholder_is_refused_listing_the_allowed_ones(text: str, needle: str) -> None:
    issues = _issues(text)
    assert len(issues) == 1 and issues[0].field == "invoice_body"
    assert needle in issues[0].message
    for name in PLACEHOLDERS:
        assert "{" + name + "}" in issues[0].message


@pytest.mark.parametrize("text", ["Invoice {number", "Invoice number}", "{ {number}", "Pay {total}}"])
def test_unbalanced_brace_is_refused(text: str) -> None:
    issues = _issues(text)
    assert len(issues) == 1 and "unbalanced brace" in issues[0].message
    assert "{due_date}" in issues[0].message  # the allowed list


def test_escaped_braces_are_literal() -> None:
    assert _issues("Ref {{number}} is {number}") == []
    assert render("Ref {{number}} is {number}", {"number": "INV-1"}) == "Ref {number} is INV-1"


def test_several_unknown_placeholders_are_named_in_one_issue() -> None:
    issues = _issues("{a} {b} {number} {a}")
    assert len(issues) == 1 and "{a}, {b}" in issues[0].message and "{a}, {b}, {a}" not in issues[0].message


# --- settings --------------------------------------------------------------------

def test_defaults_come_from_the_company_when_nothing_is_saved(db) -> None:
    setup_office(db, name="Acme IT", email="office@acme-it.example")
    with db.session() as s:
        draft = mail_settings_draft(s)
        assert not is_configured(s)
    assert draft.from_address == "office@acme-it.example" and draft.from_name == "Acme IT"
    assert draft.invoice_subject == DEFAULT_INVOICE_SUBJECT and draft.invoice_body == DEFAULT_INVOICE_BODY
    assert draft.port == "587" and draft.security == "starttls" and draft.host == ""


def test_save_and_read_back_with_an_audit_entry(db) -> None:
    setup_office(db)
    draft = _good(invoice_subject="Rechnung {number} für {client}", bcc_office=True, security="ssl", port="465")
    with db.write_session() as s, s.begin():
        save_mail_settings(s, draft)
    with db.session() as s:
        again = mail_settings_draft(s)
        assert is_configured(s)
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "settings")))
    assert again.host == "smtp.acme-it.example" and again.port == "465" and again.security == "ssl"
    assert again.bcc_office is True and again.invoice_subject == "Rechnung {number} für {client}"
    assert again.reply_to == "office@acme-it.example"
    assert len(entries) == 1 and "smtp.acme-it.example:465" in entries[0].summary


def test_a_saved_edited_text_is_kept_as_written(db) -> None:
    with db.write_session() as s, s.begin():
        save_mail_settings(s, _good(invoice_body="Hi {client},\n\nplease find {number} attached."))
    with db.session() as s:
        assert mail_settings_draft(s).invoice_body == "Hi {client},\n\nplease find {number} attached.\n"


def test_every_problem_is_reported_at_once_and_nothing_is_saved(db) -> None:
    bad = MailSettingsDraft(host="smtp://mail.example.com:587", port="70000", security="tls", username="",
                            from_address="billing at acme", from_name="", reply_to="nobody@",
                            invoice_subject="Invoice {nummer}", invoice_body="Dear {client,\n")
    with db.write_session() as s, s.begin(), pytest.raises(ValidationError) as caught:
        save_mail_settings(s, bad)
    fields = caught.value.by_field()
    assert set(fields) == {"host", "port", "security", "from_address", "reply_to", "invoice_subject",
                           "invoice_body"}
    assert "{nummer}" in fields["invoice_subject"][0]
    assert "unbalanced" in fields["invoice_body"][0]
    with db.session() as s:
        assert s.get(MailSettings, 1) is None and not is_configured(s)


@pytest.mark.parametrize("port, ok", [("1", True), ("65535", True), ("0", False), ("65536", False),
                                      ("-5", False), ("", False), ("587.0", False)])
def test_port_range(db, port: str, ok: bool) -> None:
    with db.write_session() as s, s.begin():
        if ok:
            save_mail_settings(s, _good(port=port))
        else:
            with pytest.raises(ValidationError) as caught:
                save_mail_settings(s, _good(port=port))
            assert list(caught.value.by_field()) == ["port"]


def test_empty_host_and_sender_are_required(db) -> None:
    with db.write_session() as s, s.begin(), pytest.raises(ValidationError) as caught:
        save_mail_settings(s, _good(host=" ", from_address=""))
    assert set(caught.value.by_field()) == {"host", "from_address"}


# --- the values an invoice gives its placeholders -----------------------------------

PAY_BY_BANK = "Bank: First Bank, IBAN DE00 1234"
NOV_3, DEC_3 = dt.date(2026, 11, 3), dt.date(2026, 12, 3)


def _by_invoice(db, **office: str) -> int:
    """An issued one-time invoice of $900.50 for a client who pays by invoice: issued 3 Nov, due 3 Dec 2026."""
    setup_office(db, name="Acme IT", **office)
    cid = make_client(db, "Zürich Dental GmbH", payment_terms_days="30", billing_emails="ap@zd.example")
    iid = one_time(db, cid, ("Firewall appliance", "2", "450.25"))
    issue_ids(db, [iid], NOV_3)
    return iid


def _autopay(db, **office: str) -> int:
    """An autopay client's quarterly invoice: issued and due 1 Oct 2026."""
    setup_office(db, **office)
    cid = make_client(db, "Cascade Dental", autopay=True)
    make_agreement(db, cid, "2026-10-01", [LineDraft("Managed seats", "10", "100.00")], frequency="quarterly")
    [iid] = run_month(db, Month(2026, 10), dt.date(2026, 10, 1))
    return iid


def _values(db, iid: int, today: dt.date) -> dict[str, str]:
    with db.session() as s:
        return invoice_values(s, s.get(Invoice, iid), today)


def _pay_in_full(db, iid: int) -> None:
    with db.write_session() as s, s.begin():
        inv = s.get(Invoice, iid)
        record_payment(s, iid, str(Decimal(inv.balance_cents) / 100), "wire", received_on=inv.issue_date,
                       today=inv.issue_date)


def test_values_of_a_by_invoice_client(db) -> None:
    iid = _by_invoice(db, payment_instructions=PAY_BY_BANK)
    values = _values(db, iid, NOV_3)
    assert values["client"] == "Zürich Dental GmbH"
    assert values["number"] == "INV-000001"
    assert values["total"] == "$900.50" and values["balance"] == "$900.50"
    assert values["period"] == "November 2026"
    assert values["payment_method"] == ("Please pay by 3 Dec 2026 as follows:\n" + PAY_BY_BANK
                                        + "\nPlease quote INV-000001 with your payment.")
    assert "payment by invoice" not in values["payment_method"]
    assert values["company"] == "Acme IT"


def test_dates_are_written_as_on_the_pdf(db) -> None:
    iid = _by_invoice(db)
    values = _values(db, iid, NOV_3)
    assert values["issue_date"] == "3 Nov 2026" == fmt_date(NOV_3)
    assert values["due_date"] == "3 Dec 2026" == fmt_date(DEC_3)
    sample = sample_values()
    assert sample["due_date"] == fmt_date(dt.date(2026, 12, 1)) and sample["issue_date"] == fmt_date(dt.date(2026, 11, 1))


def test_by_invoice_without_instructions_says_what_to_quote_and_whom_to_ask(db) -> None:
    iid = _by_invoice(db, email="office@acme-it.example")
    assert _values(db, iid, NOV_3)["payment_method"] == (
        "Please pay by 3 Dec 2026 as follows:\nPlease quote INV-000001 with your payment. "
        "For our payment details, contact us at office@acme-it.example.")


def test_instructions_that_already_ask_for_the_number_are_not_repeated(db) -> None:
    iid = _by_invoice(db, payment_instructions="Wire to IBAN DE00 1234; quote the invoice number.")
    text = _values(db, iid, NOV_3)["payment_method"]
    assert text.endswith("quote the invoice number.") and "Please quote" not in text


def test_a_past_due_by_invoice_invoice_says_it_was_due(db) -> None:
    iid = _by_invoice(db, payment_instructions=PAY_BY_BANK)
    text = _values(db, iid, dt.date(2026, 12, 20))["payment_method"]
    assert text.startswith("This invoice was due on 3 Dec 2026; please pay the balance as follows:\n" + PAY_BY_BANK)


def test_values_of_an_autopay_client_on_a_quarterly_agreement(db) -> None:
    iid = _autopay(db, payment_instructions=PAY_BY_BANK)
    values = _values(db, iid, dt.date(2026, 10, 1))
    assert values["period"] == "Q4 2026"
    assert values["payment_method"] == ("The balance will be charged automatically on 1 Oct 2026 to the payment "
                                        "method we have on file for you, so there is nothing for you to do.")
    assert PAY_BY_BANK not in values["payment_method"]


def test_an_autopay_invoice_still_open_after_its_due_date_says_the_charge_failed(db) -> None:
    iid = _autopay(db, payment_instructions=PAY_BY_BANK, email="office@acme-it.example")
    text = _values(db, iid, dt.date(2026, 10, 5))["payment_method"]
    assert text == ("The automatic payment on 1 Oct 2026 did not go through, so the balance is still due. "
                    "Please pay it as follows, or contact us at office@acme-it.example to update your payment "
                    "method:\n" + PAY_BY_BANK + "\nPlease quote INV-000001 with your payment.")
    assert "nothing for you to do" not in text


def test_a_failed_autopay_charge_without_instructions_asks_them_to_contact_the_office(db) -> None:
    iid = _autopay(db)
    text = _values(db, iid, dt.date(2026, 10, 5))["payment_method"]
    assert text == ("The automatic payment on 1 Oct 2026 did not go through, so the balance is still due. "
                    "Please contact our office to pay another way or to update your payment method, "
                    "quoting INV-000001.")


@pytest.mark.parametrize("make", [_by_invoice, _autopay])
def test_a_paid_invoice_says_there_is_nothing_to_pay(db, make) -> None:
    iid = make(db, payment_instructions=PAY_BY_BANK)
    _pay_in_full(db, iid)
    values = _values(db, iid, dt.date(2027, 1, 15))  # long past due, but paid
    assert values["payment_method"] == PAID_WORDING == ("This invoice is paid in full — thank you; "
                                                        "there is nothing to pay.")
    assert values["balance"] == "$0.00"
    with db.session() as s:
        assert s.get(Invoice, iid).status.value == "paid"


@pytest.mark.parametrize("make", [_by_invoice, _autopay])
def test_a_written_off_invoice_is_still_owed_with_the_instructions(db, make) -> None:
    iid = make(db, payment_instructions=PAY_BY_BANK)
    with db.write_session() as s, s.begin():
        mark_uncollectible(s, iid, "Client stopped answering")
    values = _values(db, iid, dt.date(2027, 3, 1))
    assert values["payment_method"].startswith(f"The balance of {values['balance']} is still due; please pay it "
                                               "as follows:\n" + PAY_BY_BANK)
    assert values["balance"] != "$0.00"
    body = render(DEFAULT_INVOICE_BODY, values)
    for wrong in ("uncollectible", "written off", "charged automatically", "nothing"):
        assert wrong not in body


def test_a_credit_note_keeps_its_own_wording(db) -> None:
    iid = _by_invoice(db, payment_instructions=PAY_BY_BANK)
    with db.write_session() as s, s.begin():
        note_id = create_credit_note(s, iid, "Returned one appliance", "450.25").id
    values = _values(db, note_id, NOV_3)
    assert values["payment_method"] == CREDIT_NOTE_WORDING and values["balance"] == "$0.00"


def test_the_default_body_reads_well_with_the_payment_text(db) -> None:
    iid = _by_invoice(db, payment_instructions=PAY_BY_BANK)
    body = render(DEFAULT_INVOICE_BODY, _values(db, iid, NOV_3))
    assert ("Dear Zürich Dental GmbH,\n\nPlease find attached invoice INV-000001 for November 2026, issued on "
            "3 Nov 2026.") in body
    assert "Due date: 3 Dec 2026\n\nPayment: Please pay by 3 Dec 2026 as follows:\n" + PAY_BY_BANK in body
