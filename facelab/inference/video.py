"""Video clips -> per-frame face features, streamed (design.md §1 item 7).

The pipeline of the paper for one clip:

1. :func:`iter_frames` decodes the video with PyAV **as a stream** — in a background
   thread that stays a few frames ahead (a bounded queue), never the whole clip in
   memory — and samples every ``k``-th frame or a target frame rate.  Frames are
   ``H x W x 3`` uint8 **RGB** arrays.
2. :func:`video_features` takes the sampled frames in chunks of ``batch_frames``:
   MTCNN detects the faces of the whole chunk at once
   (:func:`facelab.faces.detect_faces`), keeps the **largest face** per frame
   (single-person clips, AFEW) or **all faces** (group clips, VGAF), cuts **tight
   crops** (the detector's box, no margin; :func:`facelab.faces.crop_faces`) and
   runs the emotion CNN on them in batches under ``torch.inference_mode``, keeping
   the penultimate-layer features ``x = model.features(crop)``.
3. :func:`extract_clip_features` does this for a list of clips with a progress bar
   and an on-disk cache, so re-running a notebook does not recompute anything.

The result per clip is a :class:`ClipFeatures`; :mod:`facelab.inference.pooling` turns it into
the clip descriptor (``clip.descriptor()``).

**Face tracks** (several people): :func:`track_faces` detects every ``detect_every``-th
frame at a working resolution (``detect_size``), follows the faces with a
:class:`facelab.inference.tracking.FaceTracker` and carries them over the frames in between;
:func:`video_tracks` runs the network on every frame's faces and returns a
:class:`ClipTracks`: per person (track) the features, the paper's 4-statistic descriptor
(``track.descriptor()``) and the group descriptor over people, then frames
(``clip.group_descriptor()``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from facelab.errors import FacelabError, InvalidInputError, short_message
from facelab.faces import check_detect_size, crop_faces, detect_faces
from facelab.data.frames import (  # noqa: F401 - DEFAULT_MAX_FRAME_PIXELS, DEFAULT_PREFETCH: facelab.inference.video re-exports them
    DEFAULT_MAX_FRAME_PIXELS, DEFAULT_PREFETCH, Frame, check_sampling, iter_frames,
)
from facelab.paths import atomic_write_bytes, cache_dir
from facelab.inference.pooling import Descriptor, frame_statistics, track_group_statistics
from facelab.inference.runtime import TorchNetwork, resolve_precision
from facelab.inference.tracking import FaceTracker, appearance_vectors, check_appearance, inside_part

#: Bump when the meaning of cached features changes (invalidates old cache files).
CACHE_VERSION = 1
#: Working resolution of the detector in video pipelines: the longer side, in pixels.
DEFAULT_DETECT_SIZE = 640
#: Frames detected, cropped and run through the network together in the tracking pipeline.
DEFAULT_CHUNK_FRAMES = 8





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
        from facelab.inference.pooling import frame_statistics, group_statistics

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
    a :class:`facelab.inference.runtime.TorchNetwork`: ImageNet normalisation, ``channels_last``,
    bf16 where the CPU has native bfloat16 (``precision="auto"``; ``"fp32"`` to force fp32),
    BatchNorm folded by TorchScript (``freeze=False``: plain eager module, quicker to prepare).
    A runner passed in is returned unchanged.
    """
    if _is_network(model):
        return model

    if isinstance(model, (str, os.PathLike)):
        from facelab.checkpoints import load_checkpoint

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
    from facelab.faces import crop_faces, detect_faces, largest_face

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



# --- 2b. face tracks (several people per clip) -------------------------------------------


class TrackedFrame(NamedTuple):
    """The faces of one frame of :func:`track_faces`, ``k`` of them.

    boxes : (k, 4) in full-frame pixels.  tracks : (k,) track ids.
    det_prob : (k,) the detector's probability, NaN for a face carried over a frame
        where the detector did not run (its box is the track's prediction).
    landmarks : (k, 5, 2) full-frame pixels, NaN where carried.
    appearance : (k, D) what ``appearance_fn`` said about the detected faces (NaN rows
        where carried); None without an ``appearance_fn`` or when no face of the chunk was
        detected.
    """

    frame: Frame
    boxes: np.ndarray
    tracks: np.ndarray
    det_prob: np.ndarray
    landmarks: np.ndarray
    appearance: np.ndarray | None

    @property
    def detected(self) -> np.ndarray:
        """(k,) bool: True where the detector found the face in this frame."""
        return np.isfinite(self.det_prob)


