"""Take the README's screenshots of a demo office (Qt offscreen, no screen needed).

    python scripts/screenshots.py [OUT_DIR] [--only NAME,NAME]     (default docs/screenshots)

NAME is a file name without .png (for example settings-payments); without --only, all are taken.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# "Who" in the audit trail (the login name): the demo office's bookkeeper, whoever takes the shots.
os.environ["LOGNAME"] = "jordan"

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QDialog, QWidget  # noqa: E402

from mspbill.context import open_context  # noqa: E402
from mspbill.demo import create_demo_office  # noqa: E402
from ui.app import make_application  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.ops import Ops  # noqa: E402


def settle(ops: Ops, ms: int = 300) -> None:
    loop = QEventLoop()
    for _ in range(100):
        QTimer.singleShot(ms if ops.active == 0 else 50, loop.quit)
        loop.exec()
        if ops.active == 0:
            break


def wait_until(condition: Callable[[], object], timeout_s: float = 120) -> None:
    import time

    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def grab(widget: QWidget, path: Path) -> None:
    widget.grab().save(str(path))
    print(f"wrote {path}")


def invoice_pdf_page(ctx, path: Path) -> None:  # type: ignore[no-untyped-def]
    """The first page of a part-paid demo invoice's PDF, as the client sees it."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSize
    from PySide6.QtPdf import QPdfDocument
    from sqlalchemy import select

    from mspbill.db.models import Invoice, InvoiceStatus
    from mspbill.pdf.invoice import invoice_pdf

    with ctx.db.session() as session:
        invoice_id = session.scalar(select(Invoice.id).where(Invoice.status == InvoiceStatus.OPEN)
                                    .order_by(Invoice.total_cents.desc()))
        data = invoice_pdf(session, invoice_id).data
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    document = QPdfDocument()
    document.load(buffer)
    points = document.pagePointSize(0)
    width = 900
    image = document.render(0, QSize(width, round(width * points.height() / points.width())))
    image.save(str(path))
    print(f"wrote {path}")


def chargeable_invoice(ctx) -> int | None:  # type: ignore[no-untyped-def]
    """The largest open invoice that Charge now could charge as it is (a card on file, nothing in the way)."""
    from sqlalchemy import select

    from mspbill.db.models import Invoice, InvoiceStatus
    from mspbill.payments.charges import plan_charge
    from mspbill.payments.gateway import ProcessorMode

    with ctx.db.session() as session:
        ids = session.scalars(select(Invoice.id).where(Invoice.status == InvoiceStatus.OPEN)
                              .order_by(Invoice.total_cents.desc()))
        for invoice_id in ids:
            if not plan_charge(session, invoice_id, ProcessorMode.SANDBOX).problems:
                return invoice_id
    return None


def client_with_methods(window: MainWindow) -> int:
    """The row of the first client on autopay whose methods the demo saved (the list is sorted by name)."""
    model = window.clients.model
    for row in range(model.rowCount()):
        if model.row_at(row).autopay and window.clients.method_labels and \
                model.row_at(row).id in window.clients.method_labels:
            return row
    return 0


def dialog_shot(window: MainWindow, ops: Ops, path: Path, open_dialog: Callable[[], Any], *,
                screen: str | None = None, row: int | Callable[[MainWindow], int] | None = None,
                size: tuple[int, int] | None = None, prepare: Callable[[Any], object] | None = None) -> None:
    """Go to `screen` and select `row` of its table, open the dialog (a QDialog, or None: no shot),
    size it, let it load, grab it, close it."""
    if screen is not None:
        window.go(screen)
        settle(ops)
        if row is not None:
            getattr(window, screen.lower()).table.selectRow(row if isinstance(row, int) else row(window))
    dialog = open_dialog()
    if dialog is None:
        return
    settle(ops)
    if size is not None:
        dialog.resize(*size)
    if prepare is not None:
        prepare(dialog)
    settle(ops)
    grab(dialog, path)
    dialog.reject()


MONTH_END_SHOTS = ("month-end", "month-end-confirm", "month-end-progress", "month-end-result")


