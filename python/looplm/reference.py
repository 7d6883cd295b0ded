"""A plain NumPy float64 reference of the Ouro forward pass and exit rule: the oracle the
native runtime is tested against. Written from docs/ouro-model.md, token by token, for
clarity rather than speed.

Weights use HF names and HF's q/k row layout (RoPE on the pairs (i, i + head_dim/2)).
:func:`load_hf` reads a HF checkpoint folder; :func:`load_gguf` reads a GGUF (ouro or llama
architecture), dequantizes it with gguf-py and undoes llama.cpp's q/k row permutation.
A llama model is the case of one loop without the two post-norms and without a gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RefConfig:
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    rms_eps: float
    rope_theta: float
    n_loops: int
    exit_threshold: float = 1.0
    post_norms: bool = True  # Ouro's input_layernorm_2 / post_attention_layernorm_2


@dataclass
class RefResult:
    hidden: np.ndarray  # [n_tok, loops, n_embd] normed h after each loop (NaN where skipped)
    logits: np.ndarray  # [n_tok, loops, n_vocab] lm_head of each loop's h (NaN where skipped)
    exit_probs: np.ndarray  # [n_tok, loops] p_s (NaN where skipped or no gate)
    exit_steps: np.ndarray  # [n_tok] chosen exit loop
    chosen_logits: np.ndarray  # [n_tok, n_vocab] logits of the exit loop


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x) + eps) * w


def rope_rotate_half(x: np.ndarray, pos: int, theta: float) -> np.ndarray:
    """HF rotary embedding of x [heads, head_dim] at position pos (pairs i, i + d/2)."""
    d = x.shape[-1]
    inv_freq = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # [d/2]
    angles = np.concatenate([pos * inv_freq, pos * inv_freq])  # [d]
    rotated = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], axis=-1)
    return x * np.cos(angles) + rotated * np.sin(angles)


def kv_round(x: np.ndarray, kv_type: str) -> np.ndarray:
    """x [nkv, hd] as a KV cache of that type stores it: one row of nkv * hd elements rounded to
    f16, or quantized to Q8_0 / Q4_0 and back with gguf-py's reference code (f32: as computed)."""
    if kv_type == "f32":
        return x
    if kv_type == "f16":
        return x.astype(np.float16).astype(np.float64)
    import gguf

    qt = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[kv_type]
    row = x.reshape(1, -1).astype(np.float32)
    return gguf.quants.dequantize(gguf.quants.quantize(row, qt), qt).astype(np.float64).reshape(x.shape)


def _block(
    cfg: RefConfig,
    w: dict,
    i: int,
    h: np.ndarray,
    cache: tuple[list, list],
    pos: int,
    hist: tuple[list, list] = ([], []),
    kv_types: tuple[str, str] = ("f32", "f32"),
) -> np.ndarray:
    """One layer for one token; it attends to hist's keys and values, then cache's, to which
    its own are appended (stored as the cache types round them)."""
    p = f"model.layers.{i}."
    hd, nh, nkv = cfg.head_dim, cfg.n_head, cfg.n_head_kv
    x = rmsnorm(h, w[p + "input_layernorm.weight"], cfg.rms_eps)
    q = (w[p + "self_attn.q_proj.weight"] @ x).reshape(nh, hd)
    k = (w[p + "self_attn.k_proj.weight"] @ x).reshape(nkv, hd)
    v = (w[p + "self_attn.v_proj.weight"] @ x).reshape(nkv, hd)
    q, k = rope_rotate_half(q, pos, cfg.rope_theta), rope_rotate_half(k, pos, cfg.rope_theta)
    cache[0].append(kv_round(k, kv_types[0]))
    cache[1].append(kv_round(v, kv_types[1]))
    keys, values = np.stack(hist[0] + cache[0]), np.stack(hist[1] + cache[1])  # [t+1, nkv, hd]
    out = np.empty((nh, hd))
    for head in range(nh):
        g = head // (nh // nkv)
        scores = keys[:, g, :] @ q[head] / np.sqrt(hd)
        prob = np.exp(scores - scores.max())
        out[head] = (prob / prob.sum()) @ values[:, g, :]
    a = w[p + "self_attn.o_proj.weight"] @ out.reshape(-1)
    if cfg.post_norms:
        a = rmsnorm(a, w[p + "input_layernorm_2.weight"], cfg.rms_eps)
    h = h + a
    x = rmsnorm(h, w[p + "post_attention_layernorm.weight"], cfg.rms_eps)
    gate = w[p + "mlp.gate_proj.weight"] @ x
    m = w[p + "mlp.down_proj.weight"] @ (gate / (1.0 + np.exp(-gate)) * (w[p + "mlp.up_proj.weight"] @ x))
    if cfg.post_norms:
        m = rmsnorm(m, w[p + "post_attention_layernorm_2.weight"], cfg.rms_eps)
    return h + m


