"""Readers for the face datasets' real on-disk layouts, as torch Datasets.

The same readers serve the real datasets (VGGFace2, LFW, UTKFace, AffectNet, AFEW,
VGAF) and the built-in face world (:mod:`facelab.synth.writers` writes exactly these
layouts), so a notebook switches from synthetic to real data by changing one path.

* ``read_vggface2``: ``ROOT/train/<person_id>/<img>.jpg`` (+ ``ROOT/train_list.txt``)
  -> labels ``identity``, ``person``
* ``read_lfw``: ``ROOT/<Name>/<Name>_0001.jpg`` (+ ``people.txt``, ``pairs.txt``)
  -> ``identity``, ``person``
* ``read_utkface``: ``ROOT/<age>_<gender>_<race>_<date>.jpg.chip.jpg`` -> ``age``, ``gender``, ``race``
* ``read_affectnet``: ``ROOT/train/<Class>/<img>.jpg`` or the official CSV -> ``emotion``
  (+ ``box``, ``valence``, ``arousal`` from the CSV)
* ``read_afew``: ``ROOT/Train/<Emotion>/<clip>.avi`` (or a folder of frames) -> ``emotion`` (7 classes)
* ``read_vgaf``: ``ROOT/Train/<clip>.mp4`` + ``ROOT/Train_labels.txt`` -> ``group``
  (Positive / Neutral / Negative)
* ``read_scenes``: ``ROOT/images/*.jpg`` + ``ROOT/boxes.json`` -> ``boxes``

Images are returned as ``H x W x 3`` uint8 **RGB** numpy arrays (never BGR).

Nothing is dropped silently: every entry a reader does not keep (a malformed file
name, a CSV row with AffectNet's "No-Face" id, an unknown class folder ...) is
recorded in ``dataset.skipped`` as ``(entry, reason)``; ``dataset.report()``
summarises the counts and ``dataset.write_skipped_csv(path)`` writes them all.
A folder that is not in the expected layout at all raises
:class:`facelab.errors.DatasetFormatError` naming the layout that was expected.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch.utils.data

from facelab import labels as L
from facelab.errors import DatasetFormatError
from facelab.data.frames import iter_frames

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")
#: Files that are part of a dataset's layout but are not samples (never counted as skipped).
_LAYOUT_FILES = {"people.txt", "pairs.txt", "peopledevtrain.txt", "peopledevtest.txt",
                 "pairsdevtrain.txt", "pairsdevtest.txt", "train_list.txt", "test_list.txt",
                 "identity_meta.csv", "readme", "readme.txt", "readme.md", "summary.json",
                 ".facelab-complete", "lfw-names.txt",
                 "facelab_meta.csv", "boxes.json"}

# ---------------------------------------------------------------------------------------------
# helpers


def _load_image(path) -> np.ndarray:
    """Decode one image file as H x W x 3 uint8 RGB (facelab.data.io: safe, EXIF-upright)."""
    from facelab.data.io import load_image

    return load_image(path)


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


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
        if path.is_dir() or _is_layout_file(path):
            continue
        if is_image_file(path):
            images.append(path)
        else:
            others.append((str(path), "not an image file: extension " + (path.suffix or "(none)")))
    return images, others


def _is_layout_file(path) -> bool:
    path = Path(path)
    return path.name.startswith(".") or path.name.lower() in _LAYOUT_FILES or \
        path.name.lower().endswith("_labels.txt")


def _find_child(root: Path, names, *, want_dir=True):
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


_SPLIT_NAMES = {
    "train": ("train", "training", "train_afew"),
    "val": ("val", "validation", "valid", "val_afew"),
    "test": ("test", "testing", "test_afew"),
}


def _split_names(split: str):
    split = str(split).lower()
    for key, names in _SPLIT_NAMES.items():
        if split in names:
            return names
    return (split,)


def _require_split_dir(root, split, layout):
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: dataset folder not found; expected layout {layout}")
    path = _find_child(root, _split_names(split))
    if path is None:
        have = ", ".join(sorted(c.name for c in root.iterdir() if c.is_dir())[:8]) or "no sub-folders"
        raise DatasetFormatError(
            f"{root}: no '{split}' folder (found: {have}); expected layout {layout}")
    return path


def _no_items_error(root, layout, skipped):
    reasons = Counter(_reason_category(r) for _, r in skipped).most_common(3)
    detail = "; ".join(f"{n} x {r}" for r, n in reasons) or "the folder holds no files"
    return DatasetFormatError(f"{root}: no usable entries ({detail}); expected layout {layout}")


def _reason_category(reason: str) -> str:
    return reason.split(":", 1)[0]


# ---------------------------------------------------------------------------------------------
# dataset classes


class _Entries:
    """What every facelab dataset has: items, classes, and the report of skipped entries."""

    def __init__(self, items, *, classes=None, label_names=None, skipped=None, root=None, layout=None):
        self.items = [(Path(p), dict(lab)) for p, lab in items]
        self.skipped = list(skipped or [])
        self.classes = tuple(classes) if classes is not None else None
        self.label_names = dict(label_names or {})
        self.root = Path(root) if root is not None else None
        self.layout = layout

    def __len__(self) -> int:
        return len(self.items)

    @property
    def paths(self):
        return [p for p, _ in self.items]

    def targets(self, key):
        """The label ``key`` of every item, in order (e.g. ``ds.targets("emotion")``)."""
        return [lab[key] for _, lab in self.items]

    @property
    def num_classes(self):
        return len(self.classes) if self.classes is not None else None

    def class_counts(self, key=None):
        """Number of items per class name for the label ``key`` (default: the main label)."""
        key = key or self.main_label
        names = self.label_names.get(key)
        counts = Counter(lab[key] for _, lab in self.items)
        if names is None:
            return dict(sorted(counts.items()))
        return {names[i]: counts.get(i, 0) for i in range(len(names))}

    @property
    def main_label(self):
        return next(iter(self.label_names), None)

    def skipped_counts(self):
        """Skipped entries per reason category."""
        return dict(Counter(_reason_category(r) for _, r in self.skipped).most_common())

    def report(self) -> str:
        """One paragraph: kept items, skipped entries per reason (nothing dropped silently)."""
        where = f" from {self.root}" if self.root is not None else ""
        lines = [f"{type(self).__name__}{where}: {len(self.items)} items kept, "
                 f"{len(self.skipped)} skipped"]
        for reason, n in self.skipped_counts().items():
            lines.append(f"  skipped {n:6d} x {reason}")
        return "\n".join(lines)

    def write_skipped_csv(self, path):
        """Write every skipped entry as a CSV row ``entry,reason``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["entry", "reason"])
            w.writerows(self.skipped)
        return path

    def __repr__(self):
        return f"<{type(self).__name__} {len(self.items)} items, {len(self.skipped)} skipped>"


