"""``looplm chat``: a multi-turn conversation on the terminal or over a pipe.

On a terminal, lines are read with Python's readline (arrow keys, history of the session,
Ctrl-A/E, ...); with piped input each line is one user turn. Lines starting with ``/`` are
commands; an unknown one is refused, never sent to the model (``//`` sends a literal ``/``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from .sampling import SamplingParams
from .terminal import err, is_tty

COMMANDS = {
    "/help": "list these commands",
    "/reset": "forget the conversation (the --system message stays); also /clear",
    "/exit": "quit; also /quit and Ctrl-D",
}
ALIASES = {"/clear": "/reset", "/quit": "/exit", "/?": "/help"}


def help_text() -> str:
    lines = [f"  {name:<8} {what}" for name, what in COMMANDS.items()]
    lines.append("  //text    send a message that starts with '/'")
    return "commands:\n" + "\n".join(lines)


def _read_line(prompt: str) -> str | None:
    """The next line, None at the end of the input."""
    try:
        return input(prompt)
    except EOFError:
        return None


def _invalid_utf8(text: str) -> int | None:
    """The first byte that was not UTF-8 (read with surrogateescape), or None."""
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            return ord(ch) - 0xDC00
    return None


def _fit(model, history: list[dict[str, str]], keep: int, args: argparse.Namespace, render) -> str | None:
    """The prompt of ``history``, after dropping its oldest turns (never the first ``keep``
    messages: the system prompt) until it leaves room for a reply in the context; says so.
    None when even the newest message alone cannot fit (it is reported)."""
    n_ctx = model.n_ctx
    room = args.max_tokens if args.max_tokens is not None and args.max_tokens > 0 else n_ctx // 4
    room = min(room, n_ctx // 2)
    dropped = 0
    while True:
        prompt = render(history)
        n = len(model.tokenize(prompt, special=True))
        if n + room <= n_ctx or len(history) <= keep + 1:
            break
        del history[keep]  # the oldest user turn ...
        if len(history) > keep + 1 and history[keep]["role"] == "assistant":
            del history[keep]  # ... and its reply
        dropped += 1
    if dropped:
        err(
            f"looplm: the conversation outgrew the context ({n_ctx} tokens): dropped the oldest "
            f"{dropped} turn{'s' if dropped > 1 else ''}" + (", kept the system prompt" if keep else "")
        )
    if n >= n_ctx:
        err(f"looplm: that message takes {n} tokens, more than the context holds ({n_ctx}); not sent")
        return None
    return prompt


def chat(model, args: argparse.Namespace, sampling: SamplingParams) -> int:
    from .chat import render
    from .cli import generate_and_show
    from .usage import UserError

    if sys.stdin is None:
        raise UserError("standard input is closed")
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="surrogateescape")  # a stray byte is reported, not a crash
    interactive = is_tty(sys.stdin)
    if interactive:
        with contextlib.suppress(ImportError):  # a Python built without readline: plain input()
            import readline  # noqa: F401 - installs line editing and history for input()
        err("looplm chat: /help lists the commands, /exit or Ctrl-D quits.")
    base: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    history = list(base)
    while True:
        try:
            line = _read_line("> " if interactive else "")
        except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh line, not an exit
            err("")
            continue
        if line is None:
            break
        text = line.strip()
        if not text:
            continue
        bad = _invalid_utf8(text)
        if bad is not None:
            err(f"looplm: that line is not valid UTF-8 (byte 0x{bad:02x}); not sent")
            continue
        if text.startswith("/") and not text.startswith("//"):
            command = ALIASES.get(text.split()[0], text.split()[0])
            if command == "/exit":
                break
            if command == "/help":
                err(help_text())
            elif command == "/reset":
                history = list(base)
                err("looplm: conversation cleared")
            else:
                err(f"looplm: unknown command {text.split()[0]} (/help lists the commands; // sends a literal /)")
            continue
        if text.startswith("//"):
            text = text[1:]
        history.append({"role": "user", "content": text})
        prompt = _fit(model, history, len(base), args, lambda h: render(
            h, model.chat_template, enable_thinking=args.think, where=model.path))  # fmt: skip
        if prompt is None:
            history.pop()
            continue
        reply = generate_and_show(model, prompt, args, sampling, timing=False)
        history.append({"role": "assistant", "content": reply})
    return 0
