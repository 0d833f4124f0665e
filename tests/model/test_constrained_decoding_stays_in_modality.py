"""DESIGN.md invariant: constrained decoding never emits a token outside the requested modality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.generation import generate
from model.packing import collate


@pytest.mark.parametrize("target", ["text", "action", "image", "audio"])
def test_constrained_decoding_stays_in_modality(tiny_model, processor, examples, tiny_config, target):
    # Bias the tied table hard towards ids outside the segment: sampling still cannot leave it.
    start, end = tiny_model.vocab.output_range(target)
    with torch.no_grad():
        w = tiny_model.token_embedding.weight
        outside = torch.ones(len(w), dtype=torch.bool)
        outside[start:end] = False
        w[outside] *= 50
    batch = collate([processor.encode_inputs(e, target) for e in examples[:2]], tiny_config, packed=False)
    kw = dict(max_new_tokens=12) if target == "text" else dict(num_tokens=12)
    g = torch.Generator().manual_seed(0)
    for sampling in (dict(), dict(do_sample=True, temperature=2.0, top_p=0.95, generator=g)):
        ids = generate(tiny_model, batch, target, **kw, **sampling)
        assert ids.shape[0] == 2
        assert ((ids >= start) & (ids < end)).all(), (
            f"{target} decoding left [{start}, {end}): {ids.tolist()}"
        )
        if target != "text":
            assert ids.shape[1] == 12  # fixed-length decoding


def test_actions_from_examples_are_finite_and_in_range(tiny_model, processor, examples):
    actions = tiny_model.generate_from_examples(processor, examples[:2], target="action")
    tok = processor.action_tokenizer
    for a in actions:
        assert a.shape == (4, 4) and a.dtype == np.float32 and np.isfinite(a).all()
        assert (a >= tok.low - 1e-6).all() and (a <= tok.high + 1e-6).all()


def test_text_generation_stops_at_eos_and_decodes_to_str(tiny_model, processor, examples):
    out = tiny_model.generate_from_examples(processor, examples[:2], target="text", max_new_tokens=5)
    assert all(isinstance(s, str) for s in out)


def test_classifier_free_guidance_changes_image_logits(tiny_model, processor, examples, tiny_config):
    cond = collate([processor.encode_inputs(examples[0], "image")], tiny_config, packed=False)
    unc_ex = examples[0].__class__("text", "", image=examples[0].image, text="An image.")
    uncond = collate([processor.encode_inputs(unc_ex, "image")], tiny_config, packed=False)
    _, plain = generate(tiny_model, cond, "image", num_tokens=3, return_logits=True)
    ids, guided = generate(
        tiny_model, cond, "image", num_tokens=3, return_logits=True, guidance_scale=2.0, uncond_batch=uncond
    )
    s0 = torch.log_softmax(plain[0, 0], -1)
    expected = 3.0 * s0 - 2.0 * torch.log_softmax(
        generate(tiny_model, uncond, "image", num_tokens=1, return_logits=True)[1][0, 0], -1
    )
    torch.testing.assert_close(guided[0, 0], expected, atol=1e-4, rtol=1e-4)
    start, end = tiny_model.vocab.output_range("image")
    assert ((ids >= start) & (ids < end)).all()


def test_sampling_greedy_temperature_and_top_p():
    from model.generation import sample_next

    logp = torch.log_softmax(torch.tensor([[0.0, 3.0, 2.9, -5.0]]), -1).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    assert (sample_next(logp, False, 1.0, 1.0, None) == 1).all()
    nucleus = sample_next(logp, True, 1.0, 0.5, g)  # the top token alone holds more than half the mass
    assert (nucleus == 1).all()
    two = sample_next(logp, True, 1.0, 0.9, g)
    assert set(two.tolist()) == {1, 2}
    hot = sample_next(logp, True, 100.0, 1.0, g)
    assert len(set(hot.tolist())) == 4
