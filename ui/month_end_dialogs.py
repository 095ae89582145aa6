"""Month-end's parts around its screen: the confirmation before a run (count, total and
mode; a tick for real money), the question before charging above a client's autopay
cap, the panel of a run under way, a run's account, and the words and columns they
share with the preview (what a charge is, time left, a run's status)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence
from html import escape
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mspbill.batch.plan import (
    BatchPreview,
    ChargeKind,
    LeftOutCharge,
    LeftOutReason,
    PlannedCharge,
    money_text,
)
from mspbill.batch.run import BatchProgress, BatchReport, ChargeLine
from mspbill.db.models import BatchRunStatus
from mspbill.money import format_amount
from mspbill.payments.gateway import ProcessorMode
from mspbill.payments.processor import NO_PROCESSOR
from ui.payment_widgets import ModeBadge
from ui.table import Column, SnapshotTableModel
from ui.widgets import (
    ERROR_STYLE,
    MUTED_STYLE,
    NOTICE_STYLES,
    SUCCESS_STYLE,
    heading,
    notice_label,
    show_notice,
    snapshot_table,
)

LIVE_TICK = "I understand this charges real money"


def color_of(style: str) -> QColor:
    """The text colour named in one of ui.widgets' styles ("color: #b3261e;")."""
    found = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", style)
    return QColor(found.group(1) if found else "#000000")


# The run's outcomes in the colours of the app's notices: good news, information, a warning, a failure.
OUTCOME_COLORS = {
    "succeeded": color_of(SUCCESS_STYLE),
    "processing": color_of(NOTICE_STYLES["info"]),
    "failed": color_of(ERROR_STYLE),
    "unknown": color_of(NOTICE_STYLES["warn"]),
    "not_charged": QColor("#5f6368"),
}
RUN_STATUS_COLORS = {
    "finished": OUTCOME_COLORS["succeeded"], "running": OUTCOME_COLORS["processing"],
    "cancelled": OUTCOME_COLORS["unknown"], "stopped": OUTCOME_COLORS["failed"],
    "interrupted": OUTCOME_COLORS["failed"],
}
RUN_STATUS_LABELS = {"finished": "Finished", "running": "Running", "cancelled": "Cancelled", "stopped": "Stopped",
                     "interrupted": "Interrupted"}
MODE_LABELS = {"sandbox": "Sandbox", "test": "Test", "live": "LIVE", "": "No processor"}


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def what_text(charge: PlannedCharge) -> str:
    """What the run does with this invoice: charge a new one, an earlier one, or retry a decline."""
    text = {ChargeKind.NEW: "Charge", ChargeKind.OPEN: "Earlier invoice",
            ChargeKind.RETRY: f"Retry {charge.retry_number}"}[charge.kind]
    return text + (" (above cap, approved)" if charge.over_cap_approved else "")


def next_retry_text(line: ChargeLine) -> str:
    if line.status != "failed":
        return ""
    if line.hard:
        return "Never (new method asked)"
    return line.next_retry_on.isoformat() if line.next_retry_on else "No retry left"


def time_left_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 5:
        return "a few seconds"
    if seconds < 60:
        return f"about {int(round(seconds / 5) * 5)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def local_time(moment: dt.datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def client_count(charges: Sequence[PlannedCharge]) -> int:
    return len({c.target.client_id for c in charges})


def pays_by_invoice(left_out: Sequence[LeftOutCharge]) -> int:
    return sum(1 for lo in left_out if lo.reason is LeftOutReason.AUTOPAY_OFF)


# --- the confirmation before a run ------------------------------------------------------


def run_button_text(preview: BatchPreview) -> str:
    if preview.charges and preview.mode is not None:
        return f"Run: charge {money_text(preview.charge_totals())}"
    return f"Run: issue {plural(len(preview.invoices), 'invoice')}"


