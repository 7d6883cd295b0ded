"""Per-tensor output types and the chunked conversion of one tensor to its GGUF bytes.

Policy: 1-D tensors (norms) stay F32; every 2-D weight, token_embd and output included,
takes the requested type. A matrix whose rows are not a whole number of 32-element blocks
falls back to F16 for Q8_0/Q4_0. Quantization is gguf-py's, so Q8_0/Q4_0 bytes equal ggml's.
"""

from __future__ import annotations

import math

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import LlamaFileType as FT

from .safetensors import to_float32

# --type value -> (tensor type of 2-D weights, general.file_type)
OUT_TYPES: dict[str, tuple[QT, FT]] = {
    "f32": (QT.F32, FT.ALL_F32),
    "f16": (QT.F16, FT.MOSTLY_F16),
    "bf16": (QT.BF16, FT.MOSTLY_BF16),
    "q8_0": (QT.Q8_0, FT.MOSTLY_Q8_0),
    "q4_0": (QT.Q4_0, FT.MOSTLY_Q4_0),
}

CHUNK_ELEMENTS = 1 << 22  # rows are converted in slabs of about this many elements


def tensor_type(shape: tuple[int, ...], requested: QT) -> QT:
    """The GGUF type a tensor of numpy shape ``shape`` is stored in."""
    if len(shape) == 1:
        return QT.F32
    if requested in (QT.Q8_0, QT.Q4_0) and shape[-1] % 32:
        return QT.F16
    return requested


def nbytes(shape: tuple[int, ...], qtype: QT) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * size


def byte_shape(shape: tuple[int, ...], qtype: QT) -> tuple[int, ...]:
    """numpy shape of the stored array: elements for F32/F16, bytes per row otherwise."""
    if qtype in (QT.F32, QT.F16):
        return shape
    return (*shape[:-1], nbytes((shape[-1],), qtype))


def convert(src: np.ndarray, src_dtype: str, qtype: QT) -> np.ndarray:
    """Converts a (memmapped) tensor to ``qtype``, a slab of rows at a time.

    Args:
        src: the tensor as read from safetensors (bf16 as uint16 bit patterns).
        src_dtype: its safetensors dtype ("BF16", "F16", "F32", ...).
        qtype: the GGUF type to produce.

    Returns:
        The GGUF data: float32/float16 elements, or uint8 bytes per row for BF16 and quants.
    """
    shape = tuple(src.shape)
    rows2d = src.reshape(-1, shape[-1]) if len(shape) > 1 else src.reshape(1, -1)
    out_dtype = {QT.F32: np.float32, QT.F16: np.float16}.get(qtype, np.uint8)
    out = np.empty(byte_shape(rows2d.shape, qtype), dtype=out_dtype)
    step = max(1, CHUNK_ELEMENTS // max(1, rows2d.shape[1]))
    for r0 in range(0, rows2d.shape[0], step):
        r1 = min(r0 + step, rows2d.shape[0])
        if qtype == QT.BF16 and src_dtype == "BF16":  # bf16 -> bf16 keeps the bits
            out[r0:r1] = np.asarray(rows2d[r0:r1], dtype=np.uint16).view(np.uint8)
            continue
        x = to_float32(rows2d[r0:r1], src_dtype)
        if qtype == QT.F32:
            out[r0:r1] = x
        elif qtype == QT.F16:
            out[r0:r1] = x.astype(np.float16)
        else:
            out[r0:r1] = gguf.quants.quantize(x, qtype)
    return out.reshape(byte_shape(shape, qtype))
