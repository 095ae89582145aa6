"""Invoices and statements as PDFs in the desktop app: the viewer, printing, saving,
the company's paper and payment instructions, client statements.

Printing goes to a PDF file through a real QPrinter (offscreen) and is read back
with pypdf; the two modal questions (print dialog, save dialog) are replaced by
monkeypatching `ui.pdf_viewer.ask_printer` / `ask_save_path`.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pypdf
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QPageSize
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtWidgets import QMessageBox

from mspbill.clients import ClientDraft, create_client
from mspbill.company import CompanyDraft, company_snapshot, save_company
from mspbill.invoicing import (
    ItemDraft,
    OneTimeDraft,
    create_one_time_invoice,
    issue_invoices,
)
from mspbill.payments.manual import record_payment
from mspbill.pdf.invoice import invoice_pdf
from mspbill.pdf.rendered import RenderedPdf
from mspbill.settings import Settings
from tests.gui.conftest import wait_idle
from ui import pdf_viewer
from ui.clients_screen import ClientsScreen
from ui.company_form import CompanyForm
from ui.invoice_dialog import InvoiceDialog
from ui.invoices_screen import InvoicesScreen, invoice_render
from ui.pdf_viewer import (
    SAVE_FOLDER_KEY,
    PdfViewer,
    PrintError,
    pages_to_print,
    print_pdf,
    write_atomically,
)
from ui.statement_dialog import StatementDialog, preset_range

SHOTS = Path("/tmp/shots")
TODAY = dt.date.today()
LONG_LINES = 70  # enough lines for an invoice of several pages


@dataclass(frozen=True)
class Office:
    client: int        # Harbor Dental, pays by invoice
    long_invoice: int  # issued, several pages
    draft: int         # one line, a draft


@pytest.fixture
def office(app_ctx) -> Office:
    with app_ctx.db.write_session() as s, s.begin():
        save_company(s, CompanyDraft(name="Acme IT", payment_instructions="Mail checks to: Acme IT, PO Box 1"))
        client = create_client(s, ClientDraft(legal_name="Harbor Dental", billing_emails="ap@harbor.example")).id
        lines = [ItemDraft(f"Workstation support, ticket #{1000 + i}", "1", "25.00") for i in range(LONG_LINES)]
        long_invoice = create_one_time_invoice(s, OneTimeDraft(client, "Project work", lines=lines)).id
        issue_invoices(s, [long_invoice], issue_date=TODAY - dt.timedelta(days=20))
        record_payment(s, long_invoice, "100", "check", reference="881", received_on=TODAY - dt.timedelta(days=5))
        draft = create_one_time_invoice(s, OneTimeDraft(client, "Printer toner", lines=[
            ItemDraft("Toner cartridge", "2", "42.00")])).id
    return Office(client, long_invoice, draft)


@pytest.fixture
def long_pdf(app_ctx, office) -> RenderedPdf:
    with app_ctx.db.session() as s:
        pdf = invoice_pdf(s, office.long_invoice)
    assert pdf.pages >= 2, "the fixture should make a multi-page invoice"
    return pdf


def _file_printer(path: Path, dpi: int = 72) -> QPrinter:
    # Low resolution: the pages are the point here, not the sharpness (a test prints fast).
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(path))
    printer.setResolution(dpi)
    return printer


def _pages(path: Path) -> int:
    return len(pypdf.PdfReader(str(path)).pages)


def _shot(widget, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SHOTS / name))


class _Answers:
    """Stands in for the print and save dialogs and remembers what they were asked."""

    def __init__(self, monkeypatch, tmp_path: Path):
        self.printed_to = tmp_path / "printed.pdf"
        self.save_to: Path | None = tmp_path / "saved" / "copy.pdf"
        self.page_range: tuple[int, int] | None = None
        self.copies = 1
        self.print_asked: list[tuple[int, int, QPageSize | None]] = []
        self.save_asked: list[Path] = []
        monkeypatch.setattr(pdf_viewer, "ask_printer", self.ask_printer)
        monkeypatch.setattr(pdf_viewer, "ask_save_path", self.ask_save_path)

    def ask_printer(self, parent, page_count, current_page, page_size):
        self.print_asked.append((page_count, current_page, page_size))
        printer = _file_printer(self.printed_to)
        if self.page_range is not None:
            printer.setPrintRange(QPrinter.PrintRange.PageRange)
            printer.setFromTo(*self.page_range)
        printer.setCopyCount(self.copies)
        return printer

    def ask_save_path(self, parent, suggested: Path):
        self.save_asked.append(suggested)
        return self.save_to


@pytest.fixture
def answers(monkeypatch, tmp_path) -> _Answers:
    return _Answers(monkeypatch, tmp_path)


def _viewer(qtbot, ops, render, settings: Settings | None = None) -> PdfViewer:
    viewer = PdfViewer(ops, None, settings=settings)
    qtbot.addWidget(viewer)
    with qtbot.waitSignal(viewer.ready, timeout=15_000):
        viewer.load(render, "Preparing the invoice…")
        assert viewer.stack.currentWidget() is viewer.busy_page
        assert not viewer.print_action.isEnabled()  # busy: nothing to print yet
    viewer.show()
    return viewer


# --- printing -------------------------------------------------------------------------

def test_print_pdf_prints_every_page_then_a_range(qtbot, long_pdf, tmp_path):
    out = tmp_path / "all.pdf"
    assert print_pdf(long_pdf.data, _file_printer(out)) == long_pdf.pages
    assert _pages(out) == long_pdf.pages

    second = tmp_path / "second.pdf"
    assert print_pdf(long_pdf.data, _file_printer(second), from_page=2, to_page=2) == 1
    assert _pages(second) == 1

    copies = tmp_path / "copies.pdf"
    assert print_pdf(long_pdf.data, _file_printer(copies), pages=[1], copies=3) == 3
    assert _pages(copies) == 3

    with pytest.raises(PrintError, match="not in this document"):
        print_pdf(long_pdf.data, _file_printer(tmp_path / "none.pdf"), from_page=long_pdf.pages + 1)


def test_a_printed_page_is_the_page_not_a_blank(qtbot, long_pdf, tmp_path):
    # The sheet carries one full-page image with the invoice's ink on it.
    out = tmp_path / "page.pdf"
    printer = _file_printer(out)
    printer.setPageSize(QPageSize(QPageSize.PageSizeId.Letter))
    print_pdf(long_pdf.data, printer, from_page=1, to_page=1)
    page = pypdf.PdfReader(str(out)).pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (612, 792)
    image = page.images[0].image.convert("L")
    assert image.width >= 600  # rendered at the printer's 72 dpi across 8.5 in
    dark = sum(image.histogram()[:128])
    assert 0.002 < dark / (image.width * image.height) < 0.3


def test_pages_chosen_in_the_print_dialog(qtbot):
    printer = QPrinter()
    assert pages_to_print(printer, 3) == [1, 2, 3]
    printer.setPrintRange(QPrinter.PrintRange.PageRange)
    printer.setFromTo(2, 9)
    assert pages_to_print(printer, 3) == [2, 3]
    printer.setPrintRange(QPrinter.PrintRange.CurrentPage)
    assert pages_to_print(printer, 3, current_page=2) == [2]


def test_viewer_prints_what_the_dialog_chose(qtbot, ops, office, long_pdf, answers):
    viewer = _viewer(qtbot, ops, invoice_render(office.long_invoice))
    answers.page_range = (2, 2)
    answers.copies = 2
    with qtbot.waitSignal(viewer.printed, timeout=15_000) as printed:
        viewer.print_action.trigger()
        assert not viewer.save_action.isEnabled()  # one job at a time
    wait_idle(qtbot, ops)
    assert printed.args == [2]
    # The PDF file engine makes no copies itself, so both are drawn: two sheets of page 2.
    assert _pages(answers.printed_to) == 2
    count, current, size = answers.print_asked[0]
    assert (count, current) == (long_pdf.pages, 1)
    assert size is not None and size.id() == QPageSize.PageSizeId.Letter
    assert viewer.print_action.isEnabled()
    assert viewer.print_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Print)


def test_a_cancelled_print_dialog_prints_nothing(qtbot, ops, office, monkeypatch):
    viewer = _viewer(qtbot, ops, invoice_render(office.draft))
    monkeypatch.setattr(pdf_viewer, "ask_printer", lambda *a: None)
    assert viewer.print_document() is None
    assert ops.active == 0
    assert viewer.print_action.isEnabled()


# --- the viewer -------------------------------------------------------------------------

def test_viewer_shows_every_page_and_zooms(qtbot, ops, office, long_pdf):
    viewer = _viewer(qtbot, ops, invoice_render(office.long_invoice))
    viewer.resize(860, 900)
    assert viewer.windowTitle() == long_pdf.title
    assert viewer.page_count() == long_pdf.pages
    assert viewer.page_text() == f"Page 1 of {long_pdf.pages}"
    assert viewer.page_spin.maximum() == long_pdf.pages
    viewer.go_to_page(2)
    qtbot.waitUntil(lambda: viewer.current_page() == 2, timeout=5_000)
    assert viewer.page_text() == f"Page 2 of {long_pdf.pages}"
    assert viewer.fit_action.isChecked()
    before = viewer.effective_zoom()
    viewer.zoom_in_action.trigger()
    assert not viewer.fit_action.isChecked()
    assert viewer.effective_zoom() == pytest.approx(before * 1.25, rel=0.01)
    viewer.zoom_out_action.trigger()
    viewer.zoom_out_action.trigger()
    assert viewer.effective_zoom() == pytest.approx(before / 1.25, rel=0.01)
    viewer.fit_action.trigger()
    assert viewer.fit_action.isChecked()
    qtbot.wait(200)  # let the page render before the picture
    _shot(viewer, "pdf_viewer_invoice.png")


def test_a_draft_previews_with_its_watermark(qtbot, ops, office):
    viewer = _viewer(qtbot, ops, invoice_render(office.draft))
    assert viewer.pdf is not None
    text = pypdf.PdfReader(io.BytesIO(viewer.pdf.data)).pages[0].extract_text()
    assert "DRAFT" in text
    assert viewer.page_text() == "Page 1 of 1"
    assert not viewer.page_spin.isEnabled()


def test_viewer_shows_why_a_pdf_cannot_be_made(qtbot, ops, office):
    viewer = PdfViewer(ops, None)
    qtbot.addWidget(viewer)
    with qtbot.waitSignal(viewer.failed, timeout=10_000) as failed:
        viewer.load(invoice_render(987654))
    assert failed.args[0]
    assert "could not be made" in viewer.busy_label.text()
    assert not viewer.print_action.isEnabled() and not viewer.save_action.isEnabled()


def test_an_extra_action_follows_the_viewer_state(qtbot, ops, office):
    from PySide6.QtGui import QAction

    viewer = PdfViewer(ops, None)
    qtbot.addWidget(viewer)
    email = QAction("E-mail…", viewer)
    viewer.add_action(email)
    assert not email.isEnabled()
    assert email.iconText() == "E-mail…"
    actions = viewer.toolbar.actions()
    assert actions.index(viewer.save_action) < actions.index(email) < actions.index(viewer.zoom_out_action)
    with qtbot.waitSignal(viewer.ready, timeout=15_000):
        viewer.load(invoice_render(office.draft))
    assert email.isEnabled()


# --- saving --------------------------------------------------------------------------

def test_save_as_writes_the_pdf_and_remembers_the_folder(qtbot, ops, app_ctx, office, long_pdf, answers,
                                                        tmp_path):
    settings = Settings(tmp_path / "settings.json")
    folder = tmp_path / "saved"
    folder.mkdir()
    viewer = _viewer(qtbot, ops, invoice_render(office.long_invoice), settings)
    with qtbot.waitSignal(viewer.saved, timeout=10_000) as saved:
        viewer.save_action.trigger()
    assert saved.args == [str(folder / "copy.pdf")]
    assert _pages(folder / "copy.pdf") == long_pdf.pages
    assert (folder / "copy.pdf").read_bytes() == viewer.pdf.data
    assert [p.name for p in folder.iterdir()] == ["copy.pdf"]  # no temporary file left
    assert oct((folder / "copy.pdf").stat().st_mode & 0o777) == oct(0o644)
    assert Settings(tmp_path / "settings.json").get(SAVE_FOLDER_KEY) == str(folder)
    assert "Saved" in viewer.statusBar().currentMessage()
    # The first time: the suggested name in Documents or home; the next time: the folder used.
    assert answers.save_asked[0].name == long_pdf.filename
    with qtbot.waitSignal(viewer.saved, timeout=10_000):
        viewer.save_action.trigger()
    assert answers.save_asked[1] == folder / long_pdf.filename


def test_saving_into_a_read_only_folder_says_so_and_leaves_nothing(qtbot, ops, office, answers, tmp_path,
                                                                  monkeypatch):
    settings = Settings(tmp_path / "settings.json")
    folder = tmp_path / "locked"
    folder.mkdir()
    answers.save_to = folder / "invoice.pdf"
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as it would a user
        def refuse(*_a, **_k):
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))
        monkeypatch.setattr(pdf_viewer.tempfile, "mkstemp", refuse)
    else:
        folder.chmod(0o500)
    try:
        viewer = _viewer(qtbot, ops, invoice_render(office.draft), settings)
        viewer.save_action.trigger()
        wait_idle(qtbot, ops)
        assert viewer.message.isVisible()
        assert viewer.message.text() == (f"The PDF was not saved: mspbill is not allowed to write in {folder}. "
                                         "Choose another folder, such as Documents.")
        assert list(folder.iterdir()) == []
        assert settings.get(SAVE_FOLDER_KEY) is None  # a folder that failed is not remembered
        assert viewer.save_action.isEnabled()
        _shot(viewer, "pdf_viewer_save_error.png")
    finally:
        folder.chmod(0o700)


def test_saving_where_there_is_no_folder_says_so(qtbot, ops, office, answers, tmp_path):
    answers.save_to = tmp_path / "gone" / "invoice.pdf"
    viewer = _viewer(qtbot, ops, invoice_render(office.draft), Settings(tmp_path / "settings.json"))
    viewer.save_action.trigger()
    wait_idle(qtbot, ops)
    assert viewer.message.text() == f"The PDF was not saved: the folder {tmp_path / 'gone'} does not exist any more."


def test_an_interrupted_write_keeps_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    target = tmp_path / "invoice.pdf"
    target.write_bytes(b"%PDF old")

    def broken_replace(_src, _dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pdf_viewer.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomically(target, b"%PDF new")
    assert target.read_bytes() == b"%PDF old"
    assert [p.name for p in tmp_path.iterdir()] == ["invoice.pdf"]
    assert "disk" in pdf_viewer.save_error_text(target, OSError(errno.ENOSPC, "No space left on device"))


# --- the Invoices screen and the invoice window -----------------------------------------

def _invoices_screen(qtbot, ops, select_id: int) -> InvoicesScreen:
    screen = InvoicesScreen(ops)
    qtbot.addWidget(screen)
    screen.resize(1200, 700)
    screen.show()
    screen.reload(select_id=select_id)
    wait_idle(qtbot, ops)
    assert [r.id for r in screen.selected_rows()] == [select_id]
    return screen


def test_invoices_screen_previews_prints_and_saves_the_selection(qtbot, ops, office, long_pdf, answers):
    screen = _invoices_screen(qtbot, ops, office.long_invoice)
    assert all(b.isEnabled() for b in (screen.preview_button, screen.print_button, screen.save_pdf_button))

    viewer = screen.preview_selected()
    assert isinstance(viewer, PdfViewer)
    qtbot.waitUntil(lambda: viewer.pdf is not None, timeout=15_000)
    assert viewer.page_count() == long_pdf.pages
    assert viewer.isWindow() and viewer.parentWidget() is screen
    viewer.close()

    # Ctrl+P on the list: render, the print dialog, print.
    assert screen.print_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Print)
    screen.print_action.trigger()
    qtbot.waitUntil(lambda: answers.printed_to.exists() and ops.active == 0, timeout=15_000)
    assert _pages(answers.printed_to) == long_pdf.pages
    assert screen.notice.isVisible() and "to the printer" in screen.notice.text()

    answers.save_to.parent.mkdir()
    qtbot.mouseClick(screen.save_pdf_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: answers.save_to.exists() and ops.active == 0, timeout=15_000)
    assert _pages(answers.save_to) == long_pdf.pages
    assert screen.notice.text() == f"Saved copy.pdf in {answers.save_to.parent}."


def test_invoices_context_menu_offers_the_pdf(qtbot, ops, office):
    screen = _invoices_screen(qtbot, ops, office.draft)
    menu = screen.context_menu()
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts[:4] == ["Open…", "Preview PDF", "Print…", "Save PDF…"]
    enabled = {a.text(): a.isEnabled() for a in menu.actions()}
    assert enabled["Preview PDF"] and enabled["Issue…"] and not enabled["Void…"]
    menu.close()
    screen.table.clearSelection()
    assert not screen.print_button.isEnabled() and not screen.print_action.isEnabled()
    screen.print_selected()  # nothing selected: nothing happens
    assert ops.active == 0


def test_invoice_window_pdf_buttons(qtbot, ops, office, answers):
    dialog = InvoiceDialog(ops, office.draft)
    qtbot.addWidget(dialog)
    dialog.show()
    wait_idle(qtbot, ops)
    assert dialog.preview_button.isEnabled() and dialog.print_button.isEnabled()
    viewer = dialog.preview_pdf()
    qtbot.waitUntil(lambda: viewer.pdf is not None, timeout=15_000)
    assert "Draft" in viewer.windowTitle() or "draft" in viewer.windowTitle().lower()
    qtbot.wait(200)
    _shot(viewer, "pdf_viewer_draft.png")
    viewer.close()
    dialog.print_action.trigger()
    qtbot.waitUntil(lambda: answers.printed_to.exists() and ops.active == 0, timeout=15_000)
    assert _pages(answers.printed_to) == 1
    assert dialog.pdf_notice.isVisible()
    _shot(dialog, "invoice_window_pdf.png")


# --- Settings → Company -------------------------------------------------------------------

def test_company_form_round_trips_paper_and_payment_instructions(qtbot, ops, app_ctx, office):
    form = CompanyForm(ops)
    qtbot.addWidget(form)
    form.resize(900, 700)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    assert form.paper_size.currentData() == "letter"
    assert form.payment_instructions.toPlainText() == "Mail checks to: Acme IT, PO Box 1"
    assert form.preview_button.isVisible()  # there is an invoice to show
    form.paper_size.setCurrentIndex(form.paper_size.findData("a4"))
    instructions = "Bank: First Cascade · Account 4401 2278 19\nMail checks to: Acme IT, PO Box 1, Portland"
    form.payment_instructions.setPlainText(instructions)
    form.save()
    wait_idle(qtbot, ops)
    assert form.status.text() == "Saved."
    with app_ctx.db.session() as s:
        snap = company_snapshot(s)
    assert snap is not None
    assert (snap.draft.paper_size, snap.draft.payment_instructions) == ("a4", instructions)

    again = CompanyForm(ops)
    qtbot.addWidget(again)
    again.load()
    wait_idle(qtbot, ops)
    assert again.paper_size.currentData() == "a4"
    assert again.payment_instructions.toPlainText() == instructions

    viewer = again.preview_invoice()
    qtbot.waitUntil(lambda: viewer.pdf is not None, timeout=15_000)
    page = pypdf.PdfReader(io.BytesIO(viewer.pdf.data)).pages[0]
    assert round(float(page.mediabox.width)) == 595  # A4 now
    _shot(form, "company_form_pdf_settings.png")


def test_company_form_shows_payment_instruction_errors_at_the_field(qtbot, ops, app_ctx, office):
    form = CompanyForm(ops)
    qtbot.addWidget(form)
    form.show()
    form.load()
    wait_idle(qtbot, ops)
    form.payment_instructions.setPlainText("\n".join(f"line {i}" for i in range(1, 11)))
    form.save()
    row = form.form.rows["payment_instructions"]
    assert row.error.isVisible()
    assert "8 lines" in row.error.text()
    assert form.summary.text() == "Please correct 1 problem before saving."
    qtbot.wait(50)
    assert not row.error.visibleRegion().isEmpty()  # scrolled to show the message, not only the box
    _shot(form, "company_form_instruction_error.png")
    form.payment_instructions.setPlainText("x" * 1001)
    form.save()
    assert "1000 characters" in row.error.text()
    wait_idle(qtbot, ops)
    with app_ctx.db.session() as s:
        assert company_snapshot(s).draft.payment_instructions == "Mail checks to: Acme IT, PO Box 1"


def test_a_refused_logo_is_shown_where_the_office_can_see_it(qtbot, ops, app_ctx, office, tmp_path):
    from ui.main_window import MainWindow

    window = MainWindow(app_ctx, ops)
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    window.go("Settings")
    wait_idle(qtbot, ops)
    form = window.settings.company
    form.payment_instructions.setPlainText("\n".join(f"line {i}" for i in range(1, 11)))
    form.save()  # an earlier problem in the form stays marked
    qtbot.wait(50)
    form.scroll.verticalScrollBar().setValue(0)  # the office is at the top of the form
    bad = tmp_path / "logo.png"
    bad.write_bytes(b"not an image at all")
    form.set_logo_file(bad)
    row = form.form.rows["logo"]
    assert row.error.isVisibleTo(form)

    def whole(widget) -> bool:
        return widget.visibleRegion().boundingRect().size() == widget.size()

    # The whole message comes into view, with the picture and buttons it is about.
    qtbot.waitUntil(lambda: whole(row.error), timeout=2_000)
    assert whole(row.editor)
    assert "not an image" in row.error.text() and "0x" not in row.error.text()
    assert form.form.rows["payment_instructions"].error.isVisibleTo(form)
    _shot(window, "company_form_logo_error.png")


# --- statements -----------------------------------------------------------------------------

@pytest.mark.parametrize(("today", "preset", "expected"), [
    ("2026-03-15", "this_month", ("2026-03-01", "2026-03-15")),
    ("2026-03-15", "last_month", ("2026-02-01", "2026-02-28")),
    ("2026-03-15", "last_3_months", ("2026-01-01", "2026-03-15")),
    ("2026-03-15", "this_year", ("2026-01-01", "2026-03-15")),
    ("2026-01-10", "last_month", ("2025-12-01", "2025-12-31")),
    ("2026-01-10", "last_3_months", ("2025-11-01", "2026-01-10")),
    ("2024-03-31", "last_month", ("2024-02-01", "2024-02-29")),
])
def test_statement_presets(today, preset, expected):
    start, end = preset_range(preset, dt.date.fromisoformat(today))
    assert (start.isoformat(), end.isoformat()) == expected


def test_statement_dialog_dates_and_viewer(qtbot, ops, office):
    today = dt.date(2026, 3, 15)
    dialog = StatementDialog(ops, office.client, "Harbor Dental", None, today=today)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.preset.currentData() == "last_3_months"
    assert dialog.dates() == (dt.date(2026, 1, 1), today)
    dialog.set_preset("last_month")
    assert dialog.dates() == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    dialog.start.setDate(dialog.start.date().addDays(3))  # a hand-made period is custom
    assert dialog.preset.currentData() == "custom"
    assert dialog.dates() == (dt.date(2026, 2, 4), dt.date(2026, 2, 28))
    _shot(dialog, "statement_dialog.png")

    dialog.end.setDate(dialog.start.date().addDays(-1))
    dialog.open_statement()
    assert dialog.message.isVisible() and "after the end" in dialog.message.text()

    # The real thing: this office's activity (the invoice was issued 20 days ago), up to today.
    dialog = StatementDialog(ops, office.client, "Harbor Dental", None)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.dates() == preset_range("last_3_months", TODAY)
    with qtbot.waitSignal(dialog.opened, timeout=15_000) as opened:
        dialog.open_button.click()
        assert not dialog.open_button.isEnabled() and dialog.busy.isVisible()
    viewer = opened.args[0]
    qtbot.addWidget(viewer)
    assert isinstance(viewer, PdfViewer) and viewer.isVisible()
    assert "Harbor Dental" in viewer.windowTitle()
    assert viewer.page_count() >= 1 and viewer.save_action.isEnabled()
    assert not dialog.isVisible()
    text = pypdf.PdfReader(io.BytesIO(viewer.pdf.data)).pages[0].extract_text()
    assert "Harbor Dental" in text
    viewer.resize(860, 900)
    qtbot.wait(200)
    _shot(viewer, "pdf_viewer_statement.png")


def test_statement_dates_end_today_at_the_latest(qtbot, ops, office):
    today = dt.date(2026, 3, 15)
    dialog = StatementDialog(ops, office.client, "Harbor Dental", None, today=today)
    qtbot.addWidget(dialog)
    dialog.show()
    for edit in (dialog.start, dialog.end):
        assert edit.maximumDate().toPython() == today
    dialog.end.setDate(dialog.end.date().addDays(30))  # a date still to come is not taken
    assert dialog.dates()[1] == today
    dialog.end.setDate(dialog.end.date().addDays(-1))
    assert dialog.dates()[1] == today - dt.timedelta(days=1)


def test_statement_from_the_clients_screen(qtbot, ops, office):
    screen = ClientsScreen(ops)
    qtbot.addWidget(screen)
    screen.show()
    screen.reload()
    wait_idle(qtbot, ops)
    assert screen.statement_button is not None and not screen.statement_button.isEnabled()
    screen.select_id(office.client)
    assert screen.statement_button.isEnabled()
    menu = screen.context_menu()
    assert [a.text() for a in menu.actions() if not a.isSeparator()] == ["Edit…", "Statement…", "Archive"]
    menu.close()
    dialog = screen.statement_selected()
    assert isinstance(dialog, StatementDialog)
    assert dialog.client_id == office.client and dialog.windowTitle() == "Statement — Harbor Dental"
    assert dialog.isVisible() and dialog.windowModality() == Qt.WindowModality.WindowModal
    with qtbot.waitSignal(dialog.opened, timeout=15_000) as opened:
        dialog.open_button.click()
    viewer = opened.args[0]
    assert viewer.parentWidget() is screen  # outlives the dialog
    qtbot.waitUntil(lambda: not screen.findChildren(QMessageBox) and ops.active == 0, timeout=5_000)
    viewer.close()
