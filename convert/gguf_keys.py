"""The GGUF metadata of an Ouro model: hyper-parameter keys and the exit gate, written in one
place for the converter and for the synthetic benchmark models (docs/gguf-format.md).

The runtime reads these keys back in csrc/model/model.cpp (``Config``).
"""

from __future__ import annotations

from collections.abc import Iterable

import gguf

from .ouro_arch import KEY_GATE_BIAS, KEY_GATE_THRESHOLD, KEY_GATE_WEIGHT, OuroConfig


def write_hyperparameters(w: gguf.GGUFWriter, cfg: OuroConfig, arch: str) -> None:
    """Writes the ``{arch}.*`` hyper-parameter keys of cfg.

    Args:
        w: the writer, before its header is written.
        cfg: the checkpoint's hyper-parameters.
        arch: "ouro", or "nanbeige" for llama.cpp's generic looped llama block (same keys).
    """
    w.add_uint32(f"{arch}.context_length", cfg.max_position_embeddings)
    w.add_uint32(f"{arch}.embedding_length", cfg.hidden_size)
    w.add_uint32(f"{arch}.block_count", cfg.num_hidden_layers)
    w.add_uint32(f"{arch}.feed_forward_length", cfg.intermediate_size)
    w.add_uint32(f"{arch}.attention.head_count", cfg.num_attention_heads)
    w.add_uint32(f"{arch}.attention.head_count_kv", cfg.num_key_value_heads)
    if cfg.head_dim != cfg.hidden_size // cfg.num_attention_heads:  # else implied, as llama.cpp does
        w.add_uint32(f"{arch}.attention.key_length", cfg.head_dim)
        w.add_uint32(f"{arch}.attention.value_length", cfg.head_dim)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", cfg.rms_norm_eps)
    w.add_float32(f"{arch}.rope.freq_base", cfg.rope_theta)
    w.add_uint32(f"{arch}.rope.dimension_count", cfg.head_dim)
    w.add_uint32(f"{arch}.vocab_size", cfg.vocab_size)
    # llama.cpp's generic loop keys (added for Nanbeige, used by its Ouro port)
    w.add_uint32(f"{arch}.num_loops", cfg.total_ut_steps)
    w.add_bool(f"{arch}.skip_loop_final_norm", False)


def write_exit_gate(w: gguf.GGUFWriter, weight: Iterable[float], bias: Iterable[float], threshold: float) -> None:
    """Writes the exit gate as metadata (llama.cpp refuses tensors it does not expect).

    Args:
        weight: the gate's [hidden_size] weights.
        bias: its one bias.
        threshold: the checkpoint's early_exit_threshold, the default exit threshold.
    """
    w.add_array(KEY_GATE_WEIGHT, [float(x) for x in weight])
    w.add_array(KEY_GATE_BIAS, [float(x) for x in bias])
    w.add_float32(KEY_GATE_THRESHOLD, threshold)
