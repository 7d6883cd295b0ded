#!/usr/bin/env python3
"""Writes the hostile-file corpus tests/bad_gguf/*.gguf, its EXPECTED.json (file name -> a
substring the error message must contain) and a few tiny valid models (tests/bad_gguf/valid/),
which are also the fuzzer's seeds.

Every file is written byte by byte with struct (no gguf-py, no looplm), so each corruption is
exactly the one named, and the output is reproducible: tests/test_robustness.py regenerates
the corpus into a temporary folder and compares it with the committed files.

    python scripts/make_bad_ggufs.py            # rewrites tests/bad_gguf/
    python scripts/make_bad_ggufs.py --out DIR  # writes elsewhere
"""

from __future__ import annotations

import argparse
import json
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
          U64: "<Q", I64: "<q", F64: "<d"}  # fmt: skip

# ggml tensor types: id -> (elements per block, bytes per block)
GF32, GF16, GQ4_0, GQ4_1, GQ8_0, GQ3_K, GQ4_K, GQ6_K, GBF16 = 0, 1, 2, 3, 8, 11, 12, 14, 30
BLOCK = {GF32: (1, 4), GF16: (1, 2), GQ4_0: (32, 18), GQ4_1: (32, 20), GQ8_0: (32, 34),
         GQ3_K: (256, 110), GQ4_K: (256, 144), GQ6_K: (256, 210), GBF16: (1, 2)}  # fmt: skip

U64_MAX = 2**64 - 1


def enc_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def enc_value(t: int, v, sub: int | None = None) -> bytes:
    """The payload of one metadata value (after its type id)."""
    if t == STRING:
        return enc_str(v)
    if t == ARRAY:
        out = struct.pack("<IQ", sub, len(v))
        return out + b"".join(enc_value(sub, x) for x in v)
    return struct.pack(SCALAR[t], v)


@dataclass
class KV:
    key: bytes
    type: int
    payload: bytes  # encoded value, without the type id


@dataclass
class Tensor:
    name: bytes
    dims: list[int]  # ne order (row length first)
    type: int
    data: bytes
    offset: int | None = None  # None: laid out automatically
    n_dims: int | None = None  # None: len(dims)


@dataclass
class GGUF:
    """A GGUF file under construction; build() records where each part starts."""

    magic: bytes = b"GGUF"
    version: int = 3
    kvs: list[KV] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    n_kv: int | None = None  # None: len(kvs)
    n_tensors: int | None = None
    layout_align: int | None = None  # None: general.alignment when valid, else 32

    # ---- metadata
    def set(self, key: str, t: int, v, sub: int | None = None) -> GGUF:
        """Replaces the value of key in place, or appends it."""
        kv = KV(key.encode(), t, enc_value(t, v, sub))
        for i, old in enumerate(self.kvs):
            if old.key == kv.key:
                self.kvs[i] = kv
                return self
        self.kvs.append(kv)
        return self

    def raw(self, key: str | bytes, t: int, payload: bytes) -> GGUF:
        """Appends a key with a raw payload (for values no encoder would write)."""
        self.kvs.append(KV(key.encode() if isinstance(key, str) else key, t, payload))
        return self

    def drop(self, *keys: str) -> GGUF:
        for key in keys:
            n = len(self.kvs)
            self.kvs = [kv for kv in self.kvs if kv.key != key.encode()]
            assert len(self.kvs) < n, key
        return self

    def kv(self, key: str) -> KV:
        return next(kv for kv in self.kvs if kv.key == key.encode())

    # ---- tensors
    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name.encode())

    def drop_tensor(self, name: str) -> GGUF:
        self.tensors.remove(self.tensor(name))
        return self

    def alignment(self) -> int:
        if self.layout_align:
            return self.layout_align
        for kv in self.kvs:
            if kv.key == b"general.alignment" and kv.type == U32:
                a = struct.unpack("<I", kv.payload)[0]
                if a and a & (a - 1) == 0:
                    return a
        return 32

    def build(self) -> tuple[bytes, dict[str, int]]:
        pos: dict[str, int] = {}
        out = bytearray(self.magic + struct.pack("<I", self.version))
        n_t = len(self.tensors) if self.n_tensors is None else self.n_tensors
        n_kv = len(self.kvs) if self.n_kv is None else self.n_kv
        out += struct.pack("<QQ", n_t, n_kv)
        for kv in self.kvs:
            k = kv.key.decode(errors="replace")
            pos.setdefault(f"kv:{k}", len(out))
            out += enc_str(kv.key)
            pos.setdefault(f"kv:{k}:type", len(out))
            out += struct.pack("<I", kv.type)
            pos.setdefault(f"kv:{k}:value", len(out))
            out += kv.payload
        align = self.alignment()
        offsets, off = [], 0
        for t in self.tensors:
            off = (off + align - 1) // align * align
            offsets.append(off)
            off += len(t.data)
        for t, auto in zip(self.tensors, offsets):
            n = t.name.decode(errors="replace")
            pos.setdefault(f"t:{n}", len(out))
            out += enc_str(t.name)
            pos.setdefault(f"t:{n}:dims", len(out))
            out += struct.pack("<I", len(t.dims) if t.n_dims is None else t.n_dims)
            out += b"".join(struct.pack("<Q", d % 2**64) for d in t.dims)
            pos.setdefault(f"t:{n}:type", len(out))
            out += struct.pack("<I", t.type)
            pos.setdefault(f"t:{n}:offset", len(out))
            out += struct.pack("<Q", (auto if t.offset is None else t.offset) % 2**64)
        pos["infos_end"] = len(out)
        out += b"\0" * (-len(out) % align)
        pos["data"] = len(out)
        for t, auto in zip(self.tensors, offsets):
            out += b"\0" * (pos["data"] + auto - len(out))
            pos[f"data:{t.name.decode(errors='replace')}"] = len(out)
            out += t.data
        return bytes(out), pos


