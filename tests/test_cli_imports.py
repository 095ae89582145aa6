"""`mspbill import clients|agreements FILE` as a real process on a real data folder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


def test_import_clients_dry_run_errors_then_commit_and_agreements(cli, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    bad = tmp_path / "clients.csv"
    # Windows-1252 with semicolons, as Excel saves it in a European locale; the contact column is named
    # by --map because its header is nothing the import knows.
    bad.write_bytes("Firma;E-Mail;Ansprechpartner;Tax Rate\n"
                    "Café Müller;cafe@mueller.example;Anna;7\n"
                    "Bäckerei Schmidt;not-an-address;Bernd;150\n".encode("cp1252"))
    dry = cli(*data, "import", "clients", str(bad), "--dry-run", "--map", "legal_name=Firma",
              "--map", "contact_name=Ansprechpartner", "--json")
    assert dry.returncode == 2, dry.stderr
    doc = json.loads(dry.stdout)  # one JSON document and nothing else on stdout
    assert doc["dry_run"] is True and doc["ok"] is False and doc["encoding"] == "Windows-1252"
    assert doc["separator"] == "semicolon" and doc["mapping"]["contact_name"] == "Ansprechpartner"
    assert doc["counts"] == {"create": 1, "update": 0, "skip": 0, "error": 1}
    assert [p["column"] for p in doc["rows"][1]["problems"]] == ["E-Mail", "Tax Rate"]

    refused = cli(*data, "import", "clients", str(bad), "--map", "legal_name=Firma")
    assert refused.returncode == 2
    assert "was not imported; nothing was written. 2 problems to fix" in refused.stderr
    assert "Line 3, column “E-Mail”: “not-an-address” is not a valid e-mail address" in refused.stderr
    assert "Traceback" not in refused.stderr
    database = tmp_path / "data" / "mspbill.sqlite3"
    with sqlite3.connect(database) as con:
        assert con.execute("select count(*) from clients").fetchone() == (0,)

    good = tmp_path / "good.csv"
    good.write_text("Company Name,Billing Email\nCafé Müller,cafe@mueller.example\nAcme,ap@acme.example\n",
                    encoding="utf-8-sig")
    done = cli(*data, "import", "clients", str(good))
    assert done.returncode == 0, done.stderr
    assert "Imported good.csv: 2 clients created, 0 updated, 0 skipped." in done.stdout

    lines = tmp_path / "agreements.csv"
    lines.write_text("Client,Agreement,Start Date,Description,Qty,Rate\n"
                     "Acme,Managed IT,2026-11-01,Seats,10,$45.00\n"
                     "ap@acme.example,Managed IT,,Backup,1,\"1,250.00\"\n", encoding="utf-8")
    result = cli(*data, "import", "agreements", str(lines))
    assert result.returncode == 0, result.stderr
    assert "Imported agreements.csv: 1 agreement created" in result.stdout
    with sqlite3.connect(database) as con:
        assert con.execute("select count(*) from agreement_lines").fetchone() == (2,)
