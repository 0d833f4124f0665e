"""The multimodal mixture of denoisers (UL2 / Unified-IO 2), at token level.

Each denoiser rewrites an ``EncodedExample`` (model/processor.py, built with the [S]
objective) into one objective and sets its prefix token ([Text][R], [Image][S], ...):

- text targets: [R] span corruption (T5/UL2: 15% noise, mean span 3), [X] extreme corruption
  (50% noise, mean span 32), [S] prefix LM (a random split: the head joins the input, the
  decoder writes the tail);
- image / audio targets: [R] masked denoising (the target enters the encoder with most patches
  dropped; the decoder rebuilds every code, and the codes of masked patches are hidden from
  later decoder positions: UIO-2's dynamic masking), [S] generation (unchanged; a fraction of
  prompts is replaced by a generic one for classifier-free guidance);
- action targets: [S] only.

``MixtureOfDenoisers(config, weights)(encoded, rng)`` picks the objective by weight, or takes
``encoded.meta["objective"]`` when a task sets it (a task's "S" keeps its target whole).
``denoise(encoded, rng, processor)`` is the data module's entry. As in UIO-2, the denoisers are
for pre-training data: an example whose meta sets ``pretraining`` (captions, our alt-text) is
drawn for a denoising objective with probability ``denoise_fraction``; every supervised example
(pointing, boxes, questions, actions, ...) keeps its target whole under [S]. Rewriting those too
moved ``<loc_y>`` into the prompt or put a sentinel first in half the pointing examples.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping

import numpy as np
import torch

from model.configuration import ModelConfig
from model.generation import GENERIC_IMAGE_PROMPT
from model.processor import EncodedExample, Processor
from model.vocabulary import EOS_ID, OBJECTIVES, Vocabulary

DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "text": {"R": 0.4, "S": 0.4, "X": 0.2},
    "image": {"R": 0.5, "S": 0.5},
    "audio": {"R": 0.5, "S": 0.5},
    "action": {"S": 1.0},
}


def _segments(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive integers summing to ``total`` (uniformly random cut points)."""
    if parts <= 1:
        return np.array([total])
    cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def random_spans_noise_mask(
    length: int,
    noise_density: float,
    mean_span: float,
    rng: np.random.Generator,
    max_spans: int | None = None,
) -> np.ndarray:
    """T5's span mask: (length,) bool with about ``noise_density`` of it in spans of mean ``mean_span``.

    Starts with a kept token, so every noise span follows some kept text; needs length >= 2.
    """
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    num_noise = int(np.clip(round(length * noise_density), 1, length - 1))
    num_spans = max(1, round(num_noise / mean_span))
    num_spans = min(num_spans, num_noise, length - num_noise, max_spans or num_spans)
    noise = _segments(num_noise, num_spans, rng)
    keep = _segments(length - num_noise, num_spans, rng)
    mask = np.zeros(length, dtype=bool)
    pos = 0
    for k, n in zip(keep, noise):
        pos += k
        mask[pos : pos + n] = True
        pos += n
    return mask


