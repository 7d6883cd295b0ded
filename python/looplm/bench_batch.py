"""``looplm bench --batch N,...``: aggregate decoding speed of N sequences stepped together by the
batched runtime (what ``looplm serve`` runs), against one sequence measured in the same run, and
the time to first token of a prompt arriving while the others decode.

Each of the N sequences starts from one token of context (llama-bench's tg); a step feeds every
sequence its next (random) token, so a step reads the weights once for all N. The prompt of
the time-to-first-token case is prefilled in chunks of ``-b`` tokens, each chunk in the same step
as the other N - 1 sequences' next tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np

from . import _core
from .model import Model
from .options import OuroOptions


@dataclass
class BatchResult:
    batch: int
    tps: list[float]  # aggregate generated tokens per second, per repetition
    mean_loops: float
    ttft: float | None  # seconds, or None when not measured

    @property
    def mean(self) -> float:
        return statistics.fmean(self.tps)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.tps) if len(self.tps) > 1 else 0.0


def run_batch(
    path: str, batch: int, n_gen: int, n_prompt: int, threads: int, loops: int, threshold: float, reps: int,
    chunk: int,
) -> BatchResult:  # fmt: skip
    """Times ``reps`` runs (after a warm-up) of n_gen steps of ``batch`` sequences."""
    ctx = n_gen + n_prompt + 8
    probe = Model(path, n_ctx=8, n_threads=1, loops=loops)
    run = probe.resolve(OuroOptions(loops=loops, exit_threshold=threshold))
    vocab = probe.n_vocab
    del probe
    b = _core.BatchModel(path, batch, ctx, threads, loops, "f16", "")
    rng = np.random.default_rng(0)
    seqs = list(range(batch))
    opts = [run] * batch
    tps, loops_seen = [], []
    for _ in range(reps + 1):  # the first run warms caches and page mappings; not counted
        for s in seqs:
            b.reset(s)
        b.step(seqs, [[int(t)] for t in rng.integers(0, vocab, batch)], opts)
        exits = []
        t0 = time.perf_counter()
        for _ in range(n_gen - 1):
            _, ex = b.step(seqs, [[int(t)] for t in rng.integers(0, vocab, batch)], opts)
            exits += ex
        tps.append(batch * (n_gen - 1) / (time.perf_counter() - t0))
        loops_seen.append(float(np.mean(exits)) + 1)
    ttft = None
    if n_prompt > 0:  # sequence 0 restarts with a prompt while the others keep decoding
        b.reset(0)
        prompt = [int(t) for t in rng.integers(0, vocab, n_prompt)]
        t0 = time.perf_counter()
        for k in range(0, n_prompt, chunk):
            tokens = [prompt[k : k + chunk]] + [[int(t)] for t in rng.integers(0, vocab, batch - 1)]
            b.step(seqs, tokens, opts)
        ttft = time.perf_counter() - t0
    return BatchResult(batch, tps[1:], statistics.fmean(loops_seen[1:]), ttft)


def print_table(path: str, cfg: dict, args: argparse.Namespace, threads: list[int], batches: list[int]) -> None:
    """One row per (loops, threshold, threads, streams); the ratio is against 1 stream of the same run."""
    loops = args.loops or [cfg["n_loops_trained"]]
    n_gen = max(args.n_gen)
    n_prompt = max(args.n_prompt)
    chunk = args.batch_size
    print(f"| loops | threshold | threads | streams | tg{n_gen} aggregate t/s | per stream | vs 1 stream | "
          f"mean loops | TTFT pp{n_prompt} under load |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lp in loops:
        for thr in args.exit_threshold:
            for t in threads:
                base = None
                for nb in batches:
                    r = run_batch(path, nb, n_gen, n_prompt, t, lp, thr, args.repetitions, chunk)
                    if nb == 1:
                        base = r.mean
                    ratio = f"{r.mean / base:.2f}x" if base else ""
                    ttft = f"{r.ttft:.3f} s" if r.ttft is not None else ""
                    cells = [str(lp), f"{thr:g}", str(t), str(nb), f"{r.mean:.2f} ± {r.sd:.2f}", f"{r.mean / nb:.2f}",
                             ratio, f"{r.mean_loops:.2f}", ttft]  # fmt: skip
                    print("| " + " | ".join(cells) + " |", flush=True)
