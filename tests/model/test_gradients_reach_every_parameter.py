"""Issue 4: one step of the tiny config sends a gradient to every parameter."""

from __future__ import annotations

import torch

from model.modeling import UnifiedIO
from model.packing import collate


def test_gradients_reach_every_parameter(processor, examples, tiny_config):
    torch.manual_seed(0)
    model = UnifiedIO(tiny_config).train()
    loss, info = model(collate([processor.encode(e) for e in examples], tiny_config))
    assert torch.isfinite(loss)
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, f"no gradient reached {dead}"
    assert {"loss/text", "loss/action"} <= set(info) and info["per_example_loss"].shape == (len(examples),)

