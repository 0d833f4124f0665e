"""The unified vocabulary's layout and the text / location tokenizers."""

from __future__ import annotations

import pytest

from model.tokenizers import LocationTokenizer, TextTokenizer, UnifiedTextCodec
from model.vocabulary import EOS_ID, Vocabulary


def test_vocabulary_segments_are_disjoint_and_saved(tmp_path, tiny_config):
    v = Vocabulary.from_config(tiny_config)
    segs = sorted(v.segments.values(), key=lambda s: s.start)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    assert v.sizes["location"] == 1000 and v.size % 128 == 0 and v.size >= v.used_size
    assert v.output_range("text") == (EOS_ID, v.segments["sentinel"].end)
    v.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").segments == v.segments
    assert len({v.prefix_id(m, o) for m, o in v.prefixes}) == 8
    with pytest.raises(ValueError, match=r"location index must be in \[0, 1000\), got 1000"):
        v.location_id(1000)


def test_text_codec_round_trip_with_locations_and_sentinels(processor):
    text = "the red block is at <loc_12><loc_40><loc_300><loc_999> <extra_id_0> <image>"
    ids = processor.text.encode(text)
    assert processor.text.decode(ids) == text
    assert processor.text.decode(ids + [EOS_ID] + ids) == text  # stops at EOS


def test_bpe_save_load(tmp_path, text_tokenizer):
    text_tokenizer.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    s = "push the blue drawer, unseen wörds too"
    assert again.encode(s) == text_tokenizer.encode(s) and again.decode(again.encode(s)) == s


def test_sentencepiece_option(tmp_path, tiny_config):
    tok = TextTokenizer.from_sentencepiece()
    assert tok.vocab_size == 32000
    tok.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    assert again.decode(again.encode("open the drawer")) == "open the drawer"
    with pytest.raises(ValueError, match="text_vocab_size >= 32000"):
        UnifiedTextCodec(Vocabulary.from_config(tiny_config), tok)


def test_location_boxes_and_points_round_trip():
    loc = LocationTokenizer(1000)
    box = [10.0, 20.0, 50.5, 60.25]
    text = loc.encode_box(box, (96, 128))
    assert text.count("<loc_") == 4
    (back,) = loc.decode_boxes(text, (96, 128))
    assert all(abs(a - b) <= 0.5 * 128 / 1000 + 1e-9 for a, b in zip(back, box))
    # UIO-2 order: y1 first.
    assert loc.bins_in(text)[0] == loc.quantize(20.0, 96)
    (pt,) = loc.decode_points(loc.encode_point([33.0, 7.0], (64, 64)), (64, 64))
    assert abs(pt[0] - 33.0) < 0.04 and abs(pt[1] - 7.0) < 0.04
