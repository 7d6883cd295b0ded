"""looplm convert: metadata, tensors, exact values, gguf-py-identical quants, bad input."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import ouro_fixtures as fx
import pytest
from gguf import GGMLQuantizationType as QT
from looplm import reference as R
from looplm.convert import ConvertError, convert_checkpoint
from looplm.convert.mixture import OUT_TYPES
from looplm.convert.ouro_arch import LAYER_TENSORS, gguf_name, permute_qk, unpermute_qk
from looplm.convert.safetensors import Checkpoint

QTYPE = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0, "q4_1": QT.Q4_1}


def fields(path: Path) -> dict:
    r = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}


def source_f32(folder: Path) -> dict[str, np.ndarray]:
    ckpt = Checkpoint(folder)
    return {n: ckpt.load_float32(n) for n in ckpt.names()}


def test_metadata(tiny_hf, tiny_gguf):
    cfg = json.loads((tiny_hf / "config.json").read_text())
    tj = json.loads((tiny_hf / "tokenizer.json").read_text())
    w = source_f32(tiny_hf)
    for t, path in tiny_gguf.items():
        f = fields(path)
        assert f["general.architecture"] == "ouro"
        assert f["general.name"] == "tiny-ouro"
        assert f["general.source.repo_url"] == "https://huggingface.co/looplm-tests/tiny-ouro"
        assert f["general.file_type"] == {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2}[t]
        assert f["general.quantization_version"] == 2
        expect = {
            "ouro.context_length": cfg["max_position_embeddings"],
            "ouro.embedding_length": cfg["hidden_size"],
            "ouro.block_count": cfg["num_hidden_layers"],
            "ouro.feed_forward_length": cfg["intermediate_size"],
            "ouro.attention.head_count": cfg["num_attention_heads"],
            "ouro.attention.head_count_kv": cfg["num_key_value_heads"],
            "ouro.rope.dimension_count": cfg["head_dim"],
            "ouro.vocab_size": cfg["vocab_size"],
            "ouro.num_loops": cfg["total_ut_steps"],
            "ouro.skip_loop_final_norm": False,
        }
        for k, v in expect.items():
            assert f[k] == v, k
        assert f["ouro.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg["rms_norm_eps"])
        assert f["ouro.rope.freq_base"] == cfg["rope_theta"]
        assert f["ouro.exit_gate.threshold"] == cfg["early_exit_threshold"]
        np.testing.assert_array_equal(np.float32(f["ouro.exit_gate.weight"]), w["model.early_exit_gate.weight"][0])
        np.testing.assert_array_equal(np.float32(f["ouro.exit_gate.bias"]), w["model.early_exit_gate.bias"])
        # tokenizer
        assert f["tokenizer.ggml.model"] == "gpt2"
        assert f["tokenizer.ggml.pre"] == "smollm"
        tokens = f["tokenizer.ggml.tokens"]
        assert len(tokens) == cfg["vocab_size"]
        for s, i in tj["model"]["vocab"].items():
            assert tokens[i] == s
        n_real = len(tj["model"]["vocab"])
        assert tokens[n_real:] == [f"[PAD{i}]" for i in range(n_real, cfg["vocab_size"])]
        types = f["tokenizer.ggml.token_type"]
        assert types[:17] == [3] * 17 and set(types[17:n_real]) == {1} and set(types[n_real:]) == {5}
        assert f["tokenizer.ggml.merges"] == tj["model"]["merges"]
        assert f["tokenizer.ggml.bos_token_id"] == 1  # tokenizer_config bos <|im_start|>
        assert f["tokenizer.ggml.eos_token_id"] == 2  # <|im_end|>
        assert f["tokenizer.ggml.eot_token_id"] == 2
        assert f["tokenizer.ggml.padding_token_id"] == 2
        assert f["tokenizer.ggml.unknown_token_id"] == 0
        assert f["tokenizer.ggml.add_bos_token"] is False
        assert f["tokenizer.chat_template"] == fx.CHATML


def test_tensor_table(tiny_hf, tiny_gguf):
    w = source_f32(tiny_hf)
    for t, path in tiny_gguf.items():
        r = gguf.GGUFReader(str(path))
        by_name = {x.name: x for x in r.tensors}
        expected = {gguf_name(n) for n in w if "early_exit_gate" not in n}
        assert set(by_name) == expected  # the gate is metadata, never a tensor
        for hf, a in w.items():
            if "early_exit_gate" in hf:
                continue
            x = by_name[gguf_name(hf)]
            assert list(x.shape) == list(reversed(a.shape)), hf
            assert x.tensor_type == (QT.F32 if a.ndim == 1 else QTYPE[t]), hf


def test_layer_norm_mapping():
    # the four norms are mapped explicitly (gguf-py's generic map gets them wrong for Ouro)
    assert LAYER_TENSORS["input_layernorm.weight"] == "attn_norm.weight"
    assert LAYER_TENSORS["input_layernorm_2.weight"] == "post_attention_norm.weight"
    assert LAYER_TENSORS["post_attention_layernorm.weight"] == "ffn_norm.weight"
    assert LAYER_TENSORS["post_attention_layernorm_2.weight"] == "post_ffw_norm.weight"
    assert gguf_name("model.layers.11.mlp.down_proj.weight") == "blk.11.ffn_down.weight"


def test_permutation_is_llama_cpp_layout():
    n_head, hd, cols = 3, 8, 5
    w = np.arange(n_head * hd * cols, dtype=np.float32).reshape(n_head * hd, cols)
    p = permute_qk(w, n_head)
    for h in range(n_head):
        for i in range(hd // 2):
            for j in range(2):  # new row 2i + j = old row j * hd/2 + i
                np.testing.assert_array_equal(p[h * hd + 2 * i + j], w[h * hd + j * hd // 2 + i])
    np.testing.assert_array_equal(unpermute_qk(p, n_head), w)


@pytest.mark.parametrize("t", ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"])
def test_tensor_values(tiny_hf, tiny_gguf, tmp_path, t):
    """f32/f16/bf16 values are exact; Q8_0/Q4_0/Q4_1 bytes equal gguf-py's quantizer."""
    cfg = json.loads((tiny_hf / "config.json").read_text())
    w = source_f32(tiny_hf)
    path = (
        tiny_gguf[t] if t in tiny_gguf else convert_checkpoint(tiny_hf, tmp_path / f"{t}.gguf", t, progress=False).path
    )
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.file_type"].contents() == int(OUT_TYPES[t][1])
    by_name = {x.name: x for x in r.tensors}
    for hf, a in w.items():
        if "early_exit_gate" in hf:
            continue
        if hf.endswith("q_proj.weight"):
            a = permute_qk(a, cfg["num_attention_heads"])
        elif hf.endswith("k_proj.weight"):
            a = permute_qk(a, cfg["num_key_value_heads"])
        got = np.asarray(by_name[gguf_name(hf)].data)
        if a.ndim == 1 or t == "f32":
            np.testing.assert_array_equal(got.reshape(a.shape), a, err_msg=hf)
        elif t == "f16":
            np.testing.assert_array_equal(got.reshape(a.shape), a.astype(np.float16), err_msg=hf)
        elif t == "bf16":  # the source is bf16: the bits are copied
            np.testing.assert_array_equal(got.view(np.uint16).reshape(a.shape), fx.to_bf16_bits(a), err_msg=hf)
        else:
            np.testing.assert_array_equal(got, gguf.quants.quantize(a, QTYPE[t]), err_msg=hf)


