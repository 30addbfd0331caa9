"""Video clips -> per-frame face features, streamed (design.md §1 item 7).

The pipeline of the paper for one clip:

1. :func:`iter_frames` decodes the video with PyAV **as a stream** — one frame at
   a time, never the whole clip in memory — and samples every ``k``-th frame or a
   target frame rate.  Frames are ``H x W x 3`` uint8 **RGB** arrays.
2. :func:`video_features` takes the sampled frames in chunks of ``batch_frames``:
   MTCNN detects the faces of the whole chunk at once
   (:func:`facelab.faces.detect_faces`), keeps the **largest face** per frame
   (single-person clips, AFEW) or **all faces** (group clips, VGAF), cuts **tight
   crops** (the detector's box, no margin; :func:`facelab.faces.crop_faces`) and
   runs the emotion CNN on them in batches under ``torch.inference_mode``, keeping
   the penultimate-layer features ``x = model.features(crop)``.
3. :func:`extract_clip_features` does this for a list of clips with a progress bar
   and an on-disk cache, so re-running a notebook does not recompute anything.

The result per clip is a :class:`ClipFeatures`; :mod:`facelab.pooling` turns it into
the clip descriptor (``clip.descriptor()``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from .errors import FacelabError, InvalidInputError, VideoDecodeError
from .io import DEFAULT_MAX_PIXELS

#: Bump when the meaning of cached features changes (invalidates old cache files).
CACHE_VERSION = 1
#: A frame larger than this many pixels is refused before decoding (the image limit).
DEFAULT_MAX_FRAME_PIXELS = DEFAULT_MAX_PIXELS


# --- 1. decoding -----------------------------------------------------------------------


class Frame(NamedTuple):
    """One sampled frame: its index in the clip (0-based, decoding order of displayed
    frames), its presentation time in seconds (NaN for a folder of frame images) and the
    ``H x W x 3`` uint8 RGB image."""

    index: int
    time: float
    image: np.ndarray


def _check_sampling(every, fps) -> None:
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise InvalidInputError(f"every={every!r}: must be an integer >= 1 (keep every k-th frame)")
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (
            math.isfinite(fps) and fps > 0
        ):
            raise InvalidInputError(f"fps={fps!r}: must be a positive number of frames per second")
        if every != 1:
            raise InvalidInputError("pass either every=k or fps=..., not both")


class _Sampler:
    """Decides which decoded frames to keep: every k-th, or the first frame of each
    ``1 / fps`` second time slot."""

    def __init__(self, every: int, fps: float | None):
        self.every, self.fps = int(every), fps
        self.t0 = None
        self.last_slot = None

    def keep(self, index: int, time: float) -> bool:
        if self.fps is None:
            return index % self.every == 0
        if self.t0 is None:
            self.t0 = time
        slot = math.floor((time - self.t0) * self.fps + 1e-6)
        if slot == self.last_slot:
            return False
        self.last_slot = slot
        return True


def iter_frames(path, *, every: int = 1, fps: float | None = None,
                max_pixels: int = DEFAULT_MAX_FRAME_PIXELS) -> Iterator[Frame]:
    """Stream the frames of a video file as :class:`Frame` ``(index, time, rgb)`` tuples.

    Parameters
    ----------
    path : str or Path
        A video file PyAV/FFmpeg can read, or a folder of frame images (AFEW is
        sometimes shipped that way; natural file-name order, ``time`` = NaN).
    every : int
        Keep frames ``0, k, 2k, ...`` (``every=1``: all frames).
    fps : float, optional
        Instead of ``every``: keep the first frame of each ``1/fps`` second slot.

    Raises
    ------
    VideoDecodeError
        The file is missing, not a video, audio-only, has zero frames, frames larger
        than ``max_pixels``, or is truncated/corrupt (also when fewer frames decode
        than the container declares).  The message names the file.  Because frames are
        streamed, an error found mid-way is raised after the frames before it.
    """
    _check_sampling(every, fps)
    path = Path(path)
    if path.is_dir():
        yield from _iter_frame_folder(path, every, fps)
        return
    if not path.exists():
        raise VideoDecodeError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise VideoDecodeError(f"{path}: not a regular file; pass a video file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes); re-copy or re-download the video")
    yield from _iter_video_file(path, _Sampler(every, fps), max_pixels)


def _iter_video_file(path: Path, sampler: _Sampler, max_pixels: int) -> Iterator[Frame]:
    import av

    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(f"{path}: cannot open as a video ({_short(exc)}); "
                               "the file is truncated, corrupt or not a video") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoDecodeError(f"{path}: no video stream (streams: {', '.join(kinds)}); "
                                   "pass a video file, not audio-only or other media")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-parallel decoding; still one frame out at a time
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > max_pixels:
            raise VideoDecodeError(f"{path}: frames of {width} x {height} pixels exceed the limit of "
                                   f"{max_pixels}; downscale the video or raise max_pixels")
        rate = float(stream.average_rate) if stream.average_rate else None
        declared = int(stream.frames or 0)
        n_decoded = 0
        try:
            for frame in container.decode(stream):
                index = n_decoded
                n_decoded += 1
                time = frame.time if frame.time is not None else (index / rate if rate else float("nan"))
                if not sampler.keep(index, time):
                    continue  # skipped frames are never converted to RGB
                if frame.width * frame.height > max_pixels:
                    raise VideoDecodeError(f"{path}: frame {index} of {frame.width} x {frame.height} "
                                           f"pixels exceeds the limit of {max_pixels}")
                yield Frame(index, float(time), frame.to_ndarray(format="rgb24"))
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            raise VideoDecodeError(f"{path}: video data is corrupt or truncated after {n_decoded} "
                                   f"frame(s) ({_short(exc)})") from None
    if n_decoded == 0:
        raise VideoDecodeError(f"{path}: the video stream has zero decodable frames; "
                               "the file is empty, truncated or corrupt")
    if declared and n_decoded < declared:
        raise VideoDecodeError(f"{path}: truncated video: decoded {n_decoded} of the {declared} "
                               "frames the container declares; re-copy the file")


def _iter_frame_folder(folder: Path, every: int, fps) -> Iterator[Frame]:
    from .datasets import _natural_key
    from .io import list_images, load_image

    if fps is not None:
        raise InvalidInputError(f"{folder}: a folder of frame images has no timestamps; use every=k, not fps")
    files = sorted(list_images(folder, recursive=False), key=_natural_key)
    if not files:
        raise VideoDecodeError(f"{folder}: folder contains no frame images; pass a video file or a "
                               "folder of .jpg/.png frames")
    for index in range(0, len(files), every):
        try:
            image = load_image(files[index])
        except FacelabError as exc:
            raise VideoDecodeError(f"{folder}: frame {index} ({files[index].name}) is unreadable: {exc}") from None
        yield Frame(index, float("nan"), image)


def _short(exc: BaseException) -> str:
    msg = str(exc).strip() or type(exc).__name__
    return msg if len(msg) <= 160 else msg[:157] + "..."


# --- 2. per-frame face features ---------------------------------------------------------


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
        """What :mod:`facelab.pooling` pools: the face rows only (single mode,
        ``(n_face_frames, D)``) or the per-frame list (group mode)."""
        if self.group:
            return self.per_frame
        rows = [f[:1] for f in self.per_frame if len(f)]
        return np.concatenate(rows) if rows else np.zeros((0, self.feature_dim), dtype=np.float32)

    def descriptor(self, *, l2_normalize: bool = True):
        """The paper's clip descriptor (:func:`frame_statistics` or :func:`group_statistics`)."""
        from .pooling import frame_statistics, group_statistics

        if self.group:
            return group_statistics(self.per_frame, l2_normalize, dim=self.feature_dim)
        return frame_statistics(self.pooling_input(), l2_normalize)


