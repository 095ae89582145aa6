"""`mspbill backup`, `backup list` and `restore` as real processes: JSON alone on stdout, one
sentence on stderr with exit 2, no restore without a person at a terminal (or --yes), the typed
confirmation at a terminal, and a restore that works when the current database is damaged.

Most run `mspbill.cli.main` in this process (the console script's start-up alone takes seconds);
the two that check the process's own output and the damaged database run the real script."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from mspbill.db.schema import open_database
from mspbill.demo import create_demo_office
from mspbill.paths import resolve_paths


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-office")
    paths = resolve_paths(root)
    paths.ensure()
    db = open_database(paths.default_database_url, paths.backup_dir)
    try:
        with db.write_session() as s, s.begin():
            create_demo_office(s, clients=4, seed=5)
    finally:
        db.dispose()
    return root


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "data")
    return tmp_path / "data"


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command in this process (the console script's start-up costs seconds; see the two below)."""
    from mspbill.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_backup_into_the_folder_and_to_a_file(capsys: pytest.CaptureFixture[str], data: Path,
                                              tmp_path: Path) -> None:
    code, out, _err = _main(capsys, "--data-dir", str(data), "backup")
    assert code == 0 and "Backed up to" in out and "-manual.sqlite3" in out and "4 client(s)" in out
    copy = tmp_path / "copy.sqlite3"
    code, out, _err = _main(capsys, "--data-dir", str(data), "backup", "--out", str(copy), "--json")
    assert code == 0 and json.loads(out)["file"] == str(copy) and json.loads(out)["clients"] == 4
    code, _out, err = _main(capsys, "--data-dir", str(data), "backup", "--out", str(copy))
    assert code == 2 and err.startswith("mspbill: ") and "already exists" in err
    code, out, _err = _main(capsys, "--data-dir", str(data), "backup", "list", "--json")
    rows = json.loads(out)["backups"]
    assert code == 0 and [r["reason"] for r in rows] == ["manual"] and rows[0]["automatic"] is False
    code, out, err = _main(capsys, "--data-dir", str(data), "--db", "postgresql://u:secret@db.example/office",
                           "backup")
    assert code == 2 and out == "" and "pg_dump" in err and "secret" not in err


class _Terminal:
    def isatty(self) -> bool:
        return True


def test_restore_asks_at_a_terminal_and_refuses_without_one(capsys: pytest.CaptureFixture[str], data: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _err = _main(capsys, "--data-dir", str(data), "backup", "--json")
    backup = json.loads(out)["file"]
    db_file = data / "mspbill.sqlite3"
    before = _sha(db_file)
    code, out, err = _main(capsys, "--data-dir", str(data), "restore", backup)   # pytest's stdin: no terminal
    assert code == 2 and "--yes" in err and "Nothing was changed" in err
    assert "It replaces the current database (4 client(s)" in out   # what it would have replaced was shown
    assert _sha(db_file) == before
    monkeypatch.setattr(sys, "stdin", _Terminal())
    typed = iter(["no thanks", "restore"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(typed))
    code, out, err = _main(capsys, "--data-dir", str(data), "restore", backup)
    assert code == 2 and "nothing was changed" in err and _sha(db_file) == before
    code, out, err = _main(capsys, "--data-dir", str(data), "restore", backup)
    assert code == 0 and "Restored" in out and "restore that file to undo" in out
    assert len(list((data / "backups").glob("*-before-restore.sqlite3"))) == 1


def test_restore_yes_json_prints_the_document_alone(cli, data: Path) -> None:
    from mspbill.backups import take_backup

    backup = take_backup(data / "mspbill.sqlite3", data / "backups", "manual")
    done = cli("--data-dir", str(data), "restore", str(backup), "--yes", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)   # stdout is the JSON document alone
    assert doc["clients"] == 4 and doc["before_restore_backup"].endswith("-before-restore.sqlite3")
    assert "Charges, payments and e-mails" in done.stderr   # what is lost was said, on stderr


def test_restore_works_when_the_current_database_is_damaged(cli, data: Path) -> None:
    from mspbill.backups import take_backup
    from mspbill.db.schema import DatabaseCorruptError, check_sqlite_file

    backup = str(take_backup(data / "mspbill.sqlite3", data / "backups", "manual"))
    db_file = data / "mspbill.sqlite3"
    with db_file.open("r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(os.urandom(4096 * 8))
    with pytest.raises(DatabaseCorruptError):   # what `mspbill clients list` would say
        check_sqlite_file(db_file)
    fixed = cli("--data-dir", str(data), "restore", backup, "--yes")
    assert fixed.returncode == 0, fixed.stderr
    assert "damaged database was kept as" in fixed.stdout
    listed = cli("--data-dir", str(data), "clients", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 4
    assert len(list(data.glob("mspbill.sqlite3.damaged-*"))) >= 1
