"""The company profile: validation, the invoice number pattern, the logo."""

from __future__ import annotations

import io
import logging
import struct
import zlib

import pytest
from PIL import Image

from mspbill import audit
from mspbill.company import (
    LOGO_MAX_PIXELS,
    CompanyDraft,
    company_snapshot,
    format_invoice_number,
    normalise_logo,
    save_company,
    validate_company,
)
from mspbill.db.models import AuditEntry, CompanyProfile
from mspbill.validation import ValidationError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _draft(**overrides: str) -> CompanyDraft:
    values = dict(name="Northwind Managed IT, LLC", address_line1="1200 NW Naito Parkway", city="Portland",
                  region="OR", postal_code="97209", country="United States",
                  email="billing@northwind-it.example", phone="(503) 555-0142", tax_id="93-1234567",
                  currency="USD", invoice_number_pattern="INV-{n:06d}", default_payment_terms_days="30")
    values.update(overrides)
    return CompanyDraft(**values)


def _image_bytes(fmt: str, size: tuple[int, int] = (40, 20), mode: str = "RGB", **save: object) -> bytes:
    img = Image.new(mode, size, color=(200, 30, 30) if mode == "RGB" else None)
    if mode == "RGB":
        img.paste((10, 120, 200), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    img.save(out, format=fmt, **save)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- profile ----------------------------------------------------------------


def test_save_and_read_back(db) -> None:
    with db.session() as session, session.begin():
        save_company(session, _draft(currency="eur"))
    db.dispose()
    with db.session() as session:
        snap = company_snapshot(session)
        assert snap is not None
        assert snap.draft.name == "Northwind Managed IT, LLC"
        assert snap.draft.currency == "EUR"
        assert snap.draft.default_payment_terms_days == "30"
        assert snap.logo_png is None and snap.is_demo is False
        assert [e.action for e in audit.history(session, "company", 1)] == ["company.created"]


def test_no_profile_yet(db) -> None:
    with db.session() as session:
        assert company_snapshot(session) is None


def test_saving_again_updates_the_single_row_and_audits(db, count_rows) -> None:
    with db.session() as session, session.begin():
        save_company(session, _draft())
    with db.session() as session, session.begin():
        save_company(session, _draft(name="Northwind IT", invoice_number_pattern="NW-{n}"))
    assert count_rows(db, CompanyProfile) == 1
    with db.session() as session:
        snap = company_snapshot(session)
        assert snap is not None and snap.draft.name == "Northwind IT"
        entries = audit.history(session, "company", 1)
        assert [e.action for e in entries] == ["company.created", "company.updated"]
        assert entries[-1].details["changes"]["name"] == ["Northwind Managed IT, LLC", "Northwind IT"]  # type: ignore[index]


@pytest.mark.parametrize(("pattern", "fragment"), [
    ("INV-", "must contain {n}"),
    ("INV-{number}", "must contain {n}"),
    ("INV-{n!r}", "must contain {n}"),
    ("", "Enter a number pattern"),
    ("INV-{n}-{year}", "cannot be used"),
    ("INV-{n:s}", "cannot be used"),
    ("{0}{n}", "cannot be used"),
    ("INV-{{n}}", "must change with the number"),
    ("INVOICE-NUMBER-FOR-CLIENT-{n:010d}", "too long"),
])
def test_bad_invoice_number_patterns(pattern: str, fragment: str) -> None:
    _, issues = validate_company(_draft(invoice_number_pattern=pattern))
    assert [i.field for i in issues] == ["invoice_number_pattern"]
    assert fragment in issues[0].message


@pytest.mark.parametrize(("pattern", "n", "number"), [
    ("INV-{n:06d}", 42, "INV-000042"),
    ("{n}", 7, "7"),
    ("2026/{n:04d}", 12, "2026/0012"),
])
def test_good_invoice_number_patterns(pattern: str, n: int, number: str) -> None:
    _, issues = validate_company(_draft(invoice_number_pattern=pattern))
    assert issues == []
    assert format_invoice_number(pattern, n) == number


def test_all_problems_reported_and_nothing_saved(db, count_rows) -> None:
    bad = _draft(name="", currency="US Dollars", invoice_number_pattern="INV-", email="billing@",
                 default_payment_terms_days="-1")
    with pytest.raises(ValidationError) as excinfo:
        with db.session() as session, session.begin():
            save_company(session, bad)
    assert set(excinfo.value.by_field()) == {"name", "currency", "invoice_number_pattern", "email",
                                             "default_payment_terms_days"}
    assert count_rows(db, CompanyProfile) == 0
    assert count_rows(db, AuditEntry) == 0


# --- logo ---------------------------------------------------------------------


def test_jpeg_logo_is_stored_as_png(db) -> None:
    jpeg = _image_bytes("JPEG")
    assert jpeg[:3] == b"\xff\xd8\xff"
    with db.session() as session, session.begin():
        save_company(session, _draft(), logo_png=jpeg)
    with db.session() as session:
        snap = company_snapshot(session)
        assert snap is not None and snap.logo_png is not None
        assert snap.logo_png[:8] == PNG_SIGNATURE
        with Image.open(io.BytesIO(snap.logo_png)) as img:
            assert img.format == "PNG" and img.size == (40, 20)
            # The picture survived, not just the container: left blue, right red.
            left, right = img.convert("RGB").getpixel((5, 10)), img.convert("RGB").getpixel((35, 10))
            assert left[2] > 150 and right[0] > 150  # type: ignore[index]


def test_large_logo_is_scaled_down_keeping_its_shape() -> None:
    png = normalise_logo(_image_bytes("PNG", size=(2400, 600)))
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (LOGO_MAX_PIXELS, 150)


@pytest.mark.parametrize(("fmt", "mode"), [("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB"),
                                           ("JPEG", "CMYK"), ("PNG", "LA"), ("PNG", "1")])
def test_other_image_kinds_become_png(fmt: str, mode: str) -> None:
    data = _image_bytes(fmt, mode=mode)
    png = normalise_logo(data)
    assert png[:8] == PNG_SIGNATURE
    with Image.open(io.BytesIO(png)) as img:
        img.load()
        assert img.size == (40, 20)


@pytest.mark.parametrize("data", [
    b"not an image at all",
    b"GIF89a" + b"\x00" * 10,
    PNG_SIGNATURE + b"\x00" * 40,
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
], ids=["text", "gif-header-only", "png-garbage", "pdf"])
def test_malformed_logo_is_a_validation_error(data: bytes) -> None:
    with pytest.raises(ValidationError) as excinfo:
        normalise_logo(data)
    assert [i.field for i in excinfo.value.issues] == ["logo"]
    assert "not an image" in excinfo.value.issues[0].message
    _is_a_clean_sentence(excinfo.value.issues[0].message)


def _is_a_clean_sentence(message: str) -> None:
    """What the office reads: no Python object, address or library wording."""
    for leak in ("<", ">", "0x", "BytesIO", "_io", "cannot identify", "PIL"):
        assert leak not in message, (leak, message)
    assert message.endswith(".") and "PNG, JPEG, GIF, BMP or WebP" in message


def test_truncated_jpeg_is_a_validation_error(caplog: pytest.LogCaptureFixture) -> None:
    jpeg = _image_bytes("JPEG", size=(300, 300), quality=95)
    with caplog.at_level(logging.INFO, logger="mspbill.company"), pytest.raises(ValidationError) as excinfo:
        normalise_logo(jpeg[: len(jpeg) // 2])
    _is_a_clean_sentence(excinfo.value.issues[0].message)
    assert any("Logo refused" in r.getMessage() for r in caplog.records)  # the detail stays in the log


def test_empty_and_oversized_logo_files() -> None:
    with pytest.raises(ValidationError, match="empty"):
        normalise_logo(b"")
    with pytest.raises(ValidationError, match="larger than 5 MB"):
        normalise_logo(b"\xff\xd8\xff" + b"\x00" * 5_000_001)


def test_decompression_bomb_is_refused_without_decoding() -> None:
    """A tiny file claiming 100,000 × 100,000 pixels must not be decoded into memory."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) \
        + _png_chunk(b"IEND", b"")
    with pytest.raises(ValidationError) as excinfo:
        normalise_logo(bomb)
    assert excinfo.value.issues[0].field == "logo"


def test_malformed_logo_saves_nothing(db, count_rows) -> None:
    with pytest.raises(ValidationError):
        with db.session() as session, session.begin():
            save_company(session, _draft(), logo_png=b"\x00garbage")
    assert count_rows(db, CompanyProfile) == 0
    assert count_rows(db, AuditEntry) == 0


def test_logo_kept_when_omitted_and_removed_with_none(db) -> None:
    with db.session() as session, session.begin():
        save_company(session, _draft(), logo_png=_image_bytes("PNG"))
    with db.session() as session, session.begin():
        save_company(session, _draft(phone="555-0000"))
    with db.session() as session:
        snap = company_snapshot(session)
        assert snap is not None and snap.logo_png is not None
    with db.session() as session, session.begin():
        save_company(session, _draft(), logo_png=None)
    with db.session() as session:
        snap = company_snapshot(session)
        assert snap is not None and snap.logo_png is None
        last = audit.history(session, "company", 1)[-1]
        assert last.details["changes"]["logo"] == ["", "removed"]  # type: ignore[index]
