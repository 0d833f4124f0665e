"""Pointer readout: location and pixel-coordinate tokens read off where the decoder looks in the image.

A plain encoder-decoder finds the named object (cross-attention lands on it) but cannot, at small
scale and in minutes, learn to turn "which patch" into a location token: cross-attention returns
features, not positions. The pointer closes that gap. At every decoder position a small attention
(its own query and key projections) runs over the example's image tokens; each patch carries its
centre plus a learned, zero-initialised sub-patch offset read from its own features; the attention
mass is spread over coordinate bins by a Gaussian around each patch's row (a y bin) or column
(an x bin). A gate from the decoder state mixes the y spread, the x spread and a uniform
distribution (for tokens that are not coordinates), and the log of that mixture is added to the
bins' logits: a product of experts, so the model still writes every token through its one
vocabulary (UIO-2's interface: points and boxes as location tokens).

The query also reads the instruction's words (``pointer_words``): an attention of its own over the
example's text tokens' embeddings (and speech tokens' encoder outputs) adds "the red cube" to the
query directly. Measured on the pointing proxy (benchmarks/pointing_proxy.py, 6000 fresh frames,
batch 32, one thread): handing the query the named object as an oracle made the loss fall about
3x faster than the decoder state alone, so carrying the word to the pointer, not seeing the
objects, was the slow part. Reading the words: 9.6 / 4.1 / 3.2 px mean error at 1 / 3 / 6 min,
where the decoder state alone gave 19.7 / 18.8 / 7.0 (a FiLM CNN on the same frames: 1.9 / 1.2 / 0.9).
With several heads (``word_heads``) the query reads the colour and the shape at once: with one,
most misses were another object of the same colour.

With ``shift`` the decoder state also moves every patch's centre by one (dy, dx) of its own, up to
``MAX_SHIFT`` patches, zero-initialised: the product of experts floors every bin far from the patches
attended, so without it a waypoint can only be written where attention lands, and the end of a
drawer's stroke (5-9 cm of bare drawer or table in front of its handle, the direction said by one
word) was never written: the demo's policy aimed within 2.6 cm of the handle on every drawer
episode, held-out or trained on. With it the point can be "the handle, moved". Measured on the demo
(one run each): 50% against 43% of held-out episodes with text, mostly pick-and-place; the drawer
itself stayed at 5-10%.

The patch loss (``patch_nll``, ``ModelConfig.pointer_patch_loss``) scores the attention itself on
the 2D place of a target point; with it and 4 word heads the pointing proxy reads 4.4 / 3.9 / 2.2 px.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from model.layers import full_precision

# Width of the patch loss's neighbourhood, in patches: the patch holding the point and a little of
# its neighbours (a point near a patch edge belongs to both).
PATCH_SIGMA = 0.5
MAX_SHIFT = 3.0  # patches: the furthest the decoder state moves the patches' centres (``shift``)


class PointerContext(NamedTuple):
    """What every pointer call of one encoder pass shares (per encoder token)."""

    keys: torch.Tensor  # (R, Le, dim) the image tokens' keys
    centres: torch.Tensor  # (R, Le, 2) patch centres (y, x) in image fractions, 0 off the image
    is_image: torch.Tensor  # (R, Le) bool: what the query can point at (image patches, a state point)
    is_words: torch.Tensor  # (R, Le) bool: the instruction's tokens, text or speech
    word_keys: torch.Tensor | None  # (R, Le, dim) keys and values of the words the query reads
    word_values: torch.Tensor | None
    shift_keys: torch.Tensor | None = None  # (R, Le, dim) keys and (R, Le, 2) values of the words
    shift_values: torch.Tensor | None = None  # the shift reads (``shift_words``)


class PointerReadout(nn.Module):
    def __init__(
        self,
        d_model: int,
        dim: int = 64,
        sigma: float = 0.25,
        words: bool = False,
        word_heads: int = 1,
        word_context: bool = False,
        shift: bool = False,
        word_gate: bool = False,
        shift_words: bool = False,
    ):
        super().__init__()
        self.q = nn.Linear(d_model, dim, bias=False)
        self.k = nn.Linear(d_model, dim, bias=False)
        self.offset = nn.Linear(d_model, 2, bias=False)  # (dy, dx) in patches, from the patch's features
        self.gate = nn.Linear(d_model, 3, bias=False)  # y bins / x bins / not a coordinate
        # (dy, dx) in patches from the decoder state, added to every patch centre (module docstring).
        self.shift = nn.Linear(d_model, 2, bias=False) if shift else None
        self.sigma = sigma  # Gaussian width in patches
        # The query's own attention over the instruction's words (module docstring): "the red
        # cube" reaches the pointer without waiting for the decoder's cross-attention to carry it.
        self.words = words
        self.word_heads = word_heads
        if words:
            if dim % word_heads:
                raise ValueError(f"pointer dim {dim} must split into {word_heads} word heads")
            self.word_q = nn.Linear(d_model, dim, bias=False)
            self.word_k = nn.Linear(d_model, dim, bias=False)
            self.word_v = nn.Linear(d_model, dim, bias=False)
        # Keys that also see each word in its sentence (``word_context``): see ``prepare``.
        self.word_context = words and word_context
        if self.word_context:
            self.word_k_context = nn.Linear(d_model, dim, bias=False)
        # How much of the words each decoder position takes (``word_gate``): see ``query``.
        self.word_gate = nn.Linear(d_model, word_heads, bias=False) if words and word_gate else None
        # The shift's own read of the words (``shift_words``): see ``_shift``.
        if shift_words and not shift:
            raise ValueError("pointer_shift_words moves the pointer's shift: it needs pointer_shift=True")
        self.shift_words = shift_words
        if shift_words:
            self.shift_q = nn.Linear(d_model, dim, bias=False)
            self.shift_k = nn.Linear(d_model, dim, bias=False)
            self.shift_v = nn.Linear(d_model, 2, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The transformer's std 0.02. A unit-scale init (1/sqrt(d)) was measured beside it on the
        # pointing proxy: better at 3 min (15-17 vs 20 px), worse at 6 (14.7 vs 8.8 px), one run each.
        nn.init.normal_(self.q.weight, std=0.02)
        nn.init.normal_(self.k.weight, std=0.02)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.gate.weight)
        if self.shift is not None:
            nn.init.zeros_(self.shift.weight)  # starts where the patches are
        if self.words:
            # Small query and keys: the attention starts near the words' mean (scores of a few
            # hundredths), which already names the object, and both get a gradient from the first
            # step (zero keys and a zero query would stay zero for good). Unit-scale values: the
            # words move the pointer's query from the first step (at std 0.02 the escape from the
            # constant answer came late and varied by seed on the pointing proxy: 6-18 px at 600
            # steps, 4.6-8.6 at unit scale).
            nn.init.normal_(self.word_q.weight, std=0.02)
            nn.init.normal_(self.word_k.weight, std=0.02)
            nn.init.normal_(self.word_v.weight, std=self.word_v.in_features**-0.5)
        if self.word_context:
            nn.init.zeros_(self.word_k_context.weight)  # starts as the bag of words, learns the order
        if self.word_gate is not None:
            nn.init.zeros_(self.word_gate.weight)  # 2 sigmoid(0) = 1: starts as the ungated read
        if self.shift_words:
            # Near-uniform attention at first (the words' mean already differs by the verb); zero
            # values: it starts as the state-only shift.
            nn.init.normal_(self.shift_q.weight, std=0.02)
            nn.init.normal_(self.shift_k.weight, std=0.02)
            nn.init.zeros_(self.shift_v.weight)

    def prepare(
        self,
        enc: torch.Tensor,
        is_image: torch.Tensor,
        is_words: torch.Tensor,
        patch_rc: torch.Tensor,
        grid: int,
        words: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
    ) -> PointerContext:
        """Per encoder token: the image tokens' keys and centres, and the words' keys and values.

        ``words`` (R, Le, d): what the query reads at the word positions (UnifiedIO passes the
        text tokens' own embeddings); the encoder output where None. ``points`` (R, Le, 2): image
        fractions (row, column) of tokens that stand at a point without being a patch (the state
        token at the hand's pixel: ``state_point``), NaN elsewhere; those join the patches the
        query looks at, centred on their point."""
        with full_precision(enc):
            x = enc.float()
            keys = self.k(x) / self.q.out_features**0.5
            offset = self.offset(x).clamp(-1.0, 1.0)  # at most a patch away from its centre
            centres = (patch_rc.float() + 0.5 + offset) / grid
            if points is not None:
                # The hand's pixel as a candidate: a waypoint "where the hand is, or a little ahead"
                # (a grasp, a lift, a drawer's stroke) is written from the state, exactly, instead of
                # from whichever patch holds the hand (measured: the demo's drawer policy wrote one
                # of two pixel rows at every stroke step, wherever the hand was).
                has_point = points.isfinite().all(-1)
                centres = torch.where(has_point[..., None], points.nan_to_num() + offset / grid, centres)
                is_image = is_image | has_point
            centres = centres.masked_fill(~is_image[..., None], 0.0)
            word_keys = word_values = shift_keys = shift_values = None
            w = x if words is None else words.float()
            if self.shift_words:
                shift_keys = self.shift_k(w) / self.shift_k.out_features**0.5
                shift_values = self.shift_v(w)
            if self.words:
                word_keys = self.word_k(w)
                if self.word_context:
                    # A word's own embedding says what it is, not what it belongs to: in "stack the
                    # cyan cube on the blue cube" the bag {cyan, blue, cube, cube} cannot say which
                    # cube to pick up first. The encoder output at the word has read the sentence, so
                    # keys from it can pick "the first noun phrase's colour" while the values stay
                    # the words themselves.
                    word_keys = word_keys + self.word_k_context(x)
                word_keys = word_keys / (self.q.out_features // self.word_heads) ** 0.5
                word_values = self.word_v(w)
        return PointerContext(
            keys, centres, is_image, is_words, word_keys, word_values, shift_keys, shift_values
        )

    def query(self, h: torch.Tensor, context: PointerContext, r: int, ok: torch.Tensor) -> torch.Tensor:
        """(P, dim) queries for decoder states h of row r; ok (P, Le): the encoder tokens of each one's example."""
        q = self.q(h)
        if not self.words:
            return q
        ok = ok & context.is_words[r]
        cols = ok.any(0).nonzero()[:, 0]
        if len(cols) == 0:
            return q
        heads = self.word_heads
        wq = self.word_q(h).unflatten(-1, (heads, -1))  # (P, heads, dim / heads)
        wk = context.word_keys[r, cols].unflatten(-1, (heads, -1))
        wv = context.word_values[r, cols].unflatten(-1, (heads, -1))
        attn = masked_softmax(torch.einsum("phd,chd->phc", wq, wk), ok[:, None, cols])
        read = torch.einsum("phc,chd->phd", attn, wv)  # (P, heads, dim / heads)
        if self.word_gate is not None:
            # The words pull the query to what they name, at every position alike: the drawer's
            # "drawer" held the pointer on the handle at the stroke too (the demo's text policy
            # stalled there on 20 of 20 episodes; with the words cut at inference 5 of 20 opened
            # or closed it, and reach fell from 18 to 2). The decoder state scales each head's
            # read by 0-2, so a stage can let go of the words the others need.
            read = read * (2 * torch.sigmoid(self.word_gate(h)))[..., None]
        return q + read.flatten(1)

    def log_probs(
        self,
        hidden: torch.Tensor,
        context: PointerContext,
        allowed: torch.Tensor,
        select: torch.Tensor,
        bins: int,
        grid: int,
    ) -> torch.Tensor:
        """(P, bins) log-probabilities over coordinate bins at the P positions ``select`` marks.

        hidden (R, Ld, d) decoder states; allowed (R, Ld, Le): the encoder tokens of each position's
        own example (it points at their image tokens and reads their words); select (R, Ld) bool.
        Rows come out in ``select.nonzero()`` order (as ``hidden[select]``); a position whose
        example has no image gets zeros (no change).
        """
        bin_centres = (torch.arange(bins, device=hidden.device, dtype=torch.float32) + 0.5) / bins
        width = self.sigma / grid
        out = []
        with full_precision(hidden):
            for _, pos, attn, centres, h in self._attend(hidden, context, allowed, select, grid):
                if attn is None:
                    out.append(hidden.new_zeros(len(pos), bins, dtype=torch.float32))
                    continue
                # Each patch's Gaussian over the bin centres, normalised over the bins: (P, patches, bins).
                spread_y = torch.softmax(-0.5 * ((bin_centres - centres[..., 0:1]) / width) ** 2, -1)
                spread_x = torch.softmax(-0.5 * ((bin_centres - centres[..., 1:2]) / width) ** 2, -1)
                gate = torch.softmax(self.gate(h), -1)
                if len(centres) == 1:  # no shift: one spread for every position
                    read_y, read_x = attn @ spread_y[0], attn @ spread_x[0]
                else:
                    read_y = torch.einsum("pc,pcb->pb", attn, spread_y)
                    read_x = torch.einsum("pc,pcb->pb", attn, spread_x)
                mix = gate[:, 0:1] * read_y + gate[:, 1:2] * read_x + gate[:, 2:3] / bins
                log_p = torch.log(mix + 1e-6 / bins)
                has_image = attn.sum(-1, keepdim=True) > 0
                out.append(torch.where(has_image, log_p, torch.zeros_like(log_p)))
        if not out:
            return hidden.new_zeros(0, bins, dtype=torch.float32)
        return torch.cat(out)

    def patch_nll(
        self,
        hidden: torch.Tensor,
        context: PointerContext,
        allowed: torch.Tensor,
        select: torch.Tensor,
        points: torch.Tensor,
        grid: int,
    ) -> torch.Tensor:
        """(P,) -log of the attention mass near each selected position's image point (the patch loss).

        points (R, Ld, 2): the (row, column) image fractions a target token's pointer should look
        at. The coordinate loss of ``log_probs`` scores the row and the column apart, so the y
        token's attention may rest on any patch of the right row (and the x token's on the column):
        the object is found only where the two meet, slowly. This scores the 2D place itself: the
        mass within about half a patch (PATCH_SIGMA) of the point, with the learned sub-patch
        offsets. On the pointing proxy it took the first minute's mean error from 9.6 to 4.0 px.
        Positions without an image point get 0.
        """
        out = []
        width = PATCH_SIGMA / grid
        with full_precision(hidden):
            for r, pos, attn, centres, _ in self._attend(hidden, context, allowed, select, grid):
                if attn is None:
                    out.append(hidden.new_zeros(len(pos), dtype=torch.float32))
                    continue
                d2 = (centres - points[r, pos].float()[:, None]).pow(2).sum(-1)  # (P, patches)
                near = (attn * torch.exp(-0.5 * d2 / width**2)).sum(-1)
                out.append(torch.where(attn.sum(-1) > 0, -torch.log(near + 1e-6), torch.zeros_like(near)))
        if not out:
            return hidden.new_zeros(0, dtype=torch.float32)
        return torch.cat(out)

    def _shift(self, h: torch.Tensor, context: PointerContext, r: int, ok: torch.Tensor) -> torch.Tensor:
        """(P, 2) pre-tanh (dy, dx) of the P decoder states h of row r; ok (P, Le) as in ``query``.

        With ``shift_words`` the shift also reads the instruction's words through an attention of
        its own. With the hand's pixel as a candidate the pointer looked at the hand on 99.5% of a
        drawer stroke's steps and wrote it moved by one fixed shift (-2.2 px) whatever the verb:
        the stroke is "the hand, moved" one way or the other, and only "open" / "shut" says which,
        which the decoder state did not carry (nor did it through cross-attention before; handing
        every decoder position the pooled words, ``ModelConfig.decoder_text``, read the verb but
        disturbed the pointing the other tasks need). Here the words move only the shift.
        Measured on the demo with the hand's pixel (run sw2, seed 0): 42% / 42% against 47% / 47%
        without it, the stroke's rows unchanged; off in the demo."""
        shift = self.shift(h)
        if not self.shift_words:
            return shift
        ok = ok & context.is_words[r]
        cols = ok.any(0).nonzero()[:, 0]
        if len(cols) == 0:
            return shift
        scores = self.shift_q(h) @ context.shift_keys[r, cols].t()
        return shift + masked_softmax(scores, ok[:, cols]) @ context.shift_values[r, cols]

    def _attend(
        self,
        hidden: torch.Tensor,
        context: PointerContext,
        allowed: torch.Tensor,
        select: torch.Tensor,
        grid: int,
    ):
        """Per row with selected positions: (r, positions, attention (P, patches), patch centres, states).

        The attention of each selected position over its own example's image tokens (the 64 of
        them, not the whole row), and the patches' centres as each position sees them: (P, patches,
        2) moved by its ``shift``, or (1, patches, 2) as they are without one. None where no
        position of the row has an image."""
        for r in range(hidden.shape[0]):
            pos = select[r].nonzero()[:, 0]
            if len(pos) == 0:
                continue
            mine = allowed[r, pos]
            images = mine & context.is_image[r]
            cols = images.any(0).nonzero()[:, 0]
            h = hidden[r, pos].float()
            if len(cols) == 0:
                yield r, pos, None, None, h
                continue
            attn = masked_softmax(
                self.query(h, context, r, mine) @ context.keys[r, cols].t(), images[:, cols]
            )
            centres = context.centres[r, cols][None]
            if self.shift is not None:
                move = (MAX_SHIFT / grid) * torch.tanh(self._shift(h, context, r, mine))
                centres = centres + move[:, None, :]
            yield r, pos, attn, centres, h


def masked_softmax(scores: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim where ``ok``; all zeros for a row with nothing allowed (not NaN)."""
    scores = scores.masked_fill(~ok, float("-inf")).masked_fill(~ok.any(-1, keepdim=True), 0.0)
    return torch.softmax(scores, -1).masked_fill(~ok, 0.0)


def pointer_mask(dec_segment: torch.Tensor, enc_segment: torch.Tensor) -> torch.Tensor:
    """(R, Ld, Le): a decoder position reads the encoder tokens of its own example only."""
    return (dec_segment[:, :, None] == enc_segment[:, None, :]) & (dec_segment[:, :, None] > 0)


def add_pointer(logits: torch.Tensor, log_p: torch.Tensor, offset: int) -> torch.Tensor:
    """Add (..., bins) pointer log-probabilities to the slice of ``logits`` starting at ``offset``."""
    bins = log_p.shape[-1]
    return torch.cat(
        [logits[..., :offset], logits[..., offset : offset + bins] + log_p, logits[..., offset + bins :]], -1
    )
