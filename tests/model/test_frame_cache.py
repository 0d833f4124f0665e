"""A frame cache changes how often the ViT runs, never what generation returns."""

from __future__ import annotations

import numpy as np
import torch

from model.example import Example
from model.frame_cache import FrameCache
from model.generation import generate
from model.packing import collate


def _batch(processor, examples, config):
    return collate([processor.encode_inputs(e, "action") for e in examples], config, packed=False)


def test_cached_frames_give_the_same_actions(tiny_model, processor, examples, tiny_config):
    batch = _batch(processor, examples, tiny_config)
    plain, plain_logits = generate(tiny_model, batch, "action", num_tokens=4, return_logits=True)
    cache = FrameCache()
    lookups = []
    for _ in range(2):  # the second call reads every frame from the cache
        ids, logits = generate(
            tiny_model, batch, "action", num_tokens=4, return_logits=True, frame_cache=cache
        )
        assert torch.equal(ids, plain)
        torch.testing.assert_close(logits, plain_logits, atol=1e-5, rtol=1e-5)
        lookups.append((cache.misses, cache.hits))
    # First call: 3 current images (features) and 2 history frames (latents) all miss; the history
    # frames' features then miss once (the flipped frame) and hit once (img, a current image too).
    # Second call: the 5 lookups all hit and nothing is recomputed.
    assert lookups == [(6, 1), (6, 6)]


def test_history_frame_reuses_its_features_as_current_image(tiny_model, processor, tiny_config):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    cache = FrameCache()
    first = Example("action", np.zeros((4, 4), np.float32), text="open the drawer", image=a)
    generate(tiny_model, _batch(processor, [first], tiny_config), "action", num_tokens=4, frame_cache=cache)
    # The next step: frame a is now history, next to a new frame b.
    second = Example(
        "action", np.zeros((4, 4), np.float32), text="open the drawer", image=b, image_history=a[None]
    )
    before = cache.misses, cache.hits
    generate(tiny_model, _batch(processor, [second], tiny_config), "action", num_tokens=4, frame_cache=cache)
    # Misses: b's ViT features and a's history latents; a's ViT features come from the cache.
    assert (cache.misses - before[0], cache.hits - before[1]) == (2, 1)


def test_cache_forgets_when_weights_change(tiny_model, processor, examples, tiny_config):
    batch = _batch(processor, examples[1:2], tiny_config)
    cache = FrameCache()
    generate(tiny_model, batch, "action", num_tokens=4, frame_cache=cache)
    with torch.no_grad():
        tiny_model.vit.embed.weight.mul_(2.0)  # an in-place update, as an optimizer step makes
    fresh = generate(tiny_model, batch, "action", num_tokens=4, return_logits=True)[1]
    cached = generate(tiny_model, batch, "action", num_tokens=4, return_logits=True, frame_cache=cache)[1]
    torch.testing.assert_close(cached, fresh, atol=1e-5, rtol=1e-5)
