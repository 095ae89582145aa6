"""The Dashboard: where the money is, as of a day (mspbill.reports.kpis).

Cards for the key figures (each card's tooltip says how it was computed, with
the numbers), cash collected per month as a bar chart, and the tables that
point at work: failed charges awaiting action, the most overdue clients and
the clients at risk.  Double-clicking a row asks the main window to open the
client or the invoice.

The figures are computed on a worker (Ops.read); what comes back is the frozen
`Kpis` and a count, never an ORM object.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from typing import Any

from PySide6.QtCore import (
    QDate,
    QEvent,
    QModelIndex,
    QObject,
    QPointF,
    QRectF,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QHelpEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDateEdit,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableView,
    QToolTip,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mspbill.db.models import Invoice, InvoiceStatus
from mspbill.money import format_amount, minor_units
from mspbill.reports import AsOfError
from mspbill.reports.kpis import (
    AwaitingAction,
    ClientBehaviour,
    Figure,
    Kpis,
    MonthCash,
    OverdueClient,
    compute_kpis,
)
from ui.ops import Ops
from ui.table import Column, SnapshotTableModel
from ui.widgets import MUTED_STYLE, heading, notice_label, show_notice, snapshot_table

ALERT_COLOR = "#b3261e"
GOOD_COLOR = "#0d652d"
MUTED_COLOR = "#5f6368"
CARD_MIN_WIDTH = 190          # the cards reflow to fewer columns below this width each
CARD_MAX_COLUMNS = 5
TABLE_MAX_ROWS = 12           # taller tables scroll inside themselves
ROW_HEIGHT = 26
AS_OF_SETTLE_MS = 400         # typing a date changes it part by part: load once it settles


# --- the data, read on a worker -------------------------------------------------------------


@dataclass(frozen=True)
class DashboardData:
    kpis: Kpis
    draft_count: int              # invoices in draft today (drafts have no history: not "as of")


def load_dashboard(session: Session, as_of: dt.date, today: dt.date) -> DashboardData:
    kpis = compute_kpis(session, as_of, today=today)
    drafts = session.scalar(select(func.count(Invoice.id)).where(Invoice.status == InvoiceStatus.DRAFT)) or 0
    return DashboardData(kpis, int(drafts))


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _day(day: dt.date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def drafts_figure(count: int, today: dt.date) -> Figure:
    explain = (f"Invoices still in draft on {_day(today)}: {count:,}. A draft is not owed and not in the A/R "
               "until it is issued: Invoices → Drafts, then Issue. (Drafts are counted as they are today, "
               "whatever the \"as of\" day.)")
    return Figure("drafts", "Drafts to issue", count, f"{count:,}", explain)


def active_clients_figure(k: Kpis) -> Figure:
    explain = (f"Clients whose status is active: {k.active_clients:,} (archived clients are left out). "
               f"{k.autopay_any:,} of them pay by autopay, {k.autopay_valid:,} with a valid method.")
    return Figure("active_clients", "Active clients", k.active_clients, f"{k.active_clients:,}", explain)


def rich_tooltip(text: str) -> str:
    """`text` as a tooltip Qt word-wraps (a plain-text tooltip is one line, however long)."""
    return f"<qt>{escape(text).replace(chr(10), '<br>')}</qt>"


# --- money on the chart -----------------------------------------------------------------------


def _affixes(currency: str) -> tuple[str, str]:
    """What format_amount puts before and after the number: ("$", "") or ("", " CHF")."""
    whole = format_amount(0, currency)
    prefix, _, suffix = whole.partition(format_amount(0, currency, symbol=False))
    return prefix, suffix


def compact_amount(cents: int, currency: str) -> str:
    """An axis or bar label: $8,549 · $21.9k · $1.23M (rounded half up; the tooltips give the exact amount)."""
    units = Decimal(cents).scaleb(-minor_units(currency))
    prefix, suffix = _affixes(currency)
    sign = "-" if units < 0 else ""
    size = abs(units)
    if size >= 1_000_000:
        body = f"{(size / 1_000_000).quantize(Decimal('0.01'), ROUND_HALF_UP)}M"
    elif size >= 10_000:
        body = f"{(size / 1_000).quantize(Decimal('0.1'), ROUND_HALF_UP)}k"
    else:
        body = f"{size.quantize(Decimal(1), ROUND_HALF_UP):,}"
    body = re.sub(r"\.0+(?=[kM])", "", body)  # $20.0k -> $20k
    return f"{sign}{prefix}{body}{suffix}"


def nice_axis(low_cents: int, high_cents: int, currency: str, ticks: int = 4) -> tuple[int, int, int]:
    """(bottom, top, step) in cents: steps of 1, 2 or 5 × a power of ten, at least one whole unit."""
    unit = 10 ** minor_units(currency)
    low, high = min(0, low_cents), max(0, high_cents)
    if low == high:
        return 0, 100 * unit, 25 * unit  # nothing collected: an axis that still reads as money
    raw = max(unit, -(-(high - low) // ticks))
    magnitude = 10 ** (len(str(raw)) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = -(-high // step) * step
    bottom = (low // step) * step
    return bottom, top, step


# --- the pieces ---------------------------------------------------------------------------------


class FigureCard(QFrame):
    """One key figure: a title with ⓘ, the value, a short note; the tooltip says how it was computed."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("figureCard")
        self.setStyleSheet("#figureCard { background: palette(base); border: 1px solid #d0d4da; "
                           "border-radius: 8px; }")
        self.setMinimumWidth(CARD_MIN_WIDTH - 14)
        self.explain = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(5)
        self.title = QLabel(title)
        self.title.setStyleSheet(f"color: {MUTED_COLOR}; font-size: 12px;")
        top.addWidget(self.title)
        # "How was this computed?": a small circled i, drawn by the style sheet (fonts may lack ⓘ).
        info = QLabel("i")
        info.setFixedSize(13, 13)
        info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        info.setStyleSheet(f"color: {MUTED_COLOR}; border: 1px solid #9aa0a6; border-radius: 6px; "
                           "font-size: 9px; font-weight: 600; font-family: serif;")
        top.addWidget(info)
        top.addStretch()
        self.value = QLabel("…")
        self.value.setStyleSheet("font-size: 22px; font-weight: 600;")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {MUTED_COLOR}; font-size: 11px;")
        # A long note wraps rather than widening the card (the grid decides the width).
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addLayout(top)
        layout.addWidget(self.value)
        layout.addWidget(self.note)
        layout.addStretch()

    def show_figure(self, text: str, note: str, explain: str, *, alert: bool = False) -> None:
        self.value.setText(text)
        self.value.setStyleSheet("font-size: 22px; font-weight: 600;" + (f" color: {ALERT_COLOR};" if alert else ""))
        self.note.setText(note)
        self.explain = explain
        self.setToolTip(rich_tooltip(explain))
        self.setAccessibleDescription(explain)


