"""What the face tracker compares besides the boxes: a face's appearance vector (the network's own
features, a colour histogram of its crop, or both), one unit-length row per face."""
from __future__ import annotations

import numpy as np

from facelab.errors import InvalidInputError

#: What the video pipelines give the tracker as a face's appearance (:func:`appearance_vectors`).
APPEARANCES = ("features", "color", "features+color")


def color_histogram(crops, bins: int = 8, *, inside=None) -> np.ndarray:
    """The colour appearance of face crops: a ``bins**3`` RGB histogram per crop, square-rooted
    and of unit length, so the cosine of two is their Bhattacharyya coefficient.

    ``crops``: ``N x 3 x S x S`` RGB in ``[0, 255]`` (numpy or a CPU torch tensor, e.g. from
    :func:`facelab.faces.crop_faces`).  ``inside`` (N x 4, see :func:`facelab.inference.tracking.inside_part`) limits
    each histogram to the part of its crop that lies inside the frame: the black padding of a
    face at the border says nothing about it.  Skin, hair and eye colours change little when
    a face turns or changes expression, which an emotion network's features do.
    """
    c = np.asarray(crops, dtype=np.float32)
    if c.ndim != 4 or c.shape[1] != 3:
        raise InvalidInputError(f"crops of shape {c.shape}: expected N x 3 x S x S RGB")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise InvalidInputError(f"bins={bins!r}: must be an integer >= 1")
    n, _, h, w = c.shape
    q = np.clip((c * (bins / 256.0)).astype(np.int64), 0, bins - 1)
    index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2] + (np.arange(n) * bins ** 3)[:, None, None]
    weights = np.ones((n, h, w))
    if inside is not None:
        r = np.asarray(inside, dtype=np.float64).reshape(n, 4)
        xs, ys = (np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h
        weights = (((xs >= r[:, 0:1]) & (xs <= r[:, 2:3]))[:, None, :]
                   & ((ys >= r[:, 1:2]) & (ys <= r[:, 3:4]))[:, :, None]).astype(np.float64)
    hist = np.bincount(index.ravel(), weights=weights.ravel(), minlength=n * bins ** 3)
    root = np.sqrt(hist.reshape(n, bins ** 3))
    norm = np.linalg.norm(root, axis=1, keepdims=True)
    return (root / np.maximum(norm, 1e-12)).astype(np.float32)


def check_appearance(kind) -> str:
    """``kind`` if it is one of :data:`APPEARANCES`, else an InvalidInputError."""
    if kind not in APPEARANCES:
        raise InvalidInputError(f"appearance={kind!r}: choose one of {', '.join(APPEARANCES)}")
    return kind


def appearance_vectors(kind: str, features=None, crops=None, *, inside=None) -> np.ndarray:
    """The appearance vectors a pipeline gives :meth:`facelab.inference.tracking.FaceTracker.update` (one row per face).

    ``kind`` (:data:`APPEARANCES`): ``"features"`` -- the network's own features;
    ``"color"`` -- :func:`color_histogram` of the crops (``inside``: the part of each crop in
    the frame); ``"features+color"`` -- both, each of unit length, side by side and divided
    by sqrt(2), so the cosine distance is the mean of the two cosine distances.
    """
    check_appearance(kind)
    parts = []
    if kind in ("features", "features+color"):
        f = np.asarray(features, dtype=np.float64)
        norm = np.linalg.norm(f, axis=1, keepdims=True)
        parts.append(np.divide(f, norm, out=np.zeros_like(f), where=norm > 0))
    if kind in ("color", "features+color"):
        parts.append(color_histogram(crops, inside=inside).astype(np.float64))
    return (np.concatenate(parts, axis=1) / np.sqrt(len(parts))).astype(np.float32)


__all__ = ["APPEARANCES", "color_histogram", "check_appearance", "appearance_vectors"]
