"""What the KV cache costs and how long a context fits (docs/kv-cache.md, docs/raspberry-pi.md).

The formulas, in bytes, for ``kv_dim = n_head_kv * head_dim`` elements per row:

- a row: f32 ``4 kv_dim``, f16 ``2 kv_dim``, q8_0 ``34 kv_dim / 32``, q4_0 ``18 kv_dim / 32``;
- per position: ``slots * (row_k + row_v)`` with ``slots = loops * n_layer`` (kv_share none)
  or ``n_layer`` (kv_share last);
- while a chunk (a prompt) is evaluated in the shared mode, its positions cost the per-loop
  amount on top, until the chunk is done;
- the largest context: ``(available memory - model file) / per position``, the weights
  counted whole since a mapped model is read in full every token.
"""

from __future__ import annotations

import os

ROW_BYTES_PER_32 = {"f32": 128, "f16": 64, "q8_0": 34, "q4_0": 18}


def row_bytes(kv_type: str, kv_dim: int) -> int:
    """Bytes of one key or value row of kv_dim elements."""
    return ROW_BYTES_PER_32[kv_type] * kv_dim // 32  # exact: the quantized types need kv_dim % 32 == 0


def kv_bytes_per_token(
    n_layer: int, loops: int, kv_dim: int, type_k: str = "f16", type_v: str = "f16", kv_share: str = "none"
) -> int:
    """Bytes one evaluated position keeps in the KV cache."""
    slots = n_layer * (1 if kv_share == "last" else loops)
    return slots * (row_bytes(type_k, kv_dim) + row_bytes(type_v, kv_dim))


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def max_context(available: int, weights: int, per_token: int) -> int:
    """Positions that fit in `available` bytes next to `weights` bytes of model (>= 0; 0 for a
    file whose KV would take no bytes, e.g. zero layers, which the loader refuses anyway)."""
    if per_token <= 0:
        return 0
    return max(0, (available - weights) // per_token)


def describe(
    *,
    n_layer: int,
    loops: int,
    kv_dim: int,
    type_k: str,
    type_v: str,
    kv_share: str,
    weights: int,
    n_ctx_train: int,
    available: int | None = None,
) -> str:
    """One line: bytes per position for these settings and the largest context in memory."""
    per = kv_bytes_per_token(n_layer, loops, kv_dim, type_k, type_v, kv_share)
    text = f"KV {type_k}/{type_v}, kv_share {kv_share}: {per} bytes per token ({per / 2**20:.3f} MiB)"
    if kv_share == "last":
        chunk = kv_bytes_per_token(n_layer, loops, kv_dim, type_k, type_v, "none")
        text += f", {chunk} per prompt token while it is prefilled"
    avail = available_bytes() if available is None else available
    if avail is None:
        return text + "; available memory unknown"
    fit = max_context(avail, weights, per)
    return (
        text + f"; {avail / 2**30:.1f} GiB available, {weights / 2**30:.2f} GiB of weights -> "
        f"at most {fit} positions (trained context {n_ctx_train})"
    )