def month_end_shots(window: MainWindow, ops: Ops, out: Path, wanted: Callable[[str], bool]) -> None:
    """The preview, the confirmation, a run under way and its account.  Last: the run issues and charges."""
    if not any(wanted(name) for name in MONTH_END_SHOTS):
        return
    screen = window.month_end
    window.go("Month-end")
    settle(ops)
    if wanted("month-end"):
        grab(window, out / "month-end.png")
    if not any(wanted(name) for name in MONTH_END_SHOTS[1:]):
        return
    screen.ask_to_run()
    wait_until(lambda: screen.confirm_dialog is not None)
    settle(ops)
    dialog = screen.confirm_dialog
    assert dialog is not None
    if wanted("month-end-confirm"):
        grab(dialog, out / "month-end-confirm.png")
    # Slow calls to the sandbox (read when the run opens it), so that the run is caught under way.
    os.environ["MSPBILL_SANDBOX_LATENCY_MS"] = "400"
    dialog.go.click()

    def a_third_charged() -> bool:
        job = screen.job
        latest = job.box.latest() if job is not None else None
        return job is None or (latest is not None and latest.stage == "charging" and latest.done * 3 >= latest.total)

    wait_until(a_third_charged)
    wait_until(lambda: False, 0.15)  # the progress signal reaches the panel
    if wanted("month-end-progress"):
        grab(window, out / "month-end-progress.png")
    wait_until(lambda: screen.job is None)
    settle(ops)
    if wanted("month-end-result"):
        grab(window, out / "month-end-result.png")


# A small export from a PSA (ConnectWise-style headers): one company is already a demo client (so the
# preview shows a Skip), one name is not ASCII, a street address runs over two lines.
PSA_CLIENTS_CSV = """\
Company ID,Company Name,Company Type,Billing Email,Phone,Primary Contact,Contact Email,Address Line 1,\
Address Line 2,City,State,Zip,Country,Tax Rate,Terms
CW-1042,Ironwood Architects,Client,ap@ironwoodarchitects.example,(503) 555-2231,Dana Whitfield,\
dana@ironwoodarchitects.example,812 NW 23rd Ave,,Portland,OR,97210,United States,0,Net 30
CW-1077,Bridgeport Family Medicine,Client,billing@bridgeportfm.example,(503) 555-0148,Grace Liu,\
grace.liu@bridgeportfm.example,4410 SW Macadam Ave,Suite 200,Portland,OR,97239,United States,0,Net 30
CW-1081,Tualatin Valley Auto Glass,Client,office@tvautoglass.example,(503) 555-7720,Marco Ruiz,\
marco@tvautoglass.example,18950 SW Boones Ferry Rd,,Tualatin,OR,97062,United States,0,Net 15
CW-1090,Crestline Property Group,Client,"ap@crestlinepg.example; owners@crestlinepg.example",(360) 555-3390,\
Helen Park,helen@crestlinepg.example,"1200 Main St
Floor 3",,Vancouver,WA,98660,United States,8.25,Net 30
CW-1093,Sørensen Nordic Imports,Client,regnskab@sorensen-nordic.example,(503) 555-4412,Mette Sørensen,\
mette@sorensen-nordic.example,2231 NW Front Ave,,Portland,OR,97209,United States,0,Net 45
CW-1102,Willow Creek Dental Studio,Client,frontdesk@willowcreekdental.example,(971) 555-8821,Amy Tran,\
amy.tran@willowcreekdental.example,600 Kruse Way,Suite 110,Lake Oswego,OR,97035,United States,0,Net 30
CW-1108,Basalt Ridge Surveying,Client,invoices@basaltridge.example,(503) 555-6604,Tom Becker,\
tom@basaltridge.example,355 Commercial St SE,,Salem,OR,97301,United States,0,Due on receipt
CW-1115,Copperleaf Event Rentals,Client,accounts@copperleaf.example,(503) 555-9183,Nadia Haddad,\
nadia@copperleaf.example,7420 SE Hawthorne Blvd,,Portland,OR,97215,United States,0,Net 30
"""


