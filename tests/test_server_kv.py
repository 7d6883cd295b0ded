"""``looplm serve`` with the cache load options of ``looplm run`` (``--kv-share``, ``-ctk``,
``-ctv``): concurrent requests, their prompts fed in parts of ``-b`` tokens among the others'
decoding, some with early exits, each answered with exactly the tokens of a single-sequence
run under the same cache settings, by both engines."""

from __future__ import annotations

import concurrent.futures as cf

import looplm
import openai
import pytest
from server_proc import Server

N_CTX, N_BATCH = 256, 4
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "birds", "sing"]
CACHES = [
    [],
    ["--kv-share", "last", "-ctk", "q8_0", "-ctv", "q4_0"],
    ["--kv-share", "last"],
    ["-ctk", "q4_0", "-ctv", "q8_0"],
]


@pytest.fixture(scope="module")
def hd32(make_gguf):
    """Head size 32 (quantized KV blocks fit) and a gate that exits tokens at different loops."""
    return make_gguf("f32", seed=2, gate_scale=6.0, gate_bias=-1.0, config={"head_dim": 32})


def requests() -> list[dict]:
    out = []
    for k in range(8):
        out.append({
            "prompt": " ".join(WORDS[(k + n) % len(WORDS)] for n in range(1 + (k * 7) % 23)),  # 1..23 words
            "max_tokens": (3, 8, 14)[k % 3],
            "seed": 50 + k,
            "temperature": (0.0, 0.8)[k % 2],
            "extra": {"exit_threshold": 0.5} if k % 2 else {},
        })  # fmt: skip
    return out


def cache_kw(flags: list[str]) -> dict:
    names = {"--kv-share": "kv_share", "-ctk": "type_k", "-ctv": "type_v"}
    return {names[flags[i]]: flags[i + 1] for i in range(0, len(flags), 2)}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["batch", "slots"])
@pytest.mark.parametrize("flags", CACHES, ids=lambda f: "-".join(x.strip("-") for x in f))
def test_cache_options_give_single_sequence_answers(hd32, engine, flags):
    reqs = requests()
    s = Server(hd32, "-np", "3", "-c", str(N_CTX), "-b", str(N_BATCH), "-a", "tiny", "--engine", engine, *flags)
    try:
        with openai.OpenAI(base_url=s.url + "/v1", api_key="x", timeout=60, max_retries=0) as client:

            def ask(p: dict) -> tuple[str, str, int]:
                out = client.completions.create(model="tiny", prompt=p["prompt"], max_tokens=p["max_tokens"],
                                                seed=p["seed"], temperature=p["temperature"],
                                                extra_body=p["extra"])  # fmt: skip
                c = out.choices[0]
                return c.text, c.finish_reason, out.usage.completion_tokens

            with cf.ThreadPoolExecutor(len(reqs)) as pool:
                got = [f.result(timeout=120) for f in [pool.submit(ask, p) for p in reqs]]
    finally:
        code = s.terminate()
    assert code == 0, s.stderr

    local = looplm.Model(hd32, n_ctx=N_CTX, n_batch=N_BATCH, **cache_kw(flags))
    for p, g in zip(reqs, got):
        opts = {"max_tokens": p["max_tokens"], "seed": p["seed"], "temperature": p["temperature"], **p["extra"]}
        local.reset()  # a fresh prefill: the shared mode's reuse keeps what earlier calls made
        parts, last = [], None
        for r in looplm.stream_generate(local, p["prompt"], **opts):
            parts.append(r.text)
            last = r
        assert g == ("".join(parts), last.finish_reason, last.generation_tokens), p


def test_bad_cache_option_is_refused_before_listening(hd32, tiny_gguf):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "looplm.cli", "serve", "-m", str(tiny_gguf["f32"]), "--port", "0", "-ctk", "q8_0"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0
    assert "multiple of 32" in r.stderr