def test_reference_on_gguf_equals_reference_on_hf(tiny_hf, tiny_gguf):
    tokens = [5, 99, 180, 3, 250, 17, 300, 44]
    cfg_hf, w_hf = R.load_hf(tiny_hf)
    ref = R.run(cfg_hf, w_hf, tokens)
    for t in ("f32", "bf16"):  # lossless from a bf16 checkpoint
        cfg, w = R.load_gguf(tiny_gguf[t])
        assert cfg.rms_eps == pytest.approx(cfg_hf.rms_eps)  # stored as f32
        assert dataclasses.replace(cfg, rms_eps=cfg_hf.rms_eps) == cfg_hf
        got = R.run(cfg, w, tokens)
        np.testing.assert_allclose(got.chosen_logits, ref.chosen_logits, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(got.exit_steps, ref.exit_steps)
    cfg, w = R.load_gguf(tiny_gguf["f16"])  # f16 rounds the bf16 weights only below f16's range
    got = R.run(cfg, w, tokens)
    assert np.abs(got.chosen_logits - ref.chosen_logits).max() < 1e-2 * np.abs(ref.chosen_logits).max()


def test_sharded_and_f32_checkpoints(tmp_path, tiny_gguf):
    """A sharded bf16 checkpoint converts to the same tensors; an f32 one too."""
    one = fx.make_checkpoint(tmp_path / "one", seed=1)
    sharded = fx.make_checkpoint(tmp_path / "sharded", seed=1, shards=3)
    assert (sharded / "model.safetensors.index.json").exists()
    assert not (sharded / "model.safetensors").exists()
    a = convert_checkpoint(one, tmp_path / "a.gguf", "q8_0", progress=False).path
    b = convert_checkpoint(sharded, tmp_path / "b.gguf", "q8_0", progress=False).path
    assert a.read_bytes() == b.read_bytes()
    f32 = fx.make_checkpoint(tmp_path / "f32", seed=1, dtype="f32")
    c = convert_checkpoint(f32, tmp_path / "c.gguf", "f32", progress=False).path
    ta = {x.name: np.asarray(x.data) for x in gguf.GGUFReader(str(c)).tensors}
    w = {n: fx.random_weights(fx.tiny_config(), 1)[n] for n in ("model.embed_tokens.weight",)}
    np.testing.assert_array_equal(ta["token_embd.weight"], w["model.embed_tokens.weight"])


def test_tied_embeddings(tmp_path):
    folder = fx.make_checkpoint(tmp_path / "tied", config={"tie_word_embeddings": True})
    out = convert_checkpoint(folder, tmp_path / "tied.gguf", "f16", progress=False).path
    names = {x.name for x in gguf.GGUFReader(str(out)).tensors}
    assert "output.weight" not in names and "token_embd.weight" in names


def test_cli_convert_and_module(tiny_hf, tmp_path):
    out = tmp_path / "x.gguf"
    r = subprocess.run(
        [sys.executable, "-m", "looplm.cli", "convert", str(tiny_hf), "-o", str(out), "--type", "q4_0"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr  # no progress line when piped
    summary = r.stderr.strip().splitlines()[-1]
    assert "25 tensors" in summary and "q4_0" in summary and "peak memory" in summary
    out2 = tmp_path / "y.gguf"
    r = subprocess.run(
        [sys.executable, "-m", "looplm.convert", str(tiny_hf), "-o", str(out2), "--type", "q4_0"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == out2.read_bytes()


def test_default_output_name(tiny_hf, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = convert_checkpoint(tiny_hf, None, "q8_0", progress=False)
    assert r.path == Path("tiny-ouro-Q8_0.gguf") and (tmp_path / r.path).exists()


# ---------------------------------------------------------------- bad input


def _edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (folder / "config.json").write_text(json.dumps(cfg))


def _rewrite_safetensors(folder: Path, fn) -> None:
    path = folder / "model.safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header, data = fn(header, raw[8 + n :])
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def _write_index(folder: Path, fn) -> None:
    """Writes model.safetensors.index.json (which takes precedence over model.safetensors):
    fn(tensor names of model.safetensors) -> the JSON value, or bytes written as they are."""
    raw = (folder / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    names = [k for k in json.loads(raw[8 : 8 + n]) if k != "__metadata__"]
    value = fn(names)
    path = folder / "model.safetensors.index.json"
    path.write_bytes(value) if isinstance(value, bytes) else path.write_text(json.dumps(value))


BAD_CASES = {
    "missing_config": (lambda f: (f / "config.json").unlink(), "config.json"),
    "bad_model_type": (lambda f: _edit_config(f, model_type="qwen2", architectures=["Qwen2ForCausalLM"]), "model_type"),
    "missing_key": (lambda f: _edit_config(f, total_ut_steps=None), "total_ut_steps"),
    "sliding_window": (lambda f: _edit_config(f, use_sliding_window=True), "use_sliding_window"),
    "rope_scaling": (lambda f: _edit_config(f, rope_scaling={"type": "yarn", "factor": 4.0}), "rope_scaling"),
    "shape_mismatch": (lambda f: _edit_config(f, intermediate_size=128), "mlp.gate_proj.weight"),
    "missing_tensor": (
        lambda f: _rewrite_safetensors(f, lambda h, d: ({k: v for k, v in h.items() if k != "model.norm.weight"}, d)),
        "model.norm.weight",
    ),
    "unknown_tensor": (
        lambda f: _rewrite_safetensors(f, lambda h, d: ({**h, "model.extra.weight": h["model.norm.weight"]}, d)),
        "model.extra.weight",
    ),
    "unknown_dtype": (
        lambda f: _rewrite_safetensors(
            f, lambda h, d: ({**h, "model.norm.weight": {**h["model.norm.weight"], "dtype": "F8_E4M3"}}, d)
        ),
        "model.norm.weight",
    ),
    "int_dtype": (
        lambda f: _rewrite_safetensors(
            f, lambda h, d: ({**h, "model.norm.weight": {**h["model.norm.weight"], "dtype": "I16"}}, d)
        ),
        "model.norm.weight",
    ),
    "offsets_past_data": (
        lambda f: _rewrite_safetensors(f, lambda h, d: (h, d[: len(d) // 2])),
        "outside the data section",
    ),
    "dtype_shape_mismatch": (
        lambda f: _rewrite_safetensors(
            f, lambda h, d: ({**h, "model.norm.weight": {**h["model.norm.weight"], "shape": [65]}}, d)
        ),
        "model.norm.weight",
    ),
    "header_past_eof": (
        lambda f: (f / "model.safetensors").write_bytes(struct.pack("<Q", 10**9) + b"{}"),
        "runs past the end",
    ),
    "bad_json": (
        lambda f: (f / "model.safetensors").write_bytes(struct.pack("<Q", 5) + b"{oops"),
        "header: cannot parse",
    ),
    "truncated_file": (lambda f: (f / "model.safetensors").write_bytes(b"\x01\x02"), "too short"),
    "missing_tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json"),
    "bad_config_json": (lambda f: (f / "config.json").write_text("{"), "config.json: cannot parse"),
    "config_not_object": (lambda f: (f / "config.json").write_text("[]"), "config.json: not a JSON object"),
    "config_wrong_type": (lambda f: _edit_config(f, hidden_size="64"), "key 'hidden_size' = \"64\" must be an integer"),
    "bad_tokenizer_json": (lambda f: (f / "tokenizer.json").write_bytes(b"\xff{"), "tokenizer.json: cannot parse"),
    "bad_tokenizer_config": (
        lambda f: (f / "tokenizer_config.json").write_text("{oops"),
        "tokenizer_config.json: cannot parse",
    ),
    "tokenizer_config_not_object": (
        lambda f: (f / "tokenizer_config.json").write_text("[1, 2]"),
        "tokenizer_config.json: not a JSON object",
    ),
    "bad_generation_config": (
        lambda f: (f / "generation_config.json").write_text("nope"),
        "generation_config.json: cannot parse",
    ),
    "bad_index_json": (lambda f: _write_index(f, lambda names: b"{oops"), "model.safetensors.index.json: cannot parse"),
    "index_not_object": (lambda f: _write_index(f, lambda names: []), "not a valid safetensors index"),
    "index_without_weight_map": (lambda f: _write_index(f, lambda names: {"metadata": {}}), "weight_map"),
    "index_shard_not_a_string": (
        lambda f: _write_index(f, lambda names: {"weight_map": dict.fromkeys(names, 5)}),
        "must map tensor names to shard file names",
    ),
    "index_missing_shard": (
        lambda f: _write_index(
            f, lambda names: {"weight_map": dict.fromkeys(names, "model-00002-of-00002.safetensors")}
        ),
        "shard 'model-00002-of-00002.safetensors' does not exist",
    ),
    "index_tensor_not_in_shard": (
        lambda f: _write_index(
            f,
            lambda names: {"weight_map": {**dict.fromkeys(names, "model.safetensors"), "model.x": "model.safetensors"}},
        ),
        "tensor 'model.x' is not in shard 'model.safetensors'",
    ),
    "index_lists_too_few_tensors": (
        lambda f: _write_index(f, lambda names: {"weight_map": dict.fromkeys(names[1:], "model.safetensors")}),
        "missing tensor",
    ),
    "bad_pre_tokenizer": (
        lambda f: (f / "tokenizer.json").write_text(
            json.dumps({**json.loads((f / "tokenizer.json").read_text()), "pre_tokenizer": {"type": "Metaspace"}})
        ),
        "pre_tokenizer",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input(case, tmp_path):
    folder = fx.make_checkpoint(tmp_path / "ckpt")
    damage, needle = BAD_CASES[case]
    damage(folder)
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()
    with pytest.raises(ValueError, match=None) as e:
        convert_checkpoint(folder, out, "q4_0", progress=False)
    assert needle in str(e.value)
    assert list(out.parent.iterdir()) == []  # no partial output, no temporary left behind
    r = subprocess.run(
        [sys.executable, "-m", "looplm.cli", "convert", str(folder), "-o", str(out)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("looplm convert: error:") and needle in lines[0], r.stderr
    assert list(out.parent.iterdir()) == []


def test_output_not_writable(tiny_hf, tmp_path):
    with pytest.raises(ConvertError, match="cannot write"):
        convert_checkpoint(tiny_hf, tmp_path / "no" / "such" / "dir" / "m.gguf", "f16", progress=False)


def test_missing_source(tmp_path):
    with pytest.raises(ConvertError, match="no such folder"):
        convert_checkpoint(tmp_path / "nothing", tmp_path / "m.gguf", "f16", progress=False)


def test_interrupted_write_leaves_nothing(tiny_hf, tmp_path, monkeypatch):
    """An error in the middle of writing tensors removes the temporary file."""
    import looplm.convert.hf_to_gguf as h

    calls = {"n": 0}
    real = h.convert

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(h, "convert", failing)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(tiny_hf, tmp_path / "m.gguf", "f16", progress=False)
    assert list(tmp_path.iterdir()) == []
