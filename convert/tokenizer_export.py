"""tokenizer.json (+ tokenizer_config.json, generation_config.json) -> ``tokenizer.ggml.*``.

Ouro uses SmolLM2's byte-level BPE. llama.cpp identifies its pre-tokenizer as ``smollm`` by
hashing the ids of a check text; we check the structure of ``tokenizer.json`` instead
(Digits with individual digits, then ByteLevel with the GPT-2 regex) and refuse anything
else rather than writing a file that would tokenize differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jsonfile
from .errors import ConvertError

# GGUF token types
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


class TokenizerError(ConvertError):
    """A tokenizer file the converter cannot export; the message names the file and fault."""


@dataclass
class Vocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    special_ids: dict[str, int] = field(default_factory=dict)  # bos, eos, eot, unk, pad
    chat_template: str | None = None
    add_bos: bool = False


def _read_json(path: Path) -> dict:
    return jsonfile.load_object(path, TokenizerError)


def _check_pre_tokenizer(pre: object, path: Path) -> None:
    parts = pre.get("pretokenizers") if isinstance(pre, dict) else None
    ok = (
        isinstance(pre, dict)
        and pre.get("type") == "Sequence"
        and isinstance(parts, list)
        and len(parts) == 2
        and all(isinstance(p, dict) for p in parts)
        and parts[0].get("type") == "Digits"
        and parts[0].get("individual_digits") is True
        and parts[1].get("type") == "ByteLevel"
        and parts[1].get("add_prefix_space", False) is False
        and parts[1].get("use_regex", True) is True
    )
    if not ok:
        try:
            shown = json.dumps(pre)[:200]
        except (RecursionError, ValueError):
            shown = type(pre).__name__
        raise TokenizerError(
            f"{path}: unsupported pre_tokenizer {shown} (looplm supports "
            "SmolLM2's, llama.cpp 'smollm': Digits(individual) + ByteLevel)"
        )


def _is_id(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _token_text(v: object) -> str | None:
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


def load_vocab(folder: Path, vocab_size: int) -> Vocab:
    """Reads the tokenizer files of a HF folder into GGUF vocabulary arrays."""
    path = folder / "tokenizer.json"
    if not path.exists():
        raise TokenizerError(f"{path}: missing (the GGUF must carry the tokenizer)")
    tj = _read_json(path)
    model = tj.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise TokenizerError(f"{path}: model type must be BPE")
    if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise TokenizerError(f"{path}: BPE options byte_fallback / subword affixes are not supported")
    _check_pre_tokenizer(tj.get("pre_tokenizer"), path)
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerError(f"{path}: model.vocab must be a non-empty object")

    ids: dict[int, str] = {}
    for text, i in vocab.items():
        if not _is_id(i):
            raise TokenizerError(f"{path}: model.vocab: token {text[:40]!r} has id {i!r}, not a non-negative integer")
        if i in ids:
            raise TokenizerError(f"{path}: model.vocab: tokens {ids[i][:40]!r} and {text[:40]!r} share id {i}")
        ids[i] = text
    added_list = tj.get("added_tokens") or []
    if not isinstance(added_list, list):
        raise TokenizerError(f"{path}: added_tokens must be a list, not {type(added_list).__name__}")
    added: dict[int, Any] = {}
    for t in added_list:
        if not isinstance(t, dict) or not _is_id(t.get("id")) or not isinstance(t.get("content"), str):
            raise TokenizerError(f"{path}: malformed added_tokens entry {str(t)[:80]}")
        i, text = t["id"], t["content"]
        if (i in added and added[i]["content"] != text) or (i in ids and ids[i] != text and i not in added):
            other = added[i]["content"] if i in added else ids[i]
            raise TokenizerError(f"{path}: added_tokens: tokens {other[:40]!r} and {text[:40]!r} share id {i}")
        added[i] = t
    ids.update({i: t["content"] for i, t in added.items()})
    texts: dict[str, int] = {}
    for i, text in sorted(ids.items()):
        if text in texts:
            raise TokenizerError(f"{path}: token {text[:40]!r} has two ids, {texts[text]} and {i}")
        texts[text] = i
    n = max(vocab_size, max(ids) + 1)
    if n > vocab_size:
        raise TokenizerError(f"{path}: token id {max(ids)} does not fit config.json vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(n):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        elif i in ids:
            tokens.append(ids[i])
            types.append(NORMAL)
        else:  # embedding rows with no token (padding of the vocabulary)
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)

    merges = []
    merge_list = model.get("merges") or []
    if not isinstance(merge_list, list):
        raise TokenizerError(f"{path}: model.merges must be a list, not {type(merge_list).__name__}")
    for m in merge_list:
        if isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m):
            m = f"{m[0]} {m[1]}"
        if not isinstance(m, str) or m.count(" ") != 1:
            raise TokenizerError(f"{path}: malformed merge {str(m)[:80]}")
        merges.append(m)

    v = Vocab(tokens=tokens, token_types=types, merges=merges)
    index = {t: i for i, t in enumerate(tokens)}
    tc_path = folder / "tokenizer_config.json"
    tc = _read_json(tc_path) if tc_path.exists() else {}
    gen_path = folder / "generation_config.json"
    gen = _read_json(gen_path) if gen_path.exists() else {}
    for role in ("bos", "eos", "unk", "pad"):
        text = _token_text(tc.get(f"{role}_token"))
        if text is not None and text in index:
            v.special_ids[role] = index[text]
        elif _is_id(gen.get(f"{role}_token_id")):
            v.special_ids[role] = gen[f"{role}_token_id"]
    if "<|im_end|>" in index:
        v.special_ids["eot"] = index["<|im_end|>"]
    if "eos" not in v.special_ids and "<|endoftext|>" in index:
        v.special_ids["eos"] = index["<|endoftext|>"]
    for role, i in v.special_ids.items():
        if not 0 <= i < n:
            raise TokenizerError(f"{folder}: {role} token id {i} is outside the vocabulary")
    template = tc.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    v.chat_template = template if isinstance(template, str) else None
    add_bos = tc.get("add_bos_token", False)
    if add_bos is not None and not isinstance(add_bos, bool):
        raise TokenizerError(f"{tc_path}: add_bos_token = {str(add_bos)[:40]!r} must be true or false")
    v.add_bos = bool(add_bos)
    return v


def add_to_gguf(writer, v: Vocab) -> None:
    """Writes the ``tokenizer.ggml.*`` keys (and the chat template) with a gguf writer."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(v.tokens)
    writer.add_token_types(v.token_types)
    writer.add_token_merges(v.merges)
    setters = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "eot": writer.add_eot_token_id,
        "unk": writer.add_unk_token_id,
        "pad": writer.add_pad_token_id,
    }
    for role, i in v.special_ids.items():
        setters[role](i)
    writer.add_add_bos_token(v.add_bos)
    if v.chat_template:
        writer.add_chat_template(v.chat_template)