class CashChart(QWidget):
    """Cash collected per month, one bar a month, with the exact amount in each bar's tooltip.

    Drawn with QPainter rather than QtCharts: twelve bars need no chart engine, and the axis and
    bar labels can then be formatted from the cents the way the rest of the app formats money.
    """

    BAR = QColor("#1a73e8")
    PARTIAL = QColor("#8ab4f8")        # the month of the "as of" day, still under way
    NEGATIVE = QColor("#d93025")       # refunds beyond what came in
    GRID = QColor("#e0e3e7")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.months: tuple[MonthCash, ...] = ()
        self.currency = "USD"
        self.as_of = dt.date.today()
        self.setMinimumHeight(230)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setAccessibleName("Cash collected per month")

    def set_months(self, months: Sequence[MonthCash], currency: str, as_of: dt.date) -> None:
        self.months = tuple(months)
        self.currency = currency
        self.as_of = as_of
        self.setAccessibleDescription("; ".join(self.bar_tooltip(i).replace("\n", ", ")
                                                for i in range(len(self.months))))
        self.update()

    def bar_count(self) -> int:
        return len(self.months)

    def partial(self, index: int) -> bool:
        """The month of the "as of" day when that day is not its last."""
        month = self.months[index].month
        return month.year == self.as_of.year and month.month == self.as_of.month and \
            (self.as_of + dt.timedelta(days=1)).month == self.as_of.month

    def bar_tooltip(self, index: int) -> str:
        m = self.months[index]
        money = format_amount
        if self.partial(index):
            when = f"{m.month:%b} 1 – {self.as_of.day}, {m.month.year} (so far)"
        else:
            when = m.label
        text = f"{when}: {money(m.cents, self.currency)} collected"
        if m.refunded_cents:
            text += (f"\nReceived {money(m.received_cents, self.currency)} less refunds "
                     f"{money(m.refunded_cents, self.currency)}")
        return text

    # --- geometry (pixels are floats; the amounts stay cents) ---
    def _axis(self) -> tuple[int, int, int]:
        values = [m.cents for m in self.months] or [0]
        return nice_axis(min(values), max(values), self.currency)

    def _plot(self) -> QRectF:
        fm = self.fontMetrics()
        bottom, top, step = self._axis()
        labels = [compact_amount(v, self.currency) for v in range(bottom, top + 1, step)]
        left = max(fm.horizontalAdvance(t) for t in labels) + 12
        return QRectF(left, fm.height() + 6, max(10, self.width() - left - 8),
                      max(10, self.height() - fm.height() * 3 - 14))

    def _y(self, cents: int, plot: QRectF) -> float:
        # Cents become a pixel position here, for drawing only; every amount shown is formatted from cents.
        bottom, top, _step = self._axis()
        return plot.bottom() - (cents - bottom) * plot.height() / (top - bottom)

    def bar_rect(self, index: int) -> QRectF:
        plot = self._plot()
        slot = plot.width() / max(1, len(self.months))
        width = slot * 0.62
        x = plot.left() + slot * index + (slot - width) / 2
        zero, value = self._y(0, plot), self._y(self.months[index].cents, plot)
        return QRectF(x, min(zero, value), width, max(1.0, abs(zero - value)))

    def bar_at(self, point: QPointF) -> int | None:
        plot = self._plot()
        for i in range(len(self.months)):
            rect = self.bar_rect(i)
            # The whole column counts, so a small bar is easy to point at.
            if rect.left() <= point.x() <= rect.right() and plot.top() <= point.y() <= plot.bottom():
                return i
        return None

    # --- Qt ---
    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            index = self.bar_at(QPointF(event.pos()))
            if index is None:
                QToolTip.hideText()
                event.ignore()
            else:
                QToolTip.showText(event.globalPos(), self.bar_tooltip(index), self)
            return True
        return super().event(event)

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = self.fontMetrics()
        plot = self._plot()
        text_color = self.palette().color(self.foregroundRole())
        muted = QColor(MUTED_COLOR)
        bottom, top, step = self._axis()
        for value in range(bottom, top + 1, step):
            y = self._y(value, plot)
            painter.setPen(QPen(text_color if value == 0 else self.GRID, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(muted)
            label = compact_amount(value, self.currency)
            painter.drawText(QRectF(0, y - fm.height() / 2, plot.left() - 6, fm.height()),
                             int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), label)
        if not self.months:
            painter.end()
            return
        slot = plot.width() / len(self.months)
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, self.font().pointSizeF() * 0.9))
        for i, m in enumerate(self.months):
            rect = self.bar_rect(i)
            color = self.NEGATIVE if m.cents < 0 else self.PARTIAL if self.partial(i) else self.BAR
            if m.cents:
                painter.fillRect(rect, color)
            centre = plot.left() + slot * i
            # The month under its bar; the year under January and under the first bar.
            painter.setPen(text_color)
            painter.drawText(QRectF(centre, plot.bottom() + 4, slot, fm.height()),
                             int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), f"{m.month:%b}")
            if i == 0 or m.month.month == 1:
                painter.setPen(muted)
                painter.drawText(QRectF(centre, plot.bottom() + 4 + fm.height(), slot, fm.height()),
                                 int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), str(m.month.year))
            if m.cents:
                painter.setFont(small)
                label = compact_amount(m.cents, self.currency)
                if painter.fontMetrics().horizontalAdvance(label) <= slot - 2:
                    painter.setPen(muted)
                    above = rect.top() - painter.fontMetrics().height() - 2 if m.cents > 0 else rect.bottom() + 2
                    painter.drawText(QRectF(centre, above, slot, painter.fontMetrics().height()),
                                     int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), label)
                painter.setFont(self.font())
        painter.end()


