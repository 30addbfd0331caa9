"""The course's small, cached model recipes (shared by the notebooks, the demo and the tour).

Every notebook must run alone, top to bottom, from empty caches -- but notebook 03 needs the
identity network of notebook 02, and notebook 04 fine-tunes it for emotions.  So each step of
the paper's pipeline is a *recipe* here with a FIXED cache name: it loads the checkpoint when
the cache holds it and otherwise trains the small version now and saves it.

* :func:`face_crops`      -- a built-in dataset, MTCNN-cropped once (``tight`` = the paper's
  crop, ``center`` = its baseline), cached in the same layout the dataset readers read.
* :func:`identity_model`  -- identity pre-training on the VGGFace2-like tight crops
  (stage A: new head only, SAM around Adam; stage B: all weights).
* :func:`attribute_model` -- the identity network + age / gender / race heads of Fig. 1 on
  its FROZEN backbone (UTKFace-like crops; race with the class weights of eq. (2)).
* :func:`emotion_model`   -- the identity network fine-tuned on the AffectNet-like crops
  with eq. (2) (stage A: new emotion head only, with SAM; stage B: all weights).

Checkpoints (safetensors + JSON config, :mod:`facelab.checkpoints`) live in
:func:`model_dir` under names such as ``course_identity_mobilenetv4_conv_small_64px_tight_s0``, with
the training history beside them (``...history.csv``, read back by :func:`recipe_history`).
The full recipe (dataset, epochs, learning rates ...) is stored in the checkpoint's config;
a cached file whose recipe differs from the one asked for is retrained, never silently used.

No ImageNet weights can be downloaded on the course machines, so the recipes start from
random weights (``pretrained=False``); the defaults are sized to train in well under a
minute on two CPU cores.  Images are RGB everywhere.

**Backbone.**  The paper's MobileNet-v1 (timm ``mobilenetv1_100``) has no residual
connections and, from random weights, learns slowly: on the LFW protocol (unseen
people, 64-pixel tight crops, 100 training people x 20 photos) it stayed at 10-17 % after
60-80 CPU-seconds of training and reached ~35 % after ~175, below raw pixels (~21 %) for
most of that time.  ``mobilenetv4_conv_small`` (MobileNet-v4, residual blocks) reached 44 %
after ~34 CPU-seconds and 57 % after ~54; ``mobilenetv3_small_100`` 46 % after ~46.  The
course therefore uses ``COURSE_BACKBONE = "mobilenetv4_conv_small"``; pass
``backbone="mobilenetv1_100"`` (and more epochs) for the paper's network.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facelab.checkpoints import (checkpoint_path, load_checkpoint, read_checkpoint_config, save_checkpoint,
                                 training_state_path)
from facelab.data.datasets import read_affectnet, read_lfw, read_utkface, read_vggface2
from facelab.data.prepare import BOXES_FILE, prepare_dataset
from facelab.data.tensors import preload
from facelab.errors import CheckpointError, InvalidInputError
from facelab.labels import FACE_WORLD
from facelab.models import MultiTaskNet
from facelab.paths import atomic_write_bytes, cache_dir, models_dir
from facelab.synth.writers import NOTEBOOK_DEFAULTS, dataset_version, ensure_dataset
from facelab.training.evaluate import evaluate_identity
from facelab.training.loop import history_frame
from facelab.training.train import train_attributes, train_emotion, train_identity
#: Bump when a recipe changes in a way that makes old cached checkpoints wrong.
RECIPE_VERSION = 1
#: The course's backbone (see the module docstring for why not the paper's mobilenetv1_100).
COURSE_BACKBONE = "mobilenetv4_conv_small"
#: Side of the face crops and the network input used throughout the course (pixels).
COURSE_IMG_SIZE = 64
#: MTCNN's smallest face (pixels) for the course's crops: the faces of the 112-pixel face-world
#: photos are larger than 50 pixels; skipping the finest image pyramid levels saves ~20 % of the time.
COURSE_MIN_FACE_SIZE = 40
#: Default epochs (stage A, stage B) and learning rates of the recipes.
IDENTITY_EPOCHS = (1, 4)
IDENTITY_LR = (1e-3, 2e-3)             # from random weights (no ImageNet weights offline)
PRETRAINED_IDENTITY_LR = (1e-3, 1e-4)  # the paper's, from ImageNet weights
ATTRIBUTE_EPOCHS = 20
ATTRIBUTE_LR = 1e-3
EMOTION_EPOCHS = (1, 6)
EMOTION_LR = (1e-3, 2e-3)              # from the identity network trained from random weights
#: Which part of the UTKFace-like set trains the attribute heads (the rest is held out).
UTK_TRAIN_FRACTION = 0.8
_COMPLETE = ".facelab-course-complete"


# =====================================================================================
# Where things are cached
# =====================================================================================
def model_dir() -> Path:
    """Where the course's checkpoints live: ``$FACELAB_MODELS``, else ``$FACELAB_CACHE/models``,
    else ``<repo>/data/cache/models`` in a source checkout (git-ignored), else
    ``~/.cache/facelab/models`` (the same folder the demo looks in)."""
    return models_dir()


def crops_dir() -> Path:
    """Where prepared face crops live: ``$FACELAB_CROPS``, else ``$FACELAB_CACHE/crops``,
    else ``<repo>/data/cache/crops`` in a source checkout, else ``~/.cache/facelab/crops``."""
    if os.environ.get("FACELAB_CROPS"):
        return Path(os.environ["FACELAB_CROPS"]).expanduser()
    return cache_dir() / "crops"


# =====================================================================================
# Face crops of the built-in datasets
# =====================================================================================
def _dataset_folder(name: str, seed: int, progress: bool, data_kw: dict | None) -> Path:
    if name not in NOTEBOOK_DEFAULTS:
        raise InvalidInputError(f"face_crops: unknown dataset {name!r}; choose one of {', '.join(NOTEBOOK_DEFAULTS)}")
    kw = {**NOTEBOOK_DEFAULTS[name], **(data_kw or {})}
    return ensure_dataset(name, seed=int(seed), progress=progress, **kw)


def face_crops(name: str, policy: str = "tight", size: int = COURSE_IMG_SIZE, seed: int = 0, *,
               progress: bool = True, data_kw: dict | None = None,
               min_face_size: int = COURSE_MIN_FACE_SIZE) -> Path:
    """The built-in dataset ``name`` (its notebook-sized version,
    ``ensure_dataset(name, **NOTEBOOK_DEFAULTS[name])``) cropped once with the crop ``policy``
    (``tight`` = MTCNN box without margin, the paper's crop; ``margin``; ``center`` = centre
    square of the photo, the paper's baseline) at ``size`` x ``size`` pixels.

    Returns a cached folder with the dataset's own layout, so the same reader reads it
    (``read_vggface2(face_crops("vggface2"))``).  Photos where MTCNN finds no face are not
    dropped silently: they are listed in ``<folder>/failures.csv``.  ``data_kw`` changes the
    generated dataset (e.g. ``{"n": 20}``); ``min_face_size`` is MTCNN's smallest face.
    """
    source = _dataset_folder(name, seed, progress, data_kw)
    out = crops_dir() / f"{source.name}-{policy}-{int(size)}px"
    if policy != "center" and int(min_face_size) != 20:
        out = out.with_name(f"{out.name}-min{int(min_face_size)}")
    if (out / _COMPLETE).is_file():
        return out
    boxes_from = None
    if policy == "margin":  # the faces of the tight crops, found once (prepare's boxes.csv)
        tight = face_crops(name, "tight", size, seed, progress=progress, data_kw=data_kw, min_face_size=min_face_size)
        boxes_from = tight if (tight / BOXES_FILE).is_file() else None
    report = prepare_dataset(source, out, policy=policy, size=int(size), progress=progress,
                             min_face_size=int(min_face_size), boxes_from=boxes_from)
    (out / _COMPLETE).write_text(report.summary() + "\n", encoding="utf-8")
    return out


def crop_failures(folder) -> pd.DataFrame:
    """The ``failures.csv`` of a prepared crop folder (photos without a detected face)."""
    path = Path(folder) / "failures.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["path", "reason"])


def utkface_split(dataset, train_fraction: float = UTK_TRAIN_FRACTION, seed: int = 0):
    """Split a UTKFace-style dataset (one person per photo) into (train, test) subsets with a
    seeded random order; the attribute recipe trains on ``train`` only."""
    if not 0 < train_fraction < 1:
        raise InvalidInputError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    order = np.random.default_rng([int(seed), 3]).permutation(len(dataset))
    cut = int(round(train_fraction * len(dataset)))
    return dataset.subset(sorted(order[:cut].tolist())), dataset.subset(sorted(order[cut:].tolist()))


def identity_data(img_size: int = COURSE_IMG_SIZE, crop: str = "tight", seed: int = 0, progress: bool = True):
    """The VGGFace2-like training identities (``train`` split) as face crops."""
    return read_vggface2(face_crops("vggface2", crop, img_size, seed, progress=progress), "train")


def lfw_data(img_size: int = COURSE_IMG_SIZE, crop: str = "tight", seed: int = 0, progress: bool = True):
    """The LFW-like people (never seen in identity training) as face crops."""
    return read_lfw(face_crops("lfw", crop, img_size, seed, progress=progress))


def utkface_data(img_size: int = COURSE_IMG_SIZE, crop: str = "tight", seed: int = 0, progress: bool = True):
    """(train, test) of the UTKFace-like set as face crops (:func:`utkface_split`)."""
    return utkface_split(read_utkface(face_crops("utkface", crop, img_size, seed, progress=progress)), seed=seed)


def affectnet_data(split: str = "train", num_classes: int = 8, img_size: int = COURSE_IMG_SIZE,
                   crop: str = "tight", seed: int = 0, progress: bool = True):
    """One split (``train`` imbalanced, ``val`` balanced) of the AffectNet-like set as face crops."""
    return read_affectnet(face_crops("affectnet", crop, img_size, seed, progress=progress), split, num_classes)


# =====================================================================================
# The cache of recipes
# =====================================================================================
def recipe_name(kind: str, backbone: str, img_size: int, crop: str, seed: int, *, tags=(), extra: dict | None = None) -> str:
    """The fixed cache name of a recipe, e.g. ``course_identity_mobilenetv1_100_64px_tight_s0``.
    ``tags`` are appended as they are (``8cls``); non-default ``extra`` settings add a short
    hash so that different settings never share a file."""
    parts = ["course", kind, backbone.replace("/", "-").replace(":", "-"), f"{int(img_size)}px", crop, *tags,
             f"s{int(seed)}"]
    name = "_".join(str(p) for p in parts)
    if extra:
        name += f"_{zlib.crc32(json.dumps(extra, sort_keys=True, default=str).encode()):08x}"
    return name


def recipe_path(name: str) -> Path:
    """``model_dir() / (name + ".safetensors")``."""
    return checkpoint_path(model_dir() / name)


def history_path(name: str) -> Path:
    return model_dir() / f"{name}.history.csv"


def recipe_history(name: str) -> pd.DataFrame:
    """The per-epoch training history saved beside a recipe's checkpoint."""
    path = history_path(name)
    if not path.is_file():
        raise CheckpointError(f"no training history for recipe {name!r} at {path}; train the recipe first")
    return pd.read_csv(path)


def _normalised(recipe: dict) -> dict:
    return json.loads(json.dumps(recipe, sort_keys=True, default=str))


def load_cached(name: str, recipe: dict) -> MultiTaskNet | None:
    """The cached model ``name`` if it exists and was trained with exactly ``recipe``, else None."""
    path = recipe_path(name)
    if not path.is_file():
        return None
    try:
        stored = read_checkpoint_config(path).get("extra", {}).get("recipe")
        if stored != _normalised(recipe):
            return None
        model = load_checkpoint(path)
    except CheckpointError:
        return None  # a broken or foreign file: train again (save_checkpoint replaces it atomically)
    model.course_name = name
    return model


def _save(model: MultiTaskNet, name: str, recipe: dict, history: pd.DataFrame) -> MultiTaskNet:
    model_dir().mkdir(parents=True, exist_ok=True)
    history.to_csv(history_path(name), index=False)  # first: a checkpoint never lacks its history
    model.trained_on = FACE_WORLD
    save_checkpoint(model, model_dir() / name, extra_config={"recipe": _normalised(recipe)})
    model.course_name = name
    return model.eval()


# =====================================================================================
# Recipes
# =====================================================================================
def _recipe(kind: str, backbone: str, img_size: int, crop: str, seed: int, settings: dict, defaults: dict,
            tags=()) -> tuple[str, dict]:
    """(cache name, full recipe).  Settings that differ from ``defaults`` add a hash to the name."""
    settings = _normalised(settings)
    changed = {k: v for k, v in settings.items() if v != _normalised(defaults).get(k)}
    name = recipe_name(kind, backbone, img_size, crop, seed, tags=tags, extra=changed or None)
    recipe = {"kind": kind, "version": RECIPE_VERSION, "backbone": backbone, "img_size": int(img_size),
              "crop": crop, "seed": int(seed), **settings}
    return name, recipe


def _data_tag(*names_and_splits: str) -> str:
    """What a recipe trained on (pre-training included), with the face world's format version
    of each dataset, e.g. ``vggface2/train@v4+affectnet/train@v4``: a cached model trained on
    older files no longer matches its recipe and is trained again."""
    pairs = zip(names_and_splits[::2], names_and_splits[1::2])
    return "+".join(f"{name}/{split}@v{dataset_version(name)}" for name, split in pairs)


def _stage_lr(lr, pretrained: bool):
    if lr is not None:
        return [float(v) for v in lr]
    return list(PRETRAINED_IDENTITY_LR if pretrained else IDENTITY_LR)


def _identity_recipe(backbone, img_size, epochs, crop, seed, batch_size, lr, pretrained, sam_b, val_curve=False):
    """(cache name, recipe) of an identity pre-training.  ``val_curve`` is evaluation only and is not part of
    the recipe; ``val_curve=True`` gives the name older versions used for a run that recorded it."""
    settings = {"epochs": [int(e) for e in epochs], "batch_size": int(batch_size), "lr": _stage_lr(lr, pretrained),
                "pretrained": bool(pretrained), "data": _data_tag("vggface2", "train")}
    defaults = {"epochs": list(IDENTITY_EPOCHS), "batch_size": 64, "lr": _stage_lr(None, pretrained),
                "pretrained": False, "data": _data_tag("vggface2", "train")}
    if sam_b:  # only when on, so that the default recipe (and its cache name) stays as it was
        settings["sam"] = [True, True]
    if val_curve:
        settings["val_curve"] = "vggface2/test lfw-protocol"
    return _recipe("identity", backbone, img_size, crop, seed, settings, defaults)


def state_path(name: str) -> Path:
    """The training state (weights, optimizer, random generators, history) at the end of recipe ``name``,
    kept beside its checkpoint so that a longer run of the same recipe can continue from it."""
    return model_dir() / f"{name}.state.pt"


def _has_curve(name: str) -> bool:
    try:
        return "val_unseen_acc" in recipe_history(name)
    except CheckpointError:
        return False


def _shorter_run(backbone, img_size, epochs, crop, seed, batch_size, lr, pretrained, sam_b, val_curve):
    """The cached run of the same identity recipe with fewer stage-B epochs (the most, if several) whose
    final training state is kept, or None.  Stage B's Adam has a constant learning rate, so ``(a, b)``
    epochs are ``(a, b0)`` epochs continued for ``b - b0`` more from that state."""
    if sam_b:  # plain Adam in stage B only
        return None
    for b0 in range(int(epochs[1]) - 1, 0, -1):
        name, recipe = _identity_recipe(backbone, img_size, (epochs[0], b0), crop, seed, batch_size, lr, pretrained,
                                        sam_b)
        if state_path(name).is_file() and load_cached(name, recipe) is not None and \
                (not val_curve or _has_curve(name)):
            return name
    return None


def identity_model(backbone: str = COURSE_BACKBONE, img_size: int = COURSE_IMG_SIZE, epochs=IDENTITY_EPOCHS,
                   crop: str = "tight", seed: int = 0, progress: bool = True, *, batch_size: int = 64,
                   lr=None, pretrained: bool = False, sam_b: bool = False, val_curve: bool = False,
                   retrain: bool = False) -> MultiTaskNet:
    """Identity pre-training (the paper's VGGFace2 step; here the VGGFace2-like face world),
    loaded from the cache when present, else trained now and saved.

    One softmax output per training person.  Stage A (``epochs[0]``): backbone frozen, a new
    identity head only, SAM around Adam, ``lr[0]``.  Stage B (``epochs[1]``): all weights,
    Adam, ``lr[1]``.  The paper fine-tunes ImageNet weights with ``lr = (1e-3, 1e-4)`` (the
    default here with ``pretrained=True``, which needs timm's weights downloaded); from random
    weights stage B needs a larger step, ``IDENTITY_LR = (1e-3, 2e-3)`` (measured: with 1e-4
    the network had learnt next to nothing after 8 epochs).  ``crop``: crop policy of the faces
    (:func:`face_crops`).  ``retrain=True`` ignores the cache.

    ``sam_b=True``: SAM around Adam in stage B too (the paper trains stage B "the same way"; each
    step then costs two gradients); part of the cache name.  ``val_curve=True``: after every epoch,
    the LFW protocol (:func:`facelab.training.evaluate.evaluate_identity`) on the people of the
    VGGFace2-like ``test`` split -- people never trained on, and not the LFW-like test people -- is
    added to the history as ``val_unseen_acc``.  It is evaluation only (eval mode, no random numbers
    drawn: the weights are bit for bit those of the run without it), so it does not change the
    recipe or its cache name: a cached run without the curve is trained again to record it.

    With plain Adam in stage B, the final training state is kept beside the checkpoint
    (:func:`state_path`); a run of the same recipe with more stage-B epochs continues from the longest
    cached shorter run instead of starting over (the same weights as an uninterrupted run on the same
    machine and thread count: stage B's learning rate is constant and the state holds the optimizer
    and the random generators).
    """
    epochs = [int(e) for e in epochs]
    args = (backbone, img_size, epochs, crop, seed, batch_size, lr, pretrained, sam_b)
    name, recipe = _identity_recipe(*args)
    if not retrain:
        model = load_cached(name, recipe)
        if model is not None and (not val_curve or _has_curve(name)):
            return model
        if val_curve:  # recorded by an older version under a name of its own
            legacy = load_cached(*_identity_recipe(*args, val_curve=True))
            if legacy is not None:
                return legacy
    train_set = identity_data(img_size, crop, seed, progress)
    shorter = None if retrain else _shorter_run(*args, val_curve)
    curve = list(recipe_history(shorter)["val_unseen_acc"]) if shorter and val_curve else []
    callback = None
    if val_curve:
        val_faces = preload(read_vggface2(face_crops("vggface2", crop, img_size, seed, progress=progress), "test"),
                            img_size, progress=False)

        def record_curve(row):  # after every epoch; eval mode only, no random numbers drawn
            curve.append(evaluate_identity(model, val_faces, n_splits=10, seed=seed)["accuracy"])

        callback = record_curve
    torch.manual_seed(seed)  # the new network's random weights
    model = MultiTaskNet(backbone, pretrained=pretrained)
    with tempfile.TemporaryDirectory(prefix="facelab-identity-") as tmp:
        history = train_identity(model, train_set, epochs=epochs, img_size=img_size, batch_size=batch_size,
                                 lr=tuple(_stage_lr(lr, pretrained)), sam=(True, bool(sam_b)), crop=crop, seed=seed,
                                 callback=callback, progress=progress, checkpoint=Path(tmp) / "run",
                                 resume=state_path(shorter) if shorter else None)
        final_state = training_state_path(Path(tmp) / "run")
        if final_state.is_file() and not sam_b:
            atomic_write_bytes(state_path(name), final_state.read_bytes())
    if val_curve:
        history["val_unseen_acc"] = curve
    return _save(model, name, recipe, history)


def attribute_model(backbone: str = COURSE_BACKBONE, img_size: int = COURSE_IMG_SIZE, epochs: int = ATTRIBUTE_EPOCHS,
                    crop: str = "tight", seed: int = 0, progress: bool = True, *, identity_epochs=IDENTITY_EPOCHS,
                    batch_size: int = 64, lr: float = ATTRIBUTE_LR, top_l: int = 3, race_weighted: bool = True,
                    retrain: bool = False) -> MultiTaskNet:
    """Fig. 1's attribute heads on the FROZEN identity backbone (paper: UTKFace), cached.

    Starts from :func:`identity_model` (cached or trained now), adds gender (one FC layer),
    race (one FC layer, class-weighted loss of eq. (2)) and age (hidden FC + FC over 100 age
    classes) on x and trains only those heads on the training part of the UTKFace-like set
    (:func:`utkface_data`); the backbone stays exactly as it was.  The history records the
    held-out part's metrics after every epoch (``val_*`` columns; nothing is chosen with them).
    """
    settings = {"epochs": int(epochs), "identity_epochs": [int(e) for e in identity_epochs],
                "batch_size": int(batch_size), "lr": float(lr), "top_l": int(top_l),
                "race_weighted": bool(race_weighted),
                "data": _data_tag("vggface2", "train", "utkface", f"train{UTK_TRAIN_FRACTION}")}
    defaults = {"epochs": ATTRIBUTE_EPOCHS, "identity_epochs": list(IDENTITY_EPOCHS), "batch_size": 64,
                "lr": ATTRIBUTE_LR, "top_l": 3, "race_weighted": True, "data": settings["data"]}
    name, recipe = _recipe("attributes", backbone, img_size, crop, seed, settings, defaults)
    if not retrain and (model := load_cached(name, recipe)) is not None:
        return model
    model = identity_model(backbone, img_size, identity_epochs, crop, seed, progress)
    train_set, test_set = utkface_data(img_size, crop, seed, progress)
    history = train_attributes(model, train_set, epochs=epochs, img_size=img_size, batch_size=batch_size, lr=lr,
                               race_weighted=race_weighted, top_l=top_l, val_set=test_set, crop=crop, seed=seed,
                               progress=progress)
    return _save(model, name, recipe, history)


def _emotion_recipe(backbone, num_classes, weighted, *, img_size, epochs, crop, seed, identity_epochs, batch_size,
                    lr, run_seed, identity_crop) -> tuple[str, dict]:
    """(cache name, full recipe) of :func:`emotion_model`."""
    settings = {"epochs": [int(e) for e in epochs], "identity_epochs": [int(e) for e in identity_epochs],
                "num_classes": int(num_classes), "weighted": bool(weighted), "batch_size": int(batch_size),
                "lr": [float(v) for v in lr], "data": _data_tag("vggface2", "train", "affectnet", "train")}
    if run_seed is not None and int(run_seed) != int(seed):  # only when set: older cached recipes stay valid
        settings["run_seed"] = int(run_seed)
    if identity_crop is not None and identity_crop != crop:
        settings["identity_crop"] = str(identity_crop)
    defaults = {"epochs": list(EMOTION_EPOCHS), "identity_epochs": list(IDENTITY_EPOCHS), "batch_size": 64,
                "lr": list(EMOTION_LR), "num_classes": settings["num_classes"], "weighted": settings["weighted"],
                "data": settings["data"]}
    tags = (f"{int(num_classes)}cls", "eq2" if weighted else "ce")
    return _recipe("emotion", backbone, img_size, crop, seed, settings, defaults, tags=tags)


def emotion_model(backbone: str = COURSE_BACKBONE, num_classes: int = 8, weighted: bool = True,
                  img_size: int = COURSE_IMG_SIZE, epochs=EMOTION_EPOCHS, crop: str = "tight", seed: int = 0,
                  progress: bool = True, *, identity_epochs=IDENTITY_EPOCHS, batch_size: int = 64,
                  lr=EMOTION_LR, run_seed: int | None = None, identity_crop: str | None = None,
                  also_cache=(), retrain: bool = False) -> MultiTaskNet:
    """Emotion fine-tuning of the identity network (paper: AffectNet, C_e = 8 or 7), cached.

    Starts from :func:`identity_model`; a new emotion head with ``num_classes`` outputs.
    Stage A (``epochs[0]``): the rest frozen, head only, SAM around Adam, ``lr[0]``.  Stage B
    (``epochs[1]``): all weights, ``lr[1]``.  Loss: the class-weighted cross-entropy of
    eq. (2) (``weighted=False``: plain cross-entropy).  Trained on the imbalanced ``train``
    split of the AffectNet-like set; its balanced ``val`` split is left for evaluation.

    ``run_seed``: the seed of the fine-tuning alone (the new head's weights and the batch
    order); the identity network and the face world keep ``seed``, so runs that differ only
    in ``run_seed`` start from the same weights and see the same faces (None: ``seed``).
    ``identity_crop``: the crop policy of the identity network it starts from (None: ``crop``),
    so that emotion networks fine-tuned on different crops can start from the same weights.
    Either one, when it differs from the default, gives the recipe its own cache name.

    ``also_cache``: stage-B epoch counts ``k`` (``0 < k < epochs[1]``).  When this recipe is trained
    now, the weights after stage B epoch ``k`` are also cached, as the recipe with
    ``epochs=(epochs[0], k)`` (everything else the same): stage B keeps a constant learning rate, so
    the first ``k`` epochs of the longer run *are* that shorter run, which then costs nothing to train.
    It changes neither this recipe nor its cache name; shorter recipes already cached are kept.
    """
    if num_classes not in (7, 8):
        raise InvalidInputError(f"emotion_model: num_classes must be 8 or 7 (without Contempt), got {num_classes}")
    name, recipe = _emotion_recipe(backbone, num_classes, weighted, img_size=img_size, epochs=epochs, crop=crop,
                                   seed=seed, identity_epochs=identity_epochs, batch_size=batch_size, lr=lr,
                                   run_seed=run_seed, identity_crop=identity_crop)
    settings = {k: recipe[k] for k in ("epochs", "lr")}
    settings.update({k: recipe[k] for k in ("run_seed", "identity_crop") if k in recipe})
    shorter = sorted({int(k) for k in also_cache})
    if any(not 0 < k < settings["epochs"][1] for k in shorter):
        raise InvalidInputError(f"emotion_model: also_cache {tuple(also_cache)} must be stage-B epoch counts "
                                f"between 1 and {settings['epochs'][1] - 1}")
    if not retrain and (model := load_cached(name, recipe)) is not None:
        return model
    model = identity_model(backbone, img_size, identity_epochs, settings.get("identity_crop", crop), seed, progress)
    train_set = affectnet_data("train", num_classes, img_size, crop, seed, progress)
    rows = []

    def cache_shorter(row):  # after every epoch: the weights of the shorter recipes of also_cache
        rows.append(row)
        if row["stage"] == "B" and row["finished"] and row["epoch"] in shorter:
            kw = dict(img_size=img_size, epochs=(settings["epochs"][0], row["epoch"]), crop=crop, seed=seed,
                      identity_epochs=identity_epochs, batch_size=batch_size, lr=lr, run_seed=run_seed,
                      identity_crop=identity_crop)
            short_name, short_recipe = _emotion_recipe(backbone, num_classes, weighted, **kw)
            if load_cached(short_name, short_recipe) is None:
                _save(copy.deepcopy(model), short_name, short_recipe, history_frame(rows))

    history = train_emotion(model, train_set, weighted=weighted, epochs=settings["epochs"], img_size=img_size,
                            batch_size=batch_size, lr=tuple(settings["lr"]), crop=crop,
                            seed=settings.get("run_seed", seed), progress=progress,
                            callback=cache_shorter if shorter else None)
    return _save(model, name, recipe, history)


__all__ = [
    "model_dir", "crops_dir", "face_crops", "crop_failures", "utkface_split", "identity_data", "lfw_data",
    "utkface_data", "affectnet_data", "recipe_name", "recipe_path", "recipe_history", "load_cached", "state_path",
    "identity_model", "attribute_model", "emotion_model",
]
