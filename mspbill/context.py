"""Everything a running mspbill needs: where its files are, its settings, its database."""

from __future__ import annotations

from dataclasses import dataclass

from mspbill.db.engine import Database
from mspbill.db.schema import DatabaseOpenError, open_database
from mspbill.db.server import DatabaseUrlError, normalise, with_saved_password
from mspbill.logs import setup_logging
from mspbill.paths import AppPaths, resolve_database_url, resolve_paths
from mspbill.settings import Settings


@dataclass
class AppContext:
    paths: AppPaths
    settings: Settings
    db: Database

    def close(self) -> None:
        self.db.dispose()


def prepare_paths(data_dir: str | None = None) -> AppPaths:
    paths = resolve_paths(data_dir)
    paths.ensure()
    setup_logging(paths.log_file)
    return paths


def connectable_url(url: str) -> str:
    """The URL as the engine needs it: a server's driver named and its password from the keyring."""
    try:
        return with_saved_password(normalise(url))
    except DatabaseUrlError as exc:
        raise DatabaseOpenError(str(exc)) from exc


def open_context(data_dir: str | None = None, db_url: str | None = None, *,
                 migrate: bool = True) -> AppContext:
    """Resolve paths, start logging, check/back up/migrate the database."""
    paths = prepare_paths(data_dir)
    url = resolve_database_url(paths, db_url)
    db = open_database(connectable_url(url), paths.backup_dir, migrate=migrate)
    return AppContext(paths=paths, settings=Settings(paths.settings_file), db=db)
