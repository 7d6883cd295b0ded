"""``looplm serve`` as a real process on 127.0.0.1, driven by the official openai client:
completions and chat, streaming and not, equal to a single-sequence run with the same seed;
logprobs against the model's own logits; models, health and metrics; the errors (bad JSON,
wrong types, n > 1, a prompt over the context, the API key); the full queue, a client that goes
away, SIGTERM."""

from __future__ import annotations

import json
import socket
import threading
import time

import looplm
import numpy as np
import openai
import pytest
from looplm.chat import render
from server_proc import Server

KEY = "sk-test-key"
N_CTX = 512
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def model_path(tiny_gguf):
    return tiny_gguf["f32"]


@pytest.fixture(scope="module")
def server(model_path):
    s = Server(model_path, "-np", "3", "-c", str(N_CTX), "--api-key", KEY, "-a", "tiny")
    yield s
    assert s.terminate() == 0, s.stderr


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, timeout=60, max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def local(model_path):
    return looplm.Model(model_path, n_ctx=N_CTX)


def reference(model: looplm.Model, prompt: str, **opts) -> tuple[str, str, int]:
    """(text, finish_reason, generated tokens) of the single-sequence loop."""
    parts, last = [], None
    for r in looplm.stream_generate(model, prompt, **opts):
        parts.append(r.text)
        last = r
    assert last is not None
    return "".join(parts), last.finish_reason, last.generation_tokens


def test_models_health_and_auth(server, client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert server.get("/health")[0] == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        status, body, _ = server.post("/v1/completions", {"prompt": "hi"}, headers)
        assert status == 401
        assert body["error"]["type"] == "authentication_error" and body["error"]["message"]
    with openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.completions.create(model="tiny", prompt="hi", max_tokens=2)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


@pytest.mark.parametrize("seed", [3, 11])
def test_completion_equals_single_sequence_run(client, local, seed):
    prompt = "The quick brown fox"
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0.9, top_p=0.9, seed=seed)
    text, finish, n = reference(local, prompt, max_tokens=24, temperature=0.9, top_p=0.9, seed=seed)
    c = out.choices[0]
    assert (c.text, c.finish_reason) == (text, finish)
    n_prompt = len(local.tokenize(prompt, special=True))
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (n_prompt, n)
    assert out.usage.total_tokens == n_prompt + n
    assert out.usage.model_extra["mean_loops"] == pytest.approx(4.0)  # threshold 1: every loop
    assert out.object == "text_completion" and out.model == "tiny"


def test_chat_equals_single_sequence_run_with_exits(client, local):
    extra = {"exit_threshold": 0.5, "top_k": 0}
    out = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=20, seed=5, extra_body=extra)
    prompt = render(CHAT, local.chat_template)
    text, finish, n = reference(local, prompt, max_tokens=20, seed=5, exit_threshold=0.5, top_k=0)
    c = out.choices[0]
    assert (c.message.role, c.message.content, c.finish_reason) == ("assistant", text, finish)
    assert out.usage.completion_tokens == n
    exits = local.exit_steps[-n:]  # the reference run's exit loops, in skip mode
    assert out.usage.model_extra["mean_loops"] == pytest.approx(np.mean(exits) + 1)
    assert out.usage.model_extra["mean_loops"] < 4.0


def test_streaming_completion_equals_whole(client, local):
    kw = {"model": "tiny", "prompt": "Once upon", "max_tokens": 30, "temperature": 0.7, "seed": 9}
    whole = client.completions.create(**kw)
    chunks = list(client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == whole.choices[0].text
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1])


def test_streaming_chat_and_done_marker(server, client):
    kw = {"model": "tiny", "messages": CHAT, "max_tokens": 12, "seed": 1, "stop": ["e"]}
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == whole.choices[0].message.content and "e" not in text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    # the raw stream: data lines, the last one [DONE]
    import urllib.request

    body = json.dumps({**kw, "stream": True}).encode()
    req = urllib.request.Request(server.url + "/v1/chat/completions", data=body,
                                 headers={"Authorization": f"Bearer {KEY}"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.read().decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_logprobs_are_the_models(client, local):
    prompt = "Hello there"
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=6, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    ids = local.tokenize(prompt, special=True)
    gen = [r.token for r in looplm.stream_generate(local, prompt, max_tokens=6, temperature=0) if r.token is not None]
    local.reset()
    logits = local.eval(ids + gen, all_logits=True)[len(ids) - 1 : -1].astype(np.float64)
    want = logits - logits.max(1, keepdims=True)
    want -= np.log(np.exp(want).sum(1, keepdims=True))
    assert len(gen) == 6 and lp.tokens == [local.token_bytes(t).decode("utf-8", "replace") for t in gen]
    np.testing.assert_allclose(lp.token_logprobs, want[np.arange(6), gen], rtol=0, atol=1e-4)
    for top, row in zip(lp.top_logprobs, want):
        best = np.sort(row)[::-1][:3]  # distinct tokens may share a text (a key of the dict)
        assert all(np.min(np.abs(best - v)) < 1e-4 for v in top.values())
    chat = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=4, logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens
    assert all(len(c.top_logprobs) == 2 and c.logprob <= 0 for c in content)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"prompt": "hi", "max_tokens": 1.5}, "max_tokens"),
        ({"prompt": "hi", "n": 2}, "n"),
        ({"prompt": "hi", "stream": "yes"}, "stream"),
        ({"prompt": "hi", "stop": [1]}, "stop"),
        ({"prompt": "hi", "loops": 9}, "loops"),
        ({"prompt": "hi", "exit_mode": "fast"}, "exit_mode"),
        ({"prompt": [999999]}, "prompt"),
        ({}, "prompt"),
    ],
)
def test_bad_fields_are_400_naming_the_field(server, body, param):
    status, out, _ = server.post("/v1/completions", body, {"Authorization": f"Bearer {KEY}"})
    assert status == 400, out
    err = out["error"]
    assert set(err) >= {"message", "type", "code"} and err["type"] == "invalid_request_error"
    assert param in err["message"]