class FaceImageDataset(_Entries, torch.utils.data.Dataset):
    """A list of ``(image path, labels dict)``; ``ds[i]`` -> ``(image, labels)``.

    ``image`` is an ``H x W x 3`` uint8 RGB array, or ``transform(image)`` when a
    transform is given.  ``labels`` is a copy of the item's label dict.
    """

    def __init__(self, items, transform=None, **kw):
        super().__init__(items, **kw)
        self.transform = transform

    def __getitem__(self, index):
        path, lab = self.items[index]
        image = _load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, dict(lab)

    def drop_unreadable(self, progress=False):
        """Decode every image once; files that fail move to ``skipped`` with the decode error.

        Returns ``self`` (changed in place), so training never meets a broken file mid-epoch.
        """
        from tqdm.auto import tqdm

        from facelab.errors import FacelabError

        keep = []
        for path, lab in tqdm(self.items, desc="checking images", disable=not progress, leave=False):
            try:
                _load_image(path)
            except FacelabError as exc:
                self.skipped.append((str(path), f"unreadable image: {exc}"))
            else:
                keep.append((path, lab))
        self.items = keep
        return self

    def subset(self, indices):
        """A dataset with the chosen items (same classes, skipped report and transform)."""
        sub = FaceImageDataset([self.items[i] for i in indices], self.transform, classes=self.classes,
                               label_names=self.label_names, skipped=self.skipped, root=self.root,
                               layout=self.layout)
        for attr in ("pairs", "people"):
            if hasattr(self, attr):
                setattr(sub, attr, getattr(self, attr))
        return sub


class FaceVideoDataset(_Entries, torch.utils.data.Dataset):
    """A list of ``(clip path, labels dict)``: a video file or a folder of extracted frames.

    ``ds[i]`` -> ``(path, labels)`` (videos are streamed, never decoded whole);
    ``ds.frames(i)`` iterates the clip's frames as ``H x W x 3`` uint8 RGB arrays.
    """

    def __getitem__(self, index):
        path, lab = self.items[index]
        return path, dict(lab)

    def frames(self, index):
        return iter_clip_frames(self.items[index][0])


def iter_clip_frames(path):
    """Frames of a video file, or of a folder of frame images (natural order), as RGB arrays.

    Streams through :func:`facelab.inference.video.iter_frames`; raises VideoDecodeError for a
    damaged clip.
    """

    for frame in iter_frames(path):
        yield frame.image


