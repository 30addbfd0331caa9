"""Face tracks: which face of frame ``t`` is which face of frame ``t + 1``.

The paper's video descriptor pools the frame features *of one person*, and its group
descriptor pools *people*, then frames; both need to know which faces of a video belong
to the same person.  :class:`FaceTracker` gives every detected face a **track id** that
stays the same while the person is in view:

1. each track's box is predicted at the new frame from its last box and its velocity
   (constant velocity, in pixels per frame);
2. tracks and detections are matched by :func:`scipy.optimize.linear_sum_assignment` on
   ``iou_weight * (1 - IoU) + (1 - iou_weight) * appearance distance``, where the
   appearance distance is the cosine distance of appearance vectors (the network's own
   features, a colour histogram, ...) or, without them, the distance of the 5 landmarks in
   box coordinates; a face too far from a track's predicted box is never matched to it
   by position (the gate);
3. detections left over are compared by appearance alone with the tracks left over and
   with the *lost* tracks of the last ``reid_window`` frames (re-identification: a person
   who walks out of view and comes back gets the old id back) -- only when the face looks
   clearly more like that track than like any other; the rest start new tracks.

A track the detector misses survives ``max_missed`` detector runs.  On frames where the
detector does not run (``detect_every = K``), :meth:`FaceTracker.carry` moves the tracks
along their predicted boxes.  :func:`track_metrics` scores tracks against the truth
(ID switches, coverage).

Boxes are ``(x1, y1, x2, y2)`` in frame pixels, as everywhere in facelab.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from facelab.errors import InvalidInputError
from facelab.inference.appearance import (  # noqa: F401 - re-exported: the tracker's appearance vectors
    APPEARANCES, appearance_vectors, check_appearance, color_histogram,
)

#: Cost of a forbidden (gated) pair: larger than any allowed cost.
_FORBIDDEN = 1e6
#: How much of its old velocity a track keeps at each match (the rest is the observed motion).
_VELOCITY_MOMENTUM = 0.7


def box_iou(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` (n x 4) with every box of ``b`` (m x 4): n x m."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


@dataclass
class _Track:
    id: int
    box: np.ndarray            # last matched box
    frame: int                 # frame of that box
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    appearance: np.ndarray | None = None   # unit vector, running average of the features
    landmarks: np.ndarray | None = None    # 5 x 2, in box coordinates (0..1)
    missed: int = 0            # detector runs in a row without a match
    hits: int = 1

    def predict(self, frame: int) -> np.ndarray:
        return self.box + self.velocity * (frame - self.frame)


class FaceTracker:
    """Give every detected face a track id that stays the same across frames.

    Parameters
    ----------
    max_missed : int, default 20
        Detector runs in a row a track may go undetected (hidden behind someone, blurred,
        turned away) and still be matched by position; with ``detect_every=K`` that is
        ``max_missed * K`` frames.  After that the track is *lost*: only re-identification
        can bring it back.
    max_shift : float, default 1.0
        Gate: a detection is matched to a track by position only if its centre lies within
        ``max_shift`` box sizes of the centre of the track's predicted box (fast faces seen
        every few frames may no longer overlap their prediction).
    max_distance : float, default 2.0 (no gate)
        Gate: the largest appearance distance of a match by position, a veto against faces
        that look nothing like the track.  Cosine distance of the features, ``1 - cos`` in
        [0, 2]; for landmarks the mean distance of the 5 points in box widths / heights.
        Off by default: an emotion network's features change with the expression as much
        as between people, and a wrong veto splits one person into two tracks.
    reid_distance : float, default 0.35
        The largest cosine distance at which a face far from every predicted box is given
        the id of a track that is out of place or lost (re-identification; needs features).
        ``0`` switches re-identification off.
    reid_ratio : float, default 0.7
        ... and only if that distance is below ``reid_ratio`` times the face's distance to
        each person matched in the same frame (certainly someone else): when people look
        alike to the features, nobody is re-identified (a new id is safer than a wrong one).
    reid_window : int, default 300
        Frames after its last detection during which a lost track can be re-identified
        (300 = 12 s at 25 fps).  Older lost tracks are forgotten.
    iou_weight : float, default 0.5
        Weight of ``1 - IoU`` in the matching cost; the appearance distance gets the rest.
    momentum : float, default 0.9
        A track's appearance is the running average ``momentum * old + (1 - momentum) * new``
        of its unit-length features, updated only when the face overlaps no other face.
    min_visible : float, default 0.5
        :meth:`carry` drops predicted boxes with less than this fraction inside the frame.

    Attributes
    ----------
    frame_ : int
        The last frame seen (-1 before the first).
    n_tracks_ : int
        Track ids given so far; ids are ``0, 1, 2, ...`` in order of first appearance.

    >>> tracker = FaceTracker()
    >>> ids = tracker.update(boxes, features=feats, frame=t)     # frames where the detector ran
    >>> ids, boxes = tracker.carry(frame=t + 1, frame_size=(W, H))  # frames in between
    """

    def __init__(self, *, max_missed: int = 20, max_shift: float = 1.0, max_distance: float = 2.0,
                 reid_distance: float = 0.35, reid_ratio: float = 0.7, reid_window: int = 300,
                 iou_weight: float = 0.5, momentum: float = 0.9, min_visible: float = 0.5):
        self.max_missed = _int_at_least("max_missed", max_missed, 0)
        self.reid_window = _int_at_least("reid_window", reid_window, 0)
        self.max_shift = _fraction("max_shift", max_shift, high=100.0)
        self.iou_weight = _fraction("iou_weight", iou_weight)
        self.momentum = _fraction("momentum", momentum)
        self.min_visible = _fraction("min_visible", min_visible)
        self.max_distance = _fraction("max_distance", max_distance, high=2.0)
        self.reid_distance = _fraction("reid_distance", reid_distance, high=2.0)
        self.reid_ratio = _fraction("reid_ratio", reid_ratio)
        self.reset()

    def __repr__(self) -> str:
        params = ("max_missed", "max_shift", "max_distance", "reid_distance", "reid_ratio", "reid_window",
                  "iou_weight", "momentum", "min_visible")
        return f"FaceTracker({', '.join(f'{p}={getattr(self, p)!r}' for p in params)})"

    def reset(self) -> "FaceTracker":
        """Forget every track (a new video); ids start again at 0."""
        self.frame_ = -1
        self.n_tracks_ = 0
        self._tracks: list[_Track] = []
        self._dim: int | None = None
        return self

    # --- frames where the detector ran -------------------------------------------------------
    def update(self, boxes, *, features=None, landmarks=None, frame: int | None = None) -> np.ndarray:
        """Match the detections of one frame to the tracks; returns one track id per box.

        Parameters
        ----------
        boxes : array (n, 4)
            The detected boxes ``(x1, y1, x2, y2)``; ``n`` may be 0.
        features : array (n, D), optional
            Appearance features of the faces (e.g. the network's penultimate layer).
        landmarks : array (n, 5, 2), optional
            MTCNN's landmarks, used for the appearance when there are no features.
        frame : int, optional
            The frame index (increasing); default: the frame after the last one seen.
        """
        frame = self._next_frame(frame)
        boxes = _as_boxes(boxes)
        n = len(boxes)
        feats = self._as_features(features, n)
        marks = _as_landmarks(landmarks, n)
        rel_marks = _relative_landmarks(marks, boxes) if marks is not None else None
        ids = np.full(n, -1, dtype=np.int64)
        for t in self._tracks:
            t.missed += 1  # reset below for the matched ones
        # 1. by position (and appearance) among the active tracks
        active = [t for t in self._tracks if t.missed - 1 <= self.max_missed]
        pairs = []
        if active and n:
            predicted = np.stack([t.predict(frame) for t in active])
            iou = box_iou(predicted, boxes)
            dist = self._appearance_distance(active, feats, rel_marks, n)
            cost = self.iou_weight * (1.0 - iou) + (1.0 - self.iou_weight) * dist
            shift = np.linalg.norm(_centres(predicted)[:, None] - _centres(boxes)[None], axis=2)
            size = ((predicted[:, 2] - predicted[:, 0]) + (predicted[:, 3] - predicted[:, 1]))[:, None] / 2
            cost[(shift > self.max_shift * size) | (dist > self.max_distance)] = _FORBIDDEN
            pairs = [(active[r], c, True) for r, c in _assign(cost)]
        matched_tracks = {id(t) for t, _, _ in pairs}
        free = [c for c in range(n) if c not in {c for _, c, _ in pairs}]
        # 2. re-identification by appearance alone: tracks out of place and lost tracks
        candidates = [t for t in self._tracks if t.appearance is not None and id(t) not in matched_tracks
                      and frame - t.frame <= self.reid_window]
        if free and feats is not None and self.reid_distance > 0 and candidates:
            dist = 1.0 - np.stack([t.appearance for t in candidates]) @ feats[free].T  # tracks x free faces
            # the people matched in this frame are certainly someone else: the face must look
            # clearly more like the candidate than like any of them
            present = [t.appearance for t, _, _ in pairs if t.appearance is not None]
            nearest_other = (1.0 - np.stack(present) @ feats[free].T).min(axis=0) if present \
                else np.full(len(free), np.inf)
            allowed = (dist <= self.reid_distance) & (dist < self.reid_ratio * nearest_other[None, :])
            pairs += [(candidates[r], free[c], False) for r, c in _assign(np.where(allowed, dist, _FORBIDDEN))]
        # 3. update the matched tracks, start new ones
        crowded = box_iou(boxes, boxes) - np.eye(n) > 0.2 if n else np.zeros((0, 0), bool)
        for track, c, by_position in pairs:
            self._refresh(track, boxes[c], frame, None if feats is None else feats[c],
                          None if rel_marks is None else rel_marks[c], crowded[c].any(), by_position)
            ids[c] = track.id
        for c in np.flatnonzero(ids < 0):
            track = _Track(self.n_tracks_, boxes[c].copy(), frame,
                           appearance=None if feats is None else feats[c].copy(),
                           landmarks=None if rel_marks is None else rel_marks[c].copy())
            self.n_tracks_ += 1
            self._tracks.append(track)
            ids[c] = track.id
        self._tracks = [t for t in self._tracks if frame - t.frame <= max(self.reid_window, 0)
                        or t.missed <= self.max_missed]
        return ids

    def _refresh(self, track: _Track, box, frame, feat, marks, crowded: bool, by_position: bool) -> None:
        if not by_position:
            track.velocity = np.zeros(4)  # re-identified: a jump is not a motion
        elif frame > track.frame:
            observed = (box - track.box) / (frame - track.frame)
            keep = 0.0 if track.hits == 1 else _VELOCITY_MOMENTUM
            track.velocity = keep * track.velocity + (1 - keep) * observed
        track.box, track.frame, track.missed = box.copy(), frame, 0
        track.hits += 1
        if feat is not None and not crowded:
            mixed = feat if track.appearance is None else \
                self.momentum * track.appearance + (1 - self.momentum) * feat
            norm = np.linalg.norm(mixed)
            track.appearance = mixed / norm if norm > 0 else track.appearance
        if marks is not None and not crowded:
            track.landmarks = marks if track.landmarks is None else \
                self.momentum * track.landmarks + (1 - self.momentum) * marks

    def _appearance_distance(self, tracks: list[_Track], feats, rel_marks, n: int) -> np.ndarray:
        """tracks x detections; 0 where neither features nor landmarks are known."""
        dist = np.zeros((len(tracks), n))
        for r, t in enumerate(tracks):
            if feats is not None and t.appearance is not None:
                dist[r] = 1.0 - feats @ t.appearance
            elif rel_marks is not None and t.landmarks is not None:
                dist[r] = np.linalg.norm(rel_marks - t.landmarks, axis=2).mean(axis=1)
        return dist

    # --- frames in between ------------------------------------------------------------------
    def carry(self, frame: int | None = None, *, frame_size=None) -> tuple[np.ndarray, np.ndarray]:
        """The tracks matched at the last detector run, moved to ``frame`` along their
        constant-velocity prediction: ``(ids (k,), boxes (k, 4))``.

        Use it on the frames where the detector does not run.  With ``frame_size=(W, H)``,
        boxes with less than ``min_visible`` of their area inside the frame are left out
        (the person walked out of view).  The tracks themselves do not change.
        """
        frame = self._next_frame(frame)
        live = [t for t in self._tracks if t.missed == 0]
        boxes = np.stack([t.predict(frame) for t in live]) if live else np.zeros((0, 4))
        ids = np.array([t.id for t in live], dtype=np.int64)
        if frame_size is not None and len(boxes):
            W, H = (float(v) for v in frame_size)
            w = np.clip(np.minimum(boxes[:, 2], W) - np.maximum(boxes[:, 0], 0), 0, None)
            h = np.clip(np.minimum(boxes[:, 3], H) - np.maximum(boxes[:, 1], 0), 0, None)
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            keep = w * h >= self.min_visible * area
            boxes, ids = boxes[keep], ids[keep]
        return ids, boxes

    # --- input checks -------------------------------------------------------------------------
    def _next_frame(self, frame) -> int:
        if frame is None:
            frame = self.frame_ + 1
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame <= self.frame_:
            raise InvalidInputError(f"frame={frame!r}: frame indices must be integers that increase "
                                    f"(the last one was {self.frame_})")
        self.frame_ = int(frame)
        return self.frame_

    def _as_features(self, features, n: int):
        if features is None:
            return None
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or len(f) != n:
            raise InvalidInputError(f"features of shape {f.shape}: expected ({n}, D), one row per box")
        if not np.isfinite(f).all():
            raise InvalidInputError("features contain NaN or infinite values")
        if n and self._dim is not None and f.shape[1] != self._dim:
            raise InvalidInputError(f"features have D={f.shape[1]}, earlier frames had D={self._dim}")
        if n:
            self._dim = f.shape[1]
        norm = np.linalg.norm(f, axis=1, keepdims=True)
        return np.divide(f, norm, out=np.zeros_like(f), where=norm > 0)


# --- boxes in the frame ---------------------------------------------------------------------------


def inside_part(boxes, frame_size) -> np.ndarray:
    """The part of each box inside a ``(W, H)`` frame, in box fractions: ``(N, 4)`` rows
    ``(x0, y0, x1, y1)`` with ``(0, 0, 1, 1)`` for a box wholly inside."""
    b = _as_boxes(boxes)
    W, H = (float(v) for v in frame_size)
    origin, size = np.tile(b[:, :2], 2), np.tile(b[:, 2:] - b[:, :2], 2)
    return np.clip((np.array([0.0, 0.0, W, H]) - origin) / size, 0.0, 1.0)


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one pairs (rows, columns), forbidden pairs left out."""
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _FORBIDDEN]


