"""House rule 1: the core never imports Qt.

Checked in a fresh interpreter, because this pytest process may well have
loaded PySide6 already (pytest-qt is installed for the GUI tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mspbill

# Named on purpose, so that a module renamed or dropped is noticed here too.
CORE_MODULES = [
    "mspbill", "mspbill.cli", "mspbill.money", "mspbill.validation",
    "mspbill.clients", "mspbill.agreements", "mspbill.company", "mspbill.audit", "mspbill.secrets",
    "mspbill.settings", "mspbill.paths", "mspbill.context", "mspbill.logs", "mspbill.demo",
    "mspbill.db", "mspbill.db.engine", "mspbill.db.models", "mspbill.db.types", "mspbill.db.schema",
    "mspbill.payments", "mspbill.mail", "mspbill.mail.outbox", "mspbill.pdf.invoice", "mspbill.pdf.statement",
    "mspbill.aging", "mspbill.cli_documents",
]

_CHECK = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import mspbill
    named = json.loads(sys.argv[1])
    found = [m.name for m in pkgutil.walk_packages(mspbill.__path__, "mspbill.")
             # env.py runs Alembic at import; __main__ runs the CLI.
             if not m.name.endswith((".env", "__main__")) and ".migrations.versions." not in m.name]
    for name in sorted(set(named) | set(found)):
        importlib.import_module(name)
    qt = sorted(n for n in sys.modules
                if n.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6", "ui"))
    print(json.dumps({"imported": sorted(set(named) | set(found)), "qt": qt}))
""")


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          cwd=Path(mspbill.__file__).resolve().parent.parent)


def test_importing_every_core_module_loads_no_qt() -> None:
    result = _run(_CHECK, json.dumps(CORE_MODULES))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["qt"] == [], f"the core imported Qt or the ui package: {report['qt']}"
    # The walk really found the package's modules (not an empty, vacuous pass).
    assert {"mspbill.clients", "mspbill.db.schema", "mspbill.cli"} <= set(report["imported"])


def test_a_cli_command_runs_without_loading_qt(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        from mspbill.cli import main
        rc = main(["--data-dir", sys.argv[1], "clients", "list", "--json"])
        loaded = [n for n in sys.modules if n.split(".")[0] in ("PySide6", "shiboken6", "ui")]
        print("QT-MODULES=" + ",".join(loaded) + ";", file=sys.stderr)
        raise SystemExit(rc)
    """)
    result = _run(code, str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "QT-MODULES=;" in result.stderr, result.stderr


def test_the_check_itself_can_fail() -> None:
    """Guard against a vacuous check: importing PySide6 (if installed) is seen."""
    code = _CHECK.replace("for name in", "import importlib.util as u\n"
                          "if u.find_spec('PySide6'): import PySide6.QtCore\nfor name in")
    result = _run(code, json.dumps(CORE_MODULES))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    import importlib.util

    if importlib.util.find_spec("PySide6") is not None:
        assert "PySide6" in report["qt"]
