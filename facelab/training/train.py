"""The paper's training schedules as plain PyTorch loops.

Three steps, each a function (each returns the per-epoch history as a pandas DataFrame):

1. :func:`train_identity`  -- face-recognition pre-training (VGGFace2 in the paper).
   Stage A: a new identity head, backbone frozen, 1 epoch, SAM around Adam, lr 1e-3.
   Stage B: all weights, 10 epochs, Adam, lr 1e-4.
2. :func:`train_attributes` -- age / gender / race heads on the *frozen* identity backbone
   (UTKFace), 3 epochs; race uses the class-weighted loss of eq. (2).
3. :func:`train_emotion` -- emotion fine-tuning (AffectNet).
   Stage A: a new emotion head with C_e outputs, backbone frozen, 3 epochs, SAM.
   Stage B: all weights, 10 epochs.  Loss: eq. (2) (``weighted=False``: plain cross-entropy).

Data: any torch Dataset whose items are ``(image, labels)``: image an H x W x 3 uint8 RGB
numpy array (a face crop, made beforehand by ``facelab prepare``) or a 3 x H x W uint8
tensor; labels a dict with int entries among "identity", "emotion", "age" (years),
"gender", "race".  For speed the faces are first *preloaded*: resized once to S x S and kept

as one uint8 tensor (:func:`facelab.data.tensors.preload`); each batch is normalised with
ImageNet mean/std.  The settings of a run are one :class:`~facelab.training.config.TrainConfig`
(each step has its defaults; keywords change them), and the loop itself, on torch's
DataLoader and lr_scheduler, is :mod:`facelab.training.loop`.
"""
from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import torch

from facelab import labels as L
from facelab.data.tensors import FaceTensors, preload
from facelab.errors import DatasetFormatError, InvalidInputError
from facelab.models import MultiTaskNet
from facelab.training.config import ATTRIBUTES, EMOTION, IDENTITY, TrainConfig
from facelab.training.loop import Objective, Stage, class_counts, fit_stages


def _config(defaults: TrainConfig, config: TrainConfig | None, changes: dict) -> TrainConfig:
    return (config or defaults).replace(**changes)


def _settings(task: str, config: TrainConfig, img_size: int, stages, extra: dict) -> dict:
    """What the checkpoint records about the run."""
    return {"task": task, "img_size": img_size, "batch_size": config.batch_size, "crop": config.crop,
            "seed": config.seed, "stages": [asdict(s) for s in stages], "rho": config.rho, **extra}


def _prepare(model, train_set, val_set, config: TrainConfig):
    img_size = int(config.img_size or model.preprocessing["image_size"])
    model.preprocessing.update(image_size=img_size, crop=config.crop)
    kw = dict(num_workers=config.num_workers, progress=config.progress)
    train = preload(train_set, img_size, desc="preload train", **kw)
    val = preload(val_set, img_size, desc="preload val", **kw) if val_set is not None else None
    return img_size, train, val


def _require_labels(data: FaceTensors, key: str, what: str):
    if key not in data.labels or not bool((data.labels[key] >= 0).any()):
        raise DatasetFormatError(f"{what} needs items with a {key!r} label; this dataset has labels {list(data.labels)}")


def _num_classes(data: FaceTensors, key: str) -> tuple[int, list | None]:
    names = data.label_names.get(key)
    if names:
        return len(names), list(names)
    return int(data.labels[key].max()) + 1, None


def _two_stages(config: TrainConfig) -> list[Stage]:
    (ea, eb), (la, lb), (sa, sb) = (config.per_stage(k) for k in ("epochs", "lr", "sam"))
    return [Stage("A", int(ea), la, train_backbone=False, sam=bool(sa)),
            Stage("B", int(eb), lb, train_backbone=True, sam=bool(sb), augment=bool(config.augment),
                  cosine=bool(config.cosine))]


