"""The AffectNet layout: ``train/<Class>/000001.jpg`` (the training set's class imbalance)
and ``val/<Class>/...`` (balanced), or the official ``Manually_Annotated_Images/<dir>/<file>.jpg``
with ``training.csv`` / ``validation.csv``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.synth.items import (PERSON_ID_BASE, PHOTO_META, check_count, check_size, photo_rows, plan_rng,
                                 prepare_root, render_photos, sample_ages, write_meta)

#: The official layout: images under IMAGES_FOLDER, one CSV per split with CSV_COLUMNS.
IMAGES_FOLDER = "Manually_Annotated_Images"
CSV_FILES = {"train": "training.csv", "val": "validation.csv"}
CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
               "expression", "valence", "arousal")


def affectnet_train_counts(n: int, min_fraction: float = 0.015) -> dict[str, int]:
    """``n`` training images split as AffectNet's training set (labels.AFFECTNET_TRAIN_COUNTS).

    Every class keeps at least ``ceil(min_fraction * n)`` images; the largest class
    (Happiness) gives up what the small classes gain.  Largest-remainder rounding,
    so the counts add up to ``n`` exactly.
    """
    total = sum(L.AFFECTNET_TRAIN_COUNTS.values())
    exact = {c: n * L.AFFECTNET_TRAIN_COUNTS[c] / total for c in L.EMOTIONS_8}
    counts = {c: int(np.floor(v)) for c, v in exact.items()}
    for c in sorted(L.EMOTIONS_8, key=lambda c: exact[c] - counts[c], reverse=True)[: n - sum(counts.values())]:
        counts[c] += 1
    floor = int(np.ceil(min_fraction * n))
    largest = max(counts, key=counts.get)
    for c in L.EMOTIONS_8:
        if counts[c] < floor:
            counts[largest] -= floor - counts[c]
            counts[c] = floor
    if counts[largest] < floor:
        raise InvalidInputError(f"n={n} is too small for 8 classes with {min_fraction:.1%} each")
    return counts


#: Typical (valence, arousal) of each emotion at full intensity, for the AffectNet CSV.
_VALENCE_AROUSAL = {"Neutral": (0.0, 0.0), "Happiness": (0.75, 0.35), "Sadness": (-0.65, -0.3),
                    "Surprise": (0.2, 0.75), "Fear": (-0.6, 0.7), "Disgust": (-0.65, 0.35),
                    "Anger": (-0.55, 0.65), "Contempt": (-0.4, 0.2)}
_AFFECTNET_RAW = {name: raw for raw, name in L.AFFECTNET_RAW_IDS.items()}


#: Range of the expression intensity of an AffectNet-like photo (Neutral: always 1).  AffectNet's
#: annotators label the expression a photo *shows*, so a labelled photo shows it clearly.  Format v2
#: drew from 0.35-1.0; at the low end the cue was a pixel or two at 48-64 px and a small CNN trained
#: for 3 minutes recognised 32% of photos under intensity 0.5 against 61% above 0.85 (README).
AFFECTNET_INTENSITY = (0.6, 1.0)


def write_affectnet(root, *, n_train: int = 2400, n_val_per_class: int = 50, min_fraction: float = 0.015,
                    layout: str = "folders", size: int = 112, seed: int = 0, workers=None,
                    progress=True) -> dict:
    """AffectNet-like 8-class emotion photos, one person per photo, varied intensity.

    ``layout="folders"``: ``train/<Class>/000001.jpg`` with the training set's class
    imbalance (:func:`affectnet_train_counts`) and ``val/<Class>/...`` balanced
    (``n_val_per_class`` each, as AffectNet's validation set).  ``layout="csv"``: the
    official ``Manually_Annotated_Images/<dir>/<file>.jpg`` + ``training.csv`` /
    ``validation.csv`` with raw expression ids, face boxes, valence and arousal.
    """
    n_train = check_count(n_train, "n_train", 8)
    n_val_per_class = check_count(n_val_per_class, "n_val_per_class", 0)
    if layout not in ("folders", "csv"):
        raise InvalidInputError(f"layout={layout!r} must be 'folders' or 'csv'")
    size = check_size(size)
    root = prepare_root(root)
    rng = plan_rng(seed, "affectnet")
    train_counts = affectnet_train_counts(n_train, min_fraction)
    val_counts = {c: n_val_per_class for c in L.EMOTIONS_8}
    items = []
    for split, counts in (("train", train_counts), ("val", val_counts)):
        labels = [c for c in L.EMOTIONS_8 for _ in range(counts[c])]
        ages = sample_ages(rng, len(labels))
        for j, emotion in enumerate(labels):
            index = len(items)
            if layout == "folders":
                rel = f"{split}/{emotion}/{index:06d}.jpg"
            else:
                rel = f"{IMAGES_FOLDER}/{index // 500 + 1}/{index:06d}.jpg"
            intensity = 1.0 if emotion == "Neutral" else round(float(rng.uniform(*AFFECTNET_INTENSITY)), 3)
            items.append({"index": index, "split": split, "rel": rel, "emotion": emotion,
                          "person_id": PERSON_ID_BASE[f"affectnet/{split}"] + j,
                          "age": int(max(ages[j], 3)), "intensity": intensity})
    results = render_photos(items, seed=seed, dataset="affectnet", root=root, size=size, workers=workers,
                            progress=progress)
    if layout == "csv":
        for split, name in CSV_FILES.items():
            _write_affectnet_csv(root / name, [(it, r) for it, r in zip(items, results) if it["split"] == split],
                                 rng)
    write_meta(root, photo_rows(items, results), PHOTO_META)
    return {"dataset": "affectnet", "root": str(root), "images": len(items), "layout": layout,
            "train": train_counts, "val": val_counts}


def _write_affectnet_csv(path: Path, pairs, rng):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for it, r in pairs:
            x1, y1, x2, y2 = r["box"]
            v, a = _VALENCE_AROUSAL[it["emotion"]]
            k = it["intensity"]
            v = float(np.clip(v * k + rng.normal(0, 0.08), -1, 1))
            a = float(np.clip(a * k + rng.normal(0, 0.08), -1, 1))
            w.writerow([r["rel"].split("/", 1)[1], int(round(x1)), int(round(y1)), int(round(x2 - x1)),
                        int(round(y2 - y1)), "", _AFFECTNET_RAW[it["emotion"]], f"{v:.4f}", f"{a:.4f}"])
