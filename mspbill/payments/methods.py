"""A client's customer at the processor, their saved cards and bank accounts, and
the setup links that collect them.

The office never sees a card or account number: a client saves one on a hosted
page (a setup link), or an existing customer at the processor is linked.  Only
the method's id and what a person needs to recognise it are kept (brand, last
4, expiry; bank name, last 4).

Functions that call the processor take the `Database` (not a session): no
database transaction is held open across a network call (house rule 3); each
step commits on its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.db.engine import Database
from mspbill.db.models import (
    IN_FLIGHT_STATUSES,
    ChargeAttempt,
    Client,
    OutboxMessage,
    OutboxStatus,
    ProcessorCustomer,
    SavedMethodStatus,
    SavedPaymentMethod,
    SetupLink,
    SetupLinkStatus,
    utcnow,
)
from mspbill.payments.gateway import (
    CustomerInfo,
    Gateway,
    MethodFacts,
    MethodKind,
    NotFound,
    ProcessorError,
    ProcessorMode,
    SetupStatus,
)
from mspbill.payments.processor import office_mode, payment_settings, to_db_mode
from mspbill.validation import Issue, ValidationError

log = logging.getLogger(__name__)

KIND_SETUP_LINK = "setup_link"
EXPIRY_MARGIN = dt.timedelta(minutes=5)


def new_key(prefix: str) -> str:
    """An idempotency key: unique, and readable in the processor's logs."""
    return f"mspbill-{prefix}-{uuid.uuid4().hex}"


def next_autopay_run(today: dt.date) -> dt.date:
    """When autopay next charges: the first day of the coming month (the month-end batch)."""
    return dt.date(today.year + (today.month == 12), today.month % 12 + 1, 1)


# --- snapshots --------------------------------------------------------------------


@dataclass(frozen=True)
class SavedMethodView:
    id: int
    method_id: str
    kind: str
    label: str                    # "Visa ending 4242"
    expiry: str                   # "12/2029" or ""
    is_default: bool
    expires_before_next_run: bool
    expired: bool
    hard_declined: bool
    hard_decline_reason: str
    source: str
    added_at: dt.datetime

    @property
    def usable(self) -> bool:
        return not self.expired and not self.hard_declined


@dataclass(frozen=True)
class SetupLinkView:
    id: int
    url: str
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    sent_to: str
    last_error: str


@dataclass(frozen=True)
class PaymentProfile:
    """What the client window shows about paying: the mode, the customer, the methods, the open link."""

    client_id: int
    client_name: str
    mode: ProcessorMode | None
    customer_id: str | None
    customer_linked: bool
    methods: list[SavedMethodView]
    open_link: SetupLinkView | None
    autopay: bool
    next_run: dt.date
    warnings: list[str] = field(default_factory=list)

    @property
    def default_method(self) -> SavedMethodView | None:
        return next((m for m in self.methods if m.is_default), None)


def method_facts(row: SavedPaymentMethod) -> MethodFacts:
    return MethodFacts(method_id=row.method_id, kind=MethodKind(row.kind), last4=row.last4, brand=row.brand,
                       exp_month=row.exp_month, exp_year=row.exp_year, bank_name=row.bank_name,
                       customer_id=row.customer_id)


def method_label(row: SavedPaymentMethod) -> str:
    return method_facts(row).label


def _view(row: SavedPaymentMethod, today: dt.date) -> SavedMethodView:
    facts = method_facts(row)
    return SavedMethodView(
        id=row.id, method_id=row.method_id, kind=row.kind, label=facts.label,
        expiry=f"{row.exp_month:02d}/{row.exp_year}" if row.exp_month and row.exp_year else "",
        is_default=row.is_default, expires_before_next_run=facts.expires_before(next_autopay_run(today)),
        expired=facts.expires_before(today), hard_declined=row.hard_declined_at is not None,
        hard_decline_reason=row.hard_decline_reason, source=row.source, added_at=row.added_at)


def active_methods(session: Session, client_id: int, mode: ProcessorMode) -> list[SavedPaymentMethod]:
    return list(session.scalars(select(SavedPaymentMethod).where(
        SavedPaymentMethod.client_id == client_id, SavedPaymentMethod.mode == to_db_mode(mode),
        SavedPaymentMethod.status == SavedMethodStatus.ACTIVE).order_by(
        SavedPaymentMethod.is_default.desc(), SavedPaymentMethod.added_at.desc(), SavedPaymentMethod.id.desc())))


