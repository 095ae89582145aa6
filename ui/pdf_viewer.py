"""Show, print and save PDFs (invoices, statements) rendered by the core.

The PDF is rendered by a core function (`invoice_pdf`, `statement_pdf`) through
Ops, off the UI thread; what comes back is a frozen `RenderedPdf` (bytes and a
name).  From there:

- `PdfViewer` shows it with Qt's PDF viewer (QPdfView, pages one under the
  other) and a toolbar: Print…, Save as…, zoom, page x of y, and any extra
  action a caller adds (`add_action`, e.g. "E-mail…").
- `print_pdf` prints the bytes on a QPrinter by rendering each page at the
  printer's resolution (capped, see MAX_PRINT_DPI); `print_rendered` asks the
  system print dialog first and runs `print_pdf` through Ops (Qt allows
  painting on a QPrinter off the GUI thread).
- `save_rendered` asks for a file name (suggested name, last used folder,
  remembered in the settings file) and writes it atomically through Ops.

The two questions (`ask_save_path`, `ask_printer`) are module functions so
that tests replace them instead of opening modal dialogs.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QEvent,
    QIODevice,
    QMargins,
    QObject,
    QPointF,
    QRectF,
    QSize,
    QSizeF,
    QStandardPaths,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QPageLayout,
    QPageSize,
    QPainter,
)
from PySide6.QtPdf import QPdfDocument
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtPrintSupport import QAbstractPrintDialog, QPrintDialog, QPrinter
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session

from mspbill.pdf.rendered import RenderedPdf
from mspbill.settings import Settings
from ui.errors import log_file_hint
from ui.ops import USER_ERRORS, Ops, describe_error

SAVE_FOLDER_KEY = "pdf.save_folder"
# Pages are printed as images.  300 dpi prints invoice text cleanly (pdf.js prints at 150)
# and keeps one Letter page at 34 MB; a 1200 dpi printer would ask for 540 MB a page.
MAX_PRINT_DPI = 300
ZOOM_STEP = 1.25
ZOOM_MIN, ZOOM_MAX = 0.25, 5.0


class PrintError(RuntimeError):
    """The printer could not be started or the document not read."""


# --- the PDF bytes -------------------------------------------------------------

def _open_document(data: bytes) -> tuple[QPdfDocument, QBuffer]:
    """A QPdfDocument reading `data`; keep the returned buffer alive as long as the document."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    document = QPdfDocument()
    document.load(buffer)
    if document.status() != QPdfDocument.Status.Ready:
        raise PrintError(f"The PDF cannot be read ({document.error().name}).")
    return document, buffer


def page_size_of(data: bytes) -> QPageSize:
    """The first page's size, matched to a standard size (Letter, A4) where it is one."""
    document, _buffer = _open_document(data)
    points = document.pagePointSize(0)
    return QPageSize(QSizeF(points), QPageSize.Unit.Point, "", QPageSize.SizeMatchPolicy.FuzzyMatch)


def pages_to_print(printer: QPrinter, page_count: int, current_page: int = 1) -> list[int]:
    """The 1-based pages the print dialog asked for: all, a current page, or ranges like 1-2,4."""
    every = list(range(1, page_count + 1))
    chosen = printer.printRange()
    if chosen == QPrinter.PrintRange.CurrentPage:
        return [min(max(current_page, 1), page_count)] if page_count else []
    if chosen == QPrinter.PrintRange.PageRange or not printer.pageRanges().isEmpty():
        spans = [(r.from_, r.to) for r in printer.pageRanges().toRangeList()]
        if not spans and printer.fromPage() > 0:
            spans = [(printer.fromPage(), printer.toPage() or page_count)]
        wanted = [p for first, last in spans for p in range(first, last + 1) if 1 <= p <= page_count]
        return list(dict.fromkeys(wanted))  # each page once, in the order asked
    return every


