"""The x16 repack at load (csrc/model/repacked.*): reported in the model's config and its
describe() line, off with LOOPLM_REPACK=0, and giving the mapped layout's logits on real weights.
(The x16 kernels themselves are tested against float64 products of gguf-dequantized weights in
test_kernels.py.)"""

from __future__ import annotations

import looplm
import numpy as np
import pytest

TOKENS = [1, 504, 3458, 314, 253, 1345, 30, 2]

# The repacked and the mapped layouts run different kernels: each rounds the activations to
# 8 bits per block and sums in float32, in its own order. docs/numerics.md measures each kernel
# set at about 0.22 logits rms from float64 on this file (rms logit ~10), so two independent
# roundings differ by about sqrt(2) * 0.22 = 0.31: 3% of the rms logit. A wrong repack (a row's
# scale or a nibble in the wrong place) moves the logits by their own size.
RMS_SHARE = 0.03


def _load(path, monkeypatch, kernels, repack):
    if repack:
        monkeypatch.delenv("LOOPLM_REPACK", raising=False)
    else:
        monkeypatch.setenv("LOOPLM_REPACK", "0")
    return looplm.Model(path, n_ctx=64, kernels=kernels)


def test_repack_is_reported_and_off_with_the_environment_variable(smollm_path, monkeypatch):
    repacked = _load(smollm_path, monkeypatch, None, True)
    c = repacked.config
    if c["kernels"] in ("avx2", "avx512"):  # the x86 sets have x16 kernels: SmolLM2's Q4_1 matrices repack
        assert c["repacked_bytes"] > 0.5 * c["file_size"]
        assert "repacked to x16" in repacked.describe()
    assert c["repacked_bytes"] <= c["file_size"]
    assert c["repack_seconds"] >= 0.0
    mapped = _load(smollm_path, monkeypatch, None, False)
    assert mapped.config["repacked_bytes"] == 0
    assert "repacked" not in mapped.describe()


@pytest.mark.parametrize("kernels", looplm.kernels_available())
def test_repacked_logits_match_the_mapped_layout(smollm_path, monkeypatch, kernels):
    repacked = _load(smollm_path, monkeypatch, kernels, True)
    mapped = _load(smollm_path, monkeypatch, kernels, False)
    assert repacked.config["kernels"] == mapped.config["kernels"] == kernels
    a = np.asarray(repacked.eval(TOKENS, all_logits=True), dtype=np.float64)
    b = np.asarray(mapped.eval(TOKENS, all_logits=True), dtype=np.float64)
    assert a.shape == b.shape == (len(TOKENS), repacked.config["n_vocab"])
    rms = float(np.sqrt(np.mean((a - b) ** 2)))
    assert rms <= RMS_SHARE * float(np.sqrt(np.mean(b**2))), rms
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert (cos > 0.995).all(), cos
    # The token the repacked run picks is, in the mapped run, at most a rounding below the top.
    picked = b[np.arange(len(TOKENS)), a.argmax(-1)]
    assert (b.max(-1) - picked < 0.1 * b.std(-1)).all()
