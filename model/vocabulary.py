"""The unified vocabulary: one id space with named segments, saved with every checkpoint.

Layout (in order): special tokens, text BPE, 1000 location bins, span sentinels, modality
markers, objective prefixes, action bins, image codes, audio codes; the total is padded to a
multiple of 128 as UIO-2 does. EOS sits just before the text segment so that a text target's
output segment (EOS + text + locations + sentinels) is one contiguous range: scoring a
modality against its slice of the tied table is UIO-2's per-modality output table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.configuration import ModelConfig

SPECIAL_TOKENS = ("<pad>", "<bos>", "<mask>", "<eos>")
PAD_ID, BOS_ID, MASK_ID, EOS_ID = 0, 1, 2, 3
# Modality reference tokens: the prompt can name an input ("what is in <image>?").
MODALITY_MARKERS = ("<text>", "<image>", "<image_history>", "<audio>", "<audio_history>", "<state>")
# UIO-2's objective prefixes (UL2 modes per target modality), plus ours for actions.
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "text": ("S", "R", "X"),
    "image": ("S", "R"),
    "audio": ("S", "R"),
    "action": ("S",),
}
TARGET_MODALITIES = tuple(OBJECTIVES)
# The order of the segments in the id space.
SEGMENT_ORDER = ("special", "text", "location", "sentinel", "marker", "prefix", "action", "image", "audio")


@dataclass(frozen=True)
class Segment:
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def __contains__(self, token_id: int) -> bool:
        return self.start <= token_id < self.end


class Vocabulary:
    """Named segments of the unified id space; every local index is checked against its segment."""

    def __init__(self, sizes: dict[str, int], pad_to: int = 128):
        missing = [s for s in SEGMENT_ORDER if s not in sizes]
        if missing:
            raise ValueError(f"vocabulary sizes miss segments {missing}")
        self.sizes = {s: int(sizes[s]) for s in SEGMENT_ORDER}
        self.pad_to = pad_to
        self.segments: dict[str, Segment] = {}
        start = 0
        for name in SEGMENT_ORDER:
            self.segments[name] = Segment(start, self.sizes[name])
            start += self.sizes[name]
        self.used_size = start
        self.size = -(-start // pad_to) * pad_to
        self.prefixes = [(m, o) for m, objs in OBJECTIVES.items() for o in objs]

    @classmethod
    def from_config(cls, config: ModelConfig) -> Vocabulary:
        return cls(
            {
                "special": len(SPECIAL_TOKENS),
                "text": config.text_vocab_size,
                "location": config.location_bins,
                "sentinel": config.num_sentinels,
                "marker": len(MODALITY_MARKERS),
                "prefix": sum(len(o) for o in OBJECTIVES.values()),
                "action": config.action_bins,
                "image": config.image_codebook_size,
                "audio": config.audio_codebook_size,
            }
        )

    # -- ids from local indices --------------------------------------------------------------
    def _id(self, segment: str, index: int) -> int:
        seg = self.segments[segment]
        if not 0 <= index < seg.size:
            raise ValueError(f"{segment} index must be in [0, {seg.size}), got {index}")
        return seg.start + index

    def text_id(self, i: int) -> int:
        return self._id("text", i)

    def location_id(self, i: int) -> int:
        return self._id("location", i)

    def sentinel_id(self, i: int) -> int:
        return self._id("sentinel", i)

    def action_id(self, i: int) -> int:
        return self._id("action", i)

    def image_id(self, i: int) -> int:
        return self._id("image", i)

    def audio_id(self, i: int) -> int:
        return self._id("audio", i)

    def marker_id(self, name: str) -> int:
        if name not in MODALITY_MARKERS:
            raise ValueError(f"unknown modality marker {name!r}; expected one of {MODALITY_MARKERS}")
        return self.segments["marker"].start + MODALITY_MARKERS.index(name)

    def prefix_id(self, modality: str, objective: str) -> int:
        """The objective prefix token, e.g. prefix_id("text", "R") is UIO-2's [Text][R]."""
        if (modality, objective) not in self.prefixes:
            raise ValueError(
                f"unknown objective prefix ({modality!r}, {objective!r}); expected one of {self.prefixes}"
            )
        return self.segments["prefix"].start + self.prefixes.index((modality, objective))

    # -- output segments ---------------------------------------------------------------------
    def output_range(self, modality: str) -> tuple[int, int]:
        """[start, end) of the ids a decoder may emit for a target modality."""
        if modality == "text":
            return EOS_ID, self.segments["sentinel"].end
        if modality in ("action", "image", "audio"):
            seg = self.segments[modality]
            return seg.start, seg.end
        raise ValueError(f"unknown target modality {modality!r}; expected one of {TARGET_MODALITIES}")

    def segment_of(self, token_id: int) -> str:
        for name, seg in self.segments.items():
            if token_id in seg:
                return name
        return "padding"

    def __len__(self) -> int:
        return self.size

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "pad_to": self.pad_to,
            "special_tokens": list(SPECIAL_TOKENS),
            "modality_markers": list(MODALITY_MARKERS),
            "objective_prefixes": [f"[{m}][{o}]" for m, o in self.prefixes],
            "segments": {n: {"start": s.start, "size": s.size} for n, s in self.segments.items()},
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        d = json.loads(Path(path).read_text())
        vocab = cls({n: s["size"] for n, s in d["segments"].items()}, pad_to=d.get("pad_to", 128))
        for n, s in d["segments"].items():
            if vocab.segments[n].start != s["start"]:
                raise ValueError(
                    f"vocabulary file {path}: segment {n} starts at {s['start']}, layout gives "
                    f"{vocab.segments[n].start}"
                )
        return vocab

    def check_config(self, config: ModelConfig) -> None:
        """Raise if this vocabulary's segment sizes disagree with the model config."""
        expected = Vocabulary.from_config(config)
        if expected.sizes != self.sizes:
            diff = {
                k: (self.sizes[k], expected.sizes[k])
                for k in self.sizes
                if self.sizes[k] != expected.sizes[k]
            }
            raise ValueError(f"vocabulary does not match the model config (vocab, config): {diff}")
