"""Fonts for PDFs: bundled, embedded, and chosen per character.

No single free TrueType font covers both European scripts and CJK (ReportLab
embeds TrueType outlines only, so the CFF-based Noto CJK fonts are out).  Text
is therefore split into runs: DejaVu Sans (Latin, Greek, Cyrillic and more)
where it has the glyph, Droid Sans Fallback (Chinese, Japanese kana and kanji)
where it does not.  Both ship in resources/fonts with their licences, and are
embedded (subset) in every PDF, so "Zürich Dental GmbH", "Łódź IT Sp. z o.o."
and "株式会社テスト" print on any machine.  A character neither font has (Hangul,
for one) falls back to DejaVu's missing-glyph box rather than failing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

REGULAR = "MspSans"
BOLD = "MspSans-Bold"
FALLBACK = "MspFallback"
_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf", FALLBACK: "DroidSansFallbackFull.ttf"}


def font_dir() -> Path:
    return Path(str(resources.files("mspbill_resources") / "fonts"))


@functools.cache
def register_fonts() -> None:
    """Register the bundled fonts with ReportLab once per process."""
    folder = font_dir()
    for name, filename in _FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / filename)))
    pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD)


@functools.cache
def _covers(font_name: str) -> frozenset[int]:
    register_fonts()
    font = pdfmetrics.getFont(font_name)
    return frozenset(font.face.charToGlyph)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Run:
    font: str
    text: str


def runs(text: str, *, bold: bool = False) -> list[Run]:
    """Split `text` into runs of one font each, primary font first."""
    primary = BOLD if bold else REGULAR
    main, fallback = _covers(primary), _covers(FALLBACK)
    out: list[Run] = []
    for ch in text:
        code = ord(ch)
        font = FALLBACK if code not in main and code in fallback else primary
        if out and out[-1].font == font:
            out[-1] = Run(font, out[-1].text + ch)
        else:
            out.append(Run(font, ch))
    return out


def markup(text: str, *, bold: bool = False) -> str:
    """Paragraph markup for `text`: escaped, with a <font> tag around each fallback run."""
    parts = []
    for run in runs(text, bold=bold):
        body = escape(run.text)
        if run.font == FALLBACK:
            parts.append(f'<font face="{FALLBACK}">{body}</font>')
        elif bold:
            parts.append(f"<b>{body}</b>")
        else:
            parts.append(body)
    return "".join(parts)


def string_width(text: str, size: float, *, bold: bool = False) -> float:
    """Width in points of `text` set in runs, for layout on a canvas."""
    return sum(pdfmetrics.stringWidth(r.text, r.font, size) for r in runs(text, bold=bold))


def draw_string(canvas: object, x: float, y: float, text: str, size: float, *, bold: bool = False,
                align: str = "left") -> None:
    """Draw one line of text on a ReportLab canvas, switching fonts per run."""
    width = string_width(text, size, bold=bold)
    if align == "right":
        x -= width
    elif align == "center":
        x -= width / 2
    for run in runs(text, bold=bold):
        canvas.setFont(run.font, size)  # type: ignore[attr-defined]
        canvas.drawString(x, y, run.text)  # type: ignore[attr-defined]
        x += pdfmetrics.stringWidth(run.text, run.font, size)


def make_canvas(*args: object, **kwargs: object) -> object:
    """A ReportLab canvas whose initial font is ours, so no unembedded Helvetica
    is referenced (pass as `canvasmaker=` to a platypus document's build)."""
    from reportlab.pdfgen.canvas import Canvas

    register_fonts()
    kwargs["initialFontName"] = REGULAR  # platypus passes Helvetica otherwise
    return Canvas(*args, **kwargs)  # type: ignore[arg-type]
