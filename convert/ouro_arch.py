"""The Ouro architecture as a table: HF config keys -> hyper-parameters, HF tensor names ->
GGUF tensor names, and the checks that refuse what the runtime cannot run.

The four per-layer norms are mapped explicitly: gguf-py's generic name map sends
``post_attention_layernorm`` to the wrong tensor for this model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import jsonfile
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


def _runtime_limits() -> dict[str, int]:
    """The runtime's upper bounds (csrc/model/limits.h, through the binding)."""
    from looplm import _core

    return _core.config_limits()


_L = _runtime_limits()
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Spec:
    """One config.json key: its kind ("int", "float", "bool"), range and default.

    For ints, ``lo..hi`` inclusive; for floats, finite and ``> lo`` (``lo_open``) or ``>= lo``,
    and at most ``hi``; ``f32``: also finite and nonzero as float32, how the GGUF stores it.
    ``default`` None: the key is required (a JSON null counts as absent).
    """

    kind: str
    lo: float = 1
    hi: float = 0
    default: object = None
    lo_open: bool = False
    f32: bool = False
    gguf: str = ""  # the GGUF key the runtime checks (the numbers are limits.h's)


# Every value the converter writes into the GGUF, with the runtime's ranges (one place).
CONFIG_KEYS: dict[str, Spec] = {
    "vocab_size": Spec("int", 1, _L["n_vocab"], gguf="token_embd.weight rows"),
    "hidden_size": Spec("int", 1, _L["n_embd"], gguf="ouro.embedding_length"),
    "intermediate_size": Spec("int", 1, _L["n_ff"], gguf="ouro.feed_forward_length"),
    "num_hidden_layers": Spec("int", 1, _L["n_layer"], gguf="ouro.block_count"),
    "num_attention_heads": Spec("int", 1, _L["n_head"], gguf="ouro.attention.head_count"),
    "num_key_value_heads": Spec("int", 1, _L["n_head"], default="heads", gguf="ouro.attention.head_count_kv"),
    "head_dim": Spec("int", 1, _L["head_dim"], default="hidden/heads", gguf="ouro.attention.key_length"),
    "max_position_embeddings": Spec("int", 1, _L["n_ctx_train"], gguf="ouro.context_length"),
    "rms_norm_eps": Spec("float", 0, _F32_MAX, lo_open=True, f32=True, gguf="ouro.attention.layer_norm_rms_epsilon"),
    "rope_theta": Spec("float", 0, _F32_MAX, default=10000.0, lo_open=True, f32=True, gguf="ouro.rope.freq_base"),
    "total_ut_steps": Spec("int", 1, _L["n_loops"], gguf="ouro.num_loops"),
    "early_exit_threshold": Spec("float", 0, _F32_MAX, default=1.0, f32=True, gguf="ouro.exit_gate.threshold"),
    "tie_word_embeddings": Spec("bool", default=False),
}
# Flags looplm cannot run: refused when true; when present they must be real booleans.
UNSUPPORTED_FLAGS = ("use_sliding_window", "attention_bias", "mlp_bias")


def _show(v: object) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _value(cfg: dict, key: str, spec: Spec, where: str) -> Any:
    v = cfg.get(key)
    if v is None:
        if spec.default is None:
            raise ConfigError(f"{where}: missing key '{key}'")
        return None if isinstance(spec.default, str) else spec.default  # str: derived later
    bad = f"{where}: key '{key}' = {_show(v)}"
    if spec.kind == "bool":
        if not isinstance(v, bool):
            raise ConfigError(f"{bad} must be true or false (a JSON boolean, not a string or number)")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (spec.kind == "int" and not isinstance(v, int)):
        raise ConfigError(f"{bad} must be {'an integer' if spec.kind == 'int' else 'a number'}")
    if spec.kind == "int":
        if not spec.lo <= v <= spec.hi:
            raise ConfigError(f"{bad} is out of range ({int(spec.lo)}..{int(spec.hi)}, as the runtime's {spec.gguf})")
        return v
    v = float(v)
    low_ok = v > spec.lo if spec.lo_open else v >= spec.lo
    if not math.isfinite(v) or not low_ok or v > spec.hi or (spec.f32 and spec.lo_open and np.float32(v) == 0):
        rel = ">" if spec.lo_open else ">="
        raise ConfigError(
            f"{bad} must be a finite number {rel} {spec.lo:g} (as a float32, as the runtime's {spec.gguf})"
        )
    return v


def _check_flags(cfg: dict, where: str) -> None:
    model_type, archs = cfg.get("model_type"), cfg.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not all(isinstance(a, str) for a in archs)):
        raise ConfigError(f"{where}: key 'architectures' = {_show(archs)} must be a list of strings")
    if model_type is not None and not isinstance(model_type, str):
        raise ConfigError(f"{where}: key 'model_type' = {_show(model_type)} must be a string")
    if model_type != "ouro" and "OuroForCausalLM" not in (archs or []):
        raise ConfigError(
            f"{where}: model_type {model_type!r} / architectures {archs!r} is not Ouro "
            "(expected model_type 'ouro' or OuroForCausalLM)"
        )
    if cfg.get("rope_scaling") is not None:
        raise ConfigError(f"{where}: rope_scaling {_show(cfg['rope_scaling'])} is not supported")
    for flag in UNSUPPORTED_FLAGS:
        if flag in cfg and cfg[flag] is not None and not isinstance(cfg[flag], bool):
            raise ConfigError(f"{where}: key '{flag}' = {_show(cfg[flag])} must be true or false")
        if cfg.get(flag):
            raise ConfigError(f"{where}: {flag} = true is not supported")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ConfigError(f"{where}: hidden_act {_show(act)} is not supported (silu)")


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
        """Checks every value of config.json (CONFIG_KEYS, and the flags looplm cannot run)
        before any work; the message names the file and the key."""
        _check_flags(cfg, where)
        v = {key: _value(cfg, key, spec, where) for key, spec in CONFIG_KEYS.items()}
        heads, hidden = v["num_attention_heads"], v["hidden_size"]
        if v["num_key_value_heads"] is None:
            v["num_key_value_heads"] = heads
        if v["head_dim"] is None:
            if hidden % heads:
                raise ConfigError(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
            v["head_dim"] = hidden // heads
            _value({"head_dim": v["head_dim"]}, "head_dim", CONFIG_KEYS["head_dim"], where)
        if v["num_key_value_heads"] > heads or heads % v["num_key_value_heads"]:
            raise ConfigError(
                f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads "
                f"{v['num_key_value_heads']}"
            )
        if v["head_dim"] % 2:
            raise ConfigError(f"{where}: head_dim {v['head_dim']} must be even for RoPE")
        name = cfg.get("_name_or_path") or ""
        if not isinstance(name, str):
            raise ConfigError(f"{where}: key '_name_or_path' must be a string, got {_show(name)}")
        return cls(**v, name_or_path=name)

    @classmethod
    def load(cls, folder: Path) -> OuroConfig:
        path = folder / "config.json"
        if not path.exists():
            raise ConfigError(f"{path}: missing (not a HF model folder?)")
        return cls.from_dict(jsonfile.load_object(path, ConfigError), str(path))

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
