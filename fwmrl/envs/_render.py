"""Small NumPy drawing helpers for the ``rgb_array`` renderings (no plotting library needed)."""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]

_GLYPHS: dict[str, tuple[str, ...]] = {
    "a": ("     ", "     ", " ### ", "    #", " ####", "#   #", " ####"),
    "b": ("#    ", "#    ", "#### ", "#   #", "#   #", "#   #", "#### "),
    "c": ("     ", "     ", " ####", "#    ", "#    ", "#    ", " ####"),
    "d": ("    #", "    #", " ####", "#   #", "#   #", "#   #", " ####"),
    "e": ("     ", "     ", " ### ", "#   #", "#####", "#    ", " ####"),
    "f": ("  ## ", " #   ", "#### ", " #   ", " #   ", " #   ", " #   "),
    "g": ("     ", " ####", "#   #", "#   #", " ####", "    #", " ### "),
    "h": ("#    ", "#    ", "#### ", "#   #", "#   #", "#   #", "#   #"),
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    "=": ("     ", "     ", "#####", "     ", "#####", "     ", "     "),
    ";": ("     ", "  #  ", "     ", "     ", "  #  ", "  #  ", " #   "),
    "?": (" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    "_": ("     ", "     ", "     ", "     ", "     ", "     ", "#####"),
    "/": ("    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    " ": ("     ",) * 7,
}
GLYPH_W, GLYPH_H = 5, 7

_FONT = {ch: np.array([[c == "#" for c in row] for row in rows]) for ch, rows in _GLYPHS.items()}


def canvas(height: int, width: int, color: Color) -> np.ndarray:
    """Return an ``uint8`` image ``[height, width, 3]`` filled with ``color``."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = color
    return img


def fill_rect(img: np.ndarray, y0: int, x0: int, y1: int, x1: int, color: Color) -> None:
    """Fill the pixels ``[y0, y1) x [x0, x1)``."""
    img[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = color


def _box(img: np.ndarray, y0: float, x0: float, y1: float, x1: float):
    h, w = img.shape[:2]
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, h)
    c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, w)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    return (slice(r0, r1), slice(c0, c1)), yy + 0.5, xx + 0.5


def fill_disk(img: np.ndarray, cy: float, cx: float, radius: float, color: Color) -> None:
    """Fill the disk of ``radius`` pixels centred at ``(cy, cx)``."""
    sl, yy, xx = _box(img, cy - radius, cx - radius, cy + radius, cx + radius)
    img[sl][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = color


def draw_line(
    img: np.ndarray, y0: float, x0: float, y1: float, x1: float, color: Color, width: float = 2.0
) -> None:
    """Draw a segment of the given ``width`` from ``(y0, x0)`` to ``(y1, x1)``."""
    r = width / 2
    sl, yy, xx = _box(img, min(y0, y1) - r, min(x0, x1) - r, max(y0, y1) + r, max(x0, x1) + r)
    dy, dx = y1 - y0, x1 - x0
    t = ((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-9)
    t = np.clip(t, 0.0, 1.0)
    img[sl][(yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2 <= r * r] = color


def fill_triangle(img: np.ndarray, pts: np.ndarray, color: Color) -> None:
    """Fill the triangle with corners ``pts`` (array ``[3, 2]`` of ``(y, x)``)."""
    sl, yy, xx = _box(img, *pts.min(0), *pts.max(0))
    signs = []
    for k in range(3):
        (ay, ax), (by, bx) = pts[k], pts[(k + 1) % 3]
        signs.append((bx - ax) * (yy - ay) - (by - ay) * (xx - ax))
    inside = np.logical_or(
        (signs[0] >= 0) & (signs[1] >= 0) & (signs[2] >= 0),
        (signs[0] <= 0) & (signs[1] <= 0) & (signs[2] <= 0),
    )
    img[sl][inside] = color


def draw_text(img: np.ndarray, y: int, x: int, text: str, color: Color, scale: int = 2) -> None:
    """Draw ``text`` with a 5x7 bitmap font, top-left corner at ``(y, x)``.

    The font covers a-h, the digits and ``= ; ? . _ / -``; other characters are drawn blank.
    """
    h, w = img.shape[:2]
    for k, ch in enumerate(text):
        glyph = _FONT.get(ch, _FONT[" "])
        big = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        gy, gx = y, x + k * (GLYPH_W + 1) * scale
        if gy >= h or gx >= w:
            continue
        region = img[gy : gy + big.shape[0], gx : gx + big.shape[1]]
        region[big[: region.shape[0], : region.shape[1]]] = color


def text_width(text: str, scale: int = 2) -> int:
    """Width in pixels of ``text`` drawn by :func:`draw_text`."""
    return len(text) * (GLYPH_W + 1) * scale - scale