def default_method(session: Session, client_id: int, mode: ProcessorMode) -> SavedPaymentMethod | None:
    return session.scalar(select(SavedPaymentMethod).where(
        SavedPaymentMethod.client_id == client_id, SavedPaymentMethod.mode == to_db_mode(mode),
        SavedPaymentMethod.status == SavedMethodStatus.ACTIVE, SavedPaymentMethod.is_default.is_(True)).limit(1))


def default_method_labels(session: Session, mode: ProcessorMode | None,
                          client_ids: Sequence[int] | None = None) -> dict[int, str]:
    """client id -> "Visa ending 4242" for every client with a default method in this mode (lists, PDFs)."""
    if mode is None:
        return {}
    stmt = select(SavedPaymentMethod).where(
        SavedPaymentMethod.mode == to_db_mode(mode), SavedPaymentMethod.status == SavedMethodStatus.ACTIVE,
        SavedPaymentMethod.is_default.is_(True))
    if client_ids is not None:
        stmt = stmt.where(SavedPaymentMethod.client_id.in_(list(client_ids)))
    return {row.client_id: method_label(row) for row in session.scalars(stmt)}


def display_method_label(session: Session, client_id: int) -> str | None:
    """The method autopay will charge, as the client's documents name it; None when unknown."""
    mode = office_mode(session)
    if mode is None:
        return None
    row = default_method(session, client_id, mode)
    return method_label(row) if row is not None else None


def customer_row(session: Session, client_id: int, mode: ProcessorMode) -> ProcessorCustomer | None:
    return session.scalar(select(ProcessorCustomer).where(
        ProcessorCustomer.client_id == client_id, ProcessorCustomer.mode == to_db_mode(mode)))


def _open_link(session: Session, client_id: int, mode: ProcessorMode) -> SetupLink | None:
    return session.scalar(select(SetupLink).where(
        SetupLink.client_id == client_id, SetupLink.mode == to_db_mode(mode),
        SetupLink.status == SetupLinkStatus.OPEN).order_by(SetupLink.id.desc()).limit(1))


def payment_profile(session: Session, client_id: int, mode: ProcessorMode | None,
                    today: dt.date | None = None) -> PaymentProfile:
    today = today or dt.date.today()
    client = session.get(Client, client_id)
    if client is None:
        raise ValidationError([Issue("client", f"There is no client {client_id}.")])
    views: list[SavedMethodView] = []
    link_view: SetupLinkView | None = None
    cust = None
    if mode is not None:
        cust = customer_row(session, client_id, mode)
        views = [_view(r, today) for r in active_methods(session, client_id, mode)]
        link = _open_link(session, client_id, mode)
        if link is not None:
            link_view = SetupLinkView(link.id, link.url, link.status.value, link.created_at, link.expires_at,
                                      link.sent_to, link.last_error)
    warnings: list[str] = []
    next_run = next_autopay_run(today)
    default = next((v for v in views if v.is_default), None)
    if mode is None:
        if client.autopay:
            warnings.append("No payment processor is set up, so autopay cannot charge anyone yet "
                            "(Settings → Payments).")
    elif client.autopay and default is None:
        warnings.append("Autopay is on but no card or bank account is on file: this client's invoices will not "
                        "be charged until they complete a payment setup link.")
    if default is not None:
        if default.expired:
            warnings.append(f"{default.label} expired ({default.expiry}). Ask the client for a new card.")
        elif default.expires_before_next_run:
            warnings.append(f"{default.label} expires {default.expiry}, before the next autopay run on "
                            f"{next_run:%B} {next_run.day}. Send the client a setup link for a new card.")
        if default.hard_declined:
            warnings.append(f"{default.label} was declined for good ({default.hard_decline_reason}); autopay "
                            "will not use it again. Send the client a setup link for a new method.")
    return PaymentProfile(client_id=client.id, client_name=client.legal_name, mode=mode,
                          customer_id=cust.customer_id if cust else None, customer_linked=bool(cust and cust.linked),
                          methods=views, open_link=link_view, autopay=client.autopay, next_run=next_run,
                          warnings=warnings)


# --- customers --------------------------------------------------------------------


