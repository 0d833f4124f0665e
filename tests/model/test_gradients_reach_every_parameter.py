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


def test_bf16_autocast_keeps_attention_and_logits_fp32(processor, examples, tiny_config):
    torch.manual_seed(0)
    model = UnifiedIO(tiny_config).train()
    batch = collate([processor.encode(e) for e in examples], tiny_config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, info = model(batch, return_logits=True)
        alone = [
            model(collate([processor.encode(examples[0])], tiny_config), return_logits=True)[1]["logits"][0]
        ]
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(x.dtype == torch.float32 for x in info["logits"])
    torch.testing.assert_close(info["logits"][0], alone[0], atol=1e-2, rtol=1e-2)
