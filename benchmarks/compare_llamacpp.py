"""looplm vs llama.cpp on the same looped model, side by side, in one run.

The peer is llama.cpp's generic looped-llama support (`nanbeige`: a llama block re-run
num_loops times, a KV slot per (loop, layer), the output norm between loops), which costs
what Ouro costs minus its two extra norms. Both engines run the very same file: a random-weight
`nanbeige` GGUF of Ouro-1.4B's exact shape (24 layers x 4 loops, 2048/5632, 16 heads, vocab
49152) written by looplm.synthetic. looplm also runs the `ouro` file of the same shape, with
and without early exit.

Build llama.cpp yourself, outside this repository (for example from the llama-cpp-python
0.3.36 source distribution, which bundles llama.cpp 0c1e570), then:

    python benchmarks/compare_llamacpp.py --llama-bench /path/to/llama-bench --types q4_0 q8_0

Run it on an otherwise idle machine: it runs one engine at a time. The read bandwidth of a shared
VM swings within minutes, so it is sampled before each type and once more at the end; the shares
use the highest sample per thread count (the machine's best, so a share is never flattered by a
dip), and the range of the samples is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import looplm
from looplm import _core, synthetic
from looplm.bench import membw_table, run_one, synthetic_path, weight_bytes


def llama_bench(exe: str, path: Path, threads: list[int], p: int, n: int, reps: int) -> list[dict]:
    cmd = [exe, "-m", str(path), "-p", str(p), "-n", str(n), "-t", ",".join(map(str, threads)), "-r", str(reps),
           "-o", "json"]  # fmt: skip
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bench", required=True, help="path to a llama-bench binary")
    ap.add_argument("--shape", default="ouro-1.4b", choices=list(synthetic.SHAPES))
    ap.add_argument("--types", nargs="+", default=["q4_0", "q8_0"])
    ap.add_argument("-t", "--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write all figures here")
    args = ap.parse_args()

    threads = sorted(set(args.threads))
    samples: list[dict[int, float]] = []
    print(f"looplm {looplm.__version__} (commit {git_commit()}), kernels {_core.kernels()}")
    rows = []
    for q in args.types:
        samples.append(membw_table(threads))
        nb_path = Path(synthetic_path(args.shape, q, arch="nanbeige"))
        ouro_path = Path(synthetic_path(args.shape, q))
        layers, out = weight_bytes(_core.file_info(str(nb_path), 0))
        t0 = time.perf_counter()
        lc = llama_bench(args.llama_bench, nb_path, args.threads, args.p, args.n, args.r)
        print(f"[{q}] llama-bench done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for t in args.threads:
            for test, n in (("pp", args.p), ("tg", args.n)):
                ref = next(e for e in lc if e["n_threads"] == t and
                           (e["n_prompt"] == n if test == "pp" else e["n_gen"] == n))  # fmt: skip
                mine = run_one(str(nb_path), test, n, t, 4, 1.0, args.r, n + 8)
                ouro = run_one(str(ouro_path), test, n, t, 4, 1.0, args.r, n + 8)
                streamed = 4 * layers + out
                row = {
                    "type": q, "threads": t, "test": f"{test}{n}", "llama_cpp": ref["avg_ts"],
                    "llama_cpp_sd": ref["stddev_ts"], "looplm_nanbeige": mine.mean, "looplm_nanbeige_sd": mine.sd,
                    "looplm_ouro": ouro.mean, "ratio": mine.mean / ref["avg_ts"],
                    "streamed_bytes": streamed if test == "tg" else None,
                }  # fmt: skip
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    samples.append(membw_table(threads))
    bw = {t: max(s[t] for s in samples) for t in threads}
    for r in rows:
        b = bw[r["threads"]]
        r["bw_share_looplm"] = r["streamed_bytes"] * r["looplm_nanbeige"] / b if r["streamed_bytes"] else None
        r["bw_share_llama_cpp"] = r["streamed_bytes"] * r["llama_cpp"] / b if r["streamed_bytes"] else None
    print("\nread bandwidth (highest of " + str(len(samples)) + " samples; range): " + ", ".join(
        f"{t} thr {bw[t] / 1e9:.1f} GB/s ({min(s[t] for s in samples) / 1e9:.1f}-{bw[t] / 1e9:.1f})"
        for t in threads))  # fmt: skip
    print("\n| type | threads | test | llama.cpp t/s | looplm t/s (same file) | ratio | looplm ouro t/s "
          "| % read bw looplm | % read bw llama.cpp |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        share = (f"{r['bw_share_looplm']:.0%} | {r['bw_share_llama_cpp']:.0%}" if r["bw_share_looplm"] is not None
                 else " | ")  # fmt: skip
        print(f"| {r['type']} | {r['threads']} | {r['test']} | {r['llama_cpp']:.2f} ± {r['llama_cpp_sd']:.2f} | "
              f"{r['looplm_nanbeige']:.2f} ± {r['looplm_nanbeige_sd']:.2f} | {r['ratio']:.2f}x | "
              f"{r['looplm_ouro']:.2f} | {share} |")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps({"bandwidth": bw, "bandwidth_samples": samples, "rows": rows, "commit": git_commit()}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
