"""A contact sheet of the built-in face world: rows are the 8 emotions, columns are
people of different genders, race groups and ages (RGB PNG, deterministic).

``facelab synth --preview OUT.png`` and ``docs/synth_preview.png`` use
:func:`save_preview`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facelab.errors import InvalidInputError
from facelab.labels import EMOTIONS_8, GENDERS, RACES
from facelab.synth.people import Person, sample_person
from facelab.synth.render import Nuisance, render_face

#: Columns of the sheet: (gender, race, age) -- both genders, all race groups, ages 4..85.
PREVIEW_COLUMNS = (
    (1, 0, 24), (0, 1, 35), (1, 2, 7), (0, 3, 58), (1, 1, 82), (0, 0, 16), (1, 3, 45), (0, 2, 70), (1, 4, 30),
)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def contact_sheet(seed: int = 0, size: int = 96, *, intensity: float = 1.0) -> Image.Image:
    """Rows = the 8 emotions (``facelab.labels.EMOTIONS_8``) at ``intensity``, columns =
    people of world ``seed`` with the gender, race and age of :data:`PREVIEW_COLUMNS`;
    clean frontal photos (nuisance level 0) of ``size`` pixels, labelled with text."""
    if not isinstance(size, (int, np.integer)) or not 32 <= size <= 512:
        raise InvalidInputError(f"size={size!r} must be an int in 32..512 (pixels per face)")
    people: list[Person] = [sample_person(seed, 1000 + i, gender=g, race=r)
                            for i, (g, r, _) in enumerate(PREVIEW_COLUMNS)]
    ages = [a for _, _, a in PREVIEW_COLUMNS]
    left, top, pad = 88, 40, 2
    n_rows, n_cols = len(EMOTIONS_8), len(people)
    sheet = Image.new("RGB", (left + n_cols * (size + pad), top + n_rows * (size + pad)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for j, (person, age) in enumerate(zip(people, ages)):
        x = left + j * (size + pad)
        draw.text((x + 2, 2), person.name.split("_")[0], fill=(20, 20, 20), font=font)
        draw.text((x + 2, 16), f"{GENDERS[person.gender][0]} {RACES[person.race][:5]} {age}y",
                  fill=(90, 90, 90), font=font)
        for i, emotion in enumerate(EMOTIONS_8):
            nz = Nuisance(background_seed=seed * 1000 + j, scale=0.52)
            img = render_face(person, age=age, emotion=emotion, intensity=intensity, nuisance=nz, size=size,
                              rng=np.random.default_rng([seed, j]))
            sheet.paste(Image.fromarray(img.image, "RGB"), (x, top + i * (size + pad)))
    for i, emotion in enumerate(EMOTIONS_8):
        draw.text((4, top + i * (size + pad) + size // 2 - 7), emotion, fill=(20, 20, 20), font=font)
    return sheet


def save_preview(path, seed: int = 0, size: int = 96) -> Path:
    """Write :func:`contact_sheet` as a PNG to ``path`` (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(seed=seed, size=size).save(path, format="PNG", optimize=True)
    return path