def print_pdf(data: bytes, printer: QPrinter, from_page: int = 1, to_page: int | None = None, *,
              pages: Sequence[int] | None = None, copies: int = 1, collate: bool = True) -> int:
    """Print `data` on `printer`: pages `from_page`..`to_page` (1-based, inclusive), or `pages`.

    Each page is rendered by PDFium at the printer's resolution (at most
    MAX_PRINT_DPI) and painted on the whole sheet, scaled to fit the
    paper if it is another size, centred.  `copies` are drawn here; pass 1 when
    the printer makes the copies itself (QPrinter.supportsMultipleCopies).
    Returns the number of sheets painted.  Safe to call off the GUI thread.
    """
    document, _buffer = _open_document(data)
    count = document.pageCount()
    if pages is None:
        last = count if to_page is None else min(to_page, count)
        pages = list(range(max(from_page, 1), last + 1))
    pages = [p for p in pages if 1 <= p <= count]
    if not pages:
        raise PrintError("There is nothing to print: the pages asked for are not in this document "
                         f"(it has {count} page{'s' if count != 1 else ''}).")
    copies = max(copies, 1)
    if collate:
        sequence = [p for _ in range(copies) for p in pages]
    else:
        sequence = [p for p in pages for _ in range(copies)]

    printer.setFullPage(True)  # the PDF has its own margins; paint it on the whole sheet
    painter = QPainter()
    if not painter.begin(printer):
        raise PrintError("The printer could not be started. Check that it is connected, or choose "
                         "another printer.")
    try:
        for i, page in enumerate(sequence):
            if i and not printer.newPage():
                raise PrintError("The printer stopped accepting pages.")
            _paint_page(document, page - 1, painter, printer)
    finally:
        painter.end()
    return len(sequence)


def _paint_page(document: QPdfDocument, index: int, painter: QPainter, printer: QPrinter) -> None:
    paper = printer.paperRect(QPrinter.Unit.DevicePixel)
    points = document.pagePointSize(index)
    # Fit the page on the paper, keeping its proportions (1:1 when sizes match).
    scale = min(paper.width() / points.width(), paper.height() / points.height())
    target = QRectF(0, 0, points.width() * scale, points.height() * scale)
    target.moveCenter(paper.center())
    # Render at the printer's resolution, at most MAX_PRINT_DPI; the painter scales up to the device.
    factor = min(1.0, MAX_PRINT_DPI / max(printer.resolution(), 1))
    size = QSize(max(1, round(target.width() * factor)), max(1, round(target.height() * factor)))
    # One render of the whole page: PDFium places glyphs differently when asked for a clipped
    # band of a page, so pages printed in bands showed seams through lines of text.
    image = document.render(index, size)
    if image.isNull():
        raise PrintError(f"Page {index + 1} could not be rendered for printing.")
    # Printers have no alpha: put white behind what the PDF leaves transparent, in place.
    flatten = QPainter(image)
    flatten.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOver)
    flatten.fillRect(image.rect(), Qt.GlobalColor.white)
    flatten.end()
    painter.drawImage(target, image)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, then replace.

    A failure (read-only folder, full disk) leaves no partial file behind and
    any earlier file at `path` untouched.
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:40]}-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); a saved PDF is an ordinary document.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_error_text(path: Path, exc: BaseException) -> str:
    """A sentence a person can act on, for a save that failed."""
    if isinstance(exc, OSError):
        denied = isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        if denied and path.is_file():
            # Windows refuses to replace a file another program has open (a PDF reader, say).
            return (f"The PDF was not saved: {path.name} cannot be replaced. It may be open in another "
                    "program or read-only; close it, or save under another name.")
        if denied:
            return (f"The PDF was not saved: mspbill is not allowed to write in {path.parent}. "
                    "Choose another folder, such as Documents.")
        if exc.errno == errno.ENOSPC:
            return f"The PDF was not saved: the disk holding {path.parent} is full."
        if isinstance(exc, FileNotFoundError):
            return f"The PDF was not saved: the folder {path.parent} does not exist any more."
        return f"The PDF was not saved to {path}: {exc.strerror or exc}."
    return f"The PDF was not saved to {path}: {exc}"