def confirmation_html(preview: BatchPreview) -> str:
    """What the run will do, in the order it does it."""
    month = preview.month.label
    items: list[str] = []
    if preview.invoices:
        items.append(f"Issue <b>{plural(len(preview.invoices), 'invoice')}</b> for {escape(month)} "
                     f"({escape(money_text(preview.invoice_totals()))}).")
    if preview.mode is None:
        items.append("Charge <b>nothing</b>: no payment processor is set up, so this run only generates and "
                     "issues the invoices and queues their e-mails.")
    elif preview.charges:
        retries = len(preview.retries)
        items.append(f"Charge <b>{plural(len(preview.charges), 'invoice')}</b> of "
                     f"{plural(client_count(preview.charges), 'client')} for "
                     f"<b>{escape(money_text(preview.charge_totals()))}</b> in {escape(preview.mode.label)}"
                     + (f", {plural(retries, 'retry', 'retries')} of earlier declines among them" if retries else "")
                     + ".")
    else:
        items.append("Charge nothing: no autopay invoice is due.")
    if preview.left_out:
        by_invoice = pays_by_invoice(preview.left_out)
        items.append(f"Leave out {plural(len(preview.left_out), 'invoice')}"
                     + (f" ({by_invoice:,} of clients who pay by invoice)" if by_invoice else "")
                     + ": they are listed under Left out.")
    items.append("Queue receipts and invoice e-mails in the Outbox.")
    steps = "".join(f"<li>{item}</li>" for item in items)
    return (f"<ol style='margin-left: -20px;'>{steps}</ol>"
            "<p>A backup of the database is taken first. Cancel stops new charges; those already sent to the "
            "processor finish and are recorded. Nothing is ever charged twice.</p>")


class RunConfirmDialog(QDialog):
    """Count, total and mode before anything happens; in LIVE mode the button waits for the tick."""

    def __init__(self, parent: QWidget | None, preview: BatchPreview):
        super().__init__(parent)
        self.preview = preview
        live = preview.mode is ProcessorMode.LIVE
        self.setWindowTitle(f"Run the {preview.month.label} month-end")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.badge = ModeBadge(preview.mode)
        top.addWidget(self.badge)
        top.addStretch()
        layout.addLayout(top)
        title = heading(f"Run the {preview.month.label} month-end now?", 16)
        title.setWordWrap(True)
        layout.addWidget(title)
        self.text = QLabel(confirmation_html(preview))
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        layout.addWidget(self.text)
        self.live_note = QLabel()
        self.live_note.setWordWrap(True)
        self.live_note.setStyleSheet(NOTICE_STYLES["error"])
        self.understood = QCheckBox(LIVE_TICK)
        if live:
            self.live_note.setText(f"Stripe LIVE: {money_text(preview.charge_totals())} of real money is taken from "
                                   f"{plural(client_count(preview.charges), 'client')}' cards and bank accounts.")
            layout.addWidget(self.live_note)
            layout.addWidget(self.understood)
        else:
            self.live_note.hide()
            self.understood.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.go = self.buttons.addButton(run_button_text(preview), QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        self.go.setEnabled(not live)
        self.understood.toggled.connect(lambda on: self.go.setEnabled(on or not live))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)


def unusable_processor_text(mode_note: str) -> str:
    """Why Run is refused when the office chose a processor that this computer cannot use."""
    return (f"{mode_note} Until then the month-end run would e-mail the autopay clients' invoices instead of "
            "charging them, so it does not start.")


def processor_unusable(mode: ProcessorMode | None, mode_note: str) -> bool:
    """A processor is chosen but cannot be used here (no key on this computer, no keyring)."""
    return mode is None and bool(mode_note) and mode_note != NO_PROCESSOR


# --- approving above the cap ------------------------------------------------------------


