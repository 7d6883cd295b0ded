"""Logit drift of the KV cache types against an F16 cache (docs/benchmarks.md, "KV cache").

For each KV setting, the logits of every position of a token sequence are compared with
those of the same model with an F16, per-loop cache: the largest difference relative to the
largest logit, the mean cosine and the top-1 agreement. The model is a synthetic Ouro
checkpoint (looplm.checkpoint, head size 32 so that the quantized types apply), or any GGUF.

    python benchmarks/kv_drift.py                      # a synthetic Ouro model, 512 tokens
    python benchmarks/kv_drift.py -m model.gguf -n 1024
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import looplm
import numpy as np
from looplm.checkpoint import make_checkpoint
from looplm.convert import convert_checkpoint

SETTINGS = [
    ("f16", "f16", "none"),
    ("q8_0", "q8_0", "none"),
    ("q4_0", "q4_0", "none"),
    ("q8_0", "f16", "none"),
    ("f16", "f16", "last"),
    ("q8_0", "q8_0", "last"),
    ("q4_0", "q4_0", "last"),
]


def synthetic(folder: Path) -> Path:
    cfg = {"head_dim": 32, "hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
           "num_hidden_layers": 4, "max_position_embeddings": 4096}  # fmt: skip
    ckpt = make_checkpoint(folder / "ckpt", seed=11, config=cfg)
    return convert_checkpoint(ckpt, folder / "kv-drift.gguf", "f32", progress=False).path


def logits(path: Path, tokens: list[int], prompt: int, tk: str, tv: str, share: str) -> np.ndarray:
    """A prompt chunk, then the rest decoded one token at a time (as generation does)."""
    m = looplm.Model(path, n_ctx=len(tokens) + 8, type_k=tk, type_v=tv, kv_share=share)
    out = [m.eval(tokens[:prompt], all_logits=True)]
    out += [m.eval([t])[None] for t in tokens[prompt:]]
    return np.concatenate(out).astype(np.float64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", default=None, help="a GGUF (default: a synthetic Ouro model)")
    p.add_argument("-n", type=int, default=512, help="tokens (default 512)")
    p.add_argument("--prompt", type=int, default=64, help="of which the first prompt chunk (default 64)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.model) if a.model else synthetic(Path(tmp))
        vocab = looplm.Model(path, n_ctx=8).n_vocab
        tokens = np.random.default_rng(0).integers(0, min(vocab, 300), a.n).tolist()
        base = logits(path, tokens, a.prompt, "f16", "f16", "none")
        print(f"model {path.name}, {a.n} tokens ({a.prompt} prompt + decoded), against f16/f16 kv_share none")
        print("| type_k | type_v | kv_share | max abs diff / max logit | mean cosine | top-1 agreement |")
        print("|---|---|---|---|---|---|")
        for tk, tv, share in SETTINGS:
            got = logits(path, tokens, a.prompt, tk, tv, share)
            rel = np.abs(got - base).max() / np.abs(base).max()
            cos = np.mean(np.sum(got * base, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(base, axis=-1))
            top1 = np.mean(got.argmax(-1) == base.argmax(-1))
            print(f"| {tk} | {tv} | {share} | {rel:.2e} | {cos:.6f} | {100 * top1:.1f}% |")


if __name__ == "__main__":
    main()