class Denoisers:
    """The individual denoisers; each returns a new EncodedExample."""

    def __init__(self, config: ModelConfig, vocab: Vocabulary | None = None):
        self.config = config
        self.vocab = vocab if vocab is not None else Vocabulary.from_config(config)

    def _prompt(self, e: EncodedExample) -> torch.Tensor:
        return e.text_ids[1:]  # text_ids[0] is the objective prefix

    def _text_body(self, e: EncodedExample) -> torch.Tensor:
        if e.target != "text":
            raise ValueError(f"text denoisers need a text target, got {e.target!r}")
        t = e.target_ids
        return t[:-1] if len(t) and int(t[-1]) == EOS_ID else t

    def _with(
        self, e: EncodedExample, objective: str, text: torch.Tensor, target: torch.Tensor, **kw
    ) -> EncodedExample:
        prefix = torch.tensor([self.vocab.prefix_id(e.target, objective)])
        n = len(target)
        # A rewritten target points at nothing: its tokens no longer line up with the image points.
        fields = dict(loss_mask=torch.ones(n), hidden=torch.zeros(n, dtype=torch.bool), points=None)
        fields.update(kw)
        return e.replace(
            objective=objective, text_ids=torch.cat([prefix, text]).long(), target_ids=target.long(), **fields
        )

    # -- text -------------------------------------------------------------------------------------
    def span_corruption(
        self,
        e: EncodedExample,
        rng: np.random.Generator,
        noise_density: float = 0.15,
        mean_span: float = 3.0,
        objective: str = "R",
    ) -> EncodedExample:
        """[R] (or [X] with heavier settings): spans of the target -> sentinels in the input; the
        decoder writes each sentinel followed by its span, then EOS."""
        body = self._text_body(e)
        if len(body) < 2:
            return self.prefix_lm(e, rng)  # too short to corrupt
        mask = random_spans_noise_mask(len(body), noise_density, mean_span, rng, self.config.num_sentinels)
        inp, tgt = [], []
        span = -1
        for i, tok in enumerate(body.tolist()):
            if mask[i]:
                if i == 0 or not mask[i - 1]:
                    span += 1
                    sentinel = self.vocab.sentinel_id(span)
                    inp.append(sentinel)
                    tgt.append(sentinel)
                tgt.append(tok)
            else:
                inp.append(tok)
        tgt.append(EOS_ID)
        return self._with(e, objective, torch.cat([self._prompt(e), torch.tensor(inp)]), torch.tensor(tgt))

    def extreme_corruption(self, e: EncodedExample, rng: np.random.Generator) -> EncodedExample:
        """[X]: UL2's extreme denoising, half of the text in long spans."""
        return self.span_corruption(e, rng, noise_density=0.5, mean_span=32.0, objective="X")

    def prefix_lm(self, e: EncodedExample, rng: np.random.Generator) -> EncodedExample:
        """[S] for text: a random head of the target joins the input; the decoder continues it."""
        body = self._text_body(e)
        if len(body) < 2:
            return self._with(e, "S", self._prompt(e), e.target_ids)
        split = int(rng.integers(1, len(body)))
        head, tail = body[:split], body[split:]
        return self._with(
            e, "S", torch.cat([self._prompt(e), head]), torch.cat([tail, torch.tensor([EOS_ID])])
        )

    # -- image / audio ----------------------------------------------------------------------------
    def _code_grid(self, patch_grid: tuple[int, int], n_codes: int) -> tuple[int, int]:
        pr, pc = patch_grid
        scale = math.sqrt(n_codes / (pr * pc))
        rows = max(1, round(pr * scale))
        cols = n_codes // rows
        if rows * cols != n_codes:
            raise ValueError(
                f"{n_codes} target codes do not form a grid with the patch grid's aspect {pr}x{pc}"
            )
        return rows, cols

    def masked_denoising(
        self, e: EncodedExample, rng: np.random.Generator, mask_ratio: float = 0.75
    ) -> EncodedExample:
        """[R] for images / audio: the target enters the encoder with ``mask_ratio`` of its patches
        dropped; the decoder rebuilds all codes, and the codes under dropped patches are hidden."""
        if e.target not in ("image", "audio"):
            raise ValueError(f"masked denoising needs an image or audio target, got {e.target!r}")
        if e.target_input is None:
            raise ValueError(
                "masked denoising needs the target as an encoder input (EncodedExample.target_input)"
            )
        cfg = self.config
        grid = (cfg.image_grid, cfg.image_grid) if e.target == "image" else cfg.audio_grid
        n_patches = grid[0] * grid[1]
        n_mask = int(np.clip(round(n_patches * mask_ratio), 1, n_patches - 1))
        masked = np.zeros(n_patches, dtype=bool)
        masked[rng.permutation(n_patches)[:n_mask]] = True
        keep = torch.from_numpy(np.flatnonzero(~masked)).long()
        rows, cols = self._code_grid(grid, len(e.target_ids))
        r = np.arange(rows)[:, None] * grid[0] // rows
        c = np.arange(cols)[None, :] * grid[1] // cols
        hidden = torch.from_numpy(masked.reshape(grid)[r, c].reshape(-1))
        inputs = {e.target: e.target_input, f"{e.target}_keep": keep}
        return self._with(e, "R", self._prompt(e), e.target_ids, hidden=hidden, **inputs)

    def generation(
        self,
        e: EncodedExample,
        rng: np.random.Generator,
        uncond_text: torch.Tensor | None = None,
        cfg_dropout: float = 0.0,
    ) -> EncodedExample:
        """[S]: the target as given; with ``cfg_dropout`` the prompt is replaced by a generic one
        (UIO-2 does this for 10% of image generation prompts, for classifier-free guidance)."""
        prompt = self._prompt(e)
        if uncond_text is not None and cfg_dropout > 0 and rng.random() < cfg_dropout:
            prompt = uncond_text
        return self._with(
            e, "S", prompt, e.target_ids, loss_mask=e.loss_mask, hidden=e.hidden, points=e.points
        )


