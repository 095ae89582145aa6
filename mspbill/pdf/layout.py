"""The page frame shared by invoices and statements.

One place decides what every mspbill PDF looks like: paper, margins, type
styles, how dates and amounts print, the company block with its logo, the
compact header repeated on every page after the first, the "Page x of y"
footer and the DRAFT / VOID watermark.  Rendering takes a frozen snapshot (no
ORM objects), so it runs on any thread.

"Page x of y" needs the page count before the first page is finished: the
canvas keeps each page's drawing state and writes the footers when the
document is saved (ReportLab's "numbered canvas" recipe), so the story is laid
out once.  Every text on the page goes through fonts.markup/draw_string, and
the canvas starts with our font, so only the bundled fonts are referenced and
all of them are embedded.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    PageTemplate,
    Paragraph,
    Table,
    TableStyle,
)
from sqlalchemy.orm import Session

from mspbill.db.models import CompanyProfile
from mspbill.money import format_amount
from mspbill.pdf import fonts
from mspbill.pdf.fonts import (
    BOLD,
    REGULAR,
    draw_string,
    register_fonts,
    string_width,
)

log = logging.getLogger(__name__)

# Binary streams, not ASCII85 text: without ReportLab's optional C accelerator the
# pure-Python ASCII85 encoder of the logo and font streams takes a fifth of each
# invoice's time, to make a file a quarter larger.  PDF has been binary-safe forever.
rl_config.useA85 = 0

PAPER = {"letter": LETTER, "a4": A4}
MARGIN_X = 50.0
MARGIN_TOP = 46.0
MARGIN_BOTTOM = 56.0
LATER_HEADER_HEIGHT = 16.0  # room the compact header takes on pages 2..n

INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#616e7c")
RULE = colors.HexColor("#cbd2d9")
SHADE = colors.HexColor("#f0f4f8")
ACCENT = colors.HexColor("#1d4e89")
ADJUST = colors.HexColor("#8d5b00")
GOOD = colors.HexColor("#1c7c54")
BAD = colors.HexColor("#b42318")

LOGO_MAX_WIDTH = 170.0
LOGO_MAX_HEIGHT = 64.0

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def page_size(paper: str) -> tuple[float, float]:
    return PAPER.get((paper or "").lower(), LETTER)


def fmt_date(day: dt.date | None) -> str:
    """3 Dec 2026: unambiguous in every English-speaking country (no locale involved)."""
    if day is None:
        return "—"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def fmt_range(start: dt.date | None, end: dt.date | None) -> str:
    if start is None:
        return ""
    if end is None or end == start:
        return fmt_date(start)
    return f"{fmt_date(start)} – {fmt_date(end)}"


def money(cents: int, currency: str) -> str:
    return format_amount(cents, currency)


# --- type styles ------------------------------------------------------------------

@dataclass(frozen=True)
class Styles:
    body: ParagraphStyle
    small: ParagraphStyle
    muted: ParagraphStyle
    cell: ParagraphStyle
    cell_right: ParagraphStyle
    head: ParagraphStyle
    head_right: ParagraphStyle
    title: ParagraphStyle
    subtitle: ParagraphStyle
    company: ParagraphStyle
    section: ParagraphStyle
    big_right: ParagraphStyle


@functools.cache
def styles() -> Styles:
    register_fonts()

    def style(name: str, size: float, leading: float, *, color: colors.Color = INK, align: int = TA_LEFT,
              font: str = REGULAR, after: float = 0) -> ParagraphStyle:
        # splitLongWords: a 2,000-character word (or CJK text without spaces) still wraps inside its column.
        return ParagraphStyle(name, fontName=font, fontSize=size, leading=leading, textColor=color,
                              alignment=align, spaceAfter=after, splitLongWords=1)

    return Styles(
        body=style("body", 9.5, 13),
        small=style("small", 8.5, 11.5),
        muted=style("muted", 8.5, 11.5, color=MUTED),
        cell=style("cell", 9, 12),
        cell_right=style("cell_right", 9, 12, align=TA_RIGHT),
        head=style("head", 8, 10, color=MUTED, font=BOLD),
        head_right=style("head_right", 8, 10, color=MUTED, font=BOLD, align=TA_RIGHT),
        title=style("title", 22, 26, color=ACCENT, font=BOLD, align=TA_RIGHT),
        subtitle=style("subtitle", 12, 15, color=ACCENT, font=BOLD, align=TA_RIGHT),
        company=style("company", 12, 15, font=BOLD),
        section=style("section", 9, 12, color=ACCENT, font=BOLD, after=3),
        big_right=style("big_right", 15, 19, font=BOLD, align=TA_RIGHT),
    )


# The same descriptions, labels and names come back on every invoice of a run.
markup = functools.lru_cache(maxsize=8192)(fonts.markup)

# Plain-string cells (amounts, quantities, dates): our font, the size and colour of `cell`.
NUMBER_CELLS: tuple[tuple[object, ...], ...] = (
    ("FONTNAME", (0, 0), (-1, -1), REGULAR), ("FONTSIZE", (0, 0), (-1, -1), 9), ("LEADING", (0, 0), (-1, -1), 12),
    ("TEXTCOLOR", (0, 0), (-1, -1), INK), ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ("LEFTPADDING", (0, 0), (-1, -1), 4), ("RIGHTPADDING", (0, 0), (-1, -1), 4))


def head_row(columns: tuple[int, int] = (0, -1)) -> list[tuple[object, ...]]:
    """A table's first row as column heads: small bold capitals, muted."""
    a, b = columns
    return [("FONTNAME", (a, 0), (b, 0), BOLD), ("FONTSIZE", (a, 0), (b, 0), 8), ("LEADING", (a, 0), (b, 0), 10),
            ("TEXTCOLOR", (a, 0), (b, 0), MUTED)]


