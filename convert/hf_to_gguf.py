"""HF Ouro checkpoint folder -> one GGUF file, tensor by tensor.

The output is written under a temporary name next to OUT and renamed at the end, so an
error, Ctrl-C, SIGTERM or SIGHUP leaves no partial file; an output that is one of the inputs
or not a regular file is refused (convert/output.py). Peak memory stays near one tensor (its memmap plus its
converted bytes), not the checkpoint size.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType

from . import ouro_arch as oa
from .errors import ConvertError
from .gguf_keys import write_exit_gate, write_hyperparameters
from .output import final_path, input_files, signals_unwind, sweep_stale, temp_path
from .quantize import OUT_TYPES, byte_shape, convert, nbytes, tensor_type
from .report import WriteResult, peak_rss_mb
from .safetensors import Checkpoint
from .tokenizer_export import add_to_gguf, load_vocab

FLOAT_DTYPES = ("F32", "F16", "BF16")
_STORED_DTYPE: dict[GGMLQuantizationType, np.dtype] = {
    gguf.GGMLQuantizationType.F32: np.dtype(np.float32),
    gguf.GGMLQuantizationType.F16: np.dtype(np.float16),
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class _Planned:
    hf: str
    gguf: str
    qtype: GGMLQuantizationType  # (the field `gguf` shadows the module inside this class)
    permute_heads: int  # > 0: permute q/k rows for this many heads


def resolve_source(src: str) -> Path:
    """A local folder, or a hub repo id downloaded with huggingface_hub where available."""
    path = Path(src).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ConvertError(f"{src}: not a folder (expected a HF model folder or hub repo id)")
    if not _REPO_ID.match(src):
        raise ConvertError(f"{src}: no such folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise ConvertError(
            f"{src}: no such folder, and huggingface_hub is not installed to fetch it as a hub "
            "repo id (pip install 'looplm[hub]')"
        ) from e
    try:
        patterns = ["*.json", "*.safetensors", "*.jinja"]
        return Path(snapshot_download(src, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: one clear line
        raise ConvertError(f"{src}: hub download failed: {e}") from e


def default_output(cfg: oa.OuroConfig, folder: Path, out_type: str) -> Path:
    name = Path(cfg.name_or_path).name if cfg.name_or_path else folder.resolve().name
    return Path(f"{name}-{out_type.upper()}.gguf")


def _check_sizes(cfg: oa.OuroConfig, ckpt: Checkpoint, folder: Path) -> None:
    """config.json's sizes against the tensors found, each mismatch named by its key."""
    where = folder / "config.json"
    names = set(ckpt.names())
    layers = {int(n.split(".")[2]) for n in names if n.startswith("model.layers.") and n.split(".")[2].isdigit()}
    if layers and max(layers) + 1 != cfg.num_hidden_layers:
        raise oa.ConfigError(
            f"{where}: num_hidden_layers = {cfg.num_hidden_layers}, but the checkpoint holds layers 0..{max(layers)}"
        )
    embed = "model.embed_tokens.weight"
    if embed in names and len(ckpt.info(embed).shape) == 2:
        rows, cols = ckpt.info(embed).shape
        if rows != cfg.vocab_size:
            raise oa.ConfigError(f"{where}: vocab_size = {cfg.vocab_size}, but '{embed}' has {rows} rows")
        if cols != cfg.hidden_size:
            raise oa.ConfigError(f"{where}: hidden_size = {cfg.hidden_size}, but '{embed}' has {cols} columns")
    if cfg.tie_word_embeddings and "lm_head.weight" in names:
        head, emb = ckpt.info("lm_head.weight"), ckpt.info(embed) if embed in names else None
        same = emb is not None and head.shape == emb.shape and head.dtype == emb.dtype
        if not same or not np.array_equal(ckpt.load("lm_head.weight"), ckpt.load(embed)):
            raise oa.ConfigError(
                f"{where}: tie_word_embeddings = true, but 'lm_head.weight' differs from '{embed}' "
                "(dropping it would change the model)"
            )