def _client_facts(db: Database, client_id: int) -> tuple[str, str]:
    with db.session() as s:
        client = s.get(Client, client_id)
        if client is None:
            raise ValidationError([Issue("client", f"There is no client {client_id}.")])
        emails = client.email_list
        return client.legal_name, emails[0] if emails else ""


def ensure_customer(db: Database, gateway: Gateway, client_id: int) -> str:
    """The client's customer id at the processor in the gateway's mode, created there if need be."""
    mode = gateway.mode
    with db.session() as s:
        row = customer_row(s, client_id, mode)
        if row is not None:
            return row.customer_id
    name, email = _client_facts(db, client_id)
    created = gateway.create_customer(name=name, email=email, metadata={"mspbill_client_id": str(client_id)},
                                      idempotency_key=new_key("customer"))
    try:
        with db.write_session() as s, s.begin():
            s.add(ProcessorCustomer(client_id=client_id, mode=to_db_mode(mode), customer_id=created.customer_id,
                                    linked=False))
            audit.record(s, "client.processor_customer", "client", client_id,
                         f"Created {mode.label} customer {created.customer_id}")
    except IntegrityError:
        # Another workstation created one at the same moment: use theirs; ours stays unused at the processor.
        with db.session() as s:
            row = customer_row(s, client_id, mode)
            if row is None:
                raise
            log.warning("client %s got two %s customers at once; keeping %s, %s is unused",
                        client_id, mode.value, row.customer_id, created.customer_id)
            return row.customer_id
    return created.customer_id


@dataclass(frozen=True)
class CustomerChoice:
    """An existing customer at the processor that could be linked to a client."""

    customer_id: str
    name: str
    email: str
    created: dt.datetime | None
    default_method_label: str
    method_count: int
    linked_to_client: str       # the name of another client already linked to it, or ""


def find_existing_customers(db: Database, gateway: Gateway, client_id: int) -> list[CustomerChoice]:
    """Customers at the processor with one of the client's billing e-mail addresses."""
    with db.session() as s:
        client = s.get(Client, client_id)
        if client is None:
            raise ValidationError([Issue("client", f"There is no client {client_id}.")])
        emails = client.email_list
    if not emails:
        raise ValidationError([Issue("email", "This client has no billing e-mail address to look up in Stripe; "
                                              "add one, or type the customer id (cus_…) to link.")])
    found: dict[str, CustomerInfo] = {}
    for email in emails:
        for info in gateway.find_customers(email):
            if not info.deleted:
                found.setdefault(info.customer_id, info)
    choices = []
    mode = to_db_mode(gateway.mode)
    with db.session() as s:
        linked = {cid: name for cid, name in s.execute(
            select(ProcessorCustomer.customer_id, Client.legal_name).join(Client).where(
                ProcessorCustomer.mode == mode, ProcessorCustomer.customer_id.in_(list(found)),
                ProcessorCustomer.client_id != client_id))}
    for info in found.values():
        methods = gateway.list_methods(info.customer_id)
        default = next((m for m in methods if m.method_id == info.default_method_id), None) or (
            methods[0] if methods else None)
        choices.append(CustomerChoice(info.customer_id, info.name, info.email, info.created,
                                      default.label if default else "", len(methods),
                                      linked.get(info.customer_id, "")))
    return choices


def store_method(s: Session, client_id: int, mode: ProcessorMode, facts: MethodFacts, customer_id: str,
                  source: str, make_default: bool) -> SavedPaymentMethod:
    row = s.scalar(select(SavedPaymentMethod).where(
        SavedPaymentMethod.mode == to_db_mode(mode), SavedPaymentMethod.method_id == facts.method_id))
    if row is None:
        row = SavedPaymentMethod(client_id=client_id, mode=to_db_mode(mode), customer_id=customer_id,
                                 method_id=facts.method_id, kind=facts.kind.value, source=source,
                                 hard_decline_reason="")
        s.add(row)
    elif row.client_id != client_id:
        raise ValidationError([Issue("method", "This payment method is already on file for another client.")])
    row.brand, row.last4 = facts.brand[:30], facts.last4[:4]
    row.exp_month, row.exp_year, row.bank_name = facts.exp_month, facts.exp_year, facts.bank_name[:100]
    row.status, row.removed_at = SavedMethodStatus.ACTIVE, None
    s.flush()
    if make_default:
        s.execute(update(SavedPaymentMethod).where(
            SavedPaymentMethod.client_id == client_id, SavedPaymentMethod.mode == to_db_mode(mode),
            SavedPaymentMethod.id != row.id).values(is_default=False))
        row.is_default = True
    elif not row.is_default and default_method(s, client_id, mode) is None:
        row.is_default = True  # the only usable method is the default
    s.flush()
    return row