def check_detect_every(detect_every) -> int:
    """``detect_every`` as an int >= 1; anything else is an InvalidInputError."""
    if isinstance(detect_every, bool) or not isinstance(detect_every, (int, np.integer)) or detect_every < 1:
        raise InvalidInputError(f"detect_every={detect_every!r}: must be an integer >= 1 "
                                "(run the detector on every k-th frame, track in between)")
    return int(detect_every)


def track_faces(frames: Iterable[Frame], *, appearance_fn=None, tracker: FaceTracker | None = None,
                detect_every: int = 1, detect_size: int | None = DEFAULT_DETECT_SIZE,
                chunk_frames: int = DEFAULT_CHUNK_FRAMES, min_face_size: int = 20, threshold: float = 0.9,
                device="cpu") -> Iterator[list[TrackedFrame]]:
    """Detect and track the faces of a stream of frames; yields lists of :class:`TrackedFrame`.

    ``chunk_frames`` frames are taken at a time.  MTCNN runs on every ``detect_every``-th
    of them (counted over the whole stream), all such frames of a chunk in one batch, at
    the working resolution ``detect_size`` (:func:`facelab.faces.detect_faces`; boxes and
    landmarks come back in full-frame pixels).  ``appearance_fn(frames, boxes)`` -- a list
    of :class:`Frame` and, per frame, a ``(k, 4)`` box array -- returns the ``(sum k, D)``
    appearance of those faces for the tracker (e.g. the network's own features,
    :func:`facelab.inference.tracking.appearance_vectors`); without it the tracker compares the
    landmarks.  Then, frame by frame, ``tracker.update`` names the detected faces
    and ``tracker.carry`` moves the tracks over the other frames.

    ``tracker`` (default ``FaceTracker()``) is used as given; pass a fresh or
    :meth:`~facelab.inference.tracking.FaceTracker.reset` one per clip.  A decoding error is
    raised after the frames before it have been yielded.  Memory: the frames of one chunk.
    """
    detect_every = check_detect_every(detect_every)
    detect_size = check_detect_size(detect_size)
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) or chunk_frames < 1:
        raise InvalidInputError(f"chunk_frames={chunk_frames!r}: must be an integer >= 1")
    tracker = FaceTracker() if tracker is None else tracker
    stream = iter(frames)
    position = 0
    try:
        while True:
            chunk, error = [], None
            try:
                while len(chunk) < chunk_frames:
                    chunk.append(next(stream))
            except StopIteration:
                pass
            except Exception as exc:  # noqa: BLE001 - raised below, after the frames before it
                error = exc
            if chunk:
                yield _track_chunk(chunk, position, appearance_fn, tracker, detect_every, detect_size,
                                   min_face_size, threshold, device)
                position += len(chunk)
            if error is not None:
                raise error
            if len(chunk) < chunk_frames:
                return
    finally:
        if hasattr(stream, "close"):  # a generator (iter_frames): stop its decoding thread now
            stream.close()


