"""Several processes: ``torchrun --nproc_per_node N`` with DistributedDataParallel.

Every process draws the same shuffled order and trains every N-th item of each batch
(:class:`facelab.training.loop.ShardedBatches`), DistributedDataParallel averages the gradients,
so N processes take the same steps as one process with the whole batch.
"""
from __future__ import annotations

import os
from collections import Counter

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from facelab.models import resolve_device


def setup_distributed(device=None):
    """(rank, world_size, device).  Under ``torchrun --nproc_per_node N`` (WORLD_SIZE > 1) this
    joins the process group (nccl on GPUs, gloo on CPUs) unless the script already did;
    otherwise it is (0, 1, device) and nothing happens."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return 0, 1, resolve_device(device)
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


def all_agree_to_stop(stop: bool, shard) -> bool:
    """With several processes, stop when any of them wants to (they must stay in step)."""
    if shard[1] == 1:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def sum_over_processes(total_loss, seen, correct, counted, heads):
    """Add up one epoch's loss and counts over all processes."""
    numbers = torch.tensor([total_loss, seen] + [correct[h] for h in heads] + [counted[h] for h in heads],
                           dtype=torch.float64)
    dist.all_reduce(numbers)
    values = numbers.tolist()
    k = len(heads)
    correct = Counter({h: int(v) for h, v in zip(heads, values[2:2 + k])})
    counted = Counter({h: int(v) for h, v in zip(heads, values[2 + k:])})
    return values[0], int(values[1]), correct, counted


def distributed_wrapper(part: torch.nn.Module, device):
    """DistributedDataParallel around the trained part."""
    return DistributedDataParallel(part, device_ids=[device.index] if device.type == "cuda" else None)


__all__ = ["setup_distributed", "all_agree_to_stop", "sum_over_processes", "distributed_wrapper"]
