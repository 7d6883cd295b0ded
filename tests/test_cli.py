"""The looplm command driven as a user would: subprocesses, pipes and a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

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
    assert "generation" in r.stderr and "tok/s" in r.stderr and "loops computed per token 4.00 of 4" in r.stderr


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
    assert "\x1b[" not in r.stdout + r.stderr  # no colours when piped
    m = looplm.Model(tiny_gguf["q4_0"], exit_threshold=0.5)
    prompt = render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], m.chat_template)
    assert r.stdout == looplm.generate(m, prompt, max_tokens=5, temperature=0) + "\n"
    exits = m.exit_steps[-5:]  # the generated tokens' exit loops, 0-based as --exit-at-step counts
    shares = ", ".join(f"{s}: {exits.count(s) / 5:.0%}" for s in range(4))
    mean = sum(e + 1 for e in exits) / 5
    assert f"exit loop (0-based): {shares} | loops computed per token {mean:.2f} of 4 (skip mode:" in r.stderr


def test_show_exits_in_exact_mode_computes_every_loop(tiny_gguf):
    """Exact mode runs every loop: the summary says so, and what skip mode would skip apart."""
    r = run("run", "-m", str(tiny_gguf["q4_0"]), "-p", "Hi", "-n", "5", "--temp", "0", "--show-exits",
            "--exit-threshold", "0.5", "--exit-mode", "exact")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "loops computed per token 4.00 of 4 (exact mode: every loop runs; skip mode would skip" in r.stderr
    assert r.stderr.count("loops computed per token 4.00 of 4") == 2  # the timing line too


def test_prompt_from_file_and_seed(tiny_gguf, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("The loop runs")
    a = run("run", "-m", str(tiny_gguf["q8_0"]), "-f", str(f), "-n", "8", "-s", "42", "--raw")
    b = run("run", "--model", str(tiny_gguf["q8_0"]), "--file", str(f), "--max-tokens", "8", "--seed", "42", "--raw")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
    # The CLI samples as the API does with the same defaults (temperature 0.8, top-k 40, ...) and seed.
    m = looplm.Model(tiny_gguf["q8_0"])
    assert a.stdout == looplm.generate(m, "The loop runs", max_tokens=8, seed=42) + "\n"
    # ... and the seed matters: at temperature > 0 some other seed gives another text.
    others = {run("run", "-m", str(tiny_gguf["q8_0"]), "-f", str(f), "-n", "8", "-s", str(s), "--raw").stdout
              for s in (1, 2, 3)}  # fmt: skip
    assert others - {a.stdout}, "three other seeds all gave the seed-42 text"
    for s in (1, 2, 3):
        assert looplm.generate(m, "The loop runs", max_tokens=8, seed=s) + "\n" in others


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
    assert "runs in looplm:           yes" in r.stdout
    assert f"build:                    looplm {looplm.__version__} (" in r.stdout


def test_info_on_a_file_looplm_cannot_run(tmp_path):
    """A tensor type without kernels: info says which tensors and types, and exits 1."""
    bad = Path(__file__).parent / "bad_gguf" / "type_q3_k.gguf"
    r = run("info", "-m", str(bad))
    assert r.returncode == 1, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("runs in looplm:"))
    assert "no: tensor types looplm cannot run: Q3_K (1 tensor: blk.0.ffn_down.weight)" in line
    assert "Q3_K" in r.stderr and "Traceback" not in r.stderr
    # another reason: the loader's own verdict, in one line
    r = run("info", "-m", str(Path(__file__).parent / "bad_gguf" / "arch_unsupported.gguf"))
    assert r.returncode == 1 and "runs in looplm:           no: architecture" in r.stdout, r.stdout


def test_chat_with_piped_stdin(tiny_gguf):
    r = run("chat", "-m", str(tiny_gguf["q8_0"]), "-n", "4", "--temp", "0", stdin="Hello\nHow are you?\n")
    assert r.returncode == 0, r.stderr
    # Each turn's reply is what the API generates for the rendered conversation so far.
    m = looplm.Model(tiny_gguf["q8_0"])
    history: list[dict[str, str]] = []
    expect = ""
    for text in ("Hello", "How are you?"):
        history.append({"role": "user", "content": text})
        reply = looplm.generate(m, render(history, m.chat_template), max_tokens=4, temperature=0)
        history.append({"role": "assistant", "content": reply})
        expect += reply + "\n"
    assert r.stdout == expect


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
        (["run", "-m", "{tiny}"], "exactly one of -p/--prompt or -f/--file"),
        (["run", "-m", "{tiny}", "-p", "x", "--temp", "-1"], "--temp must be >= 0"),
        (["run", "-m", "{tiny}", "-p", "x", "--top-p", "0"], "--top-p must be > 0"),
        (["run", "-m", "{tiny}", "-p", "x", "-c", "-1"], "-c/--ctx-size must be"),
        (["run", "-m", "{tiny}", "-p", "x", "-t", "0"], "-t/--threads must be"),
        (["run", "-m", "{tiny}", "-p", "x", "-b", "0"], "-b/--batch-size must be"),
        (["run", "-m", "{tiny}", "-p", "x", "--loops", "0"], "--loops must be"),
        (["run", "-m", "{tiny}", "-p", "x", "--exit-at-step", "7"], "--exit-at-step must be"),
        (["run", "-m", "{tiny}", "-p", "x", "--exit-threshold", "1.5"], "--exit-threshold must be a number in 0..1"),
        (["run", "-m", "{tiny}", "-p", "x", "--repeat-last-n", "-2"], "--repeat-last-n must be"),
        (["run", "-m", "{tiny}", "-p", "x", "-s", "-3"], "-s/--seed must be"),
        (["run", "-m", "{tiny}", "-p", "x", "--type", "q4_0"], "--type applies to HF checkpoints"),
        (["chat", "-m", "{tiny}", "--min-p", "2"], "--min-p must be <= 1"),
        (["perplexity", "-m", "{tiny}", "-f", "{notgguf}", "--chunks", "0"], "--chunks must be >= 1"),
        (["bench", "-m", "{tiny}", "-r", "0"], "-r/--repetitions must be >= 1"),
        (["bench", "-m", "{tiny}", "-p", "100000000"], "longer than the model's context length"),
        (["bench", "-m", "{tiny}", "--batch", "0"], "--batch takes stream counts in 1..256"),
        (["serve", "-m", "{tiny}", "-np", "0"], "-np/--parallel must be"),
        (["serve", "-m", "{tiny}", "--port", "70000"], "--port must be in 0..65535"),
        (["serve", "-m", "{tiny}", "--queue-size", "-1"], "--queue-size must be"),
        (["demo", "--exit-threshold", "1"], "--exit-threshold must be in 0..1, below 1"),
    ],
)
def test_usage_errors_name_the_flag_and_exit_2(tiny_gguf, tmp_path, args, needle):
    notgguf = tmp_path / "x.txt"
    notgguf.write_text("some text")
    r = run(*[a.format(tiny=tiny_gguf["q8_0"], notgguf=notgguf) for a in args])
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"looplm {args[0]}: error: ")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "-m", "/nonexistent.gguf", "-p", "x"], "/nonexistent.gguf: no such file"),
        (["run", "-m", "models/ouro.gguf", "-p", "x"], "models/ouro.gguf: no such file"),  # never a hub id
        (["info", "-m", "models/ouro.gguf"], "models/ouro.gguf: no such file"),
        (["serve", "-m", "/nonexistent.gguf"], "/nonexistent.gguf: no such file"),
        (["run", "-m", "{tiny}", "-f", "/nonexistent.txt"], "/nonexistent.txt: No such file"),
        (["run", "-m", "{tiny}", "-f", "{binary}"], "not UTF-8 text"),
        (["run", "-m", "{tiny}", "-p", "x" * 2000, "-c", "64"], "context holds 64"),
        (["info", "-m", "{notgguf}"], "not a GGUF file"),
    ],
)
def test_errors_give_one_line_and_exit_1(tiny_gguf, tmp_path, args, needle):
    notgguf = tmp_path / "x.gguf"
    notgguf.write_bytes(b"not a gguf file at all, just text")
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"caf\xe9")
    args = [a.format(tiny=tiny_gguf["q8_0"], notgguf=notgguf, binary=binary) for a in args]
    r = run(*args)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert "hub" not in r.stderr


def test_argparse_usage_errors_exit_2():
    assert run("run", "-p", "x").returncode == 2  # -m is required
    assert run("frobnicate").returncode == 2
    assert run("run", "-m", "x.gguf", "-c", "many").returncode == 2
