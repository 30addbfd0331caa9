"""How a network is trained, in one object: :class:`TrainConfig`.

The paper's three steps share it (:mod:`facelab.training.train`); each has its defaults
(:data:`IDENTITY`, :data:`ATTRIBUTES`, :data:`EMOTION`) and takes changes as keywords::

    train_emotion(model, affectnet, epochs=(1, 6), lr=(1e-3, 2e-3))        # the defaults, two changed
    train_emotion(model, affectnet, TrainConfig(epochs=(1, 6), seed=3))     # a whole config
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from facelab.errors import InvalidInputError


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.  Two-stage settings (``epochs``, ``lr``, ``sam``) take one
    value or a pair (stage A: new heads on the frozen backbone, stage B: all weights)."""

    # the schedule (the paper: stage A 1-3 epochs with SAM around Adam, stage B all weights)
    epochs: Any = (1, 10)
    lr: Any = (1e-3, 1e-4)
    sam: Any = (True, False)
    rho: float = 0.05               # SAM's neighbourhood radius
    batch_size: int = 64
    augment: bool = False           # random flips, shifts, zooms, rotations in stage B (augment_faces)
    cosine: bool = False            # stage B's learning rate decays to 0 along a half cosine
    # the faces
    img_size: int | None = None     # None: the model's own input size
    crop: str = "tight"             # how the faces were cropped (recorded in the checkpoint)
    num_workers: int = 0            # DataLoader workers for decoding the faces once
    # the run
    seed: int = 0
    device: Any = None              # None: the GPU if there is one
    amp: bool | None = None         # bfloat16 autocast; None: on for CUDA
    max_seconds: float | None = None
    top_l: int = 3                  # L of the age expectation, eq. (1), in the validation MAE
    # bookkeeping
    checkpoint: Any = None          # path stem: weights and a training state after every epoch
    resume: Any = None              # a training state, or True: the one of ``checkpoint``
    callback: Callable | None = None
    progress: bool = True

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes``; an unknown name is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidInputError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def per_stage(self, name: str) -> tuple:
        """A two-stage setting as (stage A, stage B)."""
        value = getattr(self, name)
        if isinstance(value, (int, float, bool)):
            return value, value
        value = tuple(value)
        if len(value) != 2:
            raise InvalidInputError(f"{name} must be one value or two (stage A, stage B), got {value}")
        return value


#: The paper's identity pre-training: 1 epoch of a new head with SAM, then 10 of all weights.
IDENTITY = TrainConfig()
#: Age, gender and race heads on the frozen backbone: 3 epochs, Adam.
ATTRIBUTES = TrainConfig(epochs=3, lr=1e-3, sam=False)
#: Emotion fine-tuning: 3 epochs of a new head with SAM, then 10 of all weights.
EMOTION = TrainConfig(epochs=(3, 10))


__all__ = ["TrainConfig", "IDENTITY", "ATTRIBUTES", "EMOTION"]
