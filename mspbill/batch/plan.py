"""What a month-end run would do, worked out without writing anything.

The preview lists the invoices the run will issue (generated from the agreements,
and the month's drafts already waiting), the charges it will make (the new
invoices of autopay clients, their older open invoices, and the retries that
are due), and every autopay invoice it will leave alone, with the reason.  The
run itself charges what the same rules say once the invoices exist, so the
preview and the run cannot disagree about who is charged.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.batch.retries import Failure, RetryKind, retry_decision
from mspbill.batch.settings import batch_settings
from mspbill.clients import credit_balances
from mspbill.csv_cells import formula_safe as _cell
from mspbill.db.models import (
    IN_FLIGHT_STATUSES,
    ChargeApproval,
    ChargeAttempt,
    ChargeAttemptStatus,
    Client,
    ClientStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    SavedMethodStatus,
    SavedPaymentMethod,
    utcnow,
)
from mspbill.generation import plan_period
from mspbill.invoicing import drafts_for_month
from mspbill.money import format_amount, from_minor
from mspbill.payments.charges import MINIMUM_CHARGE_CENTS
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.methods import method_facts, method_label
from mspbill.payments.processor import office_mode, to_db_mode
from mspbill.periods import Month
from mspbill.validation import Issue, ValidationError

# A run bills the coming month (in advance) or the current one; a month's run may be late.
MONTHS_AHEAD = 1
DAYS_LATE = 92


def check_period(month: Month, today: dt.date) -> None:
    """A month-end run is for the current or the coming month (or one a little late)."""
    latest = Month.of(today).shift(MONTHS_AHEAD)
    if month > latest:
        raise ValidationError([Issue("period", f"{month.label} is too far ahead: a month-end run bills the current "
                                               f"or the coming month ({latest.label} at the latest). Run it when "
                                               "that month comes.")])
    if month.last_day < today - dt.timedelta(days=DAYS_LATE):
        raise ValidationError([Issue("period", f"{month.label} is long past: a month-end run charges cards today, "
                                               "for the current or the coming month. Bill a past month from "
                                               "Invoices → Generate (`mspbill invoices generate`) and charge "
                                               "its invoices one by one.")])


class LeftOutReason(str, enum.Enum):
    AUTOPAY_OFF = "autopay_off"
    NO_PROCESSOR = "no_processor"
    NO_METHOD = "no_method"
    EXPIRED = "expired"
    HARD_DECLINE = "hard_decline"
    OVER_CAP = "over_cap"
    PROCESSING = "processing"
    UNKNOWN = "unknown"
    RETRY_LATER = "retry_later"
    RETRIES_USED = "retries_used"
    TOO_SMALL = "too_small"
    PAID_BY_CREDIT = "paid_by_credit"

    @property
    def label(self) -> str:
        return _REASON_LABELS[self]


_REASON_LABELS = {
    LeftOutReason.AUTOPAY_OFF: "Pays by invoice (autopay off)",
    LeftOutReason.NO_PROCESSOR: "No payment processor",
    LeftOutReason.NO_METHOD: "No payment method on file",
    LeftOutReason.EXPIRED: "Card expired",
    LeftOutReason.HARD_DECLINE: "Declined for good; needs a new method",
    LeftOutReason.OVER_CAP: "Over the autopay cap; awaiting approval",
    LeftOutReason.PROCESSING: "Bank debit still processing",
    LeftOutReason.UNKNOWN: "Earlier charge not yet resolved",
    LeftOutReason.RETRY_LATER: "Declined; next retry later",
    LeftOutReason.RETRIES_USED: "Declined; retries used up",
    LeftOutReason.TOO_SMALL: "Below the processor's minimum",
    LeftOutReason.PAID_BY_CREDIT: "Covered by client credit",
}


# Reasons that need nobody to act: listed after those that do.
ROUTINE_REASONS = frozenset({LeftOutReason.AUTOPAY_OFF, LeftOutReason.PAID_BY_CREDIT, LeftOutReason.PROCESSING})


class ChargeKind(str, enum.Enum):
    NEW = "new"        # an invoice this run issues
    OPEN = "open"      # an earlier open invoice of an autopay client, never declined
    RETRY = "retry"    # a soft decline whose retry day has come


@dataclass(frozen=True)
class Target:
    """An invoice the run charges or leaves alone: issued or a draft waiting to be issued (invoice_id),
    or still to be generated (agreement_id and period_start)."""

    client_id: int
    client_name: str
    invoice_id: int | None
    number: str                 # "INV-000123", or the title of an invoice to be generated
    agreement_id: int | None
    period_start: dt.date | None
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class PlannedCharge:
    target: Target
    kind: ChargeKind
    method_label: str
    method_kind: str
    over_cap_approved: bool = False
    retry_number: int = 0


@dataclass(frozen=True)
class LeftOutCharge:
    target: Target
    reason: LeftOutReason
    detail: str
    method_label: str = ""
    next_retry_on: dt.date | None = None

    @property
    def approvable(self) -> bool:
        return self.reason is LeftOutReason.OVER_CAP


@dataclass(frozen=True)
class InvoiceToIssue:
    client_id: int
    client_name: str
    title: str
    total_cents: int
    currency: str
    autopay: bool
    draft_id: int | None          # None: generated by the run
    notes: str = ""


@dataclass
class BatchPreview:
    month: Month
    mode: ProcessorMode | None
    today: dt.date
    invoices: list[InvoiceToIssue] = field(default_factory=list)
    charges: list[PlannedCharge] = field(default_factory=list)
    left_out: list[LeftOutCharge] = field(default_factory=list)
    agreements_not_invoiced: int = 0

    @property
    def retries(self) -> list[PlannedCharge]:
        return [c for c in self.charges if c.kind is ChargeKind.RETRY]

    @staticmethod
    def _totals(amounts: Iterable[tuple[int, str]]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for cents, currency in amounts:
            out[currency] += cents
        return dict(out)

    def invoice_totals(self) -> dict[str, int]:
        return self._totals((i.total_cents, i.currency) for i in self.invoices)

    def charge_totals(self) -> dict[str, int]:
        return self._totals((c.target.amount_cents, c.target.currency) for c in self.charges)

    def retry_totals(self) -> dict[str, int]:
        return self._totals((c.target.amount_cents, c.target.currency) for c in self.retries)

    def left_out_totals(self) -> dict[str, int]:
        return self._totals((lo.target.amount_cents, lo.target.currency) for lo in self.left_out
                            if lo.reason is not LeftOutReason.PAID_BY_CREDIT)

    @property
    def nothing_to_do(self) -> bool:
        return not self.invoices and not self.charges

    def summary(self) -> str:
        if self.nothing_to_do:
            return (f"Nothing to do for {self.month.label}: no invoice to issue and no charge due"
                    + (f" ({len(self.left_out)} invoice(s) left out, with the reasons)." if self.left_out else "."))
        parts = [f"{len(self.invoices)} invoice(s) to issue ({money_text(self.invoice_totals())})"]
        where = self.mode.label if self.mode else "no processor"
        parts.append(f"{len(self.charges)} charge(s) of {money_text(self.charge_totals())} in {where}")
        if self.retries:
            parts.append(f"of which {len(self.retries)} retr{'y' if len(self.retries) == 1 else 'ies'}")
        by_invoice = sum(1 for lo in self.left_out if lo.reason is LeftOutReason.AUTOPAY_OFF)
        others = len(self.left_out) - by_invoice
        if by_invoice:
            parts.append(f"{by_invoice} pay by invoice (e-mailed)")
        if others:
            parts.append(f"{others} autopay invoice(s) left out")
        return f"{self.month.label}: " + "; ".join(parts) + "."


def money_text(totals: dict[str, int]) -> str:
    if not totals:
        return format_amount(0, "USD")
    return " + ".join(format_amount(cents, currency) for currency, cents in sorted(totals.items()))


# --- the rules --------------------------------------------------------------------


@dataclass
class _Facts:
    """What the rules read, loaded in a few queries for all clients at once."""

    methods: dict[int, SavedPaymentMethod]
    in_flight: dict[int, ChargeAttempt]
    failures: dict[int, list[Failure]]
    approvals_by_invoice: dict[int, int]
    approvals_by_period: dict[tuple[int, dt.date], int]


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _load_facts(session: Session, mode: ProcessorMode | None, client_ids: Sequence[int],
                invoice_ids: Sequence[int], periods: Sequence[tuple[int, dt.date]]) -> _Facts:
    methods: dict[int, SavedPaymentMethod] = {}
    if mode is not None:
        for chunk in _chunks(client_ids):
            for m in session.scalars(select(SavedPaymentMethod).where(
                    SavedPaymentMethod.client_id.in_(chunk), SavedPaymentMethod.mode == to_db_mode(mode),
                    SavedPaymentMethod.status == SavedMethodStatus.ACTIVE, SavedPaymentMethod.is_default.is_(True))):
                methods[m.client_id] = m
    in_flight: dict[int, ChargeAttempt] = {}
    failures: dict[int, list[Failure]] = defaultdict(list)
    approvals_by_invoice: dict[int, int] = {}
    for chunk in _chunks(invoice_ids):
        for a in session.scalars(select(ChargeAttempt).where(
                ChargeAttempt.invoice_id.in_(chunk),
                ChargeAttempt.status.in_([*IN_FLIGHT_STATUSES, ChargeAttemptStatus.DECLINED]))):
            if a.status is ChargeAttemptStatus.DECLINED:
                failures[a.invoice_id].append(Failure.of(a))
            else:
                in_flight[a.invoice_id] = a
        for ap in session.scalars(select(ChargeApproval).where(ChargeApproval.invoice_id.in_(chunk))):
            assert ap.invoice_id is not None
            approvals_by_invoice[ap.invoice_id] = ap.amount_cents
    approvals_by_period: dict[tuple[int, dt.date], int] = {}
    agreement_ids = sorted({a for a, _ in periods})
    for chunk in _chunks(agreement_ids):
        for ap in session.scalars(select(ChargeApproval).where(ChargeApproval.agreement_id.in_(chunk),
                                                               ChargeApproval.period_start.is_not(None))):
            assert ap.agreement_id is not None and ap.period_start is not None
            approvals_by_period[(ap.agreement_id, ap.period_start)] = ap.amount_cents
    return _Facts(methods, in_flight, failures, approvals_by_invoice, approvals_by_period)


def _judge(t: Target, client: Client, kind: ChargeKind, mode: ProcessorMode | None, facts: _Facts,
           schedule: Sequence[int], today: dt.date) -> PlannedCharge | LeftOutCharge:
    amount = format_amount(t.amount_cents, t.currency)
    if t.amount_cents <= 0:
        return LeftOutCharge(t, LeftOutReason.PAID_BY_CREDIT, "The client's credit covers it; nothing to charge.")
    if not client.autopay:
        return LeftOutCharge(t, LeftOutReason.AUTOPAY_OFF, "The invoice is e-mailed; the client pays it by the "
                                                           "instructions on it.")
    if mode is None:
        return LeftOutCharge(t, LeftOutReason.NO_PROCESSOR, "No payment processor is set up (Settings → Payments); "
                                                            "the invoice is e-mailed instead.")
    busy = facts.in_flight.get(t.invoice_id) if t.invoice_id is not None else None
    if busy is not None:
        if busy.status is ChargeAttemptStatus.PROCESSING:
            return LeftOutCharge(t, LeftOutReason.PROCESSING,
                                 f"A bank debit of {format_amount(busy.amount_cents, busy.currency)} is settling "
                                 "(up to 4 business days); it is not charged again.", busy.method_label)
        return LeftOutCharge(t, LeftOutReason.UNKNOWN, "An earlier charge has no known outcome yet; the run asks "
                                                       "the processor first and charges only if nothing was taken.",
                             busy.method_label)
    method = facts.methods.get(t.client_id)
    if method is None:
        return LeftOutCharge(t, LeftOutReason.NO_METHOD, f"No card or bank account on file in {mode.label}; send "
                                                         "a payment setup link.")
    label = method_label(method)
    if method.hard_declined_at is not None:
        return LeftOutCharge(t, LeftOutReason.HARD_DECLINE, f"{label} was declined for good "
                                                            f"({method.hard_decline_reason}); the client must give "
                                                            "a new card or bank account.", label)
    if method_facts(method).expires_before(today):
        return LeftOutCharge(t, LeftOutReason.EXPIRED, f"{label} expired ({method.exp_month:02d}/{method.exp_year}); "
                                                       "the client must give a new card.", label)
    retry_number = 0
    if t.invoice_id is not None:
        decision = retry_decision(facts.failures.get(t.invoice_id, []), method.method_id, schedule, today)
        if decision.kind is RetryKind.HARD:
            return LeftOutCharge(t, LeftOutReason.HARD_DECLINE, f"{label} was declined for good on this invoice; "
                                                                "the client must give a new method.", label)
        if decision.kind is RetryKind.EXHAUSTED:
            return LeftOutCharge(t, LeftOutReason.RETRIES_USED,
                                 f"Declined {decision.failures} times since {decision.first_failed_on}; no retry is "
                                 "left. Contact the client or charge it by hand.", label)
        if decision.kind is RetryKind.WAITING:
            return LeftOutCharge(t, LeftOutReason.RETRY_LATER,
                                 f"Declined {decision.failures} time(s); the next retry is on {decision.next_on}.",
                                 label, decision.next_on)
        if decision.kind is RetryKind.DUE:
            kind, retry_number = ChargeKind.RETRY, decision.retry_number
    if t.amount_cents < MINIMUM_CHARGE_CENTS:
        return LeftOutCharge(t, LeftOutReason.TOO_SMALL, f"{amount} is below the processor's minimum charge of "
                                                         f"{format_amount(MINIMUM_CHARGE_CENTS, t.currency)}; "
                                                         "record it by hand or credit it.", label)
    approved = False
    cap = client.autopay_cap_cents
    if cap is not None and t.amount_cents > cap:
        allowed = (facts.approvals_by_invoice.get(t.invoice_id) if t.invoice_id is not None else None)
        if allowed is None and t.agreement_id is not None and t.period_start is not None:
            allowed = facts.approvals_by_period.get((t.agreement_id, t.period_start))
        if allowed is None or t.amount_cents > allowed:
            return LeftOutCharge(t, LeftOutReason.OVER_CAP,
                                 f"{amount} is above the client's autopay cap of {format_amount(cap, t.currency)}; "
                                 "approve it to charge it.", label)
        approved = True
    return PlannedCharge(t, kind, label, method.kind, approved, retry_number)


def _open_invoices(session: Session, client_ids: Sequence[int] | None) -> list[Invoice]:
    stmt = select(Invoice).join(Client, Client.id == Invoice.client_id).where(
        Invoice.kind == InvoiceKind.INVOICE, Invoice.status == InvoiceStatus.OPEN,
        Client.autopay.is_(True), Client.status == ClientStatus.ACTIVE)
    if client_ids is not None:
        stmt = stmt.where(Client.id.in_(list(client_ids)))
    invoices = [inv for inv in session.scalars(stmt.order_by(Invoice.number_seq, Invoice.id)) if inv.balance_cents > 0]
    return invoices


def retry_schedule(session: Session) -> tuple[int, ...]:
    return batch_settings(session).retry_days


def judge_open_invoices(session: Session, mode: ProcessorMode | None, today: dt.date, *,
                        new_invoice_ids: Sequence[int] = (),
                        client_ids: Sequence[int] | None = None) -> tuple[list[PlannedCharge], list[LeftOutCharge]]:
    """The charges due now among issued invoices (the run's own, `new_invoice_ids`, and older ones)."""
    schedule = retry_schedule(session)
    invoices = _open_invoices(session, client_ids)
    clients = {c.id: c for chunk in _chunks(sorted({i.client_id for i in invoices}))
               for c in session.scalars(select(Client).where(Client.id.in_(chunk)))}
    # An approval given in the preview names the agreement's period: it covers the invoice issued for it.
    facts = _load_facts(session, mode, list(clients), [i.id for i in invoices],
                        [(i.agreement_id, i.period_start) for i in invoices
                         if i.agreement_id is not None and i.period_start is not None])
    new = set(new_invoice_ids)
    charges: list[PlannedCharge] = []
    left: list[LeftOutCharge] = []
    for inv in invoices:
        client = clients[inv.client_id]
        t = Target(client.id, client.legal_name, inv.id, inv.number or f"Draft {inv.id}", inv.agreement_id,
                   inv.period_start, inv.balance_cents, inv.currency)
        verdict = _judge(t, client, ChargeKind.NEW if inv.id in new else ChargeKind.OPEN, mode, facts, schedule,
                         today)
        (charges if isinstance(verdict, PlannedCharge) else left).append(verdict)  # type: ignore[arg-type]
    return _sorted(charges), _sorted(left)


def _sorted(items: list) -> list:  # type: ignore[type-arg]
    return sorted(items, key=lambda x: (getattr(x, "reason", None) in ROUTINE_REASONS,
                                        x.target.client_name.casefold(), x.target.number))


def preview_batch(session: Session, month: Month, *, today: dt.date | None = None,
                  mode: ProcessorMode | None = None, use_office_mode: bool = True) -> BatchPreview:
    """What running `month` now would do (read only)."""
    today = today or dt.date.today()
    check_period(month, today)
    if use_office_mode and mode is None:
        mode = office_mode(session)
    preview = BatchPreview(month, mode, today)
    plan = plan_period(session, month)
    preview.agreements_not_invoiced = len(plan.left_out)
    draft_ids = drafts_for_month(session, month)
    drafts = [inv for chunk in _chunks(draft_ids) for inv in session.scalars(select(Invoice).where(Invoice.id.in_(chunk)))]
    client_ids = sorted({p.client_id for p in plan.invoices} | {d.client_id for d in drafts})
    clients = {c.id: c for chunk in _chunks(client_ids) for c in session.scalars(select(Client).where(Client.id.in_(chunk)))}
    credits = credit_balances(session, client_ids, positive_only=True)
    # Issue order decides which invoice a client's credit goes to: the run issues a client's drafts by
    # title, then id (invoicing.drafts_for_month), and a waiting draft's id is older than any generated
    # now.  (Generation's order, then the waiting drafts, gave the credit to another invoice than the run.)
    staged: list[tuple[tuple[str, int, int], Target, Client]] = []
    new_targets: list[tuple[Target, Client]] = []

    def after_credit(client_id: int, total: int) -> int:
        used = min(max(credits.get(client_id, 0), 0), max(total, 0))
        credits[client_id] = credits.get(client_id, 0) - used
        return total - used

    for n, p in enumerate(plan.invoices):
        client = clients[p.client_id]
        preview.invoices.append(InvoiceToIssue(p.client_id, p.client_name, p.title, p.totals.total_cents, p.currency,
                                               client.autopay, None, p.notes))
        staged.append(((p.title, 1, n), Target(p.client_id, p.client_name, None, p.title, p.agreement_id,
                                               p.period_start, p.totals.total_cents, p.currency), client))
    for d in drafts:
        client = clients[d.client_id]
        preview.invoices.append(InvoiceToIssue(d.client_id, client.legal_name, d.title, d.total_cents, d.currency,
                                               client.autopay, d.id, "draft waiting"))
        # A waiting draft exists: its id names it (an instalment has no agreement period to approve ahead by,
        # and an approval of the draft's id covers the invoice it becomes).
        staged.append(((d.title, 0, d.id), Target(d.client_id, client.legal_name, d.id, d.title, d.agreement_id,
                                                  d.period_start, d.total_cents, d.currency), client))
    for _, t, client in sorted(staged, key=lambda e: e[0]):
        new_targets.append((replace(t, amount_cents=after_credit(t.client_id, t.amount_cents)), client))
    schedule = retry_schedule(session)
    facts = _load_facts(session, mode, client_ids, [d.id for d in drafts],
                        [(t.agreement_id, t.period_start) for t, _ in new_targets
                         if t.agreement_id is not None and t.period_start is not None])
    for t, client in new_targets:
        verdict = _judge(t, client, ChargeKind.NEW, mode, facts, schedule, today)
        if isinstance(verdict, PlannedCharge):
            preview.charges.append(verdict)
        else:
            preview.left_out.append(verdict)
    charges, left = judge_open_invoices(session, mode, today)
    preview.charges = _sorted(preview.charges) + charges
    preview.left_out = _sorted(preview.left_out) + left
    return preview


# --- approving over-cap invoices ---------------------------------------------------


def approve_over_cap(session: Session, target: Target) -> ChargeApproval:
    """Allow the run to charge `target` above its client's cap, up to its amount now."""
    from mspbill import audit

    if target.invoice_id is not None:
        existing = session.scalar(select(ChargeApproval).where(ChargeApproval.invoice_id == target.invoice_id))
    elif target.agreement_id is not None and target.period_start is not None:
        existing = session.scalar(select(ChargeApproval).where(ChargeApproval.agreement_id == target.agreement_id,
                                                               ChargeApproval.period_start == target.period_start))
    else:
        raise ValidationError([Issue("approval", "This invoice cannot be approved ahead.")])
    if existing is None:
        existing = ChargeApproval(client_id=target.client_id, invoice_id=target.invoice_id,
                                  agreement_id=None if target.invoice_id is not None else target.agreement_id,
                                  period_start=None if target.invoice_id is not None else target.period_start,
                                  amount_cents=target.amount_cents, actor=audit.current_actor())
        session.add(existing)
    else:
        existing.amount_cents, existing.actor = target.amount_cents, audit.current_actor()
        existing.created_at = utcnow()
    session.flush()
    amount = format_amount(target.amount_cents, target.currency)
    audit.record(session, "autopay.over_cap_approved", "invoice" if target.invoice_id else "agreement",
                 target.invoice_id or target.agreement_id,
                 f"Approved charging {target.number} for {target.client_name}: {amount}, above the autopay cap",
                 {"approval_id": existing.id, "period_start": str(target.period_start or "")})
    return existing


def approved_amount(session: Session, inv: Invoice) -> int | None:
    """Up to what amount `inv` may be charged above its client's cap (approved in the preview or later)."""
    row = session.scalar(select(ChargeApproval).where(ChargeApproval.invoice_id == inv.id))
    if row is None and inv.agreement_id is not None and inv.period_start is not None:
        row = session.scalar(select(ChargeApproval).where(ChargeApproval.agreement_id == inv.agreement_id,
                                                          ChargeApproval.period_start == inv.period_start))
    return row.amount_cents if row is not None else None


# --- CSV ----------------------------------------------------------------------------

CSV_HEADERS = ["Section", "Client", "Invoice", "Amount", "Currency", "Method", "Mode", "What happens", "Reason",
               "Next retry"]


def preview_csv(preview: BatchPreview) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    mode = preview.mode.label if preview.mode else "No processor"

    def row(section: str, client: str, number: str, cents: int, currency: str, *rest: str) -> list[str]:
        # The amount is ours, a plain number in the currency's own units (JPY has none after the point);
        # through _cell a negative one became the text "'-12.50".
        return [_cell(section), _cell(client), _cell(number), f"{from_minor(cents, currency):f}",
                *(_cell(x) for x in (currency, *rest))]

    for inv in preview.invoices:
        writer.writerow(row("Invoice to issue", inv.client_name, inv.title, inv.total_cents, inv.currency, "", "",
                            "Autopay" if inv.autopay else "E-mailed", inv.notes, ""))
    for c in preview.charges:
        what = {ChargeKind.NEW: "Charge", ChargeKind.OPEN: "Charge (earlier invoice)",
                ChargeKind.RETRY: f"Retry {c.retry_number}"}[c.kind]
        writer.writerow(row("Charge", c.target.client_name, c.target.number, c.target.amount_cents,
                            c.target.currency, c.method_label, mode, what,
                            "Above cap, approved" if c.over_cap_approved else "", ""))
    for lo in preview.left_out:
        writer.writerow(row("Left out", lo.target.client_name, lo.target.number, lo.target.amount_cents,
                            lo.target.currency, lo.method_label, mode, lo.reason.label, lo.detail,
                            lo.next_retry_on.isoformat() if lo.next_retry_on else ""))
    return out.getvalue()
