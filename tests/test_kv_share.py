"""kv_share="last" (docs/kv-cache.md): the runtime against the NumPy reference run under the
same written rule, for prompts, decoding, exits, chat continuation and prefix reuse (F32 KV)."""

from __future__ import annotations

import looplm
import numpy as np
import pytest
from looplm import reference as R

PROMPT = [5, 99, 180, 3, 250, 17, 300, 44]
DECODE = [120, 121, 7, 8, 9, 200]
TURN = [201, 202, 31, 32, 33]


def rel_err(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def varied(make_gguf):
    """A model whose gate gives different exit loops to different tokens."""
    return make_gguf("f32", seed=2, gate_scale=6.0, gate_bias=-1.0)


def shared(path, **kw):
    return looplm.Model(path, kv_type="f32", kv_share="last", **kw)


def feed(m, chunks: list[list[int]]) -> np.ndarray:
    """Each chunk in one eval call; the logits of every token."""
    return np.concatenate([m.eval(c, all_logits=True) for c in chunks])


def conversation() -> list[list[int]]:
    return [PROMPT] + [[t] for t in DECODE] + [TURN] + [[t] for t in DECODE[:3]]


def test_first_chunk_equals_none_mode(tiny_gguf):
    """The first chunk reads no history: shared and per-loop caches give the same logits."""
    ref = R.run(*R.load_gguf(tiny_gguf["f32"]), PROMPT, kv_share="last")
    got = shared(tiny_gguf["f32"]).eval(PROMPT, all_logits=True)
    assert rel_err(got, ref.chosen_logits) < 1e-4
    none = looplm.Model(tiny_gguf["f32"], kv_type="f32").eval(PROMPT, all_logits=True)
    assert rel_err(got, none) < 1e-5


def test_decoding_and_turns_equal_reference(tiny_gguf):
    chunks = conversation()
    tokens = [t for c in chunks for t in c]
    cfg, w = R.load_gguf(tiny_gguf["f32"])
    ref = R.run(cfg, w, tokens, kv_share="last", chunks=[len(c) for c in chunks])
    m = shared(tiny_gguf["f32"])
    got = feed(m, chunks)
    assert rel_err(got, ref.chosen_logits) < 1e-4
    # the test can fail: sharing changes every token that reads history
    none = R.run(cfg, w, tokens)
    assert rel_err(none.chosen_logits[len(PROMPT) :], ref.chosen_logits[len(PROMPT) :]) > 1e-3
    # and the chunking matters only in the shared mode
    one_call = R.run(cfg, w, tokens, kv_share="last")
    assert rel_err(one_call.chosen_logits, ref.chosen_logits) > 1e-3


@pytest.mark.parametrize("mode", ["skip", "exact"])
def test_exits_equal_reference(varied, mode):
    chunks = conversation()
    tokens = [t for c in chunks for t in c]
    cfg, w = R.load_gguf(varied)
    ref = R.run(cfg, w, tokens, threshold=0.6, mode=mode, kv_share="last", chunks=[len(c) for c in chunks])
    assert len(set(ref.exit_steps.tolist())) >= 3
    m = shared(varied, exit_threshold=0.6, exit_mode=mode)
    got = feed(m, chunks)
    assert m.exit_steps == ref.exit_steps.tolist()
    assert rel_err(got, ref.chosen_logits) < 1e-4


def test_kept_kv_is_the_last_slot(varied):
    """What a position keeps: in skip mode its exit loop's K/V (kv_fill exit), loop 0's under
    kv_fill first; the first chunk's kept K/V equals the per-loop cache's last slot."""
    for fill in ("exit", "first"):
        a = shared(varied, exit_threshold=0.6, kv_fill=fill)
        b = looplm.Model(varied, kv_type="f32", exit_threshold=0.6, kv_fill=fill)
        a.eval(PROMPT)
        b.eval(PROMPT)
        assert a.exit_steps == b.exit_steps
        for layer in range(2):
            ka, va = a.kv_slot(-1, layer)
            np.testing.assert_allclose(ka, b.kv_slot(3, layer)[0], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(va, b.kv_slot(3, layer)[1], rtol=1e-6, atol=1e-6)
            src = [e if fill == "exit" else 0 for e in b.exit_steps]
            for t, e in enumerate(src):
                np.testing.assert_array_equal(b.kv_slot(3, layer)[0][t], b.kv_slot(e, layer)[0][t])
    with pytest.raises(ValueError, match="loop -1"):
        a.kv_slot(0, 0)


def test_micro_batches_do_not_split_a_chunk(varied):
    """A chunk keeps its per-loop cache across micro-batches of n_batch (skip mode included)."""
    tokens = PROMPT + DECODE + TURN
    ref = R.run(*R.load_gguf(varied), tokens, threshold=0.6, mode="skip", kv_share="last")
    for n_batch in (3, 256):
        m = shared(varied, exit_threshold=0.6, n_batch=n_batch)
        m.eval(PROMPT[:2])  # a first chunk, so that the second reads history
        m.reset()
        got = m.eval(tokens, all_logits=True)
        assert rel_err(got, ref.chosen_logits) < 1e-4, n_batch
        m.reset()
        last = m.prefill(tokens)  # prefill: micro-batches of one chunk too
        assert rel_err(last, ref.chosen_logits[-1]) < 1e-4, n_batch


def test_chat_continuation_with_prefix_reuse(tiny_gguf):
    """prefill(turn 1), decode, prefill(turn 1 + reply + turn 2): the history is reused as it
    was computed and the new turn is one chunk against it."""
    cfg, w = R.load_gguf(tiny_gguf["f32"])
    m = shared(tiny_gguf["f32"])
    m.prefill(PROMPT)
    for t in DECODE:
        m.eval([t])
    full = PROMPT + DECODE + TURN
    last = m.prefill(full)
    assert m.reused_prefix == len(PROMPT) + len(DECODE)
    ref = R.run(cfg, w, full, kv_share="last", chunks=[len(PROMPT)] + [1] * len(DECODE) + [len(TURN)])
    assert rel_err(last, ref.chosen_logits[-1]) < 1e-4
    # the same prompt again: all but its last token reused, that one a chunk of one
    again = m.prefill(full)
    assert m.reused_prefix == len(full) - 1
    ref2 = R.run(cfg, w, full, kv_share="last", chunks=[len(PROMPT)] + [1] * len(DECODE) + [len(TURN) - 1, 1])
    assert rel_err(again, ref2.chosen_logits[-1]) < 1e-4
    m.reset()
    fresh = m.prefill(full)
    assert rel_err(fresh, R.run(cfg, w, full, kv_share="last").chosen_logits[-1]) < 1e-4


def test_shared_memory(tiny_gguf):
    """History keeps one slot per layer; a chunk's per-loop pages are freed when it ends, but
    for one page of 8 positions."""
    none = looplm.Model(tiny_gguf["f32"], kv_type="f16", n_ctx=512)
    last = looplm.Model(tiny_gguf["f32"], kv_type="f16", n_ctx=512, kv_share="last")
    row = 64 * 2  # kv_dim x f16
    assert none.kv_bytes_per_token == 4 * 2 * 2 * row  # loops x layers x (k, v)
    assert last.kv_bytes_per_token == 2 * 2 * row
    assert last.config["kv_share"] == "last" and none.config["kv_share"] == "none"
    tokens = list(range(40))
    none.eval(tokens)
    last.eval(tokens)
    assert none.kv_bytes == 64 * 4 * 2 * 2 * row  # two pages of 32 positions
    chunk_page = 8 * 4 * 2 * 2 * row
    assert last.kv_bytes == 64 * 2 * 2 * row + chunk_page
    for t in range(20):
        last.eval([t])
    assert last.kv_bytes == 64 * 2 * 2 * row + chunk_page
    last.reset()
    assert last.kv_bytes == 0


def test_bad_kv_share(tiny_gguf):
    with pytest.raises(ValueError, match="kv_share"):
        looplm.Model(tiny_gguf["f32"], kv_share="first")
