"""Memory you can see (looplm.kv_memory): the bytes-per-token formula against the runtime's
cache, the largest context, `looplm info` / `run --verbose`, and -c 0 (the trained context)."""

from __future__ import annotations

import re

import looplm
import pytest
from looplm import kv_memory
from test_cli import run


@pytest.mark.parametrize("share", ["none", "last"])
@pytest.mark.parametrize(("tk", "tv"), [("f16", "f16"), ("f32", "q8_0"), ("q8_0", "q8_0"), ("q4_0", "f16")])
def test_formula_equals_runtime(make_gguf, share, tk, tv):
    path = make_gguf("f32", seed=5, config={"head_dim": 32})
    m = looplm.Model(path, type_k=tk, type_v=tv, kv_share=share, n_ctx=256)
    c = m.config
    per = kv_memory.kv_bytes_per_token(c["n_layer"], c["max_loops"], c["n_head_kv"] * c["head_dim"], tk, tv, share)
    assert per == m.kv_bytes_per_token
    m.eval(list(range(64)))  # two whole pages of history
    chunk = c["kv_chunk_bytes_per_token"] * 8 if share == "last" else 0
    assert m.kv_bytes == 64 * per + chunk


def test_ouro_figures():
    """The figures of docs/kv-cache.md and docs/raspberry-pi.md: Ouro-1.4B, kv_dim 2048."""
    assert kv_memory.kv_bytes_per_token(24, 4, 2048) == 786432  # 0.75 MiB
    assert kv_memory.kv_bytes_per_token(24, 4, 2048, kv_share="last") == 196608
    last_q8 = kv_memory.kv_bytes_per_token(24, 4, 2048, "q8_0", "q8_0", "last")
    assert last_q8 == 24 * 2 * 2176 and last_q8 / 786432 < 0.14
    assert kv_memory.max_context(8 << 30, 1 << 30, 786432) == (7 << 30) // 786432
    assert kv_memory.max_context(1 << 30, 2 << 30, 100) == 0


def test_memory_summary(tiny_gguf):
    m = looplm.Model(tiny_gguf["f32"], kv_share="last")
    line = m.memory_summary(available=1 << 30)
    per = m.kv_bytes_per_token
    fit = ((1 << 30) - m.config["file_size"]) // per
    assert f"{per} bytes per token" in line and f"at most {fit} positions (trained context 512)" in line


def test_ctx_zero_is_the_trained_context(tiny_gguf):
    assert looplm.Model(tiny_gguf["f32"], n_ctx=0).n_ctx == 512


def test_info_and_verbose_print_kv_memory(tiny_gguf):
    r = run("info", "-m", str(tiny_gguf["q4_0"]), "--kv-share", "last", "-ctk", "f32")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("kv cache:"))
    per = kv_memory.kv_bytes_per_token(2, 4, 64, "f32", "f16", "last")
    assert f"KV f32/f16, kv_share last: {per} bytes per token" in line
    assert re.search(r"at most \d+ positions \(trained context 512\)", line), line
    r = run("run", "-m", str(tiny_gguf["q4_0"]), "-p", "Hello", "-n", "2", "--temp", "0", "-v", "-c", "0")
    assert r.returncode == 0, r.stderr
    assert "n_ctx 512" in r.stderr
    assert f"KV f16/f16, kv_share none: {kv_memory.kv_bytes_per_token(2, 4, 64)} bytes per token" in r.stderr