def para(text: str, style: ParagraphStyle, *, bold: bool = False) -> Paragraph:
    """A paragraph of plain text (escaped; CJK in the fallback font; newlines kept)."""
    return Paragraph("<br/>".join(markup(part, bold=bold) for part in text.split("\n")), style)


def para_markup(fragments: Sequence[str], style: ParagraphStyle) -> Paragraph:
    """A paragraph of pre-built markup fragments (from fonts.markup), joined by line breaks."""
    return Paragraph("<br/>".join(fragments), style)


def colored(text: str, color: colors.Color, *, bold: bool = False) -> str:
    return f'<font color="{color.hexval()}">{markup(text, bold=bold)}</font>'


# --- the logo ---------------------------------------------------------------------

@dataclass(frozen=True)
class LogoImage:
    reader: ImageReader
    width: float   # as drawn, in points
    height: float


@functools.lru_cache(maxsize=8)
def _logo_for_digest(digest: str, data: bytes) -> LogoImage | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            picture: Image.Image = opened.copy()
        # Drawn at most LOGO_MAX_* points: 3 pixels a point (216 dpi) is sharp on paper,
        # and a small image keeps each PDF small and quick to write.
        picture.thumbnail((int(LOGO_MAX_WIDTH * 3), int(LOGO_MAX_HEIGHT * 3)))
        if picture.mode not in ("RGB", "RGBA"):
            has_alpha = "A" in picture.mode or "transparency" in picture.info
            picture = picture.convert("RGBA" if has_alpha else "RGB")
        if picture.mode == "RGBA":
            # Flatten on white: an alpha channel doubles the image data for no visible gain on paper.
            flat = Image.new("RGB", picture.size, (255, 255, 255))
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        width_px, height_px = picture.size
    except Exception as exc:  # noqa: BLE001 - any undecodable blob: print without the logo
        log.warning("The company logo cannot be read (%s); printing without it.", exc)
        return None
    if width_px < 1 or height_px < 1:
        return None
    scale = min(LOGO_MAX_WIDTH / width_px, LOGO_MAX_HEIGHT / height_px)
    reader = ImageReader(picture)
    reader.getRGBData()  # decoded now, once: the cached reader is then only read, from any thread
    return LogoImage(reader, width_px * scale, height_px * scale)


def logo_image(data: bytes | None) -> LogoImage | None:
    """The company logo, decoded and scaled once per process; None when absent or unreadable."""
    if not data:
        return None
    return _logo_for_digest(hashlib.sha1(data).hexdigest(), data)


class LogoFlowable(Flowable):
    def __init__(self, logo: LogoImage):
        super().__init__()
        self.logo = logo
        self.width, self.height = logo.width, logo.height

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        self.canv.drawImage(self.logo.reader, 0, 0, self.width, self.height)


# --- the page frame -----------------------------------------------------------------

@dataclass(frozen=True)
class PageFrame:
    """What the frame prints around the story on each page."""

    paper: str
    compact_header: tuple[str, str, str]  # left, middle, right: on pages 2..n
    footer_left: str                       # e.g. "Acme IT · Invoice INV-000123"
    watermark: str = ""                    # "DRAFT", "VOID" or ""
    watermark_color: colors.Color = RULE


def _draw_watermark(canvas: Canvas, frame: PageFrame, width: float, height: float) -> None:
    if not frame.watermark:
        return
    canvas.saveState()
    canvas.setFillColor(frame.watermark_color)
    canvas.setFillAlpha(0.18)
    canvas.translate(width / 2, height / 2)
    canvas.rotate(35)
    size = 120.0
    while string_width(frame.watermark, size, bold=True) > height * 0.8 and size > 40:
        size -= 10
    draw_string(canvas, 0, -size / 3, frame.watermark, size, bold=True, align="center")
    canvas.restoreState()