def import_preview(window: MainWindow, ops: Ops, csv_file: Path) -> QDialog:
    """Clients → Import… with the PSA file read, on the preview, the row that is skipped selected."""
    csv_file.write_text(PSA_CLIENTS_CSV, encoding="utf-8")
    dialog = window.clients.import_csv()
    dialog.load_file(csv_file)
    wait_until(lambda: not dialog.busy)
    dialog._next()   # 2. the columns, as guessed from the headers
    dialog._next()   # 3. the preview
    wait_until(lambda: dialog.plan is not None)
    settle(ops)
    row = dialog.preview_model.find_row(lambda r: r.action == "skip")
    if row >= 0:
        dialog.preview_table.selectRow(row)
    return dialog


def make_audited_changes(ctx) -> None:  # type: ignore[no-untyped-def]
    """What the audit trail shot shows: a client edited, a payment recorded, an invoice voided
    (each in its own transaction, as a person would make them)."""
    import dataclasses

    from sqlalchemy import select

    from mspbill.clients import client_draft, update_client
    from mspbill.db.models import Client, Invoice, InvoiceKind, InvoiceStatus
    from mspbill.invoicing import void_invoice
    from mspbill.money import from_minor
    from mspbill.payments.manual import record_payment

    with ctx.db.write_session() as session, session.begin():
        client = session.scalars(select(Client).where(Client.legal_name == "Maple Street Bakery")).one()
        draft = client_draft(client)
        update_client(session, client.id, dataclasses.replace(
            draft, billing_emails=draft.billing_emails.split(",")[0] + ", books@maplestreetbakery.example",
            payment_terms_days="15"))
    untouched = (select(Invoice).where(Invoice.status == InvoiceStatus.OPEN, Invoice.kind == InvoiceKind.INVOICE,
                                       Invoice.paid_cents == 0, Invoice.credited_cents == 0,
                                       Invoice.credit_applied_cents == 0).order_by(Invoice.number))
    with ctx.db.write_session() as session, session.begin():
        invoice = session.scalars(untouched).first()
        amount = str(from_minor(invoice.balance_cents, invoice.currency))
        record_payment(session, invoice.id, amount, "check", reference="Check 10482")
    with ctx.db.write_session() as session, session.begin():
        invoice = session.scalars(untouched.offset(1)).first()
        void_invoice(session, invoice.id, "Billed twice: the client's agreement moved to the new location")


def audit_entry_with_changes(window: MainWindow) -> None:
    """Select the newest entry whose details list changed fields (the client edited above)."""
    panel = window.reports.audit
    row = panel.model.find_row(lambda r: r.action == "client.updated")
    panel.table.selectRow(max(row, 0))


def make_backups(ctx) -> None:  # type: ignore[no-untyped-def]
    """Backups as an office has them: beside the daily one the window took at start-up, the one
    before this month's month-end run and one made by hand just now."""
    import datetime as dt

    from mspbill.backups import backup_now

    now = dt.datetime.now().replace(microsecond=0)
    month_start = now.date().replace(day=1)
    run_at = dt.datetime.combine(month_start, dt.time(7, 30))
    for reason, at in ((f"before-batch-{month_start:%Y-%m}", run_at), ("manual", now)):
        backup_now(ctx.paths, ctx.db.url, reason=reason, now=at)


def show_usual_data_folder(form: QWidget, data_dir: Path) -> None:
    """Settings → Data names the demo's temporary folder: show where the data lives on Linux instead."""
    from PySide6.QtWidgets import QLabel

    for label in form.findChildren(QLabel):
        if label.text().startswith(str(data_dir)):
            label.setText("~/.local/share/mspbill" + label.text()[len(str(data_dir)):])


def shown(dialog: QDialog) -> QDialog:
    dialog.show()
    return dialog


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Take the README's screenshots of a demo office.")
    parser.add_argument("out_dir", nargs="?", default="docs/screenshots", type=Path,
                        help="where the .png files go (default: docs/screenshots)")
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=None, metavar="NAME,NAME",
                        help="take only these (file names without .png, for example settings-payments)")
    return parser.parse_args(args)


