"""A small safetensors reader: header parsing, validation and per-tensor numpy memmaps.

The format is an 8-byte little-endian header length, a JSON header mapping tensor names to
``{"dtype", "shape", "data_offsets"}`` and the raw little-endian data. bf16 has no numpy
dtype, so bf16 tensors are read as uint16 bit patterns (:func:`to_float32` widens them).
Each :meth:`SafetensorsFile.load` maps just one tensor, so converting tensor by tensor keeps
resident memory near the largest tensor, not the checkpoint size.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from . import jsonfile
from .errors import ConvertError

# safetensors dtype -> (numpy dtype used to read it, bytes per element)
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bit patterns
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}

MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


class SafetensorsError(ConvertError):
    """A safetensors file that cannot be read; the message names the file and the fault."""


class TensorInfo:
    """Where one tensor lives in a safetensors file."""

    __slots__ = ("begin", "dtype", "end", "name", "path", "shape")

    def __init__(self, path: Path, name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int):
        self.path, self.name, self.dtype, self.shape = path, name, dtype, shape
        self.begin, self.end = begin, end


class SafetensorsFile:
    """One ``.safetensors`` file: validated header, tensors loaded on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise SafetensorsError(f"{self.path}: file too short for a safetensors header")
                (n,) = struct.unpack("<Q", head)
                if n > min(size - 8, MAX_HEADER):
                    raise SafetensorsError(
                        f"{self.path}: header length {n} runs past the end of the file ({size} bytes)"
                    )
                raw = f.read(n)
        except OSError as e:
            raise SafetensorsError(f"{self.path}: cannot read: {e.strerror or e}") from e
        header = jsonfile.parse(raw, f"{self.path}: header", SafetensorsError)
        if not isinstance(header, dict):
            raise SafetensorsError(f"{self.path}: header is not a JSON object")
        self.data_start = 8 + n
        data_size = size - self.data_start
        self.metadata = header.pop("__metadata__", None) or {}
        if not isinstance(self.metadata, dict):
            raise SafetensorsError(f"{self.path}: __metadata__ is not an object")
        self.tensors: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            self.tensors[name] = self._check_entry(name, entry, data_size)
        self._check_overlaps()

    def _check_overlaps(self) -> None:
        """Two tensors whose data share bytes: one of them is not what its name says."""
        spans = sorted((t.begin, t.end, t.name) for t in self.tensors.values() if t.end > t.begin)
        for (_, end_a, a), (begin_b, _, b) in zip(spans, spans[1:]):
            if begin_b < end_a:
                raise SafetensorsError(f"{self.path}: tensors '{a}' and '{b}' have overlapping data_offsets")

    def _check_entry(self, name: str, entry: object, data_size: int) -> TensorInfo:
        where = f"{self.path}: tensor '{name}'"
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{where}: header entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise SafetensorsError(f"{where}: unsupported dtype {_short(dtype)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise SafetensorsError(f"{where}: invalid shape {_short(shape)} (a list of non-negative integers)")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise SafetensorsError(f"{where}: invalid data_offsets {_short(offsets)} (two non-negative integers)")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise SafetensorsError(f"{where}: data [{begin}, {end}) lies outside the data section ({data_size} bytes)")
        expected = math.prod(shape) * DTYPES[dtype].itemsize
        if end - begin != expected:
            raise SafetensorsError(
                f"{where}: {end - begin} bytes of data, but dtype {dtype} and shape {shape} need {expected}"
            )
        return TensorInfo(self.path, name, dtype, tuple(shape), begin, end)

    def load(self, name: str) -> np.ndarray:
        """Maps one tensor read-only (bf16 as uint16 bit patterns)."""
        info = self.tensors[name]
        dt = DTYPES[info.dtype]
        if math.prod(info.shape) == 0:
            return np.zeros(info.shape, dt)
        return np.memmap(self.path, dtype=dt, mode="r", offset=self.data_start + info.begin, shape=info.shape)


def to_float32(a: np.ndarray, dtype: str) -> np.ndarray:
    """Widens a loaded tensor (or a slice of one) of safetensors dtype ``dtype`` to float32."""
    if dtype == "BF16":
        return (np.asarray(a, dtype=np.uint32) << 16).view(np.float32)
    return np.asarray(a, dtype=np.float32)


class Checkpoint:
    """All tensors of a HF checkpoint folder: one file or shards listed by an index."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        index = folder / "model.safetensors.index.json"
        single = folder / "model.safetensors"
        self.files: dict[Path, SafetensorsFile] = {}
        self.where: dict[str, TensorInfo] = {}
        if index.exists():
            data = jsonfile.load(index, SafetensorsError)
            weight_map = data.get("weight_map") if isinstance(data, dict) else None
            if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
                raise SafetensorsError(
                    f"{index}: not a valid safetensors index ('weight_map' must map tensor names to shard file names)"
                )
            for name, shard in weight_map.items():
                path = folder / shard
                if path not in self.files:
                    if not path.exists():
                        raise SafetensorsError(f"{index}: shard '{shard}' does not exist")
                    self.files[path] = SafetensorsFile(path)
                st = self.files[path]
                if name not in st.tensors:
                    raise SafetensorsError(f"{index}: tensor '{name}' is not in shard '{shard}'")
                self.where[name] = st.tensors[name]
        elif single.exists():
            st = SafetensorsFile(single)
            self.files[single] = st
            self.where = dict(st.tensors)
        else:
            shards = sorted(folder.glob("model-*.safetensors"))
            if not shards:
                raise SafetensorsError(
                    f"{folder}: no model.safetensors, model-*.safetensors or model.safetensors.index.json"
                )
            for path in shards:
                st = SafetensorsFile(path)
                self.files[path] = st
                for name, info in st.tensors.items():
                    if name in self.where:
                        raise SafetensorsError(f"{path}: tensor '{name}' appears in two shards")
                    self.where[name] = info

    def names(self) -> list[str]:
        return list(self.where)

    def info(self, name: str) -> TensorInfo:
        return self.where[name]

    def load(self, name: str) -> np.ndarray:
        info = self.where[name]
        return self.files[info.path].load(name)

    def load_float32(self, name: str) -> np.ndarray:
        """A float32 copy of one tensor (for small tensors and the reference)."""
        return to_float32(self.load(name), self.where[name].dtype)
