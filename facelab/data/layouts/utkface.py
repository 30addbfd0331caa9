"""UTKFace: ``ROOT/<age>_<gender>_<race>_<date>.jpg.chip.jpg``."""
from __future__ import annotations

from pathlib import Path

from facelab import labels as L
from facelab.data.layouts.dataset import FaceImageDataset
from facelab.data.layouts.folders import no_items_error, scan_image_folder
from facelab.errors import DatasetFormatError

UTKFACE_LAYOUT = "ROOT/<age>_<gender>_<race>_<date&time>.jpg.chip.jpg (UTKFace codes)"
#: UTKFace documents ages 0..116; facelab's age classes (1..100) clip older ages.
UTKFACE_AGE_RANGE = (0, 116)


def parse_utkface_name(name, age_range=UTKFACE_AGE_RANGE):
    """``"25_0_2_20170116174525125.jpg.chip.jpg"`` -> ``{"age": 25, "gender": 0, "race": 2}``.

    Raises ValueError with the reason for names with missing or out-of-range fields.
    """
    stem = Path(name).name.split(".", 1)[0]
    fields = stem.split("_")
    if len(fields) != 4 or not all(f.isdigit() for f in fields):
        raise ValueError(f"name does not match <age>_<gender>_<race>_<date>: {len(fields)} "
                         f"field(s) in '{stem}'")
    age, gender, race = (int(f) for f in fields[:3])
    if not age_range[0] <= age <= age_range[1]:
        raise ValueError(f"age out of range {age_range[0]}..{age_range[1]}: {age}")
    if gender not in (0, 1):
        raise ValueError(f"gender code not 0 (male) or 1 (female): {gender}")
    if not 0 <= race < len(L.RACES):
        raise ValueError(f"race code not in 0..{len(L.RACES) - 1}: {race}")
    return {"age": age, "gender": gender, "race": race}


def read_utkface(root, *, transform=None, age_range=UTKFACE_AGE_RANGE) -> FaceImageDataset:
    """UTKFace: labels ``age`` (years), ``gender`` (0 male, 1 female), ``race`` (0..4).

    Sub-folders are searched too (UTKFace's in-the-wild set comes as ``part1..3``).
    Names with missing or out-of-range fields are skipped with the reason.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: dataset folder not found; expected layout {UTKFACE_LAYOUT}")
    images, skipped = scan_image_folder(root)
    items = []
    for path in images:
        try:
            items.append((path, parse_utkface_name(path.name, age_range)))
        except ValueError as exc:
            skipped.append((str(path), str(exc)))
    if not items:
        raise no_items_error(root, UTKFACE_LAYOUT, skipped)
    return FaceImageDataset(items, transform, label_names={"age": None, "gender": L.GENDERS,
                                                           "race": L.RACES},
                            skipped=skipped, root=root, layout="utkface")


__all__ = ["UTKFACE_LAYOUT", "UTKFACE_AGE_RANGE", "parse_utkface_name", "read_utkface"]