# --- where to save, remembered ------------------------------------------------

def settings_for(widget: QWidget | None) -> Settings | None:
    """The app's settings file, found through the window that owns `widget` (the main window has `ctx`)."""
    w = widget
    while w is not None:
        ctx = getattr(w, "ctx", None)
        settings = getattr(ctx, "settings", None)
        if isinstance(settings, Settings):
            return settings
        w = w.parentWidget()
    return None


def default_folder(settings: Settings | None) -> Path:
    saved = settings.get(SAVE_FOLDER_KEY) if settings is not None else None
    if isinstance(saved, str) and saved and Path(saved).is_dir():
        return Path(saved)
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    if documents and Path(documents).is_dir():
        return Path(documents)
    return Path.home()


def remember_folder(settings: Settings | None, folder: Path) -> None:
    if settings is None:
        return
    try:
        settings.set(SAVE_FOLDER_KEY, str(folder))
    except OSError:
        pass  # not remembering a folder is no reason to fail a save that worked


def ask_save_path(parent: QWidget | None, suggested: Path) -> Path | None:
    """The system's Save dialog; None when cancelled.  Tests replace this function."""
    name, _ = QFileDialog.getSaveFileName(parent, "Save PDF", str(suggested), "PDF documents (*.pdf)")
    if not name:
        return None
    path = Path(name)
    return path if path.suffix.lower() == ".pdf" else path.with_name(path.name + ".pdf")


def ask_printer(parent: QWidget | None, page_count: int, current_page: int,
                page_size: QPageSize | None) -> QPrinter | None:
    """The system print dialog, set up for this document; the chosen printer, or None when cancelled.

    Tests replace this function.
    """
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    if page_size is not None:
        printer.setPageSize(page_size)
        printer.setPageOrientation(QPageLayout.Orientation.Landscape if page_size.size(QPageSize.Unit.Point)
                                   .width() > page_size.size(QPageSize.Unit.Point).height()
                                   else QPageLayout.Orientation.Portrait)
    dialog = QPrintDialog(printer, parent)
    dialog.setWindowTitle("Print")
    for option in (QAbstractPrintDialog.PrintDialogOption.PrintPageRange,
                   QAbstractPrintDialog.PrintDialogOption.PrintCurrentPage,
                   QAbstractPrintDialog.PrintDialogOption.PrintCollateCopies,
                   QAbstractPrintDialog.PrintDialogOption.PrintToFile):
        dialog.setOption(option, True)
    dialog.setMinMax(1, max(page_count, 1))
    if dialog.exec() != QPrintDialog.DialogCode.Accepted:
        return None
    return printer


