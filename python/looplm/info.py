"""``looplm info``: what a model file holds, whether looplm can run it, and the build and
kernels that would. Exits 1 when the file cannot run (naming the tensors and types at fault)."""

from __future__ import annotations

import argparse
import sys

from . import _core
from .terminal import err, write

KEYS = (
    "block_count",
    "num_loops",
    "embedding_length",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "context_length",
    "rope.freq_base",
)


def unrunnable(info: dict) -> list[tuple[str, list[str]]]:
    """(type, tensor names) for every tensor type of the file that looplm has no kernels for."""
    out: dict[str, list[str]] = {}
    for name, t, _shape, _, _ in info["tensors"]:
        if not info["runnable"][t]:
            out.setdefault(t, []).append(name)
    return sorted(out.items())


def runnable_verdict(path: str, info: dict) -> str | None:
    """None if looplm can run the file, else why not (one line)."""
    bad = unrunnable(info)
    if bad:
        parts = []
        for t, names in bad:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            parts.append(f"{t} ({len(names)} tensor{'s' if len(names) > 1 else ''}: {shown})")
        return "no: tensor types looplm cannot run: " + "; ".join(parts) + " (docs/gguf-format.md lists those it runs)"
    try:  # everything else the loader checks: architecture, keys, shapes, tokenizer
        _core.Model(path, 8, 1, 0, "f16", "", 1)
    except _core.GGUFError as e:
        return f"no: {str(e).removeprefix(path + ': ')}"
    return None


def kv_row(md: dict, arch: str, file_size: int, args: argparse.Namespace) -> str:
    """KV bytes per token for the flags' cache settings and the largest context that fits."""
    from . import kv_memory

    try:
        n_head = int(md[f"{arch}.attention.head_count"])
        head_dim = int(md.get(f"{arch}.attention.key_length", int(md[f"{arch}.embedding_length"]) // n_head))
        kv_dim = int(md.get(f"{arch}.attention.head_count_kv", n_head)) * head_dim
        n_layer, loops = int(md[f"{arch}.block_count"]), int(md.get(f"{arch}.num_loops", 1))
        n_ctx_train = int(md[f"{arch}.context_length"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return "unknown (the file lacks the attention keys)"
    return kv_memory.describe(
        n_layer=n_layer, loops=loops, kv_dim=kv_dim, type_k=args.type_k or args.kv_type,
        type_v=args.type_v or args.kv_type, kv_share=args.kv_share, weights=file_size, n_ctx_train=n_ctx_train,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import looplm

    from .hub import resolve_model

    path = resolve_model(args.model, None)
    info = _core.file_info(path, 64)
    md = info["metadata"]
    arch = md.get("general.architecture", "?")
    rows = [
        ("file", f"{path} ({info['file_size'] / 1e6:.1f} MB, GGUF v{info['version']})"),
        ("name", md.get("general.name", "?")),
        ("architecture", arch),
    ]
    rows += [(key, md[f"{arch}.{key}"]) for key in KEYS if f"{arch}.{key}" in md]
    gate = "ouro.exit_gate.bias" in md
    threshold = f", threshold {md['ouro.exit_gate.threshold']}" if "ouro.exit_gate.threshold" in md else ""
    rows.append(
        (
            "exit gate",
            ("yes" + threshold)
            if gate
            else "absent (as in llama.cpp-made files): runs all its loops, --exit-threshold cannot apply",
        )
    )
    types: dict[str, int] = {}
    for _, t, _shape, _, nbytes in info["tensors"]:
        types[t] = types.get(t, 0) + nbytes
    rows.append(
        ("tensor types", ", ".join(f"{t} {b / 1e6:.1f} MB" for t, b in sorted(types.items(), key=lambda x: -x[1])))
    )
    template = "yes" if md.get("tokenizer.chat_template") else "no"
    tok = f"{md.get('tokenizer.ggml.model', 'none')} / {md.get('tokenizer.ggml.pre', '-')}, chat template {template}"
    rows.append(("tokenizer", tok))
    rows.append(("kv cache", kv_row(md, arch, info["file_size"], args)))
    verdict = runnable_verdict(path, info)
    rows.append(("runs in looplm", verdict or "yes"))
    rows.append(("build", looplm.build_info()))
    rows.append(("cpu features", looplm.cpu_features() or "(none detected)"))
    rows.append(("kernels", f"{looplm.kernels()} (available: {', '.join(looplm.kernels_available())})"))
    rows.append(("threads", f"{_core.physical_cores()} (physical cores)"))
    write(sys.stdout, "".join(f"{label + ':':<25} {value}\n" for label, value in rows))
    if verdict:
        err(f"looplm info: error: {path}: looplm cannot run this file ({verdict.removeprefix('no: ')})")
        return 1
    return 0
