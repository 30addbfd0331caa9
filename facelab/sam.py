"""Sharpness-Aware Minimisation (SAM), used by the paper around Adam.

Plain gradient descent looks for weights w with a small loss L(w).  SAM looks for weights
whose whole *neighbourhood* has a small loss, which tends to generalise better.  One SAM
update needs two gradients:

1. ``first_step``:  g = grad L(w).  Move to the (approximately) worst nearby point
   ``w_adv = w + e``,  with  ``e = rho * g / ||g||``  (||g|| = the L2 norm over *all* weights).
2. Compute the gradient again, now at w_adv:  g_adv = grad L(w_adv).
3. ``second_step``: go back to w, then let the base optimizer (SGD, Adam, ...) take its
   usual step *with g_adv* instead of g.

With SGD as the base optimizer: ``w_new = w - lr * grad L(w + rho * g / ||g||)``.

Usage in a training loop::

    optimizer = SAM(model.parameters(), torch.optim.Adam, rho=0.05, lr=1e-3)
    loss_fn(model(x), y).backward()
    optimizer.first_step(zero_grad=True)
    loss_fn(model(x), y).backward()
    optimizer.second_step(zero_grad=True)

or, equivalently, ``optimizer.step(closure)`` where ``closure()`` computes the loss and
calls ``backward()``.
"""
from __future__ import annotations

import torch

from facelab.errors import InvalidInputError


class SAM(torch.optim.Optimizer):
    """Wrap any torch optimizer class ``base_optimizer_cls`` (SGD, Adam, ...) with SAM.

    ``rho`` is the radius of the neighbourhood (0.05 in the paper's reference code);
    ``**kwargs`` go to the base optimizer (``lr=1e-3`` ...).
    """

    def __init__(self, params, base_optimizer_cls, rho: float = 0.05, **kwargs):
        if rho < 0:
            raise InvalidInputError(f"SAM's rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer_cls(self.param_groups, **kwargs)
        # SAM and its base optimizer share the same parameter groups (and so the same lr).
        self.param_groups = self.base_optimizer.param_groups

    def _gradient_norm(self) -> torch.Tensor:
        """||g||: the L2 norm of the gradient of all parameters together."""
        norms = [p.grad.detach().norm(2) for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not norms:
            return torch.tensor(0.0)
        return torch.stack(norms).norm(2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Step 1: w -> w + rho * g / ||g||  (remember w, to come back in the second step)."""
        grad_norm = self._gradient_norm()
        for group in self.param_groups:
            scale = group["rho"] / (grad_norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.state[p]["w"] = p.detach().clone()
                p.add_(p.grad * scale.to(p.device))
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Step 3: restore w, then take the base optimizer's step with the gradient that
        was computed at the perturbed weights."""
        for group in self.param_groups:
            for p in group["params"]:
                if "w" in self.state[p]:
                    p.copy_(self.state[p].pop("w"))
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure=None):
        """One full SAM update.  ``closure()`` must compute the loss and call ``backward()``;
        it is called twice (at w and at the perturbed weights).  Returns the loss at w."""
        if closure is None:
            raise InvalidInputError(
                "SAM needs two gradients per update: call step(closure) with a closure that computes "
                "the loss and calls backward(), or call first_step() and second_step() yourself"
            )
        with torch.enable_grad():
            self.zero_grad()
            loss = closure()
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step(zero_grad=True)
        return loss

    # The base optimizer holds the real state (e.g. Adam's moments): save and load *its* state.
    def state_dict(self):
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups


__all__ = ["SAM"]