# ---------------------------------------------------------------- a tiny valid model

N_EMBD, N_FF, N_HEAD, N_HEAD_KV, HEAD_DIM = 32, 32, 2, 1, 16

VOCAB = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "\u0120", "ab", "\u0120a"]
VOCAB_TYPES = [3, 3, 3, 1, 1, 1, 1, 1]
MERGES = ["a b", "\u0120 a"]
# No special token: nothing stops generation but max_tokens or a full context.
VOCAB_NOSTOP = ["a", "b", "\u0120", "ab", "\u0120a", "c", "d", "e"]
MERGES_NOSTOP = ["a b", "\u0120 a"]


def weights(t: int, ne0: int, ne1: int, rng: random.Random, norm: bool = False) -> bytes:
    """Random weights of ggml type t, shape [ne0, ne1] (norms: close to 1)."""
    n = ne0 * ne1
    if t == GF32:
        return b"".join(struct.pack("<f", (1.0 if norm else 0.0) + 0.1 * (rng.random() - 0.5)) for _ in range(n))
    if t == GF16:
        return b"".join(struct.pack("<e", (1.0 if norm else 0.0) + 0.1 * (rng.random() - 0.5)) for _ in range(n))
    if t == GBF16:
        vals = [struct.pack("<f", (1.0 if norm else 0.0) + 0.1 * (rng.random() - 0.5)) for _ in range(n)]
        return b"".join(v[2:] for v in vals)
    be, bb = BLOCK[t]
    assert ne0 % be == 0
    out = bytearray()
    for _ in range(n // be):
        if t == GQ4_0:
            out += struct.pack("<e", 0.02) + rng.randbytes(16)
        elif t == GQ4_1:
            out += struct.pack("<ee", 0.02, -0.15) + rng.randbytes(16)
        elif t == GQ8_0:
            out += struct.pack("<e", 0.001) + rng.randbytes(32)
        else:  # K-quants: bytes only (never run)
            out += rng.randbytes(bb)
    return bytes(out)


def tiny_model(
    *,
    arch: str = "ouro",
    wtype: int = GQ4_0,
    types: dict[str, int] | None = None,
    seed: int = 1,
    vocab: str = "chatml",
    tied: bool = False,
    loops: int = 4,
    head_dim_key: bool = False,
    n_head_kv: int = N_HEAD_KV,
) -> GGUF:
    """A 1-layer, 32-wide model of ~5 KB that loads and runs.

    Args:
        vocab: "chatml" (8 tokens, ChatML specials), "nostop" (no special token) or "none".
        types: per-tensor ggml type overrides (by GGUF name).
    """
    rng = random.Random(seed)
    types = types or {}
    g = GGUF()
    n_vocab = 8
    g.set("general.architecture", STRING, arch)
    g.set("general.name", STRING, f"tiny-{arch}")
    g.set(f"{arch}.context_length", U32, 64)
    g.set(f"{arch}.embedding_length", U32, N_EMBD)
    g.set(f"{arch}.block_count", U32, 1)
    g.set(f"{arch}.feed_forward_length", U32, N_FF)
    g.set(f"{arch}.attention.head_count", U32, N_HEAD)
    if n_head_kv != N_HEAD or arch == "ouro":
        g.set(f"{arch}.attention.head_count_kv", U32, n_head_kv)
    if head_dim_key:
        g.set(f"{arch}.attention.key_length", U32, HEAD_DIM)
        g.set(f"{arch}.attention.value_length", U32, HEAD_DIM)
    g.set(f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-6)
    g.set(f"{arch}.rope.freq_base", F32, 10000.0)
    g.set(f"{arch}.rope.dimension_count", U32, HEAD_DIM)
    g.set(f"{arch}.vocab_size", U32, n_vocab)
    if arch != "llama":
        g.set(f"{arch}.num_loops", U32, loops)
    if arch == "ouro":
        g.set("ouro.skip_loop_final_norm", BOOL, False)
        g.set("ouro.exit_gate.weight", ARRAY, [round(rng.uniform(-0.3, 0.3), 4) for _ in range(N_EMBD)], F32)
        g.set("ouro.exit_gate.bias", ARRAY, [0.5], F32)
        g.set("ouro.exit_gate.threshold", F32, 1.0)
    if vocab != "none":
        tokens, ttypes, merges = (
            (VOCAB, VOCAB_TYPES, MERGES) if vocab == "chatml" else (VOCAB_NOSTOP, [1] * 8, MERGES_NOSTOP)
        )
        g.set("tokenizer.ggml.model", STRING, "gpt2")
        g.set("tokenizer.ggml.pre", STRING, "smollm")
        g.set("tokenizer.ggml.tokens", ARRAY, tokens, STRING)
        g.set("tokenizer.ggml.token_type", ARRAY, ttypes, I32)
        g.set("tokenizer.ggml.merges", ARRAY, merges, STRING)
        if vocab == "chatml":
            g.set("tokenizer.ggml.bos_token_id", U32, 1)
            g.set("tokenizer.ggml.eos_token_id", U32, 2)
            g.set("tokenizer.ggml.eot_token_id", U32, 2)
        g.set("tokenizer.ggml.add_bos_token", BOOL, False)
    g.set("general.file_type", U32, 2)

    def mat(name: str, ne0: int, ne1: int) -> None:
        t = types.get(name, wtype)
        g.tensors.append(Tensor(name.encode(), [ne0, ne1], t, weights(t, ne0, ne1, rng)))

    def vec(name: str) -> None:
        t = types.get(name, GF32)
        g.tensors.append(Tensor(name.encode(), [N_EMBD], t, weights(t, N_EMBD, 1, rng, norm=True)))

    q_dim, kv_dim = N_HEAD * HEAD_DIM, n_head_kv * HEAD_DIM
    mat("token_embd.weight", N_EMBD, n_vocab)
    vec("output_norm.weight")
    if not tied:
        mat("output.weight", N_EMBD, n_vocab)
    p = "blk.0."
    vec(p + "attn_norm.weight")
    mat(p + "attn_q.weight", N_EMBD, q_dim)
    mat(p + "attn_k.weight", N_EMBD, kv_dim)
    mat(p + "attn_v.weight", N_EMBD, kv_dim)
    mat(p + "attn_output.weight", q_dim, N_EMBD)
    if arch == "ouro":
        vec(p + "post_attention_norm.weight")
    vec(p + "ffn_norm.weight")
    mat(p + "ffn_gate.weight", N_EMBD, N_FF)
    mat(p + "ffn_up.weight", N_EMBD, N_FF)
    mat(p + "ffn_down.weight", N_FF, N_EMBD)
    if arch == "ouro":
        vec(p + "post_ffw_norm.weight")
    return g


def valid_models() -> dict[str, GGUF]:
    mixed = {
        "token_embd.weight": GQ8_0,
        "output.weight": GF16,
        "blk.0.attn_q.weight": GBF16,
        "blk.0.attn_k.weight": GQ4_1,
        "blk.0.attn_v.weight": GF32,
        "blk.0.ffn_up.weight": GQ8_0,
        "blk.0.attn_norm.weight": GF16,
        "blk.0.ffn_norm.weight": GBF16,
    }
    return {
        "ouro_q4_0": tiny_model(),
        "ouro_mixed_types": tiny_model(types=mixed, seed=2),
        "ouro_nostop": tiny_model(vocab="nostop", seed=3),
        "llama_tied_novocab": tiny_model(arch="llama", tied=True, vocab="none", n_head_kv=N_HEAD, seed=4),
        "nanbeige_2loops": tiny_model(arch="nanbeige", loops=2, head_dim_key=True, wtype=GQ8_0, seed=5),
    }


# ---------------------------------------------------------------- the corpus


def base() -> GGUF:
    return tiny_model()


def bytes_of(g: GGUF) -> bytes:
    return g.build()[0]


def patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def cases() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, substring the error message must contain)."""
    c: dict[str, tuple[bytes, str]] = {}
    good, pos = base().build()

    def add(name: str, data: bytes | GGUF, needle: str) -> None:
        assert name not in c, name
        c[name] = (bytes_of(data) if isinstance(data, GGUF) else data, needle)

    def mod(fn) -> GGUF:
        g = base()
        fn(g)
        return g

    # ---- header
    add("bad_magic", b"GGUX" + good[4:], "bad magic")
    add("text_file", b"this is not a GGUF file, only some text\n" * 3, "bad magic")
    add("big_endian", patch(good, 4, struct.pack(">I", 3)), "big-endian")
    add("version_0", patch(good, 4, struct.pack("<I", 0)), "unsupported GGUF version 0")
    add("version_1", patch(good, 4, struct.pack("<I", 1)), "unsupported GGUF version 1")
    add("version_4", patch(good, 4, struct.pack("<I", 4)), "unsupported GGUF version 4")
    add("empty", b"", "too small")
    add("trunc_in_header", good[:20], "too small")
    add("tensor_count_huge", patch(good, 8, struct.pack("<Q", 2**62)), "tensor count 4611686018427387904 is impossible")
    add("tensor_count_max", patch(good, 8, struct.pack("<Q", U64_MAX)), "tensor count 18446744073709551615")
    add("kv_count_huge", patch(good, 16, struct.pack("<Q", 2**40)), "metadata count 1099511627776 is impossible")
    add("kv_count_max", patch(good, 16, struct.pack("<Q", U64_MAX)), "metadata count 18446744073709551615")
    add("kv_count_one_too_many", patch(good, 16, struct.pack("<Q", len(base().kvs) + 1)), "truncated while reading")

    # ---- truncation at many points
    k_tokens = pos["kv:tokenizer.ggml.tokens:value"]
    add("trunc_in_first_key", good[:30], "metadata count 27 is impossible")
    add("trunc_in_key_length", good[: pos["kv:general.file_type"] + 4], "key of metadata entry 26 length")
    add("trunc_in_key", good[: pos["kv:general.file_type"] + 12], "key of metadata entry 26")
    add("trunc_in_value_type", good[: pos["kv:general.file_type:type"] + 2], "type of key 'general.file_type'")
    add("trunc_in_scalar_value", good[: pos["kv:general.file_type:value"] + 3], "value of key 'general.file_type'")
    add(
        "trunc_in_string_value",
        good[: pos["kv:tokenizer.ggml.pre:value"] + 10],
        "string value of key 'tokenizer.ggml.pre'",
    )
    add("trunc_in_array_header", good[: k_tokens + 6], "array length of key 'tokenizer.ggml.tokens'")
    add("trunc_in_string_array_count", good[: k_tokens + 12 + 27], "string array of 8 elements runs past the end")
    add("trunc_in_string_array", good[: k_tokens + 12 + 85], "string 5 of key 'tokenizer.ggml.tokens'")
    add(
        "trunc_in_float_array",
        good[: pos["kv:ouro.exit_gate.weight:value"] + 12 + 50],
        "key 'ouro.exit_gate.weight': array of 32 elements runs past the end",
    )
    add("trunc_in_tensor_name", good[: pos["t:blk.0.ffn_up.weight"] + 12], "name of tensor 11")
    add("trunc_in_tensor_dims", good[: pos["t:blk.0.ffn_up.weight:dims"] + 6], "shape of tensor 'blk.0.ffn_up.weight'")
    add("trunc_in_tensor_type", good[: pos["t:blk.0.ffn_up.weight:type"] + 1], "type of tensor 'blk.0.ffn_up.weight'")
    add(
        "trunc_in_tensor_offset",
        good[: pos["t:blk.0.post_ffw_norm.weight:offset"] + 7],
        "offset of tensor 'blk.0.post_ffw_norm.weight'",
    )
    assert pos["infos_end"] % 32 != 0, "the padding case needs unaligned infos"
    add("trunc_before_data", good[: pos["infos_end"] + 1], "data section starts past the end")
    add("trunc_at_data_start", good[: pos["data"]], "lies outside the data section")
    add("trunc_in_first_tensor", good[: pos["data"] + 100], "tensor 'token_embd.weight': data")
    add("trunc_in_last_tensor", good[:-1], "tensor 'blk.0.post_ffw_norm.weight': data")

    # ---- lengths past the end and near 2^64
    k0 = pos["kv:general.architecture"]
    add("key_length_max", patch(good, k0, struct.pack("<Q", U64_MAX)), "needs 18446744073709551615 bytes")
    add("key_length_past_end", patch(good, k0, struct.pack("<Q", len(good))), "key of metadata entry 0")
    v_arch = pos["kv:general.architecture:value"]
    add(
        "string_length_max",
        patch(good, v_arch, struct.pack("<Q", U64_MAX)),
        "string value of key 'general.architecture'",
    )
    add(
        "string_length_past_end",
        patch(good, v_arch, struct.pack("<Q", len(good) - v_arch - 7)),
        "string value of key 'general.architecture'",
    )
    v_gate = pos["kv:ouro.exit_gate.weight:value"]
    add(
        "array_length_huge",
        patch(good, v_gate + 4, struct.pack("<Q", 2**61)),
        "array of 2305843009213693952 elements runs past the end",
    )
    add("array_length_max", patch(good, v_gate + 4, struct.pack("<Q", U64_MAX)), "runs past the end")
    add(
        "string_array_length_max",
        patch(good, k_tokens + 4, struct.pack("<Q", U64_MAX)),
        "string array of 18446744073709551615 elements runs past the end",
    )
    add(
        "string_in_array_length_max",
        patch(good, k_tokens + 12, struct.pack("<Q", U64_MAX)),
        "string 0 of key 'tokenizer.ggml.tokens'",
    )
    t0 = pos["t:token_embd.weight"]
    add("tensor_name_length_max", patch(good, t0, struct.pack("<Q", U64_MAX)), "name of tensor 0")

    # ---- dimensions
    def dims(name: str, d: list[int], n_dims: int | None = None, t: int | None = None):
        def f(g: GGUF) -> None:
            x = g.tensor(name)
            x.dims, x.n_dims = d, n_dims
            if t is not None:
                x.type = t

        return mod(f)

    add("dims_product_overflows", dims("output_norm.weight", [2**32, 2**32], t=GF32), "element count overflows")
    add("dims_product_overflows_4d", dims("output_norm.weight", [2**16] * 4, t=GF32), "element count overflows")
    add("dims_bytes_overflow", dims("output_norm.weight", [2**62], t=GF32), "byte size overflows")
    add("dim_zero", dims("output_norm.weight", [32, 0]), "invalid dimension 0")
    add("dim_negative", dims("output_norm.weight", [-32]), "invalid dimension 18446744073709551584")
    add("dim_int64_min", dims("output_norm.weight", [-(2**63)]), "invalid dimension 9223372036854775808")
    add("n_dims_0", dims("output_norm.weight", [], 0), "has 0 dimensions")
    add("n_dims_5", dims("output_norm.weight", [32, 1, 1, 1, 1]), "has 5 dimensions")
    add(
        "n_dims_max",
        patch(good, pos["t:output_norm.weight:dims"], struct.pack("<I", 2**32 - 1)),
        "4294967295 dimensions",
    )
    add("dims_huge_data_small", dims("output_norm.weight", [2**40], t=GF32), "lies outside the data section")

    # ---- unknown type ids
    ty = pos["kv:general.name:type"]
    add("unknown_value_type", patch(good, ty, struct.pack("<I", 13)), "unknown value type 13")
    add("unknown_value_type_max", patch(good, ty, struct.pack("<I", 2**32 - 1)), "unknown value type 4294967295")
    add("unknown_array_type", patch(good, v_gate, struct.pack("<I", 13)), "unknown array element type 13")
    add("nested_array", patch(good, v_gate, struct.pack("<I", ARRAY)), "nested arrays")
    tt = pos["t:blk.0.attn_q.weight:type"]
    add("unknown_tensor_type", patch(good, tt, struct.pack("<I", 4)), "unknown type id 4")
    add("unknown_tensor_type_max", patch(good, tt, struct.pack("<I", 2**32 - 1)), "unknown type id 4294967295")

    # ---- offsets
    def offset(name: str, off: int) -> GGUF:
        return mod(lambda g: setattr(g.tensor(name), "offset", off))

    end = len(good) - pos["data"]
    add("offset_past_data", offset("output_norm.weight", (end + 31) // 32 * 32), "lies outside the data section")
    add("offset_near_2_64", offset("output_norm.weight", 2**64 - 32), "data [18446744073709551584")
    add(
        "offset_misaligned",
        offset("output_norm.weight", pos["data:output_norm.weight"] - pos["data"] + 4),
        "not aligned to 32",
    )
    add("tensors_overlap", offset("output_norm.weight", 0), "overlap")
    add(
        "tensors_same_offset",
        offset("blk.0.ffn_up.weight", pos["data:blk.0.ffn_gate.weight"] - pos["data"]),
        "'blk.0.ffn_gate.weight' and 'blk.0.ffn_up.weight' overlap",
    )
    add(
        "rows_not_whole_blocks",
        dims("blk.0.attn_q.weight", [48, 24]),
        "row length 48 is not a multiple of the Q4_0 block size 32",
    )
    add(
        "rows_not_whole_k_blocks",
        dims("blk.0.attn_q.weight", [32, 32], t=GQ4_K),
        "not a multiple of the Q4_K block size 256",
    )

    # ---- alignment
    add(
        "alignment_not_pow2",
        mod(lambda g: g.set("general.alignment", U32, 48)),
        "general.alignment 48 is not a power of two",
    )
    add(
        "alignment_zero", mod(lambda g: g.set("general.alignment", U32, 0)), "general.alignment 0 is not a power of two"
    )
    add("alignment_u64", mod(lambda g: g.set("general.alignment", U64, 32)), "'general.alignment' must be u32")
    add("alignment_string", mod(lambda g: g.set("general.alignment", STRING, "32")), "'general.alignment' must be u32")
    add(
        "alignment_huge",
        mod(lambda g: (g.set("general.alignment", U32, 2**31), setattr(g, "layout_align", 32))),
        "data section starts past the end",
    )

    # ---- names
    add(
        "duplicate_key",
        mod(lambda g: g.set("general.name", STRING, "x").raw("general.name", STRING, enc_str("y"))),
        "duplicate key 'general.name'",
    )
    add(
        "duplicate_tensor",
        mod(lambda g: setattr(g.tensor("blk.0.ffn_norm.weight"), "name", b"blk.0.attn_norm.weight")),
        "duplicate tensor 'blk.0.attn_norm.weight'",
    )
    add("empty_key", mod(lambda g: g.raw(b"", U32, struct.pack("<I", 1))), "has an empty key")
    add(
        "key_not_ascii",
        mod(lambda g: g.raw(b"general.\xff\xfe\x01", U32, struct.pack("<I", 1))),
        "invalid key 'general.\\xff\\xfe\\x01'",
    )
    add(
        "empty_tensor_name",
        mod(lambda g: setattr(g.tensor("output_norm.weight"), "name", b"")),
        "tensor 1 has an empty or too long name",
    )
    add(
        "tensor_name_64_bytes",
        mod(lambda g: setattr(g.tensor("output_norm.weight"), "name", b"x" * 64)),
        "too long name (64 bytes",
    )
    add(
        "tensor_name_not_utf8",
        mod(lambda g: setattr(g.tensor("output_norm.weight"), "name", b"output\xc0\xafnorm")),
        "not UTF-8 text: 'output\\xc0\\xafnorm'",
    )
    add(
        "arch_not_utf8",
        mod(lambda g: g.set("general.architecture", STRING, b"qw\xffen\n")),
        "architecture 'qw\\xffen\\x0a' is not supported",
    )

    # ---- model: architecture, tokenizer, required keys and their types
    add(
        "arch_unsupported",
        mod(lambda g: g.set("general.architecture", STRING, "qwen2")),
        "architecture 'qwen2' is not supported",
    )
    add("arch_missing", mod(lambda g: g.drop("general.architecture")), "missing required key 'general.architecture'")
    add(
        "arch_u32",
        mod(lambda g: g.set("general.architecture", U32, 1)),
        "key 'general.architecture' has type u32, expected string",
    )
    add(
        "tokenizer_llama",
        mod(lambda g: g.set("tokenizer.ggml.model", STRING, "llama")),
        "unsupported tokenizer: tokenizer.ggml.model='llama'",
    )
    add("tokenizer_pre_unknown", mod(lambda g: g.set("tokenizer.ggml.pre", STRING, "llama-bpe")), "pre='llama-bpe'")
    add(
        "block_count_string",
        mod(lambda g: g.set("ouro.block_count", STRING, "1")),
        "key 'ouro.block_count' has type string, expected an integer",
    )
    add("block_count_negative", mod(lambda g: g.set("ouro.block_count", I32, -1)), "key 'ouro.block_count' is negative")
    add(
        "block_count_zero",
        mod(lambda g: g.set("ouro.block_count", U32, 0)),
        "key 'ouro.block_count' = 0 is out of range",
    )
    add(
        "block_count_huge",
        mod(lambda g: g.set("ouro.block_count", U64, 2**63)),
        "key 'ouro.block_count' = 9223372036854775808 is out of range",
    )
    add("block_count_2", mod(lambda g: g.set("ouro.block_count", U32, 2)), "missing tensor 'blk.1.attn_norm.weight'")
    add(
        "embedding_length_missing",
        mod(lambda g: g.drop("ouro.embedding_length")),
        "missing required key 'ouro.embedding_length'",
    )
    add(
        "head_count_missing",
        mod(lambda g: g.drop("ouro.attention.head_count")),
        "missing required key 'ouro.attention.head_count'",
    )
    add(
        "head_count_kv_not_divisor",
        mod(lambda g: g.set("ouro.attention.head_count", U32, 3).set("ouro.attention.head_count_kv", U32, 2)),
        "not a multiple of head_count_kv",
    )
    add(
        "head_count_kv_above_heads",
        mod(lambda g: g.set("ouro.attention.head_count_kv", U32, 4)),
        "'ouro.attention.head_count_kv' = 4 is out of range (1..2)",
    )
    add("head_dim_odd", mod(lambda g: g.set("ouro.attention.key_length", U32, 15)), "head dimension 15 is invalid")
    add("value_length_differs", mod(lambda g: g.set("ouro.attention.value_length", U32, 8)), "value_length differs")
    add("rope_partial", mod(lambda g: g.set("ouro.rope.dimension_count", U32, 8)), "partial rotary embeddings")
    add(
        "rope_scaling",
        mod(lambda g: g.set("ouro.rope.scaling.type", STRING, "yarn")),
        "rope scaling 'yarn' is not supported",
    )
    add(
        "rms_eps_u32",
        mod(lambda g: g.set("ouro.attention.layer_norm_rms_epsilon", U32, 1)),
        "key 'ouro.attention.layer_norm_rms_epsilon' has type u32, expected f32",
    )
    add(
        "rms_eps_missing",
        mod(lambda g: g.drop("ouro.attention.layer_norm_rms_epsilon")),
        "missing required key 'ouro.attention.layer_norm_rms_epsilon'",
    )
    add("rms_eps_zero", mod(lambda g: g.set("ouro.attention.layer_norm_rms_epsilon", F32, 0.0)), "must be positive")
    add(
        "rms_eps_nan",
        mod(lambda g: g.set("ouro.attention.layer_norm_rms_epsilon", F32, float("nan"))),
        "must be positive",
    )
    add("rope_theta_inf", mod(lambda g: g.set("ouro.rope.freq_base", F64, float("inf"))), "must be positive and finite")
    add("num_loops_zero", mod(lambda g: g.set("ouro.num_loops", U32, 0)), "key 'ouro.num_loops' = 0 must be in 1..64")
    add("num_loops_65", mod(lambda g: g.set("ouro.num_loops", U32, 65)), "key 'ouro.num_loops' = 65 must be in 1..64")
    add(
        "num_loops_2_32_plus_1",
        mod(lambda g: g.set("ouro.num_loops", U64, 2**32 + 1)),
        "key 'ouro.num_loops' = 4294967297 must be in 1..64",
    )
    add(
        "num_loops_f32",
        mod(lambda g: g.set("ouro.num_loops", F32, 4.0)),
        "key 'ouro.num_loops' has type f32, expected an integer",
    )
    add(
        "skip_loop_final_norm",
        mod(lambda g: g.set("ouro.skip_loop_final_norm", BOOL, True)),
        "skip_loop_final_norm = true",
    )
    add(
        "skip_loop_final_norm_u8",
        mod(lambda g: g.set("ouro.skip_loop_final_norm", U8, 0)),
        "has type u8, expected bool",
    )
    add(
        "vocab_size_disagrees",
        mod(lambda g: g.set("ouro.vocab_size", U32, 9)),
        "'ouro.vocab_size' disagrees with token_embd.weight",
    )

    # ---- exit gate
    add("gate_weight_only", mod(lambda g: g.drop("ouro.exit_gate.bias")), "needs both")
    add(
        "gate_wrong_length",
        mod(lambda g: g.set("ouro.exit_gate.weight", ARRAY, [0.0] * 31, F32)),
        "must hold n_embd = 32 values",
    )
    add(
        "gate_bias_two",
        mod(lambda g: g.set("ouro.exit_gate.bias", ARRAY, [0.0, 1.0], F32)),
        "'ouro.exit_gate.bias' one",
    )
    add(
        "gate_weight_string",
        mod(lambda g: g.set("ouro.exit_gate.weight", STRING, "0.5")),
        "'ouro.exit_gate.weight' must be an array of f32",
    )
    add(
        "gate_weight_i32",
        mod(lambda g: g.set("ouro.exit_gate.weight", ARRAY, [0] * 32, I32)),
        "'ouro.exit_gate.weight' must be an array of f32",
    )
    add(
        "gate_threshold_nan",
        mod(lambda g: g.set("ouro.exit_gate.threshold", F32, float("nan"))),
        "'ouro.exit_gate.threshold' = nan must be a finite number >= 0",
    )
    add(
        "gate_threshold_negative",
        mod(lambda g: g.set("ouro.exit_gate.threshold", F32, -0.5)),
        "must be a finite number >= 0",
    )
    add(
        "gate_threshold_string",
        mod(lambda g: g.set("ouro.exit_gate.threshold", STRING, "0.9")),
        "'ouro.exit_gate.threshold' has type string, expected f32",
    )

    # ---- tensors: missing, unexpected, shapes, types
    add("missing_token_embd", mod(lambda g: g.drop_tensor("token_embd.weight")), "missing tensor 'token_embd.weight'")
    add(
        "missing_output_norm", mod(lambda g: g.drop_tensor("output_norm.weight")), "missing tensor 'output_norm.weight'"
    )
    add("missing_ffn_up", mod(lambda g: g.drop_tensor("blk.0.ffn_up.weight")), "missing tensor 'blk.0.ffn_up.weight'")
    add(
        "missing_post_norm",
        mod(lambda g: g.drop_tensor("blk.0.post_ffw_norm.weight")),
        "missing tensor 'blk.0.post_ffw_norm.weight'",
    )
    add(
        "unexpected_tensor",
        mod(lambda g: g.tensors.append(Tensor(b"blk.0.attn_q_norm.weight", [32], GF32, b"\0" * 128))),
        "unexpected tensor(s) for architecture 'ouro': 'blk.0.attn_q_norm.weight'",
    )
    add(
        "shape_q_wrong",
        dims("blk.0.attn_q.weight", [32, 16]),
        "tensor 'blk.0.attn_q.weight' has shape [32, 16], expected [32, 32]",
    )
    add(
        "shape_down_transposed",
        dims("blk.0.ffn_down.weight", [32, 32, 1]),
        "tensor 'blk.0.ffn_down.weight' has shape [32, 32, 1]",
    )
    add(
        "shape_norm_2d",
        dims("blk.0.attn_norm.weight", [16, 2]),
        "tensor 'blk.0.attn_norm.weight' has shape [16, 2], expected [32]",
    )
    add(
        "shape_embd_width",
        mod(
            lambda g: (
                g.set("ouro.embedding_length", U32, 64)
                .set("ouro.rope.dimension_count", U32, 32)
                .drop("ouro.exit_gate.weight", "ouro.exit_gate.bias")
            )
        ),
        "tensor 'token_embd.weight' has shape [32, 8], expected [64, 8]",
    )
    add(
        "shape_ff_width",
        mod(lambda g: g.set("ouro.feed_forward_length", U32, 64)),
        "tensor 'blk.0.ffn_gate.weight' has shape [32, 32], expected [32, 64]",
    )
    add(
        "shape_output_rows",
        dims("output.weight", [32, 4]),
        "tensor 'output.weight' has shape [32, 4], expected [32, 8]",
    )
    add(
        "type_q3_k",
        mod(lambda g: _retype(g, "blk.0.ffn_down.weight", GQ3_K, [256, 4])),
        "has type Q3_K, which looplm cannot run",
    )
    add(
        "type_norm_q8_0",
        mod(lambda g: _retype(g, "blk.0.ffn_norm.weight", GQ8_0, [32])),
        "tensor 'blk.0.ffn_norm.weight' has type Q8_0, expected F32",
    )
    add(
        "type_i32_matrix",
        mod(lambda g: _retype(g, "blk.0.attn_v.weight", 26, [32, 16])),
        "has type I32, which looplm cannot run",
    )

    # ---- vocabulary
    add(
        "token_type_short",
        mod(lambda g: g.set("tokenizer.ggml.token_type", ARRAY, [1] * 7, I32)),
        "tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length",
    )
    add(
        "token_type_f32",
        mod(lambda g: g.set("tokenizer.ggml.token_type", ARRAY, [1.0] * 8, F32)),
        "'tokenizer.ggml.token_type' must be an array of integers",
    )
    add(
        "tokens_more_than_rows",
        mod(
            lambda g: g.set("tokenizer.ggml.tokens", ARRAY, [*VOCAB, "c"], STRING).set(
                "tokenizer.ggml.token_type", ARRAY, [*VOCAB_TYPES, 1], I32
            )
        ),
        "holds 9 tokens, but token_embd.weight has 8 rows",
    )
    add(
        "tokens_fewer_than_rows",
        mod(
            lambda g: g.set("tokenizer.ggml.tokens", ARRAY, VOCAB[:7], STRING).set(
                "tokenizer.ggml.token_type", ARRAY, VOCAB_TYPES[:7], I32
            )
        ),
        "holds 7 tokens, but token_embd.weight has 8 rows",
    )
    add(
        "tokens_u32_array",
        mod(lambda g: g.set("tokenizer.ggml.tokens", ARRAY, list(range(8)), U32)),
        "'tokenizer.ggml.tokens' must be an array of strings",
    )
    add(
        "tokens_missing", mod(lambda g: g.drop("tokenizer.ggml.tokens")), "missing required key 'tokenizer.ggml.tokens'"
    )
    add(
        "merge_not_in_vocab",
        mod(lambda g: g.set("tokenizer.ggml.merges", ARRAY, ["a c"], STRING)),
        "merge 0 ('a c') names a token that is not in the vocabulary",
    )
    add(
        "merge_one_part",
        mod(lambda g: g.set("tokenizer.ggml.merges", ARRAY, ["a b", "ab"], STRING)),
        "merge 1 ('ab') is not two space-separated tokens",
    )
    add(
        "bos_out_of_range",
        mod(lambda g: g.set("tokenizer.ggml.bos_token_id", U32, 8)),
        "key 'tokenizer.ggml.bos_token_id' = 8 is not a token id",
    )
    add(
        "eos_negative",
        mod(lambda g: g.set("tokenizer.ggml.eos_token_id", I32, -1)),
        "key 'tokenizer.ggml.eos_token_id' is negative",
    )
    add(
        "add_bos_u8",
        mod(lambda g: g.set("tokenizer.ggml.add_bos_token", U8, 1)),
        "'tokenizer.ggml.add_bos_token' has type u8, expected bool",
    )
    return c


def _retype(g: GGUF, name: str, t: int, dims: list[int]) -> None:
    x = g.tensor(name)
    x.type, x.dims = t, dims
    be, bb = BLOCK.get(t, (1, 4))
    n = 1
    for d in dims:
        n *= d
    x.data = bytes(n // be * bb)


def write(out: Path) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "valid").mkdir(exist_ok=True)
    for old in [*out.glob("*.gguf"), *(out / "valid").glob("*.gguf")]:
        old.unlink()
    corpus = cases()
    for name, (data, _) in corpus.items():
        assert len(data) <= 16 * 1024, (name, len(data))
        (out / f"{name}.gguf").write_bytes(data)
    expected = {f"{name}.gguf": needle for name, (_, needle) in sorted(corpus.items())}
    (out / "EXPECTED.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    valid = valid_models()
    for name, g in valid.items():
        (out / "valid" / f"{name}.gguf").write_bytes(bytes_of(g))
    return len(corpus), len(valid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=Path, default=here / "tests" / "bad_gguf", help="output folder")
    args = ap.parse_args()
    n_bad, n_valid = write(args.out)
    print(f"wrote {n_bad} bad files and {n_valid} valid ones to {args.out}")


if __name__ == "__main__":
    main()
