"""DESIGN.md invariant: an example's logits and loss are the same packed with others or alone."""

from __future__ import annotations

import torch

from model.packing import collate, unpack


def test_packing_isolation(tiny_model, processor, examples, tiny_config):
    encoded = [processor.encode(e) for e in examples]
    packed = collate(encoded, tiny_config, packed=True)
    assert packed["stats"]["rows"] < len(examples), "the test batch must actually pack examples together"
    with torch.no_grad():
        _, info_packed = tiny_model(packed, return_logits=True)
        for i, enc in enumerate(encoded):
            alone = collate([enc], tiny_config, packed=True)
            _, info_alone = tiny_model(alone, return_logits=True)
            torch.testing.assert_close(
                info_packed["logits"][i], info_alone["logits"][0], atol=1e-4, rtol=1e-4
            )
            torch.testing.assert_close(
                info_packed["per_example_loss"][i], info_alone["per_example_loss"][0], atol=1e-5, rtol=1e-5
            )


def test_packed_and_padded_batches_agree(tiny_model, processor, examples, tiny_config):
    encoded = [processor.encode(e) for e in examples]
    packed, padded = collate(encoded, tiny_config, packed=True), collate(encoded, tiny_config, packed=False)
    assert padded["stats"]["rows"] == len(examples)
    assert packed["stats"]["utilisation"] > padded["stats"]["utilisation"]
    with torch.no_grad():
        loss_packed, _ = tiny_model(packed)
        loss_padded, _ = tiny_model(padded)
    torch.testing.assert_close(loss_packed, loss_padded, atol=1e-5, rtol=1e-5)


def test_unpack_returns_each_examples_targets(processor, examples, tiny_config):
    encoded = [processor.encode(e) for e in examples]
    batch = collate(encoded, tiny_config, packed=True)
    for enc, got in zip(encoded, unpack(batch, batch["dec_target_ids"])):
        assert torch.equal(got, enc.target_ids)


def test_changing_one_packed_example_leaves_the_others_alone(tiny_model, processor, examples, tiny_config):
    encoded = [processor.encode(e) for e in examples]
    other = [processor.encode(e) for e in examples]
    other[1] = other[1].replace(text_ids=other[1].text_ids.flip(0))  # perturb example 1 only
    with torch.no_grad():
        _, a = tiny_model(collate(encoded, tiny_config), return_logits=True)
        _, b = tiny_model(collate(other, tiny_config), return_logits=True)
    assert not torch.allclose(a["logits"][1], b["logits"][1])
    for i in (0, 2, 3):
        torch.testing.assert_close(a["logits"][i], b["logits"][i], atol=1e-4, rtol=1e-4)
