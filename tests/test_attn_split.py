"""Decoding attention split by positions across threads (flash-decoding: partial max / sum /
values per thread, merged exactly) against the NumPy reference, and against the split by
heads (LOOPLM_ATTN_SPLIT=heads), at F32, over contexts that cross the cache's 32-position
pages, for 1-4 threads, in both kv_share modes."""

from __future__ import annotations

import looplm
import numpy as np
import pytest
from looplm import reference as R

PROMPT = [5, 99, 180, 3, 250, 17, 300, 44, 9, 12, 77]
DECODE = list(np.random.default_rng(3).integers(1, 300, size=60))


def rel_err(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def refs(tiny_gguf):
    cfg, w = R.load_gguf(tiny_gguf["f32"])
    tokens = PROMPT + [int(t) for t in DECODE]
    chunks = [len(PROMPT)] + [1] * len(DECODE)
    return {s: R.run(cfg, w, tokens, kv_share=s, chunks=chunks).chosen_logits for s in ("none", "last")}


@pytest.mark.parametrize("share", ["none", "last"])
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_decode_split_equals_reference(tiny_gguf, refs, monkeypatch, share, threads):
    out = {}
    for split in ("heads", "positions"):
        monkeypatch.setenv("LOOPLM_ATTN_SPLIT", split)
        m = looplm.Model(tiny_gguf["f32"], kv_type="f32", kv_share=share, n_threads=threads)
        got = [m.eval(PROMPT, all_logits=True)] + [m.eval([int(t)], all_logits=True) for t in DECODE]
        out[split] = np.concatenate(got)
        assert rel_err(out[split], refs[share]) < 1e-4, split
    # the two splits sum in different orders: close, and bit-equal only with one thread
    assert rel_err(out["positions"], out["heads"]) < 1e-5
