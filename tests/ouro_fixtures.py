"""Tiny, deterministic Ouro checkpoints for the tests (looplm.checkpoint, looplm.tiny_tokenizer):
laid out exactly as upstream's, with a small but real byte-level BPE tokenizer, written in well
under a second."""

from __future__ import annotations

from looplm.checkpoint import bf16_round, make_checkpoint, random_weights, tiny_config, to_bf16_bits, write_safetensors
from looplm.tiny_tokenizer import CHATML, CORPUS, SPECIALS, bytes_to_unicode, tokenizer_json, train_bpe

__all__ = [
    "CHATML",
    "CORPUS",
    "SPECIALS",
    "bf16_round",
    "bytes_to_unicode",
    "make_checkpoint",
    "random_weights",
    "tiny_config",
    "to_bf16_bits",
    "tokenizer_json",
    "train_bpe",
    "write_safetensors",
]