def _draw_compact_header(canvas: Canvas, frame: PageFrame, width: float, height: float) -> None:
    left, middle, right = frame.compact_header
    y = height - MARGIN_TOP + 8
    canvas.saveState()
    canvas.setFillColor(INK)
    usable = width - 2 * MARGIN_X
    draw_string(canvas, MARGIN_X, y, _clip(left, 9, usable * 0.29, True), 9, bold=True)
    canvas.setFillColor(MUTED)
    draw_string(canvas, width / 2, y, _clip(middle, 9, usable * 0.38), 9, align="center")
    draw_string(canvas, width - MARGIN_X, y, _clip(right, 9, usable * 0.29), 9, align="right")
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.6)
    canvas.line(MARGIN_X, y - 7, width - MARGIN_X, y - 7)
    canvas.restoreState()


def _clip(text: str, size: float, width: float, bold: bool = False) -> str:
    if string_width(text, size, bold=bold) <= width:
        return text
    while text and string_width(text + "…", size, bold=bold) > width:
        text = text[:-1]
    return text + "…"


def _draw_footer(canvas: Canvas, frame: PageFrame, page: int, pages: int) -> None:
    width, _height = canvas._pagesize  # type: ignore[attr-defined]
    y = MARGIN_BOTTOM - 28
    canvas.saveState()
    canvas.setStrokeColor(RULE)
    canvas.setLineWidth(0.6)
    canvas.line(MARGIN_X, y + 12, width - MARGIN_X, y + 12)
    canvas.setFillColor(MUTED)
    draw_string(canvas, MARGIN_X, y, _clip(frame.footer_left, 8, width - 2 * MARGIN_X - 90), 8)
    draw_string(canvas, width - MARGIN_X, y, f"Page {page} of {pages}", 8, align="right")
    canvas.restoreState()


