"""Settings → E-mail: defaults, validation (every problem at once), templates and
their placeholders, and the values an invoice fills them with."""

from __future__ import annotations

import datetime as dt

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
from mspbill.mail import (
    PLACEHOLDERS,
    MailSettingsDraft,
    is_configured,
    mail_settings_draft,
    save_mail_settings,
)
from mspbill.mail.templates import (
    AUTOPAY_WORDING,
    DEFAULT_INVOICE_BODY,
    DEFAULT_INVOICE_SUBJECT,
    check_template,
    invoice_values,
    render,
)
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

def test_values_of_a_by_invoice_client(db) -> None:
    setup_office(db, name="Acme IT", payment_instructions="Bank: First Bank, IBAN DE00 1234")
    cid = make_client(db, "Zürich Dental GmbH", payment_terms_days="30", billing_emails="ap@zd.example")
    iid = one_time(db, cid, ("Firewall appliance", "2", "450.25"))
    issue_ids(db, [iid], dt.date(2026, 11, 3))
    with db.session() as s:
        values = invoice_values(s, s.get(Invoice, iid))
    assert values["client"] == "Zürich Dental GmbH"
    assert values["number"] == "INV-000001"
    assert values["total"] == "$900.50" and values["balance"] == "$900.50"
    assert values["issue_date"] == "November 3, 2026" and values["due_date"] == "December 3, 2026"
    assert values["period"] == "November 2026"
    assert values["payment_method"].startswith("payment by invoice")
    assert "IBAN DE00 1234" in values["payment_method"]
    assert values["company"] == "Acme IT"


def test_values_of_an_autopay_client_on_a_quarterly_agreement(db) -> None:
    setup_office(db)
    cid = make_client(db, "Cascade Dental", autopay=True)
    make_agreement(db, cid, "2026-10-01", [LineDraft("Managed seats", "10", "100.00")], frequency="quarterly")
    [iid] = run_month(db, Month(2026, 10), dt.date(2026, 10, 1))
    with db.session() as s:
        values = invoice_values(s, s.get(Invoice, iid))
    assert values["period"] == "Q4 2026"
    assert values["payment_method"] == AUTOPAY_WORDING
