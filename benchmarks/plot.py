"""Plots for docs/benchmarks.md from the JSON written by compare_llamacpp.py and exit_speed.py.

Needs matplotlib (a development tool only, not a looplm dependency):

    python benchmarks/plot.py --compare compare.json --exit exit.json --out docs/img
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def finish_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_threads(rows: list[dict], out: Path) -> None:
    """Tokens/s against threads, both engines, one panel per test (tg, pp)."""
    tests = sorted({r["test"] for r in rows}, key=lambda s: not s.startswith("tg"))
    fig, axes = plt.subplots(1, len(tests), figsize=(5 * len(tests), 3.8))
    for ax, test in zip(axes if len(tests) > 1 else [axes], tests):
        for q, colour in zip(sorted({r["type"] for r in rows}), ("tab:blue", "tab:orange", "tab:green")):
            sel = sorted((r for r in rows if r["test"] == test and r["type"] == q), key=lambda r: r["threads"])
            th = [r["threads"] for r in sel]
            ax.plot(th, [r["looplm_nanbeige"] for r in sel], "o-", color=colour, label=f"looplm {q}")
            ax.plot(th, [r["llama_cpp"] for r in sel], "s--", color=colour, alpha=0.6, label=f"llama.cpp {q}")
        ax.set_xticks(sorted({r["threads"] for r in rows}))
        finish_axes(ax, f"{test}, Ouro-1.4B shape, 4 loops", "threads", "tokens/s")
    save(fig, out)


def plot_loops(exit_data: dict, out: Path) -> None:
    """Decode tokens/s against mean loops per token (threshold sweep), with the 1/loops line."""
    sweep = sorted(exit_data["sweep"], key=lambda r: r["mean_loops"])
    loops = [r["mean_loops"] for r in sweep]
    base = sum(r["base_tps"] for r in sweep) / len(sweep)  # the all-loops runs made beside each point
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.errorbar(loops, [r["tps"] for r in sweep], yerr=[r["sd"] for r in sweep], fmt="o-", label="looplm skip mode")
    ideal = [base * 4 / x for x in loops]
    ax.plot(loops, ideal, ":", color="grey", label="all-loops speed, scaled by 1 / loops")
    for r in sweep:
        ax.annotate(f"{r['threshold']:g}", (r["mean_loops"], r["tps"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)  # fmt: skip
    title = f"early exit, {exit_data['type']}, {exit_data['threads']} threads (labels: threshold)"
    finish_axes(ax, title, "mean loops per generated token", "tg tokens/s")
    save(fig, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", type=Path, required=True)
    ap.add_argument("--exit", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plot_threads(json.loads(args.compare.read_text())["rows"], args.out / "bench-threads.png")
    plot_loops(json.loads(args.exit.read_text()), args.out / "bench-loops.png")
    print(f"wrote {args.out / 'bench-threads.png'} and {args.out / 'bench-loops.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