def test_bad_json_and_bad_messages(server, client):
    auth = {"Authorization": f"Bearer {KEY}"}
    for raw in (b"{bad", b"[1, 2]", b"\xff"):
        status, out, _ = server.post("/v1/chat/completions", raw, auth)
        assert status == 400 and out["error"]["code"] in ("invalid_json",)
    status, out, _ = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, auth)
    assert status == 400 and "messages[0]" in out["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[{"role": "wizard", "content": "x"}])


def test_prompt_longer_than_the_context(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="word " * N_CTX, max_tokens=1)
    assert e.value.code == "context_length_exceeded"
    assert e.value.body["message"].startswith("the prompt has")


def test_metrics_count_what_was_served(server, client):
    before = server.metrics()
    client.completions.create(model="tiny", prompt="count me", max_tokens=5)
    after = server.metrics()
    key = 'looplm_requests_total{endpoint="completions",outcome="ok"}'
    assert after[key] == before.get(key, 0) + 1
    assert after["looplm_generated_tokens_total"] >= before["looplm_generated_tokens_total"] + 1
    assert after["looplm_exit_loop_count"] == after["looplm_generated_tokens_total"]
    assert after['looplm_exit_loop_bucket{le="+Inf"}'] == after["looplm_exit_loop_count"]
    assert 1.0 <= after["looplm_mean_loops_per_token"] <= 4.0
    for name in ("looplm_tokens_per_second", "looplm_queue_length", "looplm_slots_busy", "looplm_prompt_tokens_total"):
        assert name in after


# ---------------------------------------------------------------- load and faults


@pytest.fixture
def busy_server(model_path):
    """One slot and room for one waiting request."""
    s = Server(model_path, "-np", "1", "--queue-size", "1", "-c", "4096")
    yield s
    assert s.terminate() == 0, s.stderr


def open_stream(server: Server, max_tokens: int) -> socket.socket:
    """A raw streaming request; returns the socket once the first event arrived."""
    body = json.dumps({"prompt": "a long story", "max_tokens": max_tokens, "stream": True, "temperature": 0}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    got = b""
    while b"data: " not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    return sock


def test_full_queue_is_503_and_a_gone_client_frees_its_slot(busy_server):
    s = busy_server
    first = open_stream(s, 4000)  # holds the only slot
    waiting: dict = {}
    t = threading.Thread(target=lambda: waiting.update(r=s.post("/v1/completions", {"prompt": "q", "max_tokens": 3})))
    t.start()
    end = time.monotonic() + 30
    while s.metrics()["looplm_queue_length"] < 1 and time.monotonic() < end:
        time.sleep(0.02)
    status, body, headers = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert status == 503 and body["error"]["code"] == "queue_full"
    assert headers["Retry-After"] == "1"
    first.close()  # the client goes away mid-stream
    t.join(60)
    assert not t.is_alive()
    assert waiting["r"][0] == 200 and waiting["r"][1]["usage"]["completion_tokens"] == 3
    # The slot is released right after the last event is sent: the response may reach the
    # client a moment before the scheduler marks the slot free, so wait (bounded) for that.
    end = time.monotonic() + 10
    while (m := s.metrics())["looplm_slots_busy"] != 0 and time.monotonic() < end:
        time.sleep(0.02)
    assert m['looplm_requests_total{endpoint="completions",outcome="cancelled"}'] == 1
    assert m['looplm_requests_total{endpoint="completions",outcome="rejected"}'] == 1
    # the gone stream stopped where it was: far fewer than its 4000 tokens were generated
    assert m["looplm_generated_tokens_total"] < 4000 and m["looplm_slots_busy"] == 0


def test_sigterm_finishes_the_request_in_flight_and_exits_0(model_path):
    s = Server(model_path, "-np", "2")
    sock = open_stream(s, 300)
    got = b""
    s.proc.send_signal(__import__("signal").SIGTERM)
    sock.settimeout(30)
    while b"data: [DONE]" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert b'"finish_reason":"length"' in got and b"data: [DONE]" in got
    assert s.terminate() == 0, s.stderr
    assert "stopped" in s.stderr
