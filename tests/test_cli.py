"""The command line as a real child process: `python -m mspbill ...`."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mspbill import __version__
from mspbill.db.schema import head_revision
from mspbill.paths import DB_FILENAME


def _json(result) -> Any:
    """The whole of stdout must be one JSON document (--json promises nothing else there)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _parallel(cli, *commands: tuple[str, ...]) -> list:
    """Run independent read-only commands side by side (each is its own process)."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: cli(*args), commands))


def _client_count(path: Path) -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM clients").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    """One default demo office shared by the read-only tests (each CLI run is a new process)."""
    data = tmp_path_factory.mktemp("demo")
    result = cli("--data-dir", str(data), "demo", "--json")
    summary = _json(result)
    assert summary["clients"] == 60
    return data


def test_version(cli) -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mspbill {__version__}"


def test_demo_creates_a_realistic_office(cli, demo_dir: Path) -> None:
    clients_run, agreements_run = _parallel(cli, ("--data-dir", str(demo_dir), "clients", "list", "--json"),
                                            ("--data-dir", str(demo_dir), "agreements", "list", "--json"))
    clients = _json(clients_run)
    assert isinstance(clients, list) and len(clients) == 60
    assert {"id", "legal_name", "primary_email", "monthly_value_cents", "monthly_value", "status"} <= set(clients[0])
    assert all(c["status"] == "active" for c in clients)
    agreements = _json(agreements_run)
    assert isinstance(agreements, list) and 100 <= len(agreements) <= 140
    assert sum(c["agreement_count"] for c in clients) == len(agreements)
    assert (demo_dir / DB_FILENAME).exists()


def test_demo_json_summary_matches_the_lists(cli, tmp_path: Path) -> None:
    summary = _json(cli("--data-dir", str(tmp_path), "demo", "--clients", "5", "--json"))
    assert summary["clients"] == 5
    assert summary["database"] == str(tmp_path / DB_FILENAME)
    clients_run, agreements_run = _parallel(cli, ("--data-dir", str(tmp_path), "clients", "list", "--json"),
                                            ("--data-dir", str(tmp_path), "agreements", "list", "--json"))
    clients, agreements = _json(clients_run), _json(agreements_run)
    assert len(clients) == 5
    assert len(agreements) == summary["agreements"]


def test_demo_twice_is_refused_and_adds_nothing(cli, tmp_path: Path) -> None:
    first = cli("--data-dir", str(tmp_path), "demo", "--clients", "5")
    assert first.returncode == 0, first.stderr
    assert "5 clients" in first.stdout
    second = cli("--data-dir", str(tmp_path), "demo", "--clients", "5")
    assert second.returncode != 0
    assert second.stdout == ""
    assert "already has 5 clients" in second.stderr
    assert "--data-dir" in second.stderr  # says what to do instead
    assert "Traceback" not in second.stderr
    assert _client_count(tmp_path / DB_FILENAME) == 5


def test_clients_search_json(cli, demo_dir: Path) -> None:
    base = ("--data-dir", str(demo_dir), "clients", "list", "--json", "--search")
    found, japanese, nobody = (_json(r) for r in _parallel(
        cli, (*base, "zürich"), (*base, "さくら"), (*base, "no such client")))
    assert [c["legal_name"] for c in found] == ["Zürich Dental GmbH"]
    assert [c["legal_name"] for c in japanese] == ["株式会社さくらデザイン"]
    assert nobody == []


def test_agreements_for_one_client(cli, demo_dir: Path) -> None:
    agreements = _json(cli("--data-dir", str(demo_dir), "agreements", "list", "--json", "--client", "7"))
    assert agreements and all(a["client_id"] == 7 for a in agreements)
    assert all(a["client_name"] == "Zürich Dental GmbH" for a in agreements)


def test_plain_table_output(cli, demo_dir: Path) -> None:
    result = cli("--data-dir", str(demo_dir), "clients", "list", "--search", "dental")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "Client"]
    assert any("Zürich Dental GmbH" in line for line in lines)
    assert lines[-1].endswith("client(s)")


def test_db_upgrade_json(cli, tmp_path: Path) -> None:
    report = _json(cli("--data-dir", str(tmp_path), "db", "upgrade", "--json"))
    assert report == {"database": str(tmp_path / DB_FILENAME), "revision": head_revision()}
    again = _json(cli("--data-dir", str(tmp_path), "db", "upgrade", "--json"))
    assert again == report
    assert not any((tmp_path / "backups").iterdir())  # at head: nothing to migrate, no backup


def test_data_dir_from_the_environment(cli, tmp_path: Path) -> None:
    data = tmp_path / "from-env"
    result = cli("demo", "--clients", "3", env={"MSPBILL_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert _client_count(data / DB_FILENAME) == 3
    assert (data / "logs" / "mspbill.log").exists()
    # The command-line option wins over the environment.
    other = tmp_path / "from-option"
    listed = _json(cli("--data-dir", str(other), "clients", "list", "--json", env={"MSPBILL_DATA_DIR": str(data)}))
    assert listed == []


def test_database_url_option_and_environment(cli, tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "office.sqlite3"
    elsewhere.parent.mkdir()
    url = f"sqlite:///{elsewhere}"
    result = cli("--data-dir", str(tmp_path / "data"), "--db", url, "demo", "--clients", "2", "--json")
    assert _json(result)["database"] == str(elsewhere)
    assert _client_count(elsewhere) == 2
    assert not (tmp_path / "data" / DB_FILENAME).exists()
    listed = _json(cli("--data-dir", str(tmp_path / "data"), "clients", "list", "--json",
                       env={"MSPBILL_DATABASE_URL": url}))
    assert len(listed) == 2


def test_a_corrupt_database_exits_2_and_leaves_the_file_alone(cli, tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = cli("--data-dir", str(tmp_path), "clients", "list", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert str(path) in result.stderr
    assert "has not changed it" in result.stderr and "backup" in result.stderr
    assert "Traceback" not in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_foreign_database_exits_2(cli, tmp_path: Path) -> None:
    path = tmp_path / "other-app.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    result = cli("--data-dir", str(tmp_path), "--db", f"sqlite:///{path}", "clients", "list")
    assert result.returncode == 2
    assert "not an mspbill database" in result.stderr
    assert path.read_bytes() == before


def test_usage_errors(cli, tmp_path: Path) -> None:
    bad_choice, bad_number = _parallel(cli, ("--data-dir", str(tmp_path), "clients", "frobnicate"),
                                       ("--data-dir", str(tmp_path), "demo", "--clients", "many"))
    assert bad_choice.returncode == 2
    assert "invalid choice" in bad_choice.stderr
    assert bad_number.returncode == 2
    assert "invalid int value" in bad_number.stderr
    assert not (tmp_path / DB_FILENAME).exists()  # argparse refused before anything was opened


def test_demo_zero_clients_is_refused_with_a_sentence(cli, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "demo", "--clients", "0")
    assert result.returncode == 2
    assert "between 1 and 100,000 clients" in result.stderr
    assert _client_count(tmp_path / DB_FILENAME) == 0


def test_non_utf8_output_still_prints_every_script(tmp_path):
    """On Windows a redirected stdout defaults to cp1252; names in any script must not crash it."""
    import json
    import os
    import subprocess
    import sys

    data = tmp_path / "office"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSPBILL_")}
    env["PYTHONIOENCODING"] = "cp1252"
    subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", str(data), "demo", "--clients", "40"],
                   check=True, capture_output=True, env=env)
    table = subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", str(data), "clients", "list"],
                           capture_output=True, env=env)
    assert table.returncode == 0, table.stderr
    assert "株式会社さくらデザイン" in table.stdout.decode("utf-8")
    as_json = subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", str(data), "clients", "list",
                              "--json"], capture_output=True, env=env)
    assert as_json.returncode == 0, as_json.stderr
    names = {c["legal_name"] for c in json.loads(as_json.stdout.decode("utf-8"))}
    assert "Zürich Dental GmbH" in names and "株式会社さくらデザイン" in names
