"""What the commands print while generating: the text (tokens coloured by their exit loop on
a terminal, with a legend), the timing line and the exit summary. One convention everywhere:
loops are numbered from 0, as ``--exit-at-step``, ``exit_steps`` and ``exit_step`` are.

Writes to a closed pipe (``looplm run ... | head``) raise :class:`OutputClosed`, which the
command line turns into a quiet end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from .generate import GenerationResponse

EXIT_COLORS = ["\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[31m"]  # exit loop 0, 1, 2, 3, 4 and above
RESET = "\x1b[0m"


class OutputClosed(Exception):
    """Standard output was closed by its reader (a broken pipe)."""


def write(stream: TextIO, text: str) -> None:
    """Writes and flushes; a closed pipe becomes OutputClosed."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError as e:
        raise OutputClosed from e


def color_of(step: int) -> str:
    return EXIT_COLORS[min(step, len(EXIT_COLORS) - 1)]


def legend(n_loops: int) -> str:
    """``exit loop: 0 1 2 3``, each number in its colour."""
    return "exit loop: " + " ".join(f"{color_of(s)}{s}{RESET}" for s in range(n_loops))


def stream_text(
    responses: Iterable[GenerationResponse], out: TextIO, *, color: bool
) -> Iterator[tuple[str, int | None, GenerationResponse]]:
    """Writes the generated text as it comes (coloured by exit loop when ``color``) and yields
    (text, exit loop or None, response) for each response."""
    for r in responses:
        if r.text:
            write(out, color_of(r.exit_step) + r.text + RESET if color and r.exit_step is not None else r.text)
        yield r.text, r.exit_step, r


def computed_loops(exits: list[int], n_loops: int, mode: str) -> float:
    """Mean loops computed per token: the exit loop + 1 in skip mode, every loop in exact mode."""
    if not exits:
        return 0.0
    return float(n_loops) if mode == "exact" else sum(e + 1 for e in exits) / len(exits)


def timing_line(last: GenerationResponse, exits: list[int], n_loops: int, mode: str) -> str:
    return (
        f"prompt {last.prompt_tokens} tokens, {last.prompt_tps:.1f} tok/s | generation "
        f"{last.generation_tokens} tokens, {last.generation_tps:.1f} tok/s | loops computed per token "
        f"{computed_loops(exits, n_loops, mode):.2f} of {n_loops}"
    )


def exit_summary(exits: list[int], n_loops: int, mode: str) -> str:
    """Share of tokens per exit loop (0-based), loops computed, and what the gate skips.

    In skip mode the loops after a token's exit loop are not computed; in exact mode every
    loop is computed and the exit loop only picks the logits, so nothing is saved there: the
    summary says how much skip mode would skip with the same exits.
    """
    if not exits:
        return "no tokens generated"
    shares = ", ".join(f"{s}: {exits.count(s) / len(exits):.0%}" for s in range(n_loops))
    depth = sum(e + 1 for e in exits) / len(exits)
    skipped = 1 - depth / n_loops
    if mode == "exact":
        tail = (
            f"loops computed per token {n_loops:.2f} of {n_loops} (exact mode: every loop runs; "
            f"skip mode would skip {skipped:.0%} with these exits)"
        )
    else:
        tail = f"loops computed per token {depth:.2f} of {n_loops} (skip mode: {skipped:.0%} of the loops skipped)"
    return f"exit loop (0-based): {shares} | {tail}"


def is_tty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed or detached
        return False


def err(text: str) -> None:
    """A line on stderr (ignored when stderr is gone)."""
    with contextlib.suppress(BrokenPipeError, ValueError, OSError):
        print(text, file=sys.stderr, flush=True)