def approval_question(rows: Sequence[LeftOutCharge], caps: dict[int, int]) -> tuple[str, str]:
    """(title, text) naming each amount and its client's cap."""
    def one(lo: LeftOutCharge) -> str:
        t = lo.target
        cap = caps.get(t.client_id)
        cap_text = format_amount(cap, t.currency) if cap is not None else "their cap"
        return f"{t.client_name}: {format_amount(t.amount_cents, t.currency)} for {t.number} (cap {cap_text})"

    if len(rows) == 1:
        t = rows[0].target
        cap = caps.get(t.client_id)
        cap_text = format_amount(cap, t.currency) if cap is not None else "their autopay cap"
        text = (f"Charge {t.client_name} {format_amount(t.amount_cents, t.currency)} for {t.number}? It is above "
                f"the client's autopay cap of {cap_text}.\n\nThe approval covers this amount only; the run charges "
                "it with the others.")
        return "Approve a charge above the cap", text
    shown = [one(lo) for lo in rows[:12]]
    more = f"\n… and {len(rows) - 12} more" if len(rows) > 12 else ""
    return ("Approve charges above the cap",
            f"Charge these {len(rows)} invoices although each is above its client's autopay cap?\n\n"
            + "\n".join(shown) + more + "\n\nEach approval covers that amount only.")


# --- tables shared by the preview and a run's account ---------------------------------


def money(cents: int, currency: str) -> str:
    return format_amount(cents, currency)


_MONTH_SUFFIX = re.compile(r" — (?:" + "|".join(calendar.month_name[1:]) + r") \d{4}$")


def short_number(text: str) -> str:
    """An invoice still to be generated is named by its title, "Managed IT services — November 2026":
    the month is the screen's, so the column shows the rest (the tooltip the whole)."""
    return _MONTH_SUFFIX.sub("", text)


# Left out, the ones someone can act on first; the clients who pay by invoice last.
_REASON_ORDER = [LeftOutReason.OVER_CAP, LeftOutReason.HARD_DECLINE, LeftOutReason.EXPIRED, LeftOutReason.NO_METHOD,
                 LeftOutReason.RETRIES_USED, LeftOutReason.RETRY_LATER, LeftOutReason.UNKNOWN,
                 LeftOutReason.PROCESSING, LeftOutReason.TOO_SMALL, LeftOutReason.NO_PROCESSOR,
                 LeftOutReason.PAID_BY_CREDIT, LeftOutReason.AUTOPAY_OFF]


def reason_rank(row: LeftOutCharge) -> tuple[int, str, str]:
    rank = _REASON_ORDER.index(row.reason) if row.reason in _REASON_ORDER else len(_REASON_ORDER)
    return rank, row.target.client_name.casefold(), row.target.number


def target_columns() -> list[Column[Any]]:
    """Client, invoice and amount of a preview row (a PlannedCharge or a LeftOutCharge: both have `target`)."""
    return [
        Column("Client", lambda r: r.target.client_name, lambda r: r.target.client_name.casefold(),
               tooltip=lambda r: r.target.client_name),
        Column("Invoice", lambda r: short_number(r.target.number), lambda r: r.target.number,
               tooltip=lambda r: r.target.number),
        Column("Amount", lambda r: money(r.target.amount_cents, r.target.currency), lambda r: r.target.amount_cents,
               align_right=True),
    ]


LEFT_OUT_COLUMNS: list[Column[LeftOutCharge]] = [
    *target_columns(),
    Column("Reason", lambda r: r.reason.label, reason_rank, tooltip=lambda r: r.detail),
    Column("Next retry", lambda r: r.next_retry_on.isoformat() if r.next_retry_on else "",
           lambda r: r.next_retry_on or dt.date.max),
    Column("Detail", lambda r: r.detail, tooltip=lambda r: r.detail),
]
LINE_COLUMNS: list[Column[ChargeLine]] = [
    Column("Client", lambda ln: ln.client_name, lambda ln: ln.client_name.casefold(),
           tooltip=lambda ln: ln.client_name),
    Column("Invoice", lambda ln: ln.invoice_number),
    Column("Amount", lambda ln: money(ln.amount_cents, ln.currency), lambda ln: ln.amount_cents, align_right=True),
    Column("Method", lambda ln: ln.method_label, tooltip=lambda ln: ln.method_label),
    Column("Next retry", next_retry_text, tooltip=next_retry_text),
    Column("Outcome", lambda ln: ln.message, tooltip=lambda ln: ln.message),
]
NEXT_RETRY_COLUMN = 4
NO_MAIL_HTML = ("<span style='color:#7a5900'>E-mail is not set up: nothing was queued.</span> Set it up in "
                "Settings → E-mail; then Outbox → “E-mail unsent invoices…” sends the invoices.")
