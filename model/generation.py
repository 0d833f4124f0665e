"""Generation: constrained, fixed-length or EOS-terminated decoding with a KV cache.

Each step scores only the requested modality's slice of the output table, so a text request
can only emit text/location/sentinel tokens (or EOS), an action request only action bins, and
so on: constrained decoding cannot leave the modality. Actions, images and audio decode a fixed
number of tokens (K x D, the VQ-GAN's grid). Classifier-free guidance (images, UIO-2):
(1 + a) * logp(cond) - a * logp(uncond).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from model.frame_cache import FrameCache
from model.layers import full_precision, rope_angles, rope_tables
from model.packing import DEC_MODALITY, KIND, collate
from model.vocabulary import BOS_ID, EOS_ID, TARGET_MODALITIES

GENERIC_IMAGE_PROMPT = "An image."  # the unconditional prompt for classifier-free guidance


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def sample_next(
    logp: torch.Tensor, do_sample: bool, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, V) log-probabilities -> (B,) indices: greedy, or temperature + nucleus (top-p) sampling."""
    if not do_sample or temperature <= 0:
        return logp.argmax(-1)
    probs = F.softmax(logp / temperature, -1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        drop = sorted_p.cumsum(-1) - sorted_p > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        choice = torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=generator)
        return order.gather(-1, choice)[:, 0]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.inference_mode()
