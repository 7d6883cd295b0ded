"""Reading the JSON files of a checkpoint (config, index, tokenizer files, a safetensors
header): any fault, including nesting too deep for the parser (RecursionError), invalid
UTF-8 included, is one line naming the file (NaN and Infinity parse, as Python's json does:
the range checks name the key that holds them)."""

from __future__ import annotations

import json
from pathlib import Path


def parse(raw: bytes | str, where: str | Path, error: type[Exception]) -> object:
    """Parses ``raw``; raises ``error("<where>: ...")`` on any fault."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text)
    except RecursionError:
        raise error(f"{where}: cannot parse (JSON nested too deeply)") from None
    except UnicodeDecodeError as e:
        raise error(f"{where}: cannot parse (not UTF-8 text at byte {e.start})") from None
    except ValueError as e:
        raise error(f"{where}: cannot parse ({e})") from None


def load(path: Path, error: type[Exception]) -> object:
    """Reads and parses the file at ``path``; raises ``error("<path>: ...")`` on any fault."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    return parse(raw, path, error)


def load_object(path: Path, error: type[Exception]) -> dict:
    """As :func:`load`, for files that must hold a JSON object."""
    data = load(path, error)
    if not isinstance(data, dict):
        raise error(f"{path}: not a JSON object")
    return data
