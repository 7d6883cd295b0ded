"""An HF `tokenizers` tokenizer built from a GGUF vocabulary: the independent reference for
looplm's native tokenizer (tests) and its peer in benchmarks/tokenizer_speed.py."""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers


def hf_tokenizer(tokens: list[str], types: list[int], merges: list[str]) -> Tokenizer:
    """GPT-2 byte-level BPE with the `smollm` pre-tokenization (digits one by one, then the GPT-2
    regex); tokens of type 3 (control) become special added tokens."""
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ")) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    return tok


def hf_encode(tok: Tokenizer, text: str, special: bool) -> list[int]:
    """Token ids of `text`; with `special` the special-token strings become their ids."""
    tok.encode_special_tokens = not special
    return tok.encode(text, add_special_tokens=False).ids


def gguf_vocab(path: str) -> dict:
    """The GGUF's tokenizer arrays (tokens, token_type, merges), read with gguf-py."""
    import gguf

    r = gguf.GGUFReader(str(path))
    return {k: r.fields["tokenizer.ggml." + k].contents() for k in ("tokens", "token_type", "merges")}
