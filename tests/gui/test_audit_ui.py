"""Reports → Audit trail in the desktop app: the filters go to the database, pages of the trail
(newest first) with "Showing a–b of n", the selected entry's changes, and the CSV export of every
entry matching the filter."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from mspbill.db.models import AuditEntry
from tests.gui.conftest import wait_idle
from ui import audit_panel
from ui.audit_panel import AuditPanel

TODAY = dt.date(2026, 11, 21)
NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def trail(app_ctx) -> None:
    """12 e-mails by carol over the last days, a void by bob, an entry from last year."""
    with app_ctx.db.write_session() as s, s.begin():
        s.add_all([AuditEntry(at=NOON - dt.timedelta(hours=n), actor="carol", action="invoice.emailed",
                              entity_type="invoice", entity_id=100 + n, summary=f"E-mailed INV-{n:06d}")
                   for n in range(12)])
        s.add(AuditEntry(at=NOON + dt.timedelta(hours=1), actor="bob", action="invoice.voided", entity_type="invoice",
                         entity_id=1, summary="Voided INV-000001 (was open): =HYPERLINK(\"x\")",
                         details={"changes": {"status": ["open", "void"]}, "reason": "Wrong client"}))
        s.add(AuditEntry(at=NOON - dt.timedelta(days=365), actor="dave", action="payment.recorded",
                         entity_type="invoice", entity_id=2, summary="Recorded payment of $5.00 by check"))


@pytest.fixture
def panel(app_ctx, ops, qtbot, trail, monkeypatch: pytest.MonkeyPatch) -> AuditPanel:
    monkeypatch.setattr(audit_panel, "PAGE_SIZE", 5)
    widget = AuditPanel(ops, today=lambda: TODAY)
    qtbot.addWidget(widget)
    widget.resize(1100, 650)
    with qtbot.waitSignal(widget.loaded, timeout=10_000):
        widget.show()
    return widget


def _summaries(panel: AuditPanel) -> list[str]:
    return [r.summary for r in panel.model.visible_rows()]


def _change(qtbot, panel: AuditPanel, action) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        action()


def test_pages_newest_first_and_filters(qtbot, panel: AuditPanel) -> None:
    # The last 30 days: last year's payment is not on show.
    assert panel.status.text() == "Showing 1–5 of 13 entries, newest first"
    assert _summaries(panel)[0].startswith("Voided INV-000001")
    assert panel.newer_button.isEnabled() is False and panel.older_button.isEnabled()
    _change(qtbot, panel, panel.older_button.click)
    assert panel.status.text().startswith("Showing 6–10 of 13") and _summaries(panel)[0] == "E-mailed INV-000004"
    # The users who changed anything, in the combo; choosing one starts again at the first page.
    assert [panel.user_combo.itemText(i) for i in range(panel.user_combo.count())] == [
        "Everyone", "bob", "carol", "dave"]
    _change(qtbot, panel, lambda: panel.set_user("bob"))
    assert _summaries(panel) == ['Voided INV-000001 (was open): =HYPERLINK("x")']
    _change(qtbot, panel, lambda: panel.set_user(None))
    _change(qtbot, panel, lambda: panel.set_area("payments"))
    assert panel.model.rowCount() == 0 and panel.status.text().startswith("No entries match")
    _change(qtbot, panel, lambda: panel.set_range(dt.date(2025, 1, 1), TODAY))
    assert _summaries(panel) == ["Recorded payment of $5.00 by check"]
    _change(qtbot, panel, lambda: panel.set_area(None))
    _change(qtbot, panel, lambda: panel.search.setText("inv-000011"))
    assert _summaries(panel) == ["E-mailed INV-000011"]


def test_selecting_an_entry_shows_its_changes(qtbot, panel: AuditPanel) -> None:
    panel.table.selectRow(0)
    text = panel.details.toPlainText()
    assert text.startswith("Voided — Invoice #1 (deleted)")
    assert "by bob · Invoices" in text and "Status: open → void" in text and "Reason: Wrong client" in text
    panel.table.clearSelection()
    assert panel.details.toPlainText() == ""


def test_export_writes_every_matching_entry(qtbot, ops, panel: AuditPanel, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "audit.csv"
    monkeypatch.setattr(audit_panel, "ask_save_path", lambda *_a: target)
    _change(qtbot, panel, lambda: panel.set_user("carol"))
    assert panel.model.rowCount() == 5  # one page on show…
    with qtbot.waitSignal(panel.saved, timeout=10_000):
        panel.csv_button.click()
    wait_idle(qtbot, ops)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 1 + 12 and {r[1] for r in rows[1:]} == {"carol"}  # …all twelve saved
    assert rows[0] == ["When", "Who", "Area", "Action", "Item", "Summary", "Details"]
    assert "Saved 12 audit entries" in panel.note.text()


def test_the_default_range_moves_on_with_the_calendar(qtbot, panel: AuditPanel) -> None:
    flt = panel.current_filter()
    assert (flt.from_day, flt.to_day) == (dt.date(2026, 10, 23), TODAY)  # the last 30 days
    panel.today = lambda: TODAY + dt.timedelta(days=1)                   # left open overnight
    _change(qtbot, panel, panel.reload)
    assert panel.current_filter().to_day == dt.date(2026, 11, 22)
    _change(qtbot, panel, lambda: panel.set_range(dt.date(2026, 11, 1), dt.date(2026, 11, 5)))
    panel.today = lambda: TODAY + dt.timedelta(days=2)                   # days someone picked stay
    _change(qtbot, panel, panel.reload)
    assert (panel.current_filter().from_day, panel.current_filter().to_day) == (dt.date(2026, 11, 1),
                                                                              dt.date(2026, 11, 5))
