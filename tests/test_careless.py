"""Careless input (issue 18, items 8 and 9): each case one line naming the flag, keyword or
file and the cause; closing a model releases its mapping; `looplm chat` survives a
conversation longer than its context and a line that is not UTF-8."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import looplm
import pytest

LOOPLM = [sys.executable, "-m", "looplm.cli"]


@pytest.fixture(scope="module")
def tiny_f32(tiny_gguf):
    return tiny_gguf["f32"]


def cli(*args: str | bytes, input: bytes | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LOOPLM, *args], input=input, capture_output=True, check=False, timeout=120, **kw)


def one_line(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.decode(errors="replace")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- the API


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda m: looplm.generate(m, "x", max_tokens=2, loops=2**31), "loops must be an integer"),
        (lambda m: looplm.generate(m, "x", max_tokens=2, loops=1.5), "loops must be an integer"),
        (lambda m: looplm.generate(m, "x", max_tokens=2, top_k=2**31), "top_k must be an integer"),
        (lambda m: looplm.generate(m, "x", max_tokens=-7), "max_tokens must be an integer in -1.."),
        (lambda m: m.detokenize([2**31]), "token id 2147483648 is out of range"),
        (lambda m: m.detokenize([True]), "token id True is out of range"),
        (lambda m: m.token_type(2**31), "token id 2147483648 is out of range"),
        (lambda m: m.token_type(-1), "token id -1 is out of range"),
        (lambda m: m.token_bytes(2**40), "token id 1099511627776 is out of range"),
        (lambda m: m.tokenize(5), "text must be a str or bytes, got int"),
        (lambda m: m.tokenize(None), "text must be a str or bytes, got NoneType"),
        (lambda m: looplm.Model(m.path, kv_type=None), "kv_type must be a string"),
    ],
)
def test_api_errors_name_the_keyword(tiny_f32, call, needle):
    m = looplm.Model(tiny_f32, n_threads=1)
    with pytest.raises(ValueError) as e:
        call(m)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_model_of_a_directory(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: not a regular file"):
        looplm.Model(tmp_path)


def test_bytes_are_text(tiny_f32):
    """generate(m, b"hello") is generate(m, "hello") (its bytes used to be token ids)."""
    m = looplm.Model(tiny_f32, n_threads=1)
    text = looplm.generate(m, "hello", max_tokens=6, temperature=0)
    assert looplm.generate(m, b"hello", max_tokens=6, temperature=0) == text
    assert m.create_completion(b"hello", max_tokens=6, temperature=0)["choices"][0]["text"] == text
    assert m.tokenize(bytearray(b"hello")) == m.tokenize("hello")


def _mapped(path: Path) -> bool:
    with open("/proc/self/maps") as f:
        return any(line.rstrip().endswith(str(Path(path).resolve())) for line in f)


def test_close_and_context_manager_release_the_mapping(tiny_f32, tmp_path):
    path = tmp_path / "closing.gguf"
    path.write_bytes(Path(tiny_f32).read_bytes())
    with looplm.load(path, n_threads=1) as m:
        m.eval([1, 2, 3])
        assert _mapped(path) and not m.closed
    assert m.closed and not _mapped(path)
    with pytest.raises(ValueError, match=f"{path}: the model is closed"):
        m.eval([1])
    with pytest.raises(ValueError, match="closed"):
        looplm.generate(m, "x", max_tokens=2)
    m.close()  # twice: harmless
    assert "closed" in repr(m)
    m2 = looplm.Model(path, n_threads=1)
    assert _mapped(path)
    m2.close()
    gc.collect()
    assert not _mapped(path)


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["--top-k", "3000000000"], "--top-k", 2),
        (["--repeat-last-n", "3000000000"], "--repeat-last-n", 2),
        (["-n", "-7"], "-n/--n-predict", 2),
        (["--temp", "1e39"], "--temp", 2),
    ],
)
def test_cli_flag_errors(tiny_f32, args, needle, code):
    r = cli("run", "-m", str(tiny_f32), "-p", "x", *args)
    line = one_line(r)
    assert r.returncode == code and needle in line, line


def test_cli_perplexity_context_too_small(tiny_f32, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 50)
    r = cli("perplexity", "-m", str(tiny_f32), "-f", str(text), "-c", "3")
    line = one_line(r)
    assert r.returncode == 2 and "-c/--ctx-size" in line and "4..3" not in line, line


def test_cli_invalid_utf8_prompt(tiny_f32, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff world")
    r = cli("run", "-m", str(tiny_f32), "-f", str(bad), "-n", "2")
    line = one_line(r)
    assert r.returncode == 1 and str(bad) in line and "UTF-8" in line, line
    r = cli("run", "-m", str(tiny_f32), "-p", b"hello \xff world", "-n", "2")
    line = one_line(r)
    assert r.returncode == 2 and "-p/--prompt" in line and "UTF-8" in line, line


def test_cli_non_utf8_file_name(tiny_f32, tmp_path):
    name = os.fsencode(tmp_path) + b"/m\xfe.gguf"
    missing = cli("run", "-m", name, "-p", "x", "-n", "2")
    assert missing.returncode == 1 and "no such file" in one_line(missing)
    Path(os.fsdecode(name)).write_bytes(Path(tiny_f32).read_bytes())
    r = cli("run", "-m", name, "-p", "x", "-n", "2", "--temp", "0")
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr


def test_cli_empty_folder(tmp_path):
    r = cli("run", "-m", str(tmp_path), "-p", "x")
    line = one_line(r)
    assert r.returncode == 1 and f"{tmp_path}: a folder without config.json" in line and "converting" not in line


def test_cli_chat_with_standard_output_closed(tiny_f32):
    """(Standard input closed: tests/test_cli_behaviour.py.)"""
    cmd = " ".join([*LOOPLM, "chat", "-m", str(tiny_f32), "-n", "2"])
    r = subprocess.run(["bash", "-c", f"echo hi | {cmd} >&-"], capture_output=True, timeout=60, check=False)
    assert r.returncode == 1 and one_line(r).endswith("standard output is closed")


# ---------------------------------------------------------------- looplm chat


def test_chat_outgrowing_the_context_drops_the_oldest_turns(tiny_f32):
    """Twelve turns into a 96-token context: the session goes on, dropping the oldest turns
    (never the system prompt), and says so."""
    lines = "".join(f"tell me about the loop number {i} please\n" for i in range(12)).encode()
    r = cli("chat", "-m", str(tiny_f32), "-c", "96", "-n", "8", "--temp", "0", "--system", "Be brief.", input=lines)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0 and "Traceback" not in err, err
    assert "outgrew the context (96 tokens): dropped the oldest" in err and "kept the system prompt" in err, err
    assert r.stdout.count(b"\n") >= 12  # a reply (maybe empty) to every turn


def test_chat_message_longer_than_the_context_is_skipped(tiny_f32):
    lines = b"word " * 200 + b"\nhello\n"
    r = cli("chat", "-m", str(tiny_f32), "-c", "64", "-n", "4", "--temp", "0", input=lines)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0 and "more than the context holds (64); not sent" in err and "Traceback" not in err, err


def test_chat_invalid_utf8_line_is_reported_and_the_session_goes_on(tiny_f32):
    r = cli("chat", "-m", str(tiny_f32), "-n", "4", "--temp", "0", input=b"caf\xe9 bad\nhello\n")
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0 and "that line is not valid UTF-8 (byte 0xe9); not sent" in err, err
    assert r.stdout.strip(), "no reply to the second line"
