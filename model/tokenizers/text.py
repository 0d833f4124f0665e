"""Text tokenizers (a byte-level BPE trained on our own text, or a LLaMA-style SentencePiece
model) and the codec that writes text with location tokens, sentinels and markers into the
unified vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from model.vocabulary import EOS_ID, MODALITY_MARKERS, Vocabulary

META_FILE = "text_tokenizer.json"
BPE_FILE = "text_bpe.json"
SPM_FILE = "text_spm.model"


def default_sentencepiece_path() -> Path:
    """The 32k LLaMA-style SentencePiece model shipped in the mistral-common wheel."""
    try:
        import mistral_common
    except ImportError as e:
        raise FileNotFoundError(
            "no SentencePiece model given and mistral-common is not installed "
            "(pip install --no-deps mistral-common; it ships data/tokenizer.model.v1)"
        ) from e
    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.exists():
        raise FileNotFoundError(f"SentencePiece model not found at {path}")
    return path


class TextTokenizer:
    """str <-> local ids in [0, vocab_size). Backends: "bpe" (tokenizers) or "sentencepiece"."""

    def __init__(self, kind: str, backend, blob: bytes):
        if kind not in ("bpe", "sentencepiece"):
            raise ValueError(f"text tokenizer kind must be 'bpe' or 'sentencepiece', got {kind!r}")
        self.kind = kind
        self._backend = backend
        self._blob = blob  # the serialised model, written verbatim by save()

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> TextTokenizer:
        """Train a byte-level BPE on ``texts`` (any str can be encoded: 256 byte symbols are always in)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise ValueError(f"a byte-level BPE needs vocab_size >= 257, got {vocab_size}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        return cls("bpe", tok, tok.to_str().encode())

    @classmethod
    def from_sentencepiece(cls, path: str | Path | None = None) -> TextTokenizer:
        import sentencepiece as spm

        path = Path(path) if path is not None else default_sentencepiece_path()
        blob = path.read_bytes()
        return cls("sentencepiece", spm.SentencePieceProcessor(model_proto=blob), blob)

    @property
    def vocab_size(self) -> int:
        if self.kind == "bpe":
            return self._backend.get_vocab_size()
        return self._backend.get_piece_size()

    def encode(self, text: str) -> list[int]:
        if self.kind == "bpe":
            return self._backend.encode(text).ids
        return self._backend.encode(text, out_type=int)

    def decode(self, ids: list[int]) -> str:
        return self._backend.decode(list(ids))

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        name = BPE_FILE if self.kind == "bpe" else SPM_FILE
        (d / name).write_bytes(self._blob)
        (d / META_FILE).write_text(
            json.dumps({"kind": self.kind, "file": name, "vocab_size": self.vocab_size})
        )

    @classmethod
    def load(cls, directory: str | Path) -> TextTokenizer:
        d = Path(directory)
        if not (d / META_FILE).exists():
            raise FileNotFoundError(f"no {META_FILE} in {d}")
        meta = json.loads((d / META_FILE).read_text())
        blob = (d / meta["file"]).read_bytes()
        if meta["kind"] == "bpe":
            from tokenizers import Tokenizer

            return cls("bpe", Tokenizer.from_str(blob.decode()), blob)
        import sentencepiece as spm

        return cls("sentencepiece", spm.SentencePieceProcessor(model_proto=blob), blob)


# <loc_N>, <extra_id_N> (span sentinels, T5's name) and the modality markers are single tokens.
_SPECIAL = re.compile(
    r"<loc_(\d+)>|<extra_id_(\d+)>|(" + "|".join(re.escape(m) for m in MODALITY_MARKERS) + ")"
)


class UnifiedTextCodec:
    """str <-> ids in the unified vocabulary (text BPE ids offset, plus location/sentinel/marker tokens)."""

    def __init__(self, vocab: Vocabulary, tokenizer: TextTokenizer):
        if tokenizer.vocab_size > vocab.sizes["text"]:
            raise ValueError(
                f"text tokenizer has {tokenizer.vocab_size} ids but the vocabulary's text segment holds "
                f"{vocab.sizes['text']}; set text_vocab_size >= {tokenizer.vocab_size}"
            )
        self.vocab = vocab
        self.tokenizer = tokenizer
        self._text_start = vocab.segments["text"].start

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        pos = 0
        for m in _SPECIAL.finditer(text):
            if m.start() > pos:
                ids += [self._text_start + i for i in self.tokenizer.encode(text[pos : m.start()])]
            if m.group(1) is not None:
                ids.append(self.vocab.location_id(int(m.group(1))))
            elif m.group(2) is not None:
                ids.append(self.vocab.sentinel_id(int(m.group(2))))
            else:
                ids.append(self.vocab.marker_id(m.group(3)))
            pos = m.end()
        if pos < len(text):
            ids += [self._text_start + i for i in self.tokenizer.encode(text[pos:])]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> str, stopping at EOS; tokens of other segments (pad, bos, codes) are dropped."""
        out: list[str] = []
        run: list[int] = []
        segs = self.vocab.segments
        for t in ids:
            t = int(t)
            if t == EOS_ID:
                break
            if t in segs["text"]:
                run.append(t - self._text_start)
                continue
            if run:
                out.append(self.tokenizer.decode(run))
                run = []
            if t in segs["location"]:
                out.append(f"<loc_{t - segs['location'].start}>")
            elif t in segs["sentinel"]:
                out.append(f"<extra_id_{t - segs['sentinel'].start}>")
            elif t in segs["marker"]:
                out.append(MODALITY_MARKERS[t - segs["marker"].start])
        if run:
            out.append(self.tokenizer.decode(run))
        return "".join(out)