class ClipFailure(NamedTuple):
    """A clip that could not be processed (``extract_clip_features(errors="collect")``)."""

    path: str
    error: str


def face_network(model, *, precision: str = "auto", device="cpu", freeze: bool = True):
    """The runner that turns raw tight crops into features, built once per model.

    ``model`` is a :class:`facelab.models.MultiTaskNet` (or a checkpoint path); the result is
    a :class:`facelab.analyze.TorchNetwork`: ImageNet normalisation, ``channels_last``,
    bf16 where the CPU has native bfloat16 (``precision="auto"``; ``"fp32"`` to force fp32),
    BatchNorm folded by TorchScript (``freeze=False``: plain eager module, quicker to prepare).
    A runner passed in is returned unchanged.
    """
    if _is_network(model):
        return model
    from .analyze import TorchNetwork, resolve_precision

    if isinstance(model, (str, os.PathLike)):
        from .checkpoints import load_checkpoint

        model = load_checkpoint(model, device=device)
    precision = resolve_precision(precision, device)
    network = TorchNetwork(model, precision=precision, device=device, freeze=freeze)
    network.fingerprint = f"{model_fingerprint(model)}:{precision}"  # the cache key's model part
    return network


def _is_network(obj) -> bool:
    return hasattr(obj, "prepare") and hasattr(obj, "features") and hasattr(obj, "image_size")


