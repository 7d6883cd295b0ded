"""The looplm command driven as a user would: subprocesses, pipes and a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import looplm
import pytest
from looplm.chat import render

LOOPLM = [sys.executable, "-m", "looplm.cli"]


def run(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LOOPLM, *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_convert_then_run_round_trip(tiny_hf, tmp_path):
    out = tmp_path / "tiny.gguf"
    r = run("convert", str(tiny_hf), "-o", str(out), "--type", "q8_0")
    assert r.returncode == 0, r.stderr
    r = run("run", "-m", str(out), "-p", "Hello world", "-n", "12", "--temp", "0", "--ignore-chat-template")
    assert r.returncode == 0, r.stderr
    expect = looplm.generate(looplm.Model(out), "Hello world", max_tokens=12, temperature=0)
    assert r.stdout == expect + "\n"
    assert "generation" in r.stderr and "tok/s" in r.stderr and "mean loops/token 4.00" in r.stderr


def test_run_with_chat_template_and_show_exits(tiny_gguf):
    r = run(
        "run",
        "-m",
        str(tiny_gguf["q4_0"]),
        "-p",
        "Hi",
        "-n",
        "5",
        "--temp",
        "0",
        "--show-exits",
        "--exit-threshold",
        "0.5",
        "--system",
        "Be brief.",
    )
    assert r.returncode == 0, r.stderr
    assert "exits: loop 1:" in r.stderr and "loops saved" in r.stderr
    assert "\x1b[" not in r.stdout  # no colours when piped
    m = looplm.Model(tiny_gguf["q4_0"], exit_threshold=0.5)
    prompt = render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], m.chat_template)
    assert r.stdout == looplm.generate(m, prompt, max_tokens=5, temperature=0) + "\n"


def test_prompt_from_file_and_seed(tiny_gguf, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("The loop runs")
    a = run("run", "-m", str(tiny_gguf["q8_0"]), "-f", str(f), "-n", "8", "-s", "42", "--raw")
    b = run("run", "--model", str(tiny_gguf["q8_0"]), "--file", str(f), "--max-tokens", "8", "--seed", "42", "--raw")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout


def test_hf_folder_is_converted_once_into_the_cache(tiny_hf, tmp_path):
    env = {"LOOPLM_CACHE": str(tmp_path / "cache")}
    r = run("run", "-m", str(tiny_hf), "-p", "Hi", "-n", "3", "--temp", "0", "--type", "q4_0", env=env)
    assert r.returncode == 0, r.stderr
    assert "converting" in r.stderr
    cached = list((tmp_path / "cache").glob("*.gguf"))
    assert len(cached) == 1 and "Q4_0" in cached[0].name
    r2 = run("run", "-m", str(tiny_hf), "-p", "Hi", "-n", "3", "--temp", "0", "--type", "q4_0", env=env)
    assert r2.returncode == 0 and "converting" not in r2.stderr and r2.stdout == r.stdout


def test_info(tiny_gguf):
    r = run("info", "-m", str(tiny_gguf["q4_0"]))
    assert r.returncode == 0, r.stderr
    for needle in ("architecture:", "ouro", "num_loops:", "exit gate:", "yes", "Q4_0", "kernels:", looplm.kernels()):
        assert needle in r.stdout


def test_chat_with_piped_stdin(tiny_gguf):
    r = run("chat", "-m", str(tiny_gguf["q8_0"]), "-n", "4", "--temp", "0", stdin="Hello\nHow are you?\n")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) >= 2  # one reply line per turn


def test_chat_in_a_terminal(tiny_gguf):
    """Interactive chat through a pseudo-terminal: prompt, two turns, /reset, /exit."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execv(sys.executable, [*LOOPLM, "chat", "-m", str(tiny_gguf["q8_0"]), "-n", "4", "--temp", "0"])
    out = b""

    def read_until(needle: bytes, count: int, timeout: float = 60) -> None:
        """Reads until out holds `count` occurrences of needle."""
        nonlocal out
        end = time.time() + timeout
        while out.count(needle) < count and time.time() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        assert out.count(needle) >= count, out

    try:
        read_until(b"> ", 1)
        for i, line in enumerate((b"Hello\n", b"/reset\n", b"Again\n"), start=2):
            os.write(fd, line)
            read_until(b"> ", i)  # the next prompt: the turn is done
        assert b"conversation cleared" in out
        os.write(fd, b"/exit\n")
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "-m", "/nonexistent.gguf", "-p", "x"], "no such file"),
        (["run", "-m", "{tiny}"], "exactly one of -p"),
        (["run", "-m", "{tiny}", "-p", "x", "--temp", "-1"], "temperature"),
        (["run", "-m", "{tiny}", "-p", "x", "--top-p", "0"], "top_p"),
        (["run", "-m", "{tiny}", "-p", "x", "-c", "0"], "n_ctx"),
        (["run", "-m", "{tiny}", "-p", "x", "-t", "0"], "n_threads"),
        (["run", "-m", "{tiny}", "-p", "x", "--loops", "0"], "loops"),
        (["run", "-m", "{tiny}", "-p", "x", "--exit-at-step", "7"], "exit_at_step"),
        (["run", "-m", "{tiny}", "-f", "/nonexistent.txt"], "nonexistent.txt"),
        (["run", "-m", "{tiny}", "-p", "x" * 2000, "-c", "64"], "context holds 64"),
        (["info", "-m", "{notgguf}"], "not a GGUF file"),
    ],
)
def test_bad_arguments_give_one_line(tiny_gguf, tmp_path, args, needle):
    notgguf = tmp_path / "x.gguf"
    notgguf.write_bytes(b"not a gguf file at all, just text")
    args = [a.format(tiny=tiny_gguf["q8_0"], notgguf=notgguf) for a in args]
    r = run(*args)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_usage_errors_exit_2():
    assert run().returncode == 2
    assert run("run", "-p", "x").returncode == 2  # -m is required
    assert run("frobnicate").returncode == 2
