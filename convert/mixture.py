"""Which GGUF type each tensor gets: looplm's plain policy for f32/f16/bf16/q8_0/q4_0/q4_1, and
llama.cpp's mixture rules (``llama_tensor_get_type``, without an importance matrix) for the
K-quant file types and q5_0/q5_1, so a looplm Q4_K_M holds the types llama-quantize's would.
docs/gguf-format.md states the rules.
"""

from __future__ import annotations

import re

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import LlamaFileType as FT

# --type value -> (the default type of 2-D weights, general.file_type)
OUT_TYPES: dict[str, tuple[QT, FT]] = {
    "f32": (QT.F32, FT.ALL_F32),
    "f16": (QT.F16, FT.MOSTLY_F16),
    "bf16": (QT.BF16, FT.MOSTLY_BF16),
    "q8_0": (QT.Q8_0, FT.MOSTLY_Q8_0),
    "q4_0": (QT.Q4_0, FT.MOSTLY_Q4_0),
    "q4_1": (QT.Q4_1, FT.MOSTLY_Q4_1),
    "q5_0": (QT.Q5_0, FT.MOSTLY_Q5_0),
    "q5_1": (QT.Q5_1, FT.MOSTLY_Q5_1),
    "q4_k_s": (QT.Q4_K, FT.MOSTLY_Q4_K_S),
    "q4_k_m": (QT.Q4_K, FT.MOSTLY_Q4_K_M),
    "q5_k_m": (QT.Q5_K, FT.MOSTLY_Q5_K_M),
    "q6_k": (QT.Q6_K, FT.MOSTLY_Q6_K),
}

# The types whose files follow llama.cpp's mixture.
MIXED = ("q5_0", "q5_1", "q4_k_s", "q4_k_m", "q5_k_m", "q6_k")

# A type whose block does not divide the rows -> llama.cpp's fallback (then F16).
FALLBACK = {QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1, QT.Q6_K: QT.Q8_0}

_LAYER = re.compile(r"^blk\.(\d+)\.")


def block_size(t: QT) -> int:
    return gguf.GGML_QUANT_SIZES[t][0]


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of the layers that get more bits: the first and last eighth, and
    every third layer in between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(name: str, shape: tuple[int, ...], out_type: str, n_layer: int, has_output: bool) -> QT:
    """The GGUF type of tensor ``name`` (numpy ``shape``, rows of ``shape[-1]``) in a file of
    ``--type out_type`` for a model of ``n_layer`` layers; ``has_output``: a separate
    output.weight exists (else token_embd doubles as the output and follows its rule)."""
    if len(shape) == 1:
        return QT.F32
    default = OUT_TYPES[out_type][0]
    nx = shape[-1]
    if out_type not in MIXED:
        if default in (QT.Q8_0, QT.Q4_0, QT.Q4_1) and nx % 32:
            return QT.F16
        return default
    t = default
    m = _LAYER.match(name)
    layer = int(m.group(1)) if m else -1
    if name == "output.weight" or (name == "token_embd.weight" and not has_output):
        t = QT.Q8_0 if nx % block_size(default) else QT.Q6_K
    elif name.endswith("attn_v.weight"):
        if out_type in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            t = QT.Q6_K
        elif out_type == "q4_k_s" and layer < 4:
            t = QT.Q5_K
    elif name.endswith("ffn_down.weight"):
        if out_type in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            t = QT.Q6_K
        elif out_type == "q4_k_s" and layer < n_layer // 8:
            t = QT.Q5_K
    if nx % block_size(t):
        t = FALLBACK.get(t, QT.F16)
        if nx % block_size(t):
            t = QT.F16
    return t
