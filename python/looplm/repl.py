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


def chat(model, args: argparse.Namespace, sampling: SamplingParams) -> int:
    from .chat import render
    from .cli import generate_and_show
    from .usage import UserError

    if sys.stdin is None:
        raise UserError("standard input is closed")
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")  # a stray byte in piped input is no crash
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
        prompt = render(history, model.chat_template, enable_thinking=args.think, where=model.path)
        reply = generate_and_show(model, prompt, args, sampling, timing=False)
        history.append({"role": "assistant", "content": reply})
    return 0
