"""The native looped forward against the NumPy reference (tiny synthetic models)."""

from __future__ import annotations

import looplm
import numpy as np
import pytest
from conftest import KERNEL_SETS
from gguf_edit import rewrite
from looplm import reference as R

TOKENS = [5, 99, 180, 3, 250, 17, 300, 44, 120, 121, 7, 8, 9, 200, 201, 202]


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def ref_tokens():
    rng = np.random.default_rng(3)
    return rng.integers(0, 352, size=300).tolist()


@pytest.mark.parametrize("kset", KERNEL_SETS)
def test_f32_every_position(tiny_gguf, kset):
    """F32 weights, F32 KV: every position within 1e-4 (max abs error / max abs logit)."""
    ref = R.run(*R.load_gguf(tiny_gguf["f32"]), TOKENS)
    m = looplm.Model(tiny_gguf["f32"], kv_type="f32", kernels=kset, n_threads=2)
    got = m.eval(TOKENS, all_logits=True)
    assert got.shape == (len(TOKENS), m.n_vocab) and got.dtype == np.float32
    assert rel_err(got, ref.chosen_logits) < 1e-4
    assert m.exit_steps == ref.exit_steps.tolist()


@pytest.mark.parametrize("kset", KERNEL_SETS)
@pytest.mark.parametrize(("wtype", "kv"), [("f16", "f32"), ("bf16", "f32"), ("f32", "f16"), ("f16", "f16")])
def test_f16_within_1e2(tiny_gguf, kset, wtype, kv):
    ref = R.run(*R.load_gguf(tiny_gguf[wtype]), TOKENS)
    m = looplm.Model(tiny_gguf[wtype], kv_type=kv, kernels=kset)
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) < 1e-2


@pytest.mark.parametrize(("wtype", "min_cos"), [("q8_0", 0.9995), ("q4_0", 0.999)])
def test_quantized_end_to_end(tiny_gguf, ref_tokens, wtype, min_cos):
    """Against the reference on the same dequantized weights: only the Q8_0 activation
    quantization differs. Measured (300 positions, every kernel set): mean cosine 0.99991
    for both types; top-1 agreement 100% (q8_0) and 97.7% (q4_0, ref kernels). This random
    model's logits are flat (median top-1/top-2 gap 0.26 std), and every q4_0 miss is a
    near-tie: the runtime's pick is within 0.06 std of the reference's best logit. So the
    test asks for >= 97% agreement and that every miss is such a near-tie."""
    ref = R.run(*R.load_gguf(tiny_gguf[wtype]), ref_tokens)
    r = ref.chosen_logits
    for kset in KERNEL_SETS:
        m = looplm.Model(tiny_gguf[wtype], kv_type="f32", kernels=kset)
        got = m.eval(ref_tokens, all_logits=True)
        cos = cosines(got.astype(np.float64), r)
        pick = got.argmax(-1)
        top1 = np.mean(pick == r.argmax(-1))
        assert cos.mean() >= min_cos, (kset, cos.mean())
        assert top1 >= 0.97, (kset, top1)
        shortfall = (r.max(-1) - r[np.arange(len(pick)), pick]) / r.std(-1)
        assert shortfall.max() < 0.1, (kset, shortfall.max())
    # Kernel sets are not compared with each other end to end here: they agree within float
    # rounding per matmul (test_kernels.py), but one rounding flip of a Q8_0 activation
    # propagates through the KV cache to every later position (measured: 233 of 300
    # positions above 1e-4 between ref and avx2, max 0.048 relative).


def test_kernel_sets_agree_without_activation_quantization(tiny_gguf):
    outs = {
        k: looplm.Model(tiny_gguf["f32"], kv_type="f32", kernels=k).eval(TOKENS, all_logits=True) for k in KERNEL_SETS
    }
    for k, got in outs.items():
        assert rel_err(got, outs["ref"]) < 1e-5, k


@pytest.mark.parametrize("loops", [1, 2, 3, 4])
def test_prompt_equals_one_by_one(tiny_gguf, loops):
    """KV cache correctness: a prompt in one call == the same tokens fed one by one."""
    a = looplm.Model(tiny_gguf["q8_0"], loops=loops)
    batch = a.eval(TOKENS, all_logits=True)
    b = looplm.Model(tiny_gguf["q8_0"], loops=loops)
    single = np.stack([b.eval([t]) for t in TOKENS])
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-5 * np.abs(batch).max())
    assert a.n_past == b.n_past == len(TOKENS)
    c = looplm.Model(tiny_gguf["q8_0"], loops=loops, n_batch=5)  # micro-batches of 5
    np.testing.assert_allclose(c.eval(TOKENS, all_logits=True), batch, rtol=0, atol=1e-5 * np.abs(batch).max())


@pytest.mark.parametrize("loops", [1, 2, 3])
def test_loops_override_equals_reference(tiny_gguf, loops):
    cfg, w = R.load_gguf(tiny_gguf["f32"])
    ref = R.run(cfg, w, TOKENS, loops=loops)
    m = looplm.Model(tiny_gguf["f32"], kv_type="f32", loops=loops)
    assert m.config["n_loops"] == loops
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) < 1e-4
    assert m.exit_steps == [loops - 1] * len(TOKENS)


def test_loops_above_trained_warns(tiny_gguf):
    with pytest.warns(UserWarning, match="above the 4"):
        m = looplm.Model(tiny_gguf["f32"], loops=6, kv_type="f32")
    ref = R.run(*R.load_gguf(tiny_gguf["f32"]), TOKENS[:6], loops=6)
    assert rel_err(m.eval(TOKENS[:6], all_logits=True), ref.chosen_logits) < 1e-4


