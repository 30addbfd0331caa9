"""Training augmentation of face batches, as one batched tensor operation."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


__all__ = ["augment_faces"]
