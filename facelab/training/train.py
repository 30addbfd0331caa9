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
as one uint8 tensor (:func:`preload`); each batch is normalised with ImageNet mean/std.

The loop of one epoch (see :func:`train_one_epoch`) is the textbook one::

    for images, labels in batches(data, batch_size, shuffle=True):
        loss = objective(model(images), labels)
        loss.backward()
        optimizer.step(); optimizer.zero_grad()

with SAM's two steps in place of ``optimizer.step()`` where the paper uses SAM.
When a stage keeps the backbone frozen (stage A), x = backbone(image) never changes, so
it is computed once per image and the heads are trained on these features: the result
is the same as running the frozen backbone in every step, only much faster.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facelab import labels as L
from facelab.errors import DatasetFormatError, FacelabError, InvalidInputError
from facelab.losses import class_weighted_cross_entropy
from facelab.metrics import head_metrics
from facelab.models import MultiTaskNet
from facelab.sam import SAM

#: The integer labels the training loops know about (other item labels, e.g. "person", are metadata).
LABEL_KEYS = ("identity", "emotion", "age", "gender", "race")
#: Stored in a label tensor where an item has no value for that label.
UNKNOWN = -1


# =====================================================================================
# Data: preload faces once, then cut batches from one uint8 tensor
# =====================================================================================
class FaceTensors(Dataset):
    """Preloaded face crops: ``images`` uint8 (N, 3, S, S) RGB and integer ``labels``
    ({"emotion": LongTensor (N,), ...}; -1 = unknown).  ``label_names`` are the class
    vocabularies of the source dataset, ``skipped`` lists ``(index, reason)`` of items
    that could not be loaded.  Indexing gives ``(image tensor, labels dict)`` like any
    facelab dataset."""

    def __init__(self, images: torch.Tensor, labels: dict, label_names: dict | None = None, skipped=None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InvalidInputError(f"images must be a uint8 (N, 3, S, S) tensor, got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = {k: torch.as_tensor(v, dtype=torch.long) for k, v in labels.items()}
        for key, values in self.labels.items():
            if len(values) != len(images):
                raise InvalidInputError(f"label {key!r} has {len(values)} values for {len(images)} images")
        self.label_names = dict(label_names or {})
        self.skipped = list(skipped or [])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], {k: int(v[index]) for k, v in self.labels.items()}

    def subset(self, indices) -> "FaceTensors":
        indices = torch.as_tensor(indices, dtype=torch.long)
        return FaceTensors(self.images[indices], {k: v[indices] for k, v in self.labels.items()}, self.label_names)

    def __repr__(self) -> str:
        return f"<FaceTensors {len(self)} faces {self.image_size}px, labels {list(self.labels)}>"


def to_chw_uint8(image, where="image") -> torch.Tensor:
    """An H x W x 3 uint8 RGB numpy array or a 3 x H x W uint8 tensor -> 3 x H x W uint8 tensor."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInputError(f"{where}: expected an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise InvalidInputError(f"{where}: expected a 3 x H x W uint8 tensor, got {image.dtype} {tuple(image.shape)}")
        return image
    raise InvalidInputError(f"{where}: expected a numpy array or a torch tensor, got {type(image).__name__}")


def resize_faces(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (N, 3, H, W) or (3, H, W) images to size x size (bilinear, antialiased)."""
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.shape[-2:] != (size, size):
        chunks = []
        for chunk in batch.split(256):  # bounded float memory for large sets
            chunk = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)
            chunks.append(chunk.round().clamp_(0, 255).to(torch.uint8))
        batch = torch.cat(chunks)
    return batch[0] if single else batch


def _crop_box(image: torch.Tensor, box) -> torch.Tensor:
    """Tight crop of a (3, H, W) image to box (x1, y1, x2, y2), clipped to the image."""
    h, w = image.shape[-2:]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        raise InvalidInputError(f"face box {tuple(box)} lies outside the {w}x{h} image")
    return image[:, y1:y2, x1:x2]


