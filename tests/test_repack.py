"""The x16 repack at load (csrc/model/repacked.*): reported in the model's config and its
describe() line, off with LOOPLM_REPACK=0, and giving the mapped layout's logits on real weights.
(The x16 kernels themselves are tested against float64 products of gguf-dequantized weights in
test_kernels.py.)"""

from __future__ import annotations

import looplm
import numpy as np

TOKENS = [1, 504, 3458, 314, 253, 1345, 30, 2]


def test_repack_is_reported_and_matches_the_mapped_layout(smollm_path, monkeypatch):
    monkeypatch.delenv("LOOPLM_REPACK", raising=False)
    repacked = looplm.Model(smollm_path, n_ctx=64)
    c = repacked.config
    if c["kernels"] in ("avx2", "avx512"):  # the x86 sets have x16 kernels: SmolLM2's Q4_1 matrices repack
        assert c["repacked_bytes"] > 0.5 * c["file_size"]
        assert "repacked to x16" in repacked.describe()
    assert c["repacked_bytes"] <= c["file_size"]
    assert c["repack_seconds"] >= 0.0
    monkeypatch.setenv("LOOPLM_REPACK", "0")
    mapped = looplm.Model(smollm_path, n_ctx=64)
    assert mapped.config["repacked_bytes"] == 0
    assert "repacked" not in mapped.describe()
    a = np.asarray(repacked.eval(TOKENS, all_logits=True))
    b = np.asarray(mapped.eval(TOKENS, all_logits=True))
    assert a.shape == b.shape == (len(TOKENS), c["n_vocab"])
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-3 * float(np.abs(b).max()))
    assert (a.argmax(-1) == b.argmax(-1)).all()
