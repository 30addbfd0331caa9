"""The training loop: stages of epochs over preloaded faces, on torch's DataLoader.

One epoch (:func:`train_one_epoch`) is the textbook loop::

    for images, labels in loader:                       # DataLoader over the preloaded faces
        loss = objective(model(images), labels)         # sum of the trained heads' losses
        loss.backward()
        optimizer.step(); optimizer.zero_grad()          # SAM: first_step / second_step instead
        scheduler.step()                                 # the cosine learning rate, if any

:func:`fit_stages` runs the stages of a schedule (stage A: heads only on the frozen backbone;
stage B: all weights), validates after every epoch, and saves a checkpoint and a training state
from which a run resumes exactly.  When a stage keeps the backbone frozen, x = backbone(image)
never changes, so it is computed once per image and the heads are trained on these features:
the result is the same as running the frozen backbone in every step, only much faster.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Sampler, TensorDataset
from tqdm.auto import tqdm

from facelab import labels as L
from facelab.checkpoints import checkpoint_config, load_training_state, save_checkpoint, save_training_state
from facelab.data.tensors import FaceTensors, normalize
from facelab.errors import DatasetFormatError, InvalidInputError
from facelab.losses import class_weighted_cross_entropy
from facelab.metrics import head_metrics
from facelab.models import MultiTaskNet
from facelab.sam import SAM
from facelab.training.augment import augment_faces
from facelab.training.distributed import (all_agree_to_stop, distributed_wrapper, setup_distributed,
                                          sum_over_processes)


# =====================================================================================
# Batches: a DataLoader whose batch sampler shuffles with a seeded generator
# =====================================================================================
class ShardedBatches(Sampler):
    """The item indices of one epoch, cut into batches of ``batch_size``.

    ``generator`` (a seeded torch.Generator) makes the shuffling reproducible.  A last chunk
    of a single item joins the batch before it (BatchNorm cannot train on a batch of one), so
    every item is still used once.  ``shard=(rank, world_size)``: with several processes
    (DistributedDataParallel) every process draws the same order and keeps every
    world_size-th item of each batch, so together they take exactly the steps of a single
    process (a last batch with fewer items than processes is left out).  Unlike torch's
    DistributedSampler, which gives each process its own batches, this keeps N processes
    equal to one.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, generator=None, shard=(0, 1)):
        self.n, self.batch_size, self.shuffle, self.generator, self.shard = n, batch_size, shuffle, generator, shard

    def _starts(self) -> list[int]:
        starts = list(range(0, self.n, self.batch_size))
        if len(starts) > 1 and self.n - starts[-1] == 1:
            starts.pop()
        return starts

    def __len__(self) -> int:
        """The number of updates in one epoch."""
        starts, world = self._starts(), self.shard[1]
        if starts and world > 1 and self.n - starts[-1] < world:
            return len(starts) - 1
        return len(starts)

    def __iter__(self):
        rank, world = self.shard
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        starts = self._starts()
        for start, stop in zip(starts, starts[1:] + [self.n]):
            idx = order[start:stop]
            if world > 1:
                if len(idx) < world:
                    break
                idx = idx[rank::world]
            yield idx.tolist()


def face_loader(inputs: torch.Tensor, labels: dict, batch_size: int, *, shuffle: bool, generator=None,
                shard=(0, 1)) -> DataLoader:
    """A DataLoader over in-memory inputs (uint8 faces, or features x) and their label tensors
    that yields ``(inputs[idx], {key: labels[key][idx]})`` batches (see :class:`ShardedBatches`)."""
    keys = list(labels)

    def collate(items):
        columns = [torch.stack(column) for column in zip(*items)]
        return columns[0], dict(zip(keys, columns[1:]))

    sampler = ShardedBatches(len(inputs), batch_size, shuffle=shuffle, generator=generator, shard=shard)
    # The loader's own generator only seeds worker processes (there are none); it is kept apart
    # from the shuffling generator so that the shuffled order depends on the seed alone.
    return DataLoader(TensorDataset(inputs, *labels.values()), batch_sampler=sampler, collate_fn=collate,
                      generator=torch.Generator().manual_seed(0))


