"""What every PDF renderer returns: the bytes and what to call them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]+')


@dataclass(frozen=True)
class RenderedPdf:
    filename: str  # suggested file name, e.g. "INV-000123 Zürich Dental GmbH.pdf"
    data: bytes
    title: str     # also the PDF's /Title
    pages: int


def safe_filename(stem: str, limit: int = 120) -> str:
    """A file name that Windows, macOS and Linux all accept; non-ASCII letters are kept."""
    text = unicodedata.normalize("NFC", stem)
    text = _UNSAFE.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    return (text[:limit].rstrip(" .") or "document") + ".pdf"
