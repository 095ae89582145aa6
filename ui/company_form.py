"""Settings → Company: who the MSP is, as printed on every invoice."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.company import (
    CompanyDraft,
    CompanySnapshot,
    company_snapshot,
    format_invoice_number,
    normalise_logo,
    save_company,
    validate_company,
)
from mspbill.money import COMMON_CURRENCIES
from mspbill.validation import ValidationError
from ui.ops import Ops
from ui.widgets import ERROR_STYLE, FieldForm

_UNCHANGED = object()


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
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(form_widget)
        layout.addWidget(self.summary)
        layout.addLayout(bottom)
        layout.addStretch()
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
            self.form.show_issues(exc.by_field())
            return
        except OSError as exc:
            self.form.show_issues({"logo": [f"The file cannot be read: {exc.strerror}."]})
            return
        self.form.show_issues({})
        self._logo = png
        self._show_logo(png)

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
            credit_note_number_pattern=self.credit_pattern.text(), autopay_discount_percent=self.discount.text())

    def show_issues(self, by_field: dict[str, list[str]]) -> None:
        self.form.show_issues(by_field)
        count = sum(len(v) for v in by_field.values())
        self.summary.setText(f"Please correct {count} problem{'s' if count != 1 else ''} before saving.")
        self.summary.setVisible(bool(count))

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
