"""An exponential moving average of the weights (Polyak averaging), the weights a checkpoint exports.

Behaviour cloning evaluates the weights, not the loss: from one step to the next the rollouts of
a cloned policy can swing by tens of points while the loss barely moves, and an average over the
last few hundred steps is the usual cure (Diffusion Policy, Chi et al. 2023, keeps one). The
average starts as the weights after the first step and follows the trained ones with a decay that ramps up
over the first steps, ``min(decay, (1 + n) / (10 + n))`` after n updates, so that the start of a
short run does not linger in it.

Training itself runs on the raw weights; ``averaged()`` swaps the average in while a checkpoint's
weights are written (training/checkpoint.py), and the trainer state keeps both, so a resumed run
continues the same average.
"""

from __future__ import annotations

import contextlib
import math

import torch


class WeightEMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not (math.isfinite(decay) and 0.0 < decay < 1.0):
            raise ValueError(f"optim.ema_decay must be in (0, 1) (0 turns the average off), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow: list[torch.Tensor] | None = None  # made at the first update, on the params' device
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the weights after an optimiser step."""
        if self.shadow is None:
            self.shadow = [p.detach().clone() for p in self.params]
        self.updates += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self.current_decay())

    @contextlib.contextmanager
    def averaged(self):
        """The model holds the averaged weights inside the block, its own ones again after it."""
        if self.shadow is None:  # no step yet: the average is the weights themselves
            yield
            return
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw):
                    p.copy_(r)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        shadow = state.get("shadow")
        if shadow is not None and len(shadow) != len(self.params):
            raise ValueError(
                f"the checkpoint's weight average holds {len(shadow)} tensors, the model has "
                f"{len(self.params)} trainable parameters"
            )
        self.updates = int(state.get("updates", 0))
        if shadow is not None:
            self.shadow = [s.to(p.device, p.dtype) for s, p in zip(shadow, self.params)]
