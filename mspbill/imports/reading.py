"""Reading a CSV file a person brings: from a PSA, QuickBooks, or Excel's "Save as CSV".

What comes in is bytes of unknown encoding and separator.  The encoding is found by
trying UTF-8 strictly (with or without a BOM), then UTF-16 when the file starts with its
BOM (Excel's "Unicode text"), then Windows-1252 (Excel's "CSV" on Windows), but only for a
file without a UTF-8 BOM or any UTF-8 letter: a UTF-8 file with one broken byte is refused,
naming the line, rather than read as "CafÃ©".  The separator is found by counting commas,
semicolons and tabs outside quotes in the header line (csv.Sniffer guesses wrongly on
short or quote-heavy files).  Excel's own hint, a first
line "sep=;", is obeyed.  The csv module does the quoting: fields with separators,
doubled quotes and line breaks inside quotes.

Every record keeps the physical line of the file where it starts (quoted line breaks
count), so a problem is reported where the person will look for it.  Whatever is wrong
with the file as a whole raises ImportFileError with a sentence; the size is checked
before a byte is read, so a 100 MB file is refused without being loaded.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_DATA_ROWS = 50_000

SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}


class ImportFileError(ValueError):
    """The file cannot be imported as a whole; the message says why and what to do."""


@dataclass(frozen=True)
class CsvRecord:
    line: int                 # the physical line of the file where the record starts (1-based)
    cells: tuple[str, ...]    # as many as the header has columns (short records are padded)


@dataclass(frozen=True)
class CsvTable:
    """A file's header and records, as read: plain data, safe to hand between threads."""

    file_name: str
    encoding: str             # "UTF-8", "UTF-8 with BOM", "UTF-16", "Windows-1252"
    delimiter: str
    headers: tuple[str, ...]  # unique display names ("Phone", "Phone (2)" for a repeated header)
    records: tuple[CsvRecord, ...]
    # Things worth knowing that do not stop the import (a repeated header name, say).
    notices: tuple[str, ...] = field(default_factory=tuple)
    # Records with more cells than the header has columns: (line, cell count).
    overlong: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    @property
    def separator_name(self) -> str:
        return SEPARATORS.get(self.delimiter, repr(self.delimiter))

    def describe(self) -> str:
        rows = len(self.records)
        return (f"{rows:,} row{'s' if rows != 1 else ''}, {len(self.headers)} columns, "
                f"{self.encoding}, separated by {self.separator_name}s")

    def column_values(self, index: int, limit: int | None = None) -> list[str]:
        """The non-blank values of one column, in file order (the first `limit` of them)."""
        out: list[str] = []
        for rec in self.records:
            value = rec.cells[index].strip()
            if value:
                out.append(value)
                if limit is not None and len(out) >= limit:
                    break
        return out


def _size_text(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def read_csv_file(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES, max_rows: int = MAX_DATA_ROWS) -> CsvTable:
    path = Path(path)
    name = path.name
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise ImportFileError(f"There is no file {path}.") from None
    except OSError as exc:
        raise ImportFileError(f"Could not open {path}: {exc.strerror or exc}.") from None
    if path.is_dir():
        raise ImportFileError(f"{path} is a folder; choose a CSV file.")
    # Before reading anything: a huge file is refused without being loaded into memory.
    if size > max_bytes:
        raise ImportFileError(
            f"{name} is {_size_text(size)}; the limit for one import is {_size_text(max_bytes)}. "
            "Split it into smaller files (for example 10,000 rows each) and import them one after another.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"Could not read {path}: {exc.strerror or exc}.") from None
    return read_csv_bytes(data, name, max_rows=max_rows, max_bytes=max_bytes)


# A well-formed UTF-8 sequence of two to four bytes (RFC 3629, table 3-7 of the Unicode standard).
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}")


def decode(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding name) of the file's bytes, or ImportFileError."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            raise ImportFileError(f"{name} starts like a UTF-16 text file but is not one; "
                                  "save it again from your spreadsheet as “CSV UTF-8”.") from None
    if data.startswith(b"PK\x03\x04"):
        raise ImportFileError(f"{name} is an Excel workbook or another zip file, not a CSV file. In Excel choose "
                              "File › Save As › “CSV UTF-8 (Comma delimited)” and import that file.")
    if b"\x00" in data:
        raise ImportFileError(f"{name} is not a text file (it holds binary data). Choose a CSV file: "
                              "in Excel, File › Save As › “CSV UTF-8 (Comma delimited)”.")
    try:
        text = data.decode("utf-8-sig")
        return text, "UTF-8 with BOM" if data.startswith(codecs.BOM_UTF8) else "UTF-8"
    except UnicodeDecodeError as exc:
        bad = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
    # A file that says it is UTF-8 (a BOM), or writes its letters as UTF-8, is UTF-8 with a broken
    # byte: read as Windows-1252 every "é" would become "Ã©".  Only a file without any UTF-8
    # letter is Windows-1252.
    if data.startswith(codecs.BOM_UTF8) or _UTF8_MULTIBYTE.search(data):
        line_start = data.rfind(b"\n", 0, bad) + 1
        line = data.count(b"\n", 0, bad) + 1
        column = len(data[line_start:bad].decode("utf-8", errors="replace").lstrip("\ufeff")) + 1
        raise ImportFileError(
            f"{name} is UTF-8 text, but line {line} has a byte that is not UTF-8 at character {column} "
            f"(byte 0x{data[bad]:02X}), so letters there cannot be read. Fix that character, or open the file "
            "in your spreadsheet and save it again as “CSV UTF-8”.")
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        raise ImportFileError(f"{name} is neither UTF-8 nor Windows-1252 text; save it again from your "
                              "spreadsheet as “CSV UTF-8”.") from None


