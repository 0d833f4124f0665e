"""The ViT knows where a patch is: a policy must tell "the cube is left of the gripper" from "right of it"."""

from __future__ import annotations

import pytest
import torch

from model.encoders import PatchEncoder


def _features(grid, image):
    torch.manual_seed(0)
    with torch.no_grad():
        return PatchEncoder(3, 4, 16, 3, 2, 32, 24, grid=grid).eval().features(image)[0]


def test_rope_alone_cannot_say_where_a_patch_is():
    # Identical patches: attention mixes identical values whatever RoPE does to the scores, so every
    # patch ends with the same feature. This is why the encoder has an absolute position embedding.
    f = _features(None, torch.full((1, 3, 12, 12), 0.5))
    torch.testing.assert_close(f, f[:1].expand_as(f))


def test_absolute_positions_tell_the_patches_apart():
    f = _features((3, 3), torch.full((1, 3, 12, 12), 0.5))
    distances = torch.cdist(f, f)
    assert distances[~torch.eye(9, dtype=torch.bool)].min() > 1e-3


def test_a_frame_of_another_size_is_refused():
    with pytest.raises(ValueError, match="3x3 patch grid; this encoder's position embedding is for 2x2"):
        _features((2, 2), torch.zeros(1, 3, 12, 12))


def test_conv_stem_gives_one_token_per_patch_and_refuses_odd_sizes():
    from model.encoders import ConvStem

    torch.manual_seed(0)
    enc = PatchEncoder(3, 8, 16, 3, 2, 32, 24, grid=(8, 8), conv_stem=True).eval()
    with torch.no_grad():
        out = enc(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 64, 24) and torch.isfinite(out).all()
    # A change in one corner pixel changes that corner's token most: the stem is local.
    x = torch.zeros(1, 3, 64, 64)
    y = x.clone()
    y[..., :2, :2] = 1.0
    with torch.no_grad():
        delta = (enc.features(y) - enc.features(x))[0].norm(dim=-1)
    assert int(delta.argmax()) == 0
    with pytest.raises(ValueError, match="power-of-two patch size"):
        ConvStem(3, 6, 16)
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        enc(torch.rand(1, 3, 60, 60))


def test_conv_stem_embeds_spectrograms_for_the_audio_encoder():
    # ModelConfig.audio_conv_stem: (N, mels, frames) log-mels, one channel, 16 x 16 patches.
    torch.manual_seed(0)
    enc = PatchEncoder(1, 16, 16, 3, 2, 32, 24, grid=(8, 16), conv_stem=True).eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 128, 256))
    assert out.shape == (2, 8 * 16, 24) and torch.isfinite(out).all()


def test_audio_patches_can_be_time_slices_of_the_whole_spectrum():
    # ModelConfig.audio_patch_frames: 128 mels x 2 frames, a (1, 128) grid in time order.
    from model.configuration import ModelConfig

    cfg = ModelConfig.preset("tiny", audio_patch_size=128, audio_patch_frames=2)
    assert cfg.audio_patch == (128, 2) and cfg.audio_grid == (1, 128)
    torch.manual_seed(0)
    enc = PatchEncoder(1, cfg.audio_patch, 16, 3, 2, 32, 24, grid=cfg.audio_grid).eval()
    mel = torch.zeros(1, 128, 256)
    mel[0, :, 10:12] = 1.0  # a sound in the 6th slice only (frames 10-11)
    patches, gh, gw = enc.patchify(mel)
    assert (gh, gw) == (1, 128) and patches.shape == (1, 128, 256)
    assert torch.nonzero(patches.abs().sum(-1)[0]).flatten().tolist() == [5]
    with torch.no_grad():
        assert enc(mel).shape == (1, 128, 24)
