"""Decode speed at depth, kv_share none against last, interleaved inside one process.

For each thread count and KV type, one process loads the synthetic Ouro-1.4B shape twice
(kv_share none and last), and for each depth puts both caches at the depth with the bench hook
(_core.Model.bench_fill_kv: synthetic K/V, no model run). Then the arms take turns: each
repetition goes back to the depth (truncate) and times N decoded tokens, arm after arm, so a
slow spell of the machine falls on every arm alike. With --splits, each kv_share arm also runs
under each attention split (LOOPLM_ATTN_SPLIT, read per call: "heads" = a thread takes whole
heads, the default; "positions" = the threads share every head's positions).

    LOOPLM_CACHE=/work/ext/models python benchmarks/kv_share_speed.py -d 1024,4096,16384 \
        --types q8_0,f16 -t 1,2 -r 6 -n 4 --splits heads,positions --json kv_share_speed.json

Prints one row per (threads, type, depth, arm): mean t/s, standard deviation, min and max over
the repetitions, and each arm's ratio to the first arm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--type", default="q4_0", help="weight type of the synthetic model (default q4_0)")
    ap.add_argument("-d", "--depths", default="1024,4096,16384")
    ap.add_argument("--types", default="q8_0,f16", help="KV types, comma separated")
    ap.add_argument("-t", "--threads", default="2", help="thread counts, comma separated")
    ap.add_argument("-r", "--reps", type=int, default=6, help="timed repetitions per arm (one more warms up)")
    ap.add_argument("-n", "--tokens", type=int, default=4, help="decoded tokens timed per repetition")
    ap.add_argument("--shares", default="none,last")
    ap.add_argument("--splits", default="", help="LOOPLM_ATTN_SPLIT values to alternate (default: unset)")
    ap.add_argument("--only", default="", help="threads:depth pairs to run (e.g. 2:1024,1:4096); default all")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import numpy as np
    from looplm import Model
    from looplm.bench import synthetic_path

    path = synthetic_path("ouro-1.4b", args.type)
    depths = [int(x) for x in args.depths.split(",")]
    only = {tuple(int(v) for v in p.split(":")) for p in args.only.split(",") if p}
    splits = [s for s in args.splits.split(",") if s] or [None]
    shares = args.shares.split(",")
    rows = []
    print(f"model {Path(path).name}; {args.tokens} tokens per repetition, {args.reps} repetitions per arm")
    print("| threads | KV type | depth | kv_share | split | t/s mean | sd | min | max | vs first arm |")
    print("|---:|---|---:|---|---|---:|---:|---:|---:|---:|")
    for threads in (int(x) for x in args.threads.split(",")):
        for kv_type in args.types.split(","):
            todo = [d for d in depths if not only or (threads, d) in only]
            if not todo:
                continue
            ctx = max(todo) + args.tokens + 1
            models = {s: Model(path, n_ctx=ctx, n_threads=threads, kv_share=s, kv_type=kv_type) for s in shares}
            rng = np.random.default_rng(0)
            for d in todo:
                for m in models.values():
                    m._m.bench_fill_kv(d)
                arms = [(s, sp) for s in shares for sp in splits]
                times: dict[tuple, list[float]] = {a: [] for a in arms}
                for rep in range(args.reps + 1):
                    tokens = rng.integers(0, models[shares[0]].n_vocab, size=args.tokens).tolist()
                    order = arms if rep % 2 == 0 else arms[::-1]  # alternate who goes first
                    for share, split in order:
                        if split is None:
                            os.environ.pop("LOOPLM_ATTN_SPLIT", None)
                        else:
                            os.environ["LOOPLM_ATTN_SPLIT"] = split
                        m = models[share]
                        m._m.truncate(d)
                        t0 = time.perf_counter()
                        for t in tokens:
                            m.eval([t])
                        dt = time.perf_counter() - t0
                        if rep > 0:  # the first round warms caches and page mappings
                            times[(share, split)].append(args.tokens / dt)
                os.environ.pop("LOOPLM_ATTN_SPLIT", None)
                first = statistics.fmean(times[arms[0]])
                for share, split in arms:
                    v = times[(share, split)]
                    mean = statistics.fmean(v)
                    sd = statistics.stdev(v) if len(v) > 1 else 0.0
                    rows.append({"threads": threads, "kv_type": kv_type, "depth": d, "kv_share": share,
                                 "split": split or "default", "tps": v, "mean": mean, "sd": sd})  # fmt: skip
                    print(f"| {threads} | {kv_type} | {d} | {share} | {split or 'default'} | {mean:.3f} | {sd:.3f} | "
                          f"{min(v):.3f} | {max(v):.3f} | {mean / first:.3f} |", flush=True)  # fmt: skip
            del models
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