def _first_line(text: str) -> str:
    """The header line: up to the first line break outside quotes."""
    in_quotes = False
    for i, ch in enumerate(text):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch in "\r\n" and not in_quotes:
            return text[:i]
    return text


def detect_separator(header_line: str) -> str:
    """The separator the header line uses most, outside quotes; a comma when there is none."""
    counts = dict.fromkeys(SEPARATORS, 0)
    in_quotes = False
    for ch in header_line:
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda sep: (counts[sep], sep == ","))
    return best if counts[best] else ","


def _unique_headers(raw: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Display names for the columns: blanks named by position, repeats numbered; and notices."""
    names: list[str] = []
    seen: dict[str, list[int]] = {}
    for i, h in enumerate(raw):
        name = " ".join(h.split())  # line breaks and runs of blanks in a header cell
        if not name:
            name = f"(column {i + 1})"
        seen.setdefault(name.casefold(), []).append(i)
        count = len(seen[name.casefold()])
        names.append(name if count == 1 else f"{name} ({count})")
    notices = []
    for positions in seen.values():
        if len(positions) > 1:
            first = names[positions[0]]
            cols = ", ".join(str(p + 1) for p in positions)
            shown = ", ".join(f"“{names[p]}”" for p in positions)
            notices.append(f"The header names “{first}” {len(positions)} times (columns {cols}); "
                           f"they are shown as {shown}. Check which one each field should use.")
    return tuple(names), notices


def read_csv_bytes(data: bytes, name: str = "file.csv", *, max_rows: int = MAX_DATA_ROWS,
                   max_bytes: int = MAX_FILE_BYTES) -> CsvTable:
    if len(data) > max_bytes:
        raise ImportFileError(
            f"{name} is {_size_text(len(data))}; the limit for one import is {_size_text(max_bytes)}. "
            "Split it into smaller files and import them one after another.")
    if not data.strip():
        raise ImportFileError(f"{name} is empty: there is nothing to import.")
    text, encoding = decode(data, name)
    if not text.strip().strip("\ufeff"):
        raise ImportFileError(f"{name} is empty: there is nothing to import.")
    start_line = 1
    lines_skipped = 0
    first = _first_line(text)
    stripped_first = first.strip()
    if stripped_first.lower().startswith("sep=") and len(stripped_first) == 5:
        # Excel's hint line, "sep=;": the separator, then the header on the next line.
        delimiter = stripped_first[4]
        rest = text[len(first):]
        text = rest[2:] if rest.startswith("\r\n") else rest[1:]
        lines_skipped = 1
    else:
        delimiter = detect_separator(first)
    start_line += lines_skipped

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True,
                        strict=False)
    header: list[str] | None = None
    records: list[CsvRecord] = []
    overlong: list[tuple[int, int]] = []
    width = 0
    previous_end = 0  # reader.line_num after the previous record
    try:
        for raw in reader:
            line = start_line + previous_end
            previous_end = reader.line_num
            if header is None:
                if not any(c.strip() for c in raw):
                    continue  # blank lines before the header
                header = raw
                # Excel pads every line with separators to the widest row: drop blank trailing header cells.
                while header and not header[-1].strip():
                    header.pop()
                width = len(header)
                continue
            if not any(c.strip() for c in raw):
                continue  # blank lines and Excel's rows of empty cells
            if len(raw) > width:
                extra = raw[width:]
                if any(c.strip() for c in extra):
                    overlong.append((line, len(raw) - sum(1 for _ in _trailing_blanks(raw))))
                raw = raw[:width]
            elif len(raw) < width:
                raw = raw + [""] * (width - len(raw))
            records.append(CsvRecord(line, tuple(raw)))
            if len(records) > max_rows:
                raise ImportFileError(
                    f"{name} has more than {max_rows:,} rows; the limit for one import is {max_rows:,}. "
                    "Split it into smaller files and import them one after another.")
    except csv.Error as exc:
        raise ImportFileError(f"{name} could not be read as CSV near line {start_line + reader.line_num}: {exc}.") from None
    if header is None:
        raise ImportFileError(f"{name} is empty: there is nothing to import.")
    headers, notices = _unique_headers(header)
    if not records:
        raise ImportFileError(f"{name} has a header line but no rows below it: there is nothing to import.")
    return CsvTable(file_name=name, encoding=encoding, delimiter=delimiter, headers=headers,
                    records=tuple(records), notices=tuple(notices), overlong=tuple(overlong))


def _trailing_blanks(raw: list[str]) -> list[str]:
    out: list[str] = []
    for c in reversed(raw):
        if c.strip():
            break
        out.append(c)
    return out
