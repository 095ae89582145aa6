"""The client editor: every problem shown at its field, nothing saved half-way;
for an existing client, also its payment methods (ui/client_payments.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.clients import (
    ClientDetail,
    ClientDraft,
    ContactDraft,
    client_detail,
    create_client,
    update_client,
    validate_client,
)
from mspbill.collections.reminders import NOTE_MAX, set_reminders_paused
from mspbill.company import get_company
from mspbill.db.models import Client
from mspbill.money import COMMON_CURRENCIES, format_amount, format_decimal
from mspbill.validation import ValidationError
from ui.ops import Ops
from ui.widgets import ERROR_STYLE, FieldForm, error_label

if TYPE_CHECKING:
    from ui.client_payments import ClientPaymentsPanel

MUTED_STYLE = "color: #5f6368; font-size: 11px;"


def company_autopay_discount(session: Session) -> str:
    """The company's autopay incentive ("2"), the default a client's override replaces."""
    company = get_company(session)
    return format_decimal(company.autopay_discount_percent) if company is not None else "0"


def _with_note(editor: QWidget, unit: str, note: str) -> tuple[QWidget, QLabel]:
    """A short field with its unit beside it and a line under it saying what it does."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    editor.setMaximumWidth(140)
    row.addWidget(editor)
    if unit:
        row.addWidget(QLabel(unit))
    row.addStretch()
    layout.addLayout(row)
    label = QLabel(note)
    label.setWordWrap(True)
    label.setStyleSheet(MUTED_STYLE)
    layout.addWidget(label)
    return box, label

def reminder_pause(session: Session, client_id: int) -> tuple[bool, str]:
    """Whether the client's payment reminders are paused, and the note saying why."""
    client = session.get(Client, client_id)
    return (bool(client.reminders_paused), client.reminders_pause_note or "") if client else (False, "")


CONTACT_COLUMNS = ("Name", "Role", "E-mail", "Phone")