# key, tab title, tab tooltip
RESULT_TABS = (("succeeded", "Succeeded", "Charged: the money is taken"),
               ("processing", "Processing ACH", "Bank debits: they settle within about 4 business days"),
               ("failed", "Failed", "Declined: the reason, and when the next run tries again"),
               ("unknown", "Unknown", "No answer from the processor yet: being resolved, never charged twice"),
               ("not_charged", "Not charged", "Nothing was taken; the next run charges them"))


class _LineModel(SnapshotTableModel[ChargeLine]):
    def data(self, index, role=Qt.ItemDataRole.DisplayRole):  # type: ignore[no-untyped-def]
        if role == Qt.ItemDataRole.ForegroundRole and index.isValid() and self.columns[index.column()].title in (
                "Outcome", "Next retry"):
            return OUTCOME_COLORS.get(self.row_at(index.row()).status)
        return super().data(index, role)


# --- the run under way and its account --------------------------------------------------


class ProgressPanel(QWidget):
    """The run under way: a bar, the counts so far, the money collected, time left, Cancel."""

    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 8, 0, 0)
        card = QFrame()
        card.setObjectName("progressCard")
        card.setStyleSheet("#progressCard { background: palette(base); border: 1px solid #d0d4da; "
                           "border-radius: 8px; }")
        outer.addWidget(card)
        outer.addStretch()
        layout = QVBoxLayout(card)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        self.title = heading("Running…", 15)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.plan = QLabel()
        self.plan.setStyleSheet(MUTED_STYLE)
        self.plan.setWordWrap(True)
        layout.addWidget(self.plan)
        self.stage = QLabel()
        self.stage.setWordWrap(True)
        layout.addWidget(self.stage)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        layout.addWidget(self.bar)
        grid = QGridLayout()
        grid.setHorizontalSpacing(24)
        self.counts: dict[str, QLabel] = {}
        for col, (key, label) in enumerate((("succeeded", "Charged"), ("processing", "Processing (ACH)"),
                                            ("failed", "Declined"), ("unknown", "Unknown"))):
            title = QLabel(label)
            title.setStyleSheet("color: #5f6368; font-size: 11px;")
            value = QLabel("0")
            value.setStyleSheet(f"font-size: 20px; font-weight: 600; color: {OUTCOME_COLORS[key].name()};")
            grid.addWidget(title, 0, col)
            grid.addWidget(value, 1, col)
            self.counts[key] = value
        grid.setColumnStretch(4, 1)
        layout.addLayout(grid)
        facts = QGridLayout()
        facts.setHorizontalSpacing(12)
        self.collected = QLabel("—")
        self.collected.setStyleSheet("font-weight: 600;")
        self.time_left = QLabel("—")
        for row, (label, value) in enumerate((("Collected", self.collected), ("Time left", self.time_left))):
            name = QLabel(label)
            name.setStyleSheet(MUTED_STYLE)
            facts.addWidget(name, row, 0)
            facts.addWidget(value, row, 1)
        facts.setColumnStretch(2, 1)
        layout.addLayout(facts)
        buttons = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Start no new charge; those already sent finish and are recorded")
        self.cancel_button.clicked.connect(self.cancel_clicked.emit)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch()
        layout.addLayout(buttons)

    def start(self, preview: BatchPreview) -> None:
        where = preview.mode.label if preview.mode else "no processor: nothing is charged"
        self.title.setText(f"Running the {preview.month.label} month-end — {where}")
        self.plan.setText(f"{plural(len(preview.invoices), 'invoice')} to issue "
                          f"({money_text(preview.invoice_totals())}); {plural(len(preview.charges), 'charge')} of "
                          f"{money_text(preview.charge_totals())}.")
        self.stage.setText("Starting…")
        self.bar.setRange(0, 0)
        for label in self.counts.values():
            label.setText("0")
        self.collected.setText("—")
        self.time_left.setText("—")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(True)

    def stopping(self) -> None:
        self.cancel_button.setText("Stopping after the charges in flight…")
        self.cancel_button.setEnabled(False)

    def show_progress(self, p: BatchProgress) -> None:
        if p.stage == "charging" and p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.done)
            self.bar.setFormat(f"{p.done:,} of {p.total:,} charges")
            self.stage.setText(p.text or f"Charging {plural(p.total, 'invoice')}…")
        elif p.stage in ("resolving-new", "mail", "done") and p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.done)
            self.bar.setFormat(f"{p.done:,} of {p.total:,} charges")
            self.stage.setText(p.text)
        else:
            self.bar.setRange(0, 0)  # busy: no count to show yet
            self.stage.setText(p.text or "Working…")
        for key, label in self.counts.items():
            label.setText(f"{getattr(p, key):,}")
        self.collected.setText(money_text(p.collected) if p.collected else "—")
        self.time_left.setText(time_left_text(p.seconds_left) if p.stage == "charging" else "—")


