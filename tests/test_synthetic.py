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
