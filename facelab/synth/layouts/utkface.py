"""The UTKFace layout: a flat folder of ``<age>_<gender>_<race>_<time>.jpg.chip.jpg``.
"""
from __future__ import annotations

import numpy as np

from facelab import labels as L
from facelab.synth.items import (PERSON_ID_BASE, PHOTO_META, check_count, check_size, photo_rows, plan_rng,
                                 prepare_root, render_photos, sample_ages, write_meta)

#: File name of a photo (UTKFace codes: gender 0 male / 1 female, race 0..4; a 17-digit time).
FILE_NAME = "{age}_{gender}_{race}_{time}.jpg.chip.jpg"


def _utk_timestamps(rng, n):
    """``n`` distinct 17-digit UTKFace-style times ``YYYYMMDDHHMMSSmmm`` (January 2017)."""
    seen, out = set(), []
    while len(out) < n:
        day, h, m, s, ms = (int(rng.integers(3, 21)), int(rng.integers(24)), int(rng.integers(60)),
                            int(rng.integers(60)), int(rng.integers(1000)))
        ts = f"201701{day:02d}{h:02d}{m:02d}{s:02d}{ms:03d}"
        if ts not in seen:
            seen.add(ts)
            out.append(ts)
    return out


def write_utkface(root, *, n: int = 1500, size: int = 112, seed: int = 0, workers=None, progress=True) -> dict:
    """UTKFace-like flat folder ``<age>_<gender>_<race>_<time>.jpg.chip.jpg`` (UTKFace codes:
    gender 0 male / 1 female, race 0..4), one person per photo, ages 1..100 from a
    realistic distribution (:func:`sample_ages`), mostly neutral or smiling faces."""
    n = check_count(n, "n")
    size = check_size(size)
    root = prepare_root(root)
    rng = plan_rng(seed, "utkface")
    ages = sample_ages(rng, n)
    stamps = _utk_timestamps(rng, n)
    items = []
    for i in range(n):
        emotion = ("Neutral", "Happiness")[int(rng.uniform() < 0.4)] if rng.uniform() < 0.8 else \
            L.EMOTIONS_8[int(rng.integers(8))]
        items.append({"index": i, "person_id": PERSON_ID_BASE["utkface"] + i, "age": int(ages[i]),
                      "rel": FILE_NAME.format(age=int(ages[i]), gender="{gender}", race="{race}", time=stamps[i]),
                      "emotion": emotion, "intensity": round(float(rng.uniform(0.3, 1.0)), 3)})
    results = render_photos(items, seed=seed, dataset="utkface", root=root, size=size, workers=workers,
                            progress=progress)
    write_meta(root, photo_rows(items, results), PHOTO_META)
    return {"dataset": "utkface", "root": str(root), "images": n,
            "genders": np.bincount([r["gender"] for r in results], minlength=2).tolist(),
            "races": np.bincount([r["race"] for r in results], minlength=5).tolist()}