def main(*args: str) -> int:
    options = parse_args(list(args))
    only: set[str] | None = options.only
    out: Path = options.out_dir
    out.mkdir(parents=True, exist_ok=True)

    def wanted(name: str) -> bool:
        return only is None or name in only

    app = make_application(["mspbill"])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context(tmp)
        with ctx.db.write_session() as session, session.begin():
            create_demo_office(session)
        # As the first-run wizard does: the demo's autopay clients have sandbox cards on file.
        from mspbill.demo import demo_payment_methods
        from mspbill.payments.processor import sandbox_gateway

        demo_payment_methods(ctx.db, sandbox_gateway(ctx.paths.data_dir))
        ops = Ops(ctx.db)
        window = MainWindow(ctx, ops)
        window.resize(1280, 800)
        window.show()
        for name in ("Dashboard", "Clients", "Agreements", "Invoices", "Payments", "Outbox", "Collections",
                     "Reports", "Settings"):
            if wanted(name.lower()):
                window.go(name)
                settle(ops)
                if name == "Reports":
                    # With a client picked, so the drill-down to its open invoices shows.
                    window.reports.aging.table.selectRow(1)
                    settle(ops)
                grab(window, out / f"{name.lower()}.png")
        for tab in ("E-mail", "Payments", "Collections"):
            name = f"settings-{tab.lower().replace('-', '')}"
            if wanted(name):
                window.go("Settings")
                window.settings.show_tab(tab)
                settle(ops)
                grab(window, out / f"{name}.png")
        window.settings.show_tab("Company")
        if wanted("invoice-pdf"):
            invoice_pdf_page(ctx, out / "invoice-pdf.png")
        if wanted("client-dialog"):
            dialog_shot(window, ops, out / "client-dialog.png", window.clients.edit_selected, screen="Clients", row=6)
        if wanted("client-payment-methods"):
            dialog_shot(window, ops, out / "client-payment-methods.png", window.clients.edit_selected,
                        screen="Clients", row=client_with_methods, size=(760, 440),
                        prepare=lambda dialog: dialog.show_payment_methods())
        if wanted("agreement-dialog"):
            dialog_shot(window, ops, out / "agreement-dialog.png", window.agreements.edit_selected,
                        screen="Agreements", row=1, size=(900, 600))
        if wanted("invoice-dialog"):
            dialog_shot(window, ops, out / "invoice-dialog.png", window.invoices.open_selected,
                        screen="Invoices", row=0, size=(900, 700))
        if wanted("charge-dialog"):
            from ui.charge_dialog import ChargeDialog

            invoice_id = chargeable_invoice(ctx)
            if invoice_id is not None:
                dialog_shot(window, ops, out / "charge-dialog.png",
                            lambda: shown(ChargeDialog(ops, window, invoice_id)))
        if wanted("generate-dialog"):
            dialog_shot(window, ops, out / "generate-dialog.png", window.invoices.open_generate,
                        screen="Invoices", size=(1000, 640))
        if wanted("import"):
            dialog_shot(window, ops, out / "import.png",
                        lambda: import_preview(window, ops, Path(tmp) / "psa-companies.csv"),
                        screen="Clients", size=(1000, 640))
        if wanted("exports"):
            window.go("Reports")
            window.reports.tabs.setCurrentWidget(window.reports.exports)
            window.reports.exports.set_format("qbo")
            window.reports.exports.refresh()   # last month, the range it starts with
            settle(ops)
            grab(window, out / "exports.png")
        if wanted("audit"):
            make_audited_changes(ctx)
            window.go("Reports")
            window.reports.tabs.setCurrentWidget(window.reports.audit)
            window.reports.audit.reload()
            settle(ops)
            audit_entry_with_changes(window)
            settle(ops)
            grab(window, out / "audit.png")
        window.reports.tabs.setCurrentWidget(window.reports.aging)
        if wanted("settings-data"):
            make_backups(ctx)
            window.go("Settings")
            window.settings.show_tab("Data")
            window.settings.data.load()
            show_usual_data_folder(window.settings.data, ctx.paths.data_dir)
            settle(ops)
            # The backup before the month-end run picked, as for a restore (Restore… enabled).
            data = window.settings.data
            data.table.selectRow(max(0, data.model.find_row(lambda f: f.reason.startswith("before-batch-"))))
            settle(ops)
            grab(window, out / "settings-data.png")
            window.settings.show_tab("Company")
        month_end_shots(window, ops, out, wanted)  # last: the run issues the month and charges it
        window.close()
        ctx.close()
    app.quit()
    return 0

if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
