"""Video clips -> per-frame face features, streamed (the paper's video pipeline, steps 1-2).

1. :func:`facelab.data.frames.iter_frames` decodes the video with PyAV **as a stream** and
   samples every ``k``-th frame or a target frame rate.
2. :func:`video_features` takes the sampled frames in chunks of ``batch_frames``: MTCNN detects
   the faces of the whole chunk at once (:func:`facelab.faces.detect_faces`), keeps the
   **largest face** per frame (single-person clips, AFEW) or **all faces** (group clips, VGAF),
   cuts **tight crops** (:func:`facelab.faces.crop_faces`) and runs the network's runner on
   them (:func:`face_network`: torch or ONNX Runtime), keeping the penultimate-layer features x.

The result per clip is a :class:`ClipFeatures`; :mod:`facelab.inference.pooling` turns it into
the clip descriptor (``clip.descriptor()``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from facelab.checkpoints import as_model
from facelab.data.frames import Frame, iter_frames
from facelab.errors import InvalidInputError
from facelab.faces import crop_faces, detect_faces, largest_face
from facelab.inference.pooling import frame_statistics, group_statistics
from facelab.inference.runtime import is_onnx_file, is_runner, make_network, resolve_precision


@dataclass
class ClipFeatures:
    """Face features of the sampled frames of one clip.

    Attributes
    ----------
    path : str
        The video.
    group : bool
        ``False``: single-person mode (at most one face per frame, the largest);
        ``True``: group mode (all faces of each frame).
    frame_indices, times : arrays (n_frames,)
        Index and time (s) of every sampled frame, with or without a face.
    per_frame : list of arrays (k_t, D)
        Features of the faces of each sampled frame (``k_t = 0`` when none).
    boxes : list of arrays (k_t, 4)
        The face boxes ``(x1, y1, x2, y2)`` in frame pixels, same order.
    feature_dim : int
        ``D``, the size of the network's penultimate layer.
    """

    path: str
    group: bool
    frame_indices: np.ndarray
    times: np.ndarray
    per_frame: list
    boxes: list
    feature_dim: int
    from_cache: bool = field(default=False, compare=False)

    @property
    def n_frames(self) -> int:
        return len(self.per_frame)

    @property
    def has_face(self) -> np.ndarray:
        """Boolean per sampled frame: did the detector find a face there."""
        return np.array([len(f) > 0 for f in self.per_frame], dtype=bool)

    @property
    def features(self):
        """Single mode: an ``(n_frames, D)`` array with the largest face's features per
        frame and **zero rows where** ``has_face`` is False.  Group mode: ``per_frame``."""
        if self.group:
            return self.per_frame
        out = np.zeros((self.n_frames, self.feature_dim), dtype=np.float32)
        for t, f in enumerate(self.per_frame):
            if len(f):
                out[t] = f[0]
        return out

    def pooling_input(self):
        """What :mod:`facelab.inference.pooling` pools: the face rows only (single mode,
        ``(n_face_frames, D)``) or the per-frame list (group mode)."""
        if self.group:
            return self.per_frame
        rows = [f[:1] for f in self.per_frame if len(f)]
        return np.concatenate(rows) if rows else np.zeros((0, self.feature_dim), dtype=np.float32)

    def descriptor(self, *, l2_normalize: bool = True):
        """The paper's clip descriptor (:func:`frame_statistics` or :func:`group_statistics`)."""
        if self.group:
            return group_statistics(self.per_frame, l2_normalize, dim=self.feature_dim)
        return frame_statistics(self.pooling_input(), l2_normalize)


class ClipFailure(NamedTuple):
    """A clip that could not be processed (``extract_clip_features(errors="collect")``)."""

    path: str
    error: str


