"""ModelConfig: every size and switch of the Unified-IO 2-style model, as one typed dataclass.

``ModelConfig.preset(name)`` gives the CPU sizes (tiny, small, base) and the paper's sizes
(L 1.1B, XL 3.2B, XXL 6.8B). Overrides go through ``dataclasses.replace`` or
``training.config.load_config`` (``model.d_model=192``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESETS = ("tiny", "small", "base", "L", "XL", "XXL")


@dataclass
class ModelConfig:
    # Transformer (encoder-decoder, pre-norm RMSNorm, gated-SiLU MLP, no biases).
    d_model: int = 128
    n_heads: int = 4
    head_dim: int = 32
    mlp_dim: int = 384
    encoder_layers: int = 2
    decoder_layers: int = 2
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    z_loss: float = 1e-4
    dropout: float = 0.0
    # UIO-2 scores each target modality against its own table tied to the decoder's input
    # embedding; False adds separate output tables (the paper's parameter counts need them).
    tie_output_embeddings: bool = True

    # Vocabulary segment sizes (model/vocabulary.py lays them out).
    text_vocab_size: int = 1024
    location_bins: int = 1000
    action_bins: int = 256
    num_sentinels: int = 100
    image_codebook_size: int = 1024
    audio_codebook_size: int = 1024

    # Image input: a ViT trained from scratch; features of its 2nd and penultimate layers are
    # concatenated and projected (UIO-2). No absolute positions: 2D RoPE inside the ViT too.
    image_size: int = 64
    patch_size: int = 16
    vit_dim: int = 96
    vit_layers: int = 4
    vit_heads: int = 3
    vit_mlp_dim: int = 256
    # Learned absolute patch positions in the ViT and the AST, as in the CLIP ViT / AST UIO-2 starts
    # from (model/encoders.py says why a policy needs them); False: 2D RoPE only.
    absolute_patch_positions: bool = True
    # A convolutional stem instead of the ViT's linear patch embedding (model/encoders.py, ConvStem):
    # for ViTs trained from scratch on a CPU budget; the paper's sizes keep UIO-2's linear one.
    image_conv_stem: bool = False
    # Fraction of image patches the encoder keeps while training (UIO-2 subsamples patches).
    image_patch_keep: float = 1.0

    # Audio input: log-mel (model/audio.py: 128 mels x 256 frames) cut into 16x16 patches for an AST.
    audio_mels: int = 128
    audio_frames: int = 256
    audio_patch_size: int = 16
    # The time extent of an AST patch (frames); None: audio_patch_size (square patches, UIO-2's AST).
    # The mel extent stays audio_patch_size: with 128 x 2 each patch is one time slice of the whole
    # spectrum, as speech front ends read it (benchmarks/speech_proxy.py measures which hears faster).
    audio_patch_frames: int | None = None
    ast_dim: int = 96
    ast_layers: int = 3
    ast_heads: int = 3
    ast_mlp_dim: int = 256
    audio_patch_keep: float = 1.0
    # The AST's patches embedded by stride-2 convolutions (model/encoders.py ConvStem) instead of a
    # linear map: as for images, for a from-scratch encoder that must hear "red" in minutes.
    audio_conv_stem: bool = False

    # History (video / audio history) through a perceiver resampler with scaled cosine attention.
    resampler_layers: int = 2
    resampler_heads: int = 4
    image_history_latents: int = 32
    audio_history_latents: int = 16
    max_image_history: int = 4
    max_audio_history: int = 2

    # Robot state: zero-padded to max_state_dim and projected to one encoder token.
    max_state_dim: int = 32

    # Pointer readout (model/pointer.py): location tokens and action bins also read off where a
    # small attention over the example's image tokens lands. The tiny model cannot otherwise learn
    # image -> position in minutes on a CPU (it answers the same point for every image); the
    # paper sizes keep UIO-2's plain readout.
    pointer_readout: bool = False
    pointer_dim: int = 64
    pointer_sigma: float = 0.25  # Gaussian width in patches
    pointer_words: bool = False  # the pointer's query also reads the example's words (model/pointer.py)
    pointer_word_heads: int = 1  # heads of that word attention (a colour and a shape word at once)
    # Its keys also read the encoder output at each word (model/pointer.py), so that the query can
    # tell the object to pick up from the place to put it ("the cyan cube on the blue cube").
    pointer_word_context: bool = False
    # The decoder state scales how much of the words the pointer's query takes, per head
    # (model/pointer.py ``word_gate``): at a drawer's stroke "drawer" still pulled it to the handle.
    pointer_word_gate: bool = False
    # The decoder state shifts where the pointer's patches point (model/pointer.py, ``shift``): a
    # waypoint a few centimetres from what can be seen (the end of a drawer's stroke, in front of
    # its handle) is "the handle, moved", where attention alone must land on a bare patch.
    pointer_shift: bool = False
    # The shift also reads the instruction's words through an attention of its own (model/pointer.py
    # ``_shift``): with the hand's pixel as a candidate (data.state_point) the drawer's stroke is
    # "the hand, moved" one way or the other, and only the verb says which. Not adopted: 42% / 42%
    # on the demo with data.state_point, 47% / 47% without it (runs sw2 / sp, seed 0).
    pointer_shift_words: bool = False
    # Weight of the pointer's patch loss (model/pointer.py): where a target token is an image point
    # (a point's or box corner's location tokens, a camera-frame waypoint's pixel), the pointer's
    # attention is also scored on the patch around that point, not only through the 1D bins.
    # Nothing without pointer_readout.
    pointer_patch_loss: float = 0.0
    # The robot state also conditions the decoder: its encoder token, through a zero-initialised
    # projection, is added to the input of every decoder position of its example. Through
    # cross-attention alone the one state token among ~80 image and text tokens was ignored: the
    # demo's policy answered the same height whatever the hand's height or its last command (p of
    # the label's bin unchanged by zeroing the state), so it hovered where it should descend.
    decoder_state: bool = False
    # The instruction also conditions the decoder: an attention pooling of its example's text
    # tokens' embeddings (learned queries, model/layers.py WordPool), through a
    # zero-initialised projection, is added to every decoder position (as decoder_state; a policy
    # conditioned on an instruction embedding, as RT-1 / BC-Z are). Through cross-attention alone
    # the tiny model never read the one word only the action tokens needed: a drawer's "open" /
    # "shut" (the pointer reads colours and shapes through its own word attention; nothing else in
    # the demo's action labels depends on the words), and every drawer episode went one way.
    decoder_text: bool = False

    # Targets.
    max_text_target_len: int = 64
    image_target_size: int = 64  # pixels of a target image handed to the image VQ-GAN
    image_target_tokens: int = 64  # codes per target image (VQ-GAN f=8: (64/8)^2)
    audio_target_tokens: int = 512  # codes per target audio clip (VQ-GAN f=8 on 128 x 256: 16 x 32)
    action_chunk_size: int = 4  # K future steps; a chunk is K x D action tokens
    max_encoder_len: int = 512  # packed row length (encoder)
    max_decoder_len: int = 576  # packed row length (decoder): fits one audio target (512)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field whose value cannot work."""
        if self.n_heads * self.head_dim <= 0 or self.head_dim % 4:
            raise ValueError(f"head_dim must be a positive multiple of 4 (2D RoPE), got {self.head_dim}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}"
            )
        ph, pw = self.audio_patch
        if ph < 1 or pw < 1 or self.audio_mels % ph or self.audio_frames % pw:
            raise ValueError(
                f"audio ({self.audio_mels} mels x {self.audio_frames} frames) must be a multiple of the "
                f"audio patch ({ph} mels = audio_patch_size x {pw} frames = audio_patch_frames)"
            )
        if self.audio_conv_stem and ph != pw:
            raise ValueError(f"audio_conv_stem needs square audio patches, got {ph} x {pw}")
        for name in ("vit_layers", "ast_layers"):
            if getattr(self, name) < 3:
                raise ValueError(
                    f"{name} must be >= 3 (2nd + penultimate features), got {getattr(self, name)}"
                )
        for name in ("vit", "ast"):
            dim, heads = getattr(self, f"{name}_dim"), getattr(self, f"{name}_heads")
            if dim % heads or (dim // heads) % 4:
                raise ValueError(f"{name}_dim {dim} must split into {heads} heads of a multiple of 4")
        longest = max(self.image_target_tokens, self.audio_target_tokens, self.max_text_target_len)
        if self.max_decoder_len < longest:
            raise ValueError(
                f"max_decoder_len {self.max_decoder_len} must hold the longest target ({longest} tokens)"
            )
        if self.pointer_readout and (self.pointer_dim < 1 or not self.pointer_sigma > 0):
            raise ValueError(
                f"pointer_dim must be >= 1 and pointer_sigma > 0, got {self.pointer_dim}, {self.pointer_sigma}"
            )
        if self.pointer_word_heads < 1 or self.pointer_dim % self.pointer_word_heads:
            raise ValueError(
                f"pointer_word_heads must be >= 1 and divide pointer_dim {self.pointer_dim}, "
                f"got {self.pointer_word_heads}"
            )
        if not self.pointer_patch_loss >= 0:
            raise ValueError(f"pointer_patch_loss must be >= 0, got {self.pointer_patch_loss}")
        for name in ("image_patch_keep", "audio_patch_keep"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")

    @property
    def image_grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def audio_patch(self) -> tuple[int, int]:
        """(mel bins, frames) of an AST patch."""
        return self.audio_patch_size, self.audio_patch_frames or self.audio_patch_size

    @property
    def audio_grid(self) -> tuple[int, int]:
        """(rows over mel bins, columns over time) of the AST patch grid."""
        ph, pw = self.audio_patch
        return self.audio_mels // ph, self.audio_frames // pw

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named configuration (tiny/small/base/L/XL/XXL), with keyword overrides."""
        if name not in _PRESETS:
            raise ValueError(f"unknown model preset {name!r}; expected one of {PRESETS}")
        return cls(**{**_PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {unknown}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


# ViT-B/16 and an AST of the same size, as UIO-2 uses, for the paper's sizes.
_VIT_B = dict(vit_dim=768, vit_layers=12, vit_heads=12, vit_mlp_dim=3072)
_AST_B = dict(ast_dim=768, ast_layers=12, ast_heads=12, ast_mlp_dim=3072)
_PAPER = dict(
    text_vocab_size=32000,
    num_sentinels=200,
    image_codebook_size=16384,
    audio_codebook_size=8192,
    image_size=384,
    image_target_size=256,
    image_target_tokens=1024,
    audio_target_tokens=512,
    encoder_layers=24,
    decoder_layers=24,
    resampler_heads=8,
    max_image_history=4,
    max_audio_history=2,
    max_text_target_len=512,
    max_encoder_len=864,
    max_decoder_len=1280,
    **_VIT_B,
    **_AST_B,
)

_PRESETS: dict[str, dict[str, Any]] = {
    # Trains in minutes on 2 CPU cores: 16 image patches, a 1k BPE, 2+2 layers, and the pointer
    # readout reading the instruction (without it this size never learns image -> position in CPU minutes).
    "tiny": dict(pointer_readout=True, pointer_words=True, pointer_word_heads=4, pointer_patch_loss=1.0),
    "small": dict(
        d_model=256,
        n_heads=4,
        head_dim=64,
        mlp_dim=768,
        encoder_layers=4,
        decoder_layers=4,
        text_vocab_size=4096,
        image_size=96,
        vit_dim=192,
        vit_layers=5,
        vit_heads=3,
        vit_mlp_dim=512,
        ast_dim=192,
        ast_layers=4,
        ast_heads=3,
        ast_mlp_dim=512,
        image_target_size=96,
        image_target_tokens=144,
        max_encoder_len=640,
        max_decoder_len=640,
    ),
    "base": dict(
        d_model=512,
        n_heads=8,
        head_dim=64,
        mlp_dim=1408,
        encoder_layers=8,
        decoder_layers=8,
        text_vocab_size=32000,
        num_sentinels=200,
        image_codebook_size=8192,
        audio_codebook_size=4096,
        image_size=224,
        vit_dim=384,
        vit_layers=8,
        vit_heads=6,
        vit_mlp_dim=1536,
        ast_dim=384,
        ast_layers=6,
        ast_heads=6,
        ast_mlp_dim=1536,
        resampler_heads=8,
        image_target_size=128,
        image_target_tokens=256,
        audio_target_tokens=512,
        max_text_target_len=256,
        max_encoder_len=864,
        max_decoder_len=768,
    ),
    "L": dict(d_model=1024, n_heads=16, head_dim=64, mlp_dim=2816, tie_output_embeddings=False, **_PAPER),
    "XL": dict(d_model=2048, n_heads=16, head_dim=128, mlp_dim=5120, tie_output_embeddings=False, **_PAPER),
    "XXL": dict(d_model=3072, n_heads=24, head_dim=128, mlp_dim=8192, tie_output_embeddings=False, **_PAPER),
}