@dataclass(frozen=True)
class LinkResult:
    customer_id: str
    default_label: str
    methods_found: int
    replaced_customer: str | None


def link_existing_customer(db: Database, gateway: Gateway, client_id: int, customer_id: str) -> LinkResult:
    """Link the client to a customer that already exists at the processor and take its default method."""
    customer_id = (customer_id or "").strip()
    _client_facts(db, client_id)  # an unknown client is said first, before asking the processor
    if not customer_id.startswith("cus_") or len(customer_id) > 100:
        raise ValidationError([Issue("customer_id", "A Stripe customer id starts with cus_ (Stripe Dashboard → "
                                                    "Customers → the customer → the id at the top).")])
    info = gateway.get_customer(customer_id)
    if info.deleted:
        raise ValidationError([Issue("customer_id", f"{customer_id} was deleted in Stripe; it cannot be linked.")])
    methods = gateway.list_methods(customer_id)
    default = next((m for m in methods if m.method_id == info.default_method_id), None) or (
        methods[0] if methods else None)
    mode = gateway.mode
    with db.write_session() as s, s.begin():
        taken = s.scalar(select(ProcessorCustomer).where(
            ProcessorCustomer.mode == to_db_mode(mode), ProcessorCustomer.customer_id == customer_id))
        if taken is not None and taken.client_id != client_id:
            other = s.get(Client, taken.client_id)
            raise ValidationError([Issue("customer_id", f"{customer_id} is already linked to "
                                                        f"{other.legal_name if other else 'another client'}.")])
        row = customer_row(s, client_id, mode)
        replaced = None
        if row is not None and row.customer_id != customer_id:
            replaced = row.customer_id
            # The old customer's methods cannot be charged through the new one.
            for old in active_methods(s, client_id, mode):
                old.status, old.is_default, old.removed_at = SavedMethodStatus.REMOVED, False, utcnow()
            row.customer_id, row.linked = customer_id, True
        elif row is None:
            s.add(ProcessorCustomer(client_id=client_id, mode=to_db_mode(mode), customer_id=customer_id, linked=True))
        for m in methods:
            store_method(s, client_id, mode, m, customer_id, "linked_customer", make_default=(m is default))
        text = f"Linked existing {mode.label} customer {customer_id}"
        if replaced:
            text += f" (replacing {replaced})"
        text += f"; default method: {default.label}" if default else "; it has no card or bank account yet"
        audit.record(s, "client.processor_customer", "client", client_id, text)
    return LinkResult(customer_id, default.label if default else "", len(methods), replaced)


# --- setup links ------------------------------------------------------------------


@dataclass(frozen=True)
class SetupLinkResult:
    link_id: int
    url: str
    expires_at: dt.datetime
    customer_id: str


def create_setup_link(db: Database, gateway: Gateway, client_id: int,
                      now: dt.datetime | None = None) -> SetupLinkResult:
    """A fresh hosted page where the client saves a card or US bank account; earlier open links are closed."""
    now = now or utcnow()
    customer_id = ensure_customer(db, gateway, client_id)
    with db.session() as s:
        settings = payment_settings(s)
        hours, success_url = settings.setup_link_hours, settings.setup_success_url or None
        currency = s.get(Client, client_id).currency  # type: ignore[union-attr]
        earlier = [link.session_id for link in s.scalars(select(SetupLink).where(
            SetupLink.client_id == client_id, SetupLink.mode == to_db_mode(gateway.mode),
            SetupLink.status == SetupLinkStatus.OPEN))]
    session = gateway.create_setup_session(
        customer_id=customer_id, currency=currency, success_url=success_url,
        metadata={"mspbill_client_id": str(client_id)}, idempotency_key=new_key("setup"),
        # A few minutes inside the limit: the processor refuses more than 24 hours by its own clock.
        expires_at=now + dt.timedelta(hours=hours) - EXPIRY_MARGIN)
    for session_id in earlier:
        # One live link per client: an older one left open could still save a method later, which is
        # harmless, but the office expects the newest link to be the one that counts.
        try:
            gateway.expire_setup_session(session_id)
        except ProcessorError as exc:
            log.info("could not expire the earlier setup session %s: %s", session_id, exc.code)
    with db.write_session() as s, s.begin():
        for old in s.scalars(select(SetupLink).where(SetupLink.session_id.in_(earlier),
                                                     SetupLink.status == SetupLinkStatus.OPEN)):
            old.status = SetupLinkStatus.CANCELED
        link = SetupLink(client_id=client_id, mode=to_db_mode(gateway.mode), customer_id=customer_id,
                         session_id=session.session_id, url=session.url or "", status=SetupLinkStatus.OPEN,
                         expires_at=session.expires_at, sent_to="", last_error="", created_at=now)
        s.add(link)
        s.flush()
        audit.record(s, "client.setup_link", "client", client_id,
                     f"Created a payment setup link ({gateway.mode.label}), usable until "
                     f"{session.expires_at:%Y-%m-%d %H:%M} UTC", {"setup_link_id": link.id})
        return SetupLinkResult(link.id, link.url, link.expires_at, customer_id)