class MixtureOfDenoisers:
    """Pick an objective per example by weight and apply its denoiser."""

    def __init__(
        self,
        config: ModelConfig,
        weights: Mapping[str, Mapping[str, float]] | None = None,
        vocab: Vocabulary | None = None,
        uncond_text: torch.Tensor | None = None,
        cfg_dropout: float = 0.1,
    ):
        self.denoisers = Denoisers(config, vocab)
        weights = {m: dict(w) for m, w in (weights or DEFAULT_WEIGHTS).items()}
        for modality, w in weights.items():
            if modality not in OBJECTIVES:
                raise ValueError(
                    f"unknown target modality {modality!r} in denoiser weights; expected {tuple(OBJECTIVES)}"
                )
            bad = [o for o in w if o not in OBJECTIVES[modality]]
            if bad or any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
                raise ValueError(
                    f"weights for {modality} must be non-negative over {OBJECTIVES[modality]} with a positive sum, got {w}"
                )
        self.weights = weights
        self.uncond_text = uncond_text
        self.cfg_dropout = cfg_dropout

    def choose(self, target: str, rng: np.random.Generator) -> str:
        w = self.weights.get(target, {"S": 1.0})
        names = list(w)
        p = np.array([w[n] for n in names], dtype=np.float64)
        return names[int(rng.choice(len(names), p=p / p.sum()))]

    def __call__(self, e: EncodedExample, rng: np.random.Generator) -> EncodedExample:
        """A task that sets meta["objective"] gets it ("S" keeps a supervised target whole); the
        others are sampled by weight (text "S" is then UL2's prefix LM)."""
        fixed = e.meta.get("objective")
        objective = fixed or self.choose(e.target, rng)
        if objective not in OBJECTIVES[e.target]:
            raise ValueError(
                f"objective {objective!r} is not defined for {e.target} targets; expected {OBJECTIVES[e.target]}"
            )
        d = self.denoisers
        if e.target == "text" and not (fixed and objective == "S"):
            return {"R": d.span_corruption, "X": d.extreme_corruption, "S": d.prefix_lm}[objective](e, rng)
        if objective == "R":
            return d.masked_denoising(e, rng)
        dropout = self.cfg_dropout if e.target == "image" else 0.0
        return d.generation(e, rng, self.uncond_text, dropout)


_MIXTURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def denoise(
    encoded: EncodedExample,
    rng: np.random.Generator,
    processor: Processor,
    weights: Mapping[str, Mapping[str, float]] | None = None,
    denoise_fraction: float = 0.5,
) -> EncodedExample:
    """Apply the mixture to ``denoise_fraction`` of the pre-training examples (meta ``pretraining``)
    that set no objective; supervised examples, and every example whose meta sets "S", keep their
    target whole."""
    if not 0.0 <= denoise_fraction <= 1.0:
        raise ValueError(f"denoise_fraction must be in [0, 1], got {denoise_fraction}")
    key = None if weights is None else repr(sorted((m, sorted(w.items())) for m, w in weights.items()))
    cached = _MIXTURES.get(processor)
    if cached is None or cached[0] != key:
        uncond = (
            torch.tensor(processor.text.encode(GENERIC_IMAGE_PROMPT)) if processor.text is not None else None
        )
        cached = (key, MixtureOfDenoisers(processor.config, weights, processor.vocab, uncond))
        _MIXTURES[processor] = cached
    mixture = cached[1]
    if encoded.meta.get("objective") is None and (
        not encoded.meta.get("pretraining") or rng.random() >= denoise_fraction
    ):
        return mixture(encoded.replace(meta={**encoded.meta, "objective": "S"}), rng)
    return mixture(encoded, rng)