def run(
    cfg: RefConfig,
    w: dict[str, np.ndarray],
    tokens: list[int],
    *,
    loops: int | None = None,
    threshold: float | None = None,
    exit_at_step: int | None = None,
    mode: str = "exact",
    kv_fill: str = "exit",
    kv_share: str = "none",
    chunks: list[int] | None = None,
    type_k: str = "f32",
    type_v: str = "f32",
    past: list | None = None,
) -> RefResult:
    """Runs the tokens in order through the looped model.

    Args:
        cfg, w: from load_hf / load_gguf.
        tokens: token ids.
        loops: loop count (default: the trained one).
        threshold: exit CDF threshold (default: the checkpoint's).
        exit_at_step: always exit at this loop (upstream's static exit).
        mode: "exact" computes every loop of every token (upstream); "skip" stops at the exit
            loop and fills the skipped loops' KV with the exit loop's ("exit") or loop 0's
            ("first") keys and values.
        kv_fill: the skip-mode fill policy.
        kv_share: "none" keeps every loop's keys and values of every token; "last"
            (docs/kv-cache.md) keeps, once a chunk is done, only what each of its tokens' last
            loop slot holds, and a token attends at loop l to the earlier chunks' kept K/V and
            to its own chunk's loop-l K/V.
        chunks: the lengths of the evaluation calls the tokens come in (default: one call);
            only kv_share "last" depends on them.
        type_k, type_v: the cache's element types ("f32", "f16", "q8_0", "q4_0"): each stored
            row is rounded as that type stores it.
        past: keys and values of positions before ``tokens``, which then start at that
            position: for kv_share "none" ``past[loop][layer] = (k, v)``, for "last"
            ``past[layer] = (k, v)`` (the kept K/V), each ``[n_past, n_head_kv * head_dim]``
            as the cache holds them.
    """
    n_loops = loops or cfg.n_loops
    thr = cfg.exit_threshold if threshold is None else threshold
    has_gate = "model.early_exit_gate.weight" in w
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    n = len(tokens)
    hidden = np.full((n, n_loops, cfg.n_embd), np.nan)
    logits = np.full((n, n_loops, cfg.n_vocab), np.nan)
    probs = np.full((n, n_loops), np.nan)
    exits = np.zeros(n, dtype=np.int64)
    if chunks is None:
        chunks = [n]
    if sum(chunks) != n or min(chunks) < 1:
        raise ValueError("chunks must be positive lengths adding up to len(tokens)")
    ends = set(np.cumsum(chunks).tolist())
    kvt = (type_k, type_v)
    kv: list[list[tuple[list[np.ndarray], list[np.ndarray]]]] = [
        [([], []) for _ in range(cfg.n_layer)] for _ in range(n_loops)
    ]  # kv[step][layer]
    hist: list[tuple[list, list]] = [([], []) for _ in range(cfg.n_layer)]  # kv_share last: kept K/V
    t0 = 0
    if past is not None:

        def rows(a: np.ndarray) -> list[np.ndarray]:
            return list(np.asarray(a, dtype=np.float64).reshape(-1, cfg.n_head_kv, cfg.head_dim))

        if kv_share == "last":
            hist = [(rows(k), rows(v)) for k, v in past]
            t0 = len(hist[0][0])
        else:
            kv = [[(rows(k), rows(v)) for k, v in loop] for loop in past]
            t0 = len(kv[0][0][0])
    for t, tok in enumerate(tokens):
        h = w["model.embed_tokens.weight"][tok].astype(np.float64)
        survive, cdf, exit_step = 1.0, 0.0, None
        for s in range(n_loops):
            for i in range(cfg.n_layer):
                h = _block(cfg, w, i, h, kv[s][i], t0 + t, hist[i], kvt)
            h = rmsnorm(h, w["model.norm.weight"], cfg.rms_eps)  # after every loop
            hidden[t, s], logits[t, s] = h, head @ h
            stop = s == n_loops - 1
            if exit_at_step is not None:
                stop = stop or s == exit_at_step
            elif has_gate:
                lam = 1.0 / (
                    1.0
                    + np.exp(
                        -(
                            w["model.early_exit_gate.weight"].reshape(-1) @ h
                            + w["model.early_exit_gate.bias"].reshape(-1)[0]
                        )
                    )
                )
                probs[t, s] = lam * survive if s < n_loops - 1 else survive
                cdf += probs[t, s]
                survive *= 1.0 - lam
                stop = stop or cdf >= thr
            if stop and exit_step is None:
                exit_step = s
            if mode == "skip" and exit_step is not None:
                src = exit_step if kv_fill == "exit" else 0
                for s2 in range(s + 1, n_loops):
                    for i in range(cfg.n_layer):
                        kv[s2][i][0].append(kv[src][i][0][-1])
                        kv[s2][i][1].append(kv[src][i][1][-1])
                break
        assert exit_step is not None  # the last loop always stops
        exits[t] = exit_step
        if kv_share == "last" and t + 1 in ends:  # the chunk is done: keep its last loop slot
            for i in range(cfg.n_layer):
                hist[i][0].extend(kv[n_loops - 1][i][0])
                hist[i][1].extend(kv[n_loops - 1][i][1])
            kv = [[([], []) for _ in range(cfg.n_layer)] for _ in range(n_loops)]
    chosen = logits[np.arange(n), exits]
    return RefResult(hidden, logits, probs, exits, chosen)


