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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TokenizerError(f"{path}: cannot parse ({e})") from e
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: not a JSON object")
    return data


def _check_pre_tokenizer(pre: object, path: Path) -> None:
    ok = (
        isinstance(pre, dict)
        and pre.get("type") == "Sequence"
        and len(pre.get("pretokenizers", [])) == 2
        and pre["pretokenizers"][0].get("type") == "Digits"
        and pre["pretokenizers"][0].get("individual_digits") is True
        and pre["pretokenizers"][1].get("type") == "ByteLevel"
        and not pre["pretokenizers"][1].get("add_prefix_space", False)
        and pre["pretokenizers"][1].get("use_regex", True)
    )
    if not ok:
        raise TokenizerError(
            f"{path}: unsupported pre_tokenizer {json.dumps(pre)[:200]} (looplm supports "
            "SmolLM2's, llama.cpp 'smollm': Digits(individual) + ByteLevel)"
        )


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

    added = {}
    for t in tj.get("added_tokens") or []:
        if not isinstance(t, dict) or not isinstance(t.get("id"), int) or not isinstance(t.get("content"), str):
            raise TokenizerError(f"{path}: malformed added_tokens entry {t!r}")
        added[t["id"]] = t
    ids = {**{i: s for s, i in vocab.items()}, **{i: t["content"] for i, t in added.items()}}
    if any(not isinstance(i, int) or i < 0 for i in ids):
        raise TokenizerError(f"{path}: token ids must be non-negative integers")
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
    for m in model.get("merges") or []:
        if isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m):
            m = f"{m[0]} {m[1]}"
        if not isinstance(m, str) or m.count(" ") != 1:
            raise TokenizerError(f"{path}: malformed merge {m!r}")
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
        elif isinstance(gen.get(f"{role}_token_id"), int):
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
    v.add_bos = bool(tc.get("add_bos_token", False))
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
