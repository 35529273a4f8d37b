"""Tokenization: byte-level BPE training and encoding, special tokens, batching, real vocabularies."""

from labkit.tokenize.incremental import IncrementalDecoder

__all__ = ["IncrementalDecoder"]