def test_last_logits_and_incremental(tiny_gguf):
    m = looplm.Model(tiny_gguf["f32"], kv_type="f32")
    ref = R.run(*R.load_gguf(tiny_gguf["f32"]), TOKENS)
    last = m.eval(TOKENS[:10])
    assert last.shape == (m.n_vocab,)
    assert rel_err(last, ref.chosen_logits[9]) < 1e-4
    rest = m.eval(TOKENS[10:], all_logits=True)
    assert rel_err(rest, ref.chosen_logits[10:]) < 1e-4
    m.reset()
    assert m.n_past == 0 and m.exit_steps == []
    assert rel_err(m.eval(TOKENS[:10]), ref.chosen_logits[9]) < 1e-4


def test_threads_do_not_change_results(tiny_gguf):
    outs = [looplm.Model(tiny_gguf["q4_0"], n_threads=n).eval(TOKENS, all_logits=True) for n in (1, 2, 3)]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_gguf_without_gate_runs_fixed_depth(tiny_gguf, tmp_path):
    path = rewrite(
        tiny_gguf["f32"],
        tmp_path / "nogate.gguf",
        drop_keys=("ouro.exit_gate.weight", "ouro.exit_gate.bias", "ouro.exit_gate.threshold"),
    )
    m = looplm.Model(path, kv_type="f32", exit_threshold=0.1)  # a threshold cannot act without a gate
    assert m.config["has_exit_gate"] is False
    cfg, w = R.load_gguf(path)
    assert "model.early_exit_gate.weight" not in w
    ref = R.run(cfg, w, TOKENS)
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) < 1e-4
    assert m.exit_steps == [3] * len(TOKENS)


def test_kv_cache_grows_with_use(tiny_gguf):
    m = looplm.Model(tiny_gguf["q8_0"], n_ctx=512)
    assert m.kv_bytes == 0
    m.eval(TOKENS[:3])
    page = m.kv_bytes  # one page of 32 positions
    per_token = 4 * 2 * 2 * 64 * 2  # loops * layers * (k, v) * kv_dim * f16
    assert page == 32 * per_token
    m.eval(list(range(40)))
    assert m.kv_bytes == 2 * page
    m.reset()
    assert m.kv_bytes == 0


def test_context_and_token_errors(tiny_gguf):
    m = looplm.Model(tiny_gguf["q8_0"], n_ctx=8)
    with pytest.raises(ValueError, match="context overflow"):
        m.eval(list(range(9)))
    assert m.n_past == 0
    with pytest.raises(ValueError, match=f"token id {m.n_vocab} is out of range"):
        m.eval([1, m.n_vocab])
    with pytest.raises(ValueError, match="token id -1"):
        m.eval([-1])
    assert m.n_past == 0
    m.eval([1, 2, 3])
    assert m.n_past == 3  # the model stays usable after errors


def test_bad_arguments(tiny_gguf):
    p = tiny_gguf["q8_0"]
    for kwargs, msg in [
        ({"n_ctx": -1}, "n_ctx"),
        ({"n_threads": 0}, "n_threads"),
        ({"n_threads": -2}, "n_threads"),
        ({"loops": 0}, "loops"),
        ({"loops": 65}, "loops"),
        ({"kv_type": "q8"}, "kv_type"),
        ({"exit_mode": "fast"}, "exit_mode"),
        ({"exit_at_step": 4}, "exit_at_step"),
        ({"kv_fill": "none"}, "kv_fill"),
        ({"exit_threshold": float("nan")}, "exit_threshold"),
        ({"kernels": "avx9000"}, "avx9000"),
    ]:
        with pytest.raises(ValueError, match=msg):
            looplm.Model(p, **kwargs)


def test_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        looplm.Model(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(looplm.GGUFError, match=r"bad\.gguf"):
        looplm.Model(bad)


def test_config_and_metadata(tiny_gguf):
    m = looplm.Model(tiny_gguf["q4_0"], n_threads=2)
    c = m.config
    assert (c["arch"], c["n_layer"], c["n_loops"], c["n_embd"], c["weight_type"]) == ("ouro", 2, 4, 64, "Q4_0")
    assert c["kernels"] == looplm.kernels() and c["n_threads"] == 2 and c["has_exit_gate"]
    md = m.metadata
    assert md["general.architecture"] == "ouro" and md["ouro.num_loops"] == 4
    assert len(md["ouro.exit_gate.weight"]) == 64


def test_q_k_layout_matters(tiny_gguf, tmp_path):
    """A file whose q/k rows are NOT permuted (HF layout) gives different logits: the
    runtime's RoPE follows llama.cpp's permuted layout, like the Ouro port's files."""
    from looplm.convert.ouro_arch import unpermute_qk

    def unperm(name, data):
        if name.endswith(("attn_q.weight", "attn_k.weight")):
            data = unpermute_qk(data, 4)
        return name, data

    path = rewrite(tiny_gguf["f32"], tmp_path / "hf_layout.gguf", tensor_fn=unperm)
    ref = R.run(*R.load_gguf(tiny_gguf["f32"]), TOKENS)
    m = looplm.Model(path, kv_type="f32")
    assert rel_err(m.eval(TOKENS, all_logits=True), ref.chosen_logits) > 1e-2
