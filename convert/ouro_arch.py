"""The Ouro architecture as a table: HF config keys -> hyper-parameters, HF tensor names ->
GGUF tensor names, and the checks that refuse what the runtime cannot run.

The four per-layer norms are mapped explicitly: gguf-py's generic name map sends
``post_attention_layernorm`` to the wrong tensor for this model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConvertError

ARCH = "ouro"

# HF name -> GGUF name, outside the layer stack.
GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}

# HF name inside model.layers.{i}. -> GGUF name inside blk.{i}.
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",  # norm before attention
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "input_layernorm_2.weight": "post_attention_norm.weight",  # norm of the attention output
    "post_attention_layernorm.weight": "ffn_norm.weight",  # norm before the MLP (Llama naming)
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "post_attention_layernorm_2.weight": "post_ffw_norm.weight",  # norm of the MLP output
}

# The exit gate is stored as metadata (llama.cpp refuses tensors it does not expect).
GATE_WEIGHT, GATE_BIAS = "model.early_exit_gate.weight", "model.early_exit_gate.bias"
KEY_GATE_WEIGHT, KEY_GATE_BIAS = "ouro.exit_gate.weight", "ouro.exit_gate.bias"
KEY_GATE_THRESHOLD = "ouro.exit_gate.threshold"


class ConfigError(ConvertError):
    """A config.json the converter cannot handle; the message names the file and key."""


@dataclass(frozen=True)
class OuroConfig:
    """The hyper-parameters of an Ouro checkpoint, read from its config.json."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    total_ut_steps: int
    early_exit_threshold: float
    tie_word_embeddings: bool
    name_or_path: str = ""

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "config.json") -> OuroConfig:
        def get(key: str, kind: type, default: object = None) -> Any:
            v = cfg.get(key, default)
            if v is None:
                raise ConfigError(f"{where}: missing key '{key}'")
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise ConfigError(f"{where}: key '{key}' must be {kind.__name__}, got {v!r}")
            return v

        model_type = cfg.get("model_type")
        archs = cfg.get("architectures") or []
        if model_type != "ouro" and "OuroForCausalLM" not in archs:
            raise ConfigError(
                f"{where}: model_type {model_type!r} / architectures {archs!r} is not Ouro "
                "(expected model_type 'ouro' or OuroForCausalLM)"
            )
        if cfg.get("rope_scaling"):
            raise ConfigError(f"{where}: rope_scaling {cfg['rope_scaling']!r} is not supported")
        if cfg.get("use_sliding_window"):
            raise ConfigError(f"{where}: use_sliding_window = true is not supported")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ConfigError(f"{where}: hidden_act {cfg['hidden_act']!r} is not supported (silu)")
        if cfg.get("attention_bias") or cfg.get("mlp_bias"):
            raise ConfigError(f"{where}: attention/MLP biases are not supported")

        heads = get("num_attention_heads", int)
        hidden = get("hidden_size", int)
        c = cls(
            vocab_size=get("vocab_size", int),
            hidden_size=hidden,
            intermediate_size=get("intermediate_size", int),
            num_hidden_layers=get("num_hidden_layers", int),
            num_attention_heads=heads,
            num_key_value_heads=get("num_key_value_heads", int, heads),
            head_dim=get("head_dim", int, hidden // heads if heads else 0),
            max_position_embeddings=get("max_position_embeddings", int),
            rms_norm_eps=get("rms_norm_eps", float),
            rope_theta=get("rope_theta", float, 10000.0),
            total_ut_steps=get("total_ut_steps", int),
            early_exit_threshold=get("early_exit_threshold", float, 1.0),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            name_or_path=str(cfg.get("_name_or_path") or ""),
        )
        for key in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "total_ut_steps",
        ):
            if getattr(c, key) <= 0:
                raise ConfigError(f"{where}: key '{key}' must be positive")
        if c.num_attention_heads % c.num_key_value_heads:
            raise ConfigError(f"{where}: num_attention_heads is not a multiple of num_key_value_heads")
        if c.head_dim % 2:
            raise ConfigError(f"{where}: head_dim {c.head_dim} must be even for RoPE")
        return c

    @classmethod
    def load(cls, folder: Path) -> OuroConfig:
        path = folder / "config.json"
        if not path.exists():
            raise ConfigError(f"{path}: missing (not a HF model folder?)")
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: cannot parse ({e})") from e
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: not a JSON object")
        return cls.from_dict(cfg, str(path))

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """HF tensor name -> numpy shape, for every tensor the checkpoint must hold, in upstream's
        order (the one table of the model's tensors: the converter checks against it, the
        synthetic checkpoints are written from it)."""
        e, f, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        layer = {
            "self_attn.q_proj.weight": (q, e),
            "self_attn.k_proj.weight": (kv, e),
            "self_attn.v_proj.weight": (kv, e),
            "self_attn.o_proj.weight": (e, q),
            "mlp.gate_proj.weight": (f, e),
            "mlp.up_proj.weight": (f, e),
            "mlp.down_proj.weight": (e, f),
            "input_layernorm.weight": (e,),
            "input_layernorm_2.weight": (e,),
            "post_attention_layernorm.weight": (e,),
            "post_attention_layernorm_2.weight": (e,),
        }
        assert layer.keys() == LAYER_TENSORS.keys()
        shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, e)}
        for i in range(self.num_hidden_layers):
            for k, s in layer.items():
                shapes[f"model.layers.{i}.{k}"] = s
        shapes.update({"model.norm.weight": (e,), GATE_WEIGHT: (1, e), GATE_BIAS: (1,)})
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (v, e)
        return shapes


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a HF tensor name (KeyError for names outside the table)."""
    if hf_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[hf_name]
    prefix, _, rest = hf_name.partition(".layers.")
    if prefix == "model" and rest:
        idx, _, suffix = rest.partition(".")
        if idx.isdigit() and suffix in LAYER_TENSORS:
            return f"blk.{int(idx)}.{LAYER_TENSORS[suffix]}"
    raise KeyError(hf_name)


def permute_qk(w, n_head: int):
    """llama.cpp's q/k row permutation: per head, rows (2, hd/2) -> (hd/2, 2), so that HF's
    rotate-half pairs (i, i + hd/2) become adjacent rows (2i, 2i + 1)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w, n_head: int):
    """The inverse of :func:`permute_qk`."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
