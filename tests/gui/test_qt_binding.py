"""The Qt binding must not leak or over-release references: a long session calls
Qt methods millions of times (PySide6 6.12.0 on Python 3.11 released None once
per call that returns nothing, and the app aborted)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QLabel


def test_calls_returning_nothing_leave_none_alone(qapp: QApplication) -> None:
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
        qapp.processEvents()
    after = sys.getrefcount(None)
    # Other code may take or drop a few references meanwhile; thousands lost is the bug.
    assert abs(after - before) < 200, f"None lost {before - after} references in 4,000 Qt calls"


def test_the_bundled_cjk_font_is_available_to_qt(qapp: QApplication) -> None:
    from PySide6.QtGui import QFontDatabase

    from ui.app import add_bundled_fonts

    add_bundled_fonts()
    # Qt falls back to it for 株式会社… on machines without CJK fonts.
    assert any("Droid Sans Fallback" in family for family in QFontDatabase.families())