def match_boxes(a, b, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """Pair the boxes of ``a`` (n x 4) with those of ``b`` (m x 4) one to one: ``[(i, j), ...]`` by i.

    The pairs with the largest total IoU (``linear_sum_assignment``), keeping only pairs whose IoU is
    at least ``min_iou``: how detections are matched to true faces, and predicted tracks to people."""
    _fraction("min_iou", min_iou)
    a, b = _as_boxes(a), _as_boxes(b)
    if not (len(a) and len(b)):
        return []
    iou = box_iou(a, b)
    return sorted(_assign(np.where(iou >= min_iou, 1.0 - iou, _FORBIDDEN)))


def _as_boxes(boxes) -> np.ndarray:
    b = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        raise InvalidInputError(f"boxes of shape {b.shape}: expected (n, 4) as (x1, y1, x2, y2)")
    if not np.isfinite(b).all() or (b[:, 2] <= b[:, 0]).any() or (b[:, 3] <= b[:, 1]).any():
        raise InvalidInputError("boxes need finite x1 < x2 and y1 < y2")
    return b


def _as_landmarks(landmarks, n: int):
    if landmarks is None:
        return None
    m = np.asarray(landmarks, dtype=np.float64)
    if m.ndim != 3 or len(m) != n or m.shape[2] != 2:
        raise InvalidInputError(f"landmarks of shape {m.shape}: expected ({n}, k, 2), k points per box")
    return None if not np.isfinite(m).all() else m


def _relative_landmarks(marks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Landmarks in box coordinates: (0, 0) top-left corner, (1, 1) bottom-right."""
    origin = boxes[:, None, :2]
    size = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
    return (marks - origin) / size


def _int_at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInputError(f"{name}={value!r}: must be an integer >= {low}")
    return int(value)


def _fraction(name, value, high=1.0):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= value <= high:
        raise InvalidInputError(f"{name}={value!r}: must be a number in [0, {high:g}]")
    return float(value)


# --- scoring tracks against the truth ------------------------------------------------------------


@dataclass(frozen=True)
class TrackMetrics:
    """How well predicted tracks follow the true people of a clip (:func:`track_metrics`).

    coverage : fraction of true faces covered by their correct track (the one track each
        true person is mapped to, one-to-one, maximising the faces covered; IDF1's recall).
    recall : fraction of true faces matched by any predicted face (detection recall).
    id_switches : times a true person's matched track id changed from one matched frame
        to the next (CLEAR-MOT), summed over people; ``switches_per_person`` per person.
    mapping : true identity -> its correct track (people never matched are absent).
    """

    n_frames: int
    n_true_faces: int
    n_people: int
    n_tracks: int
    coverage: float
    recall: float
    id_switches: int
    switches_per_person: dict
    mapping: dict

    def switches_per_minute(self, fps: float) -> float:
        """ID switches per person per minute of video at ``fps`` frames per second."""
        minutes = self.n_frames / float(fps) / 60.0
        return self.id_switches / max(self.n_people, 1) / minutes if minutes > 0 else 0.0


def track_metrics(true_ids, true_boxes, pred_ids, pred_boxes, *, iou_threshold: float = 0.5) -> TrackMetrics:
    """Score predicted face tracks against the true identities of a clip.

    Each argument is a list with one entry per frame (the same frames for both):
    ``true_ids[t]`` the identities of the true faces of frame ``t`` and ``true_boxes[t]``
    their boxes (k x 4); ``pred_ids[t]`` / ``pred_boxes[t]`` the track ids and boxes the
    tracker gave.  In each frame, true and predicted faces are paired one-to-one by IoU
    (``linear_sum_assignment``, pairs with IoU >= ``iou_threshold``).  Leave out true
    faces that cannot be seen (e.g. hidden behind another face) before calling.
    """
    n_frames = len(true_ids)
    if not (len(true_boxes) == len(pred_ids) == len(pred_boxes) == n_frames):
        raise InvalidInputError(f"track_metrics: got {len(true_ids)}, {len(true_boxes)}, {len(pred_ids)} and "
                                f"{len(pred_boxes)} frames; all four lists need one entry per frame")
    _fraction("iou_threshold", iou_threshold)
    counts: dict[tuple, int] = {}
    per_person: dict = {}
    last: dict = {}
    switches: dict = {}
    n_true = n_matched = 0
    tracks = set()
    for t in range(n_frames):
        tid = [_key(v) for v in np.ravel(np.asarray(true_ids[t], dtype=object))]
        pid = [_key(v) for v in np.ravel(np.asarray(pred_ids[t], dtype=object))]
        tb, pb = _as_boxes(true_boxes[t]) if len(tid) else np.zeros((0, 4)), \
            _as_boxes(pred_boxes[t]) if len(pid) else np.zeros((0, 4))
        if len(tb) != len(tid) or len(pb) != len(pid):
            raise InvalidInputError(f"track_metrics: frame {t} has {len(tid)} true ids for {len(tb)} boxes and "
                                    f"{len(pid)} track ids for {len(pb)} boxes")
        tracks.update(pid)
        n_true += len(tid)
        for person in tid:
            per_person[person] = per_person.get(person, 0) + 1
            switches.setdefault(person, 0)
        if not (len(tid) and len(pid)):
            continue
        for r, c in match_boxes(tb, pb, iou_threshold):
            person, track = tid[r], pid[c]
            n_matched += 1
            counts[(person, track)] = counts.get((person, track), 0) + 1
            if person in last and last[person] != track:
                switches[person] += 1
            last[person] = track
    people = sorted(per_person, key=str)
    track_list = sorted(tracks, key=str)
    mapping = {}
    covered = 0
    if people and track_list and counts:
        m = np.array([[counts.get((p, k), 0) for k in track_list] for p in people], dtype=np.float64)
        rows, cols = linear_sum_assignment(-m)
        for r, c in zip(rows, cols):
            if m[r, c] > 0:
                mapping[people[r]] = track_list[c]
                covered += int(m[r, c])
    return TrackMetrics(n_frames=n_frames, n_true_faces=n_true, n_people=len(people), n_tracks=len(track_list),
                        coverage=covered / n_true if n_true else 1.0, recall=n_matched / n_true if n_true else 1.0,
                        id_switches=int(sum(switches.values())), switches_per_person=dict(switches),
                        mapping=mapping)


def _key(value):
    """Identities and track ids as plain Python values (numpy ints become ints)."""
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["APPEARANCES", "FaceTracker", "TrackMetrics", "appearance_vectors", "box_iou", "check_appearance",
           "color_histogram", "inside_part", "match_boxes", "track_metrics"]
