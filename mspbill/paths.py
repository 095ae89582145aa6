"""Where mspbill keeps its files (platformdirs, or one folder given by the user).

`--data-dir DIR` / MSPBILL_DATA_DIR puts everything (database, backups, logs,
settings) under DIR; otherwise platformdirs decides per operating system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "mspbill"
APP_AUTHOR = "mspbill"
DB_FILENAME = "mspbill.sqlite3"


@dataclass(frozen=True)
class AppPaths:
    data_dir: Path
    config_dir: Path
    log_dir: Path

    @property
    def database_file(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def backup_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "mspbill.log"

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.database_file}"

    def ensure(self) -> None:
        for d in (self.data_dir, self.config_dir, self.log_dir, self.backup_dir):
            d.mkdir(parents=True, exist_ok=True)


def resolve_paths(data_dir: str | os.PathLike[str] | None = None) -> AppPaths:
    chosen = data_dir or os.environ.get("MSPBILL_DATA_DIR") or None
    if chosen:
        root = Path(chosen).expanduser().resolve()
        return AppPaths(data_dir=root, config_dir=root, log_dir=root / "logs")
    return AppPaths(
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)),
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)),
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR)),
    )


def resolve_database_url(paths: AppPaths, db_url: str | None = None) -> str:
    """--db, then MSPBILL_DATABASE_URL, then the server named in Settings → Data, then the SQLite file.

    The URL as given (a server's password is added from the keyring when it is opened:
    mspbill.db.server.with_saved_password).
    """
    chosen = db_url or os.environ.get("MSPBILL_DATABASE_URL")
    if chosen:
        return chosen
    from mspbill.db.server import saved_url
    from mspbill.settings import Settings

    return saved_url(Settings(paths.settings_file)) or paths.default_database_url
