"""Clip features on disk: :func:`extract_clip_features` runs :func:`video_features` over many clips
with a progress bar and an on-disk cache (one ``.npz`` per clip, so re-running a notebook computes
nothing again), and a labelled set of clips in one file (:class:`FeatureSet`, what
``facelab video-features`` writes).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from facelab.checkpoints import as_model
from facelab.data.frames import check_sampling
from facelab.errors import DatasetFormatError, FacelabError, InvalidInputError, short_message
from facelab.inference.clip_features import (
    ClipFailure, ClipFeatures, face_network, network_fingerprint, video_features,
)
from facelab.inference.runtime import is_onnx_file, is_runner, resolve_precision
from facelab.paths import atomic_write_bytes, cache_dir

#: Bump when the meaning of cached features changes (invalidates old cache files).
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """Where clip features are cached: ``cache_dir()/video_features`` (``$FACELAB_CACHE``, else
    ``<repo>/data/cache`` in a source checkout, else ``$FACELAB_HOME``; see :mod:`facelab.paths`)."""
    return cache_dir() / "video_features"


def clip_cache_key(path, model_hash: str, params: dict) -> str:
    """Cache key of one clip: the file (resolved path, size, modification time), the model
    (:func:`model_fingerprint`) and the sampling/detection parameters."""
    p = Path(path).resolve()
    st = p.stat() if p.exists() else None
    if st is not None and p.is_dir():  # a frame folder: its listing and the files' sizes and mtimes
        files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())
        file_id = [str(p), files]
    else:
        file_id = [str(p), st.st_size if st else None, st.st_mtime_ns if st else None]
    blob = json.dumps({"v": CACHE_VERSION, "file": file_id, "model": model_hash, "params": params},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save_clip_features(clip: ClipFeatures, file) -> None:
    """Write one clip to an ``.npz`` atomically (temporary file, then rename)."""
    counts = np.array([len(f) for f in clip.per_frame], dtype=np.int64)
    feats = (np.concatenate(clip.per_frame).astype(np.float32) if clip.per_frame
             else np.zeros((0, clip.feature_dim), np.float32))
    bxs = np.concatenate(clip.boxes).astype(np.float32) if clip.boxes else np.zeros((0, 4), np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, path=np.array(clip.path), group=np.array(clip.group),
             frame_indices=clip.frame_indices, times=clip.times, counts=counts,
             features=feats, boxes=bxs, feature_dim=np.array(clip.feature_dim))
    atomic_write_bytes(file, buffer.getvalue())


def load_clip_features(file) -> ClipFeatures:
    """Read a clip written by :func:`save_clip_features`."""
    with np.load(file, allow_pickle=False) as z:
        counts = z["counts"]
        splits = np.cumsum(counts)[:-1]
        return ClipFeatures(str(z["path"]), bool(z["group"]), z["frame_indices"], z["times"],
                            list(np.split(z["features"], splits)), list(np.split(z["boxes"], splits)),
                            int(z["feature_dim"]), from_cache=True)


def extract_clip_features(paths: Sequence, model, *, cache_dir="default", group: bool = False,
                          progress: bool = True, errors: str = "raise", every: int = 1,
                          fps: float | None = None, batch_frames: int = 16, precision: str = "auto",
                          device="cpu", min_face_size: int = 20, threshold: float = 0.9,
                          backend: str = "torch") -> list:
    """:func:`video_features` for many clips, with a progress bar and an on-disk cache.

    Each clip's features are stored as ``<cache_dir>/<key>.npz`` where the key hashes
    the video file (path, size, modification time), the model's config and weights
    (:func:`network_fingerprint`), the precision and backend and every sampling/detection parameter;
    a second call with the same inputs reads the files and never runs the network (nor
    prepares it).  ``cache_dir=None`` disables the cache; ``"default"`` is
    :func:`default_cache_dir`.  ``model``: a MultiTaskNet, a checkpoint path or zoo name (resolved
    here, once), a runner from :func:`face_network`, or with ``backend="onnx"`` an ``.onnx`` file.

    ``errors="raise"`` stops at the first bad clip (:class:`VideoDecodeError` naming it);
    ``errors="collect"`` puts a :class:`ClipFailure` in that clip's place and goes on, so
    ``N`` paths always give ``N`` entries.
    """
    if errors not in ("raise", "collect"):
        raise InvalidInputError(f"errors={errors!r}: use 'raise' or 'collect'")
    check_sampling(every, fps)
    network = model if is_runner(model) else None
    if network is None:
        if not (backend == "onnx" and is_onnx_file(model)):
            model, _ = as_model(model)  # the edge: a path or zoo name is loaded here, once
        precision = resolve_precision(precision, device, backend)
    else:
        precision = network.precision
    if cache_dir == "default":
        cache_dir = default_cache_dir()
    params = dict(group=bool(group), every=int(every), fps=fps, precision=precision,
                  min_face_size=min_face_size, threshold=threshold, crop="tight")
    model_hash = None
    if cache_dir is not None:
        model_hash = (getattr(network, "fingerprint", None) if network is not None
                      else network_fingerprint(model, precision, backend))  # as face_network() sets it
        if model_hash is None:
            raise InvalidInputError("extract_clip_features: cannot fingerprint this network for the cache; "
                                    "pass the MultiTaskNet, a runner from face_network(), or cache_dir=None")
    results = []
    for path in tqdm(list(paths), desc="video features", unit="clip", disable=not progress):
        try:
            cache_file = None
            if cache_dir is not None:
                cache_file = Path(cache_dir) / f"{clip_cache_key(path, model_hash, params)}.npz"
                if cache_file.exists():
                    try:
                        results.append(load_clip_features(cache_file))
                        continue
                    except (OSError, ValueError, KeyError):
                        pass  # unreadable cache entry: recompute and overwrite it
            if network is None:  # prepared on first need: a fully cached run never builds it
                network = face_network(model, precision=precision, device=device, backend=backend)
            clip = video_features(path, network, every=every, fps=fps, group=group, batch_frames=batch_frames,
                                  device=device, min_face_size=min_face_size, threshold=threshold)
            if cache_file is not None:
                save_clip_features(clip, cache_file)
            results.append(clip)
        except FacelabError as exc:
            if errors == "raise":
                raise
            results.append(ClipFailure(str(path), str(exc)))
    return results


# --- a labelled set of clips in one file (what ``facelab video-features`` writes) ---------------


@dataclass
class FeatureSet:
    """Per-frame face features of a labelled set of clips (e.g. AFEW Train + Val).

    ``clips[i]`` has label ``labels[i]`` (index into ``classes``), belongs to split
    ``splits[i]`` ("train", "val", ...) and came from ``names[i]``.  ``failed`` lists
    the clips that could not be processed, as ``(path, reason)``.
    """

    clips: list
    labels: np.ndarray
    splits: np.ndarray
    names: np.ndarray
    classes: tuple
    group: bool
    failed: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def select(self, split: str):
        """``(clips, labels)`` of one split."""
        keep = np.flatnonzero(self.splits == split)
        return [self.clips[i] for i in keep], self.labels[keep]


def save_feature_set(fs: FeatureSet, file) -> Path:
    """Write a :class:`FeatureSet` as one ``.npz`` (plain arrays, no pickle), atomically.

    Layout: ``features`` (all faces, F x D), ``face_counts`` (faces per sampled frame),
    ``frame_counts`` (sampled frames per clip), ``frame_indices``, ``times``, ``boxes``,
    ``labels``, ``splits``, ``names``, ``classes``, ``group``, ``failed_paths``,
    ``failed_reasons`` and ``meta`` (a JSON string).
    """
    dims = {c.feature_dim for c in fs.clips}
    if len(dims) > 1:
        raise InvalidInputError(f"clips have different feature dimensions {sorted(dims)}; one model per file")
    dim = dims.pop() if dims else 0
    per_frame = [f for c in fs.clips for f in c.per_frame]
    boxes = [b for c in fs.clips for b in c.boxes]
    arrays = dict(
        features=np.concatenate(per_frame).astype(np.float32) if per_frame else np.zeros((0, dim), np.float32),
        face_counts=np.array([len(f) for f in per_frame], dtype=np.int64),
        frame_counts=np.array([c.n_frames for c in fs.clips], dtype=np.int64),
        frame_indices=np.concatenate([c.frame_indices for c in fs.clips]).astype(np.int64)
        if fs.clips else np.zeros(0, np.int64),
        times=np.concatenate([c.times for c in fs.clips]).astype(np.float64) if fs.clips else np.zeros(0),
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        paths=np.array([c.path for c in fs.clips], dtype=str),
        labels=np.asarray(fs.labels, dtype=np.int64),
        splits=np.asarray(fs.splits, dtype=str),
        names=np.asarray(fs.names, dtype=str),
        classes=np.asarray(fs.classes, dtype=str),
        group=np.array(bool(fs.group)),
        feature_dim=np.array(dim),
        failed_paths=np.array([p for p, _ in fs.failed], dtype=str),
        failed_reasons=np.array([r for _, r in fs.failed], dtype=str),
        meta=np.array(json.dumps(fs.meta, default=str)),
    )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(file, buffer.getvalue())
    return file


def load_feature_set(file) -> FeatureSet:
    """Read a file written by :func:`save_feature_set` (``DatasetFormatError`` if it is not one)."""
    file = Path(file)
    if not file.is_file():
        raise DatasetFormatError(f"{file}: features file not found; create it with `facelab video-features`")
    try:
        with np.load(file, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetFormatError(f"{file}: not a readable .npz features file ({short_message(exc, 160)})") from None
    needed = {"features", "face_counts", "frame_counts", "labels", "splits", "classes", "group"}
    if not needed <= set(data):
        raise DatasetFormatError(f"{file}: missing arrays {sorted(needed - set(data))}; "
                                 "write it with `facelab video-features`")
    dim = int(data["feature_dim"])
    faces = np.split(data["features"], np.cumsum(data["face_counts"])[:-1]) if len(data["face_counts"]) else []
    boxes = np.split(data["boxes"], np.cumsum(data["face_counts"])[:-1]) if len(data["face_counts"]) else []
    clips, start = [], 0
    group = bool(data["group"])
    for i, n in enumerate(data["frame_counts"]):
        stop = start + int(n)
        clips.append(ClipFeatures(str(data["paths"][i]), group, data["frame_indices"][start:stop],
                                  data["times"][start:stop], list(faces[start:stop]), list(boxes[start:stop]),
                                  dim, from_cache=True))
        start = stop
    return FeatureSet(clips, data["labels"], data["splits"], data["names"], tuple(data["classes"].tolist()),
                      group, list(zip(data["failed_paths"].tolist(), data["failed_reasons"].tolist())),
                      json.loads(str(data["meta"])))


__all__ = ["CACHE_VERSION", "default_cache_dir", "clip_cache_key", "save_clip_features", "load_clip_features",
           "extract_clip_features", "FeatureSet", "save_feature_set", "load_feature_set"]