def setup_email_text(company_name: str, client_name: str, url: str, expires_at: dt.datetime) -> tuple[str, str]:
    subject = f"Set up automatic payment with {company_name}"
    local = expires_at.astimezone()
    body = (f"Hello {client_name},\n\n"
            f"{company_name} would like to charge your invoices automatically when they are issued, so there is "
            "nothing for you to do each month.\n\n"
            "Please use this secure page, hosted by our payment processor Stripe, to save a card or a US bank "
            "account. We never see the full number.\n\n"
            f"{url}\n\n"
            f"The link can be used until {local:%B} {local.day}, {local:%Y} at {local:%H:%M}. If it has expired, "
            "reply to this e-mail and we will send a new one.\n\n"
            f"Thank you,\n{company_name}\n")
    return subject, body


def queue_setup_link_email(session: Session, link_id: int, now: dt.datetime | None = None) -> int:
    """Put an e-mail with the setup link in the outbox (to the client's billing addresses); its id."""
    from mspbill.db.models import CompanyProfile, MailSettings
    from mspbill.mail.outbox import NOT_CONFIGURED

    now = now or utcnow()
    link = session.get(SetupLink, link_id)
    if link is None:
        raise ValidationError([Issue("link", "That setup link no longer exists.")])
    client = session.get(Client, link.client_id)
    assert client is not None
    issues = []
    mail = session.get(MailSettings, 1)
    if mail is None or not mail.host or not mail.from_address:
        issues.append(Issue("mail", NOT_CONFIGURED))
    if link.status is not SetupLinkStatus.OPEN or link.expires_at <= now:
        issues.append(Issue("link", "This setup link is no longer open; create a new one."))
    emails = client.email_list
    if not emails:
        issues.append(Issue("client", f"{client.legal_name} has no billing e-mail address; copy the link "
                                      "instead, or add an address under Clients."))
    if issues:
        raise ValidationError(issues)
    company = session.get(CompanyProfile, 1)
    company_name = company.name if company else "Your IT provider"
    subject, body = setup_email_text(company_name, client.legal_name, link.url, link.expires_at)
    msg = OutboxMessage(kind=KIND_SETUP_LINK, status=OutboxStatus.QUEUED, invoice_id=None, client_id=client.id,
                        to_addrs=emails[0], cc_addrs=", ".join(emails[1:]), subject=subject, body=body,
                        attach_invoice_pdf=False, attachment_name="", message_id="", attempts=0, last_error="",
                        next_attempt_at=now, queued_by=audit.current_actor(), created_at=now, updated_at=now)
    session.add(msg)
    link.sent_to = ", ".join(emails)[:1000]
    session.flush()
    audit.record(session, "client.setup_link_emailed", "client", client.id,
                 f"Queued the payment setup link e-mail to {', '.join(emails)}", {"outbox_id": msg.id})
    return msg.id


@dataclass
class PollReport:
    checked: int = 0
    completed: list[str] = field(default_factory=list)   # "Acme: Visa ending 4242"
    expired: int = 0
    errors: list[str] = field(default_factory=list)


