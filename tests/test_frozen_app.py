"""The frozen app: packaging/mspbill.spec builds a bundle whose programs run without Python.

The Linux bundle is built once for this module with PyInstaller (a couple of minutes on a small
machine), then its two executables run as a user would run them: `mspbill-cli --version`, `demo`
on a new data folder (every migration runs inside the bundle), `invoices pdf`, the keyring, a
PostgreSQL database, and the desktop app `mspbill` offscreen until its first painted frame.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mspbill import __version__
from mspbill.db.schema import MIGRATIONS_DIR, head_revision
from tests.pg_server import PgServer

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "mspbill.spec"

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="the frozen-app test builds the Linux bundle; Windows and macOS are built by hand "
                              "(packaging/README.md)"),
    # The first test also waits for the build (module fixture): 1-4 minutes, more on a busy machine.
    pytest.mark.timeout(1500),
]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's MSPBILL_* settings (a data dir or database URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSPBILL_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Bundle:
    folder: Path
    workpath: Path

    @property
    def cli(self) -> Path:
        return self.folder / "mspbill-cli"

    @property
    def gui(self) -> Path:
        return self.folder / "mspbill"

    def run(self, *args: str, env: dict[str, str] | None = None, input: str = "",
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.cli), *args], check=False, capture_output=True, text=True, encoding="utf-8",
                              env=env or clean_env(), input=input, timeout=timeout, cwd=self.folder)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    pytest.importorskip("PyInstaller", reason="PyInstaller is not installed (pip install -e '.[test]')")
    if shutil.which("objdump") is None:
        pytest.skip("PyInstaller needs objdump on Linux: apt-get install binutils")
    out = tmp_path_factory.mktemp("frozen")
    built = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(out / "dist"), "--workpath", str(out / "build"), str(SPEC)],
        check=False, capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=1200)
    assert built.returncode == 0, f"PyInstaller failed:\n{built.stdout[-3000:]}\n{built.stderr[-6000:]}"
    return Bundle(out / "dist" / "mspbill", out / "build" / "mspbill")


@pytest.fixture(scope="module")
def demo_dir(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo office made by the frozen CLI in a folder that did not exist before."""
    data_dir = tmp_path_factory.mktemp("frozen-office") / "new"
    made = bundle.run("--data-dir", str(data_dir), "demo", "--clients", "4", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["clients"] == 4
    return data_dir


def test_version_prints_the_package_version(bundle: Bundle) -> None:
    shown = bundle.run("--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"mspbill {__version__}"


def test_demo_on_a_new_data_folder_runs_every_migration_inside_the_bundle(bundle: Bundle, demo_dir: Path) -> None:
    shipped = {p.name for p in (bundle.folder / "_internal" / "mspbill" / "db" / "migrations" / "versions").glob("*.py")}
    in_source = {p.name for p in (MIGRATIONS_DIR / "versions").glob("0*.py")}
    assert in_source <= shipped, f"migrations missing from the bundle: {sorted(in_source - shipped)}"
    with sqlite3.connect(demo_dir / "mspbill.sqlite3") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        clients = conn.execute("SELECT COUNT(*) FROM clients").fetchone()[0]
    assert revision == head_revision()
    assert clients == 4


def test_invoice_pdf_from_the_bundle_has_the_number_and_embedded_fonts(bundle: Bundle, demo_dir: Path,
                                                                       tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    listed = bundle.run("--data-dir", str(demo_dir), "invoices", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    number = next(row["number"] for row in json.loads(listed.stdout) if row["number"])
    out = tmp_path / "invoice.pdf"
    saved = bundle.run("--data-dir", str(demo_dir), "invoices", "pdf", number, "--out", str(out))
    assert saved.returncode == 0, saved.stderr
    assert str(out) in saved.stdout
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) >= 1
    assert number in "\n".join(page.extract_text() for page in reader.pages)
    fonts = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            fonts[str(font["/BaseFont"])] = descriptor is not None and any(
                key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))
    assert fonts and all(fonts.values()), f"fonts not embedded: {fonts}"


def test_desktop_app_starts_offscreen_and_paints_its_window(bundle: Bundle, demo_dir: Path) -> None:
    env = clean_env(QT_QPA_PLATFORM="offscreen", MSPBILL_EXIT_AFTER_START="1", MSPBILL_T0=repr(time.time()))
    started = subprocess.run([str(bundle.gui), "--data-dir", str(demo_dir)], check=False, capture_output=True,
                             text=True, env=env, timeout=120, cwd=bundle.folder)
    assert started.returncode == 0, started.stderr
    painted = [line for line in started.stderr.splitlines() if line.startswith("first-paint-seconds ")]
    assert painted, f"the app did not report a painted window:\n{started.stderr}"
    assert float(painted[0].split()[1]) > 0


def test_frozen_cli_keeps_a_password_in_the_secret_service(bundle: Bundle, demo_dir: Path,
                                                           secret_service_env: dict[str, str]) -> None:
    """keyring finds its backends through entry points: the bundle must carry them and SecretStorage."""
    env = clean_env(**secret_service_env)
    env.pop("GNOME_KEYRING_CONTROL", None)
    saved = bundle.run("--data-dir", str(demo_dir), "keys", "set", "smtp", env=env, input="frozen-smtp-password\n")
    assert saved.returncode == 0, saved.stderr
    status = bundle.run("--data-dir", str(demo_dir), "keys", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert "SecretService" in document["keyring"]
    assert document["smtp_password"] is True


@pytest.fixture
def empty_pg_database(pg_server: PgServer) -> Iterator[str]:
    name = pg_server.new_database(template=None)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def test_frozen_cli_migrates_an_empty_postgresql_database(bundle: Bundle, empty_pg_database: str,
                                                          tmp_path: Path) -> None:
    """psycopg (binary wheel, with its libpq) and SQLAlchemy's postgresql+psycopg dialect are in the bundle."""
    upgraded = bundle.run("--data-dir", str(tmp_path), "--db", empty_pg_database, "db", "upgrade", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["revision"] == head_revision()


def test_bundle_carries_resources_and_icons_and_leaves_out_what_the_app_does_not_use(bundle: Bundle) -> None:
    from PIL import Image

    internal = bundle.folder / "_internal"
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DroidSansFallbackFull.ttf", "LICENSE-DejaVu.txt"):
        assert (internal / "mspbill_resources" / "fonts" / name).is_file(), name
    assert (internal / "mspbill_resources" / "mspbill.svg").is_file()
    plugins = internal / "PySide6" / "Qt" / "plugins"
    for needed in ("platforms/libqoffscreen.so", "platforms/libqxcb.so", "printsupport/libcupsprintersupport.so",
                   "imageformats/libqsvg.so", "iconengines/libqsvgicon.so"):
        assert (plugins / needed).is_file(), needed
    names = {p.name for p in internal.rglob("*")}
    unwanted = sorted(n for n in names if n.startswith(("libQt6WebEngine", "libQt6Quick", "libQt6Qml", "libgtk-3",
                                                        "_tkinter", "libqeglfs", "aiohttp", "pytest")))
    assert not unwanted, f"left out on purpose, yet in the bundle: {unwanted}"
    # The Windows and macOS icons are drawn from the SVG at build time, on every platform.
    ico = Image.open(bundle.workpath / "icons" / "mspbill.ico")
    assert {(16, 16), (32, 32), (256, 256)} <= set(ico.info["sizes"])
    assert Image.open(bundle.workpath / "icons" / "mspbill.icns").size == (1024, 1024)
