"""Clip descriptors: pool per-frame face features into one vector per video.

The paper (docs/method.md, section 7) classifies a whole video clip from the
penultimate-layer features ``x`` of the emotion CNN on the faces of its frames:

* **Single-person clips (AFEW)** — one face per frame, the largest.  For the
  ``n x D`` matrix ``F`` of frame features the *clip descriptor* is the
  concatenation of four statistics over frames::

      d = [ mean_t F_t , max_t F_t , min_t F_t , std_t F_t ]      (4D values)

* **Group clips (VGAF)** — all faces of every frame.  First pool the faces of
  frame ``t``: ``m_t = mean_faces``, ``s_t = std_faces`` (each ``D`` values);
  then pool those over the frames::

      d = [ mean_t m_t , mean_t s_t , std_t m_t , std_t s_t ]     (4D values)

  i.e. each frame becomes ``f_t = [m_t, s_t]`` and the clip is
  ``[mean_t f_t, std_t f_t]``.  There is no max / min for groups.

Conventions used everywhere in this module:

* ``std`` is the **population** standard deviation (``ddof=0``): one frame (or
  one face) has std 0, never NaN.
* Statistics are computed in float64 and returned as float64.
* Optional **L2 normalisation** divides the whole 4D vector by its Euclidean
  norm (the paper normalises the descriptor before LinearSVC).
* **No-face policy** — frames without a face are skipped.  A clip with no face
  in any frame gets an **all-zero descriptor** and ``has_face=False`` in the
  returned :class:`Descriptor`; :class:`VideoDescriptor` records such clips in
  its ``no_face_`` mask and can append a ``no_face`` indicator column.  Never a
  crash, never a silent NaN.

Bad input (wrong ``ndim``, NaN / inf, inconsistent ``D``, non-numeric dtype)
raises :class:`facelab.errors.InvalidInputError` naming the problem.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from facelab.errors import InvalidInputError

#: The four statistics of the single-person clip descriptor, in the paper's order.
FRAME_STATS = ("mean", "max", "min", "std")
#: Names of the four blocks of the group descriptor, in output order.
GROUP_BLOCKS = ("mean_of_face_mean", "mean_of_face_std", "std_of_face_mean", "std_of_face_std")

_STAT_FUNCTIONS = {
    "mean": lambda F: F.mean(axis=0),
    "max": lambda F: F.max(axis=0),
    "min": lambda F: F.min(axis=0),
    "std": lambda F: F.std(axis=0, ddof=0),  # population std: one frame -> 0
    # not part of the paper's descriptor: the baseline "classify the middle frame alone"
    "middle": lambda F: F[len(F) // 2],
}


class Descriptor(NamedTuple):
    """A pooled clip descriptor and whether any face contributed to it.

    Unpack it like a pair: ``vector, has_face = frame_statistics(F)``.
    ``has_face=False`` means the vector is the all-zero no-face descriptor.
    """

    vector: np.ndarray
    has_face: bool


# --- validation -----------------------------------------------------------------


def as_feature_matrix(F, *, name: str = "features") -> np.ndarray:
    """Check that ``F`` is an ``n x D`` finite numeric matrix and return it as float64.

    ``n`` may be 0 (no face); ``D`` must be at least 1.
    """
    if isinstance(F, np.ndarray):
        arr = F
    else:
        try:
            arr = np.asarray(F)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise InvalidInputError(f"{name}: cannot be read as a numeric n x D array ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise InvalidInputError(
            f"{name}: expected a numeric (float or int) n x D array, got dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        hint = " (for one face use F.reshape(1, -1))" if arr.ndim == 1 else ""
        raise InvalidInputError(
            f"{name}: expected a 2-D array of shape (n, D), got ndim={arr.ndim} shape={arr.shape}{hint}"
        )
    if arr.shape[1] == 0:
        raise InvalidInputError(f"{name}: feature dimension D is 0 (shape {arr.shape}); need D >= 1")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InvalidInputError(f"{name}: contains {bad} NaN or infinite value(s); clean the features first")
    return arr


def _check_dim(arr: np.ndarray, dim: int | None, name: str) -> int:
    if dim is not None and arr.shape[1] != dim:
        raise InvalidInputError(
            f"{name}: feature dimension D={arr.shape[1]} differs from D={dim} of the other frames/clips"
        )
    return arr.shape[1]


def _finite_or_raise(vector: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(vector).all():
        raise InvalidInputError(
            f"{name}: statistics overflow float64 (feature magnitudes near {np.finfo(np.float64).max:.1e}); "
            "rescale the features"
        )
    return vector


def l2_normalize_vector(v: np.ndarray) -> np.ndarray:
    """``v / ||v||_2``; the zero vector stays zero.  Scaled first so huge or tiny values neither
    overflow nor underflow."""
    scale = np.max(np.abs(v)) if v.size else 0.0
    if scale == 0.0:
        return np.zeros_like(v)
    w = v / scale
    return w / np.sqrt(np.dot(w, w))


# --- the two descriptors ---------------------------------------------------------


def frame_statistics(F, l2_normalize: bool = False, *, stats: Sequence[str] = FRAME_STATS) -> Descriptor:
    """Single-person clip descriptor: ``concat(mean, max, min, std)`` over frames (4D values).

    Parameters
    ----------
    F : array (n_frames, D)
        Features of the frames that have a face (one row per frame).  ``n_frames = 0``
        means the clip has no face: the result is all zeros with ``has_face=False``.
    l2_normalize : bool
        Divide the whole descriptor by its L2 norm.
    stats : sequence of "mean", "max", "min", "std" (and "middle")
        Which statistics, in which order (default: the paper's four).  ``std`` is the
        population standard deviation (``ddof=0``).  ``"middle"`` is not a statistic of
        the paper but a baseline: the features of the middle face frame, ``F[n // 2]``.

    Returns
    -------
    Descriptor(vector of len(stats) * D float64, has_face)
    """
    stats = _check_stats(stats)
    F = as_feature_matrix(F, name="frame features")
    D = F.shape[1]
    if F.shape[0] == 0:
        return Descriptor(np.zeros(len(stats) * D), False)
    with np.errstate(over="ignore", invalid="ignore"):
        vector = np.concatenate([_STAT_FUNCTIONS[s](F) for s in stats])
    vector = _finite_or_raise(vector, "frame features")
    return Descriptor(l2_normalize_vector(vector) if l2_normalize else vector, True)


def group_statistics(frames, l2_normalize: bool = False, *, dim: int | None = None) -> Descriptor:
    """Group clip descriptor (VGAF): faces pooled per frame, then frames pooled (4D values).

    For each frame ``t`` with ``k_t >= 1`` faces, ``m_t`` = mean and ``s_t`` = std
    (population, ``ddof=0``; one face gives ``s_t = 0``) over its faces.  Frames with
    no face (``0 x D`` arrays) are skipped.  Over the ``T`` remaining frames the result is::

        [ mean_t m_t , mean_t s_t , std_t m_t , std_t s_t ]

    (see :data:`GROUP_BLOCKS`).  If no frame has a face the result is all zeros with
    ``has_face=False``.

    Parameters
    ----------
    frames : list of arrays (k_t, D)
        Face features per sampled frame.
    l2_normalize : bool
        Divide the whole descriptor by its L2 norm.
    dim : int, optional
        Feature dimension; only needed to build the zero descriptor of an empty list.
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        raise InvalidInputError(
            "group frames: expected a list of (n_faces, D) arrays, one per frame, got one 2-D array; "
            "wrap it in a list if it holds the faces of a single frame"
        )
    try:
        frames = list(frames)
    except TypeError:
        raise InvalidInputError(
            f"group frames: expected a list of (n_faces, D) arrays, got {type(frames).__name__}"
        ) from None
    D = dim
    per_frame = []
    for t, faces in enumerate(frames):
        faces = as_feature_matrix(faces, name=f"group frame {t}")
        D = _check_dim(faces, D, f"group frame {t}")
        if faces.shape[0] == 0:
            continue  # a frame without faces says nothing about the group
        with np.errstate(over="ignore", invalid="ignore"):
            per_frame.append(np.concatenate([faces.mean(axis=0), faces.std(axis=0, ddof=0)]))
    if D is None:
        raise InvalidInputError("group frames: empty list and no dim given; cannot size the descriptor")
    if not per_frame:
        return Descriptor(np.zeros(4 * D), False)
    P = np.stack(per_frame)  # T x 2D: [m_t, s_t]
    with np.errstate(over="ignore", invalid="ignore"):
        vector = np.concatenate([P.mean(axis=0), P.std(axis=0, ddof=0)])
    vector = _finite_or_raise(vector, "group frames")
    return Descriptor(l2_normalize_vector(vector) if l2_normalize else vector, True)



def tracks_by_frame(tracks, *, dim: int | None = None) -> list:
    """Face tracks -> the features of each frame, people in track order (what
    :func:`group_statistics` pools).

    ``tracks`` is a list of ``(frame_indices, features)`` pairs, one per person: the
    frames the track covers (n integers, each once) and its ``(n, D)`` features.  Returns
    one ``(k_t, D)`` array per frame that has a track, in frame order.
    """
    rows: dict[int, list] = {}
    for k, track in enumerate(tracks):
        try:
            frames, F = track
        except (TypeError, ValueError):
            raise InvalidInputError(f"track {k}: expected a (frame_indices, features) pair") from None
        F = as_feature_matrix(F, name=f"track {k} features")
        dim = _check_dim(F, dim, f"track {k}")
        frames = np.asarray(frames).reshape(-1)
        if len(frames) != len(F) or (len(frames) and frames.dtype.kind not in "iu"):
            raise InvalidInputError(f"track {k}: {len(frames)} frame indices for {len(F)} feature rows; "
                                    "need one integer frame index per row")
        if len(np.unique(frames)) != len(frames):
            raise InvalidInputError(f"track {k}: a frame index appears twice; one face per track and frame")
        for t, row in zip(frames.tolist(), F):
            rows.setdefault(t, []).append(row)
    return [np.stack(rows[t]) for t in sorted(rows)]


def track_group_statistics(tracks, l2_normalize: bool = False, *, dim: int | None = None) -> Descriptor:
    """Group descriptor of a clip from its face tracks: people first, then frames.

    In each frame the features of the people (tracks) in view are pooled (mean and std
    over people), then those are pooled over the frames -- :func:`group_statistics` of
    :func:`tracks_by_frame`.  ``tracks``: ``(frame_indices, features)`` pairs, one per
    person.  No track: the all-zero descriptor with ``has_face=False`` (``dim`` needed).
    """
    tracks = list(tracks)
    if not tracks and dim is None:
        raise InvalidInputError("track group: no tracks and no dim given; cannot size the descriptor")
    frames = tracks_by_frame(tracks, dim=dim)
    if dim is None:
        dim = as_feature_matrix(tracks[0][1], name="track 0 features").shape[1]
    if not frames:
        return Descriptor(np.zeros(4 * int(dim)), False)
    return group_statistics(frames, l2_normalize, dim=dim)


def _check_stats(stats) -> tuple[str, ...]:
    if isinstance(stats, str):
        stats = (stats,)
    stats = tuple(stats)
    unknown = [s for s in stats if s not in _STAT_FUNCTIONS]
    if not stats or unknown:
        raise InvalidInputError(
            f"stats={stats!r}: choose a non-empty subset of {tuple(_STAT_FUNCTIONS)} "
            "(or 'group' for VideoDescriptor)"
        )
    return stats


# --- scikit-learn transformer ------------------------------------------------------


class VideoDescriptor(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: a list of per-clip frame features -> one row per clip.

    ``X`` is a list with one entry per clip:

    * ``stats=("mean", "max", "min", "std")`` (or any subset): each entry is an
      ``(n_frames, D)`` array of face features (frames with a face), pooled by
      :func:`frame_statistics`;
    * ``stats="group"``: each entry is a list of ``(n_faces_t, D)`` arrays, pooled by
      :func:`group_statistics`.

    Entries may also be :class:`facelab.inference.video.ClipFeatures` objects (anything with a
    ``pooling_input()`` method).  Clips with no face get the all-zero descriptor;
    after each :meth:`transform` the boolean array ``no_face_`` marks them, and with
    ``add_indicator=True`` a last column ``no_face`` (1.0 / 0.0) lets the classifier
    see it too.

    The paper's classifiers::

        make_pipeline(VideoDescriptor(), LinearSVC())
        make_pipeline(VideoDescriptor(), RandomForestClassifier(n_estimators=1000))
    """

    def __init__(self, stats=FRAME_STATS, l2_normalize: bool = True, add_indicator: bool = False):
        self.stats = stats
        self.l2_normalize = l2_normalize
        self.add_indicator = add_indicator

    # -- helpers
    def _is_group(self) -> bool:
        return isinstance(self.stats, str) and self.stats == "group"

    def _clips(self, X) -> list:
        if isinstance(X, np.ndarray) and X.ndim == 2 and not self._is_group():
            raise InvalidInputError(
                "VideoDescriptor: X must be a list of per-clip (n_frames, D) arrays, got a single 2-D array; "
                "wrap one clip as [F]"
            )
        try:
            clips = list(X)
        except TypeError:
            raise InvalidInputError(
                f"VideoDescriptor: X must be a list of per-clip features, got {type(X).__name__}"
            ) from None
        if not clips:
            raise InvalidInputError("VideoDescriptor: X is empty; need at least one clip")
        for i, c in enumerate(clips):
            if getattr(c, "group", None) is not None and bool(c.group) != self._is_group():
                kind = "group (all faces)" if c.group else "single-person (largest face)"
                raise InvalidInputError(
                    f"clip {i}: {kind} features do not fit VideoDescriptor(stats={self.stats!r}); "
                    f"use stats={'group' if c.group else FRAME_STATS!r}"
                )
        return [c.pooling_input() if hasattr(c, "pooling_input") else c for c in clips]

    def _describe(self, clip, index: int, dim: int | None) -> Descriptor:
        """Pool one clip; ``dim`` (if known) is the D every clip must have."""
        try:
            if self._is_group():
                d = group_statistics(clip, self.l2_normalize, dim=dim)
            else:
                d = frame_statistics(clip, self.l2_normalize, stats=self.stats)
        except InvalidInputError as exc:
            raise InvalidInputError(f"clip {index}: {exc}") from None
        clip_dim = len(d.vector) // len(self._blocks())
        if dim is not None and clip_dim != dim:
            raise InvalidInputError(
                f"clip {index}: feature dimension D={clip_dim} differs from D={dim} of the other clips"
            )
        return d

    def _blocks(self) -> tuple[str, ...]:
        return GROUP_BLOCKS if self._is_group() else _check_stats(self.stats)

    # -- sklearn API
    def fit(self, X, y=None):
        """Record the feature dimension ``D`` of the clips (no statistics are learned)."""
        self._blocks()  # validates stats
        dim = None
        for i, clip in enumerate(self._clips(X)):
            dim = len(self._describe(clip, i, dim).vector) // len(self._blocks())
        self.feature_dim_ = dim
        self.n_features_out_ = len(self._blocks()) * dim + int(self.add_indicator)
        return self

    def transform(self, X):
        """Pool each clip; returns an ``(n_clips, 4D [+1])`` float64 array and sets ``no_face_``."""
        if not hasattr(self, "feature_dim_"):
            raise NotFittedError("VideoDescriptor is not fitted yet; call fit first")
        rows, no_face = [], []
        for i, clip in enumerate(self._clips(X)):
            d = self._describe(clip, i, self.feature_dim_)
            rows.append(d.vector)
            no_face.append(not d.has_face)
        self.no_face_ = np.asarray(no_face, dtype=bool)
        out = np.stack(rows)
        if self.add_indicator:
            out = np.column_stack([out, self.no_face_.astype(np.float64)])
        return out

    def get_feature_names_out(self, input_features=None):
        """Names like ``mean_0 .. std_{D-1}`` (single) or ``mean_of_face_std_3`` (group)."""
        if not hasattr(self, "feature_dim_"):
            raise NotFittedError("VideoDescriptor is not fitted yet; call fit first")
        names = [f"{block}_{k}" for block in self._blocks() for k in range(self.feature_dim_)]
        if self.add_indicator:
            names.append("no_face")
        return np.asarray(names, dtype=object)


# --- the paper's comparison ----------------------------------------------------------------

#: Descriptors compared by :func:`compare_video_descriptors` for single-person clips.
SINGLE_BASELINES = {
    "middle frame": ("middle",),
    "mean pooling": ("mean",),
    "mean+max+min+std (paper)": FRAME_STATS,
}


def make_video_classifier(stats=FRAME_STATS, classifier: str = "svc", *, n_estimators: int = 1000,
                          seed: int = 0, add_indicator: bool = False):
    """The paper's clip classifier: ``VideoDescriptor`` (L2-normalised) followed by
    ``LinearSVC`` (``classifier="svc"``) or ``RandomForestClassifier(n_estimators=1000)``
    (``"rf"``)."""
    if classifier == "svc":
        clf = LinearSVC(random_state=seed)
    elif classifier == "rf":
        clf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed)
    else:
        raise InvalidInputError(f"classifier={classifier!r}: use 'svc' (LinearSVC) or 'rf' (RandomForest)")
    return make_pipeline(VideoDescriptor(stats=stats, add_indicator=add_indicator), clf)


def compare_video_descriptors(train_clips, y_train, test_clips, y_test, *, group: bool = False,
                              classifier: str = "svc", seed: int = 0) -> dict:
    """Test accuracy of several clip descriptors with the same classifier (docs/method.md, section 7).

    Single-person clips (``group=False``; entries are ``(n_frames, D)`` arrays or
    :class:`facelab.inference.video.ClipFeatures`): the middle frame alone, mean pooling alone and the
    paper's mean+max+min+std.  Group clips (``group=True``): the paper's group descriptor.
    Both also report ``"chance (majority class)"``: the test accuracy of always answering the
    most frequent training class.  Returns ``{descriptor name: accuracy}``.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(np.unique(y_train)) < 2:
        raise InvalidInputError("compare_video_descriptors: the training clips need at least two classes")
    candidates = {"group mean+std (paper)": "group"} if group else SINGLE_BASELINES
    results = {}
    for name, stats in candidates.items():
        model = make_video_classifier(stats, classifier, seed=seed, add_indicator=True)
        model.fit(train_clips, y_train)
        results[name] = float(np.mean(model.predict(test_clips) == y_test))
    values, counts = np.unique(y_train, return_counts=True)
    results["chance (majority class)"] = float(np.mean(y_test == values[np.argmax(counts)]))
    return results


__all__ = [
    "SINGLE_BASELINES",
    "make_video_classifier",
    "compare_video_descriptors",
    "FRAME_STATS",
    "GROUP_BLOCKS",
    "Descriptor",
    "frame_statistics",
    "group_statistics",
    "tracks_by_frame",
    "track_group_statistics",
    "l2_normalize_vector",
    "VideoDescriptor",
]