class ClientDialog(QDialog):
    """New client (client_id None) or edit an existing one."""

    saved = Signal(int)
    payment_methods_changed = Signal(int)  # saved, removed or made default from the Payment methods tab

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, client_id: int | None = None,
                 default_currency: str = "USD", default_terms: int = 30):
        super().__init__(parent)
        self.ops = ops
        self.client_id = client_id
        self.setWindowTitle("New client" if client_id is None else "Edit client")
        self.setMinimumWidth(640)
        self.payments: ClientPaymentsPanel | None = None
        self._build(default_currency, default_terms)
        ops.read(self, company_autopay_discount, self._company_discount)
        if client_id is not None:
            self._set_enabled(False)
            ops.read(self, lambda s: client_detail(s, client_id), self._load)
            ops.read(self, lambda s: reminder_pause(s, client_id), self._load_pause)
            self._add_payments_tab(client_id)

    # --- building ---
    def _build(self, currency: str, terms: int) -> None:
        tabs = QTabWidget()
        general = QWidget()
        self.form = FieldForm(QFormLayout(general))
        f = self.form
        self.name = f.add("legal_name", "Legal name", QLineEdit())
        self.name.setPlaceholderText("e.g. Cascade Family Dental, PC")
        self.emails = f.add("billing_emails", "Billing e-mails", QLineEdit())
        self.emails.setPlaceholderText("ap@client.com, owner@client.com")
        self.emails.setToolTip("Invoices go to the first address; the others receive copies.")
        self.phone = f.add("phone", "Phone", QLineEdit())
        self.address1 = f.add("address_line1", "Address", QLineEdit())
        self.address2 = f.add("address_line2", "", QLineEdit())
        self.city = f.add("city", "City", QLineEdit())
        self.region, self.postal = QLineEdit(), QLineEdit()
        self.region.setPlaceholderText("State / region")
        self.postal.setPlaceholderText("Postal code")
        self.form.add("region", "State / region", self.region)
        self.form.add("postal_code", "Postal code", self.postal)
        self.country = f.add("country", "Country", QLineEdit())
        tabs.addTab(general, "General")

        billing = QWidget()
        self.billing_form = FieldForm(QFormLayout(billing))
        b = self.billing_form
        self.currency = QComboBox()
        self.currency.setEditable(True)
        self.currency.addItems(COMMON_CURRENCIES)
        self.currency.setCurrentText(currency)
        b.add("currency", "Currency", self.currency)
        self.tax_rate = b.add("tax_rate", "Tax rate (%)", QLineEdit("0"))
        self.tax_rate.setToolTip("Percent applied to taxable lines; 0 for tax-exempt clients.")
        self.terms = b.add("payment_terms_days", "Payment terms (days)", QLineEdit(str(terms)))
        self.autopay = QCheckBox("Charge this client's saved card or bank account automatically")
        b.add("autopay", "Autopay", self.autopay)
        self.autopay_discount = QLineEdit()
        self.autopay_discount.setPlaceholderText("company's")
        discount_box, self.discount_note = _with_note(
            self.autopay_discount, "%", "Off each invoice while on autopay. Empty: the company's incentive.")
        b.add("autopay_discount", "Autopay incentive", discount_box)
        b.rows["autopay_discount"].editor = self.autopay_discount  # the red frame goes on the field
        self.autopay_cap = QLineEdit()
        self.autopay_cap.setPlaceholderText("no cap")
        cap_box, _note = _with_note(
            self.autopay_cap, "", "Charge automatically up to this invoice total; above that, the charge waits for "
                                  "your approval (Charge now). Empty: no cap.")
        b.add("autopay_cap", "Autopay cap", cap_box)
        b.rows["autopay_cap"].editor = self.autopay_cap
        pause_box = QWidget()
        pause_layout = QVBoxLayout(pause_box)
        pause_layout.setContentsMargins(0, 0, 0, 0)
        pause_layout.setSpacing(2)
        self.reminders_paused = QCheckBox("Pause payment reminders")
        self.reminders_paused.setToolTip("No payment reminder is queued for this client while paused; those "
                                         "waiting in the Outbox are withdrawn. Late fees are not affected.")
        self.pause_note = QLineEdit()
        self.pause_note.setMaxLength(NOTE_MAX)
        self.pause_note.setPlaceholderText("why, e.g. “Disputed invoice; call on 5 Dec”")
        self.pause_note.setEnabled(False)
        self.reminders_paused.toggled.connect(self.pause_note.setEnabled)
        pause_layout.addWidget(self.reminders_paused)
        pause_layout.addWidget(self.pause_note)
        b.add("note", "Reminders", pause_box)
        b.rows["note"].editor = self.pause_note
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Internal notes (not printed on invoices)")
        b.add("notes", "Notes", self.notes)
        tabs.addTab(billing, "Billing")

        contacts = QWidget()
        cl = QVBoxLayout(contacts)
        self.contacts = QTableWidget(0, len(CONTACT_COLUMNS))
        self.contacts.setHorizontalHeaderLabels(CONTACT_COLUMNS)
        self.contacts.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.contacts.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        cl.addWidget(self.contacts)
        buttons = QHBoxLayout()
        add, remove = QPushButton("Add contact"), QPushButton("Remove contact")
        for button in (add, remove):
            button.setAutoDefault(False)  # Enter saves the dialog, not "Add"
        add.clicked.connect(lambda: self._add_contact(ContactDraft()))
        remove.clicked.connect(self._remove_contact)
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch()
        cl.addLayout(buttons)
        self.contact_errors = QLabel()
        self.contact_errors.setStyleSheet(ERROR_STYLE)
        self.contact_errors.setWordWrap(True)
        self.contact_errors.hide()
        cl.addWidget(self.contact_errors)
        tabs.addTab(contacts, "Contacts")
        self.tabs = tabs

        # Read-only: the client's credit on account, shown when there is some.
        self.credit = QLabel()
        self.credit.setObjectName("clientCredit")
        self.credit.setWordWrap(True)
        self.credit.hide()
        self.summary = error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self.credit)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)
        # Check a field when the person leaves it, not only at Save.
        for editor in (self.name, self.emails, self.tax_rate, self.terms, self.autopay_discount, self.autopay_cap):
            editor.editingFinished.connect(self._check_touched)
        self._touched: set[str] = set()
        for field, editor in (("legal_name", self.name), ("billing_emails", self.emails),
                              ("tax_rate", self.tax_rate), ("payment_terms_days", self.terms),
                              ("autopay_discount", self.autopay_discount), ("autopay_cap", self.autopay_cap)):
            editor.editingFinished.connect(lambda f=field: self._touched.add(f))

    def _company_discount(self, percent: str) -> None:
        self.autopay_discount.setPlaceholderText(f"{percent} (company)")
        self.discount_note.setText(f"Off each invoice while on autopay. Empty: the company's incentive, {percent}%"
                                   " (Settings → Company).")

    def _add_payments_tab(self, client_id: int) -> None:
        # Imported here: only an existing client has payment methods.
        from ui.client_payments import ClientPaymentsPanel

        panel = self.payments = ClientPaymentsPanel(self.ops, client_id)
        panel.changed.connect(self.payment_methods_changed)
        self.tabs.addTab(panel, "Payment methods")
        # It asks the processor (and the keyring) only when opened.
        self.tabs.currentChanged.connect(
            lambda _i: panel.ensure_loaded() if self.tabs.currentWidget() is panel else None)

    def show_payment_methods(self) -> None:
        if self.payments is not None:
            self.tabs.setCurrentWidget(self.payments)

    def _add_contact(self, c: ContactDraft) -> None:
        r = self.contacts.rowCount()
        self.contacts.insertRow(r)
        for col, value in enumerate((c.name, c.role, c.email, c.phone)):
            self.contacts.setItem(r, col, QTableWidgetItem(value))

    def _remove_contact(self) -> None:
        rows = sorted({i.row() for i in self.contacts.selectedIndexes()}, reverse=True)
        for r in rows:
            self.contacts.removeRow(r)

    def _set_enabled(self, enabled: bool) -> None:
        self.tabs.setEnabled(enabled)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(enabled)

    def _load(self, detail: ClientDetail) -> None:
        d = detail.draft
        self.name.setText(d.legal_name)
        self.emails.setText(d.billing_emails)
        self.phone.setText(d.phone)
        self.address1.setText(d.address_line1)
        self.address2.setText(d.address_line2)
        self.city.setText(d.city)
        self.region.setText(d.region)
        self.postal.setText(d.postal_code)
        self.country.setText(d.country)
        self.currency.setCurrentText(d.currency)
        self.tax_rate.setText(d.tax_rate)
        self.terms.setText(d.payment_terms_days)
        self.autopay.setChecked(d.autopay)
        self.autopay_discount.setText(d.autopay_discount)
        self.autopay_cap.setText(d.autopay_cap)
        self.notes.setPlainText(d.notes)
        for c in d.contacts:
            self._add_contact(c)
        if detail.credit_cents:
            self.credit.setText(f"Client credit: {format_amount(detail.credit_cents, d.currency)}, "
                                "applied to the next invoice issued")
        self.credit.setVisible(bool(detail.credit_cents))
        if detail.status == "archived":
            self.setWindowTitle(f"Edit client (archived) — {d.legal_name}")
        self._set_enabled(True)

    def _load_pause(self, pause: tuple[bool, str]) -> None:
        paused, note = pause
        self._loaded_pause = (paused, note)
        self.reminders_paused.setChecked(paused)
        self.pause_note.setText(note)

    # --- reading and checking ---
    def draft(self) -> ClientDraft:
        def cell(r: int, c: int) -> str:
            item = self.contacts.item(r, c)
            return item.text() if item else ""

        return ClientDraft(
            legal_name=self.name.text(), billing_emails=self.emails.text(), phone=self.phone.text(),
            address_line1=self.address1.text(), address_line2=self.address2.text(), city=self.city.text(),
            region=self.region.text(), postal_code=self.postal.text(), country=self.country.text(),
            currency=self.currency.currentText(), tax_rate=self.tax_rate.text(),
            payment_terms_days=self.terms.text(), autopay=self.autopay.isChecked(),
            autopay_discount=self.autopay_discount.text(), autopay_cap=self.autopay_cap.text(),
            notes=self.notes.toPlainText(),
            contacts=[ContactDraft(cell(r, 0), cell(r, 1), cell(r, 2), cell(r, 3))
                      for r in range(self.contacts.rowCount())],
        )

    def _check_touched(self) -> None:
        _values, issues = validate_client(self.draft())
        by_field = ValidationError(issues).by_field() if issues else {}
        shown = {f: m for f, m in by_field.items() if f in self._touched}
        self.form.show_issues(shown)
        self.billing_form.show_issues(shown)

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        self.form.show_issues(by_field)
        self.billing_form.show_issues(by_field)
        known = set(self.form.rows) | set(self.billing_form.rows)
        contact_msgs = [m for k, v in by_field.items() if k.startswith("contacts") for m in v]
        leftover = [m for k, v in by_field.items()
                    if k not in known and not k.startswith("contacts") for m in v]
        self.contact_errors.setText("\n".join(contact_msgs))
        self.contact_errors.setVisible(bool(contact_msgs))
        count = sum(len(v) for v in by_field.values())
        if count:
            where = []
            if any(k in self.form.rows for k in by_field):
                where.append("General")
            if any(k in self.billing_form.rows for k in by_field):
                where.append("Billing")
            if contact_msgs:
                where.append("Contacts")
            self.summary.setText(
                f"Please correct {count} problem{'s' if count > 1 else ''} "
                f"({', '.join(where)}) before saving." + ("\n" + "\n".join(leftover) if leftover else ""))
            self.summary.show()
            for i in range(self.tabs.count()):
                if self.tabs.tabText(i) == where[0]:
                    self.tabs.setCurrentIndex(i)
                    break
            first = self.form.first_invalid() or self.billing_form.first_invalid()
            if first is not None:
                first.setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            self.summary.hide()

    # --- saving ---
    def save(self) -> None:
        draft = self.draft()
        _values, issues = validate_client(draft)
        if issues:
            self.show_issues(ValidationError(issues).by_field())
            return
        self.show_issues({})
        self._set_enabled(False)
        client_id = self.client_id
        paused, pause_note = self.reminders_paused.isChecked(), self.pause_note.text()
        # Only a change made in this window is written: a pause set meanwhile elsewhere (the
        # Collections screen, the command line, another workstation) is not undone by saving
        # the address, nor by saving before the pause was read.
        loaded = getattr(self, "_loaded_pause", None)
        changed = (paused, pause_note) != loaded if loaded is not None else (client_id is None and paused)

        def work(session: Session) -> int:
            if client_id is None:
                saved_id = create_client(session, draft).id
            else:
                saved_id = update_client(session, client_id, draft).id
            if changed:
                set_reminders_paused(session, saved_id, paused, pause_note)
            return saved_id

        self.ops.save_form(self, work, self._saved, show_issues=self.show_issues,
                           re_enable=lambda: self._set_enabled(True), label="Saving client")

    def _saved(self, client_id: int) -> None:
        self.client_id = client_id
        self.saved.emit(client_id)
        self.accept()