class ResultPanel(QWidget):
    """A run's account: headline, one tab per outcome, what was queued, what went wrong."""

    back_clicked = Signal()
    outbox_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.report: BatchReport | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        self.headline = heading("", 15)
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.headline)
        self.status = notice_label()
        layout.addWidget(self.status)
        self.facts = QLabel()
        self.facts.setWordWrap(True)
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.facts)
        self.tabs = QTabWidget()
        self.line_models: dict[str, _LineModel] = {}
        self.line_tables: dict[str, QTableView] = {}
        for key, _title, tip in RESULT_TABS:
            model = _LineModel(LINE_COLUMNS, lambda ln: f"{ln.client_name}\n{ln.invoice_number}", self)
            table = snapshot_table(model, (170, 90, 90, 130, 175, 300), 5)
            table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
            table.setColumnHidden(NEXT_RETRY_COLUMN, key != "failed")
            table.selectionModel().selectionChanged.connect(lambda *_a, t=table: self._line_selected(t))
            self.line_models[key] = model
            self.line_tables[key] = table
            self.tabs.setTabToolTip(self.tabs.addTab(table, ""), tip)
        self.left_model = SnapshotTableModel(LEFT_OUT_COLUMNS, lambda r: r.target.client_name, self)
        self.left_table = snapshot_table(self.left_model, (170, 150, 90, 250, 80, 300), 5)
        self.left_table.sortByColumn(3, Qt.SortOrder.AscendingOrder)
        self.tabs.addTab(self.left_table, "Left out")
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.problems.setContentsMargins(8, 8, 8, 8)
        problems_scroll = QScrollArea()
        problems_scroll.setWidget(self.problems)
        problems_scroll.setWidgetResizable(True)
        self.problems_scroll = problems_scroll
        self.tabs.addTab(problems_scroll, "Problems")
        self.tabs.currentChanged.connect(lambda _i: self._line_selected(self.tabs.currentWidget()))
        layout.addWidget(self.tabs, 1)
        # The outcomes are sentences; the table shows their start, this the whole of the selected one.
        self.line_detail = QLabel()
        self.line_detail.setWordWrap(True)
        self.line_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.line_detail.setStyleSheet(MUTED_STYLE)
        self.line_detail.hide()
        layout.addWidget(self.line_detail)
        buttons = QHBoxLayout()
        self.back_button = QPushButton("Back to preview")
        self.back_button.clicked.connect(self.back_clicked.emit)
        self.outbox_button = QPushButton("Open Outbox")
        self.outbox_button.setToolTip("The receipts and invoice e-mails this run queued")
        self.outbox_button.clicked.connect(self.outbox_clicked.emit)
        buttons.addWidget(self.back_button)
        buttons.addStretch()
        buttons.addWidget(self.outbox_button)
        layout.addLayout(buttons)

    def _line_selected(self, table: QWidget) -> None:
        text = ""
        if isinstance(table, QTableView) and table in self.line_tables.values():
            rows = table.selectionModel().selectedRows()
            if len(rows) == 1:
                model = table.model()
                assert isinstance(model, _LineModel)
                ln = model.row_at(rows[0].row())
                retry = next_retry_text(ln)
                text = (f"{ln.client_name} — {ln.invoice_number}, {format_amount(ln.amount_cents, ln.currency)}: "
                        f"{ln.message}" + (f" Next retry: {retry}." if retry else ""))
        self.line_detail.setText(text)
        self.line_detail.setVisible(bool(text))

    def tab_title(self, key: str) -> str:
        return self.tabs.tabText(list(self.line_models).index(key))

    def show_report(self, report: BatchReport) -> None:
        self.report = report
        self.headline.setText(report.headline())
        kind = {BatchRunStatus.FINISHED: "ok", BatchRunStatus.RUNNING: "info", BatchRunStatus.CANCELLED: "warn"}.get(
            report.status, "error")
        status = RUN_STATUS_LABELS.get(report.status.value, report.status.value)
        when = f"{status} {local_time(report.finished_at)}" if report.finished_at else status
        mode = report.mode.label if report.mode else "no processor"
        show_notice(self.status, f"{when} — {mode}." + (f" {report.message}" if report.message else ""), kind)
        counts = report.counts()
        for index, (key, title, _tip) in enumerate(RESULT_TABS):
            self.line_models[key].set_rows(report.by_status(key))
            self.tabs.setTabText(index, f"{title} ({counts[key]:,})")
        self.left_model.set_rows(report.left_out)
        left_index = self.tabs.indexOf(self.left_table)
        self.tabs.setTabText(left_index, f"Left out ({len(report.left_out):,})")
        self.tabs.setTabVisible(left_index, bool(report.left_out))
        problems_index = self.tabs.indexOf(self.problems_scroll)
        self.tabs.setTabText(problems_index, f"Problems ({len(report.problems):,})")
        self.tabs.setTabVisible(problems_index, bool(report.problems))
        self.problems.setText("\n".join(f"• {p}" for p in report.problems))
        self.facts.setText(self._facts_html(report))
        # Open where attention is needed first: declines, then unknowns, else what went through.
        first = next((k for k in ("failed", "unknown") if counts[k]), "succeeded")
        self.tabs.setCurrentIndex(list(self.line_models).index(first))

    @staticmethod
    def _facts_html(report: BatchReport) -> str:
        rows: list[tuple[str, str]] = []
        if report.mail.not_configured:
            rows.append(("E-mail", NO_MAIL_HTML))
        else:
            queued = (f"{plural(report.mail.receipts, 'receipt')} and "
                      f"{plural(report.mail.invoices, 'invoice e-mail')} queued in the Outbox.")
            rows.append(("E-mail", queued))
        if report.setup_links_sent:
            names = ", ".join(report.setup_links_sent[:8]) + (" …" if len(report.setup_links_sent) > 8 else "")
            links = (f"A new payment setup link was e-mailed to {escape(names)} (their card or bank account was "
                     "declined for good).")
            rows.append(("Setup links", links))
        if report.not_started:
            rows.append(("Not started", f"{plural(report.not_started, 'charge')}: run again to charge them."))
        if report.backup_path:
            rows.append(("Backup", f"<span style='font-family: monospace'>{escape(report.backup_path)}</span>"))
        if report.resumed_run_id:
            rows.append(("Resumed", f"This run took over run {report.resumed_run_id}, which had stopped."))
        cells = "".join(f"<tr><td style='color:#5f6368; padding-right:10px'>{escape(k)}</td><td>{v}</td></tr>"
                        for k, v in rows)
        return f"<table cellspacing='0' cellpadding='1'>{cells}</table>"
