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