class _ResizedFaces(Dataset):
    """Wraps a dataset: item i -> (index, uint8 S x S tensor or None, labels, error message)."""

    def __init__(self, dataset, size):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            image, labels = self.dataset[index]
            if not isinstance(labels, dict):
                raise InvalidInputError(f"item {index}: labels must be a dict such as {{'emotion': 3}}, "
                                        f"got {type(labels).__name__}")
            face = to_chw_uint8(image, where=f"item {index}")
            if isinstance(labels, dict) and labels.get("box") is not None:  # e.g. AffectNet's CSV face box
                face = _crop_box(face, labels["box"])
            return index, resize_faces(face, self.size), labels, None
        except FacelabError as exc:
            return index, None, None, f"{type(exc).__name__}: {exc}"


def _no_collate(item):
    """DataLoader(batch_size=None) hands over single items; keep them as they are."""
    return item


def _label_names_of(dataset) -> dict:
    names = getattr(dataset, "label_names", None)
    return {k: (list(v) if v is not None else None) for k, v in dict(names or {}).items()}


def preload(dataset, size: int, *, num_workers: int = 0, progress: bool = True, desc: str = "preload") -> FaceTensors:
    """Decode every face once, resize it to ``size`` x ``size`` and keep them all in one
    uint8 tensor (N, 3, S, S) (1/4 of the memory of float32), with the integer labels.

    Items that cannot be decoded are not silently dropped: they are listed in
    ``result.skipped`` as ``(index, reason)`` and counted in a warning.  If an item's labels
    carry a face ``box`` (AffectNet's CSV), the face is cropped to it first (tight crop).
    """
    if isinstance(dataset, FaceTensors):
        if dataset.image_size == size:
            return dataset
        return FaceTensors(resize_faces(dataset.images, size), dataset.labels, dataset.label_names, dataset.skipped)
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise DatasetFormatError(f"the dataset {dataset!r} is empty; nothing to train on")
    loader = torch.utils.data.DataLoader(_ResizedFaces(dataset, size), batch_size=None, num_workers=num_workers,
                                         collate_fn=_no_collate)
    faces, rows, skipped = [], [], []
    for index, face, labels, error in tqdm(loader, total=len(dataset), desc=desc, disable=not progress, leave=False):
        if error is not None:
            skipped.append((index, error))
            continue
        faces.append(face)
        rows.append(labels)
    if not faces:
        raise DatasetFormatError(f"none of the {len(dataset)} items could be loaded; first failure: {skipped[0][1]}")
    if skipped:
        import warnings

        warnings.warn(f"preload: {len(skipped)} of {len(dataset)} items could not be loaded and were skipped "
                      f"(see .skipped); first: {skipped[0]}", stacklevel=2)
    keys = [k for k in LABEL_KEYS if any(k in r for r in rows)]
    labels = {}
    for key in keys:
        values = [r.get(key) for r in rows]
        bad = [v for v in values if v is not None and not isinstance(v, (int, np.integer))]
        if bad:
            raise DatasetFormatError(f"label {key!r} must be an int, got {bad[0]!r}")
        labels[key] = torch.tensor([UNKNOWN if v is None else int(v) for v in values], dtype=torch.long)
    return FaceTensors(torch.stack(faces), labels, _label_names_of(dataset), skipped)


