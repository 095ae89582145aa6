"""Reports → Exports: choose a format and a range, read the preview, export to a file (the golden office of
tests/test_exports_golden.py, through the real Ops pool and a real SQLite file)."""

from __future__ import annotations

import datetime as dt
import html
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the golden office lives in tests/

from test_exports_golden import GOLDEN, build_office

from ui import exports_panel
from ui.exports_panel import ExportsPanel

TODAY = dt.date(2026, 11, 21)


@pytest.fixture
def panel(app_ctx, ops, qtbot):  # type: ignore[no-untyped-def]
    build_office(app_ctx.db)
    widget = ExportsPanel(ops, today=lambda: TODAY)
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.previewed, timeout=10_000):
        widget.show()
    return widget


def test_the_preview_follows_the_format_range_and_currency(panel: ExportsPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    # Last month by default; QuickBooks Online first: its USD invoices, and a picker for the EUR one.
    assert panel.range() == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert panel.fmt().key == "qbo"
    assert panel.headline.text() == "5 invoices (9 lines)"
    assert "USD: invoiced $3,698.89" in panel.totals.text()
    assert "QuickBooks Online's invoice import does not take credit memos" in html.unescape(panel.details.text())
    assert panel.currency_combo.isVisible() and panel.currency_combo.currentText() == "USD"
    with qtbot.waitSignal(panel.previewed, timeout=10_000):
        panel.currency_combo.setCurrentIndex(panel.currency_combo.findData("EUR"))
        panel.currency_combo.activated.emit(panel.currency_combo.currentIndex())
    assert panel.headline.text() == "1 invoice (1 line)"
    with qtbot.waitSignal(panel.previewed, timeout=10_000):
        panel.set_format("xero")
    assert not panel.currency_combo.isVisible()  # Xero has a currency column
    assert panel.headline.text() == "6 invoices, 1 credit note (11 lines), 5 payments, 1 refund"
    with qtbot.waitSignal(panel.previewed, timeout=10_000):
        panel.set_range(dt.date(2026, 8, 1), dt.date(2026, 8, 31))
    assert panel.headline.text().endswith("there are no invoices in that range; the file holds the headers only.")
    # A range the wrong way round: a sentence, and nothing to export.
    panel.set_range(dt.date(2026, 10, 31), dt.date(2026, 10, 1))
    panel.refresh()
    assert "is after the last day" in panel.headline.text() and not panel.export_button.isEnabled()


def test_export_writes_the_chosen_file(panel: ExportsPanel, qtbot, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(panel.previewed, timeout=10_000):
        panel.set_format("csv")
    asked: list[Path] = []

    def ask(_parent, _title, suggested: Path, _filter: str) -> Path:  # type: ignore[no-untyped-def]
        asked.append(suggested)
        return tmp_path / "october.zip"

    monkeypatch.setattr(exports_panel, "ask_save_path", ask)
    with qtbot.waitSignal(panel.exported, timeout=10_000) as written:
        panel.export_button.click()
    target = tmp_path / "october.zip"
    assert written.args == [target]
    assert asked[0].name == "mspbill-csv-2026-10-01_2026-10-31.zip"
    with zipfile.ZipFile(target) as archive:
        assert archive.read("invoices.csv") == (GOLDEN / "csv" / "invoices.csv").read_bytes()
    assert panel.note.isVisible() and str(target) in panel.note.text()
    assert panel.show_button.isVisible()


def test_a_failed_export_says_why_and_leaves_no_file(panel: ExportsPanel, qtbot, tmp_path: Path,
                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "gone" / "october.csv"
    monkeypatch.setattr(exports_panel, "ask_save_path", lambda *_a: target)
    panel.export_button.click()
    qtbot.waitUntil(lambda: panel.note.isVisible(), timeout=10_000)
    assert "does not exist any more" in panel.note.text()
    assert not target.parent.exists() and not panel.show_button.isVisible()


def test_the_row_labels_are_never_clipped_whatever_the_font(panel: ExportsPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    # "To" showed as "Tc": the mnemonic draws its letter apart from the rest, without the pair's kerning, so a
    # width measured as text (or once, with another font) was too narrow.  A bigger font after building, as a
    # system's scaling or style gives, and a window 960 px wide: every label has room for its letters.
    from PySide6.QtWidgets import QLabel

    font = panel.font()
    font.setPointSizeF(font.pointSizeF() * 1.4)
    panel.setFont(font)
    panel.resize(960, 560)
    qtbot.waitUntil(lambda: panel.width() >= 960)
    panel.layout().activate()
    labels = {lab.text(): lab for lab in panel.findChildren(QLabel) if lab.text() in ("&Format", "F&rom", "&To")}
    assert len(labels) == 3
    for text, label in labels.items():
        metrics = label.fontMetrics()
        letters = sum(metrics.horizontalAdvance(ch) for ch in text.replace("&", ""))
        assert label.width() >= letters, (text, label.width(), letters)
    assert panel.minimumSizeHint().width() <= 960
