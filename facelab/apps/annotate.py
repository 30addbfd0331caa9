"""Drawing faces on a photo: one box and one label per face.

:func:`annotate` draws the faces of an analyze table (the demo, ``facelab predict
--annotate``) with a numbered label per face (:func:`facelab.apps.results_view.face_label`).
Images are RGB everywhere.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facelab.apps.results_view import BOX_COLUMNS, emotion_columns, face_label, has_box

#: The annotated photo is shown with its longer side scaled to this many pixels.
DEFAULT_DISPLAY_SIDE = 640

BOX_COLOUR = (255, 48, 48)
TEXT_COLOUR = (255, 255, 255)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def annotate(image: np.ndarray, df, *, display_side: int = DEFAULT_DISPLAY_SIDE):
    """The photo (``H x W x 3`` RGB) scaled so that its longer side is ``display_side``
    (small photos are enlarged at most 3x), with one numbered box and label per face of
    ``df`` (an analyze table); returns a PIL image."""
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8))
    scale = min(3.0, display_side / max(canvas.size))
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale)))
        canvas = canvas.resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(canvas)
    line = max(2, canvas.width // 200)
    columns = emotion_columns(df)
    faces = [row for _, row in df.iterrows() if has_box(row)]
    for number, row in enumerate(faces, start=1):
        x1, y1, x2, y2 = (float(row[c]) * scale for c in BOX_COLUMNS)
        draw.rectangle((x1, y1, x2, y2), outline=BOX_COLOUR, width=line)
        _draw_label(draw, canvas.size, (x1, y1, x2, y2), f"{number}: {face_label(row, columns)}")
    return canvas


def _draw_label(draw, canvas_size, box, text: str) -> None:
    """White text on a red band above the box (below it at the top edge); the font
    shrinks, then the label wraps at " | ", until it fits the photo's width."""
    width, height = canvas_size
    x1, y1, x2, y2 = box
    size = max(10, width // 40)
    while True:
        font = _font(size)
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
        if right - left + 6 <= width or size <= 9:
            if right - left + 6 <= width or "\n" in text:
                break
            text, size = text.replace(" | ", "\n"), max(10, width // 40)
            continue
        size -= 1
    w, h = right - left + 6, bottom - top + 6
    tx = min(max(0.0, x1), max(0.0, width - w))
    ty = y1 - h if y1 - h >= 0 else min(y2, max(0.0, height - h))
    draw.rectangle((tx, ty, tx + w, ty + h), fill=BOX_COLOUR)
    draw.multiline_text((tx + 3 - left, ty + 3 - top), text, fill=TEXT_COLOUR, font=font)


__all__ = ["annotate", "DEFAULT_DISPLAY_SIDE", "BOX_COLOUR", "TEXT_COLOUR"]
