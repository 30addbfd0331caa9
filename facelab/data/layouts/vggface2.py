"""VGGFace2: ``ROOT/train/<person_id>/<image>.jpg`` (+ ``ROOT/train_list.txt``)."""
from __future__ import annotations

from pathlib import Path

from facelab.data.io import is_image_file
from facelab.data.layouts.dataset import FaceImageDataset
from facelab.data.layouts.folders import (
    find_child, no_items_error, require_split_dir, scan_image_folder, sub_folders,
)

VGGFACE2_LAYOUT = "ROOT/<split>/<person_id>/<image>.jpg with optional ROOT/<split>_list.txt"


def read_vggface2(root, split="train", *, transform=None, check_files=True) -> FaceImageDataset:
    """VGGFace2: ``ROOT/train/n000001/0001_01.jpg``; labels ``identity`` (index) and ``person``.

    When ``ROOT/train_list.txt`` (``n000001/0001_01.jpg`` per line) exists it defines the
    split; listed files that are missing are skipped and counted (``check_files``).
    Otherwise the person folders are walked.  Identity indices follow the sorted
    person ids of this split.
    """
    root = Path(root)
    split_dir = require_split_dir(root, split, VGGFACE2_LAYOUT)
    list_file = find_child(root, [f"{split_dir.name}_list.txt"], want_dir=False)
    entries, skipped = [], []
    if list_file is not None:
        for lineno, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
            rel = line.strip()
            if not rel:
                continue
            parts = rel.replace("\\", "/").split("/")
            entry = f"{list_file.name}:{lineno}:{rel}"
            if len(parts) != 2 or not all(parts) or not is_image_file(rel):
                skipped.append((entry, "malformed list line: expected <person_id>/<image>.jpg"))
                continue
            path = split_dir / parts[0] / parts[1]
            if check_files and not path.is_file():
                skipped.append((entry, "listed image missing"))
                continue
            entries.append((path, parts[0]))
    else:
        for child in sub_folders(split_dir, "person", skipped):
            images, others = scan_image_folder(child, recursive=False)
            skipped += others
            skipped += [(str(d), "nested folder inside a person folder") for d in sorted(child.iterdir())
                        if d.is_dir()]
            entries += [(p, child.name) for p in images]
    if not entries:
        raise no_items_error(split_dir, VGGFACE2_LAYOUT, skipped)
    people = sorted({person for _, person in entries})
    index = {p: i for i, p in enumerate(people)}
    items = [(path, {"identity": index[person], "person": person}) for path, person in entries]
    return FaceImageDataset(items, transform, classes=people, label_names={"identity": people},
                            skipped=skipped, root=split_dir, layout="vggface2")


__all__ = ["VGGFACE2_LAYOUT", "read_vggface2"]
