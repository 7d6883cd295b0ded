"""Rewrites a GGUF with changes, through gguf-py: drop or replace metadata keys, drop or
rename tensors. Test utility for files the converter would never write."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gguf
import numpy as np


def rewrite(
    src: Path,
    dst: Path,
    *,
    drop_keys: tuple[str, ...] = (),
    set_keys: dict[str, tuple[Any, gguf.GGUFValueType, gguf.GGUFValueType | None]] | None = None,
    drop_tensors: tuple[str, ...] = (),
    arch: str | None = None,
    tensor_fn: Callable[[str, np.ndarray], tuple[str, np.ndarray]] | None = None,
) -> Path:
    """Copies src to dst with the given changes.

    Args:
        set_keys: key -> (value, type, array element type or None).
        tensor_fn: (name, data) -> (new name, new data) for every kept tensor.
    """
    r = gguf.GGUFReader(str(src))
    arch = arch or r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    set_keys = dict(set_keys or {})
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in drop_keys or key in set_keys:
            continue
        t = f.types[0]
        sub = f.types[-1] if t == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), t, sub_type=sub)
    for key, (value, t, sub) in set_keys.items():
        w.add_key_value(key, value, t, sub_type=sub)
    for t in r.tensors:
        if t.name in drop_tensors:
            continue
        name, data = t.name, np.array(t.data)
        if tensor_fn:
            name, data = tensor_fn(name, data)
        w.add_tensor(name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
