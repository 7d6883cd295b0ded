"""Full-size synthetic Ouro models (random weights, exact shapes) for benchmarks.

Nothing here is committed or downloaded: models are made on demand. ``write_gguf`` writes
quantized blocks directly (random quants and scales) so a 1.4B Q4_0 file takes seconds;
``write_hf_checkpoint`` streams a bf16 HF checkpoint for converter benchmarks (the HF layout
and the safetensors writer are looplm.checkpoint's, shared with the tests' tiny models).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import hf_tensors, to_bf16_bits, write_safetensors

# The released models' config.json values (docs/ouro-model.md).
SHAPES: dict[str, dict] = {
    "ouro-1.4b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24},
    "ouro-2.6b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48},
}
COMMON = {
    "model_type": "ouro",
    "architectures": ["OuroForCausalLM"],
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "head_dim": 128,
    "vocab_size": 49152,
    "max_position_embeddings": 65536,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "total_ut_steps": 4,
    "early_exit_threshold": 1.0,
    "rope_scaling": None,
    "torch_dtype": "bfloat16",
}


POST_NORMS = ("post_attention_norm.weight", "post_ffw_norm.weight")  # Ouro's sandwich norms, GGUF names


def config(shape: str) -> dict:
    if shape not in SHAPES:
        raise ValueError(f"unknown synthetic shape {shape!r} (choose from {', '.join(SHAPES)})")
    return {**COMMON, **SHAPES[shape], "_name_or_path": f"synthetic/{shape}"}


# Random-weight types: plain ones (every 2-D weight in that type) and llama.cpp's K-quant
# mixtures (the per-tensor types of looplm.convert.mixture: Q6_K output, Q6_K attn_v/ffn_down
# in part of the layers, ...).
PLAIN_TYPES = ("q4_0", "q4_1", "q8_0", "f16")
MIXTURES = ("q4_k_m", "q5_k_m", "q6_k")
FILE_TYPES = {"q4_0": 2, "q4_1": 3, "q8_0": 7, "f16": 1, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}


def _tensor_types(cfg: dict, qtype: str, plan: list[tuple[str, tuple[int, ...]]]) -> dict:
    """GGUF name -> GGMLQuantizationType of each 2-D weight of ``plan``."""
    from gguf import GGMLQuantizationType as QT

    from looplm.convert.mixture import tensor_type

    if qtype not in FILE_TYPES:
        raise ValueError(f"unknown synthetic weight type {qtype!r} (choose from {', '.join(FILE_TYPES)})")
    if qtype in PLAIN_TYPES:
        qt = {"q4_0": QT.Q4_0, "q4_1": QT.Q4_1, "q8_0": QT.Q8_0, "f16": QT.F16}[qtype]
        return {n: qt for n, s in plan if len(s) > 1}
    n_layer = cfg["num_hidden_layers"]
    has_output = any(n == "output.weight" for n, _ in plan)
    return {n: tensor_type(n, s, qtype, n_layer, has_output) for n, s in plan if len(s) > 1}


def _plan(cfg: dict, arch: str) -> list[tuple[str, tuple[int, ...]]]:
    """(GGUF name, numpy shape) of every tensor write_gguf writes, in order."""
    from looplm.convert.ouro_arch import gguf_name

    return [
        (gguf_name(n), shp)
        for n, shp in hf_tensors(cfg)
        if "early_exit_gate" not in n and (arch == "ouro" or "layernorm_2" not in n)
    ]


def gguf_bytes(shape: str, qtype: str, arch: str = "ouro") -> int:
    """The size of write_gguf's tensor data for a shape and a weight type (norms in f32)."""
    import gguf

    cfg = config(shape)
    plan = _plan(cfg, arch)
    types = _tensor_types(cfg, qtype, plan)
    total = 0
    for name, s in plan:
        if len(s) == 1:
            total += 4 * s[0]
        else:
            block, size = gguf.GGML_QUANT_SIZES[types[name]]
            total += s[0] * s[1] // block * size
    return total


def _values(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 1 and "bias" not in name:  # norms near 1
        return (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(shape[-1]))).astype(np.float32)