class _ColoredModel(SnapshotTableModel[Any]):
    """A snapshot table whose cells may carry a colour (column title -> row -> colour or None)."""

    def __init__(self, columns: Sequence[Column[Any]], colors: dict[str, Callable[[Any], str | None]],
                 header_tips: dict[str, str] | None = None, parent: QObject | None = None):
        super().__init__(columns, lambda _r: "", parent)
        self.colors = colors
        self.header_tips = header_tips or {}

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.ToolTipRole and orientation == Qt.Orientation.Horizontal:
            return self.header_tips.get(self.columns[section].title)
        return super().headerData(section, orientation, role)

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid():
            pick = self.colors.get(self.columns[index.column()].title)
            color = pick(self.row_at(index.row())) if pick is not None else None
            if color:
                return QColor(color)
        return super().data(index, role)


def _average_days(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}"


TREND_TEXT = {"worsening": "↗ worsening", "improving": "↘ improving", "steady": "→ steady"}


def late_text(b: ClientBehaviour) -> str:
    return "—" if not b.paid_count else f"{b.late_count} of {b.paid_count}"


def late_tooltip(b: ClientBehaviour) -> str:
    if not b.paid_count:
        return "No invoice paid in the 365 days up to the \"as of\" day."
    text = (f"{b.late_count} of the {_plural(b.paid_count, 'invoice')} paid in the 365 days up to the \"as of\" "
            "day were paid after their due date")
    if b.average_days_late is not None:
        text += f", on average {b.average_days_late} days late"
    return text + f". Of the last {b.recent_count}: {b.recent_late_count} late."