def generate(
    model,
    batch: dict[str, Any],
    target: str,
    num_tokens: int | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    guidance_scale: float = 0.0,
    uncond_batch: dict[str, Any] | None = None,
    return_logits: bool = False,
    frame_cache: FrameCache | None = None,
):
    """Decode ``target`` tokens for every row of a padded batch (collate(..., packed=False)).

    Returns (B, T) global ids, and with ``return_logits`` also (B, T, segment) fp32 logits (after
    guidance). Text stops at EOS (finished rows repeat EOS); other modalities decode exactly
    ``num_tokens`` tokens (default: the config's image/audio target length). ``frame_cache``
    (model/frame_cache.py) lets a caller that sees the same frames again skip their ViT passes.
    """
    if target not in TARGET_MODALITIES:
        raise ValueError(f"unknown target modality {target!r}; expected one of {TARGET_MODALITIES}")
    if len(batch["example_row"]) != batch["enc_ids"].shape[0]:
        raise ValueError("generate needs one example per row: collate(..., packed=False)")
    cfg = model.config
    if target == "text":
        steps = max_new_tokens or cfg.max_text_target_len
    else:
        default = {"image": cfg.image_target_tokens, "audio": cfg.audio_target_tokens}.get(target)
        steps = num_tokens or default
        if steps is None:
            raise ValueError("action decoding needs num_tokens = K * D (generate_from_examples sets it)")
    guided = guidance_scale > 0
    if guided and uncond_batch is None:
        raise ValueError("guidance_scale > 0 needs uncond_batch (the same inputs with a generic prompt)")

    enc = model.encode(batch, frame_cache)
    enc_seg = batch["enc_segment"]
    if guided:
        enc_u = model.encode(uncond_batch, frame_cache)
        le = max(enc.shape[1], enc_u.shape[1])
        enc = torch.cat(
            [F.pad(enc, (0, 0, 0, le - enc.shape[1])), F.pad(enc_u, (0, 0, 0, le - enc_u.shape[1]))]
        )
        seg_u = uncond_batch["enc_segment"]
        enc_seg = torch.cat(
            [F.pad(enc_seg, (0, le - enc_seg.shape[1])), F.pad(seg_u, (0, le - seg_u.shape[1]))]
        )
    b2 = enc.shape[0]
    b = b2 // 2 if guided else b2
    device = enc.device
    x_mask = (enc_seg != 0)[:, None, None, :]
    if bool(x_mask.all()):
        x_mask = None  # no encoder padding: SDPA without a mask is cheaper
    cross_kv = [blk.cross_attn.project_kv(enc) for blk in model.decoder]
    caches: list[dict] = [{"capacity": steps} for _ in model.decoder]
    modality = model.decoder_modality(torch.full((b2, 1), DEC_MODALITY[target], device=device))
    if getattr(model, "decoder_state", None) is not None or getattr(model, "decoder_text", None) is not None:
        # Every decoder input of a row carries its example's state and words (config.decoder_state,
        # config.decoder_text).
        parts = [(batch, enc[:b])] + ([(uncond_batch, enc[b:])] if guided else [])
        rows = []
        for part, part_enc in parts:
            cond = model.example_condition(part, part_enc[:, : part["enc_ids"].shape[1]])
            per_row = cond.new_zeros(part["enc_ids"].shape[0], cond.shape[-1])
            rows.append(per_row.index_copy(0, part["example_row"], cond))
        modality = modality + torch.cat(rows)[:, None]
    start, _ = model.vocab.output_range(target)
    # Per-call constants, hoisted out of the step loop: every step's RoPE tables and the
    # modality's output table (fp32, as model.logits scores).
    rope_cos, rope_sin = rope_tables(
        rope_angles(torch.arange(steps, device=device)[None, :, None], None, cfg.head_dim, cfg.rope_base)
    )
    table = model.output_table(target)[0].float().t()
    pointing = getattr(model, "pointer", None) is not None and model.pointer_bins(target) is not None
    if pointing:
        if guided:
            raise ValueError("the pointer readout scores text and action targets, which take no guidance")
        context = model.pointer_context(batch, enc)
        allowed = (batch["enc_kind"] != KIND["pad"])[:, None, :]  # one example per row: all its tokens
        select = torch.ones(b2, 1, dtype=torch.bool, device=device)
    tokens = torch.full((b2, steps + 1), BOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    greedy = not do_sample or temperature <= 0
    all_logits = []
    for step in range(steps):
        if use_cache:
            y = model.token_embedding(tokens[:, step : step + 1]) + modality
            angles = rope_cos[:, :, step : step + 1], rope_sin[:, :, step : step + 1]
            mask = None
        else:
            # Full recomputation over the prefix (the baseline the KV cache is measured against).
            n = step + 1
            y = model.token_embedding(tokens[:, :n]) + modality
            angles = rope_cos[:, :, :n], rope_sin[:, :, :n]
            mask = torch.ones(n, n, dtype=torch.bool, device=device).tril()[None, None]
        for blk, cache, kv in zip(model.decoder, caches, cross_kv):
            y = blk(y, mask, angles, None, x_mask, cross_kv=kv, cache=cache if use_cache else None)
        with full_precision(y):
            last = model.decoder_norm(y[:, -1:])
            logits = last[:, 0].float() @ table
            if pointing:
                logits = model.pointed_logits(logits, last, select, target, context, allowed)
        if guided:
            logp = F.log_softmax(logits, -1)
            logp = (1 + guidance_scale) * logp[:b] - guidance_scale * logp[b:]
            logits = logp
        elif greedy:
            logp = logits  # argmax of the logits is the argmax of their log-softmax
        else:
            logp = F.log_softmax(logits, -1)
        if return_logits:
            all_logits.append(logits[:b])
        idx = sample_next(logp, do_sample, temperature, top_p, generator)
        if target == "text":
            idx = torch.where(finished, torch.full_like(idx, EOS_ID - start), idx)
            finished |= idx == EOS_ID - start
        nxt = idx + start
        tokens[:, step + 1] = nxt.repeat(2) if guided else nxt
        if target == "text" and bool(finished.all()):
            tokens = tokens[:, : step + 2]
            break
    out = tokens[:b, 1:]
    if return_logits:
        return out, torch.stack(all_logits, 1)
    return out


@torch.inference_mode()
def generate_from_examples(
    model, processor, examples: list, target: str, guidance_scale: float = 0.0, **kwargs: Any
) -> list:
    """Examples (their targets are ignored) -> decoded outputs, one per example:
    text -> str, action -> (K, D) float32, image -> (H, W, 3) uint8, audio -> (N,) float32 at 16 kHz."""
    if target not in TARGET_MODALITIES:
        raise ValueError(f"unknown target modality {target!r}; expected one of {TARGET_MODALITIES}")
    cfg = model.config
    device = next(model.parameters()).device
    encoded = [processor.encode_inputs(e, target) for e in examples]
    batch = to_device(collate(encoded, cfg, packed=False), device)
    if target == "action":
        if processor.action_tokenizer is None:
            raise RuntimeError("action generation needs action statistics in the processor")
        kwargs.setdefault("num_tokens", cfg.action_chunk_size * processor.action_tokenizer.dim)
    if guidance_scale > 0:
        uncond = [processor.encode_inputs(replace(e, text=GENERIC_IMAGE_PROMPT), target) for e in examples]
        kwargs["uncond_batch"] = to_device(collate(uncond, cfg, packed=False), device)
    was_training = model.training
    if was_training:  # toggling walks every submodule (~2 ms for tiny): only when needed
        model.eval()
    try:
        ids = generate(model, batch, target, guidance_scale=guidance_scale, **kwargs)
    finally:
        if was_training:
            model.train()
    ids = ids[0] if isinstance(ids, tuple) else ids
    decode = {
        "text": processor.decode_text,
        "action": processor.decode_actions,
        "image": processor.decode_image,
        "audio": processor.decode_audio,
    }[target]
    return [decode(row.cpu().tolist()) for row in ids]
