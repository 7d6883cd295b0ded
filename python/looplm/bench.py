"""``looplm bench``: prompt (ppN) and generation (tgN) speed in llama-bench's vocabulary, with
the effective memory bandwidth of decoding as a share of the machine's measured read
bandwidth.

Decoding a looped model is memory-bound: every loop streams the whole layer stack again, so
the bytes read per generated token are ``mean loops x layer-stack bytes + lm_head bytes``,
plus what attention reads of the KV cache: ``mean loops x n_layer x positions x (K row + V
row)``, the same in both kv_share modes (each loop reads its layer's history again).
``-d`` (llama-bench's ``--n-depth``) puts the cache at a depth first, with synthetic K/V.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _core, synthetic
from .kv_memory import row_bytes
from .model import Model


@dataclass
class Result:
    test: str  # "pp512" / "tg128"
    threads: int
    loops: int
    threshold: float
    tps: list[float]
    mean_loops: float
    bytes_per_token: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.tps)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.tps) if len(self.tps) > 1 else 0.0


def weight_bytes(info: dict) -> tuple[int, int]:
    """(bytes of the repeated layer stack, bytes of the output matrix) of a GGUF."""
    layers = sum(nb for name, _, _, _, nb in info["tensors"] if name.startswith("blk."))
    names = {name: nb for name, _, _, _, nb in info["tensors"]}
    return layers, names.get("output.weight", names.get("token_embd.weight", 0))


KV_TYPES = ["f32", "f16", "q8_0", "q4_0"]


def int_list(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def float_list(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x]


def run_one(
    path: str,
    test: str,
    n: int,
    threads: int,
    loops: int,
    threshold: float,
    reps: int,
    ctx: int,
    *,
    depth: int = 0,
    kv_share: str = "none",
    type_k: str = "f16",
    type_v: str = "f16",
) -> Result:
    """One ppN / tgN test; at a depth (llama-bench's -d) the context first holds `depth`
    positions of synthetic K/V (the bench hook _core.Model.bench_fill_kv: no model run), and
    each repetition goes back to them."""
    m = Model(path, n_ctx=ctx, n_threads=threads, loops=loops, exit_threshold=threshold,
              n_batch=max(n, 1) if test == "pp" else 512, kv_share=kv_share, type_k=type_k,
              type_v=type_v)  # fmt: skip
    rng = np.random.default_rng(0)
    vocab = m.n_vocab
    tps, loops_seen = [], []
    if depth > 0:
        m._m.bench_fill_kv(depth)
    for _ in range(reps + 1):  # the first run warms caches and page mappings; not counted
        if depth > 0:
            m._m.truncate(depth)
        else:
            m.reset()
        tokens = rng.integers(0, vocab, size=n).astype(np.int32)
        if test == "pp":
            t0 = time.perf_counter()
            m.eval(tokens)
            dt = time.perf_counter() - t0
        else:
            m.eval(tokens[:1])  # llama-bench's tg starts from one token of context
            t0 = time.perf_counter()
            for t in tokens[1:]:
                m.eval([int(t)])
            dt = time.perf_counter() - t0
            n_timed = n - 1
        tps.append((n if test == "pp" else n_timed) / dt)
        steps = m.exit_steps[depth:]
        loops_seen.append(float(np.mean(steps[1:] if test == "tg" else steps)) + 1)
    info = _core.file_info(path, 0)
    layers, out = weight_bytes(info)
    mean_loops = statistics.fmean(loops_seen[1:])
    c = m.config
    kv_row = row_bytes(type_k, c["n_head_kv"] * c["head_dim"]) + row_bytes(type_v, c["n_head_kv"] * c["head_dim"])
    seen = depth + (n + 1) / 2  # positions a token attends to, on average over the test
    kv_read = mean_loops * c["n_layer"] * seen * kv_row if test == "tg" else 0.0
    name = f"{test}{n}" + (f" @ d{depth}" if depth > 0 else "")
    return Result(name, threads, loops, threshold, tps[1:], mean_loops, mean_loops * layers + out + kv_read)


def synthetic_path(
    shape: str,
    qtype: str,
    gate_bias: float = 0.0,
    gate_scale: float = 1.0,
    *,
    post_norm_scale: float = 1.0,
    arch: str = "ouro",
) -> str:
    """A full-size random-weight GGUF (see looplm.synthetic.write_gguf), written once to the
    cache and named by its parameters."""
    from .hub import cache_dir

    name = f"{shape}-{qtype}" + (f"-{arch}" if arch != "ouro" else "") + f"-gate{gate_bias:g}x{gate_scale:g}"
    name += f"-post{post_norm_scale:g}" if post_norm_scale != 1.0 else ""
    out = cache_dir() / "synthetic" / f"{name}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        print(f"looplm bench: writing a synthetic {shape} {arch} {qtype} model with random weights "
              f"({synthetic.gguf_bytes(shape, qtype) / 1e9:.2f} GB, once) to {out} ...", file=sys.stderr)  # fmt: skip
        try:
            synthetic.write_gguf(tmp, shape, qtype, gate_bias=gate_bias, gate_scale=gate_scale,
                                 post_norm_scale=post_norm_scale, arch=arch)  # fmt: skip
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    return str(out)


def membw_table(threads: list[int]) -> dict[int, float]:
    return {t: _core.read_bandwidth(t, 1 << 30, 5) for t in threads}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", default=None, help="GGUF file (or use --synthetic)")
    p.add_argument("--synthetic", choices=["ouro-1.4b", "ouro-2.6b"], default=None,
                   help="a full-size random-weight model of that shape, made once and cached")  # fmt: skip
    p.add_argument("--type", choices=[*synthetic.PLAIN_TYPES, *synthetic.MIXTURES], default="q4_0",
                   help="type of --synthetic (default q4_0)")  # fmt: skip
    p.add_argument("--gate-bias", type=float, default=0.0,
                   help="--synthetic exit gate bias; high: exit early (default 0)")  # fmt: skip
    p.add_argument("--gate-scale", type=float, default=1.0, help="--synthetic exit gate spread (default 1)")
    p.add_argument("-p", "--n-prompt", type=int_list, default=[512], help="prompt sizes (0: none; default 512)")
    p.add_argument("-n", "--n-gen", type=int_list, default=[128], help="generation lengths (0: none; default 128)")
    p.add_argument("-t", "--threads", type=int_list, default=None,
                   help="thread counts, e.g. 1,2,4 (default: the physical cores)")  # fmt: skip
    p.add_argument("--loops", type=int_list, default=None, help="loop counts, e.g. 1,2,4 (default: the trained count)")
    p.add_argument("--exit-threshold", type=float_list, default=[1.0],
                   help="exit thresholds, e.g. 1,0.9,0.5 (default 1: every loop)")  # fmt: skip
    p.add_argument("-d", "--n-depth", type=int_list, default=[0],
                   help="context depths, e.g. 0,1024,4096: each test runs after that many positions of "
                        "synthetic K/V (filled without running the model; default 0)")  # fmt: skip
    p.add_argument("--kv-share", choices=["none", "last"], default="none", help="KV sharing (default none)")
    p.add_argument("-ctk", "--cache-type-k", choices=KV_TYPES, default="f16", help="key cache type (default f16)")
    p.add_argument("-ctv", "--cache-type-v", choices=KV_TYPES, default="f16", help="value cache type (default f16)")
    p.add_argument("-r", "--repetitions", type=int, default=3, help="timed runs per test, after a warm-up (default 3)")
    p.add_argument("--membw", action="store_true", help="measure the read bandwidth for 1..N threads")
    p.add_argument("--batch", type=int_list, default=None,
                   help="stream counts, e.g. 1,2,4,8: aggregate decoding of that many sequences stepped together "
                        "(looplm serve's engine), and the time to first token of a -p prompt among them")  # fmt: skip
    p.add_argument("-b", "--batch-size", type=int, default=256,
                   help="--batch: prompt tokens per step of the arriving prompt (default 256)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from .usage import UsageError

    threads = args.threads or [_core.physical_cores()]
    if args.repetitions < 1:
        raise UsageError(f"-r/--repetitions must be >= 1, got {args.repetitions}")
    if any(not 1 <= t <= 4096 for t in threads):
        raise UsageError(f"-t/--threads must be in 1..4096, got {','.join(map(str, threads))}")
    if any(n < 0 for n in args.n_prompt + args.n_gen):
        raise UsageError("-p/--n-prompt and -n/--n-gen must be >= 0")
    if any(d < 0 for d in args.n_depth) or not args.n_depth:
        raise UsageError("-d/--n-depth must be >= 0")
    if args.batch is not None and (
        not args.batch or any(not 1 <= b <= 256 for b in args.batch) or max(args.n_gen) < 2 or args.batch_size < 1
    ):
        raise UsageError("--batch takes stream counts in 1..256, with -n >= 2 and -b >= 1")
    if (args.model is None) == (args.synthetic is None) and not (args.membw and not (args.model or args.synthetic)):
        raise UsageError("give exactly one of -m/--model or --synthetic")
    path: str | None = None
    cfg: dict[str, Any] = {}
    if args.model or args.synthetic:
        path = args.model or synthetic_path(args.synthetic, args.type, args.gate_bias, args.gate_scale)
        probe = Model(path, n_ctx=8, n_threads=1)
        cfg = probe.config
        del probe
        longest = max(args.n_prompt + args.n_gen) + max(args.n_depth)
        if longest + 8 > cfg["n_ctx_train"]:
            raise UsageError(f"-p/-n {longest} (with -d) is longer than the model's context length "
                             f"{cfg['n_ctx_train']}")  # fmt: skip
    if args.batch and path is not None:  # no bandwidth table: the ratios are against 1 stream
        from .bench_batch import print_table

        print(f"model: {Path(path).name} | {cfg['arch']} | {cfg['weight_type']} | {cfg['file_size'] / 1e9:.2f} GB | "
              f"kernels {_core.kernels()} | {os.cpu_count()} CPUs")  # fmt: skip
        print_table(path, cfg, args, threads, args.batch)
        return 0
    # the bandwidth of every thread count in the table (and 1..N for --membw)
    bw = membw_table(sorted(set(threads) | (set(range(1, max(threads) + 1)) if args.membw else set())))
    if args.membw:
        print("| threads | read bandwidth |\n|---:|---:|")
        for t, b in bw.items():
            print(f"| {t} | {b / 1e9:.1f} GB/s |")
        if path is None:
            return 0
        print()
    assert path is not None  # the argument checks above: a model unless --membw alone
    loops = args.loops or [cfg["n_loops_trained"]]
    name = Path(path).name
    print(f"model: {name} | {cfg['arch']} | {cfg['weight_type']} | {cfg['file_size'] / 1e9:.2f} GB | "
          f"kernels {_core.kernels()} | {os.cpu_count()} CPUs | KV {args.cache_type_k}/{args.cache_type_v}, "
          f"kv_share {args.kv_share}")  # fmt: skip

    print("| loops | threshold | threads | test | t/s | mean loops | GB/s streamed | % of read bw |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lp in loops:
        for thr in args.exit_threshold:
            for t in threads:
                tests = [("pp", n) for n in args.n_prompt if n > 0] + [("tg", n) for n in args.n_gen if n > 1]
                for (kind, n), d in ((kn, d) for d in args.n_depth for kn in tests):
                    r = run_one(path, kind, n, t, lp, thr, args.repetitions, max(d + n + 8, 64), depth=d,
                                kv_share=args.kv_share, type_k=args.cache_type_k, type_v=args.cache_type_v)  # fmt: skip
                    gbs = r.bytes_per_token * r.mean / 1e9
                    share = f"{gbs * 1e9 / bw[t]:.0%}" if kind == "tg" and t in bw else ""
                    print(f"| {lp} | {thr:g} | {t} | {r.test} | {r.mean:.2f} ± {r.sd:.2f} | {r.mean_loops:.2f} | "
                          f"{gbs if kind == 'tg' else 0:.1f} | {share} |", flush=True)  # fmt: skip
    return 0
