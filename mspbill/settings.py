"""The non-secret settings file (JSON under the user config dir).

Secrets never go here (house rule 6): keys named like a secret are refused.
Writes are atomic (temp file + rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_FORBIDDEN_FRAGMENTS = ("password", "secret", "api_key", "token")


class Settings:
    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, Any] = {}
        self.load()

    def load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._data = {}
            return
        try:
            data = json.loads(raw.decode("utf-8"))  # UnicodeDecodeError is a ValueError too
            if not isinstance(data, dict):
                raise ValueError("not an object")
            self._data = data
        except ValueError:
            # A damaged settings file must not stop the app; keep it for support.
            broken = self.path.with_suffix(".broken.json")
            os.replace(self.path, broken)
            log.warning("settings file was unreadable; moved it to %s and started fresh", broken)
            self._data = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        lowered = key.lower()
        if any(f in lowered for f in _FORBIDDEN_FRAGMENTS):
            raise ValueError(f"{key!r} looks like a secret; secrets live in the OS keyring only")
        previous = dict(self._data)
        self._data[key] = value
        try:
            self.save()
        except BaseException:
            self._data = previous  # a value that cannot be saved must not poison later saves
            raise

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