# ---------------------------------------------------------------------------------------------
# VGGFace2

VGGFACE2_LAYOUT = "ROOT/<split>/<person_id>/<image>.jpg with optional ROOT/<split>_list.txt"


def read_vggface2(root, split="train", *, transform=None, check_files=True) -> FaceImageDataset:
    """VGGFace2: ``ROOT/train/n000001/0001_01.jpg``; labels ``identity`` (index) and ``person``.

    When ``ROOT/train_list.txt`` (``n000001/0001_01.jpg`` per line) exists it defines the
    split; listed files that are missing are skipped and counted (``check_files``).
    Otherwise the person folders are walked.  Identity indices follow the sorted
    person ids of this split.
    """
    root = Path(root)
    split_dir = _require_split_dir(root, split, VGGFACE2_LAYOUT)
    list_file = _find_child(root, [f"{split_dir.name}_list.txt"], want_dir=False)
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
        for child in sorted(split_dir.iterdir()):
            if _is_layout_file(child):
                continue
            if child.is_file():
                skipped.append((str(child), "file outside a person folder"))
                continue
            images, others = scan_image_folder(child, recursive=False)
            skipped += others
            skipped += [(str(d), "nested folder inside a person folder") for d in sorted(child.iterdir())
                        if d.is_dir()]
            entries += [(p, child.name) for p in images]
    if not entries:
        raise _no_items_error(split_dir, VGGFACE2_LAYOUT, skipped)
    people = sorted({person for _, person in entries})
    index = {p: i for i, p in enumerate(people)}
    items = [(path, {"identity": index[person], "person": person}) for path, person in entries]
    return FaceImageDataset(items, transform, classes=people, label_names={"identity": people},
                            skipped=skipped, root=split_dir, layout="vggface2")


# ---------------------------------------------------------------------------------------------
# LFW

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
    for child in sorted(root.iterdir()):
        if _is_layout_file(child):
            continue
        if child.is_file():
            skipped.append((str(child), "file outside a person folder"))
            continue
        for path in sorted(child.iterdir()):
            if _is_layout_file(path):
                continue
            m = _LFW_FILE.match(path.name)
            if path.is_dir():
                skipped.append((str(path), "nested folder inside a person folder"))
            elif m is None or m.group("name") != child.name:
                skipped.append((str(path), f"name does not match {child.name}_NNNN.jpg"))
            else:
                entries.append((path, child.name))
    if not entries:
        raise _no_items_error(root, LFW_LAYOUT, skipped)
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
    return _find_child(root, [name], want_dir=False) or _find_child(root.parent, [name], want_dir=False)


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


# ---------------------------------------------------------------------------------------------
# UTKFace

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
        raise _no_items_error(root, UTKFACE_LAYOUT, skipped)
    return FaceImageDataset(items, transform, label_names={"age": None, "gender": L.GENDERS,
                                                           "race": L.RACES},
                            skipped=skipped, root=root, layout="utkface")


# ---------------------------------------------------------------------------------------------
# AffectNet

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
        split_dir = _find_child(root, _split_names(split)) if root.is_dir() else None
        if split_dir is None:
            names = _split_names(split)
            key = "train" if names == _split_names("train") else "val" if names == _split_names("val") else None
            for where in (root, root / "Manually_Annotated_file_lists"):
                found = _find_child(where, _AFFECTNET_CSV_NAMES.get(key, (f"{split}.csv",)),
                                    want_dir=False)
                if found is not None:
                    csv_file = found
                    break
    if csv_file is not None:
        if images_root is None:
            images_root = _find_child(root, ["Manually_Annotated_Images", "Manually_Annotated",
                                             "images"]) or root
        items, skipped = _affectnet_csv(Path(csv_file), Path(images_root), classes, check_files)
        where = Path(csv_file)
    else:
        split_dir = _require_split_dir(root, split, AFFECTNET_LAYOUT)
        items, skipped = _affectnet_folders(split_dir, classes)
        where = split_dir
    if not items:
        raise _no_items_error(where, AFFECTNET_LAYOUT, skipped)
    return FaceImageDataset(items, transform, classes=classes, label_names={"emotion": classes},
                            skipped=skipped, root=where, layout="affectnet")


def _affectnet_folders(split_dir, classes):
    items, skipped = [], []
    for child in sorted(split_dir.iterdir()):
        if _is_layout_file(child):
            continue
        if child.is_file():
            skipped.append((str(child), "file outside a class folder"))
            continue
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


