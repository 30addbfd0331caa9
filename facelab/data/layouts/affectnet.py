"""AffectNet: class folders ``ROOT/train/<Class>/<image>.jpg`` or the official CSV."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facelab import labels as L
from facelab.data.io import is_image_file
from facelab.data.layouts.dataset import FaceImageDataset
from facelab.data.layouts.folders import (
    find_child, no_items_error, require_split_dir, scan_image_folder, split_names, sub_folders,
)
from facelab.errors import DatasetFormatError

AFFECTNET_LAYOUT = ("ROOT/<split>/<Class>/<image>.jpg (class folders such as Happy, Anger, ...) or "
                    "the official ROOT/training.csv|validation.csv with columns subDirectory_filePath, "
                    "face_x, face_y, face_width, face_height, facial_landmarks, expression, valence, "
                    "arousal")
AFFECTNET_CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                         "expression")
_AFFECTNET_CSV_NAMES = {"train": ("training.csv", "train.csv"), "val": ("validation.csv", "val.csv")}


def read_affectnet(root, split="train", num_classes=8, *, transform=None, csv_file=None,
                   images_root=None, check_files=True) -> FaceImageDataset:
    """AffectNet: labels ``emotion`` = index in ``labels.emotions(num_classes)``.

    Two layouts: class folders (``ROOT/train/Happy/x.jpg``; folder names such as
    Happy/Sad/Angry/Surprised are mapped to facelab names, and numeric folders
    ``0``..``10`` are read as AffectNet's raw expression ids), or the official CSV
    (raw expression ids 0-7 mapped with ``labels.AFFECTNET_RAW_IDS``; ids 8-10
    None/Uncertain/No-Face skipped and counted; the CSV's face box kept in the labels
    as ``box = (x1, y1, x2, y2)`` with ``valence`` and ``arousal``).  With
    ``num_classes=7`` Contempt images are skipped and counted.
    """
    root = Path(root)
    classes = L.emotions(num_classes)
    if csv_file is None:
        split_dir = find_child(root, split_names(split)) if root.is_dir() else None
        if split_dir is None:
            names = split_names(split)
            key = "train" if names == split_names("train") else "val" if names == split_names("val") else None
            for where in (root, root / "Manually_Annotated_file_lists"):
                found = find_child(where, _AFFECTNET_CSV_NAMES.get(key, (f"{split}.csv",)),
                                    want_dir=False)
                if found is not None:
                    csv_file = found
                    break
    if csv_file is not None:
        if images_root is None:
            images_root = find_child(root, ["Manually_Annotated_Images", "Manually_Annotated",
                                             "images"]) or root
        items, skipped = _affectnet_csv(Path(csv_file), Path(images_root), classes, check_files)
        where = Path(csv_file)
    else:
        split_dir = require_split_dir(root, split, AFFECTNET_LAYOUT)
        items, skipped = _affectnet_folders(split_dir, classes)
        where = split_dir
    if not items:
        raise no_items_error(where, AFFECTNET_LAYOUT, skipped)
    return FaceImageDataset(items, transform, classes=classes, label_names={"emotion": classes},
                            skipped=skipped, root=where, layout="affectnet")


def _affectnet_folders(split_dir, classes):
    items, skipped = [], []
    for child in sub_folders(split_dir, "class", skipped):
        images, others = scan_image_folder(child)
        skipped += others
        emotion = L.emotion_from_name(child.name)
        if child.name.isdigit():  # some AffectNet copies name the class folders by raw id 0..10
            emotion = L.AFFECTNET_RAW_IDS.get(int(child.name))
            if int(child.name) in L.AFFECTNET_SKIPPED_IDS:
                raw = int(child.name)
                skipped += [(str(p), f"expression id {raw} ({L.AFFECTNET_SKIPPED_IDS[raw]})") for p in images]
                continue
        if emotion is None:
            skipped += [(str(p), f"unknown class folder: '{child.name}'") for p in images]
        elif emotion not in classes:
            skipped += [(str(p), f"class not in the {len(classes)}-class vocabulary: {emotion}")
                        for p in images]
        else:
            items += [(p, {"emotion": classes.index(emotion)}) for p in images]
    return items, skipped


def _affectnet_csv(csv_file, images_root, classes, check_files):
    items, skipped = [], []
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in AFFECTNET_CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DatasetFormatError(f"{csv_file}: missing column(s) {', '.join(missing)}; "
                                     f"expected layout {AFFECTNET_LAYOUT}")
        for lineno, row in enumerate(reader, 2):
            entry = f"{csv_file.name}:{lineno}:{row.get('subDirectory_filePath')}"
            try:
                raw = int(float(row["expression"]))
            except (TypeError, ValueError):
                skipped.append((entry, "malformed expression id"))
                continue
            if raw in L.AFFECTNET_SKIPPED_IDS:
                skipped.append((entry, f"expression id {raw} ({L.AFFECTNET_SKIPPED_IDS[raw]})"))
                continue
            if raw not in L.AFFECTNET_RAW_IDS:
                skipped.append((entry, f"expression id out of range 0..10: {raw}"))
                continue
            emotion = L.AFFECTNET_RAW_IDS[raw]
            if emotion not in classes:
                skipped.append((entry, f"class not in the {len(classes)}-class vocabulary: {emotion}"))
                continue
            try:
                x, y, w, h = (float(row[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
                if not (w > 0 and h > 0 and np.isfinite([x, y, w, h]).all()):
                    raise ValueError
            except (TypeError, ValueError):
                skipped.append((entry, "malformed face box"))
                continue
            rel = (row.get("subDirectory_filePath") or "").strip()
            path = images_root / rel
            if not rel or not is_image_file(rel):
                skipped.append((entry, "malformed image path"))
                continue
            if check_files and not path.is_file():
                skipped.append((entry, "listed image missing"))
                continue
            lab = {"emotion": classes.index(emotion), "box": (x, y, x + w, y + h),
                   "valence": _float_or_nan(row.get("valence")),
                   "arousal": _float_or_nan(row.get("arousal"))}
            items.append((path, lab))
    return items, skipped


def _float_or_nan(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


__all__ = ["AFFECTNET_LAYOUT", "AFFECTNET_CSV_COLUMNS", "read_affectnet"]
