"""Finding the files of a dataset layout: images, split folders, layout files, and the error for an
empty or wrong folder (shared by the readers in :mod:`facelab.data.layouts`)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from facelab.data.io import is_image_file
from facelab.errors import DatasetFormatError

#: Files that are part of a dataset's layout but are not samples (never counted as skipped).
LAYOUT_FILES = {"people.txt", "pairs.txt", "peopledevtrain.txt", "peopledevtest.txt",
                 "pairsdevtrain.txt", "pairsdevtest.txt", "train_list.txt", "test_list.txt",
                 "identity_meta.csv", "readme", "readme.txt", "readme.md", "summary.json",
                 ".facelab-complete", "lfw-names.txt",
                 "facelab_meta.csv", "boxes.json"}


def scan_image_folder(root, *, recursive=True):
    """All image files under ``root`` (sorted) and the other files as ``(path, reason)``.

    Hidden files (``.DS_Store``) and the layout files of the known datasets
    (``pairs.txt`` ...) are neither images nor skipped entries.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder; pass the folder that holds the images")
    images, others = [], []
    walker = root.rglob("*") if recursive else root.glob("*")
    for path in sorted(walker):
        if path.is_dir() or is_layout_file(path):
            continue
        if is_image_file(path):
            images.append(path)
        else:
            others.append((str(path), "not an image file: extension " + (path.suffix or "(none)")))
    return images, others


def is_layout_file(path) -> bool:
    path = Path(path)
    return path.name.startswith(".") or path.name.lower() in LAYOUT_FILES or \
        path.name.lower().endswith("_labels.txt")


def sub_folders(parent, what: str, skipped: list):
    """The sub-folders of ``parent`` (sorted; layout files left out), one per class or person.  A
    loose file there is appended to ``skipped`` as ``file outside a <what> folder``."""
    for child in sorted(Path(parent).iterdir()):
        if is_layout_file(child):
            continue
        if child.is_file():
            skipped.append((str(child), f"file outside a {what} folder"))
            continue
        yield child


def find_child(root: Path, names, *, want_dir=True):
    """The child of ``root`` whose name matches one of ``names`` case-insensitively."""
    wanted = [n.lower() for n in names]
    if not root.is_dir():
        return None
    children = {c.name.lower(): c for c in sorted(root.iterdir())
                if (c.is_dir() if want_dir else c.is_file())}
    for name in wanted:
        if name in children:
            return children[name]
    return None


SPLIT_NAMES = {
    "train": ("train", "training", "train_afew"),
    "val": ("val", "validation", "valid", "val_afew"),
    "test": ("test", "testing", "test_afew"),
}


def split_names(split: str):
    split = str(split).lower()
    for key, names in SPLIT_NAMES.items():
        if split in names:
            return names
    return (split,)


def require_split_dir(root, split, layout):
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: dataset folder not found; expected layout {layout}")
    path = find_child(root, split_names(split))
    if path is None:
        have = ", ".join(sorted(c.name for c in root.iterdir() if c.is_dir())[:8]) or "no sub-folders"
        raise DatasetFormatError(
            f"{root}: no '{split}' folder (found: {have}); expected layout {layout}")
    return path


def no_items_error(root, layout, skipped):
    reasons = Counter(reason_category(r) for _, r in skipped).most_common(3)
    detail = "; ".join(f"{n} x {r}" for r, n in reasons) or "the folder holds no files"
    return DatasetFormatError(f"{root}: no usable entries ({detail}); expected layout {layout}")


def reason_category(reason: str) -> str:
    return reason.split(":", 1)[0]


__all__ = ["LAYOUT_FILES", "SPLIT_NAMES", "scan_image_folder", "is_layout_file", "sub_folders", "find_child",
           "split_names", "require_split_dir", "no_items_error", "reason_category"]
