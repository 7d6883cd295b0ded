"""A bounded load test of ``looplm serve``: 16 openai clients x 8 requests at once against 4
slots, mixed prompt and answer lengths, chat and completions, streaming or not, some with early
exits, some cancelled mid-stream. Every request completes with exactly the single-sequence
run's tokens for its seed, or (the cancelled ones) ends without an answer; the server counts
each once and is idle afterwards. Hard timeouts on every request and on the whole run."""

from __future__ import annotations

import concurrent.futures as cf

import looplm
import openai
import pytest
from looplm.chat import render
from server_proc import Server

CLIENTS, PER_CLIENT = 16, 8
N_CTX, N_BATCH = 1024, 32
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "birds", "sing"]


def plan(i: int, j: int) -> dict:
    k = i * PER_CLIENT + j
    prompt = " ".join(WORDS[(k + n) % len(WORDS)] for n in range(1 + (k * 37) % 150))  # 1..150 words
    return {
        "kind": "chat" if k % 3 == 0 else "completion",
        "prompt": prompt,
        "stream": k % 2 == 1 or k % 7 == 3,
        "cancel": k % 7 == 3,  # streaming, closed after two chunks
        "max_tokens": 300 if k % 7 == 3 else (1, 4, 9, 17, 33)[k % 5],
        "seed": 1000 + k,
        "temperature": (0.0, 0.7, 1.0)[k % 3],
        "extra": {"exit_threshold": 0.6} if k % 4 == 0 else {},
    }


def ask(client: openai.OpenAI, p: dict) -> tuple[str, str, int] | str:
    """(text, finish_reason, completion tokens) of a request, or "cancelled"."""
    kw = {"model": "tiny", "max_tokens": p["max_tokens"], "seed": p["seed"], "temperature": p["temperature"],
          "extra_body": p["extra"]}  # fmt: skip
    if p["kind"] == "chat":
        call, kw["messages"] = client.chat.completions.create, [{"role": "user", "content": p["prompt"]}]
    else:
        call, kw["prompt"] = client.completions.create, p["prompt"]
    if not p["stream"]:
        out = call(**kw)
        c = out.choices[0]
        return (c.message.content if p["kind"] == "chat" else c.text), c.finish_reason, out.usage.completion_tokens
    parts, finish, n = [], None, None
    with call(**kw, stream=True, stream_options={"include_usage": True}) as stream:
        for i, ch in enumerate(stream):
            if p["cancel"] and i == 2:
                return "cancelled"  # leaving the block closes the connection
            if ch.choices:
                c = ch.choices[0]
                parts.append((c.delta.content or "") if p["kind"] == "chat" else c.text)
                finish = c.finish_reason or finish
            if ch.usage is not None:
                n = ch.usage.completion_tokens
    return "".join(parts), finish, n


def reference(model: looplm.Model, p: dict) -> tuple[str, str, int]:
    prompt = (
        render([{"role": "user", "content": p["prompt"]}], model.chat_template) if p["kind"] == "chat" else p["prompt"]
    )
    parts, last = [], None
    opts = {"max_tokens": p["max_tokens"], "seed": p["seed"], "temperature": p["temperature"], **p["extra"]}
    for r in looplm.stream_generate(model, prompt, **opts):
        parts.append(r.text)
        last = r
    return "".join(parts), last.finish_reason, last.generation_tokens


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["batch", "slots"])
def test_sixteen_clients_get_their_single_sequence_answers(tiny_gguf, engine):
    path = tiny_gguf["f32"]
    plans = [[plan(i, j) for j in range(PER_CLIENT)] for i in range(CLIENTS)]
    s = Server(path, "-np", "4", "-c", str(N_CTX), "-b", str(N_BATCH), "--queue-size", "64", "-a", "tiny",
               "--engine", engine)  # fmt: skip
    try:
        with openai.OpenAI(base_url=s.url + "/v1", api_key="x", timeout=60, max_retries=0) as client:

            def run_client(ps: list[dict]) -> list:
                return [ask(client, p) for p in ps]

            with cf.ThreadPoolExecutor(CLIENTS) as pool:
                futures = [pool.submit(run_client, ps) for ps in plans]
                results = [f.result(timeout=300) for f in futures]
        m = s.metrics()
    finally:
        code = s.terminate()
    assert code == 0, s.stderr

    local = looplm.Model(path, n_ctx=N_CTX, n_batch=N_BATCH)
    n_cancelled = n_ok = 0
    for ps, rs in zip(plans, results):
        for p, r in zip(ps, rs):
            if p["cancel"]:
                assert r == "cancelled"
                n_cancelled += 1
                continue
            assert r == reference(local, p), p
            n_ok += 1
    counted = {k: v for k, v in m.items() if k.startswith("looplm_requests_total")}
    ok = sum(v for k, v in counted.items() if 'outcome="ok"' in k)
    cancelled = sum(v for k, v in counted.items() if 'outcome="cancelled"' in k)
    assert n_cancelled > 0 and (ok, cancelled) == (n_ok, n_cancelled)
    assert sum(counted.values()) == CLIENTS * PER_CLIENT  # each request counted once: none lost, none twice
    assert m["looplm_slots_busy"] == 0 and m["looplm_queue_length"] == 0
