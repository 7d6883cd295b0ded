"""Every kernel set this machine has, against the scalar reference and gguf-py.

Activation quantization is bit-exact across sets (and equal to gguf-py's Q8_0); matmuls
agree within float rounding (only the order of the float accumulation differs).
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from conftest import KERNEL_SETS
from gguf import GGMLQuantizationType as QT
from looplm import _core

RNG = np.random.default_rng(7)


def activations(rows: int, n: int) -> np.ndarray:
    x = RNG.standard_normal((rows, n)).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero block
    x[0, 32:64] = np.float32(0.5) * np.arange(32, dtype=np.float32) / 127  # ties at .5 after scaling
    return x


@pytest.mark.parametrize("kset", KERNEL_SETS)
def test_quantize_equals_gguf(kset):
    """Activation blocks: the Q8_0 part equals gguf-py's quantizer byte for byte; the
    precomputed terms are ds = d * sum(q) and bias = -8 * (sums of 4 quants), lanes 4..7 x16."""
    x = activations(8, 256)
    for row in x:
        q8, ds, bias = _core.kernel_quantize(kset, row)
        ref = gguf.quants.quantize(row[None], QT.Q8_0)[0]
        np.testing.assert_array_equal(np.frombuffer(q8, np.uint8), ref)
        blocks = ref.reshape(-1, 34)
        d = blocks[:, :2].copy().view(np.float16).astype(np.float32)[:, 0]
        q = blocks[:, 2:].view(np.int8).astype(np.int32)
        np.testing.assert_array_equal(bias, -8 * q.reshape(-1, 8, 4).sum(-1) * np.array([1, 1, 1, 1, 16, 16, 16, 16]))
        np.testing.assert_array_equal(ds, d * q.sum(-1).astype(np.float32))


def weights(qtype: QT, rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw GGUF rows, their dequantized values)."""
    w = RNG.standard_normal((rows, n)).astype(np.float32)
    if qtype == QT.F32:
        return w.view(np.uint8), w
    if qtype == QT.F16:
        h = w.astype(np.float16)
        return h.view(np.uint8), h.astype(np.float32)
    raw = gguf.quants.quantize(w, qtype)
    return raw, gguf.quants.dequantize(raw, qtype).astype(np.float32)


def dequant_acts(qtype: QT, x: np.ndarray) -> np.ndarray:
    """What the kernels multiply: the activations as the weight type's kernels see them."""
    if qtype in (QT.Q4_0, QT.Q4_1, QT.Q8_0):  # Q8_0-quantized activations
        return gguf.quants.dequantize(gguf.quants.quantize(x, QT.Q8_0), QT.Q8_0)
    return x


MATMUL_TYPES = [QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1]


