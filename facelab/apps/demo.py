"""Upload a photo and see what the multi-task network of Fig. 1 says about every face.

:class:`FaceDemo` is a small ipywidgets app (shown in notebook 07 and served as a web
page by Voila)::

    from facelab.apps.demo import FaceDemo, default_models
    app = FaceDemo(default_models())
    app.widget            # display it in Jupyter / Voila

It has a file upload button, a model choice, a status line, and an ``Output`` area
showing the photo with a box and a label per face plus a table (emotion with its top-3
probabilities, age, gender, race).  At inference the network of Fig. 1 runs once per
face: MTCNN finds the tight face box, the shared backbone computes the feature vector
``x``, and the heads read emotion, age (eq. 1, the age expectation), gender and race
from it.  :class:`facelab.inference.analyze.FaceAnalyzer` does that work; this module only
decodes the upload, calls it and draws the result.

Bad input never breaks the app: an empty, truncated, huge or unsupported file, or a
photo without a face, gives a clear message on the status line (no traceback) and the
next upload works as before.  Images are RGB everywhere.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import time
from pathlib import Path

import numpy as np

from facelab.errors import (
    CheckpointError,
    FacelabError,
    ImageDecodeError,
    ImageTooLarge,
    InvalidInputError,
    UnsupportedFormatError,
    VideoDecodeError,
)
from facelab import zoo
from facelab.checkpoints import zoo_checkpoint_path
from facelab.data.frames import DEFAULT_MAX_FRAME_PIXELS, iter_frames
from facelab.paths import REPO_ROOT, models_dir
from facelab.labels import EMOTIONS_8, FACE_WORLD, GENDERS, RACES

#: Largest upload the demo accepts, in megabytes (1 MB = 10**6 bytes).  Jupyter's
#: websocket refuses messages over 10 MiB unless configured, so larger files would not
#: reach the kernel anyway.
DEFAULT_MAX_UPLOAD_MB = 10.0
#: The annotated photo is shown with its longer side scaled to this many pixels.
DEFAULT_DISPLAY_SIDE = 640
#: File types offered by the browser's file dialog.
ACCEPT = "image/*,video/*,.jpg,.jpeg,.png,.gif,.bmp,.tif,.tiff,.webp,.heic,.heif,.avif,.mp4,.avi,.mov,.mkv,.webm"

_BOX_COLOUR = (255, 48, 48)
_TEXT_COLOUR = (255, 255, 255)

# Status kinds -> (CSS colour, symbol) of the status line.
_STATUS_STYLE = {
    "ready": ("#444444", "&#8226;"),
    "busy": ("#444444", "&#8226;"),
    "ok": ("#1b7a1b", "&#10004;"),
    "warning": ("#a15c00", "&#9888;"),
    "error": ("#b00020", "&#10006;"),
}


# --- models -------------------------------------------------------------------------
class DemoModels(dict):
    """A ``{name: analyzer}`` dict that can carry a note per model, shown in the app
    (e.g. "untrained: predictions are random")."""

    def __init__(self, models=(), notes=None):
        super().__init__(models)
        self.notes = dict(notes or {})


class CallableAnalyzer:
    """Wraps a function ``f(images, names=...) -> DataFrame`` (the
    :meth:`FaceAnalyzer.analyze` contract) so the demo can call ``.analyze``."""

    def __init__(self, fn):
        self.fn = fn

    def analyze(self, images, names=None):
        return self.fn(images, names=names)


class CheckpointAnalyzer:
    """A :class:`~facelab.inference.analyze.FaceAnalyzer` loaded on first use from checkpoint paths or
    model-zoo names (``FaceAnalyzer(*models)``), so that a missing, corrupt or undownloadable
    file is reported in the app instead of at start-up.

    ``face_world_heads``: the heads known to come from face-world networks before loading
    (after loading, the analyzer's own answer)."""

    def __init__(self, *models, precision: str = "auto", face_world_heads=()):
        self.models = models
        self.path = Path(models[0]) if models else None
        self.precision = precision
        self._declared = list(face_world_heads)
        self._analyzer = None

    def load(self):
        if self._analyzer is None:
            self._analyzer = analyzer_from_checkpoint(*self.models, precision=self.precision)
        return self._analyzer

    @property
    def face_world_heads(self) -> list[str]:
        return self._analyzer.face_world_heads if self._analyzer is not None else self._declared

    def analyze(self, images, names=None):
        return self.load().analyze(images, names=names)


def analyzer_from_checkpoint(*models, precision: str = "auto"):
    """A ``FaceAnalyzer`` of facelab checkpoints (paths) or model-zoo names, in
    ``FaceAnalyzer(model, emotion_model)`` order.  CheckpointError (or its
    ModelDownloadError) if one is missing, corrupt, mismatched or cannot be downloaded."""
    from facelab.inference.analyze import FaceAnalyzer

    return FaceAnalyzer(*models, precision=precision)


def as_analyzer(spec):
    """A model given to :class:`FaceDemo` -> an object with ``.analyze(images, names)``.

    Accepts a ``FaceAnalyzer`` (or anything with ``.analyze``), a callable with the same
    contract, or the path of a facelab checkpoint (loaded lazily).
    """
    if hasattr(spec, "analyze"):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return CheckpointAnalyzer(spec)
    if callable(spec):
        return CallableAnalyzer(spec)
    raise InvalidInputError(
        f"model {spec!r}: expected a FaceAnalyzer, a callable (images, names=...) -> DataFrame, "
        "or the path of a facelab checkpoint"
    )


# --- default models: cached checkpoints, else a tiny model trained on the face world --------
#: Backbone of the tiny fallback model: a lightweight CNN that trains in seconds on CPU
#: (the paper's MobileNet-v1 works too, about 4x slower; pass ``backbone=``).
TINY_BACKBONE = "lcnet_050"
#: File name (stem) of the tiny demo model in the cache folder.
TINY_STEM = "demo_tiny"
_ATTRIBUTE_HEADS = ("age", "gender", "race")
#: The paper's published emotion network the demo offers first (a :mod:`facelab.zoo` name).
PAPER_MODEL = "enet_b0_8_best_afew"
#: Shown above the app while the chosen emotion network learned only drawn faces.
FACE_WORLD_NOTICE = ("Trained on drawn faces (the built-in face world): its answers on real photos are not "
                     "meaningful. For real photos choose a paper network (facelab download "
                     f"{PAPER_MODEL}).")


def default_cache_dir() -> Path:
    """Where trained checkpoints are looked for: :func:`facelab.paths.models_dir`
    (``$FACELAB_MODELS``, else ``$FACELAB_CACHE/models``, else ``<repo>/data/cache/models`` in a
    source checkout, else ``$FACELAB_HOME/models``)."""
    return models_dir()


def find_checkpoints(cache_dir) -> dict[str, list[Path]]:
    """facelab checkpoints under ``cache_dir`` sorted by kind, newest first:
    ``"attributes"`` (age, gender AND race heads, notebook 03) and ``"emotion"`` (an
    emotion head, notebook 04).  The demo's own tiny model, benchmark artifacts
    (``bench_*``), hidden files and unreadable files are left out."""
    from facelab.checkpoints import read_checkpoint_config

    found: dict[str, list[Path]] = {"emotion": [], "attributes": []}
    root = Path(cache_dir)
    if not root.is_dir():
        return found
    paths = sorted(root.rglob("*.safetensors"), key=lambda p: (-p.stat().st_mtime, p.as_posix()))
    for path in paths:
        if path.name.startswith((".", TINY_STEM, "bench")):
            continue
        try:
            heads = read_checkpoint_config(path).get("heads", {})
        except FacelabError:
            continue
        if "emotion" in heads:
            found["emotion"].append(path)
        if all(h in heads for h in _ATTRIBUTE_HEADS):
            found["attributes"].append(path)
    return found


def course_checkpoints(cache_dir) -> list[Path]:
    """The checkpoints that together make the network of Fig. 1 (age, gender, race and
    emotion): one file with all four heads, or the newest attribute checkpoint plus the
    newest emotion checkpoint -- preferring networks with all 8 AffectNet emotions over
    7-class ones (notebook 04 trains both).  Empty when the cache does not hold both."""
    from facelab.checkpoints import read_checkpoint_config

    found = find_checkpoints(cache_dir)
    # stable sort: 8-class emotion networks first, newest first within each group
    found["emotion"].sort(key=lambda p: read_checkpoint_config(p)["heads"]["emotion"] != len(EMOTIONS_8))
    both = [p for p in found["attributes"] if p in found["emotion"]]
    if both:
        return [both[0]]
    if found["attributes"] and found["emotion"]:
        return [found["attributes"][0], found["emotion"][0]]
    return []


def tiny_model_path(cache_dir=None, *, backbone: str = TINY_BACKBONE, image_size: int = 48, seed: int = 0) -> Path:
    """Cache file of the tiny demo model trained with these settings."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache_dir / f"{TINY_STEM}_{backbone}_{int(image_size)}px_seed{int(seed)}.safetensors"


def face_world_faces(n_faces: int = 480, *, image_size: int = 48, seed: int = 0, n_people: int | None = None):
    """``n_faces`` labelled tight face crops of the built-in face world, in memory.

    Every face is a new photo (:func:`facelab.synth.render_face`) of one of ``n_people``
    people with a random emotion (8 classes), age (UTKFace-like distribution) and photo
    conditions; the crop is the renderer's face box (a tight crop, no margin, like the
    MTCNN box at inference).  Returns a :class:`facelab.training.train.FaceTensors` with labels
    emotion, age (years), gender and race.  Deterministic given ``seed``.
    """
    import torch

    from facelab.labels import EMOTIONS_8
    from facelab.synth import render_face, sample_nuisance, sample_person
    from facelab.synth.writers import sample_ages
    from facelab.data.tensors import FaceTensors, resize_faces

    rng = np.random.default_rng([int(seed), 707])
    n_people = int(n_people or max(8, n_faces // 4))
    ages = sample_ages(rng, n_faces)
    photo_side = max(64, int(image_size * 1.8))
    faces, labels = [], {"emotion": [], "age": [], "gender": [], "race": []}
    for i in range(int(n_faces)):
        person = sample_person(int(seed), int(rng.integers(n_people)))
        emotion = int(rng.integers(len(EMOTIONS_8)))
        photo = render_face(person, age=float(ages[i]), emotion=EMOTIONS_8[emotion], size=photo_side,
                            nuisance=sample_nuisance(rng, 0.5), rng=rng)
        x1, y1, x2, y2 = (int(round(v)) for v in photo.box)
        crop = torch.from_numpy(np.ascontiguousarray(photo.image[y1:y2, x1:x2])).permute(2, 0, 1)
        faces.append(resize_faces(crop, int(image_size)))
        labels["emotion"].append(emotion)
        labels["age"].append(int(ages[i]))
        labels["gender"].append(person.gender)
        labels["race"].append(person.race)
    names = {"emotion": list(EMOTIONS_8), "gender": list(GENDERS), "race": list(RACES)}
    return FaceTensors(torch.stack(faces), labels, names)


def untrained_model(backbone: str = TINY_BACKBONE, image_size: int = 48):
    """A :class:`facelab.models.MultiTaskNet` with the heads of Fig. 1 (emotion, age,
    gender, race) and random weights: it runs, but its predictions mean nothing."""
    from facelab.models import MultiTaskNet

    model = MultiTaskNet(backbone, emotion_classes=8, gender=True, race=True, age=True, pretrained=False)
    model.preprocessing["image_size"] = int(image_size)
    return model.eval()


def train_tiny_model(*, backbone: str = TINY_BACKBONE, image_size: int = 48, n_faces: int = 480,
                     seconds: float = 45.0, seed: int = 0, progress: bool = False):
    """Train a small multi-task network on the face world within about ``seconds``.

    The paper's recipe, shrunk: emotion fine-tuning first (eq. (2) class-weighted loss;
    stage A head only, stage B all weights), then the age/gender/race heads of Fig. 1 on
    the now frozen backbone.  No ImageNet weights (nothing can be downloaded), so the
    network starts from random weights and predictions are rough.  Training stops at the
    time budget (``max_seconds`` of :mod:`facelab.training.train`), so how far it gets depends on
    the machine.  Returns ``(model, info)``.
    """
    from facelab.training.train import train_attributes, train_emotion

    t0 = time.perf_counter()
    data = face_world_faces(n_faces, image_size=image_size, seed=seed)
    model = untrained_model(backbone, image_size)
    left = max(1.0, seconds - (time.perf_counter() - t0))
    emotion = train_emotion(model, data, epochs=(1, 12), img_size=image_size, batch_size=32, lr=(3e-3, 2e-3),
                            seed=seed, max_seconds=0.8 * left, progress=progress)
    left = max(2.0, seconds - (time.perf_counter() - t0))
    attributes = train_attributes(model, data, epochs=15, img_size=image_size, batch_size=32, lr=3e-3,
                                  seed=seed, max_seconds=left, progress=progress)
    info = {
        "backbone": backbone, "image_size": int(image_size), "train_faces": len(data),
        "seconds": round(time.perf_counter() - t0, 1),
        "emotion_epochs": len(emotion), "attribute_epochs": len(attributes),
        "emotion_train_acc": _last(emotion, "train_acc"),
        "gender_train_acc": _last(attributes, "train_gender_acc"),
    }
    return model.eval(), info


def _last(history, column):
    if column in getattr(history, "columns", ()) and len(history):
        return round(float(history[column].iloc[-1]), 3)
    return None


def paper_model_available(name: str = PAPER_MODEL, *, download: bool = False) -> bool:
    """Can the demo use the paper's published network ``name`` (a :mod:`facelab.zoo` name)
    without asking the internet?  Yes when it is cached (converted or downloaded), when
    ``FACELAB_ZOO_MIRROR`` provides it, or when ``download=True`` (then the first use fetches
    it from its origin).  Nothing is downloaded here."""
    if download or zoo.cached(name) is not None or zoo_checkpoint_path(name).is_file():
        return True
    mirror = os.environ.get(zoo.MIRROR_ENV, "")
    if mirror.startswith(("http://", "https://")):
        return True
    return bool(mirror) and (Path(mirror) / zoo.get(name).file).is_file()


def default_models(cache_dir=None, *, train_seconds: float = 45.0, backbone: str = TINY_BACKBONE,
                   image_size: int = 48, n_faces: int = 480, seed: int = 0, precision: str = "auto",
                   progress: bool = False, paper_model: str | None = PAPER_MODEL,
                   download: bool = False) -> DemoModels:
    """The models the demo offers, best first.

    0. The paper's published emotion network ``paper_model`` (a :mod:`facelab.zoo` name,
       trained on AffectNet) when :func:`paper_model_available` says it can be had: cached,
       from ``FACELAB_ZOO_MIRROR``, or ``download=True``.  It is loaded on first use, so a
       failed download is a message in the app.  Age, gender and race come with it from the
       course's attribute network when there is one (face world: hidden unless asked for).
    1. The course's own checkpoints when earlier notebooks left them in ``cache_dir``
       (default :func:`default_cache_dir`): the attribute network (age/gender/race heads,
       notebook 03) and the emotion network (notebook 04) together form Fig. 1
       (:func:`course_checkpoints`).
    2. Otherwise the tiny demo model from the cache, or trained now on the built-in face
       world within ``train_seconds`` (:func:`train_tiny_model`) and saved to the cache.
    3. ``train_seconds=0`` (or a failure while training) gives an *untrained* network;
       the app says so next to the model choice.

    Returns a :class:`DemoModels` dict ``{name: FaceAnalyzer}`` whose ``notes`` describe
    where each model came from.
    """
    from facelab.inference.analyze import FaceAnalyzer
    from facelab.checkpoints import load_checkpoint, save_checkpoint

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    models = DemoModels()
    paths = course_checkpoints(cache_dir)
    if paper_model and paper_model_available(paper_model, download=download):
        entry = zoo.get(paper_model)
        name = f"paper: {entry.name} ({entry.trained_on})"
        attributes = paths[:1]
        models[name] = CheckpointAnalyzer(*attributes, entry.name, precision=precision,
                                          face_world_heads=list(_ATTRIBUTE_HEADS) if attributes else [])
        models.notes[name] = (f"Emotion from the paper's published network {entry.name}, trained on "
                              f"{entry.trained_on} ({entry.source}, {entry.licence})."
                              + (" Age, gender and race come from the course's face-world network."
                                 if attributes else ""))
    if paths:
        try:
            analyzer = FaceAnalyzer(*[load_checkpoint(p) for p in paths], precision=precision)
        except FacelabError as exc:
            models.notes["_skipped"] = f"cached checkpoints could not be used: {exc}"
        else:
            name = "course: face world (" + " + ".join(p.stem for p in paths) + ")"
            models[name] = analyzer
            models.notes[name] = (f"Trained on the face world by the earlier notebooks: "
                                  f"{', '.join(_shown_path(p) for p in paths)}.")

    tiny = tiny_model_path(cache_dir, backbone=backbone, image_size=image_size, seed=seed)
    name = f"course: tiny demo model, face world ({backbone}, {image_size} px)"
    if tiny.is_file():
        try:
            models[name] = FaceAnalyzer(load_checkpoint(tiny), precision=precision)
            models.notes[name] = (f"Tiny model trained on the built-in face world, loaded from {_shown_path(tiny)}; "
                                  "predictions are rough.")
        except FacelabError:
            pass  # a stale or broken cache file: train a new one below
    if any(n.startswith("course") for n in models):
        return _clean_notes(models)
    if train_seconds and train_seconds > 0:
        try:
            model, info = train_tiny_model(backbone=backbone, image_size=image_size, n_faces=n_faces,
                                           seconds=float(train_seconds), seed=seed, progress=progress)
        except (FacelabError, ImportError, RuntimeError) as exc:  # fall back to an untrained network
            models.notes["_skipped"] = f"(Training the tiny model failed: {type(exc).__name__}: {exc})"
        else:
            model.trained_on = FACE_WORLD
            save_checkpoint(model, tiny, extra_config={"demo_training": info})
            models[name] = FaceAnalyzer(model, precision=precision)
            models.notes[name] = (f"Tiny model trained just now on {info['train_faces']} face-world faces "
                                  f"in {info['seconds']:.0f} s (saved to {_shown_path(tiny)}); predictions are rough.")
            return _clean_notes(models)
    name = f"UNTRAINED {backbone} (random weights)"
    models[name] = FaceAnalyzer(untrained_model(backbone, image_size), precision=precision)
    models.notes[name] = ("UNTRAINED network: boxes come from the real MTCNN detector, but emotion, age, "
                          "gender and race are random guesses. " + models.notes.get("_skipped", ""))
    return _clean_notes(models)


def _shown_path(path) -> str:
    """A path for messages: relative to the working folder when it lies inside the
    repository (notebook outputs then read the same on every machine), else absolute."""
    path = Path(path).resolve()
    if REPO_ROOT in path.parents:
        return os.path.relpath(path)
    return str(path)


def _clean_notes(models: DemoModels) -> DemoModels:
    models.notes = {k: v for k, v in models.notes.items() if k in models}
    return models


# --- reading the analyze() table --------------------------------------------------------
_BOX_COLUMNS = ("x1", "y1", "x2", "y2")


def emotion_columns(df) -> dict[str, str]:
    """``{emotion name: column}`` for the per-class probability columns of an analyze table.

    Accepts the bare class name (``Happiness``) or a prefixed one (``p_Happiness``,
    ``emotion_Happiness``, ``prob_happiness`` ...), in the model's own class order.
    """
    found = {}
    for col in df.columns:
        key = str(col)
        for prefix in ("", "p_", "prob_", "emotion_", "p(", "emotion_prob_"):
            if key.lower().startswith(prefix):
                rest = key[len(prefix):].rstrip(")")
                match = next((e for e in EMOTIONS_8 if e.lower() == rest.lower()), None)
                if match and match not in found:
                    found[match] = col
                    break
    return found


def has_box(row) -> bool:
    """True when a row of the analyze table is a detected face (finite box)."""
    try:
        return all(math.isfinite(float(row[c])) for c in _BOX_COLUMNS)
    except (KeyError, TypeError, ValueError):
        return False


def row_error(row) -> str | None:
    """The error text of an analyze row, or None when the row is fine."""
    value = row.get("error") if hasattr(row, "get") else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def top_emotions(row, columns: dict[str, str], k: int = 3) -> list[tuple[str, float]]:
    """The k most probable emotions of one face, ``[(name, probability), ...]``."""
    scores = []
    for name, col in columns.items():
        try:
            p = float(row[col])
        except (TypeError, ValueError):
            continue
        if math.isfinite(p):
            scores.append((name, p))
    scores.sort(key=lambda item: -item[1])
    if not scores and isinstance(row.get("emotion"), str):
        return [(row["emotion"], float("nan"))]
    return scores[:k]


def _fmt_prob(p: float) -> str:
    return "" if not math.isfinite(p) else f" {100 * p:.0f}%"


def _text(row, key) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, np.integer)) and key == "gender" and 0 <= value < len(GENDERS):
        return GENDERS[value]
    if isinstance(value, (int, np.integer)) and key == "race" and 0 <= value < len(RACES):
        return RACES[value]
    return str(value)


def _age_text(row) -> str | None:
    try:
        age = float(row.get("age"))
    except (TypeError, ValueError):
        return None
    return f"{age:.0f} y" if math.isfinite(age) else None


def face_label(row, columns: dict[str, str] | None = None) -> str:
    """Short label drawn above a face box, e.g. ``"1: Happiness 81% | 31 y | Female | Asian"``."""
    columns = emotion_columns(row.to_frame().T) if columns is None else columns
    parts = []
    predicted = row.get("emotion")
    if isinstance(predicted, str) and predicted:
        col = columns.get(predicted)
        parts.append(f"{predicted}{_fmt_prob(float(row[col])) if col is not None else ''}")
    else:
        top = top_emotions(row, columns, k=1)
        if top:
            parts.append(f"{top[0][0]}{_fmt_prob(top[0][1])}")
    parts += [t for t in (_age_text(row), _text(row, "gender"), _text(row, "race")) if t]
    return " | ".join(parts) if parts else "face"


def without_heads(df, heads):
    """The analyze table without the columns of ``heads`` (e.g. hidden face-world age,
    gender and race): ``age``; ``gender``, ``gender_prob``; ``race``, ``race_<Class>`` ..."""
    drop = [c for c in df.columns for h in heads if c == h or str(c).startswith(f"{h}_")]
    return df.drop(columns=drop) if drop else df


def faces_table(df):
    """The table the app shows: one row per detected face with emotion (top-3
    probabilities), valence and arousal (networks that have them), age (eq. 1), gender and
    race (with their probabilities when given).  A head without a column in ``df`` (hidden,
    or not in the model) has no column in the table."""
    import pandas as pd

    columns = emotion_columns(df)
    shown = ["face", "box (x1, y1, x2, y2)", "emotion (top-3)"]
    shown += [h for h in ("valence", "arousal", "age", "gender", "race") if h in df.columns]
    rows = []
    for number, (_, row) in enumerate((r for r in df.iterrows() if has_box(r[1])), start=1):
        top = top_emotions(row, columns, k=3)
        entry = {
            "face": number,
            "box (x1, y1, x2, y2)": ", ".join(f"{float(row[c]):.0f}" for c in _BOX_COLUMNS),
            "emotion (top-3)": ", ".join(f"{name}{_fmt_prob(p)}" for name, p in top) or "-",
            "age": _age_text(row) or "-",
        }
        for key in ("valence", "arousal"):
            value = row.get(key)
            entry[key] = f"{float(value):+.2f}" if value is not None and math.isfinite(float(value)) else "-"
        for key in ("gender", "race"):
            text = _text(row, key)
            prob = _class_probability(row, key, text)
            entry[key] = "-" if text is None else f"{text}{_fmt_prob(prob)}"
        rows.append({k: entry[k] for k in shown})
    return pd.DataFrame(rows, columns=shown)


def _class_probability(row, key: str, value: str | None) -> float:
    """Probability of the predicted gender/race if the table carries it."""
    candidates = [f"{key}_prob", f"{key}_p", f"p_{key}"]
    if value is not None:
        candidates += [f"{key}_{value}", f"p_{value}", f"{key}_p_{value}", f"p_{key}_{value}"]
    for col in candidates:
        if col in row.index:
            try:
                return float(row[col])
            except (TypeError, ValueError):
                pass
    return float("nan")


# --- videos ----------------------------------------------------------------------
def first_video_frame(name: str, content: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """The first frame (RGB) of an uploaded video file, decoded with :func:`facelab.data.frames.iter_frames`.

    The bytes go to a temporary file (FFmpeg reads files); errors name ``name``, not
    the temporary path.
    """
    import tempfile


    suffix = Path(name).suffix.lower() or ".mp4"
    with tempfile.TemporaryDirectory(prefix="facelab-demo-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(content)
        frames = iter_frames(path, max_pixels=max_pixels or DEFAULT_MAX_FRAME_PIXELS)
        try:
            return next(iter(frames)).image
        except StopIteration:
            raise VideoDecodeError(f"{name}: the video has no frames; upload another file") from None
        except VideoDecodeError as exc:
            raise VideoDecodeError(str(exc).replace(str(path), name)) from None
        finally:
            frames.close()


# --- drawing ----------------------------------------------------------------------
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def annotate(image: np.ndarray, df, *, display_side: int = DEFAULT_DISPLAY_SIDE):
    """The photo (``H x W x 3`` RGB) scaled so that its longer side is ``display_side``
    (small photos are enlarged at most 3x), with one numbered box and label per face of
    ``df`` (an analyze table); returns a PIL image."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8))
    scale = min(3.0, display_side / max(canvas.size))
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale)))
        canvas = canvas.resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(canvas)
    line = max(2, canvas.width // 200)
    columns = emotion_columns(df)
    faces = [row for _, row in df.iterrows() if has_box(row)]
    for number, row in enumerate(faces, start=1):
        x1, y1, x2, y2 = (float(row[c]) * scale for c in _BOX_COLUMNS)
        draw.rectangle((x1, y1, x2, y2), outline=_BOX_COLOUR, width=line)
        _draw_label(draw, canvas.size, (x1, y1, x2, y2), f"{number}: {face_label(row, columns)}")
    return canvas


def _draw_label(draw, canvas_size, box, text: str) -> None:
    """White text on a red band above the box (below it at the top edge); the font
    shrinks, then the label wraps at " | ", until it fits the photo's width."""
    width, height = canvas_size
    x1, y1, x2, y2 = box
    size = max(10, width // 40)
    while True:
        font = _font(size)
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
        if right - left + 6 <= width or size <= 9:
            if right - left + 6 <= width or "\n" in text:
                break
            text, size = text.replace(" | ", "\n"), max(10, width // 40)
            continue
        size -= 1
    w, h = right - left + 6, bottom - top + 6
    tx = min(max(0.0, x1), max(0.0, width - w))
    ty = y1 - h if y1 - h >= 0 else min(y2, max(0.0, height - h))
    draw.rectangle((tx, ty, tx + w, ty + h), fill=_BOX_COLOUR)
    draw.multiline_text((tx + 3 - left, ty + 3 - top), text, fill=_TEXT_COLOUR, font=font)


def _png_base64(pil_image) -> str:
    buf = io.BytesIO()
    pil_image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --- messages -------------------------------------------------------------------------
def error_headline(exc: BaseException) -> str:
    """A short, plain-language headline for an error shown in the app."""
    if isinstance(exc, ImageTooLarge):
        return "File too large"
    if isinstance(exc, UnsupportedFormatError):
        return "Unsupported format"
    if isinstance(exc, ImageDecodeError):
        return "Not a readable image"
    if isinstance(exc, VideoDecodeError):
        return "Not a readable video"
    if isinstance(exc, CheckpointError):
        return "Model could not be loaded"
    if isinstance(exc, FacelabError):
        return "Cannot process this file"
    return f"Unexpected error ({type(exc).__name__}; please report it)"


# --- the app ------------------------------------------------------------------------
class FaceDemo:
    """Upload-and-predict app: a photo in, boxes + labels + a table out.

    Parameters
    ----------
    models : dict
        ``{name: model}`` where a model is a :class:`facelab.inference.analyze.FaceAnalyzer`
        (anything with ``.analyze(images, names=None) -> DataFrame``), a callable with
        that contract, or the path of a facelab checkpoint (loaded on first use).  A
        :class:`DemoModels` dict may carry a note per model, shown under the controls.
    max_upload_mb : float
        Larger uploads are refused with a message before decoding.
    max_pixels : int
        Images declaring more pixels are refused before decoding (decompression bombs).
    display_side : int
        Longer side, in pixels, of the annotated photo shown.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root container: display it.
    upload, model_choice, status_line, output : widgets
        The file upload, the model ``Dropdown``, the status ``HTML`` and the result ``Output``.
    status : str
        Plain text of the status line; ``status_kind`` is one of
        ``ready, ok, warning, error``.
    last_result : pandas.DataFrame or None
        The analyze table of the last successful upload (None after an error).
    last_image, last_table
        The annotated PIL image and the shown table of the last successful upload.
    """

    def __init__(self, models: dict, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 max_pixels: int | None = None, display_side: int = DEFAULT_DISPLAY_SIDE,
                 title: str = "facelab: emotion, age, gender and race of every face in a photo"):
        import ipywidgets as widgets

        from facelab.data.io import DEFAULT_MAX_PIXELS

        if not models:
            raise InvalidInputError("FaceDemo needs at least one model: {name: FaceAnalyzer | callable | checkpoint path}")
        self.models = {str(name): as_analyzer(spec) for name, spec in models.items()}
        self.notes = {str(k): v for k, v in getattr(models, "notes", {}).items()}
        self.max_upload_mb = float(max_upload_mb)
        self.max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
        self.display_side = int(display_side)
        self.last_result = None
        self.last_image = None
        self.last_table = None
        #: The last upload, decoded (``H x W x 3`` RGB), or None.
        self.last_upload_image = None
        self.history: list[tuple[str, str]] = []  # (file name, status kind) per upload
        self._last_upload: tuple[str, bytes] | None = None

        self.upload = widgets.FileUpload(accept=ACCEPT, multiple=False, description="Upload photo",
                                         button_style="primary")
        self.model_choice = widgets.Dropdown(options=list(self.models), description="Model:",
                                             layout=widgets.Layout(width="auto"))
        self.note_line = widgets.HTML()
        #: The domain-shift notice (visible while the chosen emotion network is a face-world one).
        self.notice = widgets.HTML()
        #: Face-world age / gender / race are hidden until this box is ticked.
        self.show_attributes = widgets.Checkbox(
            value=False, indent=False, layout=widgets.Layout(width="auto"),
            description="show age, gender and race from face-world networks (not meaningful on real photos)")
        self.status_line = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(min_height="40px"))
        self.widget = widgets.VBox([
            widgets.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>"),
            widgets.HBox([self.upload, self.model_choice]),
            self.notice,
            self.note_line,
            self.show_attributes,
            self.status_line,
            self.output,
        ])
        self.widget.add_class("facelab-demo")
        self.status_line.add_class("facelab-status")
        self.upload.add_class("facelab-upload")
        self.model_choice.add_class("facelab-model")
        self.output.add_class("facelab-output")
        self.notice.add_class("facelab-notice")
        self.show_attributes.add_class("facelab-show-attributes")

        self.upload.observe(self._on_upload, names="value")
        self.model_choice.observe(self._on_model_change, names="value")
        self.show_attributes.observe(self._on_model_change, names="value")
        self._show_note()
        self._set_status("ready", f"Upload a photo (JPEG, PNG, ...; up to {self.max_upload_mb:g} MB).")

    # -- public ----------------------------------------------------------------------
    @property
    def status(self) -> str:
        """Plain text of the status line."""
        return self._status_text

    @property
    def status_kind(self) -> str:
        return self._status_kind

    @property
    def model_name(self) -> str:
        return self.model_choice.value

    @property
    def face_world_heads(self) -> list[str]:
        """The heads of the chosen model that come from face-world networks."""
        return list(getattr(self.models[self.model_name], "face_world_heads", []) or [])

    @property
    def hidden_heads(self) -> list[str]:
        """Face-world age / gender / race, hidden unless ``show_attributes`` is ticked."""
        if self.show_attributes.value:
            return []
        return [h for h in self.face_world_heads if h in _ATTRIBUTE_HEADS]

    def handle_upload(self, name: str, content) -> object:
        """Decode ``content`` (the uploaded bytes of file ``name``), run the selected model
        and show the result.  Returns the analyze DataFrame, or None when the file could
        not be used (the reason is on the status line).  Never raises."""
        name = str(name or "upload")
        content = bytes(content)
        self._last_upload = (name, content)
        self._set_status("busy", f"Analysing {name} with {self.model_name} ...")
        try:
            result = self._run(name, content)
        except Exception as exc:  # noqa: BLE001 - the app must survive any bad upload
            self._show_error(name, exc)
            return None
        return result

    def upload_file(self, path) -> object:
        """Convenience for notebooks: ``handle_upload`` with a file from disk."""
        path = Path(path)
        return self.handle_upload(path.name, path.read_bytes())

    # -- widget callbacks ------------------------------------------------------------
    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return  # our own reset below, or an empty selection
        for item in files:
            self.handle_upload(item["name"], item["content"])
        self.upload.value = ()  # free the bytes; lets the same file be uploaded again

    def _on_model_change(self, change) -> None:
        self._show_note()
        if self._last_upload is not None:
            self.handle_upload(*self._last_upload)

    # -- steps -----------------------------------------------------------------------
    def _run(self, name: str, content: bytes):
        t0 = time.perf_counter()
        image = self._decode(name, content)
        self.last_upload_image = image
        df = self.models[self.model_name].analyze([image], names=[name])
        seconds = time.perf_counter() - t0
        errors = [e for e in (row_error(row) for _, row in df.iterrows()) if e]
        if errors and not any(has_box(row) for _, row in df.iterrows()):
            raise _AnalyzeRowError(errors[0])
        self._show_result(name, image, df, seconds)
        return df

    def _decode(self, name: str, content: bytes) -> np.ndarray:
        """Uploaded bytes -> ``H x W x 3`` uint8 RGB (the first frame for a video file)."""
        from facelab.data.io import VIDEO_EXTENSIONS, load_image

        limit = self.max_upload_mb * 1e6
        if len(content) > limit:
            raise ImageTooLarge(
                f"{name}: the file is {len(content) / 1e6:.1f} MB, over the demo's upload limit of "
                f"{self.max_upload_mb:g} MB; downscale the photo or save it as JPEG"
            )
        if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
            return first_video_frame(name, content, max_pixels=self.max_pixels)
        return load_image(content, name=name, max_pixels=self.max_pixels)

    # -- showing -----------------------------------------------------------------------
    def _show_result(self, name: str, image: np.ndarray, df, seconds: float) -> None:
        self.last_result = df
        self._show_note()  # a lazily loaded model now knows which of its heads are face-world ones
        shown = without_heads(df, self.hidden_heads)
        self.last_image = annotate(image, shown, display_side=self.display_side)
        self.last_table = faces_table(shown)
        n = len(self.last_table)
        h, w = image.shape[:2]
        outputs = [{
            "output_type": "display_data",
            "data": {"image/png": _png_base64(self.last_image),
                     "text/plain": f"<{name}: {w} x {h} RGB photo with {n} face box(es)>"},
            "metadata": {},
        }]
        if n:
            table_html = self.last_table.to_html(index=False, classes="facelab-table", border=0)
            outputs.append({"output_type": "display_data",
                            "data": {"text/html": table_html, "text/plain": self.last_table.to_string(index=False)},
                            "metadata": {}})
        self.output.outputs = tuple(outputs)
        if n:
            self._set_status("ok", f"{name}: {n} face{'s' if n != 1 else ''} found "
                                   f"({w} x {h} px, model {self.model_name}, {seconds:.1f} s).")
        else:
            self._set_status("warning", f"{name}: no face found in this {w} x {h} photo; "
                                        "try one where the face is larger, frontal and well lit.")

    def _show_error(self, name: str, exc: BaseException) -> None:
        self.last_result = None
        self.last_image = None
        self.last_table = None
        self.output.outputs = ()
        message = str(exc).strip() or type(exc).__name__
        if not message.startswith(name):
            message = f"{name}: {message}"
        self._set_status("error", f"{error_headline(exc)}. {message}")

    def _show_note(self) -> None:
        note = self.notes.get(self.model_name, "")
        self.note_line.value = (f"<div style='color:#a15c00'>&#9888; {html.escape(note)}</div>" if note else "")
        face_world = self.face_world_heads
        self.notice.value = (f"<div style='color:#a15c00;font-weight:bold'>&#9888; {html.escape(FACE_WORLD_NOTICE)}"
                             "</div>" if "emotion" in face_world else "")
        self.show_attributes.layout.display = None if any(h in _ATTRIBUTE_HEADS for h in face_world) else "none"

    def _set_status(self, kind: str, text: str) -> None:
        self._status_kind, self._status_text = kind, text
        colour, symbol = _STATUS_STYLE[kind]
        self.status_line.value = (f"<div class='facelab-status-{kind}' style='color:{colour}'>"
                                  f"{symbol} {html.escape(text)}</div>")
        if kind not in ("ready", "busy") and self._last_upload is not None:
            self.history.append((self._last_upload[0], kind))


class _AnalyzeRowError(FacelabError):
    """The analyzer returned only failure rows for the upload (its reason is the message)."""


__all__ = [
    "FaceDemo",
    "DemoModels",
    "CallableAnalyzer",
    "CheckpointAnalyzer",
    "as_analyzer",
    "analyzer_from_checkpoint",
    "annotate",
    "faces_table",
    "face_label",
    "emotion_columns",
    "without_heads",
    "default_models",
    "paper_model_available",
    "PAPER_MODEL",
    "FACE_WORLD_NOTICE",
    "top_emotions",
    "error_headline",
    "DEFAULT_MAX_UPLOAD_MB",
]
