"""``looplm demo``: the loops and the exit gate at work, without a download, in seconds.

It writes a small Ouro checkpoint with random weights in upstream's layout (looplm.checkpoint),
converts it to a Q8_0 GGUF with the real converter, runs it as ``looplm run --show-exits``
would (tokens coloured by their exit loop) and then measures the decoding speed of skip mode,
where a token stops at its exit loop, against all loops. The weights are random, so the text
is gibberish; the loop machinery, the gate and the speed-up are the real ones. The gate's
weights are drawn so that tokens exit at different loops.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .sampling import SamplingParams
from .terminal import computed_loops, exit_summary, is_tty, legend, stream_text, write

# 6 layers of width 512 (Ouro-1.4B has 24 of 2048): big enough that the loops, not Python,
# set the speed; small enough to write and convert in about a second.
CONFIG = {
    "_name_or_path": "looplm-demo/random-ouro",
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_hidden_layers": 6,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 2048,
}
# Small post-norms keep each token's hidden state near its own embedding, so the gate sees
# token-specific states; with this bias and spread the exits spread over all four loops.
GATE: dict[str, Any] = {"seed": 3, "gate_bias": 0.0, "gate_scale": 2.0, "post_norm_scale": 0.01}
THRESHOLD = 0.8
PROMPT = "The loop runs the same layers again and again. Looped language models think by repeating"
SAMPLING = SamplingParams(temperature=0.8, seed=1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--n-predict", dest="max_tokens", type=int, default=64,
                   help="tokens to generate per run (default 64)")  # fmt: skip
    p.add_argument("--exit-threshold", type=float, default=THRESHOLD,
                   help=f"the exit gate threshold of the skip-mode runs (default {THRESHOLD})")  # fmt: skip
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: the physical cores)")


def demo_path() -> Path:
    from . import __version__
    from .hub import cache_dir

    return cache_dir() / "demo" / f"random-ouro-{__version__}-Q8_0.gguf"


def printable_tokens() -> np.ndarray:
    """Ids of the tiny tokenizer's tokens made of printable ASCII only (no special token)."""
    from .tiny_tokenizer import SPECIALS, bytes_to_unicode, tokenizer_json

    to_byte = {u: b for b, u in bytes_to_unicode().items()}
    vocab = tokenizer_json()["model"]["vocab"]
    ok = [i for t, i in vocab.items() if i >= len(SPECIALS) and all(c in to_byte and 32 <= to_byte[c] < 127 for c in t)]
    return np.array(sorted(ok))


def weights() -> dict[str, np.ndarray]:
    """The random weights, with the lm_head rows of every token but printable ASCII ones
    zeroed (their logit is 0, below the top-k): a random model would otherwise emit control
    tokens, stop at random and print broken UTF-8."""
    from .checkpoint import random_weights, tiny_config

    w = random_weights(tiny_config(**CONFIG), GATE["seed"], GATE["gate_bias"], GATE["gate_scale"],
                       GATE["post_norm_scale"])  # fmt: skip
    head = w["lm_head.weight"]
    keep = printable_tokens()
    rows = head[keep].copy()
    head[:] = 0.0
    head[keep] = rows
    return w


def build(out: Path) -> tuple[float, int, float, int]:
    """Writes the checkpoint into a temporary folder and converts it to ``out``.

    Returns (seconds to write, checkpoint bytes, seconds to convert, GGUF bytes).
    """
    from .checkpoint import make_checkpoint
    from .convert import convert_checkpoint

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="looplm-demo-") as tmp:
        t0 = time.perf_counter()
        folder = make_checkpoint(Path(tmp) / "random-ouro", config=CONFIG, weights=weights())
        t1 = time.perf_counter()
        size = sum(f.stat().st_size for f in folder.iterdir())
        part = out.with_suffix(f".{os.getpid()}.part")
        try:
            convert_checkpoint(folder, part, "q8_0", progress=False)
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)
        t2 = time.perf_counter()
    return t1 - t0, size, t2 - t1, out.stat().st_size


