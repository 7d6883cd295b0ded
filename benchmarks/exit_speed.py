"""Decode speed against the loops actually run: what the dynamic early exit buys.

Two synthetic models of Ouro-1.4B's exact shape (random weights, written once by
looplm.synthetic and cached):
- a gate biased so that every token exits after loop 1 of 4: threshold 1 (every loop runs)
  against threshold 0.5 in skip mode (one loop runs);
- a varied gate (the exit loop differs from token to token; the post-norms are scaled down
  so that hidden states stay token-specific, see looplm.synthetic.write_gguf): a sweep of
  thresholds, giving throughput against mean loops per token.

    python benchmarks/exit_speed.py --type q4_0 -t 2 --json exit.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from looplm import Model, _core
from looplm.bench import run_one, synthetic_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="ouro-1.4b")
    ap.add_argument("--type", default="q4_0")
    ap.add_argument("-t", "--threads", type=int, default=_core.physical_cores())
    ap.add_argument("-n", type=int, default=64, help="tokens generated per run")
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--thresholds", default="1,0.9999,0.999,0.995,0.99,0.97,0.95,0.9,0.5")
    ap.add_argument("--gate-scale", type=float, default=3.0, help="spread of the varied gate")
    ap.add_argument("--post-norm-scale", type=float, default=0.001,
                    help="keeps hidden states token-specific so exit loops vary (see synthetic.write_gguf)")  # fmt: skip
    ap.add_argument("--per-token-threshold", type=float, default=0.999, help="threshold of the per-token timing")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {"threads": args.threads, "type": args.type, "kernels": _core.kernels()}

    early = synthetic_path(args.shape, args.type, 30.0, 1.0)  # every token exits after loop 1
    full = run_one(early, "tg", args.n, args.threads, 4, 1.0, args.r, args.n + 8)
    one = run_one(early, "tg", args.n, args.threads, 4, 0.5, args.r, args.n + 8)
    out["exit_after_loop_1"] = {"all_loops_tps": full.mean, "skip_tps": one.mean, "speedup": one.mean / full.mean,
                                "mean_loops": one.mean_loops}  # fmt: skip
    print(f"gate forcing exit after loop 1: all loops {full.mean:.2f} ± {full.sd:.2f} tok/s, skip "
          f"{one.mean:.2f} ± {one.sd:.2f} tok/s (mean loops {one.mean_loops:.2f}): {one.mean / full.mean:.2f}x")  # fmt: skip

    varied = synthetic_path(args.shape, args.type, 0.0, args.gate_scale, post_norm_scale=args.post_norm_scale)
    # This host's speed drifts by 10% over minutes, so every threshold is compared with an
    # all-loops run made right before it.
    print("\n| threshold | mean loops/token | tg t/s | all loops, just before | speed-up |\n|---:|---:|---:|---:|---:|")
    rows = []
    for thr in [float(x) for x in args.thresholds.split(",")]:
        b = run_one(varied, "tg", args.n, args.threads, 4, 1.0, args.r, args.n + 8)
        r = b if thr >= 1 else run_one(varied, "tg", args.n, args.threads, 4, thr, args.r, args.n + 8)
        rows.append({"threshold": thr, "mean_loops": r.mean_loops, "tps": r.mean, "sd": r.sd, "base_tps": b.mean,
                     "speedup": r.mean / b.mean})  # fmt: skip
        print(f"| {thr:g} | {r.mean_loops:.2f} | {r.mean:.2f} ± {r.sd:.2f} | {b.mean:.2f} | {r.mean / b.mean:.2f}x |",
              flush=True)  # fmt: skip
    out["sweep"] = rows

    # The cost of one decoded token by the loop it exited at (the time each eval call takes).
    thr = args.per_token_threshold
    m = Model(varied, n_ctx=256, n_threads=args.threads, exit_threshold=thr)
    tokens = [int(t) for t in np.random.default_rng(1).integers(0, m.n_vocab, size=160)]
    m.eval(tokens[:1])
    by_loops: dict[int, list[float]] = {}
    for t in tokens[1:]:
        t0 = time.perf_counter()
        m.eval([t])
        by_loops.setdefault(m.last_exit_step + 1, []).append(time.perf_counter() - t0)
    print(f"\nper-token decode time by exit loop (threshold {thr:g}, {len(tokens) - 1} tokens):")
    print("| loops run | tokens | median ms |\n|---:|---:|---:|")
    for k in sorted(by_loops):
        print(f"| {k} | {len(by_loops[k])} | {1000 * statistics.median(by_loops[k]):.1f} |")
    out["ms_by_loops"] = {k: 1000 * statistics.median(v) for k, v in by_loops.items()}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
