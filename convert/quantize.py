"""The chunked conversion of one tensor to its GGUF bytes (which type each tensor gets is
mixture.py's). Q8_0/Q4_0/Q5_0/Q5_1 come from gguf-py's quantizers, so their bytes equal ggml's;
the K-quants (Q4_K, Q5_K, Q6_K), which gguf-py cannot write, from looplm's own (quant/kquant.cpp).
"""

from __future__ import annotations

import math
import os

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

from .mixture import OUT_TYPES, tensor_type
from .safetensors import to_float32

__all__ = ["CHUNK_ELEMENTS", "OUT_TYPES", "byte_shape", "convert", "nbytes", "quantize_rows", "tensor_type"]

K_QUANTS = (QT.Q4_K, QT.Q5_K, QT.Q6_K)

CHUNK_ELEMENTS = 1 << 22  # rows are converted in slabs of about this many elements


def quantize_rows(x: np.ndarray, qtype: QT) -> np.ndarray:
    """f32 rows -> raw GGUF rows of ``qtype`` (uint8, one row of bytes per row)."""
    if qtype in K_QUANTS:
        from looplm import _core

        return _core.quantize(int(qtype), np.ascontiguousarray(x, dtype=np.float32), min(2, os.cpu_count() or 1))
    return gguf.quants.quantize(x, qtype)


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
            out[r0:r1] = quantize_rows(x, qtype)
    return out.reshape(byte_shape(shape, qtype))