def timed(path: Path, threshold: float, args: argparse.Namespace) -> tuple[float, float]:
    """(tokens per second, loops computed per token) of one generation."""
    from .generate import stream_generate
    from .model import Model

    m = Model(path, n_ctx=512, n_threads=args.threads, exit_threshold=threshold)
    last = None
    exits = []
    for r in stream_generate(m, PROMPT, max_tokens=args.max_tokens, sampling=SAMPLING):
        last = r
        if r.exit_step is not None:
            exits.append(r.exit_step)
    return (last.generation_tps if last else 0.0), computed_loops(
        exits, m.config["n_loops"], m.exit_policy["exit_mode"]
    )


def say(text: str) -> None:
    """The demo's narration goes to stdout with the text, so that it reads in order when piped."""
    write(sys.stdout, text + "\n")


def run(args: argparse.Namespace) -> int:
    from .generate import stream_generate
    from .model import Model
    from .usage import UsageError

    if args.max_tokens < 1:
        raise UsageError(f"-n/--n-predict must be >= 1, got {args.max_tokens}")
    if not 0.0 <= args.exit_threshold < 1.0:
        raise UsageError(
            f"--exit-threshold must be in 0..1, below 1 (or no token exits early), got {args.exit_threshold}"
        )
    from .checkpoint import hf_tensors, tiny_config

    path = demo_path()
    n_params = sum(int(np.prod(shape)) for _, shape in hf_tensors(tiny_config(**CONFIG)))
    say(f"looplm demo: a small Ouro model with RANDOM weights ({n_params / 1e6:.0f} M parameters, "
        f"{CONFIG['num_hidden_layers']} layers x 4 loops): the text is gibberish; the loops, the exit gate and the "
        "speed-up are real.")  # fmt: skip
    t_write, ck_bytes, t_conv, gguf_bytes = build(path)
    say(f"looplm demo: wrote the HF checkpoint ({ck_bytes / 1e6:.0f} MB bf16) in {t_write:.1f} s, converted it "
        f"to Q8_0 ({gguf_bytes / 1e6:.0f} MB) in {t_conv:.1f} s: {path}")  # fmt: skip
    thr = args.exit_threshold
    say(f"\n$ looplm run -m {shlex.quote(str(path))} --raw -p {shlex.quote(PROMPT)} -n {args.max_tokens} "
        f"--temp {SAMPLING.temperature:g} -s {SAMPLING.seed} --exit-threshold {thr:g} --show-exits")  # fmt: skip
    model = Model(path, n_ctx=512, n_threads=args.threads, exit_threshold=thr)
    n_loops = model.config["n_loops"]
    color = is_tty(sys.stdout)
    if color:
        say(legend(n_loops))
    exits = [
        step
        for _, step, _ in stream_text(
            stream_generate(model, PROMPT, max_tokens=args.max_tokens, sampling=SAMPLING), sys.stdout, color=color
        )
        if step is not None
    ]
    write(sys.stdout, "\n")
    say("looplm: " + exit_summary(exits, n_loops, model.exit_policy["exit_mode"]))
    del model
    say(f"\nlooplm demo: decoding speed, the same prompt and seed, {args.max_tokens} tokens each:")
    timed(path, 1.0, args)  # warm-up: page cache, threads
    all_tps, all_loops = timed(path, 1.0, args)
    skip_tps, skip_loops = timed(path, thr, args)
    say(f"  all loops (--exit-threshold 1)        {all_loops:.2f} loops/token  {all_tps:7.1f} tok/s")
    say(f"  skip mode (--exit-threshold {thr:g}){' ' * max(0, 9 - len(f'{thr:g}'))} {skip_loops:.2f} loops/token  "
        f"{skip_tps:7.1f} tok/s  ({skip_tps / max(all_tps, 1e-9):.2f}x)")  # fmt: skip
    say("looplm demo: with a real checkpoint: looplm run -m ByteDance/Ouro-1.4B -p '...' --exit-threshold 0.9 "
        "--show-exits (pip install 'looplm[hub]'; docs/quickstart.md)")  # fmt: skip
    return 0
