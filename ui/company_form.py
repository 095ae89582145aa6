"""Settings → Company: who the MSP is, as printed on every invoice."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QLocale, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from mspbill.company import (
    PAPER_SIZES,
    PAYMENT_INSTRUCTIONS_MAX,
    CompanyDraft,
    CompanySnapshot,
    company_snapshot,
    format_invoice_number,
    normalise_logo,
    save_company,
    validate_company,
)
from mspbill.db.models import Client, Invoice, InvoiceKind
from mspbill.money import COMMON_CURRENCIES
from mspbill.validation import ValidationError
from ui.ops import Ops
from ui.widgets import ERROR_STYLE, FieldForm

_UNCHANGED = object()
# Where Letter is the usual paper (and an unknown locale, like the product's USD default); A4 elsewhere.
_LETTER_TERRITORIES = {QLocale.Country.AnyTerritory, QLocale.Country.UnitedStates, QLocale.Country.Canada, QLocale.Country.Mexico,
                       QLocale.Country.Philippines, QLocale.Country.Chile, QLocale.Country.Colombia}


def local_paper_size() -> str:
    """The paper this computer's locale suggests, for a company being set up."""
    return "letter" if QLocale.system().territory() in _LETTER_TERRITORIES else "a4"


def invoice_to_preview(session: Session) -> int | None:
    """The newest invoice, preferring a client who pays by invoice (it shows the payment instructions)."""
    return session.scalar(
        select(Invoice.id).join(Client, Client.id == Invoice.client_id)
        .where(Invoice.kind == InvoiceKind.INVOICE)
        .order_by(Client.autopay, Invoice.id.desc()).limit(1))


class _FormScroll(QScrollArea):
    """Scrolls the form when the window is too short for it (Settings on a laptop), yet asks
    for the whole form's size, so the first-run wizard (a fixed-size dialog) shows it all."""

    def __init__(self, form: QWidget):
        super().__init__()
        self.setWidget(form)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # The page's own background, not the white of a scroll area's base.
        form.setAutoFillBackground(False)
        self.viewport().setAutoFillBackground(False)

    def sizeHint(self) -> QSize:
        inner = self.widget().sizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        height = inner.height()
        screen = self.screen()
        if screen is not None:  # leave room for the wizard's heading and buttons on a small screen
            height = min(height, max(screen.availableGeometry().height() - 260, 300))
        return QSize(inner.width() + bar, height)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.widget().minimumSizeHint().width(), 160)


