"""Faces in memory: decoded once, resized to S x S and kept as one uint8 tensor.

:func:`preload` turns any facelab dataset (items ``(image, labels dict)``) into a
:class:`FaceTensors` -- images uint8 (N, 3, S, S) RGB, 1/4 of the memory of float32, and one
integer tensor per label -- which the training loops and the evaluation cut batches from.
:func:`normalize` is the network's input transform (ImageNet mean/std).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from facelab import labels as L
from facelab.errors import DatasetFormatError, FacelabError, InvalidInputError

#: The integer labels the training loops know about (other item labels, e.g. "person", are metadata).
LABEL_KEYS = ("identity", "emotion", "age", "gender", "race")
#: Stored in a label tensor where an item has no value for that label.
UNKNOWN = -1


class FaceTensors(Dataset):
    """Preloaded face crops: ``images`` uint8 (N, 3, S, S) RGB and integer ``labels``
    ({"emotion": LongTensor (N,), ...}; -1 = unknown).  ``label_names`` are the class
    vocabularies of the source dataset, ``skipped`` lists ``(index, reason)`` of items
    that could not be loaded.  Indexing gives ``(image tensor, labels dict)`` like any
    facelab dataset."""

    def __init__(self, images: torch.Tensor, labels: dict, label_names: dict | None = None, skipped=None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InvalidInputError(f"images must be a uint8 (N, 3, S, S) tensor, got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = {k: torch.as_tensor(v, dtype=torch.long) for k, v in labels.items()}
        for key, values in self.labels.items():
            if len(values) != len(images):
                raise InvalidInputError(f"label {key!r} has {len(values)} values for {len(images)} images")
        self.label_names = dict(label_names or {})
        self.skipped = list(skipped or [])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], {k: int(v[index]) for k, v in self.labels.items()}

    def subset(self, indices) -> "FaceTensors":
        indices = torch.as_tensor(indices, dtype=torch.long)
        return FaceTensors(self.images[indices], {k: v[indices] for k, v in self.labels.items()}, self.label_names)

    def __repr__(self) -> str:
        return f"<FaceTensors {len(self)} faces {self.image_size}px, labels {list(self.labels)}>"


def to_chw_uint8(image, where="image") -> torch.Tensor:
    """An H x W x 3 uint8 RGB numpy array or a 3 x H x W uint8 tensor -> 3 x H x W uint8 tensor."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInputError(f"{where}: expected an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise InvalidInputError(f"{where}: expected a 3 x H x W uint8 tensor, got {image.dtype} {tuple(image.shape)}")
        return image
    raise InvalidInputError(f"{where}: expected a numpy array or a torch tensor, got {type(image).__name__}")


def resize_faces(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (N, 3, H, W) or (3, H, W) images to size x size (bilinear, antialiased)."""
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.shape[-2:] != (size, size):
        chunks = []
        for chunk in batch.split(256):  # bounded float memory for large sets
            chunk = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)
            chunks.append(chunk.round().clamp_(0, 255).to(torch.uint8))
        batch = torch.cat(chunks)
    return batch[0] if single else batch


def _crop_box(image: torch.Tensor, box) -> torch.Tensor:
    """Tight crop of a (3, H, W) image to box (x1, y1, x2, y2), clipped to the image."""
    h, w = image.shape[-2:]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        raise InvalidInputError(f"face box {tuple(box)} lies outside the {w}x{h} image")
    return image[:, y1:y2, x1:x2]


class ResizedFaces(Dataset):
    """Wraps a dataset: item i -> (index, uint8 S x S tensor or None, labels, error message)."""

    def __init__(self, dataset, size):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            image, labels = self.dataset[index]
            if not isinstance(labels, dict):
                raise InvalidInputError(f"item {index}: labels must be a dict such as {{'emotion': 3}}, "
                                        f"got {type(labels).__name__}")
            face = to_chw_uint8(image, where=f"item {index}")
            if isinstance(labels, dict) and labels.get("box") is not None:  # e.g. AffectNet's CSV face box
                face = _crop_box(face, labels["box"])
            return index, resize_faces(face, self.size), labels, None
        except FacelabError as exc:
            return index, None, None, f"{type(exc).__name__}: {exc}"


def _no_collate(item):
    """DataLoader(batch_size=None) hands over single items; keep them as they are."""
    return item


def _label_names_of(dataset) -> dict:
    names = getattr(dataset, "label_names", None)
    return {k: (list(v) if v is not None else None) for k, v in dict(names or {}).items()}


def preload(dataset, size: int, *, num_workers: int = 0, progress: bool = True, desc: str = "preload") -> FaceTensors:
    """Decode every face once, resize it to ``size`` x ``size`` and keep them all in one
    uint8 tensor (N, 3, S, S) (1/4 of the memory of float32), with the integer labels.

    Items that cannot be decoded are not silently dropped: they are listed in
    ``result.skipped`` as ``(index, reason)`` and counted in a warning.  If an item's labels
    carry a face ``box`` (AffectNet's CSV), the face is cropped to it first (tight crop).
    """
    if isinstance(dataset, FaceTensors):
        if dataset.image_size == size:
            return dataset
        return FaceTensors(resize_faces(dataset.images, size), dataset.labels, dataset.label_names, dataset.skipped)
    if len(dataset) == 0:
        raise DatasetFormatError(f"the dataset {dataset!r} is empty; nothing to train on")
    loader = DataLoader(ResizedFaces(dataset, size), batch_size=None, num_workers=num_workers,
                                         collate_fn=_no_collate)
    faces, rows, skipped = [], [], []
    for index, face, labels, error in tqdm(loader, total=len(dataset), desc=desc, disable=not progress, leave=False):
        if error is not None:
            skipped.append((index, error))
            continue
        faces.append(face)
        rows.append(labels)
    if not faces:
        raise DatasetFormatError(f"none of the {len(dataset)} items could be loaded; first failure: {skipped[0][1]}")
    if skipped:
        warnings.warn(f"preload: {len(skipped)} of {len(dataset)} items could not be loaded and were skipped "
                      f"(see .skipped); first: {skipped[0]}", stacklevel=2)
    keys = [k for k in LABEL_KEYS if any(k in r for r in rows)]
    labels = {}
    for key in keys:
        values = [r.get(key) for r in rows]
        bad = [v for v in values if v is not None and not isinstance(v, (int, np.integer))]
        if bad:
            raise DatasetFormatError(f"label {key!r} must be an int, got {bad[0]!r}")
        labels[key] = torch.tensor([UNKNOWN if v is None else int(v) for v in values], dtype=torch.long)
    return FaceTensors(torch.stack(faces), labels, _label_names_of(dataset), skipped)


def normalize(images: torch.Tensor, mean=L.IMAGENET_MEAN, std=L.IMAGENET_STD) -> torch.Tensor:
    """uint8 RGB (N, 3, S, S) -> float, ``(image / 255 - mean) / std``, channels_last."""
    mean = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    x = (images.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


__all__ = ["LABEL_KEYS", "UNKNOWN", "FaceTensors", "ResizedFaces", "to_chw_uint8", "resize_faces", "preload",
           "normalize"]
