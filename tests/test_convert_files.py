"""Malformed safetensors and tokenizer files (issue 18, item 4): one line naming the file and
the field, never a traceback; deep JSON nesting, overlapping data and two tokens on one id
refused."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ouro_fixtures as fx
import pytest
from looplm.convert import ConvertError, convert_checkpoint

DEEP = "[" * 100_000 + "]" * 100_000


def _header(folder: Path) -> tuple[dict, bytes]:
    raw = (folder / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def edit_header(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        header, data = _header(folder)
        edit(header)
        text = json.dumps(header).encode()
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data)

    return damage


def raw_header(text: str | bytes) -> Callable[[Path], None]:
    raw = text.encode() if isinstance(text, str) else text

    def damage(folder: Path) -> None:
        _, data = _header(folder)
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data)

    return damage


def first(header: dict) -> dict:
    return header[next(k for k in header if k != "__metadata__")]


def _overlap(header: dict) -> None:
    """The second norm's data made to start inside the first's (same sizes, same dtype)."""
    norms = sorted((k for k in header if k.endswith("input_layernorm.weight")), key=lambda k: header[k]["data_offsets"])
    a, b = header[norms[0]], header[norms[1]]
    size = b["data_offsets"][1] - b["data_offsets"][0]
    b["data_offsets"] = [a["data_offsets"][0] + 2, a["data_offsets"][0] + 2 + size]


def edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        edit(data)
        (folder / name).write_text(json.dumps(data))

    return damage


def write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        keys = path.split(".")
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


def _two_tokens_one_id(tj: dict) -> None:
    vocab = tj["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[10:12]
    vocab[b] = vocab[a]


def _added_token_on_a_vocab_id(tj: dict) -> None:
    tj["added_tokens"].append({"id": 20, "content": "<|mine|>", "special": True})


# name -> (damage, file named, text naming the field)
CASES = {
    "dtype_list": (edit_header(lambda h: first(h).update(dtype=["F32"])), "model.safetensors", "unsupported dtype"),
    "dtype_dict": (edit_header(lambda h: first(h).update(dtype={"a": 1})), "model.safetensors", "unsupported dtype"),
    "shape_true": (edit_header(lambda h: first(h).update(shape=[True])), "model.safetensors", "invalid shape"),
    "shape_string": (edit_header(lambda h: first(h).update(shape=["64"])), "model.safetensors", "invalid shape"),
    "offsets_bool": (
        edit_header(lambda h: first(h).update(data_offsets=[False, True])),
        "model.safetensors",
        "data_offsets",
    ),
    "offsets_overlap": (edit_header(_overlap), "model.safetensors", "overlapping data_offsets"),
    "metadata_list": (edit_header(lambda h: h.update(__metadata__=[1])), "model.safetensors", "__metadata__"),
    "header_deep": (raw_header(DEEP), "model.safetensors", "nested too deeply"),
    "header_not_utf8": (raw_header(b'{"\xff": 1}'), "model.safetensors", "cannot parse"),
    "config_deep": (write("config.json", DEEP), "config.json", "nested too deeply"),
    "tokenizer_deep": (write("tokenizer.json", DEEP), "tokenizer.json", "nested too deeply"),
    "tokenizer_config_deep": (write("tokenizer_config.json", DEEP), "tokenizer_config.json", "nested too deeply"),
    "pre_tokenizer_numbers": (
        edit_json("tokenizer.json", _set("pre_tokenizer.pretokenizers", [1, 2])),
        "tokenizer.json",
        "unsupported pre_tokenizer",
    ),
    "pre_tokenizer_number": (edit_json("tokenizer.json", _set("pre_tokenizer", 5)), "tokenizer.json", "pre_tokenizer"),
    "pre_tokenizer_not_list": (
        edit_json("tokenizer.json", _set("pre_tokenizer.pretokenizers", {"a": 1})),
        "tokenizer.json",
        "pre_tokenizer",
    ),
    "added_tokens_int": (
        edit_json("tokenizer.json", _set("added_tokens", 5)),
        "tokenizer.json",
        "added_tokens must be a list",
    ),
    "added_tokens_dict": (
        edit_json("tokenizer.json", _set("added_tokens", {"a": 1})),
        "tokenizer.json",
        "added_tokens",
    ),
    "added_token_bool_id": (
        edit_json("tokenizer.json", lambda tj: tj["added_tokens"].append({"id": True, "content": "x"})),
        "tokenizer.json",
        "malformed added_tokens entry",
    ),
    "merges_int": (
        edit_json("tokenizer.json", _set("model.merges", 7)),
        "tokenizer.json",
        "model.merges must be a list",
    ),
    "merges_dict": (edit_json("tokenizer.json", _set("model.merges", {"a b": 1})), "tokenizer.json", "model.merges"),
    "merge_number": (edit_json("tokenizer.json", _set("model.merges", [5])), "tokenizer.json", "malformed merge"),
    "vocab_list": (edit_json("tokenizer.json", _set("model.vocab", ["a"])), "tokenizer.json", "model.vocab"),
    "vocab_id_string": (edit_json("tokenizer.json", _set("model.vocab", {"a": "0"})), "tokenizer.json", "model.vocab"),
    "two_tokens_one_id": (edit_json("tokenizer.json", _two_tokens_one_id), "tokenizer.json", "share id"),
    "added_token_on_vocab_id": (
        edit_json("tokenizer.json", _added_token_on_a_vocab_id),
        "tokenizer.json",
        "share id 20",
    ),
    "add_bos_string": (
        edit_json("tokenizer_config.json", _set("add_bos_token", "false")),
        "tokenizer_config.json",
        "add_bos_token",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_is_one_line(case, tmp_path):
    folder = fx.make_checkpoint(tmp_path / "ckpt", seed=6)
    damage, file, needle = CASES[case]
    damage(folder)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConvertError) as e:
        convert_checkpoint(folder, out / "m.gguf", "q8_0", progress=False)
    msg = str(e.value)
    assert msg.startswith(str(folder / file)) and needle in msg and "\n" not in msg and len(msg) < 500, msg
    assert list(out.iterdir()) == []


def test_cli_reports_deep_nesting_in_one_line(tmp_path):
    folder = fx.make_checkpoint(tmp_path / "ckpt", seed=6)
    (folder / "tokenizer.json").write_text(DEEP)
    r = subprocess.run(
        [sys.executable, "-m", "looplm.cli", "convert", str(folder), "-o", str(tmp_path / "m.gguf")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "tokenizer.json: cannot parse (JSON nested too deeply)" in lines[0]