class CompanyForm(QWidget):
    """Used by Settings and by the first-run wizard."""

    saved = Signal()

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, save_label: str = "Save"):
        super().__init__(parent)
        self.ops = ops
        self._logo: bytes | None | object = _UNCHANGED
        self._current_logo: bytes | None = None
        form_widget = QWidget()
        form_widget.setMaximumWidth(760)
        self.form = FieldForm(QFormLayout(form_widget))
        f = self.form
        self.name = f.add("name", "Company name", QLineEdit())
        self.name.setPlaceholderText("e.g. Northwind Managed IT, LLC")
        self.address1 = f.add("address_line1", "Address", QLineEdit())
        self.address2 = f.add("address_line2", "", QLineEdit())
        self.city = f.add("city", "City", QLineEdit())
        self.region = f.add("region", "State / region", QLineEdit())
        self.postal = f.add("postal_code", "Postal code", QLineEdit())
        self.country = f.add("country", "Country", QLineEdit())
        self.email = f.add("email", "Billing e-mail", QLineEdit())
        self.phone = f.add("phone", "Phone", QLineEdit())
        self.tax_id = f.add("tax_id", "Tax ID", QLineEdit())
        self.currency = QComboBox()
        self.currency.setEditable(True)
        self.currency.addItems(COMMON_CURRENCIES)
        f.add("currency", "Currency", self.currency)
        self.pattern = f.add("invoice_number_pattern", "Invoice numbers", QLineEdit("INV-{n:06d}"))
        self.pattern.setToolTip("{n} is replaced by the number; {n:06d} pads it to six digits.")
        self.pattern_example = QLabel()
        self.pattern_example.setStyleSheet("color: #5f6368;")
        self.pattern.textChanged.connect(self._show_example)
        f.layout.addRow("", self.pattern_example)
        self.credit_pattern = f.add("credit_note_number_pattern", "Credit note numbers", QLineEdit("CN-{n:06d}"))
        self.credit_pattern.setToolTip("Credit notes are numbered on their own, gapless like invoices.")
        self.terms = f.add("default_payment_terms_days", "Default terms (days)", QLineEdit("30"))
        self.discount = f.add("autopay_discount_percent", "Autopay discount (%)", QLineEdit("0"))
        self.discount.setToolTip("Percent off generated invoices for clients on autopay, shown as its own line. "
                                 "0 for none.")
        self.paper_size = QComboBox()
        for key, label in PAPER_SIZES.items():
            self.paper_size.addItem(label, key)
        self.paper_size.setToolTip("The page size of invoices and statements: Letter in North America, "
                                   "A4 nearly everywhere else.")
        self.paper_size.setCurrentIndex(max(self.paper_size.findData(local_paper_size()), 0))
        f.add("paper_size", "Paper size", self.paper_size)
        self.payment_instructions = QPlainTextEdit()
        self.payment_instructions.setPlaceholderText(
            "How clients who pay by invoice can pay you, for example:\n"
            "Bank: First National · Routing 123456789 · Account 000123456\n"
            "Mail checks to: Northwind Managed IT, 1200 NW Naito Pkwy, Portland OR 97209")
        self.payment_instructions.setToolTip(
            f"Printed on the invoices of clients who pay by invoice (not autopay). At most 8 lines and "
            f"{PAYMENT_INSTRUCTIONS_MAX} characters.")
        self.payment_instructions.setTabChangesFocus(True)
        line_height = self.payment_instructions.fontMetrics().lineSpacing()
        self.payment_instructions.setFixedHeight(line_height * 4 + 14)  # four lines show; it scrolls to eight
        f.add("payment_instructions", "Payment instructions", self.payment_instructions)

        logo_row = QWidget()
        lr = QHBoxLayout(logo_row)
        lr.setContentsMargins(0, 0, 0, 0)
        self.logo_preview = QLabel("No logo")
        self.logo_preview.setFixedSize(180, 72)
        self.logo_preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.logo_preview.setStyleSheet("border: 1px dashed #b0b4ba; color: #8a8f98;")
        choose, remove = QPushButton("Choose…"), QPushButton("Remove")
        choose.clicked.connect(self.choose_logo)
        remove.clicked.connect(self.remove_logo)
        lr.addWidget(self.logo_preview)
        lr.addWidget(choose)
        lr.addWidget(remove)
        lr.addStretch()
        f.add("logo", "Logo", logo_row)

        self.summary = QLabel()
        self.summary.setStyleSheet(ERROR_STYLE)
        self.summary.hide()
        self.status = QLabel()
        self.save_button = QPushButton(save_label)
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        # Shown once there is an invoice to show (Settings, not the first-run wizard).
        self.preview_button = QPushButton("Preview an invoice")
        self.preview_button.setToolTip("Your latest invoice to a client who pays by invoice, printed with the "
                                       "settings as saved: save first to see a change.")
        self.preview_button.clicked.connect(lambda: self.preview_invoice())
        self.preview_button.hide()
        self._preview_invoice_id: int | None = None
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.preview_button)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        self.scroll = _FormScroll(form_widget)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.summary)
        layout.addLayout(bottom)
        self._show_example()

    def _show_example(self) -> None:
        try:
            example = f"{format_invoice_number(self.pattern.text(), 1)}, {format_invoice_number(self.pattern.text(), 2)}, …"
        except (ValueError, KeyError, IndexError):
            example = "—"
        self.pattern_example.setText(f"Numbers will look like: {example}")

    def load(self) -> None:
        self.setEnabled(False)
        self.ops.read(self, company_snapshot, self._loaded)
        self.ops.read(self, invoice_to_preview, self._preview_found)

    def _preview_found(self, invoice_id: int | None) -> None:
        self._preview_invoice_id = invoice_id
        self.preview_button.setVisible(invoice_id is not None)

    def preview_invoice(self) -> QWidget | None:
        if self._preview_invoice_id is None:
            return None
        from ui.invoices_screen import preview_invoice

        return preview_invoice(self.ops, self, self._preview_invoice_id)

    def _loaded(self, snap: CompanySnapshot | None) -> None:
        self.setEnabled(True)
        if snap is None:
            return
        d = snap.draft
        for editor, value in ((self.name, d.name), (self.address1, d.address_line1),
                              (self.address2, d.address_line2), (self.city, d.city), (self.region, d.region),
                              (self.postal, d.postal_code), (self.country, d.country), (self.email, d.email),
                              (self.phone, d.phone), (self.tax_id, d.tax_id),
                              (self.pattern, d.invoice_number_pattern),
                              (self.credit_pattern, d.credit_note_number_pattern),
                              (self.terms, d.default_payment_terms_days),
                              (self.discount, d.autopay_discount_percent)):
            editor.setText(value)
        self.currency.setCurrentText(d.currency)
        index = self.paper_size.findData(d.paper_size)
        self.paper_size.setCurrentIndex(max(index, 0))
        self.payment_instructions.setPlainText(d.payment_instructions)
        self._current_logo = snap.logo_png
        self._logo = _UNCHANGED
        self._show_logo(snap.logo_png)

    def _show_logo(self, png: bytes | None) -> None:
        if not png:
            self.logo_preview.setPixmap(QPixmap())
            self.logo_preview.setText("No logo")
            return
        pix = QPixmap()
        pix.loadFromData(png)
        self.logo_preview.setPixmap(pix.scaled(self.logo_preview.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))

    def choose_logo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a logo", str(Path.home()),
                                              "Images (*.png *.jpg *.jpeg *.gif *.bmp *.webp)")
        if path:
            self.set_logo_file(Path(path))

    def set_logo_file(self, path: Path) -> None:
        try:
            png = normalise_logo(path.read_bytes())
        except ValidationError as exc:
            self._show_logo_error(exc.by_field().get("logo") or [str(exc)])
            return
        except OSError as exc:
            self._show_logo_error([f"The file cannot be read: {exc.strerror}."])
            return
        self.form.rows["logo"].set_error(None)
        self._logo = png
        self._show_logo(png)

    def _show_logo_error(self, messages: list[str]) -> None:
        """The logo is the last row: its message lands below the fold unless the form scrolls to it.
        Only the logo's message changes; what else is wrong with the form stays marked."""
        row = self.form.rows["logo"]
        row.set_error(messages)
        # Once the message has its place in the layout: the logo row, message included, in view.
        QTimer.singleShot(0, self, lambda: self.scroll.ensureWidgetVisible(row, 0, 16))

    def remove_logo(self) -> None:
        self._logo = None
        self._show_logo(None)

    def draft(self) -> CompanyDraft:
        return CompanyDraft(
            name=self.name.text(), address_line1=self.address1.text(), address_line2=self.address2.text(),
            city=self.city.text(), region=self.region.text(), postal_code=self.postal.text(),
            country=self.country.text(), email=self.email.text(), phone=self.phone.text(),
            tax_id=self.tax_id.text(), currency=self.currency.currentText(),
            invoice_number_pattern=self.pattern.text(), default_payment_terms_days=self.terms.text(),
            credit_note_number_pattern=self.credit_pattern.text(), autopay_discount_percent=self.discount.text(),
            paper_size=self.paper_size.currentData() or "", payment_instructions=self.payment_instructions.toPlainText())

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        self.form.show_issues(by_field)
        count = sum(len(v) for v in by_field.values())
        self.summary.setText(f"Please correct {count} problem{'s' if count != 1 else ''} before saving.")
        self.summary.setVisible(bool(count))
        first = self.form.first_invalid()
        if first is not None:
            # The form scrolls: bring the first problem and its message into view, once the
            # messages just shown have their place in the layout.
            row = first.parentWidget() or first
            QTimer.singleShot(0, self, lambda: self.scroll.ensureWidgetVisible(row, 0, 16))

    def save(self) -> None:
        draft = self.draft()
        _values, issues = validate_company(draft)
        if issues:
            self.show_issues(ValidationError(issues).by_field())
            return
        self.show_issues({})
        logo = self._logo

        def work(session: Session) -> None:
            if logo is _UNCHANGED:
                save_company(session, draft)
            else:
                save_company(session, draft, logo_png=logo)

        self.save_button.setEnabled(False)
        self.ops.save_form(self, work, lambda _r: self._saved(), show_issues=self.show_issues,
                           re_enable=lambda: self.save_button.setEnabled(True), label="Saving company")

    def _saved(self) -> None:
        self.save_button.setEnabled(True)
        self.status.setText("Saved.")
        self.saved.emit()
