"""Logit drift of every weight type against the F32 file, at 1, 2 and 4 loops (issue 15).

A synthetic Ouro checkpoint (looplm.checkpoint, float32 weights) whose every row length is
a multiple of 256 (width 256, FFN 768, 4 heads of 64), so the K-quant files hold real
Q4_K/Q5_K/Q6_K blocks and follow llama.cpp's mixture rules, is converted to each type by the
converter (`looplm convert --type T`). Each file runs the same tokens (a prompt chunk through
the many-column kernels, then tokens decoded one at a time through the matrix-vector ones)
with ``loops`` 1, 2 and 4 and every loop run (exit threshold 1); its logits are compared
with the F32 file's at the same loop count: the largest and the RMS difference relative to
the RMS of the F32 logits, and the share of positions whose top-1 token agrees.

    python benchmarks/kquant_drift.py                  # ~1 min
    python benchmarks/kquant_drift.py -n 512 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import gguf
import looplm
import numpy as np
from looplm.checkpoint import make_checkpoint
from looplm.convert import convert_checkpoint

TYPES = ["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_k_s", "q5_1", "q5_0", "q4_1", "q4_0"]
LOOPS = [1, 2, 4]
CONFIG = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
          "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 2048}  # fmt: skip


def composition(path: Path) -> str:
    """'Q4_K x14, Q6_K x5, ...' of the file's 2-D tensors."""
    count = Counter(t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors if len(t.shape) > 1)
    return ", ".join(f"{k} x{v}" for k, v in count.most_common())


def logits(path: Path, tokens: list[int], prompt: int, loops: int, threads: int) -> np.ndarray:
    """A prompt chunk, then the rest decoded one token at a time (as generation does)."""
    m = looplm.Model(path, n_ctx=len(tokens) + 8, loops=loops, exit_threshold=1.0, n_threads=threads)
    out = [m.eval(tokens[:prompt], all_logits=True)]
    out += [m.eval([t])[None] for t in tokens[prompt:]]
    return np.concatenate(out).astype(np.float64)


def drift(got: np.ndarray, base: np.ndarray) -> tuple[float, float, float]:
    """(max |diff| / RMS logit, RMS diff / RMS logit, top-1 agreement)."""
    rms = np.sqrt(np.mean(base**2))
    d = got - base
    return (
        float(np.abs(d).max() / rms),
        float(np.sqrt(np.mean(d**2)) / rms),
        float(np.mean(got.argmax(-1) == base.argmax(-1))),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=256, help="tokens per model (default 256)")
    p.add_argument("--prompt", type=int, default=128, help="of which the first prompt chunk (default 128)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="weight seeds, one model each (default 0)")
    p.add_argument("--types", nargs="+", default=TYPES, choices=TYPES)
    p.add_argument("-t", "--threads", type=int, default=2)
    a = p.parse_args()
    if not 0 < a.prompt <= a.n:
        p.error("--prompt must be in 1..n")
    stats: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    kinds: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            folder = Path(tmp) / f"seed{seed}"
            ckpt = make_checkpoint(folder / "ckpt", seed=seed, dtype="f32", config=CONFIG)
            files = {
                t: convert_checkpoint(ckpt, folder / f"{t}.gguf", t, progress=False).path for t in ["f32", *a.types]
            }
            vocab = looplm.Model(files["f32"], n_ctx=8).n_vocab
            tokens = np.random.default_rng(100 + seed).integers(0, vocab, a.n).tolist()
            for loops in LOOPS:
                base = logits(files["f32"], tokens, a.prompt, loops, a.threads)
                for t in a.types:
                    kinds[t] = composition(files[t])
                    stats.setdefault((t, loops), []).append(
                        drift(logits(files[t], tokens, a.prompt, loops, a.threads), base)
                    )
    print(f"synthetic Ouro {CONFIG['num_hidden_layers']} layers x {CONFIG['hidden_size']} (FFN "
          f"{CONFIG['intermediate_size']}), {len(a.seeds)} seed(s) x {a.n} tokens ({a.prompt} prompt + "
          f"{a.n - a.prompt} decoded), against the F32 file at the same loops\n")  # fmt: skip
    head = " / ".join(map(str, LOOPS)) + " loops"
    print(f"| type | 2-D tensors | max abs diff / RMS logit, {head} | RMS diff / RMS logit, {head} | top-1, {head} |")
    print("|---|---|---|---|---|")
    for t in a.types:
        cols = [[], [], []]
        for loops in LOOPS:
            s = np.array(stats[(t, loops)])
            cols[0].append(f"{s[:, 0].max():.3f}")
            cols[1].append(f"{s[:, 1].mean():.4f}")
            cols[2].append(f"{100 * s[:, 2].mean():.1f}%")
        print(f"| {t} | {kinds[t]} | " + " | ".join(" / ".join(c) for c in cols) + " |")


if __name__ == "__main__":
    main()
