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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mspbill.db.types import ExactDecimal, UTCDateTime, utcnow

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
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
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
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship(back_populates="agreements")
    lines: Mapped[list[AgreementLine]] = relationship(
        back_populates="agreement", cascade="all, delete-orphan", order_by="AgreementLine.position")


class AgreementLine(Base):
    __tablename__ = "agreement_lines"
    __table_args__ = (
        CheckConstraint("unit_price_cents >= 0", name="price_not_negative"),
        CheckConstraint("quantity_e4 > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(
        ForeignKey("agreements.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(String(NAME_MAX))
    # Quantity in ten-thousandths (12.5 seats → 125000): exact, and the database
    # can compute line amounts in integers (LINE_AMOUNT_SQL) for lists and totals.
    quantity_e4: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    taxable: Mapped[bool] = mapped_column(Boolean, default=True)

    agreement: Mapped[Agreement] = relationship(back_populates="lines")

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
# (validation caps quantity and unit price).
LINE_AMOUNT_SQL = (AgreementLine.quantity_e4 * AgreementLine.unit_price_cents
                   + QUANTITY_SCALE // 2) // QUANTITY_SCALE


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
