"""VGAF: ``ROOT/Train/<clip>.mp4`` + ``ROOT/Train_labels.txt``."""
from __future__ import annotations

from pathlib import Path

from facelab import labels as L
from facelab.data.io import is_video_file
from facelab.data.layouts.dataset import FaceVideoDataset
from facelab.data.layouts.folders import find_child, is_layout_file, no_items_error, require_split_dir
from facelab.errors import DatasetFormatError

VGAF_LAYOUT = ("ROOT/<Train|Val>/<clip>.mp4 and ROOT/<Train|Val>_labels.txt with a header line "
               "'Vid_name Label' and lines '<clip> <1 Positive|2 Neutral|3 Negative>'")


def read_vgaf(root, split="train", *, labels_file=None) -> FaceVideoDataset:
    """VGAF: labels ``group`` = index in ``labels.VGAF_CLASSES`` (Positive, Neutral, Negative).

    Every label line and every video is accounted for: malformed lines, unknown
    codes, labelled clips without a video and videos without a label are skipped
    and counted.
    """
    root = Path(root)
    split_dir = require_split_dir(root, split, VGAF_LAYOUT)
    if labels_file is None:
        labels_file = find_child(root, [f"{split_dir.name}_labels.txt", f"{split}_labels.txt"],
                                  want_dir=False)
    if labels_file is None:
        raise DatasetFormatError(f"{root}: no {split_dir.name}_labels.txt label file; "
                                 f"expected layout {VGAF_LAYOUT}")
    labels_file = Path(labels_file)
    videos = {}
    skipped = []
    for path in sorted(split_dir.iterdir()):
        if is_layout_file(path):
            continue
        if path.is_file() and is_video_file(path):
            videos.setdefault(path.stem, path)
        else:
            skipped.append((str(path), "not a video file"))
    items, seen = [], set()
    for lineno, line in enumerate(labels_file.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        entry = f"{labels_file.name}:{lineno}:{line.strip()}"
        if lineno == 1 and len(fields) == 2 and not fields[1].lstrip("-").isdigit():
            continue  # header 'Vid_name Label'
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            skipped.append((entry, "malformed label line: expected '<clip> <code>'"))
            continue
        name, code = Path(fields[0]).stem if is_video_file(fields[0]) else fields[0], int(fields[1])
        if code not in L.VGAF_CODES:
            skipped.append((entry, f"label code not 1, 2 or 3: {code}"))
        elif name in seen:
            skipped.append((entry, "duplicate label line"))
        elif name not in videos:
            skipped.append((entry, "labelled clip has no video"))
        else:
            seen.add(name)
            items.append((videos[name], {"group": L.VGAF_CLASSES.index(L.VGAF_CODES[code])}))
    skipped += [(str(p), "video has no label line") for n, p in videos.items() if n not in seen]
    if not items:
        raise no_items_error(split_dir, VGAF_LAYOUT, skipped)
    return FaceVideoDataset(items, classes=L.VGAF_CLASSES, label_names={"group": L.VGAF_CLASSES},
                            skipped=skipped, root=split_dir, layout="vgaf")


__all__ = ["VGAF_LAYOUT", "read_vgaf"]
