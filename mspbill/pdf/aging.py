"""The A/R aging report as a PDF: a table per currency, client rows and a bold total.

Laid out on the company's paper turned landscape (ten columns of figures need
the width), with the page frame every mspbill PDF shares (pdf/layout.py): the
company block, the compact header on later pages, "Page x of y", only the
bundled fonts, embedded.  The table's head row repeats on every page; client
names wrap inside their column, in any script.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from reportlab.lib.pagesizes import landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageTemplate,
    Table,
)
from sqlalchemy.orm import Session

from mspbill.aging import BUCKETS
from mspbill.pdf import layout
from mspbill.pdf.fonts import BOLD, REGULAR, register_fonts, string_width
from mspbill.pdf.layout import CompanyBlock, fmt_date, gap, money, para
from mspbill.pdf.rendered import RenderedPdf, safe_filename
from mspbill.reports.aging_report import AgingReport, ClientAging, CurrencyAging

CLIENT_MIN_WIDTH = 130.0    # the client column never gets narrower; the figures get smaller first
PADDING = 4.0
AMOUNT_HEADS = (*(b.label.upper() for b in BUCKETS), "TOTAL", "CREDIT")
COUNT_HEADS = ("INVOICES", "OLDEST")   # the oldest open invoice's days past due
HEADING_ROOM = 110.0        # points: a section heading, the head row and a few clients
SIZES = (8.0, 7.5, 7.0, 6.5, 6.0, 5.5, 5.0)  # figure sizes tried, largest first


def _amount(cents: int, currency: str) -> str:
    return money(cents, currency) if cents else "—"


def _row_figures(row: ClientAging) -> list[str]:
    cur = row.currency
    return [*(_amount(c, cur) for c in row.buckets), _amount(row.total_cents, cur), _amount(row.credit_cents, cur),
            str(row.invoice_count) if row.invoice_count else "—",
            str(row.oldest_days_past_due) if row.oldest_days_past_due else "—"]


def _total_figures(section: CurrencyAging) -> list[str]:
    cur = section.currency
    return [*(money(c, cur) for c in section.totals.buckets), money(section.total_cents, cur),
            money(section.credit_cents, cur), str(section.totals.count),
            str(section.oldest_days_past_due) if section.oldest_days_past_due else "—"]


def _head_size(size: float) -> float:
    return min(size, 7.5)


def _widest(texts: Sequence[str]) -> float:
    """Width at size 1 (widths scale with the size) of the widest of `texts`, set bold.  Figures of one
    currency differ only in their digits and separators, so only the longest ones are measured."""
    longest = max((len(t) for t in texts), default=0)
    return max((string_width(t, 1.0, bold=True) for t in set(texts) if len(t) >= longest - 1), default=0.0)


def _fit(figures: Sequence[Sequence[str]], width: float) -> tuple[float, float, float]:
    """(font size, amount column width, count column width): the largest size at which the widest figure
    and every head fit on one line and the client column keeps CLIENT_MIN_WIDTH."""
    amounts = _widest([text for row in figures for text in row[:7]])
    counts = _widest([text for row in figures for text in row[7:]])
    amount_heads = max(string_width(h, 1.0, bold=True) for h in AMOUNT_HEADS)
    count_heads = max(string_width(h, 1.0, bold=True) for h in COUNT_HEADS)
    for size in SIZES:
        head = _head_size(size)
        column = max(amounts * size, amount_heads * head) + 2 * PADDING + 1
        count_column = max(counts * size, count_heads * head) + 2 * PADDING + 1
        if width - 7 * column - 2 * count_column >= CLIENT_MIN_WIDTH:
            return size, column, count_column
    # Figures beyond any MSP's (hundreds of billions): the smallest size, and the client column gives way.
    return SIZES[-1], column, count_column


def _section_table(section: CurrencyAging, width: float) -> Table:
    s = layout.styles()
    rows = [_row_figures(r) for r in section.rows]
    totals = _total_figures(section)
    size, amount_width, count_width = _fit([*rows, totals], width)
    leading = size + 2.5
    name_style = ParagraphStyle("aging_client", parent=s.cell, fontSize=size, leading=leading)
    head_style = ParagraphStyle("aging_head", parent=s.head, fontSize=_head_size(size),
                                leading=_head_size(size) + 2)
    head_right = ParagraphStyle("aging_head_right", parent=s.head_right, fontSize=head_style.fontSize,
                                leading=head_style.leading)
    client_width = max(width - 7 * amount_width - 2 * count_width, 40.0)
    heads = ["CLIENT", *AMOUNT_HEADS, *COUNT_HEADS]
    data: list[list[object]] = [[para(h, head_style if i == 0 else head_right) for i, h in enumerate(heads)]]
    for row, figures in zip(section.rows, rows, strict=True):
        data.append([para(row.client_name, name_style), *figures])
    data.append([para(f"Total ({section.currency})", name_style, bold=True), *totals])
    last = len(data) - 1
    table = Table(data, colWidths=[client_width, *[amount_width] * 7, *[count_width] * 2], repeatRows=1)
    table.setStyle(layout.table_style([
        ("FONTNAME", (1, 1), (-1, -1), REGULAR), ("FONTSIZE", (1, 1), (-1, -1), size),
        ("LEADING", (1, 1), (-1, -1), leading), ("TEXTCOLOR", (1, 1), (-1, -1), layout.INK),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), PADDING), ("RIGHTPADDING", (0, 0), (-1, -1), PADDING),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, layout.INK), ("LINEBELOW", (0, 1), (-1, last - 1), 0.25, layout.RULE),
        ("FONTNAME", (1, last), (-1, last), BOLD), ("BACKGROUND", (0, last), (-1, last), layout.SHADE),
        ("LINEABOVE", (0, last), (-1, last), 0.8, layout.INK),
        # The total (the figure a reader looks for) in bold on every row.
        ("FONTNAME", (6, 1), (6, -1), BOLD)]))
    return table


def _title_block(report: AgingReport, width: float) -> list[Flowable]:
    s = layout.styles()
    facts = [("As of", f"end of {fmt_date(report.as_of)}")]
    for section in report.sections:
        label = f"Owed in {section.currency}" if len(report.sections) > 1 else "Total owed"
        facts.append((label, money(section.total_cents, section.currency)))
    facts.append(("Days past due", "from each invoice's due date"))
    facts.append(("Oldest", "days past due of the oldest open invoice"))
    return [para("A/R aging", s.title), para(f"as of {fmt_date(report.as_of)}", s.subtitle), gap(6),
            layout.key_value_table(facts, width, bold_keys=[k for k, _ in facts if k.startswith(("Owed", "Total"))])]


def _story(report: AgingReport, company: CompanyBlock, width: float) -> list[Flowable]:
    s = layout.styles()
    story: list[Flowable] = [
        layout.two_columns(layout.company_flowables(company),
                           _title_block(report, layout.right_column_width(width)), width),
        gap(18)]
    if report.nothing_owed:
        story.append(para(f"Nothing is owed as of {fmt_date(report.as_of)}.", s.body))
        if report.sections:
            story += [gap(6), para("Clients holding credit are listed below.", s.muted)]
        story.append(gap(12))
    for section in report.sections:
        heading = f"{section.currency} — {section.client_count} client(s) owing, {section.totals.count} open invoice(s)"
        lead: list[Flowable] = [para(heading.upper(), s.section)]
        if section.currency != report.company_currency:
            lead.append(para(f"Amounts in {section.currency} are totalled on their own; they are not added to the "
                             f"{report.company_currency} totals.", s.muted))
            lead.append(gap(3))
        # A heading is never the last thing on a page: it starts the next one unless its head row and a
        # few clients fit below it.
        story += [CondPageBreak(HEADING_ROOM), KeepTogether(lead), _section_table(section, width), gap(16)]
    if any(sec.credit_cents for sec in report.sections):
        story.append(para("Credit is what a client has paid or been credited beyond its invoices; it is applied to "
                          "the next invoice and is not taken off the balances above.", s.muted))
    return story


def _build_landscape(story: list[Flowable], frame: layout.PageFrame, meta: layout.Metadata) -> tuple[bytes, int]:
    """layout.build_pdf, with the paper turned landscape."""
    with layout._BUILD_LOCK:  # ReportLab's module state is shared with every PDF the app renders
        register_fonts()
        width, height = landscape(layout.page_size(frame.paper))
        out = io.BytesIO()
        doc = BaseDocTemplate(out, pagesize=(width, height), leftMargin=layout.MARGIN_X,
                              rightMargin=layout.MARGIN_X, topMargin=layout.MARGIN_TOP,
                              bottomMargin=layout.MARGIN_BOTTOM, title=meta.title, author=meta.author,
                              subject=meta.subject, keywords=meta.keywords, creator="mspbill",
                              producer="mspbill (ReportLab)")
        body = width - 2 * layout.MARGIN_X
        tall = height - layout.MARGIN_TOP - layout.MARGIN_BOTTOM
        first = Frame(layout.MARGIN_X, layout.MARGIN_BOTTOM, body, tall, id="first",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        later = Frame(layout.MARGIN_X, layout.MARGIN_BOTTOM, body, tall - layout.LATER_HEADER_HEIGHT, id="later",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)

        def on_later(canvas: Canvas, _doc: object) -> None:
            layout._draw_compact_header(canvas, frame, width, height)

        doc.addPageTemplates([PageTemplate("first", [first], autoNextPageTemplate="later"),
                              PageTemplate("later", [later], onPage=on_later)])
        sink: list[int] = []

        def canvasmaker(*args: object, **kwargs: object) -> layout.PagedCanvas:
            return layout.PagedCanvas(*args, frame=frame, sink=sink, **kwargs)

        doc.build(story, canvasmaker=canvasmaker)
        return out.getvalue(), sink[-1] if sink else 0


def body_width(paper: str) -> float:
    return landscape(layout.page_size(paper))[0] - 2 * layout.MARGIN_X


def render_aging(report: AgingReport, company: CompanyBlock) -> RenderedPdf:
    """Lay the report out (no database: runs on any thread)."""
    as_of = fmt_date(report.as_of)
    title = f"A/R aging as of {as_of}"
    frame = layout.PageFrame(paper=company.paper_size, compact_header=(company.name, title, ""),
                             footer_left=" · ".join(x for x in (company.name, title) if x))
    owed = "; ".join(money(s.total_cents, s.currency) for s in report.sections) or "nothing owed"
    meta = layout.Metadata(title=title, author=company.name,
                           subject=f"Accounts receivable of {company.name or 'the office'} by days past due, "
                                   f"as of {as_of}: {owed}", keywords="A/R aging")
    data, pages = _build_landscape(_story(report, company, body_width(company.paper_size)), frame, meta)
    return RenderedPdf(safe_filename(f"AR aging {report.as_of.isoformat()}"), data, title, pages)


def aging_pdf(session: Session, report: AgingReport) -> bytes:
    """The report as a PDF, with the company's name, logo and paper size."""
    return render_aging(report, layout.read_company(session)).data
