"""UnifiedIO: the encoder-decoder transformer of Unified-IO 2, scaled by ModelConfig.

    model = UnifiedIO(ModelConfig.preset("tiny"))
    loss, info = model(collate([processor.encode(ex) for ex in examples], model.config))

Inputs of every modality become tokens (text ids, ViT patches, AST patches, resampled history
latents, a state token), each with a learned per-modality embedding and no absolute position:
text carries 1D RoPE, patches and latents 2D RoPE. The decoder reads the target modality's
tokens and scores them only against that modality's slice of the tied table (UIO-2's one
output table per modality). Generation lives in model/generation.py; checkpoints in
model/checkpoint.py.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model.configuration import ModelConfig
from model.encoders import PatchEncoder, PerceiverResampler, StateEncoder
from model.frame_cache import FrameCache
from model.layers import (
    DecoderBlock,
    EncoderBlock,
    RMSNorm,
    WordPool,
    cross_mask,
    decoder_mask,
    encoder_mask,
    full_precision,
    rope_angles,
    rope_tables,
)
from model.packing import DEC_MODALITY, ENC_KINDS, KIND, unpack
from model.pointer import PointerContext, PointerReadout, add_pointer, pointer_mask
from model.vocabulary import Vocabulary


class UnifiedIO(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.vocab = Vocabulary.from_config(c)
        d, eps = c.d_model, c.norm_eps
        self.token_embedding = nn.Embedding(len(self.vocab), d)
        # Untied: a separate output table (the paper's parameter counts); tied: slices of the input table.
        self.output_embedding = None if c.tie_output_embeddings else nn.Embedding(len(self.vocab), d)
        self.encoder_modality = nn.Embedding(len(ENC_KINDS), d)
        self.decoder_modality = nn.Embedding(len(DEC_MODALITY) + 1, d)

        absolute = c.absolute_patch_positions
        self.vit = PatchEncoder(
            3, c.patch_size, c.vit_dim, c.vit_layers, c.vit_heads, c.vit_mlp_dim, d, eps, c.rope_base,
            grid=(c.image_grid, c.image_grid) if absolute else None, conv_stem=c.image_conv_stem,
        )  # fmt: skip
        self.ast = PatchEncoder(
            1, c.audio_patch, c.ast_dim, c.ast_layers, c.ast_heads, c.ast_mlp_dim, d, eps, c.rope_base,
            grid=c.audio_grid if absolute else None, conv_stem=c.audio_conv_stem,
        )  # fmt: skip
        self.image_resampler = PerceiverResampler(
            2 * c.vit_dim,
            c.vit_dim,
            c.image_history_latents,
            c.resampler_layers,
            c.resampler_heads,
            c.vit_mlp_dim,
            d,
            eps,
        )
        self.audio_resampler = PerceiverResampler(
            2 * c.ast_dim,
            c.ast_dim,
            c.audio_history_latents,
            c.resampler_layers,
            c.resampler_heads,
            c.ast_mlp_dim,
            d,
            eps,
        )
        self.state_encoder = StateEncoder(c.max_state_dim, d)
        self.decoder_state = nn.Linear(d, d, bias=False) if c.decoder_state else None
        self.decoder_text = WordPool(d, c.n_heads) if c.decoder_text else None

        self.encoder = nn.ModuleList(
            EncoderBlock(d, c.n_heads, c.head_dim, c.mlp_dim, eps) for _ in range(c.encoder_layers)
        )
        self.encoder_norm = RMSNorm(d, eps)
        self.decoder = nn.ModuleList(
            DecoderBlock(d, c.n_heads, c.head_dim, c.mlp_dim, eps) for _ in range(c.decoder_layers)
        )
        self.decoder_norm = RMSNorm(d, eps)
        self.pointer = (
            PointerReadout(
                d,
                c.pointer_dim,
                c.pointer_sigma,
                c.pointer_words,
                c.pointer_word_heads,
                c.pointer_word_context,
                c.pointer_shift,
                c.pointer_word_gate,
                c.pointer_shift_words,
            )
            if c.pointer_readout
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if p.ndim >= 2 and "latents" not in name:
                std = 0.02
                # GPT-2: scale residual output projections by depth so the stream's variance stays put.
                if name.endswith(("o.weight", "down.weight")):
                    std = 0.02 / (2 * max(self.config.encoder_layers, self.config.decoder_layers)) ** 0.5
                nn.init.normal_(p, std=std)
        if self.pointer is not None:
            self.pointer.reset_parameters()
        if self.decoder_state is not None:
            nn.init.zeros_(self.decoder_state.weight)  # starts as the plain model
        if self.decoder_text is not None:
            nn.init.zeros_(self.decoder_text.out.weight)  # starts as the plain model

    # -- pointer readout -----------------------------------------------------------------------
    def pointer_bins(self, modality: str) -> tuple[int, int] | None:
        """(offset in the modality's output segment, number of bins) the pointer scores, or None."""
        if self.pointer is None or modality not in ("text", "action"):
            return None
        start, _ = self.vocab.output_range(modality)
        seg = self.vocab.segments["location" if modality == "text" else "action"]
        return seg.start - start, seg.size

    def pointer_context(self, batch: dict[str, Any], enc: torch.Tensor) -> PointerContext:
        """What every pointer call of one encoder pass shares: keys, patch centres, image tokens and words."""
        kind = batch["enc_kind"]
        is_image, is_text = kind == KIND["image"], kind == KIND["text"]
        is_words = is_text | (kind == KIND["audio"])  # an instruction is read or heard
        words = None
        if self.pointer.words:
            # A text token's own embedding is its word, unmixed with the image the encoder's
            # attention blends into its output (a scratch run of the pointing proxy, two seeds:
            # 8.6 px at 300 steps where the encoder output gave 17-20 px).
            # An audio patch is no word by itself: there the encoder output, which has heard the rest.
            emb = self.token_embedding(batch["enc_ids"]).float()
            emb = emb * torch.rsqrt(emb.pow(2).mean(-1, keepdim=True) + self.config.norm_eps)  # enc's scale
            words = torch.where(is_text[..., None], emb, enc.float())
        return self.pointer.prepare(
            enc, is_image, is_words, batch["enc_pos"], self.config.image_grid, words, batch.get("enc_point")
        )

    def pointed_logits(
        self,
        logits: torch.Tensor,
        hidden: torch.Tensor,
        select: torch.Tensor,
        modality: str,
        context: PointerContext,
        allowed: torch.Tensor,
    ) -> torch.Tensor:
        """Logits (P, segment) at the positions ``select`` marks, with the pointer's log-probabilities added."""
        where = self.pointer_bins(modality)
        if where is None:
            return logits
        offset, bins = where
        log_p = self.pointer.log_probs(hidden, context, allowed, select, bins, self.config.image_grid)
        return add_pointer(logits, log_p, offset)

    # -- encoder -------------------------------------------------------------------------------
    def _encoder_features(
        self, batch: dict[str, Any], frame_cache: FrameCache | None = None
    ) -> dict[str, torch.Tensor]:
        """Run each input encoder on the batch's stacked inputs -> (N, tokens, d) per kind.

        With a ``frame_cache`` (inference only) each distinct frame goes through the ViT and the
        history resampler once, however many calls it appears in.
        """
        out = {}
        vit_features = self.vit.features

        def history(frames: torch.Tensor) -> torch.Tensor:
            # vit_features is read at call time: the cached lookup below when there is a cache.
            return self.image_resampler(vit_features(frames))

        if frame_cache is not None:
            frame_cache.check_weights(self.vit, self.image_resampler)
            vit_features = functools.partial(frame_cache.lookup, "features", compute=self.vit.features)
            history = functools.partial(frame_cache.lookup, "latents", compute=history)
        if "image" in batch:
            out["image"] = self.vit.proj(vit_features(batch["image"]))
        if "image_history" in batch:
            out["image_history"] = history(batch["image_history"])
        if "audio" in batch:
            out["audio"] = self.ast(batch["audio"])
        if "audio_history" in batch:
            out["audio_history"] = self.audio_resampler(self.ast.features(batch["audio_history"]))
        if "state" in batch:
            out["state"] = self.state_encoder(batch["state"])
        return out

    def encode(self, batch: dict[str, Any], frame_cache: FrameCache | None = None) -> torch.Tensor:
        """Packed encoder rows (R, Le, d). ``frame_cache``: see _encoder_features; ignored with autograd on."""
        ids = batch["enc_ids"]
        r, le = ids.shape
        x = self.token_embedding(ids).reshape(r * le, -1)
        if torch.is_grad_enabled():
            frame_cache = None  # cached features carry no graph: training must recompute
        for kind, feats in self._encoder_features(batch, frame_cache).items():
            flat = feats.reshape(-1, feats.shape[-1]).to(x.dtype)
            x = x.index_copy(0, batch[f"{kind}_dst"], flat[batch[f"{kind}_src"]])
        x = x.view(r, le, -1) + self.encoder_modality(batch["enc_kind"])
        angles = rope_tables(
            rope_angles(batch["enc_pos"], batch["enc_2d"], self.config.head_dim, self.config.rope_base)
        )
        seg = batch["enc_segment"]
        # One example filling every row (a policy call): no mask, the cheaper SDPA path.
        mask = None if bool((seg == 1).all()) else encoder_mask(seg)
        for block in self.encoder:
            x = block(x, mask, angles)
        return self.encoder_norm(x)

    # -- decoder -------------------------------------------------------------------------------
    def embed_decoder(self, ids: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids) + self.decoder_modality(modality)

    def example_condition(self, batch: dict[str, Any], enc: torch.Tensor) -> torch.Tensor | None:
        """(examples, d): what every decoder position of an example is given besides its token: the
        projected state (``config.decoder_state``; zeros for an example without one) plus an
        attention pooling of its text tokens' embeddings (``config.decoder_text``). None
        when neither is on. enc (R, Le, d): the encoder output of ``batch``'s rows."""
        if self.decoder_state is None and self.decoder_text is None:
            return None
        n, d = len(batch["example_row"]), self.config.d_model
        out = enc.new_zeros(n, d)
        if self.decoder_state is not None and "state" in batch and len(batch["state_src"]):
            feats = self.state_encoder(batch["state"]).reshape(-1, d)
            example = batch["enc_example"].reshape(-1)[batch["state_dst"]]
            state = enc.new_zeros(n, d).index_copy(0, example, feats[batch["state_src"]].to(enc.dtype))
            out = out + self.decoder_state(state)
        if self.decoder_text is not None:
            example = batch["enc_example"].reshape(-1)
            text = (batch["enc_kind"].reshape(-1) == KIND["text"]) & (example >= 0)
            if bool(text.any()):
                # The words' own embeddings (at the encoder output's scale), as the pointer's word
                # values: the encoder output at a word has the image blended in, and pooled from it
                # the toy's verb was read no better than through cross-attention (48% against 55%
                # after 300 steps; from the embeddings 100%, tests/model/test_decoder_text.py).
                words = self.token_embedding(batch["enc_ids"].reshape(-1)[text]).to(enc.dtype)
                words = words * torch.rsqrt(words.pow(2).mean(-1, keepdim=True) + self.config.norm_eps)
                out = out + self.decoder_text(words, example[text], n).to(out.dtype)
        return out

    def decode(self, batch: dict[str, Any], enc: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states (R, Ld, d), teacher-forced."""
        y = self.embed_decoder(batch["dec_input_ids"], batch["dec_modality"])
        cond = self.example_condition(batch, enc)
        if cond is not None:
            ex = batch["dec_example"]
            y = y + torch.where((ex >= 0)[..., None], cond[ex.clamp(min=0)], torch.zeros_like(y))
        angles = rope_tables(
            rope_angles(batch["dec_pos"][..., None], None, self.config.head_dim, self.config.rope_base)
        )
        self_mask = decoder_mask(batch["dec_segment"], batch.get("dec_hidden"))
        x_mask = cross_mask(batch["dec_segment"], batch["enc_segment"])
        for block in self.decoder:
            y = block(y, self_mask, angles, enc, x_mask)
        return self.decoder_norm(y)

    def output_table(self, modality: str) -> tuple[torch.Tensor, int]:
        """The modality's output table (its slice of the tied embedding) and its first id."""
        start, end = self.vocab.output_range(modality)
        table = self.token_embedding.weight if self.output_embedding is None else self.output_embedding.weight
        return table[start:end], start

    def logits(self, hidden: torch.Tensor, modality: str) -> torch.Tensor:
        """fp32 logits over the modality's segment only: (..., segment size)."""
        table, _ = self.output_table(modality)
        with full_precision(hidden):
            return hidden.float() @ table.float().t()

    # -- training forward ----------------------------------------------------------------------
    def forward(
        self, batch: dict[str, Any], return_logits: bool = False
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Loss (token-mean cross-entropy + z-loss) and info: per-example and per-modality losses."""
        enc = self.encode(batch)
        hidden = self.decode(batch, enc)
        target, weight = batch["dec_target_ids"], batch["dec_loss_mask"].float()
        token_ce = hidden.new_zeros(target.shape, dtype=torch.float32)
        token_z = torch.zeros_like(token_ce)
        info: dict[str, Any] = {}
        logits_out = {}
        if self.pointer is not None:
            context = self.pointer_context(batch, enc)
            allowed = pointer_mask(batch["dec_segment"], batch["enc_segment"])
        for modality, idx in DEC_MODALITY.items():
            sel = batch["dec_modality"] == idx
            if not bool(sel.any()):
                continue
            logits = self.logits(hidden[sel], modality)
            if self.pointer is not None:
                logits = self.pointed_logits(logits, hidden, sel, modality, context, allowed)
            start, _ = self.vocab.output_range(modality)
            local = target[sel] - start
            if bool(((local < 0) | (local >= logits.shape[-1])).any()):
                bad = target[sel][(local < 0) | (local >= logits.shape[-1])][:5].tolist()
                raise ValueError(f"{modality} targets must lie in its vocabulary segment, got ids {bad}")
            token_ce = token_ce.masked_scatter(sel, F.cross_entropy(logits, local, reduction="none"))
            token_z = token_z.masked_scatter(sel, torch.logsumexp(logits, -1).pow(2))
            if return_logits:
                logits_out[modality] = (sel, logits)
            w = weight[sel]
            info[f"loss/{modality}"] = float((token_ce[sel].detach() * w).sum() / w.sum().clamp(min=1))
        denom = weight.sum().clamp(min=1.0)
        ce = (token_ce * weight).sum() / denom
        z = (token_z * weight).sum() / denom
        loss = ce + self.config.z_loss * z
        if self.pointer is not None and self.config.pointer_patch_loss > 0 and "dec_point" in batch:
            # Scored target tokens that are image points (model/pointer.py, patch_nll).
            pointed = batch["dec_point"].isfinite().all(-1) & (weight > 0)
            if bool(pointed.any()):
                nll = self.pointer.patch_nll(
                    hidden, context, allowed, pointed, batch["dec_point"], self.config.image_grid
                )
                patch_tokens = weight[pointed].sum()
                patch = (nll * weight[pointed]).sum() / patch_tokens
                term = self.config.pointer_patch_loss * patch
                loss = loss + term
                info["loss/pointer_patch"] = float(patch.detach())
                # A mean over pointed tokens, not over all scored ones: data-parallel training
                # averages the two parts each by its own global count (training/module.py).
                info["pointer_patch_term"], info["pointer_patch_tokens"] = term, float(patch_tokens)
        ex = batch["dec_example"]
        n_ex = len(batch["example_row"])
        valid = ex >= 0
        per_ex = torch.zeros(n_ex).index_add_(0, ex[valid], (token_ce * weight)[valid].detach().float().cpu())
        cnt = torch.zeros(n_ex).index_add_(0, ex[valid], weight[valid].detach().float().cpu())
        info.update(
            loss=float(loss.detach()),
            ce=float(ce.detach()),
            z_loss=float(z.detach()),
            tokens=int(weight.sum()),
            per_example_loss=per_ex / cnt.clamp(min=1),
            stats=batch.get("stats", {}),
        )
        if return_logits:
            info["logits"] = self._unpack_logits(batch, logits_out)
        return loss, info

    def _unpack_logits(self, batch: dict[str, Any], logits_out: dict) -> list[torch.Tensor]:
        """Per-example logits over each example's own target segment."""
        per_ex = []
        for i, modality in enumerate(batch["targets"]):
            sel, logits = logits_out[modality]
            full = torch.zeros(*sel.shape, logits.shape[-1])
            full[sel] = logits.detach().float().cpu()
            per_ex.append(unpack(batch, full)[i])
        return per_ex

    # -- convenience ---------------------------------------------------------------------------
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.token_embedding.weight.numel()
            if self.output_embedding is not None:
                n -= self.output_embedding.weight.numel()
        return n

    def generate(self, batch: dict[str, Any], target: str, **kwargs: Any) -> torch.Tensor:
        """Constrained decoding of ``target`` tokens; see model.generation.generate."""
        from model.generation import generate

        return generate(self, batch, target, **kwargs)

    def generate_from_examples(self, processor, examples, target: str, **kwargs: Any) -> list:
        """Examples (inputs only) -> decoded outputs: str (text), (K, D) actions, images, waveforms."""
        from model.generation import generate_from_examples

        return generate_from_examples(self, processor, examples, target, **kwargs)

    def save_pretrained(self, directory: str | Path, processor=None) -> Path:
        from model.checkpoint import save_pretrained

        return save_pretrained(self, directory, processor)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> UnifiedIO:
        from model.checkpoint import load_model

        return load_model(directory, map_location)
