"""The paper's two formulas: the class-weighted loss (eq. 2) and the age expectation (eq. 1).

Both work on plain torch tensors, so they can be read (and tested) without any model.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from facelab.errors import InvalidInputError
from facelab.labels import MIN_AGE, NUM_AGE_CLASSES


def class_weights(class_counts) -> torch.Tensor:
    """Weight of every class for eq. (2): ``w_c = max_k N_k / N_c``.

    ``class_counts[c]`` is N_c, the number of *training* images of class c.  The most
    frequent class gets weight 1, a class ten times rarer gets weight 10.  A class with
    no training image (N_c = 0) never appears as a target, so its weight is set to 0
    instead of infinity.

    >>> class_weights([100, 50, 10]).tolist()
    [1.0, 2.0, 10.0]
    """
    if not isinstance(class_counts, torch.Tensor):
        class_counts = np.array(class_counts, dtype=np.float64)  # a writable copy (read-only arrays warn)
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise InvalidInputError(f"class_counts must be a 1-D list of counts, got shape {tuple(counts.shape)}")
    if torch.any(counts < 0) or not torch.all(torch.isfinite(counts)):
        raise InvalidInputError(f"class_counts must be finite and >= 0, got {counts.tolist()}")
    if counts.max() <= 0:
        raise InvalidInputError("class_counts are all zero: count the training labels of at least one class")
    weights = torch.where(counts > 0, counts.max() / counts.clamp(min=1), torch.zeros_like(counts))
    return weights.float()


def class_weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, class_counts) -> torch.Tensor:
    """Class-weighted cross-entropy, eq. (2) of the paper::

        L(X, y) = -log softmax(z)_y * max_c N_c / N_y

    z = ``logits`` (the last layer's outputs for image X), y = its true class, N_c = the
    number of training images of class c (``class_counts``).  Rare classes (small N_y)
    get a large weight, so the network cannot ignore them on an imbalanced set
    such as AffectNet.

    Reduction: the *plain mean* over the batch of the weighted per-image terms,
    ``(1/B) * sum_i w_{y_i} * (-log softmax(z_i)_{y_i})`` -- eq. (2) read literally, and
    what Keras' ``class_weight`` does.  (Note: ``torch.nn.functional.cross_entropy(...,
    weight=w)`` divides by ``sum_i w_{y_i}`` instead, which is a different number.)
    """
    weights = class_weights(class_counts).to(logits.device)
    if logits.ndim != 2 or logits.shape[1] != len(weights):
        raise InvalidInputError(
            f"logits must have shape (batch, {len(weights)}) to match {len(weights)} class counts, "
            f"got {tuple(logits.shape)}"
        )
    targets = targets.long()
    target_weights = weights[targets]
    if torch.any(target_weights == 0):
        missing = sorted(set(targets[target_weights == 0].tolist()))
        raise InvalidInputError(f"targets contain classes {missing} whose training count N_y is 0")
    per_image = F.cross_entropy(logits.float(), targets, reduction="none")  # -log softmax(z)_y
    return (per_image * target_weights).mean()


def age_expectation(probs: torch.Tensor, top_l: int = 3) -> torch.Tensor:
    """Final age from the age classifier's posteriors, eq. (1) of the paper::

        a_bar = sum_{l=1..L} a_l * P_{a_l} / sum_{l=1..L} P_{a_l}

    {a_1, ..., a_L} are the L ages with the largest posterior probabilities P.  Ages are
    1-based: column k of ``probs`` is the age k + 1 years (facelab.labels.class_to_age).
    ``top_l=1`` gives the plain argmax age; ``top_l=C_a`` the full expectation.  The
    paper lets L be anything in 1..C_a without fixing it; facelab's default is L = 3.

    ``probs``: (N, C_a) or (C_a,) softmax outputs.  Returns float ages, shape (N,) or ().
    """
    probs = torch.as_tensor(probs)
    single = probs.ndim == 1
    if single:
        probs = probs[None]
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise InvalidInputError(f"probs must have shape (N, C_a), got {tuple(probs.shape)}")
    if not 1 <= top_l <= probs.shape[1]:
        raise InvalidInputError(f"top_l must be in 1..{probs.shape[1]} (C_a), got {top_l}")
    top_probs, top_indices = probs.float().topk(top_l, dim=1)  # P_{a_l} and the class indices
    top_ages = (top_indices + MIN_AGE).float()  # class index -> age in years (a_l)
    ages = (top_ages * top_probs).sum(dim=1) / top_probs.sum(dim=1).clamp(min=1e-12)
    return ages[0] if single else ages


def soft_age_targets(ages, sigma: float, num_classes: int = NUM_AGE_CLASSES) -> torch.Tensor:
    """Soft (Gaussian) age labels for training an age classifier with cross-entropy.

    Row i is a normal curve over the age classes (class k = age k + 1 years), centred on
    ``ages[i]`` with standard deviation ``sigma`` years and normalised to sum to 1, so that
    guessing a neighbouring age costs less than guessing a distant one.  ``sigma=0`` gives
    the usual one-hot labels.  Use with ``F.cross_entropy(logits, targets)`` (probability targets).

    >>> soft_age_targets([30], 0.0).argmax(1).tolist()
    [29]
    """
    if sigma < 0:
        raise InvalidInputError(f"sigma must be >= 0 years, got {sigma}")
    ages = torch.as_tensor(np.asarray(ages), dtype=torch.float32).clamp(MIN_AGE, MIN_AGE + num_classes - 1)
    classes = torch.arange(num_classes, dtype=torch.float32) + MIN_AGE
    if sigma == 0:
        return (classes[None] == ages.round()[:, None]).float()
    density = torch.exp(-0.5 * ((classes[None] - ages[:, None]) / float(sigma)) ** 2)
    return density / density.sum(dim=1, keepdim=True)


__all__ = ["class_weights", "class_weighted_cross_entropy", "age_expectation", "soft_age_targets"]
