"""First run: explore a demo office, or set up the company."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mspbill.demo import (
    DEFAULT_CLIENTS,
    DemoSummary,
    create_demo_office,
    demo_payment_methods,
)
from mspbill.payments.processor import sandbox_gateway
from ui.company_form import CompanyForm
from ui.ops import OpContext, Ops
from ui.widgets import heading


class FirstRunDialog(QDialog):
    def __init__(self, ops: Ops, parent: QWidget | None = None, data_dir: Path | None = None):
        super().__init__(parent)
        self.ops = ops
        # Where the demo's sandbox processor keeps its ledger.
        self.data_dir = data_dir
        self.setWindowTitle("Welcome to mspbill")
        self.setMinimumWidth(620)
        self.setMaximumWidth(900)

        welcome = QWidget()
        welcome.setMinimumWidth(600)
        wl = QVBoxLayout(welcome)
        wl.addWidget(heading("Welcome to mspbill", 22))
        intro = QLabel("Keep your clients, recurring agreements and invoices in one place, and let "
                       "autopay collect at month end.\n\nHow would you like to start?")
        intro.setWordWrap(True)
        wl.addWidget(intro)
        buttons = QHBoxLayout()
        self.demo_button = QPushButton("Explore a demo office")
        self.demo_button.setToolTip(f"{DEFAULT_CLIENTS} sample clients with their agreements. "
                                    "No money moves; you can start your own office in another data folder.")
        self.setup_button = QPushButton("Set up my company")
        self.setup_button.setDefault(True)
        for b in (self.demo_button, self.setup_button):
            b.setMinimumHeight(48)
            buttons.addWidget(b)
        wl.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.hide()
        wl.addWidget(self.progress)
        self.demo_button.clicked.connect(self.create_demo)
        self.setup_button.clicked.connect(lambda: self.show_page(1))

        setup = QWidget()
        setup.setMinimumWidth(600)
        sl = QVBoxLayout(setup)
        sl.addWidget(heading("Your company"))
        note = QLabel("This is printed on every invoice. You can change it later in Settings.")
        note.setWordWrap(True)
        sl.addWidget(note)
        self.company = CompanyForm(ops, save_label="Save and continue")
        self.company.saved.connect(self.accept)
        sl.addWidget(self.company)
        back = QPushButton("Back")
        back.clicked.connect(lambda: self.show_page(0))
        sl.addWidget(back, alignment=Qt.AlignmentFlag.AlignLeft)

        # Two pages shown one at a time (not a QStackedWidget, which is as tall as
        # its tallest page: the welcome would be as tall as the company form).
        self.pages = [welcome, setup]
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QVBoxLayout.SizeConstraint.SetFixedSize)
        for page in self.pages:
            layout.addWidget(page)
        self.show_page(0)

    def show_page(self, index: int) -> None:
        for i, page in enumerate(self.pages):
            page.setVisible(i == index)

    def create_demo(self) -> None:
        self.demo_button.setEnabled(False)
        self.setup_button.setEnabled(False)
        self.progress.show()

        data_dir = self.data_dir

        def work(ctx: OpContext) -> DemoSummary:
            with ctx.db.write_session() as session, session.begin():
                summary = create_demo_office(session)
            if data_dir is not None:
                # Cards and bank accounts on file for the autopay clients, in the sandbox processor.
                demo_payment_methods(ctx.db, sandbox_gateway(data_dir))
            return summary

        def failed(_exc: BaseException) -> bool:
            self.demo_button.setEnabled(True)
            self.setup_button.setEnabled(True)
            self.progress.hide()
            return False

        self.ops.run(self, work, on_success=lambda _s: self.accept(), on_failure=failed,
                     label="Creating demo office")
