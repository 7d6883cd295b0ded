"""The command line behaving as llama.cpp's and mlx-lm's do: full help, every default shown,
flags named in errors, quiet on a closed pipe, no traceback on closed streams, chat commands,
colours with a legend on a terminal, --no-mmap / --mlock / --verbose."""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import subprocess
import sys
import time

import looplm
import numpy as np
import pytest
from looplm.chat import render
from looplm.cli import FLAGS, build_parser
from looplm.terminal import EXIT_COLORS

LOOPLM = [sys.executable, "-m", "looplm.cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LOOPLM, *args], input=stdin, check=False, capture_output=True, text=True, timeout=300)


def in_terminal(*args: str, timeout: float = 120) -> bytes:
    """Runs looplm with stdin, stdout and stderr on a pseudo-terminal; returns all it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execv(sys.executable, [*LOOPLM, *args])
    out, end = b"", time.time() + timeout
    try:
        while time.time() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0, out
    finally:
        os.close(fd)
    return out


def subparsers() -> dict[str, argparse.ArgumentParser]:
    p = build_parser()
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_no_arguments_prints_the_full_help():
    r = run()
    assert r.returncode == 0, r.stderr
    for command in ("demo", "convert", "run", "chat", "serve", "perplexity", "bench", "info"):
        assert f"    {command}" in r.stdout, r.stdout
    assert "looplm demo" in r.stdout and "usage: looplm" in r.stdout


@pytest.mark.parametrize("command", ["demo", "run", "chat", "serve", "perplexity", "bench", "info", "convert"])
def test_every_flag_has_help_and_every_default_is_shown(command):
    for a in subparsers()[command]._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        assert a.help, (command, a.option_strings or a.dest)
        if a.option_strings and a.nargs != 0 and a.default not in (None, argparse.SUPPRESS):
            assert "default" in a.help, (command, a.option_strings, a.help)


def test_help_tells_the_true_defaults():
    sub = subparsers()
    ctx = {name: next(a for a in sub[name]._actions if "-c" in a.option_strings) for name in ("run", "perplexity")}
    assert ctx["run"].default == 4096 and "default 4096" in ctx["run"].help
    assert ctx["perplexity"].default == 512 and "default 512" in ctx["perplexity"].help
    d = looplm.PRESETS["default"]
    helps = {a.option_strings[0]: a.help for a in sub["run"]._actions if a.option_strings}
    assert f"default {d.top_k}" in helps["--top-k"] and f"default {d.top_p:g}" in helps["--top-p"]
    assert f"default {d.min_p:g}" in helps["--min-p"] and f"default {d.penalty_last_n}" in helps["--repeat-last-n"]


def test_the_flag_table_names_real_flags_of_real_parameters():
    """FLAGS maps API parameter names to flags: each flag exists, each name is an API keyword."""
    import inspect

    flags = {s for a in subparsers()["run"]._actions for s in a.option_strings}
    for param, spelled in FLAGS.items():
        for flag in spelled.split("/"):
            assert flag in flags, (param, flag)
    keywords = set(inspect.signature(looplm.Model).parameters) | set(
        inspect.signature(looplm.stream_generate).parameters
    )
    assert set(FLAGS) <= keywords, set(FLAGS) - keywords


def test_closed_pipe_ends_quietly(make_gguf, tmp_path):
    """`looplm run ... | head -c 8`: generation stops when the reader goes, exit 0, nothing on stderr."""
    from looplm.checkpoint import random_weights, tiny_config
    from looplm.tiny_tokenizer import SPECIALS

    w = random_weights(tiny_config(), seed=4)
    w["lm_head.weight"][: len(SPECIALS)] = 0.0  # never a stop token: generation would go on
    path = make_gguf("q8_0", weights=w)
    cmd = " ".join([*LOOPLM, "run", "-m", str(path), "-p", "Hello", "--raw", "-n", "-1", "-c", "4096", "--temp", "0"])
    r = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {cmd} | head -c 8"], check=False, capture_output=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 8 and r.stderr == b"", r.stderr  # no "Broken pipe", no traceback, no timing line


@pytest.mark.parametrize(
    ("redirect", "args", "needle"),
    [
        (">&-", ["run", "-m", "{tiny}", "-p", "Hi", "-n", "2"], "standard output is closed"),
        ("<&-", ["chat", "-m", "{tiny}", "-n", "2"], "standard input is closed"),
        ("<&-", ["run", "-m", "{tiny}", "-f", "-", "-n", "2"], "standard input is closed"),
    ],
)
def test_closed_standard_streams_give_one_line(tiny_gguf, redirect, args, needle):
    cmd = " ".join([*LOOPLM, *(a.format(tiny=tiny_gguf["q8_0"]) for a in args)])
    r = subprocess.run(["bash", "-c", f"{cmd} {redirect}"], check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_prompt_from_standard_input(tiny_gguf):
    r = run("run", "-m", str(tiny_gguf["q8_0"]), "-f", "-", "--raw", "-n", "4", "--temp", "0", stdin="Hello world")
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout == looplm.generate(looplm.Model(tiny_gguf["q8_0"]), "Hello world", max_tokens=4, temperature=0) + "\n"
    )


def test_chat_commands(tiny_gguf):
    """/help lists the commands; an unknown /command is refused, not sent; // sends a literal /."""
    path = tiny_gguf["q8_0"]
    r = run("chat", "-m", str(path), "-n", "4", "--temp", "0", "--show-exits",
            stdin="/help\n/frobnicate now\n//etc\n/reset\nHello\n/exit\nnever sent\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    for command in ("/help", "/reset", "/exit"):
        assert f"  {command}" in r.stderr
    assert "unknown command /frobnicate" in r.stderr
    assert r.stderr.count("exit loop (0-based)") == 2  # --show-exits: a summary per reply
    m = looplm.Model(path)
    first = looplm.generate(m, render([{"role": "user", "content": "/etc"}], m.chat_template), max_tokens=4,
                            temperature=0)  # fmt: skip
    m.reset()
    second = looplm.generate(m, render([{"role": "user", "content": "Hello"}], m.chat_template), max_tokens=4,
                             temperature=0)  # fmt: skip
    assert r.stdout == f"{first}\n{second}\n"  # after /reset the history is empty again


def test_show_exits_colours_and_legend_on_a_terminal(tiny_gguf):
    out = in_terminal("run", "-m", str(tiny_gguf["q4_0"]), "-p", "Hi", "-n", "6", "--temp", "0",
                      "--exit-threshold", "0.5", "--show-exits")  # fmt: skip
    legend = "exit loop: " + " ".join(f"{EXIT_COLORS[s]}{s}\x1b[0m" for s in range(4))
    assert legend.encode() in out
    m = looplm.Model(tiny_gguf["q4_0"], exit_threshold=0.5)
    prompt = render([{"role": "user", "content": "Hi"}], m.chat_template)
    steps = [r.exit_step for r in looplm.stream_generate(m, prompt, max_tokens=6, temperature=0) if r.text]
    for step in steps:
        assert EXIT_COLORS[step].encode() in out


def test_chat_reads_lines_with_readline_on_a_terminal(tiny_gguf):
    """Line editing on a terminal: the left arrow and a typed character edit the line in place."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [*LOOPLM, "chat", "-m", str(tiny_gguf["q8_0"]), "-n", "3", "--temp", "0"])
    out = b""

    def read_until(needle: bytes, count: int) -> None:
        nonlocal out
        end = time.time() + 60
        while out.count(needle) < count and time.time() < end:
            if select.select([fd], [], [], 0.2)[0]:
                out += os.read(fd, 4096)
        assert out.count(needle) >= count, out

    try:
        read_until(b"> ", 1)
        os.write(fd, b"/hlp\x1b[D\x1b[De\n")  # "/hlp", two steps left, insert "e": "/help"
        read_until(b"commands:", 1)
        assert b"^[[D" not in out
        os.write(fd, b"/exit\n")
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
    finally:
        os.close(fd)


def test_no_mmap_mlock_and_verbose(tiny_gguf):
    path = tiny_gguf["q8_0"]
    base = run("run", "-m", str(path), "-p", "Hi", "-n", "6", "--temp", "0")
    r = run("run", "-m", str(path), "-p", "Hi", "-n", "6", "--temp", "0", "--no-mmap", "--mlock", "-v")
    assert base.returncode == r.returncode == 0, r.stderr
    assert r.stdout == base.stdout
    line = next(x for x in r.stderr.splitlines() if x.startswith("looplm: tiny-q8_0.gguf"))
    assert "read into memory" in line and f"kernels {looplm.kernels()}" in line and "looplm 0.1.0 (" in line
    assert ("mlocked" in line) != ("--mlock: mlock failed" in r.stderr)  # locked, or a warning saying why not


def test_no_mmap_in_the_api(tiny_gguf):
    mapped = looplm.Model(tiny_gguf["q4_0"], kv_type="f32")
    read = looplm.Model(tiny_gguf["q4_0"], kv_type="f32", use_mmap=False)
    assert mapped.config["mmap"] and not read.config["mmap"]
    np.testing.assert_array_equal(read.eval([5, 6, 7], all_logits=True), mapped.eval([5, 6, 7], all_logits=True))


def test_demo(tmp_path):
    """`looplm demo`: says the weights are random, runs with --show-exits, a mix of exit loops,
    both speeds; the model it converted is the one it names, and runs."""
    env = {**os.environ, "LOOPLM_CACHE": str(tmp_path)}
    r = subprocess.run([*LOOPLM, "demo", "-n", "24", "-t", "1"], check=False, capture_output=True, text=True,
                       timeout=300, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "RANDOM weights" in r.stdout and "gibberish" in r.stdout and "--show-exits" in r.stdout
    summary = next(x for x in r.stdout.splitlines() if x.startswith("looplm: exit loop (0-based): "))
    shares = [int(p) for _, p in re.findall(r"(\d): (\d+)%", summary.split(" | ")[0])]
    assert len(shares) == 4 and sum(s > 0 for s in shares) >= 3, summary  # tokens exit at different loops
    assert "all loops (--exit-threshold 1)        4.00 loops/token" in r.stdout
    assert "skip mode (--exit-threshold 0.8)" in r.stdout
    (gguf,) = (tmp_path / "demo").glob("*.gguf")
    assert str(gguf) in r.stdout and looplm.Model(gguf).config["n_loops"] == 4
