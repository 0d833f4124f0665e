"""The batch stream: a pure function of (seed, batch index); ranks and workers split it without changing it."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from training.datamodule import UIO2DataModule
from training.trainer import fresh_model


@pytest.fixture(scope="module")
def datamodule(rollouts, make_config, tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("dm"), "trainer.batch_size=4", "model.text_corpus_examples=100")
    _, processor = fresh_model(cfg, rollouts, None)
    return UIO2DataModule(cfg, processor, rollouts)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k].nan_to_num(-7.0), b[k].nan_to_num(-7.0))
        if isinstance(a[k], torch.Tensor)
        else a[k] == b[k]
        for k in a  # dec_point is NaN where a token points at nothing
    )


def test_ranks_split_the_global_batch(datamodule):
    one = datamodule.stream(start=3)
    r0, r1 = (
        datamodule.stream(start=3, rank=0, world_size=2),
        datamodule.stream(start=3, rank=1, world_size=2),
    )
    assert list(r0.indices(3)) + list(r1.indices(3)) == list(one.indices(3))
    assert [e.meta for e in r0.examples(3) + r1.examples(3)] == [e.meta for e in one.examples(3)]
    with pytest.raises(ValueError, match="must divide evenly over 3 processes"):
        datamodule.stream(world_size=3)


def test_stream_is_repeatable_and_resumable(datamodule):
    a = datamodule.stream()
    first = [a.batch(b) for b in range(3)]
    resumed = next(iter(datamodule.stream(start=2)))
    assert same(first[2], resumed)
    assert same(first[0], datamodule.stream().batch(0))


def test_workers_keep_the_order(datamodule):
    plain = [datamodule.stream(stop=4).batch(b) for b in range(4)]
    loader = DataLoader(datamodule.stream(stop=4), batch_size=None, num_workers=2, collate_fn=lambda x: x)
    got = list(loader)
    assert [g["batch_index"] for g in got] == [0, 1, 2, 3]
    assert all(same(p, g) for p, g in zip(plain, got))


def test_example_weighting_gives_every_example_the_same_share_of_the_loss():
    """Two examples of 3 and 17 scored tokens: by tokens the long one is 85% of the loss, by examples
    half, and the model's loss is then the mean of the two examples' own token means."""
    import numpy as np

    from model.configuration import ModelConfig
    from model.example import Example
    from model.modeling import UnifiedIO
    from model.packing import collate
    from model.processor import Processor
    from model.tokenizers import ActionStats
    from model.tokenizers.text import TextTokenizer
    from tests.model.conftest import CORPUS
    from training.datamodule import BatchStream, weigh_examples_equally

    tiny_processor = Processor(
        ModelConfig.preset("tiny"),
        text_tokenizer=TextTokenizer.train_bpe(CORPUS, vocab_size=320),
        action_stats=ActionStats(q01=[-1, -1, -1, -1], q99=[1, 1, 1, 1]),
    )

    image = np.full((64, 64, 3), 90, np.uint8)
    examples = [
        Example("text", "<loc_1><loc_2>", text="point to the cube", image=image),
        Example("action", np.zeros((4, 4), np.float32), text="reach the cube", image=image),
    ]
    enc = [tiny_processor.encode(e) for e in examples]
    batch = weigh_examples_equally(collate(enc, tiny_processor.config))
    mask, ex = batch["dec_loss_mask"], batch["dec_example"]
    shares = [float(mask[ex == i].sum()) for i in range(2)]
    assert [len(e.target_ids) for e in enc] == [3, 16]
    assert shares == pytest.approx([9.5, 9.5])  # 19 tokens in all, half each
    torch.manual_seed(0)
    model = UnifiedIO(tiny_processor.config).eval()
    with torch.no_grad():
        _, info = model(batch)
    per_example = info["per_example_loss"]
    assert info["ce"] == pytest.approx(float(per_example.mean()), rel=1e-5)
    with pytest.raises(ValueError, match="loss_weighting"):
        BatchStream(None, tiny_processor, 2, loss_weighting="tokens")


def test_action_loss_weights_share_an_action_example_out_by_dimension(rollouts, make_config, tmp_path):
    """data.action_loss_weights [1, 1, 1, 3]: in each action example the gripper tokens weigh 3x the
    others, and every example still weighs the same (example weighting); a wrong length is refused."""
    cfg = make_config(
        tmp_path,
        "data.mixture={action: 1.0}",
        "data.loss_weighting=example",
        "data.action_loss_weights=[1,1,1,3]",
    )
    _, processor = fresh_model(cfg, rollouts, None)
    stream = UIO2DataModule(cfg, processor, rollouts).stream()
    batch = stream.batch(0)
    mask, ex = batch["dec_loss_mask"], batch["dec_example"]
    for i in range(len(batch["example_row"])):
        w = mask[ex == i].view(-1, 4)  # (K, D): steps x (x, y, z, gripper)
        assert torch.allclose(w[:, 3], 3 * w[:, 0]) and torch.allclose(w[:, :3], w[:, :1].expand(-1, 3))
    totals = [float(mask[ex == i].sum()) for i in range(len(batch["example_row"]))]
    assert totals == pytest.approx([totals[0]] * len(totals))
    bad = make_config(tmp_path, "data.mixture={action: 1.0}", "data.action_loss_weights=[1,3]")
    with pytest.raises(ValueError, match="action_loss_weights"):
        UIO2DataModule(bad, processor, rollouts).stream()
