"""The face world's detection set: ``ROOT/images/*.jpg`` + ``ROOT/boxes.json``."""
from __future__ import annotations

import json
from pathlib import Path

from facelab.data.layouts.dataset import FaceImageDataset
from facelab.data.layouts.folders import no_items_error
from facelab.errors import DatasetFormatError

SCENES_LAYOUT = "ROOT/images/<name>.jpg and ROOT/boxes.json {name: [[x1, y1, x2, y2], ...]}"


def read_scenes(root, *, transform=None) -> FaceImageDataset:
    """Scene images with their true face boxes: labels ``boxes`` (list of (x1, y1, x2, y2))."""
    root = Path(root)
    boxes_file = root / "boxes.json"
    if not boxes_file.is_file() or not (root / "images").is_dir():
        raise DatasetFormatError(f"{root}: expected layout {SCENES_LAYOUT}")
    boxes = json.loads(boxes_file.read_text(encoding="utf-8"))
    if not isinstance(boxes, dict):
        raise DatasetFormatError(f"{boxes_file}: expected a JSON object; layout {SCENES_LAYOUT}")
    items, skipped = [], []
    for name, bxs in sorted(boxes.items()):
        path = root / "images" / name
        if not path.is_file():
            skipped.append((name, "listed image missing"))
            continue
        items.append((path, {"boxes": [tuple(float(v) for v in b) for b in bxs]}))
    listed = set(boxes)
    skipped += [(str(p), "image not listed in boxes.json")
                for p in sorted((root / "images").iterdir()) if p.name not in listed]
    if not items:
        raise no_items_error(root, SCENES_LAYOUT, skipped)
    return FaceImageDataset(items, transform, skipped=skipped, root=root, layout="scenes",
                            label_names={"boxes": None})


__all__ = ["SCENES_LAYOUT", "read_scenes"]