def normalize(images: torch.Tensor, mean=L.IMAGENET_MEAN, std=L.IMAGENET_STD) -> torch.Tensor:
    """uint8 RGB (N, 3, S, S) -> float, ``(image / 255 - mean) / std``, channels_last."""
    mean = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    x = (images.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def augment_faces(images: torch.Tensor, generator=None, *, flip: bool = True, shift: float = 0.06,
                  scale: float = 0.08, rotate: float = 10.0) -> torch.Tensor:
    """Random training augmentation of a uint8 batch (N, 3, S, S), as one tensor operation:
    a horizontal flip (probability 1/2), a shift of up to ``shift`` x S pixels, a zoom of
    1 +- ``scale`` and a rotation of up to +-``rotate`` degrees (one affine grid per image,
    ``grid_sample`` with border padding).  Small CNNs trained from random weights on a few
    thousand faces overfit without it; the random numbers come from ``generator`` so that
    a seeded run (and a resumed one) sees the same augmented images.
    """
    n = len(images)
    if n == 0:
        return images
    u = torch.rand(n, 5, generator=generator)
    angle = (u[:, 0] * 2 - 1) * rotate * torch.pi / 180
    zoom = 1 + (u[:, 1] * 2 - 1) * scale
    sign = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * sign, -sin, (u[:, 2] * 2 - 1) * shift * 2], 1),
                         torch.stack([sin * sign, cos, (u[:, 3] * 2 - 1) * shift * 2], 1)], 1)
    x = images.float()
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def batches(inputs: torch.Tensor, labels: dict, batch_size: int, *, shuffle: bool, generator=None, shard=(0, 1)):
    """Yield ``(inputs[idx], {key: labels[key][idx]})`` for consecutive chunks of a (shuffled)
    order.  ``generator`` (a seeded torch.Generator) makes the shuffling reproducible.

    ``shard=(rank, world_size)``: with several processes (DistributedDataParallel) every
    process draws the same order and keeps every world_size-th item of each batch, so
    together they see exactly the batches of a single process (a last batch with fewer
    items than processes is left out).  A last chunk of a single item joins the batch before
    it (BatchNorm cannot train on a batch of one), so every item is still used once.
    """
    rank, world = shard
    n = len(inputs)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for start, stop in zip(starts, starts[1:] + [n]):
        idx = order[start:stop]
        if world > 1:
            if len(idx) < world:
                break
            idx = idx[rank::world]
        yield inputs[idx], {key: values[idx] for key, values in labels.items()}


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
                    deadline=None, progress=True, desc="train", shard=(0, 1), augment=False, lr_at=None, step0=0):
    """One pass over the shuffled training data.  ``forward(batch_inputs) -> {head: logits}``.

    With SAM (``use_sam``) every step computes two gradients: at w (first_step moves to
    w + rho g/||g||) and at the perturbed weights (second_step restores w and updates it).
    Stops early (returns ``finished=False``) when ``deadline`` (time.monotonic) passes.
    ``shard=(rank, world_size)``: this process's share of every batch (see :func:`batches`).
    ``augment``: pass each batch of uint8 images through :func:`augment_faces` first.
    ``lr_at(step)``: the learning rate of the ``step``-th update of the stage (``step0`` = the
    updates before this epoch), set before every update; None keeps the optimizer's rate.
    """
    from tqdm.auto import tqdm

    total_loss, seen, correct, counted, finished = 0.0, 0, Counter(), Counter(), True
    bar = tqdm(total=len(inputs), desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    step = step0
    for batch_inputs, batch_labels in batches(inputs, labels, batch_size, shuffle=True, generator=generator,
                                              shard=shard):
        if deadline is not None and _all_agree_to_stop(time.monotonic() > deadline, shard):
            finished = False
            break
        if augment:
            batch_inputs = augment_faces(batch_inputs, generator)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        step += 1
        loss, stats = objective(forward(batch_inputs), batch_labels)
        loss.backward()
        if use_sam:
            optimizer.first_step(zero_grad=True)
            objective(forward(batch_inputs), batch_labels)[0].backward()
            optimizer.second_step(zero_grad=True)
        else:
            optimizer.step()
            optimizer.zero_grad()
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
        total_loss, seen, correct, counted = _sum_over_processes(total_loss, seen, correct, counted, objective.heads)
    result = {"loss": total_loss / max(seen, 1), "images": seen, "finished": finished}
    for head in objective.heads:
        result[f"train_{head}_acc"] = correct[head] / counted[head] if counted[head] else float("nan")
    return result


# =====================================================================================
# Several processes (torchrun + DistributedDataParallel)
# =====================================================================================
def setup_distributed(device=None):
    """(rank, world_size, device).  Under ``torchrun --nproc_per_node N`` (WORLD_SIZE > 1) this
    joins the process group (nccl on GPUs, gloo on CPUs) unless the script already did;
    otherwise it is (0, 1, device) and nothing happens."""
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return 0, 1, _device(device)
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def _all_agree_to_stop(stop: bool, shard) -> bool:
    """With several processes, stop when any of them wants to (they must stay in step)."""
    if shard[1] == 1:
        return stop
    import torch.distributed as dist

    flag = torch.tensor([1.0 if stop else 0.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _sum_over_processes(total_loss, seen, correct, counted, heads):
    import torch.distributed as dist

    numbers = torch.tensor([total_loss, seen] + [correct[h] for h in heads] + [counted[h] for h in heads],
                           dtype=torch.float64)
    dist.all_reduce(numbers)
    values = numbers.tolist()
    k = len(heads)
    correct = Counter({h: int(v) for h, v in zip(heads, values[2:2 + k])})
    counted = Counter({h: int(v) for h, v in zip(heads, values[2 + k:])})
    return values[0], int(values[1]), correct, counted


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

    def lr_at(self, steps_per_epoch: int):
        """step -> learning rate (None: constant ``lr``)."""
        if not self.cosine:
            return None
        total = max(1, self.epochs * steps_per_epoch)
        return lambda step: self.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def _make_optimizer(params, stage: Stage, rho: float):
    if stage.sam:
        return SAM(params, torch.optim.Adam, rho=rho, lr=stage.lr)
    return torch.optim.Adam(params, lr=stage.lr)


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def compute_features(model: MultiTaskNet, images: torch.Tensor, *, batch_size: int = 128, device="cpu",
                     progress: bool = False, desc: str = "features") -> torch.Tensor:
    """x = backbone(image) for preloaded uint8 images, in eval mode (float32, on CPU)."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    mean, std = model.preprocessing["mean"], model.preprocessing["std"]
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
        batch = normalize(images[start:start + batch_size].to(device), mean, std)
        chunks.append(model.features(batch).float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def _validate(model, forward, inputs, labels, objective, batch_size, top_l):
    """Metrics of every trained head on a validation set (see facelab.metrics.head_metrics)."""

    model.eval()
    outputs = {head: [] for head in objective.heads}
    with torch.inference_mode():
        for batch_inputs, _ in batches(inputs, {}, batch_size, shuffle=False):
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


def _clean(value):
    """numpy scalars -> Python numbers (for JSON and weights_only checkpoints)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def fit_stages(model: MultiTaskNet, task: str, train: FaceTensors, stages: list[Stage], objective: Objective, *,
               val: FaceTensors | None = None, batch_size: int = 64, rho: float = 0.05, seed: int = 0,
               device=None, max_seconds: float | None = None, checkpoint=None, resume=None,
               settings: dict | None = None, callback=None, progress: bool = True, top_l: int = 3,
               amp: bool | None = None) -> pd.DataFrame:
    """Run ``stages`` one after the other on preloaded data; the engine behind the three
    ``train_*`` functions.

    ``checkpoint``: path stem; after every epoch the weights (``.safetensors`` + ``.json``)
    and the training state (``.state.pt``: optimizer, epoch, RNG states) are saved there.
    ``resume``: a training state (or True: the one of ``checkpoint``); training continues
    exactly where it stopped, at the end of the last completed epoch (same
    weights as an uninterrupted run on CPU in deterministic mode).  ``max_seconds``: stop
    (mid-epoch) when the budget is spent.  ``callback(row)`` runs after every epoch.
    ``amp``: bfloat16 autocast (default: on for CUDA).  Under ``torchrun`` every process
    trains its share of each batch and DistributedDataParallel averages the gradients
    (BatchNorm layers normalise with each process's own share of the batch, as usual with DDP).
    """
    from facelab.checkpoints import load_training_state, save_checkpoint, save_training_state

    rank, world, device = setup_distributed(device)
    use_amp = device.type == "cuda" if amp is None else bool(amp)
    progress = progress and rank == 0
    model.to(device).channels_last()
    settings = _clean(dict(settings or {}))
    generator = torch.Generator().manual_seed(seed)  # the shuffling order
    history, first_stage, first_epoch, optimizer_state = [], 0, 0, None
    if resume is True:  # resume=True: from this run's own checkpoint
        resume = checkpoint
    if resume is not None and resume is not False:
        state = load_training_state(resume)
        if state.get("task") != task:
            raise InvalidInputError(f"{resume} is a training state of {state.get('task')!r}, not of {task!r}")
        model.load_state_dict(state["model"])
        history, first_stage, first_epoch = list(state["history"]), state["stage_index"], state["epoch"]
        optimizer_state = state["optimizer"]
        _set_rng_state(state["rng"], generator)
    deadline = time.monotonic() + max_seconds if max_seconds else None

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
        optimizer = _make_optimizer(params, stage, rho)
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
        forward = _distributed_wrapper(part, device) if world > 1 else part
        steps_per_epoch = -(-len(train_inputs) // batch_size)

        for epoch in range(start_epoch, stage.epochs):
            if deadline is not None and _all_agree_to_stop(time.monotonic() > deadline, (rank, world)):
                return _finish(model, history)
            started = time.monotonic()
            model.train()
            row = {"task": task, "stage": stage.name, "epoch": epoch + 1}
            row.update(train_one_epoch(
                forward, train_inputs, train.labels, objective, optimizer, batch_size=batch_size,
                generator=generator, use_sam=stage.sam, deadline=deadline, progress=progress,
                desc=f"{task} {stage.name} epoch {epoch + 1}/{stage.epochs}", shard=(rank, world),
                augment=stage.augment and stage.train_backbone, lr_at=stage.lr_at(steps_per_epoch),
                step0=epoch * steps_per_epoch))
            if val is not None:
                row.update(_validate(model, part, val_inputs, val.labels, objective, batch_size * 2, top_l))
            row["seconds"] = time.monotonic() - started
            row = _clean(row)
            history.append(row)
            if progress:
                _print_row(row)
            if checkpoint is not None and rank == 0:
                extra = {"training": settings, "last_epoch": row}
                save_checkpoint(model, checkpoint, extra_config=extra)
                if row["finished"]:  # resume points are whole epochs only
                    save_training_state(checkpoint, {
                        "task": task, "config": _checkpoint_config(model, extra), "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "stage_index": stage_index, "epoch": epoch + 1,
                        "rng": _rng_state(generator), "history": history, "settings": settings,
                    })
            if callback is not None:
                callback(row)
            if not row["finished"]:
                return _finish(model, history)
    return _finish(model, history)


def _finish(model: MultiTaskNet, history: list[dict]) -> pd.DataFrame:
    """After training: all weights trainable again (for whatever comes next), eval mode."""
    model.unfreeze_backbone()
    model.eval()
    return _history_frame(history)


def _distributed_wrapper(part: TrainedPart, device):
    """DistributedDataParallel around the trained part."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(part, device_ids=[device.index] if device.type == "cuda" else None)


def _checkpoint_config(model, extra):
    from facelab.checkpoints import checkpoint_config

    return checkpoint_config(model, extra)


def _print_row(row: dict) -> None:
    shown = {k: v for k, v in row.items() if k not in ("task", "finished", "images")}
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    print(f"[{row['task']}] {text}" + ("" if row["finished"] else " (stopped: max_seconds reached)"))


def _history_frame(history: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(history)
    if "train_acc" not in frame and len(frame):
        first = next((c for c in frame.columns if c.startswith("train_") and c.endswith("_acc")), None)
        if first is not None:
            frame.insert(frame.columns.get_loc(first), "train_acc", frame[first])
    return frame


def _pair(value, name):
    if isinstance(value, (int, float)):
        return value, value
    value = tuple(value)
    if len(value) != 2:
        raise InvalidInputError(f"{name} must be one value or two (stage A, stage B), got {value}")
    return value


def _common_settings(task, img_size, batch_size, crop, seed, extra):
    return {"task": task, "img_size": img_size, "batch_size": batch_size, "crop": crop, "seed": seed, **extra}


def _prepare(model, train_set, val_set, img_size, crop, num_workers, progress):
    img_size = int(img_size or model.preprocessing["image_size"])
    model.preprocessing.update(image_size=img_size, crop=crop)
    train = preload(train_set, img_size, num_workers=num_workers, progress=progress, desc="preload train")
    val = preload(val_set, img_size, num_workers=num_workers, progress=progress, desc="preload val") \
        if val_set is not None else None
    return img_size, train, val


def _require_labels(data: FaceTensors, key: str, what: str):
    if key not in data.labels or not bool((data.labels[key] >= 0).any()):
        raise DatasetFormatError(f"{what} needs items with a {key!r} label; this dataset has labels {list(data.labels)}")


def _num_classes(data: FaceTensors, key: str) -> tuple[int, list | None]:
    names = data.label_names.get(key)
    if names:
        return len(names), list(names)
    return int(data.labels[key].max()) + 1, None


# =====================================================================================
# The paper's three steps
# =====================================================================================
def train_identity(model: MultiTaskNet, train_set, *, epochs=(1, 10), img_size: int | None = None,
                   batch_size: int = 64, lr=(1e-3, 1e-4), sam=(True, False), rho: float = 0.05,
                   val_set=None, crop: str = "tight", seed: int = 0, device=None, max_seconds: float | None = None,
                   checkpoint=None, resume=None, callback=None, progress: bool = True,
                   num_workers: int = 0, amp: bool | None = None, augment: bool = False,
                   cosine: bool = False) -> pd.DataFrame:
    """Face-recognition pre-training (paper: VGGFace2, 8541 people).

    A new identity head with one output per training person (kept if the model already
    has one of that size).  Stage A: ``epochs[0]`` epochs, backbone frozen, head only, SAM
    around Adam with ``lr[0]``.  Stage B: ``epochs[1]`` epochs, all weights, ``lr[1]``
    (``sam[1]``: SAM in stage B too, off by default).  ``val_set`` (same people) is
    evaluated after every epoch.  ``crop`` records how the faces were cropped (by
    ``facelab prepare``).  ``augment``: random flips, shifts, zooms and small rotations of
    the faces in stage B (:func:`augment_faces`).  ``cosine``: stage B's learning rate decays
    from ``lr[1]`` to 0 along a half cosine.  Other options: see :func:`fit_stages`.
    """
    torch.manual_seed(seed)
    img_size, train, val = _prepare(model, train_set, val_set, img_size, crop, num_workers, progress)
    _require_labels(train, "identity", "train_identity")
    n, names = _num_classes(train, "identity")
    if model.head_sizes.get("identity") != n:
        model.add_head("identity", n, labels=names, replace=True)
    (ea, eb), (la, lb), (sa, sb) = _pair(epochs, "epochs"), _pair(lr, "lr"), _pair(sam, "sam")
    stages = [Stage("A", int(ea), la, train_backbone=False, sam=bool(sa)),
              Stage("B", int(eb), lb, train_backbone=True, sam=bool(sb), augment=bool(augment),
                    cosine=bool(cosine))]
    settings = _common_settings("identity", img_size, batch_size, crop, seed, {
        "stages": [asdict(s) for s in stages], "rho": rho, "num_identities": n, "train_images": len(train)})
    return fit_stages(model, "identity", train, stages, Objective({"identity": ("ce", None)}), val=val,
                      batch_size=batch_size, rho=rho, seed=seed, device=device, max_seconds=max_seconds,
                      checkpoint=checkpoint, resume=resume, settings=settings, callback=callback, progress=progress, amp=amp)


def train_attributes(model: MultiTaskNet, utk_set, *, heads=("age", "gender", "race"), epochs: int = 3,
                     img_size: int | None = None, batch_size: int = 64, lr: float = 1e-3, sam: bool = False,
                     rho: float = 0.05, race_weighted: bool = True, top_l: int = 3, val_set=None,
                     crop: str = "tight", seed: int = 0, device=None, max_seconds: float | None = None,
                     checkpoint=None, resume=None, callback=None, progress: bool = True,
                     num_workers: int = 0, amp: bool | None = None) -> pd.DataFrame:
    """Age, gender and race heads on the FROZEN identity backbone (paper: UTKFace; 3 epochs).

    gender: one FC layer on x, cross-entropy.  race: one FC layer on x, class-weighted
    cross-entropy of eq. (2) (``race_weighted=False``: plain).  age: a hidden FC layer + ReLU,
    then an FC layer over 100 age classes, cross-entropy; the reported validation MAE uses
    eq. (1) with ``top_l``.  The backbone (and any other head) does not change.
    """
    torch.manual_seed(seed)
    img_size, train, val = _prepare(model, utk_set, val_set, img_size, crop, num_workers, progress)
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
    stages = [Stage("heads", int(epochs), lr, train_backbone=False, sam=bool(sam))]
    settings = _common_settings("attributes", img_size, batch_size, crop, seed, {
        "stages": [asdict(s) for s in stages], "rho": rho, "heads": list(heads),
        "race_weighted": race_weighted, "train_images": len(train),
        "race_counts": losses.get("race", (None, None))[1]})
    return fit_stages(model, "attributes", train, stages, Objective(losses), val=val, batch_size=batch_size,
                      rho=rho, seed=seed, device=device, max_seconds=max_seconds, checkpoint=checkpoint,
                      resume=resume, settings=settings, callback=callback, progress=progress, top_l=top_l, amp=amp)


def train_emotion(model: MultiTaskNet, train_set, *, weighted: bool = True, epochs=(3, 10),
                  img_size: int | None = None, batch_size: int = 64, lr=(1e-3, 1e-4), sam=(True, False),
                  rho: float = 0.05, val_set=None, crop: str = "tight", seed: int = 0, device=None,
                  max_seconds: float | None = None, checkpoint=None, resume=None, callback=None,
                  progress: bool = True, num_workers: int = 0, amp: bool | None = None, augment: bool = False,
                   cosine: bool = False) -> pd.DataFrame:
    """Emotion fine-tuning (paper: AffectNet, C_e = 8 or 7 classes).

    A new emotion head with C_e outputs (C_e from the dataset's emotion vocabulary).
    Stage A: ``epochs[0]`` epochs, the rest frozen, SAM around Adam, ``lr[0]``.  Stage B:
    ``epochs[1]`` epochs, all weights, ``lr[1]``.  Loss: the class-weighted cross-entropy of
    eq. (2) with N_c counted on ``train_set`` (``weighted=False``: plain cross-entropy, for
    the comparison).  ``epochs=(3, 0)`` trains only a linear head on frozen identity features.
    ``augment``: random flips, shifts, zooms and rotations in stage B (:func:`augment_faces`).
    ``cosine``: stage B's learning rate decays from ``lr[1]`` to 0 along a half cosine.
    """
    torch.manual_seed(seed)
    img_size, train, val = _prepare(model, train_set, val_set, img_size, crop, num_workers, progress)
    _require_labels(train, "emotion", "train_emotion")
    n, names = _num_classes(train, "emotion")
    model.reset_emotion_head(n, labels=names)
    counts = class_counts(train.labels["emotion"], n)
    loss = ("weighted", counts) if weighted else ("ce", None)
    (ea, eb), (la, lb), (sa, sb) = _pair(epochs, "epochs"), _pair(lr, "lr"), _pair(sam, "sam")
    stages = [Stage("A", int(ea), la, train_backbone=False, sam=bool(sa)),
              Stage("B", int(eb), lb, train_backbone=True, sam=bool(sb), augment=bool(augment),
                    cosine=bool(cosine))]
    settings = _common_settings("emotion", img_size, batch_size, crop, seed, {
        "stages": [asdict(s) for s in stages], "rho": rho, "weighted": weighted, "class_counts": counts,
        "train_images": len(train)})
    return fit_stages(model, "emotion", train, stages, Objective({"emotion": loss}), val=val,
                      batch_size=batch_size, rho=rho, seed=seed, device=device, max_seconds=max_seconds,
                      checkpoint=checkpoint, resume=resume, settings=settings, callback=callback, progress=progress, amp=amp)


__all__ = [
    "FaceTensors", "preload", "normalize", "resize_faces", "to_chw_uint8", "batches", "Objective", "class_counts",
    "train_one_epoch", "augment_faces", "Stage", "fit_stages", "compute_features", "train_identity", "train_attributes",
    "train_emotion",
]
