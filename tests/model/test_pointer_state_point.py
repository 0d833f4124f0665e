"""The hand's pixel as a pointer candidate (CameraActionFrame.state_point, model/pointer.py): a waypoint
"where the hand is, moved a little" is written from the state.

The cause it pins: the demo's drawer policy wrote one of two pixel rows at every step of the stroke,
wherever the hand holding the handle was. The pointer could only write where image patches are, and the
hand's place in the state reached it only through the decoder; a CNN regressing from the state
(benchmarks/bc_reference.py) opened and shut 85% of the drawers after 10 minutes on the same data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.action_frame import CameraActionFrame
from model.configuration import ModelConfig
from model.example import Example
from model.generation import generate
from model.modeling import UnifiedIO
from model.packing import KIND, collate
from model.processor import Processor
from model.tokenizers.actions import ActionStats

# A camera 1 m over the table looking straight down: the table's [-0.5, 0.5] m fills the image.
FOVY = float(np.degrees(2 * np.arctan(0.5)))
STROKE = 0.05  # m ahead of the hand along -y: about 3 image rows at 64 px


def down_camera(state_point: int | None) -> CameraActionFrame:
    return CameraActionFrame([0.0, 0.0, 1.0], np.eye(3).tolist(), FOVY, 64, 64, state_point=state_point)


def test_state_pixel_is_the_foot_of_the_states_point():
    frame = down_camera(state_point=2)
    state = np.array([9.0, 9.0, 0.1, -0.2, 0.3, 1.0], np.float32)
    np.testing.assert_allclose(frame.state_pixel(state), frame.to_camera(state[2:5])[:2])
    np.testing.assert_allclose(
        frame.state_pixel(state), [0.5 + 0.2, 0.5 + 0.1], atol=1e-6
    )  # v from -y, u from x
    assert down_camera(None).state_pixel(state) is None
    with pytest.raises(ValueError, match=r"state_point 2 needs features 2..4.*shape \(4,\)"):
        frame.state_pixel(state[:4])
    with pytest.raises(ValueError, match="state_point must be a state feature index"):
        down_camera(-1)


def test_round_trip_through_the_checkpoint_files(tmp_path, text_tokenizer):
    cfg = ModelConfig.preset("tiny")
    stats = ActionStats(q01=[0, 0, 0, -1], q99=[1, 1, 0.2, 1])
    Processor(
        cfg, text_tokenizer=text_tokenizer, action_stats=stats, action_frame=down_camera(0)
    ).save_pretrained(tmp_path)
    assert Processor.from_pretrained(tmp_path, cfg).action_frame.state_point == 0


@pytest.fixture()
def point_model() -> UnifiedIO:
    cfg = ModelConfig.preset(
        "tiny",
        pointer_readout=True,
        pointer_shift=True,
        pointer_shift_words=True,
        decoder_state=True,
        action_chunk_size=1,
    )
    torch.manual_seed(0)
    model = UnifiedIO(cfg).eval()
    with torch.no_grad():  # away from the zero-initialised gate, offsets and shift
        for p in model.pointer.parameters():
            p.normal_(0, 0.5)
    return model


def hand_examples(rng: np.random.Generator, n: int, image: np.ndarray | None = None) -> list[Example]:
    """The hand somewhere on the table, told by the state only (a bare grey image); the waypoint is
    STROKE ahead of it along -y, with a height and an open gripper."""
    image = np.full((64, 64, 3), 90, np.uint8) if image is None else image
    out = []
    for _ in range(n):
        x, y = rng.uniform(-0.35, 0.35, 2)
        out.append(
            Example(
                "action",
                np.array([[x, y - STROKE, 0.1, -1.0]], np.float32),
                text="slide it along",
                image=image,
                state=np.array([x, y, 0.1], np.float32),
            )
        )
    return out


def processor_for(model: UnifiedIO, text_tokenizer, state_point: int | None) -> Processor:
    stats = ActionStats(q01=[0, 0, 0, -1], q99=[1, 1, 0.2, 1])  # camera frame: v, u, z, gripper
    state = ActionStats(q01=[-0.5, -0.5, 0.0], q99=[0.5, 0.5, 0.2])
    return Processor(
        model.config, text_tokenizer=text_tokenizer, action_stats=stats, state_stats=state,
        action_frame=down_camera(state_point),
    )  # fmt: skip


def test_the_state_token_stands_at_the_hands_pixel_and_can_be_pointed_at(point_model, text_tokenizer):
    proc = processor_for(point_model, text_tokenizer, 0)
    examples = hand_examples(np.random.default_rng(0), 3)
    batch = collate([proc.encode(e) for e in examples], point_model.config)
    where = batch["enc_point"].isfinite().all(-1)
    assert where.sum() == 3 and bool((batch["enc_kind"][where] == KIND["state"]).all())
    assert sorted(batch["enc_example"][where].tolist()) == [0, 1, 2]  # one hand per example
    pixels = torch.stack([torch.from_numpy(proc.action_frame.state_pixel(e.state)) for e in examples])
    torch.testing.assert_close(batch["enc_point"][where][batch["enc_example"][where].argsort()], pixels)
    with torch.no_grad():
        context = point_model.pointer_context(batch, point_model.encode(batch))
    assert bool(context.is_image[where].all())
    # Without a state point the same batch has none, and the pointer looks at patches only.
    plain = collate(
        [processor_for(point_model, text_tokenizer, None).encode(e) for e in examples], point_model.config
    )
    assert not bool(plain["enc_point"].isfinite().any())


def test_generation_with_a_state_point_matches_the_training_forward(point_model, text_tokenizer):
    """The pointer term generate adds (one encoder pass, KV cache) is the one the loss saw, and the
    cache matches recomputing; packed rows give each example its own hand."""
    proc = processor_for(point_model, text_tokenizer, 0)
    examples = hand_examples(np.random.default_rng(1), 3)
    batch = collate([proc.encode_inputs(e, "action") for e in examples], point_model.config, packed=False)
    ids, logits = generate(point_model, batch, "action", num_tokens=4, return_logits=True)
    full, full_logits = generate(
        point_model, batch, "action", num_tokens=4, return_logits=True, use_cache=False
    )
    assert torch.equal(ids, full)
    torch.testing.assert_close(logits, full_logits, atol=1e-4, rtol=1e-4)
    encoded = []
    for k, e in enumerate(examples):
        enc = proc.encode_inputs(e, "action")
        encoded.append(
            enc.replace(target_ids=ids[k], loss_mask=torch.ones(4), hidden=torch.zeros(4, dtype=torch.bool))
        )
    with torch.no_grad():
        _, packed = point_model(collate(encoded, point_model.config, packed=True), return_logits=True)
    assert len(packed["logits"]) == 3
    for k in range(3):
        torch.testing.assert_close(packed["logits"][k], logits[k], atol=1e-4, rtol=1e-4)


def _stroke_error(text_tokenizer, state_point: int | None, steps: int) -> float:
    """Mean pixel error of the written waypoint (STROKE ahead of a hand the image does not show) on 48
    held-out hands after ``steps`` AdamW steps of 16 examples."""
    cfg = ModelConfig.preset(
        "tiny", image_conv_stem=True, patch_size=8, location_bins=64, action_bins=64, action_chunk_size=1,
        pointer_readout=True, pointer_shift=True, decoder_state=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = UnifiedIO(cfg)
    proc = processor_for(model, text_tokenizer, state_point)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        loss, _ = model(collate([proc.encode(e) for e in hand_examples(rng, 16)], cfg))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    held_out = hand_examples(np.random.default_rng(12345), 48)
    out = model.generate_from_examples(proc, held_out, "action")
    frame = proc.action_frame
    pred = frame.to_camera(np.stack([a[0] for a in out]))[:, :2] * 64
    true = frame.to_camera(np.stack([e.target_value[0] for e in held_out]))[:, :2] * 64
    return float(np.hypot(*(pred - true).T).mean())


@pytest.mark.slow
def test_a_waypoint_ahead_of_the_hand_is_written_from_the_state_with_the_state_point(text_tokenizer):
    """Same data, steps and optimiser: with the hand's pixel among the pointer's candidates the
    waypoint ahead of it is written within a couple of pixels; without, the model has the hand only
    through the decoder's state and stays near the mean answer (21 px at 100 steps, 1.3 px with it)."""
    torch.set_num_threads(1)
    with_point = _stroke_error(text_tokenizer, 0, steps=100)
    without = _stroke_error(text_tokenizer, None, steps=100)
    assert with_point < 3.0, f"with the state point: {with_point:.1f} px mean error after 100 steps"
    assert without > 2 * with_point, f"without {without:.1f} px vs with {with_point:.1f} px"