def write_hf_checkpoint(folder: Path, shape: str, seed: int = 0) -> Path:
    """Streams a bf16 HF checkpoint of the given shape (one tensor in memory at a time)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = config(shape)
    specs = hf_tensors(cfg)
    rng = np.random.default_rng(seed)
    write_safetensors(
        folder / "model.safetensors",
        [(name, "BF16", shp) for name, shp in specs],
        (to_bf16_bits(_values(rng, name, shp)) for name, shp in specs),
    )
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    return folder


def write_gguf(
    path: Path,
    shape: str,
    qtype: str = "q4_0",
    *,
    seed: int = 0,
    gate_bias: float = 0.0,
    gate_scale: float = 1.0,
    post_norm_scale: float = 1.0,
    arch: str = "ouro",
) -> Path:
    """Writes a GGUF of the given shape with random quantized weights, no tokenizer.

    Args:
        qtype: "q4_0", "q4_1", "q8_0" or "f16" for the 2-D weights, or a K-quant mixture
            ("q4_k_m", "q5_k_m", "q6_k": each weight the type llama.cpp's mixture gives it).
        gate_bias, gate_scale: the exit gate (ouro only); a high bias makes every token exit
            after the first loop, a moderate one moves the exit loop (the same loop for every
            token unless post_norm_scale is small).
        post_norm_scale: scales the weights of Ouro's two post-norms. Random deep layers make
            every token's hidden state alike, so every token exits at the same loop; a small
            scale (e.g. 0.001) keeps the residual stream near each token's own embedding, and
            the gate then sees token-specific states: exit loops vary from token to token.
            The compute is the same whatever the weights.
        arch: "ouro", or "nanbeige" for llama.cpp's generic looped llama block (same shape,
            no post-norms, no gate) to benchmark llama.cpp on the same looped work.
    """
    import gguf
    from gguf import GGMLQuantizationType as QT

    from looplm.convert.gguf_keys import write_exit_gate, write_hyperparameters
    from looplm.convert.ouro_arch import OuroConfig

    cfg = config(shape)
    plan = _plan(cfg, arch)
    types = _tensor_types(cfg, qtype, plan)
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    e = cfg["hidden_size"]
    w.add_name(f"synthetic {shape} {qtype}")
    w.add_file_type(FILE_TYPES[qtype])
    w.add_quantization_version(2)
    write_hyperparameters(w, OuroConfig.from_dict(cfg, f"synthetic {shape}"), arch)
    w.add_tokenizer_model("no_vocab")  # llama.cpp's marker for a model without a vocabulary
    if arch == "ouro":
        gate = gate_scale * rng.standard_normal(e) / np.sqrt(e)
        write_exit_gate(w, gate, [gate_bias], cfg["early_exit_threshold"])
    for name, shp in plan:  # stream: one tensor in memory at a time
        if len(shp) == 1:
            w.add_tensor_info(name, shp, np.dtype(np.float32), 4 * shp[0])
        else:
            qt = types[name]
            block, size = gguf.GGML_QUANT_SIZES[qt]
            row_bytes = shp[1] // block * size
            stored = shp if qt == QT.F16 else (shp[0], row_bytes)  # gguf-py takes byte shapes
            w.add_tensor_info(
                name, stored, np.dtype(np.float16 if qt == QT.F16 else np.uint8), shp[0] * row_bytes, raw_dtype=qt
            )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shp in plan:
        if len(shp) == 1:
            v = _values(rng, name, shp)
            w.write_tensor_data(v * np.float32(post_norm_scale) if name.endswith(POST_NORMS) else v)
        else:
            w.write_tensor_data(random_blocks(rng, shp, types[name]))
    w.close()
    return path


def random_blocks(rng: np.random.Generator, shape: tuple[int, ...], qt) -> np.ndarray:
    """Random quantized rows (uint8 [rows, row_bytes]) whose values have std ~ 1/sqrt(cols)."""
    from gguf import GGMLQuantizationType as QT

    rows, cols = shape
    std = 1.0 / np.sqrt(cols)
    if qt.name in _RANDOM_BYTES:
        return _random_bytes_blocks(rng, rows, cols, qt, std)
    nb = cols // 32
    if qt == QT.F16:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float16)
    if qt == QT.Q4_0:
        d = np.full((rows, nb, 1), std / 4.6, np.float16).view(np.uint8)  # nibbles -8..7: std ~4.6
        qs = rng.integers(0, 256, size=(rows, nb, 16), dtype=np.uint8)
    elif qt == QT.Q4_1:  # d * q + m with q in 0..15 (std ~4.6) and m = -7.5 d: zero-mean values
        d = np.full((rows, nb, 1), std / 4.6, np.float16)
        m = (-7.5 * d.astype(np.float32)).astype(np.float16)
        d = np.concatenate([d.view(np.uint8), m.view(np.uint8)], axis=2)
        qs = rng.integers(0, 256, size=(rows, nb, 16), dtype=np.uint8)
    elif qt == QT.Q8_0:
        d = np.full((rows, nb, 1), std / 73.3, np.float16).view(np.uint8)  # int8 -127..127: std ~73
        qs = rng.integers(-127, 128, size=(rows, nb, 32), dtype=np.int8).view(np.uint8)
    else:
        raise ValueError(f"no random blocks for type {qt.name}")
    return np.concatenate([d, qs], axis=2).reshape(rows, -1)


# Types written as random bytes with their scale fields set: name -> (std of the values in
# units of d, byte offset of d, byte offset of the second f16 (dmin or m) or None, its value in
# units of d). Random bytes make random quants and random six-bit (Q6_K: int8) sub-block
# scales; the second f16 cancels the mean (Q4_K: E[sc] E[q] = 31.5 * 7.5 = 7.5 E[m]).
_RANDOM_BYTES = {
    "Q4_K": (244.0, 0, 2, 7.5),
    "Q5_K": (524.0, 0, 2, 15.5),
    "Q6_K": (1365.0, 208, None, 0.0),
    "Q5_0": (9.23, 0, None, 0.0),
    "Q5_1": (9.23, 0, 2, -15.5),
}


def _random_bytes_blocks(rng: np.random.Generator, rows: int, cols: int, qt, std: float) -> np.ndarray:
    """Random rows of a K-quant or Q5_0/Q5_1: random bytes, then d (and dmin / m) set so that
    the values have std ~``std`` and mean ~0."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qt]
    unit, d_at, m_at, m_units = _RANDOM_BYTES[qt.name]
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    d = np.float16(std / unit)
    raw[:, :, d_at : d_at + 2] = np.frombuffer(d.tobytes(), np.uint8)
    if m_at is not None:
        raw[:, :, m_at : m_at + 2] = np.frombuffer(np.float16(m_units * float(d)).tobytes(), np.uint8)
    return raw.reshape(rows, -1)
