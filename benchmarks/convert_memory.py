"""Peak resident memory of `looplm convert` on a full-size (Ouro-1.4B-shaped) checkpoint.

Writes a random bf16 checkpoint of the exact 1.4B shape (2.8 GB, into --workdir, deleted
afterwards unless --keep), converts it to each requested type in a fresh process and reports
that process's peak RSS against the checkpoint size and the largest tensor.

    python benchmarks/convert_memory.py --types q4_0 q8_0 f16
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from looplm import synthetic


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="ouro-1.4b", choices=list(synthetic.SHAPES))
    p.add_argument("--types", nargs="+", default=["q4_0", "q8_0", "f16"])
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(dir=args.workdir, prefix="looplm-convmem-"))
    try:
        t0 = time.perf_counter()
        ckpt = synthetic.write_hf_checkpoint(work / "hf", args.shape)
        (ckpt / "tokenizer.json").write_text(_tokenizer_json())
        size = (ckpt / "model.safetensors").stat().st_size
        largest = max(
            2 * n[0] * (n[1] if len(n) > 1 else 1) for _, n in synthetic.hf_tensors(synthetic.config(args.shape))
        )
        print(
            f"checkpoint: {args.shape}, {size / 1e9:.2f} GB bf16, largest tensor {largest / 1e6:.0f} MB "
            f"(written in {time.perf_counter() - t0:.0f} s)"
        )
        print("| type | output | time | peak RSS | peak RSS / checkpoint |")
        print("|---|---|---|---|---|")
        for t in args.types:
            out = work / f"out-{t}.gguf"
            t1 = time.perf_counter()
            r = subprocess.run(
                [sys.executable, "-m", "looplm.convert", str(ckpt), "-o", str(out), "--type", t, "--no-progress"],
                check=True,
                capture_output=True,
                text=True,
            )
            dt = time.perf_counter() - t1
            # the converter's summary line reports its own peak RSS (getrusage)
            peak = float(re.search(r"peak memory (\d+) MB", r.stderr).group(1)) * 1e6
            print(f"| {t} | {out.stat().st_size / 1e9:.2f} GB | {dt:.0f} s | {peak / 1e6:.0f} MB | {peak / size:.1%} |")
            out.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _tokenizer_json() -> str:
    """A minimal SmolLM2-structured tokenizer.json (256 byte symbols, specials, no merges)."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import ouro_fixtures as fx

    tj = fx.tokenizer_json(n_merges=0)
    return json.dumps(tj)


if __name__ == "__main__":
    sys.exit(main())