def poll_setup_links(db: Database, gateway: Gateway, *, client_id: int | None = None,
                     now: dt.datetime | None = None) -> PollReport:
    """Ask the processor about every open setup link (of one client, or all) and store what was saved."""
    now = now or utcnow()
    report = PollReport()
    with db.session() as s:
        stmt = select(SetupLink.id, SetupLink.session_id, SetupLink.client_id).where(
            SetupLink.status == SetupLinkStatus.OPEN, SetupLink.mode == to_db_mode(gateway.mode))
        if client_id is not None:
            stmt = stmt.where(SetupLink.client_id == client_id)
        pending = list(s.execute(stmt))
    for link_id, session_id, cid in pending:
        report.checked += 1
        try:
            state = gateway.get_setup_session(session_id)
            facts = gateway.get_method(state.method_id) if (
                state.status is SetupStatus.COMPLETE and state.method_id) else None
        except NotFound:
            _finish_link(db, link_id, SetupLinkStatus.EXPIRED, now, error="The processor no longer knows this link.")
            report.expired += 1
            continue
        except ProcessorError as exc:
            with db.write_session() as s, s.begin():
                link = s.get(SetupLink, link_id)
                if link is not None:
                    link.last_checked_at, link.last_error = now, exc.message[:500]
            report.errors.append(exc.message)
            continue
        if state.status is SetupStatus.OPEN:
            with db.write_session() as s, s.begin():
                link = s.get(SetupLink, link_id)
                if link is not None:
                    link.last_checked_at, link.last_error = now, ""
        elif state.status is SetupStatus.EXPIRED or facts is None:
            _finish_link(db, link_id, SetupLinkStatus.EXPIRED, now)
            report.expired += 1
        else:
            label = _complete_link(db, gateway, link_id, cid, facts, now)
            if label:
                report.completed.append(label)
    return report


def _finish_link(db: Database, link_id: int, status: SetupLinkStatus, now: dt.datetime, error: str = "") -> None:
    with db.write_session() as s, s.begin():
        link = s.get(SetupLink, link_id)
        if link is not None and link.status is SetupLinkStatus.OPEN:
            link.status, link.last_checked_at, link.last_error = status, now, error


def _complete_link(db: Database, gateway: Gateway, link_id: int, client_id: int, facts: MethodFacts,
                   now: dt.datetime) -> str | None:
    mode = gateway.mode
    with db.write_session() as s, s.begin():
        link = s.get(SetupLink, link_id)
        if link is None or link.status is not SetupLinkStatus.OPEN:
            return None  # another workstation stored it first
        row = store_method(s, client_id, mode, facts, link.customer_id, "setup_link", make_default=True)
        row.hard_declined_at, row.hard_decline_reason = None, ""
        link.status, link.method_id, link.completed_at, link.last_checked_at = (
            SetupLinkStatus.COMPLETE, facts.method_id, now, now)
        client = s.get(Client, client_id)
        name = client.legal_name if client else str(client_id)
        audit.record(s, "client.method_saved", "client", client_id,
                     f"{facts.label} saved by the client through the setup link; now the default for autopay",
                     {"setup_link_id": link_id, "method_id": facts.method_id})
        customer_id = link.customer_id
    try:
        # So that Stripe's own Dashboard shows the same default.
        gateway.update_customer(customer_id, default_method_id=facts.method_id)
    except ProcessorError as exc:
        log.info("could not set the default method of %s at the processor: %s", customer_id, exc.code)
    return f"{name}: {facts.label}"


def cancel_setup_link(db: Database, gateway: Gateway, link_id: int) -> None:
    with db.session() as s:
        link = s.get(SetupLink, link_id)
        if link is None or link.status is not SetupLinkStatus.OPEN:
            return
        session_id, client_id = link.session_id, link.client_id
    state = gateway.expire_setup_session(session_id)
    if state.status is SetupStatus.COMPLETE:
        poll_setup_links(db, gateway, client_id=client_id)  # finished meanwhile: keep what the client saved
        return
    with db.write_session() as s, s.begin():
        link = s.get(SetupLink, link_id)
        if link is not None and link.status is SetupLinkStatus.OPEN:
            link.status = SetupLinkStatus.CANCELED
            audit.record(s, "client.setup_link", "client", client_id, "Withdrew the payment setup link")


# --- methods ----------------------------------------------------------------------


