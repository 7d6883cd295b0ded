"""Load time and resident memory of a model with and without the load-time x16 repack.

Each run is a fresh process (``LOOPLM_REPACK=1`` and ``=0`` alternating, ``-r`` times each):
the seconds ``looplm.Model(path)`` takes, the resident set (``/proc/self/statm``) right after
the load and after one prompt of 8 tokens (which touches every matrix once). The mapped layout
loads in milliseconds and grows resident as the forward pass touches the file's pages; the
repacked one pays one read and write of its Q4_0 / Q4_1 matrices at load and drops their file
pages, so both end at about the file's size.

Example (docs/benchmarks.md, "ARM kernels")::

    python benchmarks/repack_load.py /work/ext/models/synthetic/ouro-1.4b-q4_0-gate0x1.gguf -r 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

_CHILD = r"""
import sys, time
import looplm

def rss_mib() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

t = time.perf_counter()
m = looplm.Model(sys.argv[1], n_ctx=256, n_threads=1)
dt = time.perf_counter() - t
r0 = rss_mib()
m.prefill(list(range(1, 9)))
print(f"{dt:.3f} {r0:.0f} {rss_mib():.0f}")
"""


def main() -> int:
    """Runs the loads and prints one markdown row per run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a GGUF file with Q4_0 or Q4_1 matrices")
    ap.add_argument("-r", "--repeat", type=int, default=3)
    a = ap.parse_args()
    print("| LOOPLM_REPACK | load s | RSS after load MiB | RSS after an 8-token prompt MiB |")
    print("|---:|---:|---:|---:|")
    for _ in range(a.repeat):
        for rep in ("1", "0"):
            env = dict(os.environ, LOOPLM_REPACK=rep)
            p = subprocess.run(
                [sys.executable, "-c", _CHILD, a.model], env=env, capture_output=True, text=True, check=False
            )
            if p.returncode != 0:
                print(p.stderr[-2000:], file=sys.stderr)
                return 1
            dt, r0, r1 = p.stdout.split()
            print(f"| {rep} | {dt} | {r0} | {r1} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