# =====================================================================================
# Objectives: which heads a step trains, and their losses
# =====================================================================================
class Objective:
    """Sum of the losses of the heads being trained.

    ``losses`` maps head name -> ("ce" | "weighted", class_counts or None);
    targets equal to -1 (unknown) are left out of that head's loss.
    The "age" head's targets are ages in years, turned into age classes here.
    """

    def __init__(self, losses: dict):
        self.losses = losses

    @property
    def heads(self):
        return list(self.losses)

    def targets(self, head: str, labels: dict) -> torch.Tensor:
        target = labels[head]
        if head == "age":  # years -> class index (age k + 1 is class k), ages clipped to 1..100
            known = target >= 0
            target = torch.where(known, target.clamp(L.MIN_AGE, L.MAX_AGE) - L.MIN_AGE, target)
        return target

    def __call__(self, outputs: dict, labels: dict):
        """-> (total loss, {head: (number correct, number counted)})."""
        total, stats = 0.0, {}
        for head, (kind, counts) in self.losses.items():
            target = self.targets(head, labels).to(outputs[head].device)
            known = target >= 0
            logits, target = outputs[head][known], target[known]
            if len(target) == 0:
                continue
            if kind == "weighted":
                loss = class_weighted_cross_entropy(logits, target, counts)  # eq. (2)
            else:
                loss = F.cross_entropy(logits.float(), target)
            total = total + loss
            stats[head] = (int((logits.argmax(1) == target).sum()), len(target))
        if not isinstance(total, torch.Tensor):  # no known target in this batch: a zero loss with a graph
            total = sum(outputs[h].sum() * 0.0 for h in self.losses)
        return total, stats


def class_counts(values: torch.Tensor, num_classes: int) -> list[int]:
    """N_c for eq. (2): how many training items have class c (unknown labels ignored)."""
    values = values[values >= 0]
    if len(values) and int(values.max()) >= num_classes:
        raise DatasetFormatError(f"label {int(values.max())} is out of range for {num_classes} classes")
    return torch.bincount(values, minlength=num_classes).tolist()


