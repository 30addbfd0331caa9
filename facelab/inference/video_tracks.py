"""Face tracks of a clip (several people): detect, track, and run the network on every frame's faces.

:func:`track_faces` detects every ``detect_every``-th frame at a working resolution
(``detect_size``), follows the faces with a :class:`facelab.inference.tracking.FaceTracker` and
carries them over the frames in between; :func:`video_tracks` runs the network on every frame's
faces and returns a :class:`ClipTracks`: per person (track) the features, the paper's
4-statistic descriptor (``track.descriptor()``) and the group descriptor over people, then
frames (``clip.group_descriptor()``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from facelab.data.frames import Frame, iter_frames
from facelab.errors import InvalidInputError
from facelab.faces import check_detect_size, crop_faces, detect_faces
from facelab.inference.clip_features import face_features, face_network
from facelab.inference.pooling import Descriptor, frame_statistics, track_group_statistics
from facelab.inference.appearance import appearance_vectors, check_appearance
from facelab.inference.tracking import FaceTracker, inside_part

#: Working resolution of the detector in video pipelines: the longer side, in pixels.
DEFAULT_DETECT_SIZE = 640
#: Frames detected, cropped and run through the network together in the tracking pipeline.
DEFAULT_CHUNK_FRAMES = 8


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
                 device="cpu", min_face_size: int = 20, threshold: float = 0.9, backend: str = "torch") -> ClipTracks:
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
    precision, device, min_face_size, threshold, backend : as :func:`video_features`.

    Memory: the frames of one chunk, plus the features of the faces found
    (``n_faces x D x 4`` bytes).
    """
    network = face_network(model, precision=precision, device=device, backend=backend)
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


__all__ = ["DEFAULT_DETECT_SIZE", "DEFAULT_CHUNK_FRAMES", "TrackedFrame", "check_detect_every", "track_faces",
           "FaceTrack", "ClipTracks", "video_tracks"]