def _track_chunk(chunk: list, position: int, appearance_fn, tracker: FaceTracker, detect_every: int,
                 detect_size, min_face_size, threshold, device) -> list[TrackedFrame]:
    detect_at = [j for j in range(len(chunk)) if (position + j) % detect_every == 0]
    faces = detect_faces([chunk[j].image for j in detect_at], min_face_size=min_face_size, threshold=threshold,
                         batch_size=max(1, len(detect_at)), device=str(device),
                         detect_size=detect_size) if detect_at else []
    found = {j: f for j, f in zip(detect_at, faces)}
    boxes = {j: np.array([face.box for face in f], dtype=np.float64).reshape(-1, 4) for j, f in found.items()}
    feats: dict = {}
    if appearance_fn is not None and any(len(b) for b in boxes.values()):
        with_faces = [j for j in detect_at if len(boxes[j])]
        rows = np.asarray(appearance_fn([chunk[j] for j in with_faces], [boxes[j] for j in with_faces]),
                          dtype=np.float32)
        feats = dict(zip(with_faces, np.split(rows, np.cumsum([len(boxes[j]) for j in with_faces])[:-1])))
    dim = next((v.shape[1] for v in feats.values()), None)
    out = []
    for j, frame in enumerate(chunk):
        if j in found:
            f = found[j]
            marks = np.array([face.landmarks for face in f], dtype=np.float64).reshape(-1, 5, 2)
            own = feats.get(j)
            ids = tracker.update(boxes[j], features=own, landmarks=marks if own is None else None,
                                 frame=frame.index)
            prob = np.array([face.prob for face in f], dtype=np.float64)
            box = boxes[j]
        else:
            h, w = frame.image.shape[:2]
            ids, box = tracker.carry(frame=frame.index, frame_size=(w, h))
            own, prob, marks = None, np.full(len(ids), np.nan), np.full((len(ids), 5, 2), np.nan)
        features = None if dim is None else (own if own is not None else np.full((len(ids), dim), np.nan, np.float32))
        out.append(TrackedFrame(frame, box, ids, prob, marks, features))
    return out


@dataclass
class FaceTrack:
    """One person's face across a clip: a track of :func:`video_tracks`.

    Attributes
    ----------
    track : int
        The track id (:class:`facelab.inference.tracking.FaceTracker`).
    frame_indices, times : arrays (n,)
        The frames the face is in (index in the clip, seconds).
    boxes : array (n, 4)
        Its box in each of them (full-frame pixels).
    detected : array (n,) bool
        True where the detector found it, False where the track was carried.
    features : array (n, D)
        The network's penultimate features of the face in each frame.
    """

    track: int
    frame_indices: np.ndarray
    times: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    features: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)

    def descriptor(self, *, l2_normalize: bool = True) -> Descriptor:
        """The paper's video descriptor of this person: mean, max, min and std of the frame
        features (:func:`facelab.inference.pooling.frame_statistics`), 4D values."""
        return frame_statistics(self.features, l2_normalize)


@dataclass
class ClipTracks:
    """The face tracks of one clip (:func:`video_tracks`).

    ``frame_indices`` / ``times`` list every sampled frame, with or without a face;
    ``tracks`` holds one :class:`FaceTrack` per person, in order of first appearance.
    """

    path: str
    frame_indices: np.ndarray
    times: np.ndarray
    tracks: list
    feature_dim: int

    def long_tracks(self, min_frames: int = 1) -> list:
        """The tracks that cover at least ``min_frames`` frames (short ones are often false
        detections)."""
        return [t for t in self.tracks if t.n_frames >= min_frames]

    def descriptors(self, *, l2_normalize: bool = True, min_frames: int = 1) -> dict:
        """``{track id: Descriptor}``: the 4-statistic descriptor of each person."""
        return {t.track: t.descriptor(l2_normalize=l2_normalize) for t in self.long_tracks(min_frames)}

    def group_descriptor(self, *, l2_normalize: bool = True, min_frames: int = 1) -> Descriptor:
        """The group descriptor over people: in each frame the people in view are pooled
        (mean, std), then the frames (:func:`facelab.inference.pooling.track_group_statistics`)."""
        return track_group_statistics([(t.frame_indices, t.features) for t in self.long_tracks(min_frames)],
                                      l2_normalize, dim=self.feature_dim)


