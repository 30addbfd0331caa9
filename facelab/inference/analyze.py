"""FaceAnalyzer: fast batched inference on photos, folders and videos (Fig. 1 of the paper).

::

    photos -> MTCNN (same-size images in one batch) -> tight crops (one roi_align per image size)
           -> identity/attribute CNN  -> age (eq. 1), gender, race
           -> emotion CNN             -> emotion
           -> one pandas row per face

**RGB everywhere**: inputs are decoded by :func:`facelab.data.io.load_image` into RGB uint8
arrays; crops are RGB floats in ``[0, 255]``; normalisation with the checkpoint's
mean/std happens inside the network runner.

Why it is fast (compared with the per-face loop of the reference implementation:
PIL crop, resize, ToTensor, Normalize, a batch of one, fp32):

* faces of *many* images go through the CNN together, ``batch_size`` at a time;
* crops and resizing are one tensor operation per image size
  (:func:`facelab.faces.crop_faces`, torchvision's roi_align), never a PIL call per face;
  normalisation, the cast to bf16 and channels_last are one pass over the batch;
* ``torch.inference_mode`` and ``channels_last`` memory format;
* on CPUs with native bfloat16 (AMX or AVX512-BF16) the backbone runs in bf16 --
  chosen automatically by ``precision="auto"``; ``precision="fp32"`` is always there.
  The small heads stay in fp32;
* the backbone is traced and frozen with TorchScript (``torch.jit.freeze``), which
  folds every BatchNorm into the convolution before it and fuses activations;
* ONNX Runtime is available as a second backend (``backend="onnx"``).

The numbers are measured, next to the naive loop, by ``benchmarks/bench_analyze.py``.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch

from facelab.data.frames import iter_frames
from facelab.data.io import load_image
from facelab.errors import InvalidInputError
from facelab.faces import check_detect_size, crop_faces, detect_faces
from facelab.inference.inputs import InputItem, expand_inputs, short_error
from facelab.inference.rows import (
    STATUS_FAILED, STATUS_NO_FACE, STATUS_OK, VALUE_HEADS, frame_columns, head_values, rows_frame, summarize_tracks,
    summarize_video, track_columns, track_frame,
)
from facelab.inference.runtime import (  # noqa: F401 - re-exported: facelab.inference.analyze is where earlier code found them
    BACKENDS, PRECISIONS, TorchNetwork, batch_bucket, bf16_in_cpuinfo, cpu_supports_bf16, make_network,
    resolve_precision, softmax,
)
from facelab.inference.appearance import appearance_vectors, check_appearance
from facelab.inference.tracking import FaceTracker, inside_part
from facelab.inference.video_tracks import DEFAULT_CHUNK_FRAMES, DEFAULT_DETECT_SIZE, check_detect_every, track_faces
from facelab.labels import is_face_world
from facelab.losses import age_expectation

#: Heads whose outputs FaceAnalyzer reports (the identity head's classes are the training
#: people, which mean nothing for a new photo; use features for identity).
REPORTED_HEADS = ("emotion", "valence", "arousal", "age", "gender", "race")
#: Heads taken from ``emotion_model`` when both networks have them.
EMOTION_MODEL_HEADS = ("emotion", "valence", "arousal")
#: How many input images are decoded and detected at once (bounds memory).
DEFAULT_CHUNK_IMAGES = 64


# --- the analyzer ---------------------------------------------------------------------------
class FaceAnalyzer:
    """Detect faces and predict emotion, age, gender and race, many images at a time.

    Parameters
    ----------
    model : checkpoint path or :class:`facelab.models.MultiTaskNet`
        The identity/attribute network of Fig. 1 (heads age, gender, race) -- or any
        network: its heads decide what is reported.  With ``backend="onnx"`` it may also be
        an ``.onnx`` file written by :func:`facelab.inference.onnx_export.export_onnx`.
    emotion_model : checkpoint path or MultiTaskNet, optional
        The emotion network of Fig. 1 (fine-tuned for emotion).  Its emotion head (and its
        valence / arousal heads, if any) win over those of ``model``.
    device : torch device for the CNNs (the MTCNN detector runs there too).
    precision : ``"auto"`` (bf16 where the CPU has AMX / AVX512-BF16, or a GPU has bf16),
        ``"bf16"`` or ``"fp32"``.
    backend : ``"torch"`` or ``"onnx"`` (ONNX Runtime, fp32; needs ``pip install facelab[onnx]``).
    batch_size : faces per CNN batch (and images per detector batch).
    min_face_size, threshold : MTCNN settings (faces below ``threshold`` are dropped).
    top_l : L of the age expectation, eq. (1).

    >>> fa = FaceAnalyzer("runs/attributes.safetensors", "runs/emotion.safetensors")
    >>> df = fa.analyze(["a.jpg", "b.png", "holiday/"])   # one row per face
    """

    def __init__(self, model, emotion_model=None, *, device="cpu", precision: str = "auto",
                 backend: str = "torch", batch_size: int = 32, min_face_size: int = 20,
                 threshold: float = 0.9, top_l: int = 3):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size!r}: must be an integer >= 1")
        if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise InvalidInputError(f"threshold={threshold!r}: must be a probability in [0, 1]")
        if isinstance(top_l, bool) or not isinstance(top_l, (int, np.integer)) or top_l < 1:
            raise InvalidInputError(f"top_l={top_l!r}: must be an integer >= 1 (L of eq. 1)")
        if backend not in BACKENDS:
            raise InvalidInputError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
        self.device = str(device)
        self.backend = backend
        self.precision = resolve_precision(precision, device, backend)
        self.batch_size = int(batch_size)
        self.min_face_size = int(min_face_size)
        self.threshold = float(threshold)
        self.top_l = int(top_l)
        self.networks = []
        for m in (model, emotion_model):
            if m is not None:
                self.networks.append(make_network(m, backend=backend, precision=self.precision, device=device,
                                                  batch_size=self.batch_size))
        if not self.networks:
            raise InvalidInputError("FaceAnalyzer needs a model (checkpoint path or MultiTaskNet)")
        #: head name -> index of the network that provides it (emotion from emotion_model first).
        self.head_source: dict[str, int] = {}
        for head in REPORTED_HEADS:
            order = (range(len(self.networks) - 1, -1, -1) if head in EMOTION_MODEL_HEADS
                     else range(len(self.networks)))
            for k in order:
                if head in self.networks[k].head_sizes:
                    self.head_source[head] = k
                    break
        if not self.head_source:
            raise InvalidInputError(
                "the model(s) have none of the heads " + ", ".join(REPORTED_HEADS)
                + f" (found: {', '.join(h for n in self.networks for h in n.head_sizes) or 'none'}); "
                "train or load an attribute/emotion checkpoint"
            )
        if "age" in self.head_source:
            n_age = self.networks[self.head_source["age"]].head_sizes["age"]
            if self.top_l > n_age:
                raise InvalidInputError(f"top_l={top_l} is larger than the {n_age} age classes")

    # --- description ----------------------------------------------------------
    @property
    def heads(self) -> list[str]:
        """The reported heads, in column order."""
        return [h for h in REPORTED_HEADS if h in self.head_source]

    def labels(self, head: str) -> list[str]:
        net = self.networks[self.head_source[head]]
        names = net.labels.get(head)
        return [str(v) for v in names] if names else [str(k) for k in range(net.head_sizes[head])]

    def trained_on(self, head: str) -> str | None:
        """What the network behind ``head`` learned from (its checkpoint's ``trained_on``)."""
        return self.networks[self.head_source[head]].config.get("trained_on")

    @property
    def face_world_heads(self) -> list[str]:
        """The reported heads whose network learned only drawn faces (``labels.FACE_WORLD``):
        their answers on real photos mean nothing."""
        return [h for h in self.heads if is_face_world(self.trained_on(h))]

    def __repr__(self) -> str:
        return (f"FaceAnalyzer(heads={self.heads}, backend={self.backend!r}, precision={self.precision!r}, "
                f"batch_size={self.batch_size}, device={self.device!r})")

    # --- the CNN part -----------------------------------------------------------
    def _needed_networks(self) -> list[int]:
        return sorted(set(self.head_source.values()))

    def crop_sizes(self) -> list[int]:
        """Crop side of every network that is run (usually one size)."""
        return sorted({self.networks[k].image_size for k in self._needed_networks()})

    def predict_crops(self, crops) -> dict:
        """Probabilities of every reported head for a batch of face crops.

        ``crops``: ``N x 3 x S x S`` RGB in ``[0, 255]`` (what :func:`facelab.faces.crop_faces`
        returns), or a dict ``{S: crops}`` holding the same faces at each network's size.
        Crops of another size are resized (bilinear, antialiased).  Returns
        ``{head: float32 array N x C}`` (softmax probabilities) for emotion, age, gender,
        race -- those the networks have -- and the raw ``N x 1`` outputs of valence and
        arousal.  The age in years is :meth:`ages` of ``["age"]``.
        """
        by_size = crops if isinstance(crops, dict) else None
        n = len(next(iter(by_size.values()))) if by_size else len(crops)
        logits: dict[str, list] = {h: [] for h in self.head_source}
        for start in range(0, n, self.batch_size):
            for k in self._needed_networks():
                net = self.networks[k]
                src = by_size.get(net.image_size, next(iter(by_size.values()))) if by_size else crops
                out = net.logits(src[start:start + self.batch_size])
                for head, source in self.head_source.items():
                    if source == k:
                        logits[head].append(out[head])
        return {h: np.asarray(np.concatenate(v) if h in VALUE_HEADS else softmax(np.concatenate(v)), np.float32)
                if v else np.zeros((0, self._n_classes(h)), np.float32) for h, v in logits.items()}

    def _n_classes(self, head: str) -> int:
        return self.networks[self.head_source[head]].head_sizes[head]

    def ages(self, age_probs) -> np.ndarray:
        """Age in years from age posteriors: the top-L expectation of eq. (1)."""
        probs = np.asarray(age_probs, dtype=np.float32)
        if len(probs) == 0:
            return np.zeros(0, np.float32)
        return age_expectation(_torch_from(probs), top_l=self.top_l).numpy().astype(np.float32)

    # --- images -----------------------------------------------------------------
    def analyze(self, images, names=None, *, chunk_images: int = DEFAULT_CHUNK_IMAGES):
        """One DataFrame row per face of ``images`` (anything :func:`facelab.data.io.load_image`
        accepts, a list of them, or a folder).

        Columns: ``input`` (position in the expanded input list), ``name``, ``face`` (index
        within the image, highest detector probability first), ``x1, y1, x2, y2`` (box),
        ``det_prob``, then per head: ``emotion`` + ``emotion_<Class>`` probabilities,
        ``valence`` and ``arousal`` (networks that have them, e.g. ``enet_b0_8_va_mtl``),
        ``age`` (eq. 1), ``gender`` + ``gender_prob``, ``race`` + ``race_<Class>``
        probabilities; ``status`` (``"ok"``, ``"no face"``, ``"failed"``) and ``error``
        (the reason an input failed, else empty).  An image without a face and an input
        that cannot be read each give exactly one row (box NaN): nothing is dropped.
        """
        entries = expand_inputs(images, names)
        rows = []
        for start in range(0, len(entries), max(1, int(chunk_images))):
            chunk = [InputItem(start + i, name, src, src if kind == "error" else None)
                     for i, (name, src, kind) in enumerate(entries[start:start + chunk_images])]
            rows += self._analyze_chunk(chunk)
        return self._frame(rows)

    def _load(self, chunk: list) -> None:
        for item in chunk:
            if item.error is not None:
                continue
            try:
                item.source = load_image(item.source, name=item.name)
            except Exception as exc:  # noqa: BLE001 - the batch continues; the reason is the row
                item.error = short_error(exc)

    def _detect(self, arrays: list) -> list:
        """Faces of every array; same-size images are detected together."""
        if not arrays:
            return []
        kw = dict(min_face_size=self.min_face_size, threshold=self.threshold, batch_size=self.batch_size,
                  device=self.device)
        try:
            return detect_faces(arrays, **kw)
        except Exception:  # noqa: BLE001 - isolate the image that breaks the detector
            results = []
            for arr in arrays:
                try:
                    results.append(detect_faces([arr], **kw)[0])
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
            return results

    def _analyze_chunk(self, chunk: list, extra: Sequence[dict] | None = None) -> list:
        """Load, detect, crop and predict one chunk of inputs -> row dicts."""
        self._load(chunk)
        ok = [item for item in chunk if item.error is None]
        faces_per = self._detect([item.source for item in ok])
        for item, faces in zip(ok, faces_per):
            if isinstance(faces, Exception):
                item.error, faces = short_error(faces), []
            item.faces = faces  # type: ignore[attr-defined]
        with_faces = [item for item in ok if item.error is None and item.faces]
        probs = {}
        if with_faces:
            arrays = [item.source for item in with_faces]
            boxes = [[f.box for f in item.faces] for item in with_faces]
            crops = {s: crop_faces(arrays, boxes, size=s, policy="tight") for s in self.crop_sizes()}
            probs = self.predict_crops(crops)
            if "age" in probs:
                probs["_age_years"] = self.ages(probs["age"])
        rows, k = [], 0
        for pos, item in enumerate(chunk):
            base = {"input": item.index, "name": item.name}
            if extra is not None:
                base.update(extra[pos])
            if item.error is not None:
                rows.append({**base, "status": STATUS_FAILED, "error": item.error})
                continue
            if not item.faces:
                rows.append({**base, "status": STATUS_NO_FACE, "error": ""})
                continue
            for j, face in enumerate(item.faces):
                row = {**base, "face": j, "x1": face.box[0], "y1": face.box[1], "x2": face.box[2],
                       "y2": face.box[3], "det_prob": face.prob}
                row.update(self._head_values(probs, k))
                row.update(status=STATUS_OK, error="")
                rows.append(row)
                k += 1
            item.source = None  # free the decoded image
        return rows

    def _head_values(self, probs: dict, k: int) -> dict:
        return head_values(probs, k, self._head_labels())

    def columns(self, video: bool = False) -> list[str]:
        """The DataFrame columns, in order."""
        return frame_columns(self._head_labels(), video)

    def _frame(self, rows: list, video: bool = False):
        return rows_frame(rows, self.columns(video), video)

    # --- videos -----------------------------------------------------------------
    def analyze_video(self, path, every: int = 1, *, name: str | None = None, input_index: int = 0,
                      chunk_frames: int | None = None, detect_size: int | None = DEFAULT_DETECT_SIZE,
                      detect_every: int = 1, appearance: str = "color", tracker: FaceTracker | None = None):
        """Per-frame rows for a video file (every ``every``-th frame), as :meth:`analyze`,
        plus ``frame`` (index in the clip), ``time`` (seconds) and ``track`` (the same number
        for the same person in every frame, :class:`facelab.inference.tracking.FaceTracker`).

        Frames are decoded as a stream in a background thread (:func:`facelab.data.frames.iter_frames`)
        and handled ``chunk_frames`` at a time (default 8, at most ``batch_size``).  The
        detector runs on every ``detect_every``-th frame at the working resolution
        ``detect_size`` (longer side in pixels, None: full resolution); on the frames in
        between the tracks are carried along their predicted boxes, and those rows have
        ``det_prob`` NaN.  Crops always come from the full-resolution frame and every
        frame's faces go through the networks.  ``appearance`` is what the tracker compares
        besides the boxes (:func:`facelab.inference.tracking.appearance_vectors`): ``"color"`` (a colour
        histogram of the face crop), ``"features"`` (the first network's own features; one more
        pass of it on the detected faces) or ``"features+color"``.  Colour is the default: an
        emotion network's features change with the expression about as much as between
        people (notebook 05), a face's colours do not.

        A frame without a face gives one ``"no face"`` row; a clip that cannot be decoded
        (or breaks off) gives a ``"failed"`` row with the reason after the frames before it.
        """
        return self._frame(list(self._video_rows(path, every, name=name, input_index=input_index,
                                                 chunk_frames=chunk_frames, detect_size=detect_size,
                                                 detect_every=detect_every, appearance=appearance,
                                                 tracker=tracker)), video=True)

    def _video_rows(self, path, every: int = 1, *, name=None, input_index: int = 0,
                    chunk_frames: int | None = None, detect_size: int | None = DEFAULT_DETECT_SIZE,
                    detect_every: int = 1, appearance: str = "color",
                    tracker: FaceTracker | None = None) -> Iterator[dict]:
        name = os.fspath(path) if name is None else name
        detect_size, detect_every = check_detect_size(detect_size), check_detect_every(detect_every)
        appearance_fn = self._appearance_fn(check_appearance(appearance))
        tracker = FaceTracker() if tracker is None else tracker.reset()
        chunk_frames = int(chunk_frames or min(self.batch_size, DEFAULT_CHUNK_FRAMES))
        n_frames = 0
        try:
            for chunk in track_faces(iter_frames(path, every=every), appearance_fn=appearance_fn, tracker=tracker,
                                     detect_every=detect_every, detect_size=detect_size, chunk_frames=chunk_frames,
                                     min_face_size=self.min_face_size, threshold=self.threshold, device=self.device):
                n_frames += len(chunk)
                yield from self._tracked_rows(chunk, name, input_index)
        except Exception as exc:  # noqa: BLE001 - the clip breaks off: report it as a row
            yield {"input": input_index, "name": name, "status": STATUS_FAILED, "error": short_error(exc)}
            return
        if n_frames == 0:
            yield {"input": input_index, "name": name, "status": STATUS_FAILED,
                   "error": f"{name}: no frames decoded; check the video file"}

    def _appearance_fn(self, kind: str):
        """What the tracker compares: crops of the detected faces -> appearance vectors."""
        net = self.networks[self._needed_networks()[0]]

        def appearance(frames, boxes):
            crops = crop_faces([f.image for f in frames], [[tuple(b) for b in bx] for bx in boxes],
                               size=net.image_size, policy="tight")
            feats = None
            if kind != "color":  # every runner's features are numpy (facelab.inference.runtime)
                feats = np.concatenate([net.features(crops[s:s + self.batch_size])
                                        for s in range(0, len(crops), self.batch_size)])
            inside = np.concatenate([inside_part(bx, f.image.shape[1::-1]) for f, bx in zip(frames, boxes)])
            return appearance_vectors(kind, feats, crops, inside=inside)

        return appearance

    def _tracked_rows(self, chunk: list, name: str, input_index: int) -> Iterator[dict]:
        """Rows of a chunk of tracked frames (:func:`facelab.inference.video.track_faces`)."""
        with_faces = [tf for tf in chunk if len(tf.boxes)]
        probs = {}
        if with_faces:
            images = [tf.frame.image for tf in with_faces]
            boxes = [[tuple(b) for b in tf.boxes] for tf in with_faces]
            probs = self.predict_crops({s: crop_faces(images, boxes, size=s, policy="tight")
                                        for s in self.crop_sizes()})
            if "age" in probs:
                probs["_age_years"] = self.ages(probs["age"])
        k = 0
        for tf in chunk:
            base = {"input": input_index, "name": name, "frame": tf.frame.index, "time": tf.frame.time}
            if not len(tf.boxes):
                yield {**base, "status": STATUS_NO_FACE, "error": ""}
                continue
            for j, box in enumerate(tf.boxes):
                row = {**base, "face": j, "track": int(tf.tracks[j]), "x1": float(box[0]), "y1": float(box[1]),
                       "x2": float(box[2]), "y2": float(box[3]), "det_prob": float(tf.det_prob[j])}
                row.update(self._head_values(probs, k))
                row.update(status=STATUS_OK, error="")
                k += 1
                yield row

    def analyze_paths(self, paths, every: int = 1, *, detect_size: int | None = DEFAULT_DETECT_SIZE,
                      detect_every: int = 1, appearance: str = "color", per_track: bool = False):
        """Images, folders and videos together (what ``facelab predict`` runs): video files
        (by extension) give per-frame rows (:meth:`analyze_video`, with its ``detect_size``,
        ``detect_every`` and ``appearance``), everything else is analysed as an image.
        Columns as :meth:`analyze_video` (``frame``/``time``/``track`` empty for still images).

        ``per_track=True``: one row per face track of each video instead
        (:meth:`summarize_tracks`, computed while the video streams), with the rows of the
        images, failed inputs and videos without a face kept.
        """
        detect_size, detect_every = check_detect_size(detect_size), check_detect_every(detect_every)
        check_appearance(appearance)
        rows, pending = [], []

        def flush():
            if pending:
                rows.extend(self._analyze_chunk(pending[:]))
                pending.clear()

        for i, (name, src, kind) in enumerate(expand_inputs(paths, videos=True)):
            if kind == "video":
                flush()
                video_rows = self._video_rows(src, every, name=name, input_index=i, detect_size=detect_size,
                                              detect_every=detect_every, appearance=appearance)
                rows.extend(self._summarize_video(video_rows) if per_track else video_rows)
            else:
                pending.append(InputItem(i, name, src, src if kind == "error" else None))
                if len(pending) >= DEFAULT_CHUNK_IMAGES:
                    flush()
        flush()
        return self._track_frame(rows) if per_track else self._frame(rows, video=True)

    # --- per-track summaries (facelab.inference.rows) ----------------------------------
    def track_columns(self) -> list[str]:
        """The columns of :meth:`summarize_tracks`, in order."""
        return track_columns(self.columns())

    def summarize_tracks(self, df):
        """One row per face track of each video of a per-frame DataFrame (:meth:`analyze_video`,
        :meth:`analyze_paths`); rows of images and of failed inputs are kept as they are
        (:func:`facelab.inference.rows.summarize_tracks`).

        A track's row: ``track``, ``first_frame`` / ``last_frame`` (and times), ``frames``
        (frames it was seen in), ``det_prob`` (mean where detected); ``emotion_<Class>``:
        the mean of the per-frame probabilities, ``emotion`` their argmax (``race`` alike);
        ``valence``, ``arousal`` and ``age``: means; ``gender``: the majority of the frames,
        ``gender_prob``: the mean probability of that gender.  Box columns are empty.  A
        video without any face gives one ``"no face"`` row; a video that broke off keeps its
        ``"failed"`` row after its tracks.
        """
        return self._track_frame(summarize_tracks(df, self._head_labels()))

    def _head_labels(self) -> dict:
        return {head: self.labels(head) for head in self.heads}

    def _summarize_video(self, rows) -> list[dict]:
        return summarize_video(rows, self._head_labels())

    def _track_frame(self, rows: list):
        return track_frame(rows, self.track_columns())


def _torch_from(array):
    return torch.from_numpy(np.ascontiguousarray(array))



__all__ = [
    "PRECISIONS",
    "BACKENDS",
    "REPORTED_HEADS",
    "cpu_supports_bf16",
    "resolve_precision",
    "TorchNetwork",
    "make_network",
    "softmax",
    "expand_inputs",
    "STATUS_OK",
    "STATUS_NO_FACE",
    "STATUS_FAILED",
    "FaceAnalyzer",
]
