"""The Unified-IO 2 core: vocabulary, tokenizers, encoders, the encoder-decoder transformer, generation."""