def _plan(cfg: oa.OuroConfig, ckpt: Checkpoint, out_type: str) -> list[_Planned]:
    expected = cfg.expected_shapes()
    names = set(ckpt.names())
    tied_head = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    unknown = sorted(names - set(expected) - tied_head)
    if unknown:
        more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise ConvertError(f"unexpected tensor(s) for Ouro: {', '.join(unknown[:5])}{more}")
    missing = [n for n in expected if n not in names]
    if missing:
        raise ConvertError(
            f"missing tensor '{missing[0]}'" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    plan = []
    for hf, shape in expected.items():
        info = ckpt.info(hf)
        if info.shape != shape:
            raise ConvertError(f"{info.path}: tensor '{hf}' has shape {list(info.shape)}, expected {list(shape)}")
        if info.dtype not in FLOAT_DTYPES:
            raise ConvertError(f"{info.path}: tensor '{hf}' has dtype {info.dtype}, expected F32, F16 or BF16")
        if hf in (oa.GATE_WEIGHT, oa.GATE_BIAS):
            continue
        heads = 0
        if hf.endswith("q_proj.weight"):
            heads = cfg.num_attention_heads
        elif hf.endswith("k_proj.weight"):
            heads = cfg.num_key_value_heads
        name = oa.gguf_name(hf)
        qtype = tensor_type(name, shape, out_type, cfg.num_hidden_layers, not cfg.tie_word_embeddings)
        plan.append(_Planned(hf, name, qtype, heads))
    return plan


def _write_metadata(w: gguf.GGUFWriter, cfg: oa.OuroConfig, ckpt: Checkpoint, folder: Path, file_type) -> None:
    name = Path(cfg.name_or_path).name if cfg.name_or_path else folder.resolve().name
    w.add_type("model")
    w.add_name(name)
    if _REPO_ID.match(cfg.name_or_path):
        w.add_source_repo_url(f"https://huggingface.co/{cfg.name_or_path}")
    w.add_file_type(int(file_type))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    write_hyperparameters(w, cfg, oa.ARCH)
    gate_w = ckpt.load_float32(oa.GATE_WEIGHT).reshape(-1)
    gate_b = ckpt.load_float32(oa.GATE_BIAS).reshape(-1)
    write_exit_gate(w, gate_w, gate_b, cfg.early_exit_threshold)


def _progress(i: int, n: int, name: str, done: int, total: int) -> None:
    sys.stderr.write(f"\r\x1b[K[{i:4d}/{n}] {done / 1e6:9.1f}/{total / 1e6:.1f} MB  {name}")
    sys.stderr.flush()


def convert_checkpoint(
    src: str | Path, out: str | Path | None = None, out_type: str = "f16", *, progress: bool | None = None
) -> WriteResult:
    """Converts a HF Ouro checkpoint to GGUF.

    Args:
        src: a local HF folder, or a hub repo id (needs huggingface_hub and network).
        out: the GGUF path; default ``<name>-<TYPE>.gguf`` in the current directory.
        out_type: one of f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, q4_k_s, q4_k_m, q5_k_m, q6_k
            (the last six with llama.cpp's mixture of types, docs/gguf-format.md).
        progress: show a per-tensor progress line; default: when stderr is a terminal.

    Returns:
        What was written, with the time taken and the peak resident memory.

    Raises:
        ConvertError: (or a ValueError subclass) naming the file, key or tensor at fault.
    """
    t0 = time.perf_counter()
    if out_type not in OUT_TYPES:
        raise ConvertError(f"--type {out_type!r}: choose one of {', '.join(OUT_TYPES)}")
    file_type = OUT_TYPES[out_type][1]
    folder = resolve_source(str(src))
    cfg = oa.OuroConfig.load(folder)
    ckpt = Checkpoint(folder)
    _check_sizes(cfg, ckpt, folder)
    plan = _plan(cfg, ckpt, out_type)
    vocab = load_vocab(folder, cfg.vocab_size)

    out_path = Path(out) if out is not None else default_output(cfg, folder, out_type)
    target = final_path(out_path, input_files(folder, list(ckpt.files)))
    sweep_stale(target.parent, target.name)
    with signals_unwind():
        _write(target, temp_path(target), cfg, ckpt, folder, plan, vocab, file_type, progress)
    return WriteResult(out_path, len(plan), target.stat().st_size, out_type, time.perf_counter() - t0, peak_rss_mb())


def _write(target: Path, tmp: Path, cfg, ckpt: Checkpoint, folder: Path, plan, vocab, file_type, progress) -> None:
    """Writes the GGUF to ``tmp`` and renames it to ``target``; removes ``tmp`` on any error,
    Ctrl-C or (under signals_unwind) SIGTERM / SIGHUP."""
    show = sys.stderr.isatty() if progress is None else progress
    total = sum(nbytes(ckpt.info(p.hf).shape, p.qtype) for p in plan)
    w = None
    try:
        w = gguf.GGUFWriter(str(tmp), oa.ARCH)
        _write_metadata(w, cfg, ckpt, folder, file_type)
        add_to_gguf(w, vocab)
        for p in plan:
            shape = ckpt.info(p.hf).shape
            w.add_tensor_info(
                p.gguf,
                byte_shape(shape, p.qtype),
                _STORED_DTYPE.get(p.qtype, np.dtype(np.uint8)),
                nbytes(shape, p.qtype),
                raw_dtype=p.qtype,
            )
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        done = 0
        for i, p in enumerate(plan, 1):
            info = ckpt.info(p.hf)
            src_arr = ckpt.load(p.hf)
            if p.permute_heads:
                src_arr = oa.permute_qk(src_arr, p.permute_heads)
            data = convert(src_arr, info.dtype, p.qtype)
            del src_arr  # unmaps the source tensor
            w.write_tensor_data(data)
            done += data.nbytes
            del data
            if show:
                _progress(i, len(plan), p.gguf, done, total)
        w.close()
        if show:
            sys.stderr.write("\n")
        os.replace(tmp, target)
    except BaseException as e:
        if w is not None:
            with contextlib.suppress(OSError):  # a full disk fails the close's flush too
                w.close()
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, ulimit -f (EFBIG), I/O error: name the file
            # numpy's tofile reports a short write as "N requested and M written", no errno
            why = e.strerror or ("a short write (disk full or file size limit)" if "written" in str(e) else e)
            raise ConvertError(f"{target}: cannot write: {why}; no output written") from e
        raise