OVERDUE_COLUMNS: list[Column[OverdueClient]] = [
    Column("Client", lambda r: r.client_name, lambda r: r.client_name.casefold(),
           tooltip=lambda r: "Double-click to open the client"),
    Column("Overdue", lambda r: format_amount(r.overdue_cents, r.currency), lambda r: r.overdue_cents,
           align_right=True),
    Column("Oldest", lambda r: _plural(r.oldest_days_past_due, "day") + " past due",
           lambda r: r.oldest_days_past_due, align_right=True),
    Column("Invoices", lambda r: f"{r.invoice_count:,}", lambda r: r.invoice_count, align_right=True,
           tooltip=lambda r: f"{_plural(r.invoice_count, 'invoice')} past due"),
]

RISK_COLUMNS: list[Column[ClientBehaviour]] = [
    Column("Client", lambda r: r.client_name, lambda r: r.client_name.casefold(),
           tooltip=lambda r: "Double-click to open the client"),
    Column("Overdue", lambda r: format_amount(r.overdue_cents, r.currency) if r.overdue_cents else "",
           lambda r: r.overdue_cents, align_right=True,
           tooltip=lambda r: (f"Oldest open invoice {r.oldest_days_past_due} days past due"
                              if r.oldest_days_past_due else "Nothing past due")),
    Column("Days to pay", lambda r: _average_days(r.average_days_to_pay),
           lambda r: r.average_days_to_pay if r.average_days_to_pay is not None else Decimal(-1), align_right=True,
           tooltip=lambda r: (f"Average days from issue to the last payment over the {r.paid_count} invoices "
                              "paid in the year" if r.paid_count else "No invoice paid in the year")),
    Column("Paid late", late_text, lambda r: (r.late_count, r.paid_count), align_right=True,
           tooltip=late_tooltip),
    Column("Trend", lambda r: TREND_TEXT.get(r.trend, r.trend), lambda r: r.trend, tooltip=lambda r: r.trend_explain),
    Column("Why at risk", lambda r: " ".join(r.reasons), lambda r: len(r.reasons),
           tooltip=lambda r: rich_tooltip("\n".join(f"• {reason}" for reason in r.reasons))),
]

RISK_HEADER_TIPS = {
    "Overdue": "Owed past the due date as of the \"as of\" day, in the client's currency",
    "Days to pay": "Average days from issue to the last payment, over the invoices paid in the 365 days up to the "
                   "\"as of\" day",
    "Paid late": "Invoices paid after their due date, of those paid in the 365 days up to the \"as of\" day",
    "Trend": "Days to pay of the last 3 paid invoices against the up to 6 before them (a move of 7 days or more "
             "counts); — with less history",
    "Why at risk": "More than 60 days past due, at least half of the last 6 paid late, paying more slowly, or an "
                   "autopay charge awaiting action",
}

