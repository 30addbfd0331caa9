"""Evaluation protocols of the paper (the metrics themselves are in :mod:`facelab.metrics`).

* the LFW identification protocol of Table 1 (:func:`lfw_identification`);
* batched inference over a dataset (:func:`predict`, :func:`extract_features`).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from facelab.errors import InvalidInputError
from facelab.metrics import (  # noqa: F401 - re-exported: facelab.training.evaluate is where the notebooks find them
    accuracy, age_mae, balanced_accuracy, classification_metrics, confusion, drop_contempt, emotion_metrics,
    head_metrics, log_prior, prior_corrected_accuracy, restrict_classes, softmax,
)
from facelab.data.tensors import LABEL_KEYS, UNKNOWN, FaceTensors, ResizedFaces, resize_faces
from facelab.inference.runtime import make_network, resolve_precision
from facelab.models import resolve_device


# =====================================================================================
# Inference over a dataset
# =====================================================================================
def _face_batches(dataset, size: int, batch_size: int, num_workers: int = 0):
    """Yield (dataset indices, uint8 images (B, 3, S, S), label dicts, failures) batch by batch,
    without keeping the whole dataset in memory."""
    if isinstance(dataset, FaceTensors):
        for start in range(0, len(dataset), batch_size):
            idx = list(range(start, min(start + batch_size, len(dataset))))
            images = resize_faces(dataset.images[start:start + batch_size], size)
            labels = [{k: int(v[i]) for k, v in dataset.labels.items()} for i in idx]
            yield idx, images, labels, []
        return
    loader = torch.utils.data.DataLoader(ResizedFaces(dataset, size), batch_size=batch_size,
                                         num_workers=num_workers, collate_fn=list)
    for items in loader:
        ok = [item for item in items if item[1] is not None]
        failures = [(item[0], item[3]) for item in items if item[1] is None]
        images = torch.stack([item[1] for item in ok]) if ok else torch.zeros(0, 3, size, size, dtype=torch.uint8)
        yield [item[0] for item in ok], images, [item[2] for item in ok], failures


def predict(model, dataset, *, img_size: int | None = None, batch_size: int = 128, device=None,
            features: bool = False, precision: str = "fp32", backend: str = "torch", num_workers: int = 0,
            progress: bool = False) -> dict:
    """Run a network over every face of ``dataset``, through the runner contract
    (:func:`facelab.inference.runtime.make_network`: ``x = runner.features(crops)``, ``runner.heads(x)``).

    ``model``: a MultiTaskNet, a checkpoint path, a zoo name or a runner (ONNX with ``backend="onnx"``);
    the torch runner is eager, in ``precision`` ("fp32", the default, or "bf16"/"auto").  ``img_size``:
    the crop side the faces are resized to and the network runs at (default: the checkpoint's).
    Returns {"logits": {head: (n, C) array}, "features": (n, D) array if asked,
    "labels": {key: (n,) int array, -1 = unknown}, "index": (n,) dataset indices,
    "failures": [(index, reason), ...], "label_names": the network's {head: class names}} -- n = number
    of faces that loaded; every other item is in "failures".
    """
    device = resolve_device(device)
    runner = make_network(model, backend=backend, precision=resolve_precision(precision, device, backend),
                          device=device, batch_size=batch_size, freeze=False, image_size=img_size)
    size = runner.image_size
    out = {"logits": {h: [] for h in runner.head_sizes}, "features": [], "labels": [], "index": [], "failures": []}
    bar = tqdm(total=len(dataset), desc="predict", unit="img", disable=not progress, leave=False)
    for idx, images, labels, failures in _face_batches(dataset, size, batch_size, num_workers):
        out["failures"] += failures
        bar.update(len(idx) + len(failures))
        if not idx:
            continue
        x = runner.features(images)
        for head, logits in runner.heads(x).items():
            out["logits"][head].append(logits)
        if features:
            out["features"].append(x)
        out["labels"] += labels
        out["index"] += idx
    bar.close()
    result = {
        "logits": {h: (np.concatenate(v) if v else np.zeros((0, runner.head_sizes[h]), np.float32))
                   for h, v in out["logits"].items()},
        "labels": _label_arrays(out["labels"]),
        "index": np.asarray(out["index"], dtype=np.int64),
        "failures": out["failures"],
        "label_names": dict(runner.labels),
    }
    if features:
        d = int(runner.config.get("num_features", 0))
        result["features"] = np.concatenate(out["features"]) if out["features"] else np.zeros((0, d), np.float32)
    if out["failures"]:
        warnings.warn(f"{len(out['failures'])} of {len(dataset)} items could not be loaded (see 'failures'); "
                      f"first: {out['failures'][0]}", stacklevel=2)
    return result


def _label_arrays(rows: list[dict]) -> dict:
    keys = [k for k in LABEL_KEYS if any(k in r for r in rows)]
    arrays = {}
    for key in keys:
        values = [r.get(key) for r in rows]
        if all(v is None or isinstance(v, (int, np.integer)) for v in values):
            arrays[key] = np.array([UNKNOWN if v is None else int(v) for v in values], dtype=np.int64)
    return arrays


def extract_features(model, dataset, **predict_kw) -> np.ndarray:
    """The feature vector x of every face: an (N, D) float32 array, row i for item i (:func:`predict`'s
    keywords).  Items that could not be loaded get a row of NaN (and a warning), so rows stay aligned."""
    p = predict(model, dataset, features=True, **predict_kw)
    feats = np.full((len(dataset), p["features"].shape[1]), np.nan, dtype=np.float32)
    feats[p["index"]] = p["features"]
    return feats


# =====================================================================================
# LFW protocol (Table 1)
# =====================================================================================
def lfw_identification(features, person_labels, n_splits: int = 10, seed: int = 0) -> dict:
    """Face identification accuracy as in Table 1 of the paper.

    Only people with at least 2 photos take part.  In each of ``n_splits`` random splits,
    one random photo of every such person goes to the gallery and all their other photos
    are probes; each probe gets the person of its nearest gallery photo (Euclidean distance
    between L2-normalised features = largest cosine similarity).  Returns the mean and the
    standard deviation (numpy's, ddof=0) of the accuracy over the splits, the per-split
    accuracies, and the counts (``n_people``, ``n_probes``, ``excluded_images`` of people
    with a single photo).
    """
    feats = np.asarray(features, dtype=np.float64)
    person_labels = np.asarray(person_labels)
    if feats.ndim != 2 or len(feats) != len(person_labels):
        raise InvalidInputError(
            f"features must be (N, D) with one person label per row; got {feats.shape} and {len(person_labels)} labels")
    if not np.isfinite(feats).all():
        raise InvalidInputError("features contain NaN/inf rows (images that failed to load?); drop those rows first")
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    people, inverse, counts = np.unique(person_labels, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts >= 2)
    if len(eligible) < 2:
        raise InvalidInputError(f"the LFW protocol needs at least 2 people with >= 2 photos; found {len(eligible)}")
    photos_of = [np.flatnonzero(inverse == p) for p in eligible]
    rng = np.random.default_rng(seed)
    accuracies = []
    for _ in range(n_splits):
        gallery = np.array([rng.choice(photos) for photos in photos_of])
        probes = np.setdiff1d(np.concatenate(photos_of), gallery)
        nearest = np.argmax(feats[probes] @ feats[gallery].T, axis=1)
        accuracies.append(float(np.mean(inverse[gallery][nearest] == inverse[probes])))
    return {
        "accuracy": float(np.mean(accuracies)),
        "std": float(np.std(accuracies)),
        "accuracies": accuracies,
        "n_people": int(len(eligible)),
        "n_probes": int(sum(len(p) - 1 for p in photos_of)),
        "excluded_images": int(counts[counts < 2].sum()),
        "n_splits": int(n_splits),
    }


# =====================================================================================
# One call per task (what `facelab evaluate` prints)
# =====================================================================================
def evaluate_identity(model, lfw_set, *, n_splits: int = 10, seed: int = 0, **predict_kw) -> dict:
    """LFW protocol with the model's features x on an LFW-layout dataset (labels "identity")."""
    p = predict(model, lfw_set, features=True, **predict_kw)
    if "identity" not in p["labels"]:
        raise InvalidInputError("evaluate_identity needs a dataset with 'identity' labels (e.g. read_lfw)")
    result = lfw_identification(p["features"], p["labels"]["identity"], n_splits=n_splits, seed=seed)
    result["failed_images"] = len(p["failures"])
    return result


def evaluate_attributes(model, utk_set, *, top_l: int = 3, **predict_kw) -> dict:
    """Gender and race accuracy (+ balanced), age MAE (argmax and eq. 1) on a UTKFace-layout set."""
    p = predict(model, utk_set, **predict_kw)
    result = {"failed_images": len(p["failures"])}
    for head in ("gender", "race"):
        if head in p["logits"] and head in p["labels"]:
            known = p["labels"][head] >= 0
            m = classification_metrics(p["logits"][head][known], p["labels"][head][known],
                                       p["label_names"].get(head))
            result.update({f"{head}_{k}": v for k, v in m.items()})
    if "age" in p["logits"] and "age" in p["labels"]:
        known = p["labels"]["age"] >= 0
        m = age_mae(softmax(p["logits"]["age"][known]), p["labels"]["age"][known], top_l=top_l)
        result.update({f"age_{k}": v for k, v in m.items()})
    return result


def evaluate_emotion(model, dataset, **predict_kw) -> dict:
    """Emotion accuracy / balanced accuracy / confusion matrix; for an 8-class model also the
    7-class view (drop Contempt, renormalise).  Classes are matched by name."""
    p = predict(model, dataset, **predict_kw)
    if "emotion" not in p["logits"]:
        raise InvalidInputError("the model has no emotion head; train one with facelab.training.train.train_emotion")
    model_classes = p["label_names"]["emotion"]
    data_classes = (getattr(dataset, "label_names", None) or {}).get("emotion") or model_classes
    result = emotion_metrics(p["logits"]["emotion"], p["labels"]["emotion"], model_classes, data_classes)
    result["failed_images"] = len(p["failures"])
    return result


def metrics_table(metrics: dict) -> pd.DataFrame:
    """The scalar entries of a metrics dict as a two-column table (metric, value)."""
    rows = [(k, round(float(v), 4) if isinstance(v, (float, np.floating)) else v)
            for k, v in metrics.items() if np.isscalar(v) and not isinstance(v, str)]
    return pd.DataFrame({"metric": [k for k, _ in rows], "value": pd.Series([v for _, v in rows], dtype=object)})


__all__ = [
    "softmax", "accuracy", "balanced_accuracy", "confusion", "classification_metrics", "age_mae", "head_metrics",
    "restrict_classes", "drop_contempt", "emotion_metrics", "predict", "extract_features", "lfw_identification",
    "evaluate_identity", "evaluate_attributes", "evaluate_emotion", "metrics_table",
]