# =====================================================================================
# The paper's three steps
# =====================================================================================
def train_identity(model: MultiTaskNet, train_set, config: TrainConfig | None = None, *, val_set=None,
                   **changes) -> pd.DataFrame:
    """Face-recognition pre-training (paper: VGGFace2, 8541 people).

    A new identity head with one output per training person (kept if the model already
    has one of that size).  Stage A: ``epochs[0]`` epochs, backbone frozen, head only, SAM
    around Adam with ``lr[0]``.  Stage B: ``epochs[1]`` epochs, all weights, ``lr[1]``
    (``sam[1]``: SAM in stage B too, off by default).  ``val_set`` (same people) is
    evaluated after every epoch.  Settings: ``config`` (default :data:`~facelab.training.config.IDENTITY`)
    and keyword ``changes`` to it (see :class:`~facelab.training.config.TrainConfig`).
    """
    config = _config(IDENTITY, config, changes)
    torch.manual_seed(config.seed)
    img_size, train, val = _prepare(model, train_set, val_set, config)
    _require_labels(train, "identity", "train_identity")
    n, names = _num_classes(train, "identity")
    if model.head_sizes.get("identity") != n:
        model.add_head("identity", n, labels=names, replace=True)
    stages = _two_stages(config)
    settings = _settings("identity", config, img_size, stages, {"num_identities": n, "train_images": len(train)})
    return fit_stages(model, "identity", train, stages, Objective({"identity": ("ce", None)}), config, val=val,
                      settings=settings)


def train_attributes(model: MultiTaskNet, utk_set, config: TrainConfig | None = None, *,
                     heads=("age", "gender", "race"), race_weighted: bool = True, val_set=None,
                     **changes) -> pd.DataFrame:
    """Age, gender and race heads on the FROZEN identity backbone (paper: UTKFace; 3 epochs).

    gender: one FC layer on x, cross-entropy.  race: one FC layer on x, class-weighted
    cross-entropy of eq. (2) (``race_weighted=False``: plain).  age: a hidden FC layer + ReLU,
    then an FC layer over 100 age classes, cross-entropy; the reported validation MAE uses
    eq. (1) with ``top_l``.  The backbone (and any other head) does not change.  Settings:
    ``config`` (default :data:`~facelab.training.config.ATTRIBUTES`) and keyword ``changes``.
    """
    config = _config(ATTRIBUTES, config, changes)
    torch.manual_seed(config.seed)
    img_size, train, val = _prepare(model, utk_set, val_set, config)
    losses = {}
    for head in heads:
        if head not in ("age", "gender", "race"):
            raise InvalidInputError(f"attribute heads are age, gender and race, not {head!r}")
        _require_labels(train, head, f"train_attributes (head {head!r})")
        model.add_head(head, replace=True)
        if head == "race" and race_weighted:
            losses[head] = ("weighted", class_counts(train.labels["race"], len(L.RACES)))
        else:
            losses[head] = ("ce", None)
    epochs, lr, sam = (config.per_stage(k)[0] for k in ("epochs", "lr", "sam"))
    stages = [Stage("heads", int(epochs), lr, train_backbone=False, sam=bool(sam))]
    settings = _settings("attributes", config, img_size, stages, {
        "heads": list(heads), "race_weighted": race_weighted, "train_images": len(train),
        "race_counts": losses.get("race", (None, None))[1]})
    return fit_stages(model, "attributes", train, stages, Objective(losses), config, val=val, settings=settings)


def train_emotion(model: MultiTaskNet, train_set, config: TrainConfig | None = None, *, weighted: bool = True,
                  val_set=None, **changes) -> pd.DataFrame:
    """Emotion fine-tuning (paper: AffectNet, C_e = 8 or 7 classes).

    A new emotion head with C_e outputs (C_e from the dataset's emotion vocabulary).
    Stage A: ``epochs[0]`` epochs, the rest frozen, SAM around Adam, ``lr[0]``.  Stage B:
    ``epochs[1]`` epochs, all weights, ``lr[1]``.  Loss: the class-weighted cross-entropy of
    eq. (2) with N_c counted on ``train_set`` (``weighted=False``: plain cross-entropy, for
    the comparison).  ``epochs=(3, 0)`` trains only a linear head on frozen identity features.
    Settings: ``config`` (default :data:`~facelab.training.config.EMOTION`) and keyword ``changes``.
    """
    config = _config(EMOTION, config, changes)
    torch.manual_seed(config.seed)
    img_size, train, val = _prepare(model, train_set, val_set, config)
    _require_labels(train, "emotion", "train_emotion")
    n, names = _num_classes(train, "emotion")
    model.reset_emotion_head(n, labels=names)
    counts = class_counts(train.labels["emotion"], n)
    loss = ("weighted", counts) if weighted else ("ce", None)
    stages = _two_stages(config)
    settings = _settings("emotion", config, img_size, stages, {
        "weighted": weighted, "class_counts": counts, "train_images": len(train)})
    return fit_stages(model, "emotion", train, stages, Objective({"emotion": loss}), config, val=val,
                      settings=settings)


__all__ = ["TrainConfig", "train_identity", "train_attributes", "train_emotion"]