# ---------------------------------------------------------------------------------------------
# AFEW

AFEW_LAYOUT = ("ROOT/<Train|Val>/<Emotion>/<clip>.avi|.mp4 (or <clip>/ folders of frame images), "
               "Emotion in Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise")


def read_afew(root, split="train") -> FaceVideoDataset:
    """AFEW: labels ``emotion`` = index in ``labels.EMOTIONS_7`` (AFEW has 7 classes).

    A clip is a video file, or a folder of extracted frames (frame order: natural
    sort of the file names).  Frame folders without images are skipped and counted.
    """
    root = Path(root)
    split_dir = _require_split_dir(root, split, AFEW_LAYOUT)
    classes = L.EMOTIONS_7
    items, skipped = [], []
    for folder in sorted(split_dir.iterdir()):
        if _is_layout_file(folder):
            continue
        if folder.is_file():
            skipped.append((str(folder), "file outside an emotion folder"))
            continue
        emotion = L.emotion_from_name(folder.name)
        for clip in sorted(folder.iterdir()):
            if _is_layout_file(clip):
                continue
            if emotion is None or emotion not in classes:
                skipped.append((str(clip), f"unknown emotion folder: '{folder.name}'"))
            elif clip.is_dir():
                if any(is_image_file(p) for p in clip.iterdir()):
                    items.append((clip, {"emotion": classes.index(emotion)}))
                else:
                    skipped.append((str(clip), "frame folder without images"))
            elif is_video_file(clip):
                items.append((clip, {"emotion": classes.index(emotion)}))
            else:
                skipped.append((str(clip), "not a video file: extension " + (clip.suffix or "(none)")))
    if not items:
        raise _no_items_error(split_dir, AFEW_LAYOUT, skipped)
    return FaceVideoDataset(items, classes=classes, label_names={"emotion": classes}, skipped=skipped,
                            root=split_dir, layout="afew")


# ---------------------------------------------------------------------------------------------
# VGAF

VGAF_LAYOUT = ("ROOT/<Train|Val>/<clip>.mp4 and ROOT/<Train|Val>_labels.txt with a header line "
               "'Vid_name Label' and lines '<clip> <1 Positive|2 Neutral|3 Negative>'")


def read_vgaf(root, split="train", *, labels_file=None) -> FaceVideoDataset:
    """VGAF: labels ``group`` = index in ``labels.VGAF_CLASSES`` (Positive, Neutral, Negative).

    Every label line and every video is accounted for: malformed lines, unknown
    codes, labelled clips without a video and videos without a label are skipped
    and counted.
    """
    root = Path(root)
    split_dir = _require_split_dir(root, split, VGAF_LAYOUT)
    if labels_file is None:
        labels_file = _find_child(root, [f"{split_dir.name}_labels.txt", f"{split}_labels.txt"],
                                  want_dir=False)
    if labels_file is None:
        raise DatasetFormatError(f"{root}: no {split_dir.name}_labels.txt label file; "
                                 f"expected layout {VGAF_LAYOUT}")
    labels_file = Path(labels_file)
    videos = {}
    skipped = []
    for path in sorted(split_dir.iterdir()):
        if _is_layout_file(path):
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
        raise _no_items_error(split_dir, VGAF_LAYOUT, skipped)
    return FaceVideoDataset(items, classes=L.VGAF_CLASSES, label_names={"group": L.VGAF_CLASSES},
                            skipped=skipped, root=split_dir, layout="vgaf")


# ---------------------------------------------------------------------------------------------
# scenes (the face world's detection set)

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
        raise _no_items_error(root, SCENES_LAYOUT, skipped)
    return FaceImageDataset(items, transform, skipped=skipped, root=root, layout="scenes",
                            label_names={"boxes": None})


READERS = {"vggface2": read_vggface2, "lfw": read_lfw, "utkface": read_utkface,
           "affectnet": read_affectnet, "afew": read_afew, "vgaf": read_vgaf, "scenes": read_scenes}


def read_dataset(name, root, **kw):
    """``read_dataset("affectnet", root, split="val")`` -> the reader for that layout."""
    try:
        reader = READERS[name]
    except KeyError:
        raise DatasetFormatError(f"unknown dataset '{name}'; choose one of {', '.join(READERS)}") from None
    return reader(root, **kw)


__all__ = [
    "FaceImageDataset", "FaceVideoDataset", "iter_clip_frames", "scan_image_folder",
    "read_vggface2", "read_lfw", "read_utkface", "parse_utkface_name", "read_affectnet",
    "read_afew", "read_vgaf", "read_scenes", "read_dataset", "READERS",
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS",
]
