"""ModelConfig.decoder_text: the instruction's words condition every decoder position of its example."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.configuration import ModelConfig
from model.example import Example
from model.generation import generate
from model.modeling import UnifiedIO
from model.packing import collate
from model.processor import Processor


@pytest.fixture()
def text_model():
    torch.manual_seed(0)
    model = UnifiedIO(ModelConfig.preset("tiny", decoder_state=True, decoder_text=True)).eval()
    with torch.no_grad():  # as if trained: zero-initialised, the projections would pass nothing yet
        torch.nn.init.normal_(model.decoder_state.weight, std=0.05)
        torch.nn.init.normal_(model.decoder_text.out.weight, std=0.05)
    return model


@pytest.fixture()
def text_processor(text_model, text_tokenizer, action_stats):
    return Processor(text_model.config, text_tokenizer=text_tokenizer, action_stats=action_stats)


def action_example(examples):
    return next(e for e in examples if e.target == "action" and e.state is not None and e.text)


def test_generation_with_the_cache_matches_the_training_forward(text_model, text_processor, examples):
    ex = action_example(examples)
    cfg = text_model.config
    batch = collate([text_processor.encode_inputs(ex, "action")], cfg, packed=False)
    ids, logits = generate(text_model, batch, "action", num_tokens=16, return_logits=True)
    full_ids, full_logits = generate(
        text_model, batch, "action", num_tokens=16, return_logits=True, use_cache=False
    )
    assert torch.equal(ids, full_ids)
    torch.testing.assert_close(logits, full_logits, atol=1e-4, rtol=1e-4)
    enc = text_processor.encode(ex).replace(target_ids=ids[0])
    with torch.no_grad():
        _, info = text_model(collate([enc], cfg), return_logits=True)
    torch.testing.assert_close(info["logits"][0], logits[0], atol=1e-4, rtol=1e-4)


def test_the_words_reach_every_decoder_position_of_their_own_example_only(
    text_model, text_processor, examples
):
    ex = action_example(examples)
    other = dataclasses.replace(ex, text="shut the drawer now")
    cfg = text_model.config
    with torch.no_grad():
        batch = collate([text_processor.encode(ex), text_processor.encode(examples[0])], cfg)  # packed
        moved = collate([text_processor.encode(other), text_processor.encode(examples[0])], cfg)
        h0 = text_model.decode(batch, text_model.encode(batch))
        h1 = text_model.decode(moved, text_model.encode(moved))
    mine = batch["dec_example"] == 0
    assert (h0[mine] - h1[mine]).abs().amax(-1).min() > 1e-4  # every position of the example moved
    torch.testing.assert_close(
        h0[batch["dec_example"] == 1], h1[moved["dec_example"] == 1], atol=1e-5, rtol=1e-5
    )


def test_off_by_default_and_zero_initialised():
    assert ModelConfig.preset("tiny").decoder_text is False
    assert UnifiedIO(ModelConfig.preset("tiny")).decoder_text is None
    fresh = UnifiedIO(ModelConfig.preset("tiny", decoder_text=True))
    assert torch.count_nonzero(fresh.decoder_text.out.weight) == 0  # a fresh model starts as the plain one


WORDS = {
    "open the drawer": 0.15,
    "pull out the drawer": 0.15,
    "shut the drawer": 0.03,
    "close the drawer": 0.03,
}


def _height_from_words_accuracy(text_tokenizer, steps: int, **overrides) -> float:
    """A waypoint whose pixel is a square's (the image) and whose height only the instruction's verb
    tells (as only "open" / "shut" tell a drawer's stroke): the share of held-out heights decoded
    within 2 cm after ``steps``."""
    from model.tokenizers.actions import ActionStats
    from tests.model.test_pointer_readout import _fit_squares, _square_examples

    cfg = ModelConfig.preset(
        "tiny",
        image_conv_stem=True,
        patch_size=8,
        location_bins=64,
        action_bins=64,
        action_chunk_size=1,
        decoder_state=True,
        **overrides,
    )
    torch.manual_seed(0)
    model = UnifiedIO(cfg)
    proc = Processor(
        cfg, text_tokenizer=text_tokenizer, action_stats=ActionStats(q01=[0, 0, 0, -1], q99=[1, 1, 0.2, 1])
    )
    sentences = list(WORDS)

    def as_actions(examples, centres, rng=np.random.default_rng(7)):
        out = []
        for e, (y, x) in zip(examples, centres):
            text = sentences[rng.integers(len(sentences))]
            waypoint = np.array([[(y + 0.5) / 64, (x + 0.5) / 64, WORDS[text], -1.0]], np.float32)
            state = np.zeros(4, np.float32)  # the same for every example: only the words tell
            out.append(Example("action", waypoint, text=text, image=e.image, state=state))
        return out

    _fit_squares(model, proc, steps, as_actions)
    held_out = as_actions(*_square_examples(np.random.default_rng(12345), 64), rng=np.random.default_rng(99))
    decoded = model.generate_from_examples(proc, held_out, "action")
    heights = np.array([a[0][2] for a in decoded])
    return float((np.abs(heights - np.array([e.target_value[0, 2] for e in held_out])) < 0.02).mean())


@pytest.mark.slow
def test_the_height_follows_the_words_with_decoder_text_and_not_without(text_tokenizer):
    """The cause found in the demo's drawer policy, on a toy: through cross-attention alone the verb
    is not read in time and the height stays near chance (measured 45% / 53% / 55% at 100 / 200 /
    300 steps); with the words pooled into the decoder input, 100% at 300 steps. (At 150 steps it
    read 100% when written and 53% in a freshly built environment on 2026-12-07, whatever the
    hash seed: 300 leaves the margin.)"""
    torch.set_num_threads(1)
    plain = _height_from_words_accuracy(text_tokenizer, steps=300)
    conditioned = _height_from_words_accuracy(text_tokenizer, steps=300, decoder_text=True)
    assert conditioned >= 0.85, f"decoder_text: {conditioned:.0%} of heights right after 300 steps"
    assert plain <= 0.7, f"without it {plain:.0%}: the toy no longer shows the cause"
