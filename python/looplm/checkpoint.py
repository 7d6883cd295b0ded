"""Synthetic HF Ouro checkpoint folders laid out exactly as upstream's (tensor names, config keys,
safetensors, tokenizer files), with random weights: the tests' tiny models, ``looplm demo``'s
small one and, through looplm.synthetic, the full-size converter benchmark.

Nothing here is downloaded or committed: checkpoints are written on demand, in well under a
second at the tiny shape.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .tiny_tokenizer import N_TOKENS, write_tokenizer_files


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns, round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_round(x: np.ndarray) -> np.ndarray:
    return (to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def hf_tensors(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(HF name, numpy shape) of every tensor of an Ouro config, in upstream's order: the
    converter's own table (OuroConfig.expected_shapes), so the two cannot drift apart."""
    from looplm.convert.ouro_arch import OuroConfig

    return list(OuroConfig.from_dict(cfg, "synthetic config").expected_shapes().items())


def write_safetensors(path: Path, specs: list[tuple[str, str, tuple[int, ...]]], arrays: Iterable[np.ndarray]) -> None:
    """Writes a safetensors file, one tensor in memory at a time.

    Args:
        specs: (name, safetensors dtype, shape) of every tensor, in file order.
        arrays: the tensors' bits in the same order (e.g. a generator), each of its dtype's size.
    """
    sizes = {"BF16": 2, "F16": 2, "F32": 4}
    header: dict[str, Any] = {}
    offset = 0
    for name, dtype, shape in specs:
        n = int(np.prod(shape)) * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for (name, _, shape), a in zip(specs, arrays):
            raw = np.ascontiguousarray(a).tobytes()
            if len(raw) != header[name]["data_offsets"][1] - header[name]["data_offsets"][0]:
                raise ValueError(f"{name}: {len(raw)} bytes for shape {shape}")
            f.write(raw)


def tiny_config(**overrides) -> dict:
    """config.json of a tiny Ouro model (2 layers of width 64, 4 loops) for the tiny tokenizer."""
    cfg = {
        "_name_or_path": "looplm-tests/tiny-ouro",
        "architectures": ["OuroForCausalLM"],
        "model_type": "ouro",
        "auto_map": {
            "AutoConfig": "configuration_ouro.OuroConfig",
            "AutoModelForCausalLM": "modeling_ouro.OuroForCausalLM",
        },
        "hidden_act": "silu",
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "total_ut_steps": 4,
        "early_exit_threshold": 1.0,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "vocab_size": N_TOKENS + 32,  # padded like real checkpoints: the tail rows have no token
        "bos_token_id": 0,
        "eos_token_id": 0,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.54.1",
    }
    cfg.update(overrides)
    return cfg


def random_weights(
    cfg: dict, seed: int, gate_bias: float = 0.0, gate_scale: float = 1.0, post_norm_scale: float = 1.0
) -> dict[str, np.ndarray]:
    """HF-named float32 weights: embeddings ~N(0, 1), matrices ~N(0, 1/cols), norms near 1.

    Args:
        gate_bias, gate_scale: the exit gate's bias and the spread of its weights (a high
            bias makes tokens exit early).
        post_norm_scale: scales Ouro's two post-norms (``input_layernorm_2``,
            ``post_attention_layernorm_2``): a small value keeps each token's hidden state
            near its own embedding through the loops, so the gate sees token-specific states
            and exit loops vary from token to token.
    """
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for name, shape in hf_tensors(cfg):
        if name == "model.embed_tokens.weight":
            w[name] = rng.standard_normal(shape).astype(np.float32)
        elif name == "model.early_exit_gate.weight":
            w[name] = (gate_scale * rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
        elif name == "model.early_exit_gate.bias":
            w[name] = np.array([gate_bias], np.float32)
        elif len(shape) == 1:
            scale = post_norm_scale if name.endswith("layernorm_2.weight") else 1.0
            w[name] = (scale * (1.0 + 0.1 * rng.standard_normal(shape))).astype(np.float32)
        else:
            w[name] = (rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32)
    return w


def make_checkpoint(
    folder: Path,
    *,
    seed: int = 0,
    dtype: str = "bf16",
    shards: int = 1,
    gate_bias: float = 0.0,
    gate_scale: float = 1.0,
    post_norm_scale: float = 1.0,
    config: dict | None = None,
    weights: dict[str, np.ndarray] | None = None,
) -> Path:
    """Writes an Ouro checkpoint folder (tiny_config() with overrides) and returns it.

    Args:
        folder: where to write (created).
        seed: the random seed of the weights.
        dtype: "bf16" (as upstream ships) or "f32".
        shards: 1 for model.safetensors, more for model-0000i-of-0000n.safetensors + index.
        gate_bias, gate_scale, post_norm_scale: see random_weights.
        config: overrides of tiny_config().
        weights: use these HF-named float32 weights instead of random ones.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(**(config or {}))
    w = weights if weights is not None else random_weights(cfg, seed, gate_bias, gate_scale, post_norm_scale)
    st = {n: ("BF16", to_bf16_bits(a)) if dtype == "bf16" else ("F32", a.astype(np.float32)) for n, a in w.items()}
    names = list(st)
    parts = [("model.safetensors", names)] if shards == 1 else [
        (f"model-{s + 1:05d}-of-{shards:05d}.safetensors", names[s::shards]) for s in range(shards)
    ]  # fmt: skip
    for fname, part in parts:
        write_safetensors(folder / fname, [(n, st[n][0], st[n][1].shape) for n in part], (st[n][1] for n in part))
    if shards > 1:
        weight_map = {n: fname for fname, part in parts for n in part}
        index = {"metadata": {"total_size": sum(a.nbytes for _, a in st.values())}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    write_tokenizer_files(folder)
    return folder
