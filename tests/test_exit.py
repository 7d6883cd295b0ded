"""Dynamic early exit: exact mode equals upstream (the reference), skip mode really stops and
fills the skipped loops' KV slots by the documented policy."""

from __future__ import annotations

import looplm
import numpy as np
import pytest
from looplm import reference as R

TOKENS = [5, 99, 180, 3, 250, 17, 300, 44, 120, 121, 7, 8, 9, 200, 201, 202, 31, 32, 33, 34]


def rel_err(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def varied(make_gguf):
    """A model whose gate gives different exit loops to different tokens."""
    return make_gguf("f32", seed=2, gate_scale=6.0, gate_bias=-1.0)


def model(path, **kw):
    return looplm.Model(path, kv_type="f32", **kw)


def test_varied_gate_really_varies(varied):
    ref = R.run(*R.load_gguf(varied), TOKENS, threshold=0.6)
    assert len(set(ref.exit_steps.tolist())) >= 3, ref.exit_steps


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9, 1.0])
def test_exact_mode_equals_reference_at_any_threshold(varied, threshold):
    cfg, w = R.load_gguf(varied)
    ref = R.run(cfg, w, TOKENS, threshold=threshold)
    m = model(varied, exit_threshold=threshold, exit_mode="exact")
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) < 1e-4
    assert m.exit_steps == ref.exit_steps.tolist()
    # every KV slot is filled with what the full computation gives: loop-3 keys equal a
    # threshold-1 run's
    full = model(varied, exit_threshold=1.0)
    full.eval(TOKENS)
    for layer in range(2):
        np.testing.assert_allclose(m.kv_slot(3, layer)[0], full.kv_slot(3, layer)[0], rtol=1e-5, atol=1e-5)


def test_threshold_one_skip_mode_equals_reference(varied):
    ref = R.run(*R.load_gguf(varied), TOKENS, threshold=1.0)
    m = model(varied, exit_threshold=1.0, exit_mode="skip")
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) < 1e-4


@pytest.mark.parametrize(("bias", "expect"), [(30.0, 0), (-30.0, 3)])
def test_skip_mode_equals_reference_when_all_exit_together(make_gguf, bias, expect):
    """No later token reads a skipped slot when every token exits at the same loop."""
    path = make_gguf("f32", seed=4, gate_bias=bias)
    cfg, w = R.load_gguf(path)
    ref = R.run(cfg, w, TOKENS, threshold=0.5)
    assert set(ref.exit_steps.tolist()) == {expect}
    m = model(path, exit_threshold=0.5)
    assert m.exit_policy["exit_mode"] == "skip"  # the default below threshold 1
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) < 1e-4
    assert m.exit_steps == [expect] * len(TOKENS)


def test_mixed_exits_fill_policy(varied):
    """Skip mode with mixed exit loops: the skipped loops' KV equals the exit loop's, and the
    result equals the reference run under the same policy. Exact and skip differ only
    through those slots: the first token (which reads no earlier slot) is identical."""
    thr = 0.6
    cfg, w = R.load_gguf(varied)
    m = model(varied, exit_threshold=thr, exit_mode="skip")
    got = m.eval(TOKENS, all_logits=True)
    steps = m.exit_steps
    assert len(set(steps)) >= 2
    for layer in range(cfg.n_layer):
        slots = [m.kv_slot(s, layer) for s in range(4)]
        for t, e in enumerate(steps):
            for s in range(e + 1, 4):  # skipped loops hold the exit loop's keys and values
                np.testing.assert_array_equal(slots[s][0][t], slots[e][0][t])
                np.testing.assert_array_equal(slots[s][1][t], slots[e][1][t])
    ref_skip = R.run(cfg, w, TOKENS, threshold=thr, mode="skip", kv_fill="exit")
    assert steps == ref_skip.exit_steps.tolist()
    assert rel_err(got, ref_skip.chosen_logits) < 1e-4
    exact = model(varied, exit_threshold=thr, exit_mode="exact").eval(TOKENS, all_logits=True)
    np.testing.assert_allclose(got[0], exact[0], rtol=1e-6, atol=1e-6)
    assert rel_err(got, exact) > 1e-3  # later tokens do read the filled slots


def test_first_loop_fill_policy(varied):
    cfg, w = R.load_gguf(varied)
    m = model(varied, exit_threshold=0.6, kv_fill="first")
    got = m.eval(TOKENS, all_logits=True)
    ref = R.run(cfg, w, TOKENS, threshold=0.6, mode="skip", kv_fill="first")
    assert m.exit_steps == ref.exit_steps.tolist()
    assert rel_err(got, ref.chosen_logits) < 1e-4
    k0 = m.kv_slot(0, 1)[0]
    for t, e in enumerate(m.exit_steps):
        for s in range(e + 1, 4):
            np.testing.assert_array_equal(m.kv_slot(s, 1)[0][t], k0[t])


def test_skip_prompt_equals_one_by_one(varied):
    """Batched prompt processing in skip mode follows the same rules as decoding."""
    a = model(varied, exit_threshold=0.6)
    batch = a.eval(TOKENS, all_logits=True)
    b = model(varied, exit_threshold=0.6)
    single = np.stack([b.eval([t]) for t in TOKENS])
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-5 * np.abs(batch).max())
    assert a.exit_steps == b.exit_steps
    for layer in range(2):
        for s in range(4):
            np.testing.assert_allclose(a.kv_slot(s, layer)[0], b.kv_slot(s, layer)[0], atol=1e-5)


@pytest.mark.parametrize("step", [0, 1, 2, 3])
def test_exit_at_step(varied, step):
    cfg, w = R.load_gguf(varied)
    for mode in ("exact", "skip"):
        m = model(varied, exit_at_step=step, exit_mode=mode)
        got = m.eval(TOKENS, all_logits=True)
        ref = R.run(cfg, w, TOKENS, exit_at_step=step, mode=mode)
        assert m.exit_steps == [step] * len(TOKENS)
        assert rel_err(got, ref.chosen_logits) < 1e-4, mode


def test_exit_probabilities_and_rule(varied):
    """The reference's pdf sums to one; its CDF rule picks the first step reaching the
    threshold (checked independently here)."""
    ref = R.run(*R.load_gguf(varied), TOKENS, threshold=0.6)
    np.testing.assert_allclose(ref.exit_probs.sum(axis=1), 1.0, rtol=1e-12)
    cdf = np.cumsum(ref.exit_probs, axis=1)
    first = np.array([int(np.argmax(row >= 0.6)) if (row >= 0.6).any() else 3 for row in cdf])
    np.testing.assert_array_equal(first, ref.exit_steps)


def test_per_call_threshold_and_stats(varied):
    m = looplm.Model(varied)
    rs = list(looplm.stream_generate(m, TOKENS[:5], max_tokens=12, temperature=0, exit_threshold=0.6))
    steps = [r.exit_step for r in rs if r.token is not None]
    assert rs[-1].mean_loops == pytest.approx(np.mean(steps) + 1)
    assert m.exit_policy["exit_threshold"] == 1.0  # restored after the call
    assert m.exit_steps[-len(steps) :] == steps
