"""Load time, time to first token and resident memory while decoding a full-size model.

Every measurement runs in a fresh Python process so nothing is shared between them. "cold"
evicts the file from the page cache first (``posix_fadvise(DONTNEED)``, no root needed), so the
weights come from disk; "warm" runs right after, with the file cached. For comparison the script
also times reading the whole file with ``read()`` (what a loader that copies the weights would
pay at least).

Resident memory is read from ``/proc/self/status`` (VmRSS, RssAnon, RssFile) after opening the
model and after decoding; the target is ``RSS <= file size + KV bytes in use + 64 MB``. The
Python interpreter with numpy and looplm imported is measured separately and reported too.

    python benchmarks/load_memory.py --type q4_0 -t 2 --json load.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from looplm.bench import synthetic_path

CHILD = r"""
import json, os, sys, time
def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out
path, threads, n_gen, cold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
if cold:
    fd = os.open(path, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
import numpy as np
import looplm
base = status()
t0 = time.perf_counter()
m = looplm.Model(path, n_ctx=n_gen + 64, n_threads=threads)
t_open = time.perf_counter() - t0
after_open = status()
prompt = list(range(100, 116))
logits = m.eval(prompt)
tok = int(np.argmax(logits))
t_first = time.perf_counter() - t0
for _ in range(n_gen - 1):
    tok = int(np.argmax(m.eval([tok])))
c = m.config
print(json.dumps({"open_s": t_open, "ttft_s": t_first, "base": base, "after_open": after_open,
                  "after_decode": status(), "kv_bytes": m.kv_bytes, "n_past": m.n_past,
                  "repacked_bytes": c["repacked_bytes"], "repack_s": c["repack_seconds"]}))
"""


def read_file_s(path: str) -> float:
    """Seconds to read the whole file cold with plain read() calls."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        while os.read(fd, 1 << 24):
            pass
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def child(path: str, threads: int, n_gen: int, cold: bool, repack: bool = True) -> dict:
    env = dict(os.environ, LOOPLM_REPACK="1" if repack else "0")
    r = subprocess.run([sys.executable, "-c", CHILD, path, str(threads), str(n_gen), "1" if cold else "0"],
                       check=True, capture_output=True, text=True, env=env)  # fmt: skip
    return json.loads(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="ouro-1.4b")
    ap.add_argument("--type", default="q4_0")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=256, help="tokens decoded before the memory reading")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    path = synthetic_path(args.shape, args.type)
    size = os.path.getsize(path)
    mib = 1 << 20
    read_s = read_file_s(path)
    cold = child(path, args.threads, args.n, True)
    warm = child(path, args.threads, args.n, False)
    cold_mapped = child(path, args.threads, args.n, True, repack=False)
    warm_mapped = child(path, args.threads, args.n, False, repack=False)
    out = {"file": path, "file_bytes": size, "read_file_cold_s": read_s, "cold": cold, "warm": warm,
           "cold_mapped": cold_mapped, "warm_mapped": warm_mapped}  # fmt: skip

    print(f"{Path(path).name}: {size / mib:.0f} MiB; reading it cold with read(): {read_s:.2f} s")
    print(
        "\n| weights | page cache | open (s) | of which repack (s) | time to first token (s) | VmRSS after decode (MiB) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for layout, pair in (("repacked x16", (cold, warm)), ("mapped (LOOPLM_REPACK=0)", (cold_mapped, warm_mapped))):
        for name, r in zip(("cold", "warm"), pair):
            rp = f"{r['repack_s']:.3f} ({r['repacked_bytes'] / mib:.0f} MiB)" if r["repacked_bytes"] else "-"
            print(f"| {layout} | {name} | {r['open_s']:.3f} | {rp} | {r['ttft_s']:.2f} | "
                  f"{r['after_decode']['VmRSS'] / mib:.0f} |")  # fmt: skip
    d = warm["after_decode"]
    interp = warm["base"]["VmRSS"]
    budget = size + warm["kv_bytes"] + 64 * mib
    print(f"\nafter decoding {warm['n_past']} positions: VmRSS {d['VmRSS'] / mib:.0f} MiB (RssFile "
          f"{d['RssFile'] / mib:.0f}, RssAnon {d['RssAnon'] / mib:.0f}); KV in use {warm['kv_bytes'] / mib:.1f} MiB; "
          f"interpreter with numpy+looplm {interp / mib:.0f} MiB")  # fmt: skip
    print(f"budget file + KV + 64 MiB = {budget / mib:.0f} MiB: "
          f"{'within' if d['VmRSS'] <= budget else 'OVER'} (margin {(budget - d['VmRSS']) / mib:.0f} MiB); "
          f"looplm's own overhead beyond file + KV: {(d['VmRSS'] - interp - size - warm['kv_bytes']) / mib:.0f} MiB")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