AWAITING_COLUMNS: list[Column[AwaitingAction]] = [
    Column("Client", lambda r: r.client_name, lambda r: r.client_name.casefold(),
           tooltip=lambda r: "Double-click to open the client"),
    Column("Invoice", lambda r: r.number, lambda r: r.number, tooltip=lambda r: "Double-click to open the invoice"),
    Column("Amount", lambda r: format_amount(r.amount_cents, r.currency), lambda r: r.amount_cents,
           align_right=True),
    Column("Declined on", lambda r: r.declined_on.isoformat(), lambda r: r.declined_on),
    Column("Reason", lambda r: r.reason, lambda r: r.reason, tooltip=lambda r: rich_tooltip(r.reason)),
]


class _Section(QWidget):
    """A heading, a sentence when there is nothing to list, else a table that grows with its rows."""

    def __init__(self, title: str, model: SnapshotTableModel[Any], widths: Sequence[int], stretch: int,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.setSpacing(4)
        top = QHBoxLayout()
        self.title = heading(title, 15)
        top.addWidget(self.title)
        self.count = QLabel()
        self.count.setStyleSheet(MUTED_STYLE)
        top.addWidget(self.count)
        top.addStretch()
        layout.addLayout(top)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet(MUTED_STYLE)
        layout.addWidget(self.empty)
        self.table: QTableView = snapshot_table(model, widths, stretch)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.setVerticalScrollMode(QTableView.ScrollMode.ScrollPerPixel)
        layout.addWidget(self.table)

    def set_rows(self, rows: Sequence[Any], empty_text: str, count_text: str = "") -> None:
        self.model.set_rows(rows)
        self.count.setText(count_text if rows else "")
        self.empty.setText(empty_text)
        self.empty.setVisible(not rows)
        self.table.setVisible(bool(rows))
        shown = min(len(rows), TABLE_MAX_ROWS)
        header = self.table.horizontalHeader().sizeHint().height()
        self.table.setFixedHeight(header + shown * ROW_HEIGHT + 2 * self.table.frameWidth())


# --- the screen ---------------------------------------------------------------------------------


class DashboardScreen(QWidget):
    open_client = Signal(int)
    open_invoice = Signal(int)
    loaded = Signal()

    CARDS = (("mrr", "MRR"), ("ar_total", "A/R total"), ("ar_overdue", "Overdue"), ("dso", "DSO (90 days)"),
             ("cei", "CEI (90 days)"), ("autopay", "Autopay adoption"),
             ("failed_charges", "Failed charges"), ("credit_held", "Client credit held"),
             ("drafts", "Drafts to issue"), ("clients", "Active clients"))

    def __init__(self, ops: Ops, parent: QWidget | None = None):
        super().__init__(parent)
        self.ops = ops
        self.today: Callable[[], dt.date] = dt.date.today
        self.data: DashboardData | None = None
        self._follow_today = True      # until the user picks a day, "as of" moves with the calendar
        self._shown_today: dt.date | None = None
        self._stale = True
        self._seq = 0
        self._columns = 0
        self._build()

    # --- building ---
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(heading("Dashboard"))
        top.addStretch()
        top.addWidget(QLabel("As of"))
        today = self.today()
        self.as_of = QDateEdit(QDate(today.year, today.month, today.day))
        self.as_of.setCalendarPopup(True)
        self.as_of.setDisplayFormat("yyyy-MM-dd")
        self.as_of.setMinimumDate(QDate(2000, 1, 1))
        self.as_of.setMaximumDate(QDate(today.year, today.month, today.day))
        self.as_of.setToolTip("The figures as they stood at the end of this day (today at the latest)")
        self._shown_today = today
        self.settle = QTimer(self)
        self.settle.setSingleShot(True)
        self.settle.setInterval(AS_OF_SETTLE_MS)
        self.settle.timeout.connect(self.reload)
        self.as_of.dateChanged.connect(self._as_of_changed)
        top.addWidget(self.as_of)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.reload)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        self.status = QLabel("Loading…")
        self.status.setStyleSheet(MUTED_STYLE)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        body = QWidget()
        self.body = body
        content = QVBoxLayout(body)
        content.setContentsMargins(0, 6, 4, 6)
        content.setSpacing(8)
        self.error = notice_label()
        content.addWidget(self.error)
        self.notes = notice_label()
        content.addWidget(self.notes)
        self.grid = QGridLayout()
        self.grid.setSpacing(10)
        self.cards: dict[str, FigureCard] = {key: FigureCard(title) for key, title in self.CARDS}
        content.addLayout(self.grid)
        self._reflow(CARD_MAX_COLUMNS)

        chart_top = QHBoxLayout()
        chart_top.setContentsMargins(0, 10, 0, 0)
        chart_top.addWidget(heading("Cash collected per month", 15))
        self.cash_caption = QLabel()
        self.cash_caption.setStyleSheet(MUTED_STYLE)
        chart_top.addWidget(self.cash_caption)
        chart_top.addStretch()
        content.addLayout(chart_top)
        self.chart = CashChart()
        content.addWidget(self.chart)

        self.awaiting = _Section("Failed charges awaiting action", _ColoredModel(AWAITING_COLUMNS, {}),
                                 (200, 100, 110, 100), 4)
        self.overdue = _Section("Most overdue clients", _ColoredModel(OVERDUE_COLUMNS, {
            "Oldest": lambda r: ALERT_COLOR if r.oldest_days_past_due > 60 else None}), (0, 130, 150, 90), 0)
        self.risk = _Section("Clients at risk", _ColoredModel(RISK_COLUMNS, {
            "Trend": lambda r: {"worsening": ALERT_COLOR, "improving": GOOD_COLOR}.get(r.trend)}, RISK_HEADER_TIPS),
            (190, 100, 85, 75, 100), 5)
        for section in (self.awaiting, self.overdue, self.risk):
            section.table.doubleClicked.connect(lambda index, s=section: self._double_clicked(s, index))
            content.addWidget(section)
        # Sorted as the core ranks them (largest first); a header click re-sorts, ties keep that order.
        self.overdue.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.risk.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.awaiting.table.sortByColumn(3, Qt.SortOrder.AscendingOrder)
        content.addStretch()

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(body)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.viewport().installEventFilter(self)
        layout.addWidget(self.scroll_area, 1)

    def _reflow(self, columns: int) -> None:
        """The cards in `columns` columns (5 on a wide window, fewer on a narrow one)."""
        if columns == self._columns:
            return
        self._columns = columns
        for card in self.cards.values():
            self.grid.removeWidget(card)
        for i, card in enumerate(self.cards.values()):
            self.grid.addWidget(card, i // columns, i % columns)
        for c in range(CARD_MAX_COLUMNS):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.scroll_area.viewport() and event.type() == QEvent.Type.Resize:
            width = self.scroll_area.viewport().width()
            self._reflow(max(2, min(CARD_MAX_COLUMNS, width // CARD_MIN_WIDTH)))
        return super().eventFilter(watched, event)

    # attribute access the main window's tests use: the MRR and active-clients cards
    @property
    def mrr(self) -> FigureCard:
        return self.cards["mrr"]

    @property
    def clients(self) -> FigureCard:
        return self.cards["clients"]

    # --- loading ---
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # Deferred: the main window calls reload() right after showing the screen; this one only loads
        # when nobody did (shown some other way, or hidden while the data changed).
        QTimer.singleShot(0, self, self._reload_if_stale)

    def _reload_if_stale(self) -> None:
        if self._stale and self.isVisible():
            self.reload()

    def _as_of_changed(self, _date: QDate) -> None:
        self._follow_today = self.as_of_day() == self.today()
        self.settle.start()

    def as_of_day(self) -> dt.date:
        q = self.as_of.date()
        return dt.date(q.year(), q.month(), q.day())

    def set_as_of(self, day: dt.date) -> None:
        """Show the figures as of `day` (loads at once, without waiting for typing to settle)."""
        self.as_of.setDate(QDate(day.year, day.month, day.day))
        self.settle.stop()
        self.reload()

    def _keep_up_with_today(self, today: dt.date) -> None:
        if today == self._shown_today:
            return
        self._shown_today = today
        self.as_of.blockSignals(True)
        self.as_of.setMaximumDate(QDate(today.year, today.month, today.day))
        if self._follow_today:
            self.as_of.setDate(QDate(today.year, today.month, today.day))
        self.as_of.blockSignals(False)

    def reload(self) -> None:
        """Load the figures for the "as of" day; when hidden, on the next showing instead."""
        self.settle.stop()
        if not self.isVisible():
            self._stale = True
            return
        today = self.today()
        self._keep_up_with_today(today)
        as_of = self.as_of_day()
        self._stale = False
        self._seq += 1
        seq = self._seq
        self.status.setText(f"Loading the figures as of {_day(as_of)}…")

        def loaded(data: DashboardData) -> None:
            if seq == self._seq:  # else an older request came back after a newer one was made
                self._show(data)

        def failed(exc: BaseException) -> bool:
            if seq != self._seq:
                return True  # a newer request is on its way; it will tell
            if isinstance(exc, AsOfError):
                show_notice(self.error, str(exc), "error")
                self.status.setText("")
                return True
            self.status.setText("The figures could not be loaded.")
            return False

        self.ops.read(self, lambda s: load_dashboard(s, as_of, today), loaded, on_failure=failed,
                      label="Loading dashboard")

    # --- showing ---
    def _show(self, data: DashboardData) -> None:
        self.data = data
        k = data.kpis
        show_notice(self.error, "")
        show_notice(self.notes, "\n".join(k.notes), "info")
        self.status.setText(f"As of the end of {_day(k.as_of)}; amounts in {k.currency}. Point at a figure to "
                            "see how it was computed.")
        c = self.cards
        c["mrr"].show_figure(k.mrr.text, "recurring, per month", k.mrr.explain)
        c["ar_total"].show_figure(k.ar_total.text, f"{_plural(k.ar_invoice_count, 'open invoice')}",
                                  k.ar_total.explain)
        overdue_cents = k.ar_overdue.value if isinstance(k.ar_overdue.value, int) else 0
        c["ar_overdue"].show_figure(k.ar_overdue.text, f"{_plural(k.overdue_invoice_count, 'invoice')} past due",
                                    k.ar_overdue.explain, alert=overdue_cents > 0)
        c["dso"].show_figure(k.dso.text, "A/R ÷ 90-day sales × 90", k.dso.explain)
        c["cei"].show_figure(k.cei.text, "collected ÷ collectible × 100", k.cei.explain)
        mrr_share = k.autopay_mrr.text if k.autopay_mrr.value is not None else "—"
        c["autopay"].show_figure(
            k.autopay_clients.text,
            f"{k.autopay_valid:,} of {_plural(k.active_clients, 'client')} · MRR {mrr_share}".replace(" %", "\u00a0%")
            .replace("MRR ", "MRR\u00a0"),
            f"Clients: {k.autopay_clients.explain}\n\nMRR: {k.autopay_mrr.explain}")
        failed = len(k.awaiting_action)
        c["failed_charges"].show_figure(k.failed_charges.text, "awaiting action" if failed else
                                        "none awaits action", k.failed_charges.explain, alert=failed > 0)
        c["credit_held"].show_figure(k.credit_held.text, "pays their next invoices", k.credit_held.explain)
        drafts = drafts_figure(data.draft_count, self._shown_today or self.today())
        c["drafts"].show_figure(drafts.text, "Invoices → Drafts, then Issue", drafts.explain)
        clients = active_clients_figure(k)
        c["clients"].show_figure(clients.text, f"{k.autopay_any:,} on autopay", clients.explain)

        self.chart.set_months(k.cash_by_month, k.currency, k.as_of)
        self.chart.setToolTip("")
        self.cash_caption.setText(f"· this month so far {k.cash_this_month.text} · last 12 months "
                                  f"{format_amount(sum(m.cents for m in k.cash_by_month), k.currency)}")
        self.cash_caption.setToolTip(rich_tooltip(k.cash_this_month.explain))

        self.awaiting.set_rows(k.awaiting_action, "No failed charge awaits action: every declined autopay charge "
                               "will be retried by itself, or none was declined.",
                               f"· {_plural(len(k.awaiting_action), 'invoice')}")
        self.overdue.set_rows(k.most_overdue, f"Nobody is past due as of {_day(k.as_of)}.",
                              f"· the {len(k.most_overdue)} owing most past due" if len(k.most_overdue) > 1 else "")
        self.risk.set_rows(k.at_risk, "No client is at risk: none is more than 60 days past due, pays late "
                           "most of the time, pays more and more slowly or has an autopay charge awaiting action.",
                           f"· {_plural(len(k.at_risk), 'client')}")
        self.loaded.emit()

    def _double_clicked(self, section: _Section, index: QModelIndex) -> None:
        if not index.isValid():
            return
        row = section.model.row_at(index.row())
        if isinstance(row, AwaitingAction) and section.model.columns[index.column()].title != "Client":
            self.open_invoice.emit(row.invoice_id)
        else:
            self.open_client.emit(row.client_id)