@pytest.mark.parametrize("qtype", MATMUL_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("nc", [1, 3, 5, 9])
def test_matmul_matches_numpy_and_reference(qtype, nc):
    n, rows = 256, 37
    if qtype == QT.BF16:
        w32 = RNG.standard_normal((rows, n)).astype(np.float32)
        raw = gguf.quants.quantize(w32, QT.BF16)
        wdq = gguf.quants.dequantize(raw, QT.BF16).astype(np.float32)
    else:
        raw, wdq = weights(qtype, rows, n)
    x = activations(nc, n)
    expect = dequant_acts(qtype, x).astype(np.float64) @ wdq.astype(np.float64).T
    ref = _core.kernel_matmul("ref", int(qtype), np.ascontiguousarray(raw), n, x)
    scale = np.abs(expect).max()
    assert np.abs(ref - expect).max() < 1e-5 * scale * np.sqrt(n)
    for kset in KERNEL_SETS:
        got = _core.kernel_matmul(kset, int(qtype), np.ascontiguousarray(raw), n, x)
        assert np.abs(got - ref).max() <= 1e-5 * scale, kset


@pytest.mark.parametrize("kset", KERNEL_SETS)
@pytest.mark.parametrize("n", [1, 7, 64, 128, 133])
def test_attention_helpers(kset, n):
    a = RNG.standard_normal(n).astype(np.float32)
    b = RNG.standard_normal(n).astype(np.float32)
    a16 = a.astype(np.float16)
    ref = float(a16.astype(np.float64) @ b.astype(np.float64))
    assert _core.kernel_vec(kset, "dot_f16", a16.view(np.uint16), b) == pytest.approx(ref, rel=1e-5, abs=1e-5)
    assert _core.kernel_vec(kset, "dot_f32", a, b) == pytest.approx(float(a.astype(np.float64) @ b), rel=1e-5, abs=1e-5)
    big = np.concatenate([a, [65504.0, 65520.0, 1e-8, -0.0, 6e-5, 3e-8]]).astype(np.float32)
    with np.errstate(over="ignore"):
        expect = big.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(_core.kernel_vec(kset, "f32_to_f16", big, big), expect)


KV_TYPES = [QT.F32, QT.F16, QT.Q8_0, QT.Q4_0]


def kv_rows(qtype: QT, nrows: int, n: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw KV rows [nrows, row bytes + pad] as the cache holds them, a stride apart, their
    gguf-py dequantized values in float64)."""
    raw, deq = weights(qtype, nrows, n)
    raw = raw.reshape(nrows, -1)
    padded = np.full((nrows, raw.shape[1] + pad), 0xA5, np.uint8)  # garbage between rows
    padded[:, : raw.shape[1]] = raw
    return padded, deq.reshape(nrows, n).astype(np.float64)


@pytest.mark.parametrize("qtype", KV_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize(("nrows", "n"), [(1, 32), (7, 64), (8, 128), (13, 128), (32, 128), (19, 96), (9, 256)])
def test_kv_runs_match_numpy_and_reference(qtype, nrows, n):
    """Scores and weighted sums over a run of KV rows a stride apart: the scalar reference
    against float64 NumPy on gguf-py's dequantized rows, every set against the reference."""
    raw, deq = kv_rows(qtype, nrows, n, pad=40)
    q = RNG.standard_normal(n).astype(np.float32)
    w = RNG.random(nrows).astype(np.float32)
    acc = RNG.standard_normal(n).astype(np.float32)
    expect_s = 0.125 * (deq @ q.astype(np.float64))
    expect_o = acc + w.astype(np.float64) @ deq
    tol_s = 1e-5 * 0.125 * (np.abs(deq) @ np.abs(q.astype(np.float64))) + 1e-7
    tol_o = 1e-5 * (np.abs(acc) + w.astype(np.float64) @ np.abs(deq)) + 1e-7
    ref_s = _core.kernel_kv_scores("ref", int(qtype), raw, n, q, 0.125)
    ref_o = _core.kernel_kv_wsum("ref", int(qtype), raw, n, w, acc)
    assert np.all(np.abs(ref_s - expect_s) <= tol_s)
    assert np.all(np.abs(ref_o - expect_o) <= tol_o)
    for kset in KERNEL_SETS:
        got_s = _core.kernel_kv_scores(kset, int(qtype), raw, n, q, 0.125)
        got_o = _core.kernel_kv_wsum(kset, int(qtype), raw, n, w, acc)
        assert np.all(np.abs(got_s - ref_s) <= tol_s), kset
        assert np.all(np.abs(got_o - ref_o) <= tol_o), kset


@pytest.mark.parametrize("kset", KERNEL_SETS)
@pytest.mark.parametrize("qtype", [QT.F32, QT.F16], ids=lambda t: t.name)
@pytest.mark.parametrize("n", [1, 7, 20, 100, 133])
def test_kv_runs_float_any_length(kset, qtype, n):
    """Float rows of any length (the vector kernels' tails), 11 rows: 8 per pass plus 3."""
    raw, deq = kv_rows(qtype, 11, n, pad=6)
    q = RNG.standard_normal(n).astype(np.float32)
    w = RNG.random(11).astype(np.float32)
    acc = RNG.standard_normal(n).astype(np.float32)
    s = _core.kernel_kv_scores(kset, int(qtype), raw, n, q, 0.5)
    np.testing.assert_allclose(s, 0.5 * (deq @ q), rtol=1e-5, atol=1e-5)
    o = _core.kernel_kv_wsum(kset, int(qtype), raw, n, w, acc)
    np.testing.assert_allclose(o, acc + w.astype(np.float64) @ deq, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kset", KERNEL_SETS)
def test_kv_run_bad_input(kset):
    raw, _ = kv_rows(QT.Q8_0, 4, 64, pad=0)
    with pytest.raises(ValueError, match="rows shape mismatch"):
        _core.kernel_kv_scores(kset, int(QT.Q8_0), raw[:, :-1], 64, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="bad row length"):
        _core.kernel_kv_scores(kset, int(QT.Q8_0), raw, 48, np.zeros(48, np.float32))
    with pytest.raises(ValueError, match="not supported"):
        _core.kernel_kv_wsum(kset, int(QT.Q4_1), raw, 64, np.zeros(4, np.float32), np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="length mismatch"):
        _core.kernel_kv_wsum(kset, int(QT.Q8_0), raw, 64, np.zeros(3, np.float32), np.zeros(64, np.float32))


@pytest.mark.parametrize("kset", KERNEL_SETS)
@pytest.mark.parametrize("n", [1, 8, 37, 1000])
def test_exp_sum(kset, n):
    """Softmax numerator: exp(x - m) within ~2 ulp of float64 NumPy's exp of the f32 difference,
    and its sum."""
    x = (RNG.standard_normal(n) * 10).astype(np.float32)
    x[0] = -200.0  # far below the max: a tiny value (or 0), not NaN
    m = float(x.max())
    got, total = _core.kernel_exp_sum(kset, x, m)
    expect = np.exp((x - np.float32(m)).astype(np.float64))
    assert np.all(np.abs(got - expect) <= 2.5e-7 * expect + 1e-37)
    assert total == pytest.approx(float(expect.sum()), rel=1e-6)
    ref, _ = _core.kernel_exp_sum("ref", x, m)
    assert np.all(np.abs(got - ref) <= 2.5e-7 * expect + 1e-37)


@pytest.mark.parametrize("kset", KERNEL_SETS)
@pytest.mark.parametrize("n", [1, 9, 64, 5632])
def test_silu_mul(kset, n):
    g = (RNG.standard_normal(n) * 8).astype(np.float32)
    g[:3] = np.array([-100.0, 100.0, 0.0], np.float32)[: min(3, n)]
    u = RNG.standard_normal(n).astype(np.float32)
    expect = g.astype(np.float64) / (1 + np.exp(-g.astype(np.float64))) * u
    got = _core.kernel_vec(kset, "silu_mul", g, u)
    np.testing.assert_allclose(got, expect, rtol=2e-6, atol=1e-30)


def test_kernel_choice():
    import looplm

    assert looplm.kernels() == KERNEL_SETS[-1]  # the fastest available set is the default
    assert KERNEL_SETS[0] == "ref"
    with pytest.raises(ValueError, match="kernel set 'nope'"):
        _core.kernel_quantize("nope", np.zeros(32, np.float32))


# ---- Q5_0, Q5_1 and the K-quants (Q4_K, Q5_K, Q6_K with Q8_K activations)

QK_K = 256


def q8k_numpy(x: np.ndarray) -> bytes:
    """ggml's quantize_row_q8_K_ref in NumPy float32: max = the first element of largest |x|
    (sign kept), iscale = -127 / max, q = min(127, round-half-even(iscale * x)), d = 1 / iscale,
    bsums = sums of 16 quants; an all-zero block is all zeros."""
    out = bytearray()
    for blk in x.astype(np.float32).reshape(-1, QK_K):
        a = np.abs(blk)
        if a.max() == 0:
            d, q = np.float32(0), np.zeros(QK_K, np.int32)
        else:
            iscale = np.float32(-127.0) / blk[int(np.argmax(a))]
            q = np.minimum(127, np.rint(iscale * blk)).astype(np.int32)
            d = np.float32(1.0) / iscale
        out += np.float32(d).tobytes() + q.astype(np.int8).tobytes() + q.reshape(16, 16).sum(1).astype("<i2").tobytes()
    return bytes(out)


def q8k_values(raw: bytes) -> np.ndarray:
    """What the K-quant kernels multiply: d * q per element of block_q8_K rows, in float64."""
    b = np.frombuffer(raw, np.uint8).reshape(-1, 292)
    d = b[:, :4].copy().view(np.float32).astype(np.float64)
    return (d * b[:, 4:260].view(np.int8)).reshape(-1)


def k_activations(rows: int, n: int) -> np.ndarray:
    x = RNG.standard_normal((rows, n)).astype(np.float32)
    x[0, :QK_K] = 0.0  # an all-zero block
    if n >= 2 * QK_K:  # max = -127: iscale = 1, so x = k + 0.5 are exact ties (to even)
        x[0, QK_K : 2 * QK_K] = np.arange(QK_K, dtype=np.float32) % 100 - 49.5
        x[0, QK_K] = -127.0
    return x


@pytest.mark.parametrize("kset", KERNEL_SETS)
def test_quantize_q8k_equals_ggml_reference(kset):
    """quantize_q8k, byte for byte, against quantize_row_q8_K_ref written in NumPy."""
    x = k_activations(6, 4 * QK_K)
    x[1] *= np.float32(1e-4)
    x[2] *= np.float32(3e4)
    x[3, :QK_K] = 0.0
    x[3, 7] = 2.0  # one positive extreme: iscale < 0 flips the signs, q = -127 there
    x[4, 5], x[4, 9] = -3.0, 3.0  # equal |x|: the first one is the max
    for row in x:
        assert _core.kernel_quantize_q8k(kset, row) == q8k_numpy(row)


# Byte offsets of the fp16 super-block scales in each block (written with sane values; all
# other bytes are random, so every quant, scale and min value occurs).
SCALE_FIELDS = {QT.Q5_0: (0,), QT.Q5_1: (0, 2), QT.Q4_K: (0, 2), QT.Q5_K: (0, 2), QT.Q6_K: (208,)}
NEW_TYPES = list(SCALE_FIELDS)


def random_blocks(qtype: QT, rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw rows of random blocks, their gguf-py dequantization in float64)."""
    block, nbytes = gguf.constants.GGML_QUANT_SIZES[qtype]
    nb = rows * n // block
    raw = RNG.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    for off in SCALE_FIELDS[qtype]:
        h = (RNG.standard_normal(nb) * 0.02).astype(np.float16)
        raw[:, off : off + 2] = h.view(np.uint8).reshape(nb, 2)
    raw = raw.reshape(rows, -1)
    return raw, gguf.quants.dequantize(raw, qtype).astype(np.float64)


@pytest.mark.parametrize("qtype", NEW_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("nc", [1, 3, 4, 5, 9])
def test_new_gemm_matches_gguf_dequantized(qtype, nc):
    """The reference tile against float64 products of gguf-py's dequantized weights with the
    dequantized activation quants (Q8_0 via gguf-py for Q5_x, Q8_K via q8k_numpy); every other
    set against the reference."""
    n, rows = 768, 37
    raw, wdq = random_blocks(qtype, rows, n)
    x = k_activations(nc, n)
    if qtype in (QT.Q5_0, QT.Q5_1):
        xdq = gguf.quants.dequantize(gguf.quants.quantize(x, QT.Q8_0), QT.Q8_0).astype(np.float64)
    else:
        xdq = np.stack([q8k_values(q8k_numpy(row)) for row in x])
    expect = xdq @ wdq.T
    ref = _core.kernel_gemm("ref", int(qtype), raw, n, x)
    scale = np.abs(expect).max()
    assert np.abs(ref - expect).max() <= 2e-6 * scale
    for kset in KERNEL_SETS:
        got = _core.kernel_gemm(kset, int(qtype), raw, n, x)
        assert np.abs(got - ref).max() <= 1e-5 * scale, kset


def test_new_gemm_rejects_bad_input():
    raw, _ = random_blocks(QT.Q4_K, 2, 512)
    x = np.zeros((1, 512), np.float32)
    with pytest.raises(ValueError, match="shape mismatch"):
        _core.kernel_gemm("ref", int(QT.Q4_K), raw, 256, x[:, :256])
    with pytest.raises(ValueError, match="has no quantized GEMM"):
        _core.kernel_gemm("ref", int(QT.F16), raw, 512, x)
    with pytest.raises(ValueError, match="multiple of 256"):
        _core.kernel_quantize_q8k("ref", np.zeros(32, np.float32))


@pytest.mark.parametrize("qtype", [QT.Q4_K, QT.Q5_K, QT.Q6_K], ids=lambda t: t.name)
@pytest.mark.parametrize("nc", [8, 16, 19, 72])
def test_packed_k_gemm_matches_gguf_dequantized(qtype, nc):
    """The K-quants' packed many-column GEMM (prompts of >= 8 tokens, through ops): the scalar
    reference of the packed layout against float64 products of gguf-py's dequantized weights
    with the Q8_K activations (q8k_numpy) and against the plain reference tile; every other set
    against it. 37 rows (a partial 8-row tile), 72 columns (more than one 64-column block, a
    group of 8 and a plain remainder of columns)."""
    n, rows = 768, 37
    raw, wdq = random_blocks(qtype, rows, n)
    x = k_activations(nc, n)
    xdq = np.stack([q8k_values(q8k_numpy(row)) for row in x])
    expect = xdq @ wdq.T
    scale = np.abs(expect).max()
    ref = _core.kernel_matmul("ref", int(qtype), raw, n, x)
    assert np.abs(ref - expect).max() <= 2e-6 * scale
    np.testing.assert_allclose(ref, _core.kernel_gemm("ref", int(qtype), raw, n, x), rtol=0, atol=2e-6 * scale)
    for kset in KERNEL_SETS:
        got = _core.kernel_matmul(kset, int(qtype), raw, n, x)
        assert np.abs(got - ref).max() <= 1e-5 * scale, kset


@pytest.mark.parametrize("qtype", [QT.Q4_0, QT.Q4_1, QT.Q4_K, QT.Q6_K], ids=lambda t: t.name)
@pytest.mark.parametrize("nc", [1, 3, 5, 9, 70])
def test_x16_gemm_matches_gguf_dequantized(qtype, nc):
    """The GEMMs over the x16 layout made at load (kernels/x16.h), on rows repacked by
    quant/repack.cpp: the reference equal to the plain reference tile bit for bit and within
    float rounding of float64 products of gguf-py's dequantized weights and activations; every
    other set within 1e-5 of it. 37 rows: two groups of 16 and 5 plain tail rows."""
    n, rows = 768, 37
    x = k_activations(nc, n)
    if qtype in (QT.Q4_K, QT.Q6_K):
        raw, wdq = random_blocks(qtype, rows, n)
        xdq = np.stack([q8k_values(q8k_numpy(row)) for row in x])
    else:
        raw, w32 = weights(qtype, rows, n)
        wdq = w32.astype(np.float64)
        xdq = dequant_acts(qtype, x).astype(np.float64)
    expect = xdq @ wdq.T
    scale = np.abs(expect).max()
    ref = _core.kernel_gemm_x16("ref", int(qtype), raw, n, x)
    np.testing.assert_array_equal(ref, _core.kernel_gemm("ref", int(qtype), raw, n, x))
    assert np.abs(ref - expect).max() <= 2e-6 * scale * np.sqrt(n / 256)
    for kset in KERNEL_SETS:
        got = _core.kernel_gemm_x16(kset, int(qtype), raw, n, x)
        assert np.abs(got - ref).max() <= 1e-5 * scale, kset


def test_x16_gemm_rejects_a_type_without_the_layout():
    raw, _ = random_blocks(QT.Q5_0, 2, 256)
    with pytest.raises(ValueError, match="no x16 layout for Q5_0"):
        _core.kernel_gemm_x16("ref", int(QT.Q5_0), raw, 256, np.zeros((1, 256), np.float32))
