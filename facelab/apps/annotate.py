"""Drawing faces on a photo: one box and one numbered label per face.

:func:`annotate` is the one drawing function of facelab: ``facelab detect --annotate`` draws
the faces of :func:`facelab.faces.detect_faces` (label: the detection probability; the 5
landmarks as dots), ``facelab predict --annotate`` (:func:`write_annotated`) and the demo draw
the rows of an analyze table (label: :func:`facelab.apps.results_view.face_label`).

The boxes and label bands are a strong blue of the Okabe-Ito palette, told apart from skin,
red and green by colour-blind viewers too, with a dark outline that keeps them visible on
any background; the labels are white on blue.  Images are RGB everywhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from facelab.apps.results_view import BOX_COLUMNS, emotion_columns, face_label, has_box
from facelab.data.io import load_image

#: The demo shows the annotated photo with its longer side scaled to this many pixels.
DEFAULT_DISPLAY_SIDE = 640
#: Boxes, landmarks and label bands: Okabe-Ito blue (colour-blind safe) ...
BOX_COLOUR = (0, 114, 178)
#: ... outlined in near-black, with white label text (contrast 5:1 on the blue).
OUTLINE_COLOUR = (16, 16, 16)
TEXT_COLOUR = (255, 255, 255)


def annotate(image, faces, *, display_side: int | None = None):
    """A PIL copy of ``image`` with one numbered box and label per face.

    ``image``: an ``H x W x 3`` uint8 RGB array, or anything :func:`facelab.data.io.load_image`
    reads (a path, bytes ...).  ``faces``: an analyze table (rows without a box are skipped;
    label ``"1: Happiness 81% | 31 y | Female | Asian"``) or :class:`facelab.faces.Face`
    objects (label ``"1: 0.998"``, the detection probability, and the 5 landmarks).
    ``display_side``: scale the photo so that its longer side has this many pixels (small
    photos are enlarged at most 3x); None keeps its size.
    """
    pixels = np.asarray(image, dtype=np.uint8) if isinstance(image, np.ndarray) else load_image(image)
    canvas = Image.fromarray(pixels)
    scale = 1.0 if display_side is None else min(3.0, display_side / max(canvas.size))
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale)))
        canvas = canvas.resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(canvas)
    line = max(2, canvas.width // 200)
    for number, (box, label, landmarks) in enumerate(_shapes(faces), start=1):
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1 - 1, y1 - 1, x2 + 1, y2 + 1), outline=OUTLINE_COLOUR, width=line + 2)
        draw.rectangle((x1, y1, x2, y2), outline=BOX_COLOUR, width=line)
        for x, y in landmarks:
            x, y = x * scale, y * scale
            draw.ellipse((x - line, y - line, x + line, y + line), fill=TEXT_COLOUR, outline=OUTLINE_COLOUR)
        _draw_label(draw, canvas.size, (x1, y1, x2, y2), f"{number}: {label}")
    return canvas


def _shapes(faces) -> list[tuple[tuple[float, ...], str, tuple]]:
    """``(box, label, landmarks)`` of every face to draw."""
    if isinstance(faces, pd.DataFrame):
        columns = emotion_columns(faces)
        return [(tuple(float(row[c]) for c in BOX_COLUMNS), face_label(row, columns), ())
                for _, row in faces.iterrows() if has_box(row)]
    return [(tuple(float(v) for v in face.box), f"{face.prob:.3f}", tuple(face.landmarks)) for face in faces]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _draw_label(draw, canvas_size, box, text: str) -> None:
    """White text on a blue band above the box (below it at the top edge); the font
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
    draw.rectangle((tx, ty, tx + w, ty + h), fill=BOX_COLOUR, outline=OUTLINE_COLOUR)
    draw.multiline_text((tx + 3 - left, ty + 3 - top), text, fill=TEXT_COLOUR, font=font)


def write_annotated(df, folder) -> list[Path]:
    """Save an annotated JPEG (:func:`annotate`) of every *image file* in ``df`` (an analyze
    table) that has at least one face into ``folder`` (``<stem>.jpg``; ``<stem>_<input>.jpg``
    when two inputs share a stem).  Video frames are not written.  Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    faces = df[[has_box(row) for _, row in df.iterrows()]] if len(df) else df
    if "frame" in faces:
        faces = faces[faces["frame"].isna()]
    written, used = [], set()
    for index, rows in faces.groupby("input", sort=True):
        source = Path(str(rows["name"].iloc[0]))
        if not source.is_file():
            continue
        target = folder / f"{source.stem}.jpg"
        if target in used:
            target = folder / f"{source.stem}_{index}.jpg"
        used.add(target)
        annotate(source, rows).save(target, quality=92)
        written.append(target)
    return written


__all__ = ["annotate", "write_annotated", "DEFAULT_DISPLAY_SIDE", "BOX_COLOUR", "OUTLINE_COLOUR", "TEXT_COLOUR"]
