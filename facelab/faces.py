"""Face detection (MTCNN) and the paper's crop policies, batched.

* :func:`detect_faces` wraps facenet-pytorch's ``MTCNN`` with the weights that
  ship inside its wheel (works offline).  Same-size images (video frames) go
  through the detector as one batch.  With ``detect_size`` each image is first
  shrunk to a *working resolution* (its longer side ``detect_size`` pixels), and the
  boxes and landmarks are mapped back to the full image (:func:`map_coordinates`).
* Crop policies, named as in the paper (Table 1 compares them):

  - ``"tight"``  - the detector's box, **no margin** (the paper's choice);
  - ``"margin"`` - the box grown by a fraction of its width/height on each side;
  - ``"center"`` - the centre square of the photo, ignoring the box (the
    paper's baseline "224 x 224 centre crop").

* :func:`crop_faces` cuts and resizes many boxes from one or many full-resolution
  images into one ``N x 3 x S x S`` tensor with ``torchvision.ops.roi_align``: one
  call per group of same-size face windows, so inference never loops over faces in
  Python, and only the pixels around the faces are converted to float.

Coordinates: boxes are ``(x1, y1, x2, y2)`` floats in *continuous* image
coordinates: pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``, so the whole
``W x H`` image is the box ``(0, 0, W, H)``.  Images are RGB (see
:mod:`facelab.data.io`), crops are RGB floats in ``[0, 255]`` (not normalised).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from facelab.errors import InvalidInputError
from facelab.data.io import DEFAULT_MAX_PIXELS, input_name, load_image

#: Crop policies of the paper (Table 1).
CROP_POLICIES = ("tight", "margin", "center")
#: At most this many pixels (summed over the batch) go through MTCNN at once;
#: its image pyramid needs about 9 bytes per input pixel.
MAX_BATCH_PIXELS = 32_000_000
#: Names of MTCNN's 5 landmarks, in order (left/right as seen in the image).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
#: The smallest face side MTCNN can find, in pixels of the image it sees (its first network is 12 x 12).
MTCNN_MIN_FACE = 12


@dataclass(frozen=True)
class Face:
    """One detected face.

    box : ``(x1, y1, x2, y2)`` floats, image coordinates (may reach slightly outside
          the image: MTCNN squares its boxes).
    prob : detector probability in [0, 1].
    landmarks : 5 ``(x, y)`` points, in the order of :data:`LANDMARK_NAMES`.
    """

    box: tuple[float, float, float, float]
    prob: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def to_dict(self) -> dict:
        """JSON-ready: ``{"box": [x1, y1, x2, y2], "prob": p, "landmarks": [[x, y], ...]}``."""
        return {
            "box": [float(v) for v in self.box],
            "prob": float(self.prob),
            "landmarks": [[float(x), float(y)] for x, y in self.landmarks],
        }


# --- detection -----------------------------------------------------------------------------
def get_detector(min_face_size: int = 20, device: str = "cpu"):
    """A cached facenet-pytorch ``MTCNN`` (keep_all=True, post_process=False, bundled weights).

    One detector per ``(min_face_size, device)`` is built and reused.
    """
    if isinstance(min_face_size, bool) or int(min_face_size) < 12:
        raise InvalidInputError(f"min_face_size={min_face_size!r}: MTCNN needs at least 12 pixels")
    return _build_detector(int(min_face_size), str(device))


@functools.lru_cache(maxsize=8)
def _build_detector(min_face_size: int, device: str):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, post_process=False, min_face_size=min_face_size,
                 select_largest=False, device=device).eval()


def detect_faces(images, *, min_face_size: int = 20, threshold: float = 0.9, batch_size: int = 32,
                 device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                 detect_size: int | None = None) -> list[list[Face]]:
    """Detect faces with MTCNN; one list of :class:`Face` per image.

    Parameters
    ----------
    images : one image or a list of images, each anything :func:`facelab.data.io.load_image`
        accepts (path, bytes, PIL, numpy RGB array, tensor).  **A single image still
        returns a list with one entry** (its faces), so ``detect_faces(img)[0]``.
    min_face_size : smallest face side searched for, in pixels of the image.  Images
        smaller than this in either direction have no detectable face and give ``[]``.
    threshold : faces with probability below it are dropped (0.9 as in the
        reference implementation's demos).
    batch_size : same-size images detected together (fewer for very large images,
        see :data:`MAX_BATCH_PIXELS`).
    detect_size : the working resolution, or None (detect at full resolution).  An image
        whose longer side exceeds ``detect_size`` pixels is shrunk to that size
        (:func:`working_size`; bilinear with antialiasing) before MTCNN runs; smaller
        images are not enlarged.  Boxes and landmarks are returned in the coordinates of
        the full image.  MTCNN cannot see faces under 12 pixels of the image it runs on,
        so the smallest face searched is ``max(min_face_size, 12 / scale)`` image pixels
        (:func:`smallest_face`): 36 px in a 1920 x 1080 frame at ``detect_size=640``.
        Measured on drawn faces in 1920 x 1080 frames (8 per size, ``min_face_size=20``),
        every face was found from 24 px up at full resolution, from 32 px at 1280, from
        36 px at 960 and from 48 px at 640 (at 640: 3/8 at 28-32 px, 6/8 at 36 px, 4-7/8
        at 40-44 px).

    Returns
    -------
    list[list[Face]]
        ``len(result) == number of images``, in input order; each list sorted by
        probability, highest first; ``[]`` when no face is found.

    Raises the :class:`facelab.errors.FacelabError` of the first unreadable image
    (nothing is dropped silently); load images yourself to handle them one by one.
    """
    items = _as_image_list(images)
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise InvalidInputError(f"batch_size={batch_size!r}: must be an integer >= 1")
    detect_size = check_detect_size(detect_size)
    arrays = [load_image(img, max_pixels=max_pixels, name=_name(img, i, len(items)))
              for i, img in enumerate(items)]
    get_detector(min_face_size, device)  # validates min_face_size
    results: list[list[Face] | None] = [None] * len(arrays)
    for indices in _batches_by_shape(arrays, int(batch_size), detect_size):
        h, w = arrays[indices[0]].shape[:2]
        work_w, work_h = working_size((w, h), detect_size)
        # the smallest face in working pixels (MTCNN's own limit is 12)
        min_face = max(MTCNN_MIN_FACE, int(round(min_face_size * work_w / w)))
        if min(h, w) < min_face_size or min(work_h, work_w) < min_face:
            for i in indices:
                results[i] = []
            continue
        if (work_w, work_h) == (w, h):
            detector = get_detector(min_face_size, device)
            batch = np.stack([arrays[i] for i in indices])  # N x H x W x 3 uint8 RGB
        else:
            detector = get_detector(min_face, device)
            batch = _shrink([arrays[i] for i in indices], (work_w, work_h))
        boxes, probs, points = detector.detect(batch, landmarks=True)
        for k, i in enumerate(indices):
            results[i] = _faces_from_mtcnn(boxes[k], probs[k], points[k], threshold,
                                           scale_from=(work_w, work_h), scale_to=(w, h))
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


# --- the working resolution ------------------------------------------------------------------
def check_detect_size(detect_size) -> int | None:
    """``detect_size`` as an int (None stays None); anything else is an InvalidInputError."""
    if detect_size is None:
        return None
    if isinstance(detect_size, bool) or not isinstance(detect_size, (int, np.integer)) \
            or detect_size < MTCNN_MIN_FACE:
        raise InvalidInputError(f"detect_size={detect_size!r}: must be None (full resolution) or an integer "
                                f">= {MTCNN_MIN_FACE}, the longer side of the working resolution in pixels")
    return int(detect_size)


def working_size(image_size, detect_size: int | None) -> tuple[int, int]:
    """``(width, height)`` at which MTCNN sees an image of ``image_size = (W, H)``.

    The longer side becomes ``detect_size`` and the aspect ratio is kept (each side
    rounded, at least 1 pixel).  Images no larger than ``detect_size``, and
    ``detect_size=None``, keep their size: nothing is ever enlarged.
    """
    W, H = (int(v) for v in image_size)
    if W < 1 or H < 1:
        raise InvalidInputError(f"image size {image_size!r}: width and height must be >= 1")
    detect_size = check_detect_size(detect_size)
    if detect_size is None or max(W, H) <= detect_size:
        return W, H
    scale = detect_size / max(W, H)
    return max(1, round(W * scale)), max(1, round(H * scale))


def smallest_face(image_size, detect_size: int | None, min_face_size: int = 20) -> float:
    """The smallest face side (image pixels) :func:`detect_faces` searches for: ``min_face_size``,
    or more when the working resolution brings it under MTCNN's 12 pixels."""
    W, _ = (int(v) for v in image_size)
    work_w, _ = working_size(image_size, detect_size)
    return max(float(min_face_size), MTCNN_MIN_FACE * W / work_w)


def map_coordinates(coords, from_size, to_size) -> np.ndarray:
    """Map image coordinates from an image of ``from_size = (w, h)`` to the same image
    resized to ``to_size = (W, H)``.

    ``coords`` is any array whose last axis alternates x and y: boxes ``(..., 4)`` as
    ``(x1, y1, x2, y2)`` or points ``(..., 2)``.  In the continuous convention of this
    module (the whole image is the box ``(0, 0, w, h)``), a resize scales x by ``W / w``
    and y by ``H / h``; nothing else changes.  Returns float64; mapping back is
    ``map_coordinates(out, to_size, from_size)``.
    """
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] % 2:
        raise InvalidInputError(f"coordinates of shape {arr.shape}: the last axis must hold (x, y) pairs")
    (w, h), (W, H) = ((float(a), float(b)) for a, b in (from_size, to_size))
    if not all(math.isfinite(v) and v > 0 for v in (w, h, W, H)):
        raise InvalidInputError(f"image sizes {from_size!r} -> {to_size!r}: need positive widths and heights")
    scale = np.tile([W / w, H / h], arr.shape[-1] // 2)
    return arr * scale


def _shrink(arrays: Sequence[np.ndarray], size: tuple[int, int]):
    """Same-size RGB uint8 images -> ``N x h x w x 3`` uint8 tensor at ``size = (w, h)``
    (bilinear with antialiasing, one image at a time: the full-size batch is never stacked)."""
    w, h = size
    out = torch.empty((len(arrays), h, w, 3), dtype=torch.uint8)
    for k, arr in enumerate(arrays):
        chw = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0)
        out[k] = F.interpolate(chw, size=(h, w), mode="bilinear", antialias=True,
                               align_corners=False)[0].permute(1, 2, 0)
    return out


