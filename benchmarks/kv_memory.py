"""Resident memory of the KV cache at a depth, against what the docs promise.

For each setting (kv_share none/last x KV type) and depth, a fresh process loads the
synthetic Ouro-1.4B shape, decodes 8 tokens from an empty context (the weights are then
resident: RSS "base"), puts the cache at depth - 8 positions with the bench hook
(_core.Model.bench_fill_kv: synthetic K/V in the cache's types, no model run) and decodes 8
real tokens to reach the depth. It reports the process's resident set (VmRSS) and peak
(VmHWM), the cache's allocated bytes, and compares with the promise of looplm.kv_memory and
docs/raspberry-pi.md: the table's context on a board is (board - 1 GiB - weights) / KV per
token, so a run of n positions must fit in weights + n x KV per token + the 1 GiB reserve,
and for the check setting (default last + q8_0 at 16K) within a 4 GiB board less 1 GiB.

    LOOPLM_CACHE=/work/ext/models python benchmarks/kv_memory.py -d 1024,4096,16384 --json kv_memory.json

Exits 1 when a run exceeds its promise. Needs ~14 GB free for none + f16 at 16K: settings run one
at a time, and a setting whose KV would not fit in MemAvailable is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

GIB = 1 << 30
DECODE = 8


def status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    return out


def child(path: str, share: str, kv_type: str, depth: int, threads: int) -> dict:
    import looplm
    import numpy as np

    m = looplm.Model(path, n_ctx=depth + DECODE, n_threads=threads, kv_share=share, kv_type=kv_type)
    tokens = np.random.default_rng(0).integers(0, m.n_vocab, size=DECODE).tolist()
    for t in tokens:  # every weight page is touched: the base resident set
        m.eval([t])
    base = status()["VmRSS"]
    m._m.bench_fill_kv(depth - DECODE)
    for t in tokens:
        m.eval([t])
    s = status()
    c = m.config
    return {
        "kv_share": share, "kv_type": kv_type, "depth": m.n_past, "rss": s["VmRSS"], "hwm": s["VmHWM"],
        "base": base, "kv_bytes": m.kv_bytes, "per_token": c["kv_bytes_per_token"], "file_size": c["file_size"],
    }  # fmt: skip


def available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--type", default="q4_0", help="weight type of the synthetic model (default q4_0)")
    ap.add_argument("-d", "--depths", default="1024,4096,16384")
    ap.add_argument("--settings", default="none:f16,none:q8_0,last:f16,last:q8_0", help="kv_share:kv_type,...")
    ap.add_argument("--check", default="last:q8_0:16384", help="the run held to the 4 GiB board (kv_share:type:depth)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=4, metavar=("PATH", "SHARE", "TYPE", "DEPTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        p, share, kv_type, depth = args.child
        print(json.dumps(child(p, share, kv_type, int(depth), args.threads)))
        return 0

    from looplm import kv_memory, synthetic
    from looplm.bench import synthetic_path

    path = synthetic_path("ouro-1.4b", args.type)
    weights = synthetic.gguf_bytes("ouro-1.4b", args.type)  # the tensor bytes the Pi table counts
    depths = [int(x) for x in args.depths.split(",")]
    settings = [tuple(s.split(":")) for s in args.settings.split(",")]
    check = tuple(args.check.split(":"))
    rows, ok = [], True
    ref_per = kv_memory.kv_bytes_per_token(24, 4, 2048)  # today's default: none, f16
    print(f"model {Path(path).name}: {weights / 1e9:.3f} GB of tensors; KV of none/f16: {ref_per} bytes per token")
    print("| kv_share | KV type | positions | KV bytes | vs none/f16 | RSS | peak RSS | RSS - base | promise |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for share, kv_type in settings:
        for d in depths:
            per = kv_memory.kv_bytes_per_token(24, 4, 2048, kv_type, kv_type, share)
            need = d * per
            if need + 2 * GIB > available():
                print(f"| {share} | {kv_type} | {d} | skipped: {need / GIB:.1f} GiB of KV, "
                      f"{available() / GIB:.1f} GiB available | | | | | |", flush=True)  # fmt: skip
                continue
            cmd = [sys.executable, __file__, "--child", path, share, kv_type, str(d), "-t", str(args.threads)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            assert r["per_token"] == per, (r["per_token"], per)
            promise = weights + d * per + GIB  # the table's budget for d positions
            verdict = "within" if r["hwm"] <= promise else "EXCEEDED"
            if (share, kv_type, str(d)) == check:
                board = 4 * GIB - GIB
                verdict += f"; 4 GiB board (3 GiB usable): {'fits' if r['hwm'] <= board else 'DOES NOT FIT'}"
                ok &= r["hwm"] <= board
            ok &= r["hwm"] <= promise
            r["promise"] = promise
            rows.append(r)
            print(f"| {share} | {kv_type} | {r['depth']} | {r['kv_bytes'] / 2**20:.1f} MiB | "
                  f"{r['kv_bytes'] / (d * ref_per):.3f} | {r['rss'] / 2**30:.2f} GiB | {r['hwm'] / 2**30:.2f} GiB | "
                  f"{(r['rss'] - r['base']) / 2**20:.1f} MiB | {verdict} (≤ {promise / 2**30:.2f} GiB) |",
                  flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
