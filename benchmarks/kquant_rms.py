"""RMS error of looplm's K-quant quantizers against llama.cpp's on the same weights.

Usage:
    python benchmarks/kquant_rms.py SRC.gguf LLAMA_CPP_OUT.gguf LOOPLM_OUT.gguf

Both outputs must be made from SRC (llama-quantize / looplm quantize). For every tensor that
both files store in the same quantized type, the decoded values are compared with SRC's
decoded values (gguf-py decodes all three); prints, per type, the RMS error of each quantizer
relative to the RMS of the weights, and the share of tensors whose bytes are identical.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import gguf
import numpy as np


def tensors(path: str) -> dict:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def decode(t) -> np.ndarray:
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(-1)


def main(src: str, theirs: str, ours: str) -> None:
    s, a, b = tensors(src), tensors(theirs), tensors(ours)
    err = defaultdict(lambda: [0.0, 0.0, 0.0, 0, 0, 0])  # sum sq theirs, ours, x; n tensors; same bytes; elems
    for name, ta in a.items():
        tb = b.get(name)
        if tb is None or ta.tensor_type != tb.tensor_type or ta.tensor_type in (gguf.GGMLQuantizationType.F32,):
            continue
        x = decode(s[name])
        e = err[ta.tensor_type.name]
        e[0] += float(((decode(ta) - x) ** 2).sum())
        e[1] += float(((decode(tb) - x) ** 2).sum())
        e[2] += float((x**2).sum())
        e[3] += 1
        e[4] += int(np.array_equal(np.asarray(ta.data), np.asarray(tb.data)))
        e[5] += x.size
    print(
        "| type | tensors | elements | llama.cpp RMS err / RMS w | looplm RMS err / RMS w | looplm / llama.cpp | identical bytes |"
    )
    print("|---|---|---|---|---|---|---|")
    for t, (sa, sb, sx, n, same, el) in sorted(err.items()):
        ra, rb = np.sqrt(sa / sx), np.sqrt(sb / sx)
        print(f"| {t} | {n} | {el / 1e6:.1f} M | {ra:.5f} | {rb:.5f} | {rb / ra:.4f} | {same}/{n} |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
