"""SQLAlchemy 2 typed models.  Money columns are integer minor units."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mspbill.db.types import ExactDecimal, Int64, UTCDateTime, utcnow

# Named constraints: Alembic's batch mode on SQLite needs names to alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_MAX = 200
QUANTITY_PLACES = 4
QUANTITY_SCALE = 10**QUANTITY_PLACES
EMAILS_MAX = 1000
TEXT_MAX = 10_000


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ClientStatus(str, enum.Enum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class AgreementStatus(str, enum.Enum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class BillingFrequency(str, enum.Enum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "annual": 12}[self.value]

    @property
    def label(self) -> str:
        return self.value.capitalize()


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Store the value ("active"), not the member name, and keep a CHECK so
    # another program cannot write nonsense into the column.
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e],
                native_enum=False, create_constraint=True, length=20)


class CompanyProfile(Base):
    """The MSP itself; exactly one row (id = 1)."""

    __tablename__ = "company_profile"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    address_line1: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    address_line2: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    region: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    tax_id: Mapped[str] = mapped_column(String(50), default="")
    logo_png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    invoice_number_pattern: Mapped[str] = mapped_column(String(50), default="INV-{n:06d}")
    default_payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    credit_note_number_pattern: Mapped[str] = mapped_column(String(50), default="CN-{n:06d}")
    # The next number to assign at issue; bumped in the issuing transaction (gapless).
    next_invoice_number: Mapped[int] = mapped_column(Integer, default=1)
    next_credit_note_number: Mapped[int] = mapped_column(Integer, default=1)
    # Percent off generated invoices for clients on autopay (0 = no incentive).
    autopay_discount_percent: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    # "letter" or "a4": the paper every invoice and statement PDF is laid out on.
    paper_size: Mapped[str] = mapped_column(String(10), default="letter")
    # Printed on invoices of clients who pay by invoice (bank details, where to mail a check).
    payment_instructions: Mapped[str] = mapped_column(Text, default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SmtpSecurity(str, enum.Enum):
    STARTTLS = "starttls"  # usually port 587
    SSL = "ssl"            # implicit TLS, usually port 465
    NONE = "none"          # a relay on the local network only

    @property
    def label(self) -> str:
        return {"starttls": "STARTTLS", "ssl": "SSL/TLS", "none": "None (local relay only)"}[self.value]


class MailSettings(Base):
    """The office's outgoing mail account and invoice e-mail template; one row (id = 1).

    Shared by every workstation of the office; the password is not here but in
    each workstation's OS keyring (house rule 6)."""

    __tablename__ = "mail_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),
                      CheckConstraint("port > 0 AND port < 65536", name="port_range"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int] = mapped_column(Integer, default=587)
    security: Mapped[SmtpSecurity] = mapped_column(
        _enum(SmtpSecurity, "smtp_security"), default=SmtpSecurity.STARTTLS)
    username: Mapped[str] = mapped_column(String(320), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    # A copy of every invoice e-mail to the office (blind copy).
    bcc_office: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_subject: Mapped[str] = mapped_column(String(500), default="")
    invoice_body: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutboxStatus(str, enum.Enum):
    QUEUED = "queued"    # waiting for its first try, or for a retry after a passing fault
    SENDING = "sending"  # handed to the server right now
    SENT = "sent"
    FAILED = "failed"    # the server refused it for good (or it cannot be sent as it is); Retry re-queues

    @property
    def label(self) -> str:
        return self.value.capitalize()


class OutboxMessage(Base):
    """An e-mail waiting to go, or gone: written before any attempt, so a mail
    server that is down loses nothing (the message stays queued and visible)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "invoice", "statement", "test"; later "reminder", "receipt", "setup_link".
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.QUEUED)
    invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True, index=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT"), nullable=True, index=True)
    to_addrs: Mapped[str] = mapped_column(String(EMAILS_MAX), default="")  # comma-separated
    cc_addrs: Mapped[str] = mapped_column(String(EMAILS_MAX), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # The invoice's PDF is rendered when the message is sent (so it shows the
    # balance of that moment); other attachments are stored until sent.
    attach_invoice_pdf: Mapped[bool] = mapped_column(Boolean, default=False)
    attachment_name: Mapped[str] = mapped_column(String(255), default="")
    attachment_data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Fixed at queueing, so a retry after an unknown outcome can be recognised as the same message.
    message_id: Mapped[str] = mapped_column(String(255), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    queued_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint("payment_terms_days >= 0", name="terms_not_negative"),
        CheckConstraint("length(legal_name) > 0", name="name_not_empty"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    legal_name: Mapped[str] = mapped_column(String(NAME_MAX))
    # Comma-separated; the first is where invoices go, the others get copies.
    billing_emails: Mapped[str] = mapped_column(String(EMAILS_MAX), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    address_line1: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    address_line2: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    region: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(100), default="")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    # Percent, e.g. 8.875 for 8.875 %; 0 means tax-exempt.
    tax_rate_percent: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    autopay: Mapped[bool] = mapped_column(Boolean, default=False)
    # The autopay incentive for this client, in percent; NULL follows the company's.
    autopay_discount_percent: Mapped[Decimal | None] = mapped_column(ExactDecimal, nullable=True)
    # Autopay charges invoices up to this total without asking; above it, approval first. NULL: no cap.
    autopay_cap_cents: Mapped[int | None] = mapped_column(Int64, nullable=True)
    # Payment reminders stop for this client while set (the office is talking to them, say).
    reminders_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    reminders_pause_note: Mapped[str] = mapped_column(String(500), default="", server_default=text("''"))
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ClientStatus] = mapped_column(
        _enum(ClientStatus, "client_status"), default=ClientStatus.ACTIVE, index=True)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    contacts: Mapped[list[ClientContact]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientContact.position")
    agreements: Mapped[list[Agreement]] = relationship(back_populates="client")

    @property
    def email_list(self) -> list[str]:
        return [e.strip() for e in self.billing_emails.split(",") if e.strip()]


class ClientContact(Base):
    __tablename__ = "client_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    role: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")

    client: Mapped[Client] = relationship(back_populates="contacts")


class Agreement(Base):
    __tablename__ = "agreements"
    __table_args__ = (
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="end_after_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    frequency: Mapped[BillingFrequency] = mapped_column(
        _enum(BillingFrequency, "billing_frequency"), default=BillingFrequency.MONTHLY)
    status: Mapped[AgreementStatus] = mapped_column(
        _enum(AgreementStatus, "agreement_status"), default=AgreementStatus.ACTIVE, index=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    # Earliest date whose billing a change may have altered since the last
    # generation; the generator re-checks invoiced periods from here (None: clean).
    adjust_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship(back_populates="agreements")
    # Every version of every line, kept as history (effective-dated, never overwritten).
    line_versions: Mapped[list[AgreementLine]] = relationship(
        back_populates="agreement", cascade="all, delete-orphan",
        order_by="(AgreementLine.series, AgreementLine.id)")

    @property
    def lines(self) -> list[AgreementLine]:
        """The current terms: the open version of each line, in display order."""
        return sorted((v for v in self.line_versions if v.effective_to is None),
                      key=lambda v: (v.position, v.series))


class AgreementLine(Base):
    """One version of one line of an agreement.

    A line is a `series`; each change of its terms closes the current version
    (effective_to = the day before the change) and opens a new one from the
    change date.  effective_from None means "from the agreement's start";
    effective_to None means "still in force".  A version superseded before it
    took effect has effective_to = effective_from - 1 day (no days at all).
    """

    __tablename__ = "agreement_lines"
    __table_args__ = (
        CheckConstraint("unit_price_cents >= 0", name="price_not_negative"),
        CheckConstraint("quantity_e4 > 0", name="quantity_positive"),
        Index("ix_agreement_lines_current", "agreement_id", "effective_to"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(
        ForeignKey("agreements.id", ondelete="CASCADE"), index=True)
    series: Mapped[int] = mapped_column(Integer, default=1)
    effective_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    effective_to: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(String(NAME_MAX))
    # Quantity in ten-thousandths (12.5 seats → 125000): exact, and the database
    # can compute line amounts in integers (LINE_AMOUNT_SQL) for lists and totals.
    quantity_e4: Mapped[int] = mapped_column(Int64)
    unit_price_cents: Mapped[int] = mapped_column(Int64)
    taxable: Mapped[bool] = mapped_column(Boolean, default=True)

    agreement: Mapped[Agreement] = relationship(back_populates="line_versions")

    @property
    def quantity(self) -> Decimal:
        return Decimal(self.quantity_e4) / QUANTITY_SCALE

    @quantity.setter
    def quantity(self, value: Decimal) -> None:
        if isinstance(value, float) or not isinstance(value, (Decimal, int)):
            raise TypeError("quantity is a Decimal")
        scaled = Decimal(value) * QUANTITY_SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"quantity {value} has more than {QUANTITY_PLACES} decimal places")
        self.quantity_e4 = int(scaled)


# round_half_up(quantity × unit price) in integer SQL; valid because both are
# non-negative (CHECK constraints) and the product stays inside 64 bits
# (validation caps quantity and unit price).  Both columns are Int64 (BIGINT on PostgreSQL,
# whose INTEGER product would overflow), so the product is 64-bit and its sums come back as int.
LINE_AMOUNT_SQL = (AgreementLine.quantity_e4 * AgreementLine.unit_price_cents
                   + QUANTITY_SCALE // 2) // QUANTITY_SCALE


class InvoiceKind(str, enum.Enum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceStatus(str, enum.Enum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class LineKind(str, enum.Enum):
    SERVICE = "service"        # an agreement line for a billing period (maybe prorated)
    ADJUSTMENT = "adjustment"  # a mid-period change to an already-invoiced period
    DISCOUNT = "discount"      # the autopay incentive
    ITEM = "item"              # a free line of a one-time invoice or credit note
    INSTALMENT = "instalment"  # one share of a split invoice


class PaymentMethod(str, enum.Enum):
    CHECK = "check"
    CASH = "cash"
    WIRE = "wire"
    ACH = "ach"      # a bank transfer made outside the processor
    CARD = "card"    # through the processor
    BANK_DEBIT = "bank_debit"  # a US bank account debited through the processor (Stripe ACH Direct Debit)
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"check": "Check", "cash": "Cash", "wire": "Wire transfer", "ach": "ACH (outside Stripe)",
                "card": "Card", "bank_debit": "Bank debit (ACH)", "other": "Other"}[self.value]

    @property
    def client_label(self) -> str:
        """The name a client reads on invoices and statements; `label` is the office's."""
        return {"check": "Check", "cash": "Cash", "wire": "Wire transfer", "ach": "Bank transfer (ACH)",
                "card": "Card", "bank_debit": "Bank debit (ACH)", "other": "Other"}[self.value]

    @property
    def through_processor(self) -> bool:
        return self in (PaymentMethod.CARD, PaymentMethod.BANK_DEBIT)


class CreditReason(str, enum.Enum):
    OVERPAYMENT = "overpayment"
    CREDIT_NOTE = "credit_note"
    APPLIED = "applied"              # used on an invoice (negative entry)
    RETURNED = "returned"            # an invoice that used credit was voided
    NEGATIVE_INVOICE = "negative_invoice"


class InstalmentPlan(Base):
    """A one-time invoice split into monthly instalment invoices."""

    __tablename__ = "instalment_plans"
    __table_args__ = (CheckConstraint("instalments >= 2", name="at_least_two"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    title: Mapped[str] = mapped_column(String(NAME_MAX))
    total_cents: Mapped[int] = mapped_column(Int64)
    instalments: Mapped[int] = mapped_column(Integer)
    first_month: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invoice(Base):
    """An invoice or credit note.  Drafts are editable and carry no number;
    from issue on, only status, payments and credits change (house rule 7)."""

    __tablename__ = "invoices"
    __table_args__ = (
        # One invoice per agreement and period, whatever the program does.
        UniqueConstraint("agreement_id", "period_start", name="uq_invoices_agreement_period"),
        UniqueConstraint("kind", "number_seq", name="uq_invoices_kind_number_seq"),
        CheckConstraint("(status = 'draft') = (number IS NULL)", name="number_iff_issued"),
        CheckConstraint("paid_cents >= 0 AND credited_cents >= 0 AND credit_applied_cents >= 0",
                        name="settlements_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind, "invoice_kind"), default=InvoiceKind.INVOICE)
    status: Mapped[InvoiceStatus] = mapped_column(
        _enum(InvoiceStatus, "invoice_status"), default=InvoiceStatus.DRAFT, index=True)
    number: Mapped[str | None] = mapped_column(String(50), unique=True, nullable=True)
    number_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    title: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    agreement_id: Mapped[int | None] = mapped_column(
        ForeignKey("agreements.id", ondelete="RESTRICT"), nullable=True, index=True)
    # The billing period (generated invoices) or the month an instalment falls due.
    period_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    period_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    issue_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    due_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    tax_rate_percent: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    subtotal_cents: Mapped[int] = mapped_column(Int64, default=0)
    tax_cents: Mapped[int] = mapped_column(Int64, default=0)
    total_cents: Mapped[int] = mapped_column(Int64, default=0)
    # What settled the total: client credit used at issue, payments, credit notes.
    credit_applied_cents: Mapped[int] = mapped_column(Int64, default=0)
    paid_cents: Mapped[int] = mapped_column(Int64, default=0)
    credited_cents: Mapped[int] = mapped_column(Int64, default=0)
    memo: Mapped[str] = mapped_column(Text, default="")
    # Who it was billed to, frozen at issue.
    bill_to: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    credit_for_invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True, index=True)
    instalment_plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("instalment_plans.id", ondelete="RESTRICT"), nullable=True, index=True)
    instalment_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="InvoiceLine.position")

    @property
    def balance_cents(self) -> int:
        return self.total_cents - self.credit_applied_cents - self.paid_cents - self.credited_cents


class InvoiceLine(Base):
    """A line of an invoice.  Service and adjustment lines also record which
    agreement line (series), billing period and days they cover, and the terms
    that now stand billed for those days: the generator reads them back to
    find what a later change leaves to adjust."""

    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_coverage", "agreement_id", "period_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[LineKind] = mapped_column(_enum(LineKind, "invoice_line_kind"), default=LineKind.ITEM)
    description: Mapped[str] = mapped_column(String(500))
    quantity_e4: Mapped[int] = mapped_column(Int64, default=QUANTITY_SCALE)
    unit_price_cents: Mapped[int] = mapped_column(Int64, default=0)
    amount_cents: Mapped[int] = mapped_column(Int64, default=0)
    taxable: Mapped[bool] = mapped_column(Boolean, default=True)
    agreement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series: Mapped[int | None] = mapped_column(Integer, nullable=True)
    period_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    service_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    service_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    terms_quantity_e4: Mapped[int | None] = mapped_column(Int64, nullable=True)
    terms_unit_price_cents: Mapped[int | None] = mapped_column(Int64, nullable=True)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")

    @property
    def quantity(self) -> Decimal:
        return Decimal(self.quantity_e4) / QUANTITY_SCALE


class Payment(Base):
    """Money received.  Never edited or deleted; a mistake is undone by a refund."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("applied_cents >= 0 AND applied_cents <= amount_cents", name="applied_within_amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True, index=True)
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod, "payment_method"))
    amount_cents: Mapped[int] = mapped_column(Int64)
    # The part that paid the invoice; the rest became client credit.
    applied_cents: Mapped[int] = mapped_column(Int64)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    received_on: Mapped[dt.date] = mapped_column(Date, index=True)
    reference: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    # A payment through the processor: its PaymentIntent, unique so that one intent is
    # never recorded twice (the attempt that made it points here: ChargeAttempt.payment_id).
    processor_intent_id: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    client: Mapped[Client] = relationship()
    invoice: Mapped[Invoice | None] = relationship()


class ClientCredit(Base):
    """The client credit ledger; the balance is the sum of amount_cents."""

    __tablename__ = "client_credits"
    __table_args__ = (CheckConstraint("amount_cents <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    amount_cents: Mapped[int] = mapped_column(Int64)
    reason: Mapped[CreditReason] = mapped_column(_enum(CreditReason, "credit_reason"))
    invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True, index=True)
    payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), nullable=True)
    memo: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """Who did what, when.  Append-only: nothing updates or deletes a row."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    summary: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


# --- the payment processor --------------------------------------------------------


class ProcessorKind(str, enum.Enum):
    NONE = "none"        # payments by hand only
    STRIPE = "stripe"    # the key in each workstation's keyring says test or live
    SANDBOX = "sandbox"  # the simulated processor: practice and demo, no money moves

    @property
    def label(self) -> str:
        return {"none": "None (record payments by hand)", "stripe": "Stripe",
                "sandbox": "Sandbox (simulated; no money moves)"}[self.value]


class PaymentSettings(Base):
    """How the office takes payments; one row (id = 1).  The Stripe key is not here
    but in each workstation's OS keyring (house rule 6)."""

    __tablename__ = "payment_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),
                      CheckConstraint("setup_link_hours >= 1 AND setup_link_hours <= 24", name="link_hours_range"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    processor: Mapped[ProcessorKind] = mapped_column(_enum(ProcessorKind, "processor_kind"), default=ProcessorKind.NONE)
    # Where a client lands after saving a card or bank account (optional).
    setup_success_url: Mapped[str] = mapped_column(String(500), default="")
    # How long a payment setup link stays usable (Stripe allows at most 24 hours).
    setup_link_hours: Mapped[int] = mapped_column(Integer, default=24)
    # The Stripe account the key belonged to when last tested, to notice a key from another account.
    stripe_account_id: Mapped[str] = mapped_column(String(100), default="")
    stripe_account_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    # The month-end batch: days after a soft decline's first failure to try again ("3,5,7"),
    # and the processor's request limits (Stripe: 25/s test, 100/s live) less a safety margin.
    retry_days: Mapped[str] = mapped_column(String(100), default="3,5,7", server_default="3,5,7")
    rate_limit_test: Mapped[int] = mapped_column(Integer, default=25, server_default="25")
    rate_limit_live: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    rate_margin_percent: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProcessorMode(str, enum.Enum):
    """Mirrors payments.gateway.ProcessorMode (the db layer does not import the payments layer)."""

    TEST = "test"
    LIVE = "live"
    SANDBOX = "sandbox"


class ProcessorCustomer(Base):
    """A client's customer at the processor, one per mode (test and live customers differ)."""

    __tablename__ = "processor_customers"
    __table_args__ = (UniqueConstraint("client_id", "mode", name="uq_processor_customers_client_mode"),
                      UniqueConstraint("mode", "customer_id", name="uq_processor_customers_mode_customer"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    mode: Mapped[ProcessorMode] = mapped_column(_enum(ProcessorMode, "processor_mode"))
    customer_id: Mapped[str] = mapped_column(String(100))
    # True when an existing customer was linked rather than created by mspbill.
    linked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SavedMethodStatus(str, enum.Enum):
    ACTIVE = "active"
    REMOVED = "removed"


class SavedPaymentMethod(Base):
    """A card or bank account on file: the processor's id and what a person needs to
    recognise it -- never the number."""

    __tablename__ = "saved_payment_methods"
    __table_args__ = (UniqueConstraint("mode", "method_id", name="uq_saved_payment_methods_mode_method"),
                      Index("ix_saved_payment_methods_client_mode", "client_id", "mode"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"))
    mode: Mapped[ProcessorMode] = mapped_column(_enum(ProcessorMode, "processor_mode"))
    customer_id: Mapped[str] = mapped_column(String(100))
    method_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))          # "card" or "us_bank_account"
    brand: Mapped[str] = mapped_column(String(30), default="")
    last4: Mapped[str] = mapped_column(String(4), default="")
    exp_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exp_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bank_name: Mapped[str] = mapped_column(String(100), default="")
    # The one autopay charges (per client and mode).
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[SavedMethodStatus] = mapped_column(
        _enum(SavedMethodStatus, "saved_method_status"), default=SavedMethodStatus.ACTIVE)
    # A hard decline: autopay stops using it until the client gives a new method.
    hard_declined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hard_decline_reason: Mapped[str] = mapped_column(String(500), default="")
    source: Mapped[str] = mapped_column(String(30), default="setup_link")  # setup_link, linked_customer, demo
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SetupLinkStatus(str, enum.Enum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"
    CANCELED = "canceled"   # replaced by a newer link or withdrawn by the office


class SetupLink(Base):
    """A hosted page (Checkout, setup mode) sent to a client to save a card or bank account."""

    __tablename__ = "setup_links"
    __table_args__ = (Index("ix_setup_links_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    mode: Mapped[ProcessorMode] = mapped_column(_enum(ProcessorMode, "processor_mode"))
    customer_id: Mapped[str] = mapped_column(String(100))
    session_id: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[SetupLinkStatus] = mapped_column(
        _enum(SetupLinkStatus, "setup_link_status"), default=SetupLinkStatus.OPEN)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_to: Mapped[str] = mapped_column(String(EMAILS_MAX), default="")
    method_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChargeAttemptStatus(str, enum.Enum):
    PENDING = "pending"          # written with its key; the processor has not answered yet
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"    # ACH: settles in days
    DECLINED = "declined"
    UNKNOWN = "unknown"          # the processor may have charged: resolve before charging again
    NOT_CHARGED = "not_charged"  # known to have charged nothing (refused request, resolved unknown)


IN_FLIGHT_STATUSES = (ChargeAttemptStatus.PENDING, ChargeAttemptStatus.PROCESSING, ChargeAttemptStatus.UNKNOWN)


class ChargeAttempt(Base):
    """One attempt to charge one invoice through the processor, written with its
    idempotency key before the processor is called (never charge twice)."""

    __tablename__ = "charge_attempts"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        # At most one attempt in flight per invoice, whatever the program or the workstation.
        Index("uq_charge_attempts_in_flight", "invoice_id", unique=True,
              sqlite_where=text("status IN ('pending', 'processing', 'unknown')"),
              postgresql_where=text("status IN ('pending', 'processing', 'unknown')")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    mode: Mapped[ProcessorMode] = mapped_column(_enum(ProcessorMode, "processor_mode"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    amount_cents: Mapped[int] = mapped_column(Int64)
    currency: Mapped[str] = mapped_column(String(3))
    customer_id: Mapped[str] = mapped_column(String(100))
    method_id: Mapped[str] = mapped_column(String(100))
    method_kind: Mapped[str] = mapped_column(String(20))
    method_label: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[ChargeAttemptStatus] = mapped_column(
        _enum(ChargeAttemptStatus, "charge_attempt_status"), default=ChargeAttemptStatus.PENDING, index=True)
    intent_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    decline_code: Mapped[str] = mapped_column(String(100), default="")
    decline_hard: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    message: Mapped[str] = mapped_column(String(500), default="")
    origin: Mapped[str] = mapped_column(String(20), default="manual")   # manual, batch
    batch_run_id: Mapped[int | None] = mapped_column(ForeignKey("batch_runs.id", ondelete="RESTRICT"), nullable=True,
                                                     index=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BatchRunStatus(str, enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"       # Cancel: no new charges; those in flight were recorded
    STOPPED = "stopped"           # a fault stopped it (key refused, processor down, database error)
    INTERRUPTED = "interrupted"   # its process died or slept; a later run took over and resumed


class BatchRun(Base):
    """One month-end run.  At most one is `running` in the office at a time (a partial
    unique index), whatever the window, process or workstation; a run whose process
    died is taken over when its heartbeat stops."""

    __tablename__ = "batch_runs"
    __table_args__ = (
        Index("uq_batch_runs_running", "lock_name", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lock_name: Mapped[str] = mapped_column(String(20), default="month-end")
    period: Mapped[str] = mapped_column(String(7), index=True)          # YYYY-MM
    mode: Mapped[ProcessorMode | None] = mapped_column(_enum(ProcessorMode, "processor_mode"), nullable=True)
    status: Mapped[BatchRunStatus] = mapped_column(_enum(BatchRunStatus, "batch_run_status"),
                                                   default=BatchRunStatus.RUNNING)
    actor: Mapped[str] = mapped_column(String(100), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    backup_path: Mapped[str] = mapped_column(String(1000), default="")
    generated: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    message: Mapped[str] = mapped_column(String(1000), default="")


class ChargeApproval(Base):
    """The office's approval to charge an autopay invoice above the client's cap, up to
    `amount_cents`: of an issued invoice, or of the invoice an agreement's period will get."""

    __tablename__ = "charge_approvals"
    __table_args__ = (
        UniqueConstraint("agreement_id", "period_start", name="uq_charge_approvals_agreement_period"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("invoice_id IS NOT NULL OR (agreement_id IS NOT NULL AND period_start IS NOT NULL)",
                        name="names_what"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), nullable=True,
                                                   unique=True)
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), nullable=True)
    period_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    amount_cents: Mapped[int] = mapped_column(Int64)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefundStatus(str, enum.Enum):
    REQUESTED = "requested"   # written with its key; the processor has not answered yet
    SUCCEEDED = "succeeded"
    PENDING = "pending"       # ACH refunds take days
    FAILED = "failed"
    UNKNOWN = "unknown"


# Refunds the processor accepted: they no longer pay the invoice.
REFUND_APPLIED_STATUSES = (RefundStatus.SUCCEEDED, RefundStatus.PENDING)


class Refund(Base):
    """Money given back on a processor payment, written with its key before the call."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    mode: Mapped[ProcessorMode] = mapped_column(_enum(ProcessorMode, "processor_mode"))
    amount_cents: Mapped[int] = mapped_column(Int64)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    refund_id: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    status: Mapped[RefundStatus] = mapped_column(_enum(RefundStatus, "refund_status"), default=RefundStatus.REQUESTED)
    reason: Mapped[str] = mapped_column(String(500), default="")
    message: Mapped[str] = mapped_column(String(500), default="")
    # The day the money went back (set when the processor accepted the refund); the
    # invoice's paid amount is reduced from this day on (aging, statements).
    refunded_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    # The client no longer owes the amount: a credit note of it goes with the refund.
    with_credit_note: Mapped[bool] = mapped_column(Boolean, default=False)
    credit_note_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), nullable=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- collections: reminders and late fees ---------------------------------------------


class LateFeeKind(str, enum.Enum):
    FLAT = "flat"        # a fixed amount per fee
    PERCENT = "percent"  # a percentage of the invoice's overdue balance


class LateFeeRepeat(str, enum.Enum):
    ONCE = "once"        # one fee per overdue invoice
    MONTHLY = "monthly"  # another fee each month the invoice stays unpaid


class LateFeePlacement(str, enum.Enum):
    NEXT_INVOICE = "next_invoice"  # a line on the client's next generated invoice
    OWN_INVOICE = "own_invoice"    # an invoice of its own, issued at once


class CollectionSettings(Base):
    """Reminders on or off and the late-fee policy; one row (id = 1).  The reminder
    schedule itself is `reminder_steps`."""

    __tablename__ = "collection_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),
                      CheckConstraint("late_fee_after_days >= 1", name="fee_after_positive"),
                      CheckConstraint("late_fee_flat_cents >= 0 AND late_fee_min_balance_cents >= 0",
                                      name="fee_amounts_not_negative"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reminders_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    late_fee_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    late_fee_kind: Mapped[LateFeeKind] = mapped_column(_enum(LateFeeKind, "late_fee_kind"), default=LateFeeKind.FLAT)
    late_fee_flat_cents: Mapped[int] = mapped_column(Int64, default=0)
    late_fee_percent: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    late_fee_after_days: Mapped[int] = mapped_column(Integer, default=30)
    late_fee_repeat: Mapped[LateFeeRepeat] = mapped_column(_enum(LateFeeRepeat, "late_fee_repeat"),
                                                           default=LateFeeRepeat.ONCE)
    late_fee_placement: Mapped[LateFeePlacement] = mapped_column(
        _enum(LateFeePlacement, "late_fee_placement"), default=LateFeePlacement.NEXT_INVOICE)
    # No fee on an overdue balance below this (0: any balance).
    late_fee_min_balance_cents: Mapped[int] = mapped_column(Int64, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReminderStep(Base):
    """One step of the reminder schedule: `offset_days` from the due date (−3: three days
    before; 0: on the day; 7: a week overdue) and the e-mail it sends."""

    __tablename__ = "reminder_steps"
    __table_args__ = (CheckConstraint("offset_days >= -60 AND offset_days <= 365", name="offset_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset_days: Mapped[int] = mapped_column(Integer, unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InvoiceReminder(Base):
    """A reminder step taken for an invoice: at most one per invoice and step, whatever
    the window, process or workstation (the unique constraint), so running twice a day
    never sends a step twice."""

    __tablename__ = "invoice_reminders"
    __table_args__ = (UniqueConstraint("invoice_id", "offset_days", name="uq_invoice_reminders_invoice_offset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    offset_days: Mapped[int] = mapped_column(Integer)
    # The day the step fell on (due date + offset) and the day it was queued.
    step_on: Mapped[dt.date] = mapped_column(Date)
    queued_on: Mapped[dt.date] = mapped_column(Date)
    # queued: in the outbox (or sent: see the message); withdrawn: paid before it went out.
    status: Mapped[str] = mapped_column(String(20), default="queued")
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"), nullable=True)
    sent_to: Mapped[str] = mapped_column(String(EMAILS_MAX), default="")
    balance_cents: Mapped[int] = mapped_column(Int64, default=0)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LateFee(Base):
    """A late fee assessed on an overdue invoice.  Pending until it is billed (a line on
    the client's next invoice, or an invoice of its own); waived with a reason at any
    time (a billed one through a credit note, house rule 7).  At most one per invoice
    and sequence number (1 for "once"; 1, 2, 3… for monthly fees)."""

    __tablename__ = "late_fees"
    __table_args__ = (UniqueConstraint("invoice_id", "sequence", name="uq_late_fees_invoice_sequence"),
                      CheckConstraint("amount_cents > 0", name="amount_positive"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    sequence: Mapped[int] = mapped_column(Integer, default=1)
    assessed_on: Mapped[dt.date] = mapped_column(Date)
    days_overdue: Mapped[int] = mapped_column(Integer)
    basis_cents: Mapped[int] = mapped_column(Int64)     # the overdue balance it was worked out on
    amount_cents: Mapped[int] = mapped_column(Int64)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(500))
    placement: Mapped[LateFeePlacement] = mapped_column(_enum(LateFeePlacement, "late_fee_placement"))
    # Where it is billed: the invoice and its line (a draft's line goes when the draft is deleted).
    billed_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"),
                                                          nullable=True, index=True)
    billed_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_lines.id", ondelete="SET NULL"),
                                                       nullable=True)
    waived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    waived_by: Mapped[str] = mapped_column(String(100), default="")
    waive_reason: Mapped[str] = mapped_column(String(500), default="")
    waive_credit_note_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"),
                                                             nullable=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def status(self) -> str:
        if self.waived_at is not None:
            return "waived"
        return "billed" if self.billed_invoice_id is not None else "pending"


# --- a move of the office to another database (mspbill.db.moves) --------------------


class DatabaseMove(Base):
    """This database's office was copied elsewhere and moved there (`mspbill db copy`): what is left here
    is the copy left behind, refused when opened until it is reclaimed.  Never copied to the target."""

    __tablename__ = "database_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    moved_to: Mapped[str] = mapped_column(String(1000))  # as shown: postgresql://user@host:port/db or a path
    moved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(255), default="")
    reclaimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reclaimed_by: Mapped[str] = mapped_column(String(100), default="")
