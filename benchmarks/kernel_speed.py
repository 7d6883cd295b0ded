"""Kernel micro-benchmark: one thread's quantized GEMV (decode) and 8-column tile (prefill) per
weight type and kernel set, on random blocks of the Ouro-1.4B FFN shape (5632 x 2048).

Each figure is the best of `--reps` calls of the set's tile GEMM through the kernel test hook
(`_core.kernel_gemm`, which includes quantizing the activations). Reported per type: weight
bytes read per second, that as a share of the single-thread read bandwidth measured in the same
run, and the time relative to Q4_0 in the same set (the peer). The matrix (6-12 MB) stays in
a large last-level cache across calls, so on such machines the figures are the kernels' compute
rates (shares above 100%), not DRAM-bound decode speed; `looplm bench` measures that.

    python benchmarks/kernel_speed.py [--reps 20] [--sets avx2 avx512]
"""

from __future__ import annotations

import argparse
import time

import gguf
import looplm
import numpy as np
from gguf import GGMLQuantizationType as QT
from looplm import _core

TYPES = [QT.Q4_0, QT.Q4_1, QT.Q8_0, QT.Q5_0, QT.Q5_1, QT.Q4_K, QT.Q5_K, QT.Q6_K]
ROWS, N = 5632, 2048


def random_rows(qtype: QT, rng: np.random.Generator) -> np.ndarray:
    """Random blocks with small finite fp16 scales (the speed does not depend on the values)."""
    block, nbytes = gguf.constants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (ROWS * N // block, nbytes), dtype=np.uint8)
    offsets = {QT.Q6_K: (208,), QT.Q4_0: (0,), QT.Q8_0: (0,), QT.Q5_0: (0,)}.get(qtype, (0, 2))
    for off in offsets:
        raw[:, off : off + 2] = np.full(len(raw), 0.01, np.float16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(ROWS, -1)


def best(kset: str, qtype: QT, w: np.ndarray, x: np.ndarray, reps: int) -> float:
    """Best-of-`reps` seconds of one kernel_gemm call."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        _core.kernel_gemm(kset, int(qtype), w, N, x)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--sets", nargs="*", default=None, help="kernel sets (default: all but ref)")
    args = ap.parse_args()
    sets = args.sets or [s for s in looplm.kernels_available() if s != "ref"]
    rng = np.random.default_rng(0)
    bw = _core.read_bandwidth(1)
    print(f"single-thread read bandwidth: {bw / 1e9:.2f} GB/s; W = {ROWS} x {N}")
    print(
        f"{'set':8} {'type':5} {'MB':>6} {'GEMV GB/s':>10} {'of bw':>6} {'vs Q4_0':>8} {'8-col ms':>9} {'vs Q4_0':>8}"
    )
    weights = {t: random_rows(t, rng) for t in TYPES}
    for s in sets:
        peer: dict[str, float] = {}
        for t in TYPES:
            w = weights[t]
            x1 = rng.standard_normal((1, N)).astype(np.float32)
            x8 = rng.standard_normal((8, N)).astype(np.float32)
            t1 = best(s, t, w, x1, args.reps)
            t8 = best(s, t, w, x8, max(3, args.reps // 4))
            if t == QT.Q4_0:
                peer = {"t1": t1, "t8": t8}
            print(
                f"{s:8} {t.name:5} {w.nbytes / 1e6:6.2f} {w.nbytes / t1 / 1e9:10.2f} {w.nbytes / t1 / bw:6.0%} "
                f"{t1 / peer['t1']:8.2f} {t8 * 1e3:9.2f} {t8 / peer['t8']:8.2f}"
            )


if __name__ == "__main__":
    main()
