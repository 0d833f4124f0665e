"""DESIGN.md invariant: KV-cache decoding gives the same tokens and logits as full recomputation."""

from __future__ import annotations

import pytest
import torch

from model.generation import generate
from model.packing import collate


@pytest.mark.parametrize("target", ["text", "action"])
def test_kv_cache_matches_full_recompute(tiny_model, processor, examples, tiny_config, target):
    batch = collate([processor.encode_inputs(e, target) for e in examples], tiny_config, packed=False)
    kw = dict(max_new_tokens=16) if target == "text" else dict(num_tokens=16)
    cached, cached_logits = generate(tiny_model, batch, target, use_cache=True, return_logits=True, **kw)
    full, full_logits = generate(tiny_model, batch, target, use_cache=False, return_logits=True, **kw)
    assert torch.equal(cached, full)
    torch.testing.assert_close(cached_logits, full_logits, atol=1e-4, rtol=1e-4)


def test_cached_logits_match_teacher_forced_forward(tiny_model, processor, examples, tiny_config):
    """The first generated steps equal the training forward pass on the generated tokens."""
    ex = examples[1]
    batch = collate([processor.encode_inputs(ex, "action")], tiny_config, packed=False)
    ids, logits = generate(tiny_model, batch, "action", num_tokens=16, return_logits=True)
    enc = processor.encode(ex).replace(target_ids=ids[0])
    with torch.no_grad():
        _, info = tiny_model(collate([enc], tiny_config), return_logits=True)
    torch.testing.assert_close(info["logits"][0], logits[0], atol=1e-4, rtol=1e-4)