def face_features(network, crops, *, batch_size: int = 64) -> np.ndarray:
    """Penultimate-layer features ``x`` of tight face crops, ``batch_size`` crops at a time.

    ``crops``: N x 3 x S x S RGB in ``[0, 255]`` (from :func:`facelab.faces.crop_faces`);
    ``network``: a :func:`face_network`.  Runs under ``torch.inference_mode``; returns
    ``(N, D)`` float32.
    """
    outputs = [network.features(crops[start:start + batch_size]).float().cpu().numpy()
               for start in range(0, len(crops), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, network.config["num_features"]), np.float32)


def _process_chunk(frames: list, network, *, group, min_face_size, threshold, device):
    """Detect, crop and embed the faces of a chunk of frames -> (features, boxes) per frame."""
    from .faces import crop_faces, detect_faces, largest_face

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
                   min_face_size: int = 20, threshold: float = 0.9) -> ClipFeatures:
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
    """
    if isinstance(batch_frames, bool) or not isinstance(batch_frames, (int, np.integer)) or batch_frames < 1:
        raise InvalidInputError(f"batch_frames={batch_frames!r}: must be an integer >= 1")
    network = face_network(model, precision=precision, device=device)
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


# --- 3. many clips, cached --------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where clip features are cached: ``$FACELAB_CACHE/video_features``, else
    ``<repo>/data/cache/video_features`` in a source checkout (git-ignored), else
    ``~/.cache/facelab/video_features``."""
    if os.environ.get("FACELAB_CACHE"):
        return Path(os.environ["FACELAB_CACHE"]) / "video_features"
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file() and os.access(repo, os.W_OK):
        return repo / "data" / "cache" / "video_features"
    return Path.home() / ".cache" / "facelab" / "video_features"


def model_fingerprint(model) -> str:
    """SHA-256 of the model's config and all its weights (parameters and buffers)."""
    import torch

    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        if hasattr(config, "__dataclass_fields__"):
            from dataclasses import asdict

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
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, path=np.array(clip.path), group=np.array(clip.group),
                     frame_indices=clip.frame_indices, times=clip.times, counts=counts,
                     features=feats, boxes=bxs, feature_dim=np.array(clip.feature_dim))
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
                          device="cpu", min_face_size: int = 20, threshold: float = 0.9) -> list:
    """:func:`video_features` for many clips, with a progress bar and an on-disk cache.

    Each clip's features are stored as ``<cache_dir>/<key>.npz`` where the key hashes
    the video file (path, size, modification time), the model's config and weights
    (:func:`model_fingerprint`), the precision and every sampling/detection parameter;
    a second call with the same inputs reads the files and never runs the network (nor
    prepares it).  ``cache_dir=None`` disables the cache; ``"default"`` is
    :func:`default_cache_dir`.  ``model``: a MultiTaskNet, a checkpoint path, or a runner
    from :func:`face_network`.

    ``errors="raise"`` stops at the first bad clip (:class:`VideoDecodeError` naming it);
    ``errors="collect"`` puts a :class:`ClipFailure` in that clip's place and goes on, so
    ``N`` paths always give ``N`` entries.
    """
    from tqdm.auto import tqdm

    if errors not in ("raise", "collect"):
        raise InvalidInputError(f"errors={errors!r}: use 'raise' or 'collect'")
    _check_sampling(every, fps)
    if isinstance(model, (str, os.PathLike)):
        from .checkpoints import load_checkpoint

        model = load_checkpoint(model, device=device)
    network = model if _is_network(model) else None
    if network is None:
        from .analyze import resolve_precision

        precision = resolve_precision(precision, device)
    else:
        precision = network.precision
    if cache_dir == "default":
        cache_dir = default_cache_dir()
    params = dict(group=bool(group), every=int(every), fps=fps, precision=precision,
                  min_face_size=min_face_size, threshold=threshold, crop="tight")
    model_hash = None
    if cache_dir is not None:
        model_hash = (getattr(network, "fingerprint", None) if network is not None
                      else f"{model_fingerprint(model)}:{precision}")  # as face_network() sets it
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
                network = face_network(model, precision=precision, device=device)
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


# --- 4. a labelled set of clips in one file (what ``facelab video-features`` writes) --------


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
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return file


def load_feature_set(file) -> FeatureSet:
    """Read a file written by :func:`save_feature_set` (``DatasetFormatError`` if it is not one)."""
    from .errors import DatasetFormatError

    file = Path(file)
    if not file.is_file():
        raise DatasetFormatError(f"{file}: features file not found; create it with `facelab video-features`")
    try:
        with np.load(file, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetFormatError(f"{file}: not a readable .npz features file ({_short(exc)})") from None
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


__all__ = [
    "FeatureSet",
    "save_feature_set",
    "load_feature_set",
    "Frame",
    "iter_frames",
    "ClipFeatures",
    "ClipFailure",
    "video_features",
    "face_features",
    "face_network",
    "extract_clip_features",
    "model_fingerprint",
    "default_cache_dir",
    "save_clip_features",
    "load_clip_features",
]
