"""``looplm perplexity``: llama.cpp's perplexity of a text.

The text is tokenized and cut into chunks of ``n_ctx`` tokens; each chunk is evaluated from an
empty context and the negative log-likelihood of its second half is scored (each token
predicted from at least n_ctx/2 tokens of context), as llama.cpp's perplexity tool does.
PPL = exp(mean NLL over all scored tokens).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

from .model import Model


@dataclass
class PerplexityResult:
    ppl: float
    chunks: list[float]  # the running perplexity after each chunk, as llama.cpp prints it
    n_tokens: int  # tokens scored
    mean_loops: float


def perplexity(model: Model, text: str, n_ctx: int = 512, max_chunks: int | None = None) -> PerplexityResult:
    """Perplexity of ``text`` under ``model`` with chunks of ``n_ctx`` tokens."""
    if n_ctx < 4 or n_ctx > model.n_ctx:
        raise ValueError(f"chunk size {n_ctx} must be in 4..{model.n_ctx} (the model's n_ctx)")
    tokens = model.tokenize(text, special=False)
    n_chunks = len(tokens) // n_ctx
    if max_chunks is not None:
        n_chunks = min(n_chunks, max_chunks)
    if n_chunks < 1:
        raise ValueError(f"the text has {len(tokens)} tokens; it needs at least one chunk of {n_ctx}")
    first = n_ctx // 2
    nll, count = 0.0, 0
    running: list[float] = []
    loops: list[float] = []
    for c in range(n_chunks):
        chunk = tokens[c * n_ctx : (c + 1) * n_ctx]
        model.reset()
        logits = model.eval(chunk, all_logits=True).astype(np.float64)  # [n_ctx, vocab]
        loops.extend(s + 1 for s in model.exit_steps)
        pred = logits[first : n_ctx - 1]
        target = np.asarray(chunk[first + 1 : n_ctx])
        m = pred.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(pred - m).sum(axis=1))
        nll += float((logz - pred[np.arange(len(target)), target]).sum())
        count += len(target)
        running.append(math.exp(nll / count))
    model.reset()
    return PerplexityResult(running[-1], running, count, float(np.mean(loops)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", required=True, help="text file (required; '-': standard input)")
    p.add_argument("--chunks", type=int, default=None, help="score at most this many chunks (default: all)")


def run(args: argparse.Namespace, model: Model) -> int:
    from .cli import read_prompt
    from .usage import UsageError

    if args.chunks is not None and args.chunks < 1:
        raise UsageError(f"--chunks must be >= 1, got {args.chunks}")
    if args.ctx_size < 4:
        raise UsageError(f"-c/--ctx-size must be >= 4 for perplexity, got {args.ctx_size}")
    text = read_prompt(args.file)
    r = perplexity(model, text, args.ctx_size, args.chunks)
    print(" ".join(f"[{i + 1}]{p:.4f}" for i, p in enumerate(r.chunks)), file=sys.stderr)
    print(
        f"Final estimate: PPL = {r.ppl:.4f} ({r.n_tokens} tokens scored, chunks of {args.ctx_size}, "
        f"mean loops/token {r.mean_loops:.2f})"
    )
    return 0