def set_default(db: Database, gateway: Gateway, method_row_id: int) -> str:
    with db.write_session() as s, s.begin():
        row = s.get(SavedPaymentMethod, method_row_id)
        if row is None or row.status is not SavedMethodStatus.ACTIVE:
            raise ValidationError([Issue("method", "That payment method is no longer on file.")])
        s.execute(update(SavedPaymentMethod).where(
            SavedPaymentMethod.client_id == row.client_id, SavedPaymentMethod.mode == row.mode,
            SavedPaymentMethod.id != row.id).values(is_default=False))
        row.is_default = True
        label, customer_id, method_id = method_label(row), row.customer_id, row.method_id
        audit.record(s, "client.method_default", "client", row.client_id, f"{label} is now the default for autopay")
    try:
        gateway.update_customer(customer_id, default_method_id=method_id)
    except ProcessorError as exc:
        log.info("could not set the default method of %s at the processor: %s", customer_id, exc.code)
    return label


def remove_method(db: Database, gateway: Gateway, method_row_id: int) -> str:
    """Detach the method at the processor, then mark it removed here; another one becomes the default.

    Refused while a charge on it is in flight (an ACH debit still settling, an outcome not yet known)."""
    with db.session() as s:
        row = s.get(SavedPaymentMethod, method_row_id)
        if row is None or row.status is not SavedMethodStatus.ACTIVE:
            raise ValidationError([Issue("method", "That payment method is no longer on file.")])
        busy = s.scalar(select(ChargeAttempt.id).where(
            ChargeAttempt.method_id == row.method_id,
            ChargeAttempt.status.in_(IN_FLIGHT_STATUSES)).limit(1))
        if busy is not None:
            raise ValidationError([Issue("method", f"A charge on {method_label(row)} is still settling or being "
                                                   "checked; remove it once that is finished.")])
        method_id = row.method_id
    try:
        gateway.detach_method(method_id)
    except NotFound:
        pass  # already gone at the processor
    with db.write_session() as s, s.begin():
        row = s.get(SavedPaymentMethod, method_row_id)
        assert row is not None
        was_default = row.is_default
        row.status, row.is_default, row.removed_at = SavedMethodStatus.REMOVED, False, utcnow()
        label = method_label(row)
        text = f"Removed {label}"
        if was_default:
            successor = next(iter(active_methods(s, row.client_id, ProcessorMode(row.mode.value))), None)
            if successor is not None:
                successor.is_default = True
                text += f"; {method_label(successor)} is now the default"
            else:
                text += "; no method is left on file"
        audit.record(s, "client.method_removed", "client", row.client_id, text)
    return text


@dataclass(frozen=True)
class RefreshReport:
    updated: int
    removed: list[str]
    customer_deleted: bool


def refresh_methods(db: Database, gateway: Gateway, client_id: int) -> RefreshReport:
    """Read the client's methods again from the processor: new expiry dates (card updater), methods
    detached in the Dashboard, a customer deleted there."""
    mode = gateway.mode
    with db.session() as s:
        cust = customer_row(s, client_id, mode)
        if cust is None:
            return RefreshReport(0, [], False)
        customer_id = cust.customer_id
    deleted = False
    try:
        info = gateway.get_customer(customer_id)
        deleted = info.deleted
        remote = {} if deleted else {m.method_id: m for m in gateway.list_methods(customer_id)}
    except NotFound:
        deleted, remote = True, {}
    removed: list[str] = []
    updated = 0
    with db.write_session() as s, s.begin():
        for row in active_methods(s, client_id, mode):
            facts = remote.get(row.method_id)
            if facts is None:
                row.status, row.is_default, row.removed_at = SavedMethodStatus.REMOVED, False, utcnow()
                removed.append(method_label(row))
                continue
            if (row.exp_month, row.exp_year, row.last4) != (facts.exp_month, facts.exp_year, facts.last4):
                row.exp_month, row.exp_year, row.last4 = facts.exp_month, facts.exp_year, facts.last4[:4]
                updated += 1
        if deleted:
            cust_row = customer_row(s, client_id, mode)
            if cust_row is not None:
                s.delete(cust_row)
            audit.record(s, "client.processor_customer", "client", client_id,
                         f"{mode.label} customer {customer_id} was deleted at the processor; unlinked"
                         + (f" ({', '.join(removed)} removed)" if removed else ""))
        elif removed:
            audit.record(s, "client.method_removed", "client", client_id,
                         f"No longer at the processor, removed: {', '.join(removed)}")
        if removed and not deleted and not any(r.is_default for r in active_methods(s, client_id, mode)):
            rest = active_methods(s, client_id, mode)
            if rest:
                rest[0].is_default = True
    return RefreshReport(updated, removed, deleted)
