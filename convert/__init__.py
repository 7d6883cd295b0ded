"""looplm.convert: HuggingFace Ouro checkpoints -> GGUF (``looplm convert``).

Usage::

    looplm convert ByteDance/Ouro-1.4B-Thinking -o Ouro-1.4B-Thinking-Q4_0.gguf --type q4_0
    python -m looplm.convert ./Ouro-1.4B --type q8_0
"""

from __future__ import annotations

import argparse

from .hf_to_gguf import ConvertError, convert_checkpoint
from .quantize import OUT_TYPES
from .report import WriteResult, run_write

__all__ = ["ConvertError", "WriteResult", "add_arguments", "convert_checkpoint", "main", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="HF Ouro folder, or hub repo id (needs huggingface_hub)")
    p.add_argument(
        "-o", "--outfile", "--output", dest="outfile", default=None, help="output .gguf (default: <name>-<TYPE>.gguf)"
    )
    p.add_argument(
        "--type",
        "--outtype",
        dest="type",
        default="f16",
        choices=list(OUT_TYPES),
        help="type of the 2-D weights (norms stay f32; default f16)",
    )
    p.add_argument("--no-progress", action="store_true", help="never show the progress line")


def run(args: argparse.Namespace) -> int:
    """Runs a parsed ``convert`` command; one error line and exit code 1 on bad input."""
    progress = False if args.no_progress else None
    return run_write("looplm convert", lambda: convert_checkpoint(args.src, args.outfile, args.type, progress=progress))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m looplm.convert", description="HF Ouro checkpoint -> GGUF")
    add_arguments(p)
    return run(p.parse_args(argv))
