"""Hostile files, bad requests, threads and Ctrl-C (docs/robustness.md).

The corpus tests/bad_gguf/*.gguf is written by scripts/make_bad_ggufs.py; EXPECTED.json maps
each file to a substring its error message must contain. The whole corpus is loaded in one
subprocess under a 2 GB address-space limit and a timeout, so a crash, a hang or a runaway
allocation fails the tests instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import looplm
import numpy as np
import pytest

HERE = Path(__file__).parent
CORPUS = HERE / "bad_gguf"
EXPECTED: dict[str, str] = json.loads((CORPUS / "EXPECTED.json").read_text())
VALID = sorted((CORPUS / "valid").glob("*.gguf"))
LOOPLM = [sys.executable, "-m", "looplm.cli"]
BUSY = "this Model is in use by another thread"

# Runs in a fresh interpreter with RLIMIT_AS set before looplm is imported.
LOADER = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import looplm
from looplm import _core

def outcome(fn):
    try:
        fn()
        return ["ok", ""]
    except looplm.GGUFError as e:
        return ["GGUFError", str(e)]
    except BaseException as e:  # anything else is a finding
        return [type(e).__name__, str(e)]

out = {}
for path in sys.argv[2:]:
    r = {"model": outcome(lambda: looplm.Model(path, n_ctx=16, n_threads=1)),
         "file_info": outcome(lambda: _core.file_info(path, 64))}
    if r["model"][0] == "ok":
        def run():
            m = looplm.Model(path, n_ctx=16, n_threads=1)
            m.eval([0, m.n_vocab - 1, 1], all_logits=True)
            if m._m.vocab["has_tokenizer"]:
                looplm.generate(m, "ab a", max_tokens=4, temperature=0)
        r["run"] = outcome(run)
    out[path] = r
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def corpus_results() -> dict[str, dict]:
    paths = [str(CORPUS / name) for name in EXPECTED] + [str(p) for p in VALID]
    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-c", LOADER, str(2 << 30), *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, f"the corpus loader died (code {r.returncode}):\n{r.stderr[-3000:]}"
    assert time.time() - t0 < 60
    return json.loads(r.stdout)


def test_corpus_covers_the_issue():
    assert len(EXPECTED) >= 100
    assert {p.name for p in CORPUS.glob("*.gguf")} == set(EXPECTED)  # every file has an expectation
    assert max(p.stat().st_size for p in CORPUS.rglob("*.gguf")) <= 16 * 1024
    assert len(VALID) >= 4


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_gives_a_clear_gguf_error(corpus_results, name):
    path = str(CORPUS / name)
    kind, msg = corpus_results[path]["model"]
    assert kind == "GGUFError", (kind, msg)
    assert EXPECTED[name] in msg, msg
    assert msg.startswith(path + ": ") and "\n" not in msg, msg
    # file_info (looplm info) parses without the model checks: the same error, or success.
    kind, info_msg = corpus_results[path]["file_info"]
    assert kind in ("ok", "GGUFError"), (kind, info_msg)
    if kind == "GGUFError":
        assert info_msg == msg


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_seed_models_load_and_run(corpus_results, path):
    r = corpus_results[str(path)]
    assert r["model"] == ["ok", ""] and r["file_info"] == ["ok", ""] and r["run"] == ["ok", ""], r


def test_bad_gguf_error_is_a_value_error():
    assert issubclass(looplm.GGUFError, ValueError)
    with pytest.raises(ValueError, match="bad magic"):
        looplm.Model(CORPUS / "bad_magic.gguf")


def test_corpus_is_reproducible(tmp_path):
    """scripts/make_bad_ggufs.py regenerates exactly the committed corpus."""
    script = HERE.parent / "scripts" / "make_bad_ggufs.py"
    if not script.exists():
        pytest.skip("scripts/ is not next to the tests")
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    have = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".gguf", ".json"))
    assert made == have
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (CORPUS / rel).read_bytes(), rel


# ---------------------------------------------------------------- the command line


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LOOPLM, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("info", "bad_magic.gguf"),
        ("info", "trunc_in_string_array.gguf"),
        ("info", "tensors_overlap.gguf"),
        ("info", "key_not_ascii.gguf"),
        ("run", "arch_unsupported.gguf"),
        ("run", "tokens_fewer_than_rows.gguf"),
        ("run", "type_q3_k.gguf"),
        ("run", "offset_near_2_64.gguf"),
    ],
)
def test_cli_reports_one_line(command, name):
    path = str(CORPUS / name)
    args = ["-m", path] + (["-p", "hello", "-n", "2"] if command == "run" else [])
    r = cli(command, *args)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"looplm {command}: error: {path}: ") and EXPECTED[name] in lines[0], r.stderr


# ---------------------------------------------------------------- bad requests


@pytest.fixture(scope="module")
def tiny_f32(tiny_gguf):
    return tiny_gguf["f32"]


def test_eval_request_errors(tiny_f32):
    """What test_runtime.test_context_and_token_errors does not cover; the model stays usable."""
    m = looplm.Model(tiny_f32, n_ctx=8, n_threads=1)
    for bad, msg in [
        ([], "non-empty"),
        ([[1, 2]], "1-D"),
        ([1.0, 2.0], "integers"),
        (["a"], "integers"),
        ([2**40], "token id 1099511627776 is out of range"),
        ([-(2**40)], "out of range"),
        (np.array([3, 2**31], dtype=np.int64), "token id 2147483648 is out of range"),
    ]:
        with pytest.raises(ValueError, match=msg):
            m.eval(bad)
    m.eval([1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="context overflow: 5 tokens in the context"):
        m.eval([1, 2, 3, 4])
    assert m.n_past == 5 and m.tokens == [1, 2, 3, 4, 5]
    # A request that cannot fit fails before its logits are allocated (10^7 x n_vocab floats).
    with pytest.raises(ValueError, match="context overflow"):
        m.eval(np.zeros(10**7, dtype=np.int32), all_logits=True)
    with pytest.raises(ValueError, match="truncate"):
        m._m.truncate(6)
    with pytest.raises(ValueError, match="truncate"):
        m._m.truncate(-1)
    with pytest.raises(ValueError, match="no KV slot"):
        m.kv_slot(4, 0)
    assert m.eval([6, 7, 8]).shape == (m.n_vocab,) and m.n_past == 8


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"n_ctx": -5}, "n_ctx"),
        ({"n_ctx": 1.5}, "n_ctx"),
        ({"n_threads": 1.5}, "n_threads"),
        ({"n_threads": "2"}, "n_threads"),
        ({"loops": -1}, "loops"),
        ({"loops": 2.0}, "loops"),
        ({"n_batch": 0}, "n_batch"),
        ({"n_batch": -3}, "n_batch"),
        ({"n_ctx": 2**31}, "n_ctx"),
        ({"n_threads": 10**6}, "n_threads"),
        ({"n_batch": 2**63}, "n_batch"),
        ({"exit_threshold": -0.1}, "exit_threshold"),
        ({"exit_at_step": -1}, "exit_at_step"),
    ],
)
def test_bad_load_arguments(tiny_f32, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        looplm.Model(tiny_f32, **kwargs)


@pytest.mark.parametrize(
    ("opts", "msg"),
    [
        ({"loops": 5}, "loops=5 is outside 1..4"),
        ({"loops": 0}, "loops=0 is outside"),
        ({"exit_at_step": 4}, "exit_at_step"),
        ({"exit_threshold": float("nan")}, "exit_threshold"),
        ({"exit_mode": "fast"}, "exit_mode"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -7}, "top_k"),
        ({"min_p": float("inf")}, "min_p"),
        ({"repeat_penalty": 0.0}, "repeat_penalty"),
        ({"seed": -1}, "seed"),
        ({"max_tokens": 2.5}, "max_tokens"),
    ],
)
def test_bad_generation_options_leave_the_model_usable(tiny_f32, opts, msg):
    m = looplm.Model(tiny_f32, n_threads=1)
    before = (m.config["n_loops"], m.exit_policy)
    opts = {"max_tokens": 3, **opts}
    with pytest.raises(ValueError, match=msg):
        looplm.generate(m, "Hello", **opts)
    with pytest.raises(ValueError, match=msg):
        m.create_completion("Hello", **opts)
    assert (m.config["n_loops"], m.exit_policy) == before
    assert looplm.generate(m, "Hello", max_tokens=3, temperature=0) == looplm.generate(
        looplm.Model(tiny_f32, n_threads=1), "Hello", max_tokens=3, temperature=0
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-t", "-3"], "-t/--threads"),
        (["-t", "99999999999"], "-t/--threads"),
        (["-c", "99999999999999999999"], "-c/--ctx-size"),
        (["--loops", "65"], "--loops"),
        (["-c", "-1"], "-c/--ctx-size"),
        (["--exit-threshold", "nan"], "--exit-threshold"),
        (["--exit-threshold", "inf"], "--exit-threshold"),
        (["--top-k", "-5"], "--top-k"),
        (["--top-k", "99999999999999"], "--top-k"),
        (["--repeat-last-n", "99999999999999"], "--repeat-last-n"),
        (["--min-p", "2"], "--min-p"),
        (["-s", "99999999999999999999999"], None),
        (["-n", "99999999999999999999999"], "-n/--n-predict must be an integer"),
        (["-n", "-1", "-c", "32"], None),  # generates until the context is full
        (["--temp", "1e308"], "--temp must be a finite number"),
    ],
)
def test_cli_bad_request_values(tiny_f32, args, needle):
    """A usage error names the flag (exit 2); a value that is merely extreme still runs."""
    r = cli("run", "-m", str(tiny_f32), "-p", "x", "-n", "2", *args)
    if needle is None:
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        return
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


# ---------------------------------------------------------------- threads


def test_concurrent_evals_raise_or_succeed(tiny_f32):
    """Threads hammering one Model (three evaluating, one reading): every call either runs or
    raises the busy RuntimeError, and the context is exactly the successful evals, whole."""
    m = looplm.Model(tiny_f32, n_ctx=4096, n_threads=1, kv_type="f32")
    chunk, n_writers, calls = 64, 3, 8
    ok: list[int] = []
    busy: list[int] = []
    reads = {"ok": 0, "busy": 0}
    errors: list[BaseException] = []
    start = threading.Barrier(n_writers + 1)
    done = threading.Event()

    def writer(i: int) -> None:
        try:
            start.wait()
            for _ in range(calls):
                try:
                    m.eval([10 + i] * chunk)
                    ok.append(i)
                except RuntimeError as e:
                    assert str(e) == BUSY, e
                    busy.append(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader() -> None:
        try:
            start.wait()
            while not done.is_set():
                for get in (lambda: m.tokens, lambda: m.exit_steps, lambda: m.kv_bytes, lambda: m.exit_policy):
                    try:
                        get()
                        reads["ok"] += 1
                    except RuntimeError as e:
                        assert str(e) == BUSY, e
                        reads["busy"] += 1
                time.sleep(0.0002)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_writers)]
    r = threading.Thread(target=reader)
    for t in [*threads, r]:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    r.join(60)
    assert not errors, errors
    assert len(ok) + len(busy) == n_writers * calls
    # Which side sees the collision varies (a reader's claim can also block the writers).
    assert busy or reads["busy"], "no collision was provoked"
    assert m.n_past == chunk * len(ok)
    # Whole chunks of one thread's token each, in the order the evals succeeded.
    toks = m.tokens
    assert toks == [t for i in ok for t in [10 + i] * chunk] and len(m.exit_steps) == m.n_past
    # And the context computes what a fresh model computes for the same tokens.
    fresh = looplm.Model(tiny_f32, n_ctx=4096, n_threads=1, kv_type="f32")
    for j in range(0, len(toks), chunk):
        fresh.eval(toks[j : j + chunk])
    np.testing.assert_array_equal(m.eval([7]), fresh.eval([7]))


def test_concurrent_generate(tiny_f32):
    """Two threads generating on one model: each call completes or raises the busy error;
    afterwards the model generates what a fresh one does."""
    m = looplm.Model(tiny_f32, n_threads=1)
    expect = looplm.generate(looplm.Model(tiny_f32, n_threads=1), "The loop runs", max_tokens=8, temperature=0)
    outcomes: list[str] = []

    def worker() -> None:
        for _ in range(5):
            try:
                looplm.generate(m, "The loop runs", max_tokens=8, temperature=0)
                outcomes.append("ok")
            except RuntimeError as e:
                outcomes.append("busy" if str(e) == BUSY else repr(e))
            except BaseException as e:  # noqa: BLE001
                outcomes.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(outcomes) <= {"ok", "busy"}, outcomes
    assert looplm.generate(m, "The loop runs", max_tokens=8, temperature=0) == expect


# ---------------------------------------------------------------- Ctrl-C


def test_keyboard_interrupt_in_a_stream_leaves_the_model_usable(tiny_f32):
    """Ctrl-C lands in the consumer of stream_generate (with per-call options in force): the
    options are restored and the next generation equals a fresh model's."""
    m = looplm.Model(tiny_f32, kv_type="f32", n_threads=1)
    load_time = (m.config["n_loops"], m.exit_policy)
    expect = looplm.generate(
        looplm.Model(tiny_f32, kv_type="f32", n_threads=1), "Hello world", max_tokens=12, temperature=0
    )
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(
            looplm.stream_generate(m, "Hello world", max_tokens=100, temperature=0, loops=2, exit_threshold=0.3)
        ):
            if i == 4:
                raise KeyboardInterrupt
    assert (m.config["n_loops"], m.exit_policy) == load_time
    assert m.n_past > 0  # the interrupted conversation is still there ...
    assert looplm.generate(m, "Hello world", max_tokens=12, temperature=0) == expect  # ... and reused correctly


