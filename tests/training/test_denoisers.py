"""The mixture of denoisers: each objective's shapes, prefixes and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.configuration import ModelConfig
from model.example import Example
from model.packing import collate
from model.processor import Processor
from model.tokenizers import TextTokenizer
from model.vocabulary import EOS_ID, MASK_ID
from training.denoisers import Denoisers, MixtureOfDenoisers, random_spans_noise_mask

SENTENCE = "pick up the red block and place it in the bowl next to the green cube on the left"


@pytest.fixture(scope="module")
def setup():
    cfg = ModelConfig.preset("tiny")
    tok = TextTokenizer.train_bpe([SENTENCE] * 5, vocab_size=300)
    proc = Processor(cfg, text_tokenizer=tok)
    return cfg, proc, Denoisers(cfg, proc.vocab)


def _text_example(proc):
    return proc.encode(
        Example("text", SENTENCE, text="describe the task", image=np.zeros((64, 64, 3), np.uint8))
    )


def test_random_spans_noise_mask_density_and_spans():
    rng = np.random.default_rng(0)
    m = random_spans_noise_mask(100, 0.15, 3.0, rng)
    assert m.shape == (100,) and m.sum() == 15 and not m[0]
    starts = np.flatnonzero(m & ~np.concatenate([[False], m[:-1]]))
    assert len(starts) == 5  # 15 noise tokens / mean span 3


def test_span_corruption_r(setup):
    cfg, proc, d = setup
    e = _text_example(proc)
    body = e.target_ids[:-1]
    out = d.span_corruption(e, np.random.default_rng(0))
    v = proc.vocab
    assert out.objective == "R" and out.text_ids[0] == v.prefix_id("text", "R")
    sent_in = [t for t in out.text_ids.tolist() if t in v.segments["sentinel"]]
    sent_out = [t for t in out.target_ids.tolist() if t in v.segments["sentinel"]]
    assert sent_in == sent_out and len(sent_in) >= 1
    assert out.target_ids[-1] == EOS_ID and out.target_ids[0] == v.sentinel_id(0)
    # Input text + target spans rebuild the original target exactly.
    prompt_len = len(e.text_ids) - 1
    corrupted = out.text_ids[1 + prompt_len :].tolist()
    spans, cur = {}, None
    for t in out.target_ids[:-1].tolist():
        if t in v.segments["sentinel"]:
            cur = t
            spans[cur] = []
        else:
            spans[cur].append(t)
    rebuilt = [x for t in corrupted for x in spans.get(t, [t])]
    assert rebuilt == body.tolist()
    assert out.loss_mask.shape == out.target_ids.shape and out.hidden.sum() == 0


def test_extreme_corruption_x_hides_more(setup):
    _, proc, d = setup
    e = _text_example(proc)
    r = d.span_corruption(e, np.random.default_rng(1))
    x = d.extreme_corruption(e, np.random.default_rng(1))
    assert x.objective == "X" and x.text_ids[0] == proc.vocab.prefix_id("text", "X")
    assert len(x.target_ids) > len(r.target_ids)  # half of the text is to be written


def test_prefix_lm_s(setup):
    _, proc, d = setup
    e = _text_example(proc)
    out = d.prefix_lm(e, np.random.default_rng(0))
    head = out.text_ids[len(e.text_ids) :]
    assert out.objective == "S" and out.text_ids[0] == proc.vocab.prefix_id("text", "S")
    assert torch.equal(torch.cat([head, out.target_ids]), e.target_ids) and len(head) >= 1


def test_masked_denoising_r_for_images_hides_masked_codes(setup):
    cfg, proc, d = setup
    n = cfg.image_target_tokens
    start = proc.vocab.segments["image"].start
    e = proc.encode(Example("text", "x", text="fill in the image")).replace(
        target="image",
        target_ids=torch.arange(n) + start,
        loss_mask=torch.ones(n),
        hidden=torch.zeros(n, dtype=torch.bool),
        target_input=torch.zeros(3, 64, 64),
    )
    out = d.masked_denoising(e, np.random.default_rng(0), mask_ratio=0.75)
    assert out.objective == "R" and out.text_ids[0] == proc.vocab.prefix_id("image", "R")
    assert len(out.image_keep) == 4 and out.image is e.target_input  # 16 patches, 75% dropped
    assert out.hidden.shape == (n,) and out.hidden.sum() == 48  # each 16px patch covers 2x2 codes of 8px
    kept_patch = int(out.image_keep[0])
    r, c = divmod(kept_patch, 4)
    assert not out.hidden.view(8, 8)[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].any()
    # Dynamic masking in the batch: hidden codes enter as <mask> and later positions cannot see them.
    batch = collate([out], cfg)
    from model.layers import decoder_mask

    mask = decoder_mask(batch["dec_segment"], batch["dec_hidden"])[0, 0]
    hid = batch["dec_hidden"][0]
    assert (batch["dec_input_ids"][0][hid] == MASK_ID).all()
    j = int(hid.nonzero()[0])
    assert mask[j, j] and not mask[j + 1 :, j][batch["dec_segment"][0][j + 1 :] > 0].any()


def test_masked_denoising_r_for_audio(setup):
    cfg, proc, d = setup
    n = cfg.audio_target_tokens
    e = proc.encode(Example("text", "x", text="say it")).replace(
        target="audio",
        target_ids=torch.arange(n) + proc.vocab.segments["audio"].start,
        loss_mask=torch.ones(n),
        hidden=torch.zeros(n, dtype=torch.bool),
        target_input=torch.zeros(128, 256),
    )
    out = d.masked_denoising(e, np.random.default_rng(0), mask_ratio=0.5)
    assert len(out.audio_keep) == 64 and out.hidden.sum() == n // 2


def test_mixture_follows_weights_and_fixed_objectives(setup):
    cfg, proc, _ = setup
    mix = MixtureOfDenoisers(cfg, {"text": {"R": 1.0, "S": 0.0, "X": 1.0}}, proc.vocab)
    e = _text_example(proc)
    objectives = {mix(e, np.random.default_rng(i)).objective for i in range(20)}
    assert objectives == {"R", "X"}
    e.meta["objective"] = "S"  # a supervised task keeps its target whole
    assert torch.equal(mix(e, np.random.default_rng(0)).target_ids, e.target_ids)
    with pytest.raises(ValueError, match="'Q'"):
        MixtureOfDenoisers(cfg, {"text": {"Q": 1.0}})
    e.meta["objective"] = "Q"
    with pytest.raises(ValueError, match="'Q' is not defined for text"):
        mix(e, np.random.default_rng(0))


def test_cfg_dropout_replaces_the_image_prompt(setup):
    cfg, proc, _ = setup
    generic = proc.text.encode("An image.")
    mix = MixtureOfDenoisers(cfg, {"image": {"S": 1.0}}, proc.vocab, torch.tensor(generic), cfg_dropout=1.0)
    n = cfg.image_target_tokens
    e = proc.encode(Example("text", "x", text="a red cube")).replace(
        target="image",
        target_ids=torch.arange(n) + proc.vocab.segments["image"].start,
        loss_mask=torch.ones(n),
        hidden=torch.zeros(n, dtype=torch.bool),
    )
    out = mix(e, np.random.default_rng(0))
    assert out.text_ids[1:].tolist() == generic and out.text_ids[0] == proc.vocab.prefix_id("image", "S")


def test_denoise_entry_keeps_every_supervised_target_whole(setup):
    """A pointing/VQA/... example is never rewritten (it was, half the time, before the fix)."""
    from training.denoisers import denoise

    _, proc, _ = setup
    e = _text_example(proc)
    for i in range(40):
        out = denoise(e, np.random.default_rng(i), proc, denoise_fraction=0.5)
        assert torch.equal(out.target_ids, e.target_ids) and out.objective == "S"
        assert torch.equal(out.text_ids[1:], e.text_ids[1:])


def test_denoise_entry_rewrites_a_fraction_of_pretraining_examples(setup):
    from training.denoisers import denoise

    _, proc, _ = setup
    e = _text_example(proc)
    e = e.replace(meta={**e.meta, "pretraining": True})
    outs = [denoise(e, np.random.default_rng(i), proc, denoise_fraction=0.5) for i in range(40)]
    whole = sum(torch.equal(o.target_ids, e.target_ids) and o.objective == "S" for o in outs)
    assert 8 <= whole <= 32 and {o.objective for o in outs} >= {"S", "R"}
    assert all(
        torch.equal(denoise(e, np.random.default_rng(i), proc, denoise_fraction=0.0).target_ids, e.target_ids)
        for i in range(5)
    )
