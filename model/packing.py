"""Dynamic packing: several encoded examples per row, with segment ids, just before the transformer.

Encoders (ViT, AST, resampler, state projection) run per example on the stacked inputs of the
batch; ``collate`` records where each of their output tokens lands in the packed rows
(``*_src`` -> ``*_dst`` index pairs into flattened tensors), so the model scatters them in one
indexing op. Segment ids (0 = padding, 1.. = the example's slot in its row) gate encoder,
decoder and cross attention, and positions restart at 0 for every example: a packed example
sees exactly what it would see alone. ``packed=False`` pads one example per row to the batch
maximum, for comparison. ``unpack`` turns per-token outputs back into per-example tensors.
"""

from __future__ import annotations

from typing import Any

import torch

from model.configuration import ModelConfig
from model.processor import EncodedExample, encoder_length
from model.vocabulary import BOS_ID, MASK_ID, TARGET_MODALITIES

# Encoder token kinds, also the index of the learned modality embedding.
ENC_KINDS = ("pad", "text", "image", "image_history", "audio", "audio_history", "state")
KIND = {k: i for i, k in enumerate(ENC_KINDS)}
# Decoder modality index: 0 = padding, then TARGET_MODALITIES in order.
DEC_MODALITY = {m: i + 1 for i, m in enumerate(TARGET_MODALITIES)}


def plan_rows(
    lengths: list[tuple[int, int]], max_enc: int, max_dec: int, max_per_row: int | None = None
) -> list[list[int]]:
    """First-fit decreasing: example indices per row so that no row exceeds (max_enc, max_dec)."""
    for i, (le, ld) in enumerate(lengths):
        if le > max_enc or ld > max_dec:
            raise ValueError(
                f"example {i} needs {le} encoder / {ld} decoder tokens but a row holds {max_enc} / {max_dec}; "
                "raise max_encoder_len / max_decoder_len or shorten the example"
            )
    order = sorted(range(len(lengths)), key=lambda i: -max(lengths[i][0] / max_enc, lengths[i][1] / max_dec))
    rows: list[list[int]] = []
    fill: list[list[int]] = []
    for i in order:
        le, ld = lengths[i]
        for r, (fe, fd) in enumerate(fill):
            if (
                fe + le <= max_enc
                and fd + ld <= max_dec
                and (max_per_row is None or len(rows[r]) < max_per_row)
            ):
                rows[r].append(i)
                fill[r] = [fe + le, fd + ld]
                break
        else:
            rows.append([i])
            fill.append([le, ld])
    return [sorted(r) for r in rows]


