"""Metrics of the paper's evaluations, on plain arrays (no model, no data set).

* classification: accuracy, balanced accuracy (mean per-class recall; AffectNet's
  validation set is balanced, so there both agree), confusion matrix (scikit-learn);
* age: mean absolute error of the argmax age and of the age expectation of eq. (1);
* 7-class evaluation of an 8-class emotion model: drop the Contempt score, renormalise.

Training (:mod:`facelab.training.train`) and the evaluation protocols (:mod:`facelab.training.evaluate`) both
use them.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.special import softmax as scipy_softmax
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.losses import age_expectation


# =====================================================================================
# Basic metrics
# =====================================================================================
def softmax(logits) -> np.ndarray:
    """Row-wise softmax of a (N, C) array, in float64 (``scipy.special.softmax``)."""
    return scipy_softmax(np.asarray(logits, dtype=np.float64), axis=1)


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's balanced accuracy)."""
    if len(y_true) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" is expected
        return float(balanced_accuracy_score(y_true, y_pred))


def confusion(y_true, y_pred, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix C[i, j] = number of images of true class i predicted as j
    (``normalize="true"``: each row divided by its total)."""
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)), normalize=normalize)


def classification_metrics(logits_or_probs, y_true, class_names=None) -> dict:
    """accuracy, balanced_accuracy, confusion_matrix, n for one classification head."""
    scores = np.asarray(logits_or_probs)
    y_true = np.asarray(y_true)
    y_pred = scores.argmax(axis=1)
    num_classes = scores.shape[1]
    result = {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "n": int(len(y_true)),
        "confusion_matrix": confusion(y_true, y_pred, num_classes),
    }
    if class_names is not None:
        result["classes"] = list(class_names)
    return result


def age_mae(probs, true_ages, top_l: int = 3) -> dict:
    """Mean absolute error (years) of the argmax age and of the age expectation, eq. (1)."""
    probs = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    true_ages = np.asarray(true_ages, dtype=np.float64)
    argmax_ages = probs.argmax(dim=1).numpy() + L.MIN_AGE
    expected_ages = age_expectation(probs, top_l=top_l).numpy()
    return {
        "mae": float(np.mean(np.abs(expected_ages - true_ages))),  # eq. (1)
        "mae_argmax": float(np.mean(np.abs(argmax_ages - true_ages))),
        "top_l": int(top_l),
        "n": int(len(true_ages)),
    }


def head_metrics(head: str, logits, targets, top_l: int = 3) -> dict:
    """Metrics for one head: age -> MAE (eq. 1) and argmax MAE; any other head -> accuracy
    and balanced accuracy (``acc``, ``bal_acc``).  Targets of -1 (unknown) are left out."""
    logits, targets = np.asarray(logits), np.asarray(targets)
    known = targets >= 0
    logits, targets = logits[known], targets[known]
    if head == "age":
        m = age_mae(softmax(logits), targets, top_l=top_l)
        return {"mae": m["mae"], "mae_argmax": m["mae_argmax"]}
    m = classification_metrics(logits, targets)
    return {"acc": m["accuracy"], "bal_acc": m["balanced_accuracy"]}


# =====================================================================================
# Emotions: 8 vs 7 classes
# =====================================================================================
def restrict_classes(probs, model_classes, target_classes) -> np.ndarray:
    """Probabilities over ``model_classes`` -> probabilities over ``target_classes`` (a
    subset, matched by name), renormalised to sum to 1.  For an 8-class emotion model and the
    7 classes: drop the Contempt score and divide by the remaining total."""
    probs = np.asarray(probs, dtype=np.float64)
    missing = [c for c in target_classes if c not in model_classes]
    if missing:
        raise InvalidInputError(f"the model has no output for class(es) {missing}; its classes are {list(model_classes)}")
    columns = [list(model_classes).index(c) for c in target_classes]
    kept = probs[:, columns]
    return kept / kept.sum(axis=1, keepdims=True)


def drop_contempt(probs8) -> np.ndarray:
    """8-class emotion probabilities (facelab order) -> 7-class ones without Contempt, renormalised."""
    return restrict_classes(probs8, L.EMOTIONS_8, L.EMOTIONS_7)


def emotion_metrics(logits, y_true, model_classes, data_classes=None) -> dict:
    """Emotion metrics on the dataset's classes, plus (for an 8-class model on 8-class data)
    the 7-class view "drop Contempt, renormalise" with Contempt images left out.

    Images whose true class the model cannot output are left out and counted
    (``excluded``).  Keys: accuracy, balanced_accuracy, n, excluded, confusion_matrix,
    classes and, when it applies, the same with the prefix ``7class_``.
    """
    model_classes = list(model_classes)
    data_classes = list(data_classes or model_classes)
    probs = softmax(logits)
    result = _on_classes(probs, np.asarray(y_true), model_classes, data_classes,
                         [c for c in data_classes if c in model_classes])
    if len(data_classes) == 8 and set(model_classes) >= set(L.EMOTIONS_7) and result["classes"] != list(L.EMOTIONS_7):
        seven = _on_classes(probs, np.asarray(y_true), model_classes, data_classes, list(L.EMOTIONS_7))
        result.update({f"7class_{k}": v for k, v in seven.items()})
    return result


def _on_classes(probs, y_true, model_classes, data_classes, classes) -> dict:
    keep = np.isin(np.asarray(data_classes, dtype=object)[y_true], classes) & (y_true >= 0)
    y = np.array([classes.index(data_classes[t]) for t in y_true[keep]], dtype=np.int64)
    p = restrict_classes(probs[keep], model_classes, classes)
    metrics = classification_metrics(p, y, classes)
    metrics["excluded"] = int((~keep).sum())
    return metrics


def log_prior(class_counts) -> np.ndarray:
    """``log(N_c / N)`` of the training classes (a class never seen counts as seen once)."""
    counts = np.maximum(np.asarray(class_counts, dtype=float), 1.0)
    return np.log(counts / counts.sum())


def prior_corrected_accuracy(logits, labels, class_counts) -> float:
    """Balanced-validation accuracy after the Bayes correction for the training prior:
    argmax of ``logits - log(N_c / N)``.  A network trained on AffectNet's imbalanced
    classes estimates P(class | face) under the training prior; on a balanced validation
    set the Bayes-optimal decision divides that prior out (post-hoc logit adjustment)."""
    return float(np.mean(np.argmax(np.asarray(logits) - log_prior(class_counts), axis=1) == np.asarray(labels)))


__all__ = ["softmax", "accuracy", "balanced_accuracy", "confusion", "classification_metrics", "age_mae", "head_metrics", "restrict_classes", "drop_contempt", "emotion_metrics",
           "log_prior", "prior_corrected_accuracy"]