def tell(parent: QWidget | None, title: str, text: str) -> QMessageBox:
    """A warning that does not block (opened, not exec'd), like the delete question."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


# --- the three things to do with a rendered PDF ----------------------------------

def render_then(ops: Ops, parent: QWidget | None, render: Callable[[Session], RenderedPdf],
                then: Callable[[RenderedPdf], object], label: str = "Preparing the PDF") -> None:
    """Render through Ops (a read job), with a busy cursor on `parent`; `then(pdf)` on the UI thread.

    Errors: the usual dialog (a ValidationError's message, or "something went wrong").
    """
    if parent is not None:
        parent.setCursor(Qt.CursorShape.BusyCursor)

    def idle() -> None:
        if parent is not None:
            parent.unsetCursor()

    def rendered(pdf: RenderedPdf) -> None:
        idle()
        then(pdf)

    def failed(_exc: BaseException) -> bool:
        idle()
        return False

    ops.read(parent, render, rendered, on_failure=failed, label=label)


def save_rendered(ops: Ops, parent: QWidget | None, pdf: RenderedPdf, settings: Settings | None = None, *,
                  on_saved: Callable[[Path], None] | None = None,
                  on_error: Callable[[str], None] | None = None) -> Path | None:
    """Ask where to save `pdf` (last used folder, suggested name), then write it atomically.

    Returns the chosen path (None when cancelled); the write itself runs through
    Ops and reports by `on_saved(path)` or `on_error(message)` (default: a warning box).
    """
    settings = settings if settings is not None else settings_for(parent)
    path = ask_save_path(parent, default_folder(settings) / pdf.filename)
    if path is None:
        return None
    data = pdf.data

    def work(_ctx: object) -> Path:
        write_atomically(path, data)
        return path

    def saved(where: Path) -> None:
        remember_folder(settings, where.parent)
        if on_saved is not None:
            on_saved(where)

    def failed(exc: BaseException) -> bool:
        message = save_error_text(path, exc)
        if on_error is not None:
            on_error(message)
        else:
            tell(parent, "Save PDF", message)
        return True

    ops.run(parent, work, on_success=saved, on_failure=failed, label="Saving PDF")
    return path


def print_rendered(ops: Ops, parent: QWidget | None, pdf: RenderedPdf, *, current_page: int = 1,
                   on_printed: Callable[[int], None] | None = None,
                   on_error: Callable[[str], None] | None = None) -> QPrinter | None:
    """Ask the print dialog, then print the chosen pages and copies through Ops.

    Returns the printer (None when cancelled); reports by `on_printed(sheets)`
    or `on_error(message)` (default: a warning box).
    """
    try:
        size = page_size_of(pdf.data)
    except PrintError:
        size = None
    printer = ask_printer(parent, pdf.pages, current_page, size)
    if printer is None:
        return None
    pages = pages_to_print(printer, pdf.pages, current_page)
    # A printer that makes copies itself gets one; otherwise they are drawn here.
    copies = 1 if printer.supportsMultipleCopies() else printer.copyCount()
    collate = printer.collateCopies()
    data = pdf.data

    def work(_ctx: object) -> int:
        return print_pdf(data, printer, pages=pages, copies=copies, collate=collate)

    def printed(sheets: int) -> None:
        if on_printed is not None:
            on_printed(sheets)

    def failed(exc: BaseException) -> bool:
        if isinstance(exc, (PrintError, *USER_ERRORS)):
            message = f"Nothing was printed. {describe_error(exc)}"
        else:  # Ops has logged it with its traceback
            message = f"Nothing was printed: something went wrong ({exc}). {log_file_hint()}"
        if on_error is not None:
            on_error(message)
        else:
            tell(parent, "Print", message)
        return True

    # The printer object goes to the pool and is not touched here again until the job ends.
    ops.run(parent, work, on_success=printed, on_failure=failed, label="Printing")
    return printer


def preview(ops: Ops, parent: QWidget | None, render: Callable[[Session], RenderedPdf], *,
            busy_text: str = "Preparing the PDF…", settings: Settings | None = None) -> PdfViewer:
    """Open a viewer at once, busy while `render` runs; it shows the PDF when ready."""
    viewer = PdfViewer(ops, parent, settings=settings)
    viewer.load(render, busy_text)
    viewer.show()
    return viewer


# --- the viewer window ----------------------------------------------------------

class PdfViewer(QMainWindow):
    """A window showing one PDF with Print…, Save as…, zoom and page x of y."""

    ready = Signal(object)   # the RenderedPdf, once shown
    failed = Signal(str)     # why it could not be shown
    saved = Signal(str)      # the path written
    printed = Signal(int)    # sheets printed

    def __init__(self, ops: Ops, parent: QWidget | None = None, *, settings: Settings | None = None):
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.ops = ops
        self.settings = settings if settings is not None else settings_for(parent)
        self.pdf: RenderedPdf | None = None
        self._buffer: QBuffer | None = None  # the document reads from it: keep it alive
        self._busy_jobs = 0
        self._extra_actions: list[QAction] = []
        self.setWindowTitle("PDF")
        self.resize(860, 980)
        self.document = QPdfDocument(self)
        self._build()
        self._set_ready(False)

    # --- building ---
    def _build(self) -> None:
        self.toolbar = QToolBar("PDF")
        self.toolbar.setMovable(False)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(self.toolbar)

        self.print_action = QAction("Print…", self)
        self.print_action.setShortcut(QKeySequence.StandardKey.Print)
        self.print_action.setToolTip("Print (Ctrl+P)")
        self.print_action.triggered.connect(lambda: self.print_document())
        self.save_action = QAction("Save as…", self)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.setToolTip("Save a copy of this PDF (Ctrl+S)")
        self.save_action.triggered.connect(lambda: self.save_as())
        for action in (self.print_action, self.save_action):
            action.setIconText(action.text())  # keep the "…": these open a dialog (Qt drops it on toolbars)
            self.toolbar.addAction(action)
        # Extra actions (E-mail…) go right after Save as…, before this separator.
        self._extras_end = self.toolbar.addSeparator()

        self.zoom_out_action = QAction("−", self)
        self.zoom_out_action.setShortcut(QKeySequence.StandardKey.ZoomOut)
        self.zoom_out_action.setToolTip("Zoom out (Ctrl+−)")
        self.zoom_out_action.triggered.connect(lambda: self.zoom_by(1 / ZOOM_STEP))
        self.zoom_in_action = QAction("+", self)
        self.zoom_in_action.setShortcuts([QKeySequence.StandardKey.ZoomIn, QKeySequence("Ctrl+=")])
        self.zoom_in_action.setToolTip("Zoom in (Ctrl++)")
        self.zoom_in_action.triggered.connect(lambda: self.zoom_by(ZOOM_STEP))
        self.fit_action = QAction("Fit width", self)
        self.fit_action.setCheckable(True)
        self.fit_action.setShortcut(QKeySequence("Ctrl+0"))
        self.fit_action.setToolTip("Fit the page to the window's width (Ctrl+0)")
        self.fit_action.triggered.connect(lambda: self.fit_width())
        for action in (self.zoom_out_action, self.zoom_in_action, self.fit_action):
            self.toolbar.addAction(action)
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(48)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.toolbar.addWidget(self.zoom_label)
        self.toolbar.addSeparator()

        self.page_spin = QSpinBox()
        self.page_spin.setMinimum(1)
        self.page_spin.setMaximum(1)
        self.page_spin.setAccessibleName("Page")
        self.page_spin.setKeyboardTracking(False)
        self.page_spin.valueChanged.connect(self._spin_moved)
        self.page_label = QLabel("Page")
        self.page_of = QLabel("of –")
        self.toolbar.addWidget(self.page_label)
        self.toolbar.addWidget(self.page_spin)
        self.toolbar.addWidget(self.page_of)

        self.view = QPdfView()
        self.view.setDocument(self.document)
        self.view.setPageMode(QPdfView.PageMode.MultiPage)
        self.view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self.view.setPageSpacing(12)
        self.view.setDocumentMargins(QMargins(12, 12, 12, 12))
        self.view.setStyleSheet("QPdfView { background: #8a8f98; }")
        self.view.pageNavigator().currentPageChanged.connect(self._page_changed)
        self.view.zoomModeChanged.connect(lambda _m: self._show_zoom())
        self.view.zoomFactorChanged.connect(lambda _z: self._show_zoom())
        self.view.viewport().installEventFilter(self)

        self.busy_page = QWidget()
        bl = QVBoxLayout(self.busy_page)
        bl.addStretch()
        self.busy_label = QLabel("Preparing the PDF…")
        self.busy_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.busy_label.setStyleSheet("font-size: 15px; color: #3c4043;")
        self.busy_label.setWordWrap(True)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(280)
        self.busy_bar.setTextVisible(False)
        bl.addWidget(self.busy_label)
        bl.addWidget(self.busy_bar, alignment=Qt.AlignmentFlag.AlignHCenter)
        bl.addStretch()

        self.stack = QStackedWidget()
        self.stack.addWidget(self.busy_page)
        self.stack.addWidget(self.view)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.message.hide()

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self._show_zoom()

    def add_action(self, action: QAction) -> None:
        """Put another action (e.g. "E-mail…") on the toolbar after Save as….

        It is enabled with Print and Save: only while a PDF is shown and nothing is
        printing or saving.  Callers read `self.pdf` (a RenderedPdf) when it fires.
        """
        if action.text().endswith(("…", "...")):
            action.setIconText(action.text())
        self.toolbar.insertAction(self._extras_end, action)
        action.setEnabled(self.pdf is not None and not self._busy_jobs)
        self._extra_actions.append(action)

    # --- loading ---
    def load(self, render: Callable[[Session], RenderedPdf], busy_text: str = "Preparing the PDF…") -> None:
        """Render through Ops (busy meanwhile), then show the result."""
        self.busy_label.setText(busy_text)
        self.busy_bar.show()
        self.stack.setCurrentWidget(self.busy_page)
        self._set_ready(False)
        self.ops.read(self, render, self.show_pdf, on_failure=self._load_failed,
                      label=busy_text.rstrip("…."))

    def _load_failed(self, exc: BaseException) -> bool:
        self.busy_bar.hide()
        if isinstance(exc, USER_ERRORS):
            text = describe_error(exc)
            self.busy_label.setText(f"The PDF could not be made.\n\n{text}")
            self.failed.emit(text)
            return True
        self.busy_label.setText("The PDF could not be made.")
        self.failed.emit(str(exc))
        return False  # a bug: the usual dialog with the log file hint

    def show_pdf(self, pdf: RenderedPdf) -> None:
        self.pdf = pdf
        self.setWindowTitle(pdf.title or pdf.filename)
        self.document.close()
        buffer = QBuffer(self)
        buffer.setData(QByteArray(pdf.data))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        old, self._buffer = self._buffer, buffer
        self.document.load(buffer)
        if old is not None:
            old.deleteLater()
        if self.document.status() != QPdfDocument.Status.Ready:
            self._load_failed(PrintError(f"The PDF cannot be shown ({self.document.error().name})."))
            return
        pages = self.document.pageCount()
        self.page_spin.blockSignals(True)
        self.page_spin.setMaximum(max(pages, 1))
        self.page_spin.setValue(1)
        self.page_spin.blockSignals(False)
        self.page_of.setText(f"of {pages}")
        self.stack.setCurrentWidget(self.view)
        self.fit_width()
        self._set_ready(True)
        self.ready.emit(pdf)

    # --- state ---
    def page_count(self) -> int:
        return self.document.pageCount() if self.pdf is not None else 0

    def current_page(self) -> int:
        """1-based."""
        return self.view.pageNavigator().currentPage() + 1

    def page_text(self) -> str:
        return f"Page {self.page_spin.value()} {self.page_of.text()}"

    def _set_ready(self, ready: bool) -> None:
        can_act = ready and self.pdf is not None and not self._busy_jobs
        for action in (self.print_action, self.save_action, *self._extra_actions):
            action.setEnabled(can_act)
        for action in (self.zoom_in_action, self.zoom_out_action, self.fit_action):
            action.setEnabled(ready)
        self.page_spin.setEnabled(ready and self.page_count() > 1)
        for label in (self.page_label, self.page_of):
            label.setEnabled(ready)

    def _job_started(self, text: str) -> None:
        self._busy_jobs += 1
        self.statusBar().showMessage(text)
        self._set_ready(self.pdf is not None)

    def _job_ended(self, text: str = "") -> None:
        self._busy_jobs = max(0, self._busy_jobs - 1)
        if text:
            self.statusBar().showMessage(text, 8000)
        else:
            self.statusBar().clearMessage()
        self._set_ready(self.pdf is not None)

    def show_message(self, text: str, *, error: bool = True) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(
            "background: #fce8e6; color: #8c1d18; padding: 8px 12px;" if error
            else "background: #e6f4ea; color: #0d652d; padding: 8px 12px;")
        self.message.setVisible(bool(text))

    # --- navigation and zoom ---
    def _page_changed(self, index: int) -> None:
        self.page_spin.blockSignals(True)
        self.page_spin.setValue(index + 1)
        self.page_spin.blockSignals(False)

    def _spin_moved(self, page: int) -> None:
        self.go_to_page(page)

    def go_to_page(self, page: int) -> None:
        """Show 1-based `page` at the top of the view."""
        if not self.page_count():
            return
        page = min(max(page, 1), self.page_count())
        nav = self.view.pageNavigator()
        nav.jump(page - 1, QPointF(0, 0), nav.currentZoom())

    def effective_zoom(self) -> float:
        """The zoom factor as shown, also when fitting the width (where Qt keeps the old factor)."""
        if self.view.zoomMode() != QPdfView.ZoomMode.FitToWidth or not self.page_count():
            return self.view.zoomFactor()
        points = self.document.pagePointSize(self.current_page() - 1)
        margins = self.view.documentMargins()
        usable = self.view.viewport().width() - margins.left() - margins.right()
        dpi = self.view.logicalDpiX() or 96
        return max(usable, 1) / max(points.width() * dpi / 72, 1)

    def zoom_by(self, step: float) -> None:
        factor = min(max(self.effective_zoom() * step, ZOOM_MIN), ZOOM_MAX)
        self.view.setZoomMode(QPdfView.ZoomMode.Custom)
        self.view.setZoomFactor(factor)
        self._show_zoom()

    def fit_width(self) -> None:
        self.view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self._show_zoom()

    def _show_zoom(self) -> None:
        fitting = self.view.zoomMode() == QPdfView.ZoomMode.FitToWidth
        self.fit_action.setChecked(fitting)
        self.zoom_label.setText(f"{round(self.effective_zoom() * 100)}%" if self.page_count() else "")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Fitting the width changes the zoom whenever the page area changes size.
        if watched is self.view.viewport() and event.type() == QEvent.Type.Resize:
            self._show_zoom()
        return super().eventFilter(watched, event)

    # --- print and save ---
    def print_document(self) -> QPrinter | None:
        if self.pdf is None or self._busy_jobs:
            return None
        self.show_message("")
        pdf = self.pdf

        def done(sheets: int) -> None:
            self._job_ended(f"Sent {sheets} page{'s' if sheets != 1 else ''} to the printer.")
            self.printed.emit(sheets)

        def failed(text: str) -> None:
            self._job_ended()
            self.show_message(text)

        self._job_started("Printing…")
        printer = print_rendered(self.ops, self, pdf, current_page=self.current_page(), on_printed=done,
                                 on_error=failed)
        if printer is None:
            self._job_ended()
        return printer

    def save_as(self) -> Path | None:
        if self.pdf is None or self._busy_jobs:
            return None
        self.show_message("")

        def done(path: Path) -> None:
            self._job_ended(f"Saved {path}")
            self.saved.emit(str(path))

        def failed(text: str) -> None:
            self._job_ended()
            self.show_message(text)

        self._job_started("Saving…")
        path = save_rendered(self.ops, self, self.pdf, self.settings, on_saved=done, on_error=failed)
        if path is None:
            self._job_ended()
        return path

    def closeEvent(self, event: QCloseEvent) -> None:
        # The document reads from the buffer; close it first.
        self.document.close()
        super().closeEvent(event)
