"""The datasets every reader returns: :class:`FaceImageDataset` (photos) and :class:`FaceVideoDataset`
(clips), lists of ``(path, labels)`` with the report of the entries that were skipped and why."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import torch.utils.data
from tqdm.auto import tqdm

from facelab.data.frames import iter_frames
from facelab.data.io import load_image
from facelab.data.layouts.folders import reason_category
from facelab.errors import FacelabError


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
        return dict(Counter(reason_category(r) for _, r in self.skipped).most_common())

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
        image = load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, dict(lab)

    def drop_unreadable(self, progress=False):
        """Decode every image once; files that fail move to ``skipped`` with the decode error.

        Returns ``self`` (changed in place), so training never meets a broken file mid-epoch.
        """
        keep = []
        for path, lab in tqdm(self.items, desc="checking images", disable=not progress, leave=False):
            try:
                load_image(path)
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

    Streams through :func:`facelab.data.frames.iter_frames`; raises VideoDecodeError for a
    damaged clip.
    """

    for frame in iter_frames(path):
        yield frame.image


__all__ = ["FaceImageDataset", "FaceVideoDataset", "iter_clip_frames"]