def test_prefix_is_reused_only_under_the_same_ouro_options(tiny_f32):
    """The KV of a context computed with other loops / exit policy is not what a fresh
    evaluation gives: prefill must not reuse it (it did, and the text then differed)."""
    fresh = looplm.generate(
        looplm.Model(tiny_f32, kv_type="f32", n_threads=1), "Hello world", max_tokens=10, temperature=0
    )
    m = looplm.Model(tiny_f32, kv_type="f32", n_threads=1)
    looplm.generate(m, "Hello world", max_tokens=3, temperature=0, loops=2, exit_threshold=0.3)
    assert looplm.generate(m, "Hello world", max_tokens=10, temperature=0) == fresh
    assert m.reused_prefix == 0
    n_prompt = len(m.tokenize("Hello world", special=True))
    assert looplm.generate(m, "Hello world", max_tokens=10, temperature=0) == fresh
    assert m.reused_prefix == n_prompt - 1  # same options: the prefix is reused


def test_ctrl_c_during_looplm_run():
    """SIGINT while `looplm run` streams: a clean exit, 'interrupted', no traceback."""
    model = CORPUS / "valid" / "ouro_nostop.gguf"  # no stop token: generates until stopped
    p = subprocess.Popen(
        [*LOOPLM, "run", "-m", str(model), "-p", "ab a", "-n", "-1", "-c", "200000", "-t", "1", "--temp", "0", "--raw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        got = b""
        end = time.time() + 60
        while len(got) < 50 and time.time() < end:
            if select.select([p.stdout], [], [], 0.5)[0]:
                got += os.read(p.stdout.fileno(), 4096)
        assert len(got) >= 50, "looplm run produced no output"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err_text = err.decode(errors="replace")
    assert p.returncode in (0, 130), (p.returncode, err_text)
    assert "interrupted" in err_text and "Traceback" not in err_text, err_text