class PagedCanvas(Canvas):
    """A canvas that holds each page back until the end, to print "Page x of y"."""

    def __init__(self, *args: object, frame: PageFrame, sink: list[int], **kwargs: object) -> None:
        register_fonts()
        kwargs["initialFontName"] = REGULAR  # platypus passes Helvetica otherwise (never embedded)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._frame = frame
        self._sink = sink
        self._pages: list[dict[str, object]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            _draw_footer(self, self._frame, number, total)
            # Over the content, translucent: a shaded table row cannot hide it.
            _draw_watermark(self, self._frame, *self._pagesize)  # type: ignore[attr-defined]
            Canvas.showPage(self)
        self._sink.append(total)
        Canvas.save(self)


@dataclass(frozen=True)
class Metadata:
    title: str
    author: str
    subject: str
    keywords: str = ""


# ReportLab keeps module-level state (rl_config, font and glyph caches, the
# subsetting of embedded fonts) that is not safe to change from two threads at
# once; the app renders on a thread pool (a preview while the outbox sends).
_BUILD_LOCK = threading.Lock()


def build_pdf(story: list[Flowable], frame: PageFrame, meta: Metadata) -> tuple[bytes, int]:
    """Lay out `story` on the paper of `frame`; returns the PDF and its page count."""
    with _BUILD_LOCK:
        return _build_pdf(story, frame, meta)


def _build_pdf(story: list[Flowable], frame: PageFrame, meta: Metadata) -> tuple[bytes, int]:
    register_fonts()
    size = page_size(frame.paper)
    width, height = size
    out = io.BytesIO()
    doc = BaseDocTemplate(out, pagesize=size, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=MARGIN_TOP,
                          bottomMargin=MARGIN_BOTTOM, title=meta.title, author=meta.author, subject=meta.subject,
                          keywords=meta.keywords, creator="mspbill", producer="mspbill (ReportLab)")
    body_width = width - 2 * MARGIN_X
    first = Frame(MARGIN_X, MARGIN_BOTTOM, body_width, height - MARGIN_TOP - MARGIN_BOTTOM, id="first",
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
    later = Frame(MARGIN_X, MARGIN_BOTTOM, body_width, height - MARGIN_TOP - MARGIN_BOTTOM - LATER_HEADER_HEIGHT,
                  id="later", leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)

    def on_later(canvas: Canvas, _doc: object) -> None:
        _draw_compact_header(canvas, frame, width, height)

    doc.addPageTemplates([PageTemplate("first", [first], autoNextPageTemplate="later"),
                          PageTemplate("later", [later], onPage=on_later)])
    sink: list[int] = []

    def canvasmaker(*args: object, **kwargs: object) -> PagedCanvas:
        return PagedCanvas(*args, frame=frame, sink=sink, **kwargs)

    doc.build(story, canvasmaker=canvasmaker)
    return out.getvalue(), sink[-1] if sink else 0


def body_width(paper: str) -> float:
    return page_size(paper)[0] - 2 * MARGIN_X


# --- blocks both documents share -------------------------------------------------

@dataclass(frozen=True)
class CompanyBlock:
    name: str
    address_lines: tuple[str, ...]
    email: str
    phone: str
    tax_id: str
    logo_png: bytes | None
    paper_size: str
    payment_instructions: str


def read_company(session: Session) -> CompanyBlock:
    """The company profile as printed; an office not yet set up prints without one."""
    c = session.get(CompanyProfile, 1)
    if c is None:
        return CompanyBlock("", (), "", "", "", None, "letter", "")
    return CompanyBlock(c.name, address_lines(c.address_line1, c.address_line2, c.city, c.region, c.postal_code,
                                              c.country),
                        c.email, c.phone, c.tax_id, c.logo_png, c.paper_size or "letter", c.payment_instructions or "")


def address_lines(line1: str, line2: str, city: str, region: str, postal_code: str, country: str) -> tuple[str, ...]:
    """Address lines as printed: street, street, "City, Region Postal", country."""
    locality = ", ".join(p for p in (city.strip(), " ".join(x for x in (region.strip(), postal_code.strip()) if x))
                         if p)
    return tuple(x.strip() for x in (line1, line2, locality, country) if x and x.strip())


def company_flowables(company: CompanyBlock) -> list[Flowable]:
    """Logo (if any and readable), name, address and contact lines, top left."""
    s = styles()
    out: list[Flowable] = []
    logo = logo_image(company.logo_png)
    if logo is not None:
        out.append(LogoFlowable(logo))
        out.append(_Gap(6))
    out.append(para(company.name, s.company))
    contact = list(company.address_lines)
    contact += [x for x in (company.email, company.phone) if x]
    if company.tax_id:
        contact.append(f"Tax ID {company.tax_id}")
    if contact:
        out.append(para_markup([markup(x) for x in contact], s.muted))
    return out


def table_style(commands: Sequence[tuple[object, ...]]) -> TableStyle:
    """A TableStyle whose cells default to our font: ReportLab sets Helvetica (never embedded)
    for every plain-string cell, even an empty one, unless told otherwise."""
    return TableStyle([("FONTNAME", (0, 0), (-1, -1), REGULAR), *commands])


def party_block(heading: str, name: str, lines: Sequence[str]) -> list[Flowable]:
    """Who a document is for: a small heading, the name in bold, then address and e-mail lines."""
    s = styles()
    out: list[Flowable] = [para(heading, s.head), gap(3), para(name, s.body, bold=True)]
    if lines:
        out.append(para("\n".join(lines), s.small))
    return out


def key_value_table(rows: Sequence[tuple[str, str]], width: float, *, bold_keys: Sequence[str] = ()) -> Table:
    """Right-hand facts ("Issue date   3 Dec 2026"), right aligned."""
    s = styles()
    data = [[para(k, s.muted), para(v, s.cell_right, bold=k in bold_keys)] for k, v in rows]
    table = Table(data, colWidths=[width * 0.36, width * 0.64], hAlign="RIGHT")
    table.setStyle(table_style([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                               ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return table


COLUMN_GAP = 12.0
SPLIT = 0.55


def right_column_width(width: float, split: float = SPLIT) -> float:
    """The room inside the right-hand column of two_columns."""
    return width * (1 - split) - COLUMN_GAP


def two_columns(left: list[Flowable], right: list[Flowable], width: float, split: float = SPLIT) -> Table:
    table = Table([[left, right]], colWidths=[width * split, width * (1 - split)])
    table.setStyle(table_style([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                               ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
                               ("LEFTPADDING", (1, 0), (1, 0), COLUMN_GAP)]))
    return table


def boxed(flowables: list[Flowable], width: float, *, background: colors.Color = SHADE) -> Table:
    table = Table([[flowables]], colWidths=[width])
    table.setStyle(table_style([("BACKGROUND", (0, 0), (-1, -1), background),
                               ("LEFTPADDING", (0, 0), (-1, -1), 10), ("RIGHTPADDING", (0, 0), (-1, -1), 10),
                               ("TOPPADDING", (0, 0), (-1, -1), 8), ("BOTTOMPADDING", (0, 0), (-1, -1), 8)]))
    return table


class _Gap(Flowable):
    """Vertical space that, unlike Spacer, is never dropped at a frame top (keeps layouts predictable)."""

    def __init__(self, height: float):
        super().__init__()
        self.height = height
        self.width = 0

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return 0, self.height

    def draw(self) -> None:
        pass


def gap(height: float) -> Flowable:
    return _Gap(height)


