"""Take the README's screenshots of a demo office (Qt offscreen, no screen needed).

    python scripts/screenshots.py [OUT_DIR]     (default docs/screenshots)
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


def main(out_dir: str = "docs/screenshots") -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = make_application(["mspbill"])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context(tmp)
        with ctx.db.write_session() as session, session.begin():
            create_demo_office(session)
        ops = Ops(ctx.db)
        window = MainWindow(ctx, ops)
        window.resize(1280, 800)
        window.show()
        for name in ("Dashboard", "Clients", "Agreements", "Invoices", "Payments", "Outbox", "Settings"):
            window.go(name)
            settle(ops)
            grab(window, out / f"{name.lower()}.png")
        window.settings.show_tab("E-mail")
        settle(ops)
        grab(window, out / "settings-email.png")
        window.settings.show_tab("Company")
        invoice_pdf_page(ctx, out / "invoice-pdf.png")
        window.go("Clients")
        settle(ops)
        window.clients.table.selectRow(6)
        dialog = window.clients.edit_selected()
        settle(ops)
        grab(dialog, out / "client-dialog.png")
        dialog.reject()
        window.go("Agreements")
        settle(ops)
        window.agreements.table.selectRow(1)
        dialog = window.agreements.edit_selected()
        settle(ops)
        dialog.resize(900, 600)
        settle(ops)
        grab(dialog, out / "agreement-dialog.png")
        dialog.reject()
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