# ---------------------------------------------------------------- loading


def load_hf(folder: str | Path) -> tuple[RefConfig, dict[str, np.ndarray]]:
    """A HF Ouro checkpoint folder as (config, float64 weights with HF names)."""
    from looplm.convert.safetensors import Checkpoint

    folder = Path(folder)
    c = json.loads((folder / "config.json").read_text())
    heads = c["num_attention_heads"]
    cfg = RefConfig(
        n_embd=c["hidden_size"],
        n_ff=c["intermediate_size"],
        n_layer=c["num_hidden_layers"],
        n_head=heads,
        n_head_kv=c.get("num_key_value_heads", heads),
        head_dim=c.get("head_dim") or c["hidden_size"] // heads,
        n_vocab=c["vocab_size"],
        rms_eps=c["rms_norm_eps"],
        rope_theta=c.get("rope_theta", 10000.0),
        n_loops=c["total_ut_steps"],
        exit_threshold=c.get("early_exit_threshold", 1.0),
    )
    ckpt = Checkpoint(folder)
    w = {n: ckpt.load_float32(n).astype(np.float64) for n in ckpt.names()}
    if c.get("tie_word_embeddings"):
        w.pop("lm_head.weight", None)
    return cfg, w


_FROM_GGUF = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_FROM_GGUF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "post_attention_norm": "input_layernorm_2",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_ffw_norm": "post_attention_layernorm_2",
}


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undoes llama.cpp's q/k permutation: adjacent row pairs back to halves."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def load_gguf(path: str | Path) -> tuple[RefConfig, dict[str, np.ndarray]]:
    """A GGUF (arch ouro or llama) as (config, float64 weights with HF names and layout)."""
    import gguf

    r = gguf.GGUFReader(str(path))

    def val(key: str, default: Any = None) -> Any:
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = val("general.architecture")
    n_embd, n_head = val(f"{arch}.embedding_length"), val(f"{arch}.attention.head_count")
    n_kv = val(f"{arch}.attention.head_count_kv", n_head)
    w: dict[str, np.ndarray] = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        a = a.reshape([int(d) for d in reversed(t.shape)])
        if t.name in _FROM_GGUF:
            w[_FROM_GGUF[t.name]] = a
            continue
        _, i, kind, _ = t.name.split(".")
        if kind == "attn_q":
            a = _unpermute(a, n_head)
        elif kind == "attn_k":
            a = _unpermute(a, n_kv)
        w[f"model.layers.{i}.{_LAYER_FROM_GGUF[kind]}.weight"] = a
    gate = val("ouro.exit_gate.weight")
    if gate is not None:
        w["model.early_exit_gate.weight"] = np.asarray(gate, np.float64).reshape(1, -1)
        w["model.early_exit_gate.bias"] = np.asarray(val("ouro.exit_gate.bias"), np.float64)
    cfg = RefConfig(
        n_embd=n_embd,
        n_ff=val(f"{arch}.feed_forward_length"),
        n_layer=val(f"{arch}.block_count"),
        n_head=n_head,
        n_head_kv=n_kv,
        head_dim=val(f"{arch}.attention.key_length", n_embd // n_head),
        n_vocab=w["model.embed_tokens.weight"].shape[0],
        rms_eps=val(f"{arch}.attention.layer_norm_rms_epsilon"),
        rope_theta=val(f"{arch}.rope.freq_base", 10000.0),
        n_loops=val(f"{arch}.num_loops", 1),
        exit_threshold=val("ouro.exit_gate.threshold", 1.0),
        post_norms=arch == "ouro",
    )
    return cfg, w