def _as_image_list(images) -> list:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def _name(img, i: int, n: int) -> str:
    base = input_name(img)
    return base if n == 1 or not base.startswith("<") else f"{base[:-1]} #{i}>"


def _batches_by_shape(arrays: Sequence[np.ndarray], batch_size: int,
                      detect_size: int | None = None) -> list[list[int]]:
    """Group image indices by shape (input order kept), then split into batches of at most
    ``batch_size`` images and :data:`MAX_BATCH_PIXELS` pixels (at the working resolution)."""
    groups: dict[tuple, list[int]] = {}
    for i, arr in enumerate(arrays):
        groups.setdefault(arr.shape, []).append(i)
    batches = []
    for shape, indices in groups.items():
        w, h = working_size((max(1, shape[1]), max(1, shape[0])), detect_size)
        per_batch = max(1, min(batch_size, MAX_BATCH_PIXELS // max(1, w * h)))
        batches += [indices[s:s + per_batch] for s in range(0, len(indices), per_batch)]
    return batches


def _faces_from_mtcnn(boxes, probs, points, threshold: float, *, scale_from=None, scale_to=None) -> list[Face]:
    """One image's MTCNN output -> sorted Faces (handles None and numpy-2 object arrays);
    coordinates mapped from the image of size ``scale_from`` to ``scale_to`` when they differ."""
    if boxes is None or len(boxes) == 0:
        return []
    boxes = np.asarray(np.stack([np.asarray(b, dtype=np.float64) for b in boxes])).reshape(-1, 4)
    probs = np.asarray([float(p) for p in np.ravel(probs)], dtype=np.float64)
    points = np.asarray(np.stack([np.asarray(p, dtype=np.float64) for p in points])).reshape(-1, 5, 2)
    if scale_from is not None and tuple(scale_from) != tuple(scale_to):
        boxes = map_coordinates(boxes, scale_from, scale_to)
        points = map_coordinates(points, scale_from, scale_to)
    faces = [
        Face(tuple(float(v) for v in box), float(p), tuple((float(x), float(y)) for x, y in pts))
        for box, p, pts in zip(boxes, probs, points)
        if p >= threshold
    ]
    return sorted(faces, key=lambda f: -f.prob)


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The face with the largest box area (the paper's choice for one-person images/frames)."""
    return max(faces, key=lambda f: f.area, default=None)


# --- crop policies ---------------------------------------------------------------------------
def crop_box(box, image_size, policy: str = "tight", margin: float = 0.2) -> tuple[float, float, float, float]:
    """The region to crop for one detected ``box`` under a crop policy.

    ``image_size`` is ``(width, height)``.

    * ``tight``:  ``box`` unchanged - no margin (the paper's tight crop);
    * ``margin``: ``(x1 - m w, y1 - m h, x2 + m w, y2 + m h)`` with ``w, h`` the
      box size and ``m = margin`` (so ``margin=0.2`` makes the box 1.4x wider);
    * ``center``: the centre square of the photo with side ``min(W, H)``; ``box``
      is ignored (the paper's centre-crop baseline).
    """
    if policy not in CROP_POLICIES:
        raise InvalidInputError(f"crop policy {policy!r}: choose one of {', '.join(CROP_POLICIES)}")
    W, H = (float(v) for v in image_size)
    if policy == "center":
        side = min(W, H)
        return ((W - side) / 2, (H - side) / 2, (W + side) / 2, (H + side) / 2)
    x1, y1, x2, y2 = _check_box(box)
    if policy == "tight":
        return (x1, y1, x2, y2)
    if not (math.isfinite(margin) and margin >= 0):
        raise InvalidInputError(f"margin={margin!r}: must be a fraction >= 0 (e.g. 0.2)")
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    return (x1 - dx, y1 - dy, x2 + dx, y2 + dy)


def _check_box(box) -> tuple[float, float, float, float]:
    if isinstance(box, Face):
        box = box.box
    try:
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"box {box!r}: expected 4 numbers (x1, y1, x2, y2)") from exc
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise InvalidInputError(f"box {box!r}: needs finite x1 < x2 and y1 < y2")
    return x1, y1, x2, y2


# --- batched crops ------------------------------------------------------------------------------
def crop_faces(images, boxes, size: int = 224, policy: str = "tight", margin: float = 0.2,
               max_pixels: int = DEFAULT_MAX_PIXELS):
    """Crop and resize many boxes from one or many images into one tensor.

    Parameters
    ----------
    images : a list of images (anything :func:`facelab.data.io.load_image` accepts), or one image.
    boxes : for a list of images, a list (one entry per image) of lists of boxes; for one
        image, a list of boxes.  A box is ``(x1, y1, x2, y2)`` or a :class:`Face`.
    size : side ``S`` of the square output crops.
    policy, margin : see :func:`crop_box` (``center`` still gives one crop per box).

    Returns
    -------
    torch.Tensor
        ``N x 3 x S x S`` float32, RGB, values in ``[0, 255]``, ``N`` = total number of
        boxes, in order (image by image, box by box).  Each crop is
        ``torchvision.ops.roi_align(aligned=True, sampling_ratio=-1)``: bilinear samples
        averaged over each output cell (about ``ceil(box side / S)`` samples per cell
        and axis, so downscaling is anti-aliased).  Regions outside the image are
        zero-padded (black); the edge pixel is repeated only within half a pixel of the
        border.

    Only a window around each box is converted to float (:func:`_window`, power-of-two
    sides), and one ``roi_align`` call handles all boxes whose windows have the same
    size; there is no Python loop over faces in the arithmetic.  The result of a box does
    not depend on the other boxes of the call.
    """
    if isinstance(images, (list, tuple)):
        image_list, box_lists = list(images), boxes
        if not isinstance(box_lists, (list, tuple)) or len(box_lists) != len(image_list):
            raise InvalidInputError(
                f"crop_faces: got {len(image_list)} images, so boxes must be a list of {len(image_list)} "
                "lists of boxes (one list per image)"
            )
    else:
        image_list, box_lists = [images], [boxes]
    size = int(size)
    if size < 1:
        raise InvalidInputError(f"size={size}: crop side must be >= 1 pixel")
    box_lists = [_box_list(b, i) for i, b in enumerate(box_lists)]
    counts = [len(b) for b in box_lists]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    out = torch.zeros((int(offsets[-1]), 3, size, size), dtype=torch.float32)

    arrays = {i: load_image(image_list[i], max_pixels=max_pixels, name=_name(image_list[i], i, len(image_list)))
              for i in range(len(image_list)) if counts[i]}
    # window shape -> [(output row, image index, window origin (x0, y0), region)]
    groups: dict[tuple[int, int], list] = {}
    for i, arr in arrays.items():
        h, w = arr.shape[:2]
        for j, b in enumerate(box_lists[i]):
            region = crop_box(b, (w, h), policy, margin)
            x0, wx = _window(region[0], region[2], w)
            y0, wy = _window(region[1], region[3], h)
            groups.setdefault((wy, wx), []).append((int(offsets[i]) + j, i, x0, y0, region))
    for (wy, wx), tasks in groups.items():
        per_call = max(1, MAX_BATCH_PIXELS // (wy * wx))
        for s in range(0, len(tasks), per_call):
            chunk = tasks[s:s + per_call]
            patches = np.stack([arrays[i][y0:y0 + wy, x0:x0 + wx] for _, i, x0, y0, _ in chunk])
            stack = torch.empty((len(chunk), 3, wy, wx), dtype=torch.float32)
            stack.copy_(torch.from_numpy(patches).permute(0, 3, 1, 2))  # one pass: uint8 NHWC -> float NCHW
            rois = torch.tensor([[k, r[0] - x0, r[1] - y0, r[2] - x0, r[3] - y0]
                                 for k, (_, _, x0, y0, r) in enumerate(chunk)], dtype=torch.float32)
            crops = roi_align(stack, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1,
                              aligned=True)
            out[torch.tensor([row for row, *_ in chunk])] = crops
    return out


def _window(lo: float, hi: float, length: int) -> tuple[int, int]:
    """The pixels ``[start, start + side)`` of one image axis (``length`` pixels) that
    ``roi_align`` reads for a region ``[lo, hi]`` on that axis.

    Its samples lie in ``[lo - 0.5, hi - 0.5]`` (``aligned=True``) and bilinear reads
    the pixel on each side, so one pixel more on each side suffices.  ``side`` is a power
    of two (at most ``length``) so that windows of similar boxes share one call, and the
    window always lies inside the image: where it ends at the image border, the border
    behaves as for the whole image (zero beyond, the edge pixel within half a pixel).
    """
    first = min(max(math.floor(lo - 0.5) - 1, 0), length - 1)
    last = min(max(math.floor(hi - 0.5) + 3, first + 1), length)  # exclusive
    side = min(length, 1 << max(3, (last - first - 1).bit_length()))
    return min(first, length - side), side


def _box_list(boxes, i: int) -> list:
    if boxes is None:
        return []
    if isinstance(boxes, np.ndarray):
        boxes = boxes.reshape(-1, 4) if boxes.size else []
    if isinstance(boxes, Face):
        boxes = [boxes]
    if not isinstance(boxes, (list, tuple)) and not hasattr(boxes, "__len__"):
        raise InvalidInputError(f"crop_faces: boxes of image {i} must be a list of boxes")
    if len(boxes) and np.isscalar(boxes[0]) and not isinstance(boxes[0], Face):
        raise InvalidInputError(
            f"crop_faces: boxes of image {i} is one box {tuple(boxes)!r}; wrap it in a list ([box])"
        )
    return [_check_box(b) if not isinstance(b, Face) else b.box for b in boxes]


def resize_crops(x, size: int):
    """Crops of another size -> ``size x size`` (bilinear, antialiased); same size: unchanged."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise InvalidInputError(f"crops must be an N x 3 x S x S tensor of RGB faces, got shape {tuple(x.shape)}")
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


__all__ = [
    "resize_crops",
    "Face",
    "CROP_POLICIES",
    "LANDMARK_NAMES",
    "get_detector",
    "detect_faces",
    "check_detect_size",
    "working_size",
    "smallest_face",
    "map_coordinates",
    "largest_face",
    "crop_box",
    "crop_faces",
]
