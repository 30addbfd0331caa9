"""Annotated images: the analysed faces of a photo drawn on a copy of it (box and label)."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

from facelab.data.io import load_image
from facelab.inference.rows import STATUS_OK


def annotate_rows(image, rows):
    """A PIL copy of an RGB ``image`` with every analysed face of ``rows`` (DataFrame rows of
    one image) drawn: its box and a label such as ``Happiness 0.91 | 34 y | Female``."""
    canvas = Image.fromarray(load_image(image))
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(min(canvas.size) / 200))
    for _, row in rows.iterrows():
        if row.get("status") != STATUS_OK or not math.isfinite(float(row["x1"])):
            continue
        box = [float(row[c]) for c in ("x1", "y1", "x2", "y2")]
        draw.rectangle(box, outline=(255, 40, 40), width=width)
        parts = []
        if "emotion" in row and isinstance(row["emotion"], str):
            parts.append(f"{row['emotion']} {float(row.get('emotion_' + row['emotion'], float('nan'))):.2f}")
        if "age" in row and math.isfinite(float(row["age"])):
            parts.append(f"{float(row['age']):.0f} y")
        if "gender" in row and isinstance(row["gender"], str):
            parts.append(str(row["gender"]))
        if "race" in row and isinstance(row["race"], str):
            parts.append(str(row["race"]))
        text = " | ".join(parts)
        y = max(0.0, box[1] - 12)
        draw.rectangle([box[0], y, box[0] + 6 * len(text) + 4, y + 11], fill=(0, 0, 0))
        draw.text((box[0] + 2, y), text, fill=(255, 255, 0))
    return canvas


def write_annotated(df, folder) -> list[Path]:
    """Save an annotated JPEG (:func:`annotate_rows`) of every *image file* in ``df`` that
    has at least one analysed face into ``folder`` (``<stem>.jpg``; ``<stem>_<input>.jpg``
    when two inputs share a stem).  Video frames are not written.  Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = df[df["status"] == STATUS_OK]
    if "frame" in ok:
        ok = ok[ok["frame"].isna()]
    written, used = [], set()
    for index, rows in ok.groupby("input", sort=True):
        source = Path(str(rows["name"].iloc[0]))
        if not source.is_file():
            continue
        target = folder / f"{source.stem}.jpg"
        if target in used:
            target = folder / f"{source.stem}_{index}.jpg"
        used.add(target)
        annotate_rows(source, rows).save(target, quality=92)
        written.append(target)
    return written


__all__ = ["annotate_rows", "write_annotated"]
