"""Tokenizers: text (byte-level BPE or SentencePiece), location bins, action bins."""

from model.tokenizers.actions import ActionStats, ActionTokenizer
from model.tokenizers.locations import LocationTokenizer
from model.tokenizers.text import TextTokenizer, UnifiedTextCodec

__all__ = ["ActionStats", "ActionTokenizer", "LocationTokenizer", "TextTokenizer", "UnifiedTextCodec"]
