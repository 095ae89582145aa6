"""Take the README's screenshots of a demo office (Qt offscreen, no screen needed).

    python scripts/screenshots.py [OUT_DIR] [--only NAME,NAME]     (default docs/screenshots)

NAME is a file name without .png (for example settings-payments); without --only, all are taken.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

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


def main(*args: str) -> int:
    positional = [a for a in args if not a.startswith("--")]
    only: set[str] | None = None
    if "--only" in args:
        only = set(args[args.index("--only") + 1].split(","))
        positional = [a for a in positional if a != args[args.index("--only") + 1]]
    out = Path(positional[0] if positional else "docs/screenshots")
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
        for name in ("Dashboard", "Clients", "Agreements", "Invoices", "Payments", "Outbox", "Settings"):
            if wanted(name.lower()):
                window.go(name)
                settle(ops)
                grab(window, out / f"{name.lower()}.png")
        if wanted("settings-email"):
            window.go("Settings")
            window.settings.show_tab("E-mail")
            settle(ops)
            grab(window, out / "settings-email.png")
        if wanted("settings-payments"):
            window.go("Settings")
            window.settings.show_tab("Payments")
            settle(ops)
            grab(window, out / "settings-payments.png")
        window.settings.show_tab("Company")
        if wanted("invoice-pdf"):
            invoice_pdf_page(ctx, out / "invoice-pdf.png")
        if wanted("client-dialog"):
            window.go("Clients")
            settle(ops)
            window.clients.table.selectRow(6)
            dialog = window.clients.edit_selected()
            settle(ops)
            grab(dialog, out / "client-dialog.png")
            dialog.reject()
        if wanted("client-payment-methods"):
            window.go("Clients")
            settle(ops)
            window.clients.table.selectRow(client_with_methods(window))
            dialog = window.clients.edit_selected()
            settle(ops)
            dialog.resize(760, 440)
            dialog.show_payment_methods()
            settle(ops)
            grab(dialog, out / "client-payment-methods.png")
            dialog.reject()
        if wanted("agreement-dialog"):
            window.go("Agreements")
            settle(ops)
            window.agreements.table.selectRow(1)
            dialog = window.agreements.edit_selected()
            settle(ops)
            dialog.resize(900, 600)
            settle(ops)
            grab(dialog, out / "agreement-dialog.png")
            dialog.reject()
        if wanted("invoice-dialog"):
            window.go("Invoices")
            settle(ops)
            window.invoices.table.selectRow(0)
            detail = window.invoices.open_selected()
            settle(ops)
            if detail is not None:
                detail.resize(900, 700)
                settle(ops)
                grab(detail, out / "invoice-dialog.png")
                detail.reject()
        if wanted("charge-dialog"):
            from ui.charge_dialog import ChargeDialog

            invoice_id = chargeable_invoice(ctx)
            if invoice_id is not None:
                charge = ChargeDialog(ops, window, invoice_id)
                charge.show()
                settle(ops)
                grab(charge, out / "charge-dialog.png")
                charge.reject()
        if wanted("generate-dialog"):
            window.go("Invoices")
            settle(ops)
            generate = window.invoices.open_generate()
            generate.resize(1000, 640)
            settle(ops)
            grab(generate, out / "generate-dialog.png")
            generate.reject()
        window.close()
        ctx.close()
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
