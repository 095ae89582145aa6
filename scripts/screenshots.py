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
        month_end_shots(window, ops, out, wanted)  # last: the run issues the month and charges it
        window.close()
        ctx.close()
    app.quit()
    return 0

if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
