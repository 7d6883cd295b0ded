"""GGUF -> GGUF at another type (``looplm quantize IN OUT --type q4_k_m``): every tensor decoded
(gguf-py) and re-encoded with the mixture of mixture.py; metadata copied, general.file_type set.

Streaming as the converter: one tensor (in slabs of rows) in memory at a time, the output under
a temporary name renamed at the end. A source already quantized below 8 bits is refused unless
``allow_requantize`` (its rounding errors would add to the new ones), as llama-quantize does.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf.gguf_reader import ReaderTensor

from .errors import ConvertError
from .mixture import OUT_TYPES
from .quantize import CHUNK_ELEMENTS, byte_shape, nbytes, quantize_rows, tensor_type
from .report import WriteResult, peak_rss_mb, run_write

# Sources that are requantized without asking: float, and 8-bit (a published Q8_0).
_FINE_SOURCES = (QT.F32, QT.F16, QT.BF16, QT.Q8_0)
_STORED: dict[QT, np.dtype] = {QT.F32: np.dtype(np.float32), QT.F16: np.dtype(np.float16)}


def _plan(r: gguf.GGUFReader, src: Path, out_type: str, allow_requantize: bool) -> list[tuple[ReaderTensor, QT]]:
    arch = r.fields["general.architecture"].contents()
    n_layer_f = r.fields.get(f"{arch}.block_count")
    if n_layer_f is None:
        raise ConvertError(f"{src}: missing key '{arch}.block_count'")
    n_layer = int(n_layer_f.contents())
    names = {t.name for t in r.tensors}
    plan = []
    for t in r.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))  # numpy order
        if len(shape) > 1 and t.tensor_type not in _FINE_SOURCES and not allow_requantize:
            raise ConvertError(
                f"{src}: tensor '{t.name}' is already {t.tensor_type.name}; requantizing it adds a second rounding "
                "error (pass --allow-requantize to do it anyway)"
            )
        if t.tensor_type not in _STORED and t.tensor_type not in gguf.GGML_QUANT_SIZES:
            raise ConvertError(f"{src}: tensor '{t.name}' has type {t.tensor_type.name}, which gguf-py cannot decode")
        plan.append((t, tensor_type(t.name, shape, out_type, n_layer, "output.weight" in names)))
    return plan


def _copy_metadata(r: gguf.GGUFReader, w: gguf.GGUFWriter, file_type: int) -> None:
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        if key == "general.alignment":
            w.add_custom_alignment(int(f.contents()))
            continue
        t = f.types[0]
        sub = f.types[-1] if t == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), t, sub_type=sub)
    w.add_file_type(file_type)


def _encode(t: ReaderTensor, qtype: QT) -> np.ndarray:
    """The tensor's data in ``qtype``: bytes as they are for the same type, else decoded and
    re-encoded a slab of rows at a time."""
    n = int(t.shape[0])
    raw = np.asarray(t.data)
    rows = raw.reshape(-1, raw.shape[-1]) if raw.ndim > 1 else raw.reshape(1, -1)
    if t.tensor_type == qtype:
        return rows
    out = np.empty(byte_shape((rows.shape[0], n), qtype), dtype=_STORED.get(qtype, np.dtype(np.uint8)))
    step = max(1, CHUNK_ELEMENTS // n)
    for r0 in range(0, rows.shape[0], step):
        x = gguf.quants.dequantize(rows[r0 : r0 + step], t.tensor_type).astype(np.float32).reshape(-1, n)
        if qtype == QT.F32:
            out[r0 : r0 + step] = x
        elif qtype == QT.F16:
            out[r0 : r0 + step] = x.astype(np.float16)
        else:
            out[r0 : r0 + step] = quantize_rows(x, qtype)
    return out


def requantize(src: str | Path, out: str | Path, out_type: str, *, allow_requantize: bool = False) -> WriteResult:
    """Writes ``src`` (a GGUF) as ``out`` with the tensor types of ``--type out_type``.

    Raises:
        ConvertError: naming the file, tensor or type at fault; no output is left behind.
    """
    t0 = time.perf_counter()
    if out_type not in OUT_TYPES:
        raise ConvertError(f"--type {out_type!r}: choose one of {', '.join(OUT_TYPES)}")
    src, out_path = Path(src), Path(out)
    if not src.is_file():
        raise ConvertError(f"{src}: no such file")
    if out_path.resolve() == src.resolve():
        raise ConvertError(f"{out_path}: the output would overwrite the input")
    try:
        r = gguf.GGUFReader(str(src))
    except (ValueError, OSError) as e:
        raise ConvertError(f"{src}: not a readable GGUF file ({e})") from e
    plan = _plan(r, src, out_type, allow_requantize)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        tmp.touch()
    except OSError as e:
        raise ConvertError(f"{out_path}: cannot write: {e.strerror or e}") from e
    w = None
    try:
        w = gguf.GGUFWriter(str(tmp), r.fields["general.architecture"].contents())
        _copy_metadata(r, w, int(OUT_TYPES[out_type][1]))
        for t, qtype in plan:
            shape = tuple(int(d) for d in reversed(t.shape))
            w.add_tensor_info(
                t.name, byte_shape(shape, qtype), _STORED.get(qtype, np.dtype(np.uint8)), nbytes(shape, qtype),
                raw_dtype=qtype,
            )  # fmt: skip
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for t, qtype in plan:
            data = _encode(t, qtype)
            w.write_tensor_data(data)
            del data
        w.close()
        os.replace(tmp, out_path)
    except BaseException:
        if w is not None:
            w.close()
        tmp.unlink(missing_ok=True)
        raise
    return WriteResult(out_path, len(plan), out_path.stat().st_size, out_type, time.perf_counter() - t0, peak_rss_mb())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="input .gguf (F32, F16, BF16 or Q8_0; others need --allow-requantize)")
    p.add_argument("out", help="output .gguf")
    p.add_argument("--type", dest="type", required=True, choices=list(OUT_TYPES), help="the file type to write")
    p.add_argument(
        "--allow-requantize", action="store_true", help="also requantize tensors that are already below 8 bits"
    )


def run(args: argparse.Namespace) -> int:
    """Runs a parsed ``quantize`` command; one error line and exit code 1 on bad input."""
    return run_write(
        "looplm quantize", lambda: requantize(args.src, args.out, args.type, allow_requantize=args.allow_requantize)
    )
