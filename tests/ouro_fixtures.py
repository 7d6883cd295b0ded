"""Tiny, deterministic Ouro checkpoints laid out exactly as upstream's (tensor names, config
keys, safetensors, tokenizer files), written in well under a second.

The tokenizer is a small but real GPT-2 byte-level BPE (SmolLM2's 17 special tokens, the
256 byte symbols, merges learned from a fixed text) in SmolLM2's tokenizer.json structure.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path

import numpy as np

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
]

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = (
    "The loop runs the same layers again and again. Looped language models think by repeating "
    "their layers; the exit gate says when a token has thought enough. Hello world! "
    "def main():\n    return 42\n"
) * 3


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_bpe(text: str, n_merges: int) -> tuple[list[str], list[str]]:
    """Byte-level BPE: returns (vocabulary after the specials, merges "a b" in rank order)."""
    b2u = bytes_to_unicode()
    pieces = re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", text)
    words = Counter(tuple(b2u[b] for b in p.encode()) for p in pieces)
    vocab = [b2u[b] for b in b2u]  # GPT-2's symbol order
    merges = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        new = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return vocab, merges


def tokenizer_json(n_merges: int = 60) -> dict:
    vocab, merges = train_bpe(CORPUS, n_merges)
    tokens = SPECIALS + vocab
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, t in enumerate(SPECIALS)
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns, round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_round(x: np.ndarray) -> np.ndarray:
    return (to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """tensors: name -> (safetensors dtype, array of that dtype's bits)."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, a) in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        f.writelines(blobs)


def tiny_config(**overrides) -> dict:
    n_tokens = len(SPECIALS) + 256 + 60
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
        "vocab_size": n_tokens + 32,  # padded like real checkpoints: the tail rows have no token
        "bos_token_id": 0,
        "eos_token_id": 0,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.54.1",
    }
    cfg.update(overrides)
    return cfg


def random_weights(cfg: dict, seed: int, gate_bias: float = 0.0, gate_scale: float = 1.0) -> dict[str, np.ndarray]:
    """HF-named float32 weights with sensible scales."""
    rng = np.random.default_rng(seed)
    e, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg.get("head_dim") or e // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((v, e)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = mat(q, e)
        w[p + "self_attn.k_proj.weight"] = mat(kv, e)
        w[p + "self_attn.v_proj.weight"] = mat(kv, e)
        w[p + "self_attn.o_proj.weight"] = mat(e, q)
        w[p + "mlp.gate_proj.weight"] = mat(f, e)
        w[p + "mlp.up_proj.weight"] = mat(f, e)
        w[p + "mlp.down_proj.weight"] = mat(e, f)
        for n in ("input_layernorm", "input_layernorm_2", "post_attention_layernorm", "post_attention_layernorm_2"):
            w[p + n + ".weight"] = norm(e)
    w["model.norm.weight"] = norm(e)
    w["model.early_exit_gate.weight"] = (gate_scale * rng.standard_normal((1, e)) / np.sqrt(e)).astype(np.float32)
    w["model.early_exit_gate.bias"] = np.array([gate_bias], np.float32)
    if not cfg.get("tie_word_embeddings"):
        w["lm_head.weight"] = mat(v, e)
    return w


def make_checkpoint(
    folder: Path,
    *,
    seed: int = 0,
    dtype: str = "bf16",
    shards: int = 1,
    gate_bias: float = 0.0,
    gate_scale: float = 1.0,
    config: dict | None = None,
    weights: dict[str, np.ndarray] | None = None,
) -> Path:
    """Writes a tiny Ouro checkpoint folder and returns it.

    Args:
        folder: where to write (created).
        seed: the random seed of the weights.
        dtype: "bf16" (as upstream ships) or "f32".
        shards: 1 for model.safetensors, more for model-0000i-of-0000n.safetensors + index.
        gate_bias, gate_scale: the exit gate's bias and spread (high bias: exit early).
        config: overrides of tiny_config().
        weights: use these HF-named float32 weights instead of random ones.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(**(config or {}))
    w = weights if weights is not None else random_weights(cfg, seed, gate_bias, gate_scale)
    st = {n: ("BF16", to_bf16_bits(a)) if dtype == "bf16" else ("F32", a.astype(np.float32)) for n, a in w.items()}
    names = list(st)
    if shards == 1:
        write_safetensors(folder / "model.safetensors", st)
    else:
        weight_map = {}
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = names[s::shards]
            write_safetensors(folder / fname, {n: st[n] for n in part})
            weight_map.update(dict.fromkeys(part, fname))
        index = {"metadata": {"total_size": sum(a.nbytes for _, a in st.values())}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_bos_token": False,
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>",
                "unk_token": "<|endoftext|>",
                "chat_template": CHATML,
                "model_max_length": 131072,
                "tokenizer_class": "GPT2Tokenizer",
            }
        )
    )
    (folder / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})
    )
    return folder
