"""The bundled PDF fonts: every client name renders, with its fonts embedded."""

from __future__ import annotations

from pathlib import Path

import pypdf
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph, SimpleDocTemplate

from mspbill.pdf.fonts import (
    BOLD,
    FALLBACK,
    REGULAR,
    draw_string,
    font_dir,
    make_canvas,
    markup,
    register_fonts,
    runs,
)

NAMES = ["Zürich Dental GmbH", "Łódź IT Sp. z o.o.", "株式会社テスト", "Ελληνική Πληροφορική", "ООО «Сибирь»"]


def _fonts_in(pdf: Path) -> dict[str, bool]:
    """Base font name → whether its file is embedded."""
    found: dict[str, bool] = {}
    for page in pypdf.PdfReader(pdf).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            embedded = descriptor is not None and any(
                key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            found[str(font["/BaseFont"])] = embedded
    return found


def test_the_bundled_fonts_and_their_licences_ship_together() -> None:
    names = {p.name for p in font_dir().iterdir()}
    assert {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DroidSansFallbackFull.ttf"} <= names
    assert {"LICENSE-DejaVu.txt", "LICENSE-DroidSansFallback.txt", "Apache-2.0.txt"} <= names


def test_text_is_split_into_runs_by_which_font_has_the_glyph() -> None:
    assert runs("Zürich") == [runs("Zürich")[0]] and runs("Zürich")[0].font == REGULAR
    mixed = runs("ACME 株式会社 (Tokyo)")
    assert [(r.font, r.text) for r in mixed] == [
        (REGULAR, "ACME "), (FALLBACK, "株式会社"), (REGULAR, " (Tokyo)")]
    assert {r.font for r in runs("Łódź", bold=True)} == {BOLD}
    assert markup("A & B <株>") == f'A &amp; B &lt;<font face="{FALLBACK}">株</font>&gt;'


def test_paragraphs_and_canvas_text_render_every_name_with_fonts_embedded(tmp_path: Path) -> None:
    register_fonts()
    story_pdf = tmp_path / "story.pdf"
    style = ParagraphStyle("body", fontName=REGULAR, fontSize=11, leading=14)
    SimpleDocTemplate(str(story_pdf), pagesize=A4).build(
        [Paragraph(markup(name), style) for name in NAMES] + [Paragraph(markup(NAMES[2], bold=True), style)],
        canvasmaker=make_canvas)
    canvas_pdf = tmp_path / "canvas.pdf"
    canvas = make_canvas(str(canvas_pdf), pagesize=A4)
    for i, name in enumerate(NAMES):
        draw_string(canvas, 72, 700 - 20 * i, name, 12, bold=i % 2 == 1)
    canvas.save()  # type: ignore[attr-defined]
    for pdf in (story_pdf, canvas_pdf):
        text = "".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages)
        for name in NAMES:
            assert name in text, (pdf.name, name)
        fonts = _fonts_in(pdf)
        assert fonts and all(fonts.values()), fonts
        assert any("MspFallback" in f or "DroidSans" in f for f in fonts), fonts
