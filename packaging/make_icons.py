"""Render resources/mspbill.svg into the Windows .ico and the macOS .icns the bundle needs.

    python packaging/make_icons.py OUT_DIR [SVG]

The spec runs this at build time (in a child process, Qt offscreen) so that the icons always
follow the SVG and no generated binaries sit in the repository.  Qt's SVG renderer draws each
size on its own (small sizes stay crisp instead of being scaled down from one big bitmap);
Pillow writes both container formats on any platform.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

# Windows Explorer uses 16-48 in lists and 256 for large icons; macOS wants 16-1024.
ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def render_png(svg: Path, size: int) -> bytes:
    """The SVG drawn on a transparent square of size x size pixels, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG image Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; PySide6 takes str
    buffer.close()
    return bytes(data.data())


def make_icons(svg: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write OUT_DIR/mspbill.ico and OUT_DIR/mspbill.icns; return their paths."""
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # kept alive while drawing
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {size: Image.open(io.BytesIO(render_png(svg, size))).convert("RGBA")
              for size in sorted(set(ICO_SIZES) | set(ICNS_SIZES))}

    ico = out_dir / "mspbill.ico"
    largest = images[max(ICO_SIZES)]
    # Pillow keeps an appended image whose size matches a requested one instead of scaling the largest.
    largest.save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES],
                 append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)])

    icns = out_dir / "mspbill.icns"
    images[max(ICNS_SIZES)].save(icns, format="ICNS",
                                 append_images=[images[s] for s in ICNS_SIZES if s != max(ICNS_SIZES)])
    return ico, icns


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    root = Path(__file__).resolve().parent.parent
    svg = Path(argv[2]) if len(argv) == 3 else root / "resources" / "mspbill.svg"
    for path in make_icons(svg, Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
