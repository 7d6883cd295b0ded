"""The decode-speed ceilings of docs/raspberry-pi.md, computed (not measured): the bytes one
generated token streams from memory, divided by the Raspberry Pi 5's published STREAM read
bandwidth at 1, 2 and 4 threads.

A token at L loops reads every weight of the shared layers L times (plus the final norm and
the exit gate at each loop), the output matrix once and one row of the embedding. The tensor
shapes are the released configs' (looplm.synthetic), the stored type of each tensor is the
converter's policy (looplm.convert.quantize) and the bytes per block are gguf-py's. KV-cache
reads come on top and grow with the context; they are left out here.

    python scripts/pi_decode_estimate.py     # prints the Markdown tables of the doc
"""

from __future__ import annotations

import gguf
from gguf import GGMLQuantizationType as QT
from looplm.checkpoint import hf_tensors
from looplm.convert.quantize import nbytes, tensor_type
from looplm.synthetic import config

# Raspberry Pi 5 (Cortex-A76, LPDDR4X-4267) STREAM read bandwidth, GB/s, by thread count:
# the figures quoted in docs/raspberry-pi.md (llama.cpp issue #26484).
PI5_READ_GBPS = {1: 9.3, 2: 13.2, 4: 11.6}

# The types a token's weights can be stored in: the converter's --type values, and Q4_1
# (llama.cpp-quantized files, which looplm runs). BF16 streams the bytes of F16.
TYPES = [("F32", QT.F32), ("F16 / BF16", QT.F16), ("Q8_0", QT.Q8_0), ("Q4_1", QT.Q4_1), ("Q4_0", QT.Q4_0)]
MODELS = [("Ouro-1.4B", "ouro-1.4b"), ("Ouro-2.6B", "ouro-2.6b")]
LOOPS = (1, 2, 3, 4)


def stored_type(shape: tuple[int, ...], requested: QT) -> QT:
    """The converter's type for a tensor; Q4_1 follows the same policy as Q4_0."""
    if requested == QT.Q4_1:
        return QT.Q4_1 if tensor_type(shape, QT.Q4_0) == QT.Q4_0 else QT.F16
    return tensor_type(shape, requested)


def bytes_per_token(shape: str, qtype: QT, loops: int) -> tuple[int, int]:
    """(file's tensor bytes, bytes streamed per generated token at ``loops`` loops)."""
    total = per_token = 0
    for name, s in hf_tensors(config(shape)):
        t = stored_type(s, qtype)
        n = nbytes(s, t)
        total += n
        if name == "model.embed_tokens.weight":
            per_token += nbytes((s[1],), t)  # one row
        elif name == "lm_head.weight":
            per_token += n
        else:  # the shared layers, the final norm and the exit gate: once per loop
            per_token += loops * n
    return total, per_token


def table() -> str:
    """The Markdown tables: one per model, a row per type and loop count."""
    out = []
    bw = " | ".join(f"tok/s, {t} thread{'s' if t > 1 else ''} ({g} GB/s)" for t, g in PI5_READ_GBPS.items())
    for label, shape in MODELS:
        out.append(f"**{label}**\n")
        out.append(f"| type | file | loops | GB per token | {bw} |")
        out.append("|---|---|---|---|" + "---|" * len(PI5_READ_GBPS))
        for tname, qtype in TYPES:
            assert gguf.GGML_QUANT_SIZES[qtype]  # a type gguf-py knows
            for loops in LOOPS:
                size, tok = bytes_per_token(shape, qtype, loops)
                speeds = " | ".join(f"{g * 1e9 / tok:.1f}" for g in PI5_READ_GBPS.values())
                out.append(f"| {tname} | {size / 1e9:.2f} GB | {loops} | {tok / 1e9:.2f} | {speeds} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(table(), end="")
