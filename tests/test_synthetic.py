"""The benchmark models of looplm.synthetic, at a tiny shape: loadable, right layout, gate knobs."""

from __future__ import annotations

import gguf
import looplm
import numpy as np
import pytest
from looplm import synthetic

TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2}


@pytest.fixture
def tiny_shape(monkeypatch):
    monkeypatch.setitem(synthetic.SHAPES, "tiny", TINY)
    monkeypatch.setitem(synthetic.COMMON, "vocab_size", 512)
    monkeypatch.setitem(synthetic.COMMON, "num_attention_heads", 2)
    monkeypatch.setitem(synthetic.COMMON, "num_key_value_heads", 2)
    monkeypatch.setitem(synthetic.COMMON, "head_dim", 64)
    return "tiny"


@pytest.mark.parametrize("arch", ["ouro", "nanbeige"])
def test_layout_and_run(tmp_path, tiny_shape, arch):
    p = synthetic.write_gguf(tmp_path / "m.gguf", tiny_shape, "q4_0", arch=arch)
    r = gguf.GGUFReader(str(p))
    names = {t.name for t in r.tensors}
    assert ("blk.1.post_ffw_norm.weight" in names) == (arch == "ouro")
    assert r.fields[f"{arch}.num_loops"].contents() == 4
    m = looplm.Model(p, n_ctx=16, n_threads=1)
    assert m.config["arch"] == arch
    assert np.isfinite(m.eval([1, 2, 3])).all()


def test_post_norm_scale(tmp_path, tiny_shape):
    a = gguf.GGUFReader(str(synthetic.write_gguf(tmp_path / "a.gguf", tiny_shape, "q8_0")))
    b = gguf.GGUFReader(str(synthetic.write_gguf(tmp_path / "b.gguf", tiny_shape, "q8_0", post_norm_scale=0.001)))
    ta = {t.name: np.array(t.data) for t in a.tensors}
    tb = {t.name: np.array(t.data) for t in b.tensors}
    assert ta.keys() == tb.keys()
    scaled = [name for name in ta if name.endswith(synthetic.POST_NORMS)]
    assert len(scaled) == 2 * TINY["num_hidden_layers"]
    for name, value in ta.items():
        if name in scaled:
            np.testing.assert_allclose(tb[name], value * np.float32(0.001), rtol=1e-6)
        else:
            np.testing.assert_array_equal(tb[name], value)


def test_gate_bias_forces_first_loop_exit(tmp_path, tiny_shape):
    p = synthetic.write_gguf(tmp_path / "m.gguf", tiny_shape, "q8_0", gate_bias=30.0)
    m = looplm.Model(p, n_ctx=16, n_threads=1, exit_threshold=0.5)
    m.eval([5, 6, 7, 8])
    assert m.exit_steps == [0, 0, 0, 0]


@pytest.mark.parametrize("qtype", ["q4_0", "q4_1", "q8_0", "f16", "q4_k_m", "q5_k_m", "q6_k"])
def test_weight_types(tmp_path, tiny_shape, qtype):
    """Every type's random weights: the size gguf_bytes states, near-zero-mean values of std ~1/sqrt(cols)
    (checked through gguf-py's dequantizer), and a model that runs."""
    p = synthetic.write_gguf(tmp_path / "m.gguf", tiny_shape, qtype)
    r = gguf.GGUFReader(str(p))
    assert sum(int(t.n_bytes) for t in r.tensors) == synthetic.gguf_bytes(tiny_shape, qtype)
    types = {t.name: t.tensor_type.name for t in r.tensors}
    more = {"q4_k_m": "Q6_K", "q5_k_m": "Q6_K", "q6_k": "Q6_K"}.get(qtype, qtype.upper())  # last layer: more bits
    assert types["blk.1.ffn_down.weight"] == more
    assert types["blk.0.ffn_down.weight"] == {"q4_k_m": "Q4_K", "q5_k_m": "Q5_K"}.get(qtype, more)
    if qtype in synthetic.MIXTURES:  # rows of 128 fall back as in llama.cpp; the mixture's own tensors
        assert types["blk.0.attn_q.weight"] == {"q4_k_m": "Q5_0", "q5_k_m": "Q5_1", "q6_k": "Q8_0"}[qtype]
        assert types["output.weight"] == "Q8_0"
    for t in r.tensors:
        if len(t.shape) == 1:
            continue
        w = gguf.quants.dequantize(np.array(t.data), t.tensor_type).astype(np.float64)
        cols = w.shape[-1]
        assert abs(w.mean()) < 0.15 / np.sqrt(cols), t.name  # Q4_0: q - 8 has mean -0.5 (0.11 std)
        assert 0.8 < w.std() * np.sqrt(cols) < 1.25, (t.name, t.tensor_type.name, w.std() * np.sqrt(cols))
    m = looplm.Model(p, n_ctx=16, n_threads=1)
    assert np.isfinite(m.eval([1, 2, 3])).all()
