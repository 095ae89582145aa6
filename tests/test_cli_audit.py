"""`mspbill audit` as a real process: filters, the table, --json, --csv, and bad input."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from billing_helpers import issue_ids, make_client, one_time, setup_office

from mspbill.cli import main
from mspbill.context import open_context
from mspbill.db.models import AuditEntry
from mspbill.invoicing import void_invoice

UTC = dt.UTC


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A data folder: a client with two invoices (one voided) and 12 older entries by 'carol'."""
    folder = tmp_path_factory.mktemp("office")
    ctx = open_context(str(folder))
    db = ctx.db
    setup_office(db)
    cid = make_client(db, "Café Zürich")
    other = make_client(db, "Other Co")
    first, second = one_time(db, cid, ("Firewall", "1", "200")), one_time(db, other, ("Backup", "1", "50"))
    issue_ids(db, [first, second], dt.date(2026, 11, 2))
    with db.write_session() as s, s.begin():
        void_invoice(s, first, "Wrong amount")
        s.add_all([AuditEntry(at=dt.datetime(2026, 10, 1, 12, n, tzinfo=UTC), actor="carol", action="invoice.emailed",
                              entity_type="invoice", entity_id=second, summary=f"=HYPERLINK(\"x\") {n}")
                   for n in range(12)])
    ctx.close()
    yield str(folder), cid


def test_filters_and_the_table(cli, office) -> None:  # type: ignore[no-untyped-def]
    folder, _ = office
    result = cli("--data-dir", folder, "audit", "--user", "carol", "--from", "2026-10-01", "--to", "2026-10-01",
                 "--limit", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["When", "Who", "Area", "What", "Item", "Summary"]
    assert len(lines) == 1 + 5 + 2 and all(" carol " in ln for ln in lines[1:6])
    assert "=HYPERLINK(\"x\") 11" in lines[1]  # newest first
    assert lines[-1].startswith("Showing 1–5 of 12 entries, newest first")


def test_one_invoice_and_one_client(office, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    folder, cid = office
    assert main(["--data-dir", folder, "audit", "--invoice", "INV-000001", "--json"]) == 0
    actions = [e["action"] for e in json.loads(capsys.readouterr().out)["entries"]]
    assert actions == ["invoice.voided", "invoice.issued", "invoice.created"]
    # The client's own entries and those of its invoices, not the other client's.
    assert main(["--data-dir", folder, "audit", "--client", str(cid), "--json"]) == 0
    summaries = [e["summary"] for e in json.loads(capsys.readouterr().out)["entries"]]
    assert summaries[-1] == "Created client Café Zürich" and len(summaries) == 4
    assert not any("Other Co" in s or "HYPERLINK" in s for s in summaries)


def test_json_is_one_document(cli, office) -> None:  # type: ignore[no-untyped-def]
    folder, _ = office
    result = cli("--data-dir", folder, "audit", "--area", "invoices", "--search", "wrong AMOUNT", "--json")
    assert result.returncode == 0 and result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["total"] == 1 and doc["filter"]["area"] == "invoices"
    [entry] = doc["entries"]
    assert entry["action_label"] == "Voided" and entry["item"] == "INV-000001" and entry["actor"]
    assert entry["details"]["changes"] == {"status": ["open", "void"]}
    assert entry["details_text"][0] == "Status: open → void"
    assert dt.datetime.fromisoformat(entry["at"]).utcoffset() is not None


def test_csv_saves_every_match_beyond_the_limit(cli, office, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _ = office
    target = tmp_path / "trail.csv"
    result = cli("--data-dir", folder, "audit", "--user", "carol", "--limit", "2", "--csv", str(target))
    assert result.returncode == 0, result.stderr
    assert f"Saved 12 audit entries to {target}" in result.stderr
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 13 and rows[1][5] == "'=HYPERLINK(\"x\") 11"


@pytest.mark.parametrize(("args", "sentence"), [
    (("--from", "2026-13-01"), "--from “2026-13-01” is not a date; write it as YYYY-MM-DD"),
    (("--from", "2026-11-10", "--to", "2026-11-01"), "--to (2026-11-01) is before --from (2026-11-10)"),
    (("--invoice", "INV-999999"), "There is no invoice numbered “INV-999999”"),
    (("--client", "999"), "There is no client 999"),
])
def test_bad_input_is_a_sentence_and_exit_2(office, capsys, args, sentence) -> None:  # type: ignore[no-untyped-def]
    assert main(["--data-dir", office[0], "audit", *args, "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mspbill: ") and sentence in err and "Traceback" not in err


def test_a_bad_date_from_the_console_script(cli, office) -> None:  # type: ignore[no-untyped-def]
    result = cli("--data-dir", office[0], "audit", "--to", "21/11/2026")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("mspbill: --to “21/11/2026” is not a date; write it as YYYY-MM-DD, for example "
                                     "2026-11-01.")