def collate(
    examples: list[EncodedExample],
    config: ModelConfig,
    packed: bool = True,
    max_per_row: int | None = None,
    pad_to_multiple: int = 8,
) -> dict[str, Any]:
    """Encoded examples -> one batch dict of tensors (see module docstring)."""
    if not examples:
        raise ValueError("collate needs at least one example")
    lengths = [(encoder_length(e, config), len(e.target_ids)) for e in examples]
    if packed:
        rows = plan_rows(lengths, config.max_encoder_len, config.max_decoder_len, max_per_row)
    else:
        rows = [[i] for i in range(len(examples))]

    def round_up(n: int) -> int:
        return max(pad_to_multiple, -(-n // pad_to_multiple) * pad_to_multiple)

    le = round_up(max(sum(lengths[i][0] for i in r) for r in rows))
    ld = round_up(max(sum(lengths[i][1] for i in r) for r in rows))
    n_rows = len(rows)

    enc_ids = torch.zeros(n_rows, le, dtype=torch.long)
    enc_kind = torch.zeros(n_rows, le, dtype=torch.long)
    enc_seg = torch.zeros(n_rows, le, dtype=torch.long)
    enc_pos = torch.zeros(n_rows, le, 2, dtype=torch.long)
    enc_2d = torch.zeros(n_rows, le, dtype=torch.bool)
    enc_example = torch.full((n_rows, le), -1, dtype=torch.long)
    # The image point an encoder token stands at (the state token's EncodedExample.state_point), NaN where none.
    enc_point = torch.full((n_rows, le, 2), float("nan"))
    dec_in = torch.zeros(n_rows, ld, dtype=torch.long)
    dec_tgt = torch.zeros(n_rows, ld, dtype=torch.long)
    dec_seg = torch.zeros(n_rows, ld, dtype=torch.long)
    dec_pos = torch.zeros(n_rows, ld, dtype=torch.long)
    dec_mod = torch.zeros(n_rows, ld, dtype=torch.long)
    dec_loss = torch.zeros(n_rows, ld)
    dec_hidden = torch.zeros(n_rows, ld, dtype=torch.bool)
    dec_example = torch.full((n_rows, ld), -1, dtype=torch.long)
    # The image point each target token points at (EncodedExample.points), NaN where none.
    dec_point = torch.full((n_rows, ld, 2), float("nan"))

    # Inputs of every encoder, stacked, and where their output tokens go.
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("image", "image_history", "audio", "audio_history", "state")
    }
    src: dict[str, list[torch.Tensor]] = {k: [] for k in parts}
    dst: dict[str, list[torch.Tensor]] = {k: [] for k in parts}
    count = dict.fromkeys(parts, 0)  # tokens each encoder has produced so far (flattened)
    ig, (ar, ac) = config.image_grid, config.audio_grid
    example_row = torch.zeros(len(examples), dtype=torch.long)
    example_seg = torch.zeros(len(examples), dtype=torch.long)

    for r, row in enumerate(rows):
        pe = pd = 0
        for s, i in enumerate(row, start=1):
            e = examples[i]
            example_row[i], example_seg[i] = r, s

            def put(kind: str, n: int, pos: torch.Tensor, is_2d: bool, r=r, s=s, i=i) -> torch.Tensor:
                nonlocal pe
                sl = slice(pe, pe + n)
                enc_kind[r, sl], enc_seg[r, sl], enc_example[r, sl] = KIND[kind], s, i
                enc_pos[r, sl], enc_2d[r, sl] = pos, is_2d
                flat = torch.arange(pe, pe + n) + r * le
                pe += n
                return flat

            def grid(idx: torch.Tensor, cols: int) -> torch.Tensor:
                return torch.stack([idx // cols, idx % cols], -1)

            if e.state is not None:
                dst["state"].append(put("state", 1, torch.zeros(1, 2, dtype=torch.long), False))
                if e.state_point is not None:
                    enc_point.view(-1, 2)[dst["state"][-1]] = e.state_point.float()
                src["state"].append(torch.tensor([count["state"]]))
                parts["state"].append(e.state[None])
                count["state"] += 1
            if e.image is not None:
                keep = e.image_keep
                dst["image"].append(put("image", len(keep), grid(keep, ig), True))
                src["image"].append(keep + count["image"])
                parts["image"].append(e.image[None])
                count["image"] += ig * ig
            if e.image_history is not None:
                t, n = len(e.image_history), config.image_history_latents
                idx = torch.arange(t * n)
                dst["image_history"].append(put("image_history", t * n, grid(idx, n), True))
                src["image_history"].append(idx + count["image_history"])
                parts["image_history"].append(e.image_history)
                count["image_history"] += t * n
            if e.audio is not None:
                keep = e.audio_keep
                dst["audio"].append(put("audio", len(keep), grid(keep, ac), True))
                src["audio"].append(keep + count["audio"])
                parts["audio"].append(e.audio[None])
                count["audio"] += ar * ac
            if e.audio_history is not None:
                t, n = len(e.audio_history), config.audio_history_latents
                idx = torch.arange(t * n)
                dst["audio_history"].append(put("audio_history", t * n, grid(idx, n), True))
                src["audio_history"].append(idx + count["audio_history"])
                parts["audio_history"].append(e.audio_history)
                count["audio_history"] += t * n
            nt = len(e.text_ids)
            text_pos = torch.stack([torch.arange(nt), torch.zeros(nt, dtype=torch.long)], -1)
            flat = put("text", nt, text_pos, False)
            enc_ids.view(-1)[flat] = e.text_ids

            n = len(e.target_ids)
            sl = slice(pd, pd + n)
            tgt = e.target_ids
            # Teacher forcing: input i holds target i-1. A masked (hidden) target token enters the
            # decoder as <mask> and later positions cannot attend to it (UIO-2 dynamic masking).
            shifted_hidden = torch.cat([torch.zeros(1, dtype=torch.bool), e.hidden[:-1]])
            inp = torch.cat([torch.tensor([BOS_ID]), tgt[:-1]])
            dec_in[r, sl] = torch.where(shifted_hidden, torch.full_like(inp, MASK_ID), inp)
            dec_tgt[r, sl], dec_seg[r, sl], dec_pos[r, sl] = tgt, s, torch.arange(n)
            dec_mod[r, sl], dec_loss[r, sl], dec_hidden[r, sl] = (
                DEC_MODALITY[e.target],
                e.loss_mask,
                shifted_hidden,
            )
            dec_example[r, sl] = i
            if e.points is not None:
                dec_point[r, sl] = e.points
            pd += n

    batch: dict[str, Any] = dict(
        enc_ids=enc_ids,
        enc_kind=enc_kind,
        enc_segment=enc_seg,
        enc_pos=enc_pos,
        enc_2d=enc_2d,
        enc_example=enc_example,
        enc_point=enc_point,
        dec_input_ids=dec_in,
        dec_target_ids=dec_tgt,
        dec_segment=dec_seg,
        dec_pos=dec_pos,
        dec_modality=dec_mod,
        dec_loss_mask=dec_loss,
        dec_hidden=dec_hidden,
        dec_example=dec_example,
        dec_point=dec_point,
        example_row=example_row,
        example_segment=example_seg,
    )
    for k in parts:
        if parts[k]:
            batch[k] = torch.cat(parts[k])
            batch[f"{k}_src"] = torch.cat(src[k])
            batch[f"{k}_dst"] = torch.cat(dst[k])
    enc_real, dec_real = sum(x[0] for x in lengths), sum(x[1] for x in lengths)
    batch["stats"] = dict(
        examples=len(examples),
        rows=n_rows,
        enc_tokens=enc_real,
        dec_tokens=dec_real,
        enc_utilisation=enc_real / (n_rows * le),
        dec_utilisation=dec_real / (n_rows * ld),
        utilisation=(enc_real + dec_real) / (n_rows * (le + ld)),
    )
    batch["targets"] = [e.target for e in examples]
    return batch


def unpack(batch: dict[str, Any], per_token: torch.Tensor) -> list[torch.Tensor]:
    """(rows, dec_len, ...) decoder outputs -> one (target_len, ...) tensor per example, in input order."""
    return [per_token[batch["dec_example"] == i] for i in range(len(batch["example_row"]))]
