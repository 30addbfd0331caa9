"""LFW: ``ROOT/<Name>/<Name>_0001.jpg`` (+ ``people.txt``, ``pairs.txt``)."""
from __future__ import annotations

import re
from pathlib import Path

from facelab.data.layouts.dataset import FaceImageDataset
from facelab.data.layouts.folders import find_child, is_layout_file, no_items_error, sub_folders
from facelab.errors import DatasetFormatError

LFW_LAYOUT = "ROOT/<Name>/<Name>_0001.jpg with optional ROOT/people.txt and ROOT/pairs.txt"
_LFW_FILE = re.compile(r"^(?P<name>.+)_(?P<num>\d{4})\.(jpg|jpeg|png)$", re.IGNORECASE)


def read_lfw(root, *, transform=None, pairs_file=None, people_file=None) -> FaceImageDataset:
    """LFW: ``ROOT/Aaron_Peirsol/Aaron_Peirsol_0001.jpg``; labels ``identity`` and ``person``.

    Also parses LFW's ``people.txt`` (``ds.people``: name -> photo count) and
    ``pairs.txt`` (``ds.pairs``: list of ``(path_a, path_b, same, fold)``) when present;
    pairs that name a missing photo are skipped and counted.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: dataset folder not found; expected layout {LFW_LAYOUT}")
    entries, skipped = [], []
    for child in sub_folders(root, "person", skipped):
        for path in sorted(child.iterdir()):
            if is_layout_file(path):
                continue
            m = _LFW_FILE.match(path.name)
            if path.is_dir():
                skipped.append((str(path), "nested folder inside a person folder"))
            elif m is None or m.group("name") != child.name:
                skipped.append((str(path), f"name does not match {child.name}_NNNN.jpg"))
            else:
                entries.append((path, child.name))
    if not entries:
        raise no_items_error(root, LFW_LAYOUT, skipped)
    people = sorted({person for _, person in entries})
    index = {p: i for i, p in enumerate(people)}
    items = [(path, {"identity": index[person], "person": person}) for path, person in entries]
    ds = FaceImageDataset(items, transform, classes=people, label_names={"identity": people},
                          skipped=skipped, root=root, layout="lfw")
    people_file = Path(people_file) if people_file else _beside(root, "people.txt")
    ds.people = _read_lfw_people(people_file, ds.skipped) if people_file else None
    pairs_file = Path(pairs_file) if pairs_file else _beside(root, "pairs.txt")
    ds.pairs = _read_lfw_pairs(pairs_file, root, ds.skipped) if pairs_file else None
    return ds


def _beside(root: Path, name: str):
    """``name`` inside ``root`` or next to it (LFW's index files are often downloaded separately)."""
    return find_child(root, [name], want_dir=False) or find_child(root.parent, [name], want_dir=False)


def _read_lfw_people(path, skipped):
    """LFW people.txt: header numbers (folds, people per fold) and ``Name<TAB>count`` lines."""
    people = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or (len(fields) == 1 and fields[0].isdigit()):
            continue
        if len(fields) == 2 and fields[1].isdigit():
            people[fields[0]] = people.get(fields[0], 0) + int(fields[1])
        else:
            skipped.append((f"{Path(path).name}:{lineno}:{line.strip()}", "malformed people.txt line"))
    return people


def _read_lfw_pairs(path, root, skipped):
    """LFW pairs.txt: header ``folds pairs_per_fold``, then ``Name n1 n2`` (same person)
    or ``Name1 n1 Name2 n2`` (different people)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    per_fold = None
    header = lines[0].split() if lines else []
    if header and all(h.isdigit() for h in header):
        per_fold = int(header[-1]) * 2 if len(header) == 2 else None
        lines = lines[1:]
        start = 2
    else:
        start = 1
    pairs, k = [], 0
    for lineno, line in enumerate(lines, start):
        f = line.split()
        if not f:
            continue
        entry = f"{Path(path).name}:{lineno}:{line.strip()}"
        try:
            if len(f) == 3:
                a, b, same = (f[0], int(f[1])), (f[0], int(f[2])), True
            elif len(f) == 4:
                a, b, same = (f[0], int(f[1])), (f[2], int(f[3])), False
            else:
                raise ValueError
        except ValueError:
            skipped.append((entry, "malformed pairs.txt line"))
            continue
        pa, pb = (root / n / f"{n}_{i:04d}.jpg" for n, i in (a, b))
        fold = k // per_fold if per_fold else 0
        k += 1
        if not (pa.is_file() and pb.is_file()):
            skipped.append((entry, "pair names a missing photo"))
            continue
        pairs.append((pa, pb, same, fold))
    return pairs


__all__ = ["LFW_LAYOUT", "read_lfw"]
