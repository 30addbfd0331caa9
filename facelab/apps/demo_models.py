"""The models the demo offers: the paper's published network, the course's checkpoints, or a
tiny multi-task network trained here on the built-in face world.

:func:`default_models` picks them, best first, and returns a :class:`DemoModels` dict whose
notes say where each came from.  When the cache holds nothing, :func:`train_tiny_model` trains
the network of Fig. 1 in seconds on :func:`face_world_faces` (drawn faces, so its answers on
real photos mean little; the app says so).  Checkpoints are loaded on first use
(:class:`CheckpointAnalyzer`), so a missing or corrupt file is a message in the app.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from facelab import zoo
from facelab.checkpoints import load_checkpoint, read_checkpoint_config, save_checkpoint, zoo_checkpoint_path
from facelab.errors import FacelabError, InvalidInputError
from facelab.inference.analyze import FaceAnalyzer
from facelab.labels import EMOTIONS_8, FACE_WORLD, GENDERS, RACES
from facelab.models import MultiTaskNet
from facelab.paths import REPO_ROOT, models_dir
from facelab.synth import render_face, sample_nuisance, sample_person
from facelab.synth.writers import sample_ages
from facelab.data.tensors import FaceTensors, resize_faces
from facelab.training.train import train_attributes, train_emotion


# --- analyzers ------------------------------------------------------------------------
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
#: The attribute heads of Fig. 1 (face-world ones are hidden in the app unless asked for).
ATTRIBUTE_HEADS = ("age", "gender", "race")
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
        if all(h in heads for h in ATTRIBUTE_HEADS):
            found["attributes"].append(path)
    return found


def course_checkpoints(cache_dir) -> list[Path]:
    """The checkpoints that together make the network of Fig. 1 (age, gender, race and
    emotion): one file with all four heads, or the newest attribute checkpoint plus the
    newest emotion checkpoint -- preferring networks with all 8 AffectNet emotions over
    7-class ones, the course's plain cross-entropy network over the eq. (2) one, tight crops over
    others, and the course's own recipe (longest trained, no ``run_seed``) over notebook 04's
    shorter repeated runs (notebook 04 trains all of them and explains why).  Empty when the cache
    does not hold both."""
    found = find_checkpoints(cache_dir)

    def preference(path):
        config = read_checkpoint_config(path)
        extra = config.get("extra", {})
        settings = extra.get("recipe", extra.get("training", {}))
        crop = settings.get("crop", config.get("preprocessing", {}).get("crop", "tight"))
        epochs = sum(int(e) for e in settings.get("epochs", ()))
        return (config["heads"]["emotion"] != len(EMOTIONS_8), bool(settings.get("weighted")), crop != "tight",
                "run_seed" in settings, -epochs)

    found["emotion"].sort(key=preference)  # stable: newest first within each group
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
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    models = DemoModels()
    paths = course_checkpoints(cache_dir)
    if paper_model and paper_model_available(paper_model, download=download):
        entry = zoo.get(paper_model)
        name = f"paper: {entry.name} ({entry.trained_on})"
        attributes = paths[:1]
        models[name] = CheckpointAnalyzer(*attributes, entry.name, precision=precision,
                                          face_world_heads=list(ATTRIBUTE_HEADS) if attributes else [])
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


__all__ = [
    "DemoModels", "CallableAnalyzer", "CheckpointAnalyzer", "analyzer_from_checkpoint", "as_analyzer",
    "TINY_BACKBONE", "TINY_STEM", "ATTRIBUTE_HEADS", "PAPER_MODEL", "FACE_WORLD_NOTICE", "default_cache_dir",
    "find_checkpoints", "course_checkpoints", "tiny_model_path", "face_world_faces", "untrained_model",
    "train_tiny_model", "paper_model_available", "default_models",
]