def model_fingerprint(model) -> str:
    """SHA-256 of the model's config and all its weights (parameters and buffers)."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        if hasattr(config, "__dataclass_fields__"):
            config = asdict(config)
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        t = tensor.detach().cpu().contiguous()
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def network_fingerprint(model, precision: str, backend: str = "torch") -> str:
    """The model part of a clip's cache key: the weights (:func:`model_fingerprint`, or the bytes of an
    ``.onnx`` file) and how they are run (the precision; ``onnx`` for ONNX Runtime)."""
    if backend == "onnx":
        weights = (hashlib.sha256(Path(model).read_bytes()).hexdigest() if is_onnx_file(model)
                   else model_fingerprint(model))
        return f"{weights}:onnx"
    return f"{model_fingerprint(model)}:{precision}"


def face_network(model, *, precision: str = "auto", device="cpu", freeze: bool = True, backend: str = "torch"):
    """The runner that turns raw tight crops into features, built once per model.

    ``model`` is a :class:`facelab.models.MultiTaskNet`, a checkpoint path or a zoo name (resolved
    here, once), or with ``backend="onnx"`` an ``.onnx`` file; the result is a runner of
    :func:`facelab.inference.runtime.make_network`.  The torch runner: ImageNet normalisation,
    ``channels_last``, bf16 where the CPU has native bfloat16 (``precision="auto"``; ``"fp32"`` to
    force fp32), BatchNorm folded by TorchScript (``freeze=False``: plain eager module, quicker to
    prepare).  ``backend="onnx"``: ONNX Runtime, fp32.  A runner passed in is returned unchanged.
    """
    if is_runner(model):
        return model
    if not (backend == "onnx" and is_onnx_file(model)):
        model, _ = as_model(model)
    precision = resolve_precision(precision, device, backend)
    network = make_network(model, backend=backend, precision=precision, device=device, freeze=freeze)
    network.fingerprint = network_fingerprint(model, precision, backend)  # the cache key's model part
    return network


def face_features(network, crops, *, batch_size: int = 64) -> np.ndarray:
    """Penultimate-layer features ``x`` of tight face crops, ``batch_size`` crops at a time.

    ``crops``: N x 3 x S x S RGB in ``[0, 255]`` (from :func:`facelab.faces.crop_faces`);
    ``network``: a :func:`face_network` (torch or ONNX Runtime).  Returns ``(N, D)`` float32.
    """
    outputs = [np.asarray(network.features(crops[start:start + batch_size]), dtype=np.float32)
               for start in range(0, len(crops), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, network.config["num_features"]), np.float32)


def _process_chunk(frames: list, network, *, group, min_face_size, threshold, device):
    """Detect, crop and embed the faces of a chunk of frames -> (features, boxes) per frame."""
    images = [f.image for f in frames]
    faces_per_frame = detect_faces(images, min_face_size=min_face_size, threshold=threshold,
                                   batch_size=len(images), device=str(device))
    if not group:  # single-person clips: the largest face of each frame
        faces_per_frame = [[largest_face(faces)] if faces else [] for faces in faces_per_frame]
    boxes = [np.asarray([face.box for face in faces], dtype=np.float32).reshape(-1, 4)
             for faces in faces_per_frame]
    counts = [len(b) for b in boxes]
    dim = network.config["num_features"]
    if sum(counts) == 0:
        return [np.zeros((0, dim), np.float32) for _ in frames], boxes
    crops = crop_faces(images, [[tuple(b) for b in bx] for bx in boxes], size=network.image_size,
                       policy="tight")
    feats = face_features(network, crops)
    return np.split(feats, np.cumsum(counts)[:-1]), boxes


def video_features(path, model, *, every: int = 1, fps: float | None = None, group: bool = False,
                   batch_frames: int = 16, precision: str = "auto", device="cpu",
                   min_face_size: int = 20, threshold: float = 0.9, backend: str = "torch") -> ClipFeatures:
    """Per-frame face features of one clip (the paper's video pipeline, steps 1-2 above).

    Frames are streamed and processed ``batch_frames`` at a time, so memory does not
    grow with the clip's length.

    Parameters
    ----------
    model : a :class:`facelab.models.MultiTaskNet` (the emotion network), or a runner from
        :func:`face_network` -- build that once when you process many clips (preparing the
        network takes seconds; :func:`extract_clip_features` does it for you).  The crop
        size is the model's ``preprocessing["image_size"]``.
    every, fps : frame sampling, see :func:`iter_frames`.
    group : False -> largest face per frame (AFEW); True -> all faces (VGAF).
    batch_frames : frames detected together (MTCNN on a batch of same-size frames).
    precision : "auto" (bf16 on CPUs with native bfloat16), "bf16" or "fp32".
    min_face_size, threshold : MTCNN parameters (keep faces with prob >= threshold).
    backend : "torch" or "onnx" (ONNX Runtime, fp32; ``model`` may then be an ``.onnx`` file).
    """
    if isinstance(batch_frames, bool) or not isinstance(batch_frames, (int, np.integer)) or batch_frames < 1:
        raise InvalidInputError(f"batch_frames={batch_frames!r}: must be an integer >= 1")
    network = face_network(model, precision=precision, device=device, backend=backend)
    indices, times, per_frame, boxes = [], [], [], []
    chunk: list[Frame] = []

    def flush():
        feats, bxs = _process_chunk(chunk, network, group=group, min_face_size=min_face_size,
                                    threshold=threshold, device=device)
        indices.extend(f.index for f in chunk)
        times.extend(f.time for f in chunk)
        per_frame.extend(feats)
        boxes.extend(bxs)
        chunk.clear()  # the frames' pixels are released here

    for frame in iter_frames(path, every=every, fps=fps):
        if chunk and frame.image.shape != chunk[0].image.shape:
            flush()  # detection batches need frames of one size
        chunk.append(frame)
        if len(chunk) == batch_frames:
            flush()
    if chunk:
        flush()
    return ClipFeatures(str(path), bool(group), np.asarray(indices, dtype=np.int64),
                        np.asarray(times, dtype=np.float64), per_frame, boxes,
                        int(network.config["num_features"]))


__all__ = ["ClipFeatures", "ClipFailure", "model_fingerprint", "network_fingerprint", "face_network", "face_features",
           "video_features"]
