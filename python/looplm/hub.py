"""Model sources: a GGUF path as is; an HF Ouro folder or hub repo id converted once into a
cache (``$LOOPLM_CACHE``, else ``$XDG_CACHE_HOME/looplm``, else ``~/.cache/looplm``), keyed by
the source and the quantization type, and reused afterwards. A conversion into the cache sweeps
the temporary files that killed conversions (their process gone) left there."""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from pathlib import Path

DEFAULT_TYPE = "q8_0"


def cache_dir() -> Path:
    if os.environ.get("LOOPLM_CACHE"):
        return Path(os.environ["LOOPLM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "looplm"


def _folder_key(folder: Path) -> str:
    """Identity of a local checkpoint: its path and the size and mtime of its files."""
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(folder.iterdir()):
        if f.suffix in (".json", ".safetensors") and f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def resolve_model(source: str, out_type: str | None = None, *, quiet: bool = False) -> str:
    """Returns a GGUF path for ``source``: itself if it is a file, else a cached conversion.

    Args:
        source: a .gguf file, an HF Ouro checkpoint folder, or a hub repo id.
        out_type: quantization when converting (default q8_0).
        quiet: no message about converting.

    Raises:
        FileNotFoundError: nothing at ``source``, and it cannot be a hub repo id (a name
            ending in ``.gguf`` never is).
        ConvertError: the checkpoint cannot be downloaded or converted.
    """
    path = Path(source).expanduser()
    if path.is_file():
        if out_type is not None:
            raise ValueError(f"{source}: a quantization type applies to HF checkpoints, not to a GGUF file")
        return str(path)
    is_repo_id = source.count("/") == 1 and not source.startswith((".", "/", "~")) and not source.endswith(".gguf")
    if not path.exists() and not is_repo_id:
        what = "no such file" if source.endswith(".gguf") else "no such file, folder or hub repo id"
        raise FileNotFoundError(errno.ENOENT, what, source)
    from looplm.convert import ConvertError, convert_checkpoint
    from looplm.convert.hf_to_gguf import resolve_source
    from looplm.convert.output import sweep_stale

    if path.is_dir() and not (path / "config.json").is_file():
        raise ConvertError(f"{source}: a folder without config.json is neither a GGUF file nor a HF checkpoint")

    out_type = out_type or DEFAULT_TYPE
    folder = resolve_source(source)  # downloads a hub repo id (huggingface_hub) when needed
    key = _folder_key(folder)
    out = cache_dir() / f"{folder.resolve().name}-{out_type.upper()}-{key}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(out.parent)  # temporary files of conversions killed before they could clean up
        if not quiet:
            print(f"looplm: converting {source} to {out_type} (cached in {out.parent}) ...", file=sys.stderr)
        convert_checkpoint(folder, out, out_type)
    return str(out)
