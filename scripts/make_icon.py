"""Draw the app icon with QPainter: ``resources/icon.png`` (1024 px) and ``resources/icon.icns``.

The .icns is written here, not with Apple's ``iconutil`` (macOS only) or Pillow: an .icns file is a
header and one chunk per size, and each chunk may hold a PNG (macOS 10.7+ reads them).

QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/make_icon.py
"""

from __future__ import annotations

import logging
import os
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZE = 1024
logger = logging.getLogger("make_icon")

# icns chunk type → pixel size (the @2x types reuse the next size up)
ICNS_TYPES = {
    "icp4": 16, "icp5": 32, "icp6": 64, "ic07": 128, "ic08": 256, "ic09": 512, "ic10": 1024,
    "ic11": 32, "ic12": 64, "ic13": 256, "ic14": 512,
}  # fmt: skip


def draw_icon(size: int = SIZE):
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPainterPath, QPen

    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 1024.0

    # macOS-style squircle tile with a blue → violet gradient and a soft top sheen
    tile = QRectF(100 * s, 100 * s, 824 * s, 824 * s)
    path = QPainterPath()
    path.addRoundedRect(tile, 185 * s, 185 * s)
    gradient = QLinearGradient(tile.topLeft(), tile.bottomRight())
    gradient.setColorAt(0.0, QColor("#3b82f6"))
    gradient.setColorAt(0.55, QColor("#6366f1"))
    gradient.setColorAt(1.0, QColor("#8b5cf6"))
    p.fillPath(path, gradient)
    sheen = QLinearGradient(QPointF(0, tile.top()), QPointF(0, tile.center().y()))
    sheen.setColorAt(0.0, QColor(255, 255, 255, 60))
    sheen.setColorAt(1.0, QColor(255, 255, 255, 0))
    p.fillPath(path, sheen)

    # a chip outline behind the bubble: the "on-device" hint
    p.setPen(QPen(QColor(255, 255, 255, 70), 18 * s))
    p.setBrush(Qt.BrushStyle.NoBrush)
    chip = QRectF(250 * s, 250 * s, 524 * s, 524 * s)
    p.drawRoundedRect(chip, 70 * s, 70 * s)
    for i in range(4):
        offset = (330 + i * 122) * s
        for x1, y1, x2, y2 in (
            (offset, 190 * s, offset, 250 * s),
            (offset, 774 * s, offset, 834 * s),
            (190 * s, offset, 250 * s, offset),
            (774 * s, offset, 834 * s, offset),
        ):
            p.drawLine(QPointF(x1, y1), QPointF(x2, y2))

    # the speech bubble
    bubble = QPainterPath()
    body = QRectF(300 * s, 330 * s, 424 * s, 300 * s)
    bubble.addRoundedRect(body, 110 * s, 110 * s)
    tail = QPainterPath()
    tail.moveTo(390 * s, 600 * s)
    tail.lineTo(350 * s, 715 * s)
    tail.lineTo(480 * s, 620 * s)
    tail.closeSubpath()
    bubble = bubble.united(tail)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(0, 0, 40, 50))
    p.drawPath(bubble.translated(0, 14 * s))
    p.setBrush(QColor("#ffffff"))
    p.drawPath(bubble)

    # three dots: the model typing
    p.setBrush(QColor("#6366f1"))
    for cx in (412, 512, 612):
        p.drawEllipse(QPointF(cx * s, 480 * s), 36 * s, 36 * s)
    p.end()
    return image


def png_bytes(image, size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt

    scaled = image.scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not scaled.save(buffer, "PNG"):
        raise OSError(f"could not encode a {size} px PNG")
    buffer.close()
    return bytes(data.data())


def icns_bytes(image) -> bytes:
    """An .icns file: b"icns", total length, then (type, length, PNG) per size; lengths big-endian
    and counting their own 8-byte header."""
    chunks = b"".join(
        kind.encode("ascii") + struct.pack(">I", 8 + len(png)) + png
        for kind, png in ((kind, png_bytes(image, size)) for kind, size in ICNS_TYPES.items())
    )
    return b"icns" + struct.pack(">I", 8 + len(chunks)) + chunks


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 (QImage text needs it)
    out = REPO / "resources"
    out.mkdir(exist_ok=True)
    png = out / "icon.png"
    if not draw_icon().save(str(png)):
        print(f"error: could not write {png}", file=sys.stderr)
        return 1
    print(png)
    icns = out / "icon.icns"
    icns.write_bytes(icns_bytes(draw_icon()))
    print(icns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