# =====================================================================================
# One epoch
# =====================================================================================
def train_one_epoch(forward, inputs, labels, objective, optimizer, *, batch_size, generator, use_sam,
                    deadline=None, progress=True, desc="train", shard=(0, 1), augment=False, scheduler=None):
    """One pass over the shuffled training data.  ``forward(batch_inputs) -> {head: logits}``.

    With SAM (``use_sam``) every step computes two gradients: at w (first_step moves to
    w + rho g/||g||) and at the perturbed weights (second_step restores w and updates it).
    Stops early (returns ``finished=False``) when ``deadline`` (time.monotonic) passes.
    ``shard=(rank, world_size)``: this process's share of every batch (see :class:`ShardedBatches`).
    ``augment``: pass each batch of uint8 images through :func:`augment_faces` first.
    ``scheduler``: a torch lr_scheduler stepped after every update (None keeps the rate).
    """
    total_loss, seen, correct, counted, finished = 0.0, 0, Counter(), Counter(), True
    bar = tqdm(total=len(inputs), desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    for batch_inputs, batch_labels in face_loader(inputs, labels, batch_size, shuffle=True, generator=generator,
                                                  shard=shard):
        if deadline is not None and all_agree_to_stop(time.monotonic() > deadline, shard):
            finished = False
            break
        if augment:
            batch_inputs = augment_faces(batch_inputs, generator)
        loss, stats = objective(forward(batch_inputs), batch_labels)
        loss.backward()
        if use_sam:
            optimizer.first_step(zero_grad=True)
            objective(forward(batch_inputs), batch_labels)[0].backward()
            optimizer.second_step(zero_grad=True)
        else:
            optimizer.step()
            optimizer.zero_grad()
        if scheduler is not None:
            scheduler.step()
        n = len(batch_inputs)
        total_loss += float(loss.detach()) * n
        seen += n
        for head, (ok, count) in stats.items():
            correct[head] += ok
            counted[head] += count
        bar.update(n * shard[1])
        bar.set_postfix(loss=f"{total_loss / seen:.3f}")
    bar.close()
    if shard[1] > 1:  # add up the counts of all processes
        total_loss, seen, correct, counted = sum_over_processes(total_loss, seen, correct, counted, objective.heads)
    result = {"loss": total_loss / max(seen, 1), "images": seen, "finished": finished}
    for head in objective.heads:
        result[f"train_{head}_acc"] = correct[head] / counted[head] if counted[head] else float("nan")
    return result


class TrainedPart(torch.nn.Module):
    """What one stage trains: the backbone (unless frozen) and the chosen heads.

    ``forward`` takes uint8 images -- or, when the backbone is frozen, the cached features
    x -- and returns {head: logits}.  It shares its layers with the model (nothing is
    copied); it exists so that DistributedDataParallel can wrap exactly the trained part.
    """

    def __init__(self, model: MultiTaskNet, heads, *, from_features: bool, device, amp: bool = False):
        super().__init__()
        self.backbone = None if from_features else model.backbone
        self.heads = torch.nn.ModuleDict({head: model.heads[head] for head in heads})
        self.mean, self.std = model.preprocessing["mean"], model.preprocessing["std"]
        self.device, self.amp = torch.device(device), amp

    def forward(self, inputs):
        inputs = inputs.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            x = inputs if self.backbone is None else self.backbone(normalize(inputs, self.mean, self.std))
            return {head: layer(x) for head, layer in self.heads.items()}


# =====================================================================================
# Stages
# =====================================================================================
@dataclass
class Stage:
    """One stage of a schedule: how long, how fast, what is trained, with or without SAM."""

    name: str
    epochs: int
    lr: float
    train_backbone: bool
    sam: bool
    augment: bool = False  # random flips/shifts/zooms (only when images go through the backbone)
    cosine: bool = False   # learning rate from ``lr`` down to 0 along a half cosine over the stage

    def lr_factor(self, steps_per_epoch: int):
        """step -> the factor of ``lr`` at that update (None: constant)."""
        if not self.cosine:
            return None
        total = max(1, self.epochs * steps_per_epoch)
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    def lr_at(self, steps_per_epoch: int):
        """step -> learning rate (None: constant ``lr``)."""
        factor = self.lr_factor(steps_per_epoch)
        return None if factor is None else (lambda step: self.lr * factor(step))

    def optimizer(self, params, rho: float):
        """Adam, wrapped in SAM when the stage uses it."""
        if self.sam:
            return SAM(params, torch.optim.Adam, rho=rho, lr=self.lr)
        return torch.optim.Adam(params, lr=self.lr)

    def scheduler(self, optimizer, steps_per_epoch: int, first_step: int = 0):
        """The stage's cosine learning rate as a torch ``LambdaLR`` starting at update ``first_step``
        (a resumed stage continues its schedule), or None for a constant rate."""
        factor = self.lr_factor(steps_per_epoch)
        if factor is None:
            return None
        base = getattr(optimizer, "base_optimizer", optimizer)  # SAM updates through its base optimizer
        for group in base.param_groups:
            group["initial_lr"] = self.lr
        return LambdaLR(base, lambda step: factor(step + first_step))


@torch.inference_mode()
def compute_features(model: MultiTaskNet, images: torch.Tensor, *, batch_size: int = 128, device="cpu",
                     progress: bool = False, desc: str = "features") -> torch.Tensor:
    """x = backbone(image) for preloaded uint8 images, in eval mode (float32, on CPU)."""
    was_training = model.training
    model.eval()
    mean, std = model.preprocessing["mean"], model.preprocessing["std"]
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
        batch = normalize(images[start:start + batch_size].to(device), mean, std)
        chunks.append(model.features(batch).float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def validate(model, forward, inputs, labels, objective, batch_size, top_l):
    """Metrics of every trained head on a validation set (see facelab.metrics.head_metrics)."""
    model.eval()
    outputs = {head: [] for head in objective.heads}
    with torch.inference_mode():
        for batch_inputs, _ in face_loader(inputs, {}, batch_size, shuffle=False):
            logits = forward(batch_inputs)
            for head in objective.heads:
                outputs[head].append(logits[head].float().cpu())
    metrics = {}
    for head in objective.heads:
        if head not in labels:
            continue
        m = head_metrics(head, torch.cat(outputs[head]).numpy(), labels[head].numpy(), top_l=top_l)
        metrics.update({f"val_{head}_{k}": v for k, v in m.items() if np.isscalar(v)})
    return metrics


def _rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain(value):
    """numpy scalars -> Python numbers (for JSON and weights_only checkpoints)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def fit_stages(model: MultiTaskNet, task: str, train: FaceTensors, stages: list[Stage], objective: Objective,
               config, *, val: FaceTensors | None = None, settings: dict | None = None) -> pd.DataFrame:
    """Run ``stages`` one after the other on preloaded data; the engine behind the three
    ``train_*`` functions.  ``config`` is a :class:`facelab.training.config.TrainConfig`.

    ``config.checkpoint``: path stem; after every epoch the weights (``.safetensors`` + ``.json``)
    and the training state (``.state.pt``: optimizer, epoch, RNG states) are saved there.
    ``config.resume``: a training state (or True: the one of ``checkpoint``); training continues
    exactly where it stopped, at the end of the last completed epoch (same weights as an
    uninterrupted run on CPU in deterministic mode).  ``config.max_seconds``: stop (mid-epoch)
    when the budget is spent.  ``config.callback(row)`` runs after every epoch.  ``config.amp``:
    bfloat16 autocast (default: on for CUDA).  Under ``torchrun`` every process trains its share
    of each batch and DistributedDataParallel averages the gradients (BatchNorm layers normalise
    with each process's own share of the batch, as usual with DDP).
    """
    rank, world, device = setup_distributed(config.device)
    use_amp = device.type == "cuda" if config.amp is None else bool(config.amp)
    progress = config.progress and rank == 0
    batch_size = config.batch_size
    model.to(device).channels_last()
    settings = plain(dict(settings or {}))
    generator = torch.Generator().manual_seed(config.seed)  # the shuffling order (and the augmentation)
    history, first_stage, first_epoch, optimizer_state = [], 0, 0, None
    resume = config.checkpoint if config.resume is True else config.resume
    if resume is not None and resume is not False:
        state = load_training_state(resume)
        if state.get("task") != task:
            raise InvalidInputError(f"{resume} is a training state of {state.get('task')!r}, not of {task!r}")
        model.load_state_dict(state["model"])
        history, first_stage, first_epoch = list(state["history"]), state["stage_index"], state["epoch"]
        optimizer_state = state["optimizer"]
        _set_rng_state(state["rng"], generator)
    deadline = time.monotonic() + config.max_seconds if config.max_seconds else None

    for stage_index, stage in enumerate(stages):
        start_epoch = first_epoch if stage_index == first_stage else 0
        if stage_index < first_stage or start_epoch >= stage.epochs:
            continue
        # -- what is trained in this stage
        if stage.train_backbone:
            model.unfreeze_backbone()
            params = list(model.backbone.parameters())
        else:
            model.freeze_backbone()
            params = []
        for head in objective.heads:
            params += list(model.heads[head].parameters())
        optimizer = stage.optimizer(params, config.rho)
        if optimizer_state is not None and stage_index == first_stage and start_epoch > 0:
            optimizer.load_state_dict(optimizer_state)

        # -- what the heads see: images through the backbone, or (frozen backbone) cached features x
        if stage.train_backbone:
            train_inputs, val_inputs = train.images, val.images if val is not None else None
        else:
            train_inputs = compute_features(model, train.images, device=device, progress=progress,
                                            desc=f"{task} {stage.name}: features x")
            val_inputs = compute_features(model, val.images, device=device) if val is not None else None
        part = TrainedPart(model, objective.heads, from_features=not stage.train_backbone, device=device,
                           amp=use_amp)
        forward = distributed_wrapper(part, device) if world > 1 else part
        steps_per_epoch = len(ShardedBatches(len(train_inputs), batch_size, shuffle=False, shard=(rank, world)))
        scheduler = stage.scheduler(optimizer, steps_per_epoch, first_step=start_epoch * steps_per_epoch)

        for epoch in range(start_epoch, stage.epochs):
            if deadline is not None and all_agree_to_stop(time.monotonic() > deadline, (rank, world)):
                return _finish(model, history)
            started = time.monotonic()
            model.train()
            row = {"task": task, "stage": stage.name, "epoch": epoch + 1}
            row.update(train_one_epoch(
                forward, train_inputs, train.labels, objective, optimizer, batch_size=batch_size,
                generator=generator, use_sam=stage.sam, deadline=deadline, progress=progress,
                desc=f"{task} {stage.name} epoch {epoch + 1}/{stage.epochs}", shard=(rank, world),
                augment=stage.augment and stage.train_backbone, scheduler=scheduler))
            if val is not None:
                row.update(validate(model, part, val_inputs, val.labels, objective, batch_size * 2, config.top_l))
            row["seconds"] = time.monotonic() - started
            row = plain(row)
            history.append(row)
            if progress:
                _print_row(row)
            if config.checkpoint is not None and rank == 0:
                extra = {"training": settings, "last_epoch": row}
                save_checkpoint(model, config.checkpoint, extra_config=extra)
                if row["finished"]:  # resume points are whole epochs only
                    save_training_state(config.checkpoint, {
                        "task": task, "config": checkpoint_config(model, extra), "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "stage_index": stage_index, "epoch": epoch + 1,
                        "rng": _rng_state(generator), "history": history, "settings": settings,
                    })
            if config.callback is not None:
                config.callback(row)
            if not row["finished"]:
                return _finish(model, history)
    return _finish(model, history)


def _finish(model: MultiTaskNet, history: list[dict]) -> pd.DataFrame:
    """After training: all weights trainable again (for whatever comes next), eval mode."""
    model.unfreeze_backbone()
    model.eval()
    return history_frame(history)


def _print_row(row: dict) -> None:
    shown = {k: v for k, v in row.items() if k not in ("task", "finished", "images")}
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    print(f"[{row['task']}] {text}" + ("" if row["finished"] else " (stopped: max_seconds reached)"))


def history_frame(history: list[dict]) -> pd.DataFrame:
    """The per-epoch rows of a training run as a table (with ``train_acc`` = the first head's accuracy)."""
    frame = pd.DataFrame(history)
    if "train_acc" not in frame and len(frame):
        first = next((c for c in frame.columns if c.startswith("train_") and c.endswith("_acc")), None)
        if first is not None:
            frame.insert(frame.columns.get_loc(first), "train_acc", frame[first])
    return frame


__all__ = ["ShardedBatches", "face_loader", "Objective", "class_counts", "train_one_epoch", "TrainedPart", "Stage",
           "compute_features", "validate", "fit_stages", "history_frame"]