def video_tracks(path, model, *, every: int = 1, fps: float | None = None, detect_every: int = 1,
                 detect_size: int | None = DEFAULT_DETECT_SIZE, tracker: FaceTracker | None = None,
                 appearance: str = "color", chunk_frames: int = DEFAULT_CHUNK_FRAMES, precision: str = "auto",
                 device="cpu", min_face_size: int = 20, threshold: float = 0.9) -> ClipTracks:
    """Per-person face features of one clip: detect, track, and run the network on every
    frame's faces (see :func:`track_faces`).

    Parameters
    ----------
    model : a :class:`facelab.models.MultiTaskNet`, a checkpoint path, or a runner from
        :func:`face_network` (prepare it once when you process many clips).
    every, fps : frame sampling, see :func:`iter_frames`.
    detect_every : run the detector on every k-th sampled frame and carry the tracks over
        the frames in between (1: every frame).
    detect_size : working resolution of the detector (longer side, pixels); None: full
        resolution.  The crops are always cut from the full-resolution frame.
    tracker : a :class:`facelab.inference.tracking.FaceTracker` with your settings (it is reset);
        default ``FaceTracker()``.
    appearance : what the tracker compares besides the boxes
        (:func:`facelab.inference.tracking.appearance_vectors`): ``"color"`` (a colour histogram of the
        face crop; the default), ``"features"`` (the network's own; an emotion network's
        change with the expression) or ``"features+color"``.
    chunk_frames : frames processed together (detector batch, crops, network).
    precision, device, min_face_size, threshold : as :func:`video_features`.

    Memory: the frames of one chunk, plus the features of the faces found
    (``n_faces x D x 4`` bytes).
    """
    network = face_network(model, precision=precision, device=device)
    tracker = FaceTracker() if tracker is None else tracker.reset()
    check_appearance(appearance)
    size = network.image_size
    dim = int(network.config["num_features"])
    detected_features: dict = {}  # frame index -> features of its detected faces (used again below)

    def appearance_fn(frames, boxes):
        crops = crop_faces([f.image for f in frames], [[tuple(b) for b in bx] for bx in boxes], size=size,
                           policy="tight")
        feats = face_features(network, crops)
        for f, rows in zip(frames, np.split(feats, np.cumsum([len(b) for b in boxes])[:-1])):
            detected_features[f.index] = rows
        inside = np.concatenate([inside_part(bx, f.image.shape[1::-1]) for f, bx in zip(frames, boxes)])
        return appearance_vectors(appearance, feats, crops, inside=inside)

    indices, times, per_track = [], [], {}
    frames = iter_frames(path, every=every, fps=fps)
    for chunk in track_faces(frames, appearance_fn=appearance_fn, tracker=tracker, detect_every=detect_every,
                             detect_size=detect_size, chunk_frames=chunk_frames, min_face_size=min_face_size,
                             threshold=threshold, device=device):
        # the network on the carried faces (the detected ones have their features already)
        carried = [tf for tf in chunk if len(tf.boxes) and tf.frame.index not in detected_features]
        if carried:
            feats = face_features(network, crop_faces([tf.frame.image for tf in carried],
                                                      [[tuple(b) for b in tf.boxes] for tf in carried],
                                                      size=size, policy="tight"))
            for tf, rows in zip(carried, np.split(feats, np.cumsum([len(tf.boxes) for tf in carried])[:-1])):
                detected_features[tf.frame.index] = rows
        for tf in chunk:
            indices.append(tf.frame.index)
            times.append(tf.frame.time)
            features = detected_features.pop(tf.frame.index, None)
            for k, track in enumerate(tf.tracks.tolist()):
                per_track.setdefault(track, []).append((tf.frame.index, tf.frame.time, tf.boxes[k],
                                                        bool(tf.detected[k]), features[k]))
    tracks = [FaceTrack(track, np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows]),
                        np.array([r[2] for r in rows], np.float64).reshape(-1, 4),
                        np.array([r[3] for r in rows], bool),
                        np.array([r[4] for r in rows], np.float32).reshape(-1, dim))
              for track, rows in sorted(per_track.items())]
    return ClipTracks(str(path), np.asarray(indices, np.int64), np.asarray(times, np.float64), tracks, dim)

# --- 3. many clips, cached --------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where clip features are cached: ``cache_dir()/video_features`` (``$FACELAB_CACHE``, else
    ``<repo>/data/cache`` in a source checkout, else ``$FACELAB_HOME``; see :mod:`facelab.paths`)."""
    return cache_dir() / "video_features"


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
    check_sampling(every, fps)
    if isinstance(model, (str, os.PathLike)):
        from facelab.checkpoints import load_checkpoint

        model = load_checkpoint(model, device=device)
    network = model if _is_network(model) else None
    if network is None:

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
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(file, buffer.getvalue())
    return file


def load_feature_set(file) -> FeatureSet:
    """Read a file written by :func:`save_feature_set` (``DatasetFormatError`` if it is not one)."""
    from facelab.errors import DatasetFormatError

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


__all__ = [
    "DEFAULT_DETECT_SIZE",
    "TrackedFrame",
    "track_faces",
    "FaceTrack",
    "ClipTracks",
    "video_tracks",
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
