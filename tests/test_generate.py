"""Generation APIs: mlx-lm's generate/stream_generate, llama-cpp-python's completions,
stop strings, UTF-8 safety, chat templates."""

from __future__ import annotations

import looplm
import ouro_fixtures as fx
import pytest
from looplm.chat import THINK_PREFIX, render
from looplm.generate import TextStream


@pytest.fixture
def tiny(tiny_gguf):
    return looplm.Model(tiny_gguf["q8_0"], n_ctx=256)


# ---------------------------------------------------------------- TextStream


def feed(pieces: list[bytes], stops: list[str]) -> tuple[list[str], str, bool]:
    ts = TextStream(stops)
    out = [ts.push(p) for p in pieces]
    return out, ts.finish(), ts.stopped


def test_utf8_is_never_split():
    e, emoji = "é".encode(), "😀".encode()
    out, tail, _ = feed([b"a", e[:1], e[1:], emoji[:1], emoji[1:3], emoji[3:], b"z"], [])
    assert out == ["a", "", "é", "", "", "😀", "z"] and tail == ""


def test_incomplete_utf8_at_the_end_is_flushed_as_replacement():
    out, tail, _ = feed([b"ok", "😀".encode()[:2]], [])
    assert out == ["ok", ""] and tail == "\ufffd"


def test_stop_string_across_pieces_is_never_emitted():
    out, tail, stopped = feed([b"Hello ", b"wor", b"ld! </", b"st", b"op> more"], ["</stop>"])
    assert "".join(out) == "Hello world! " and stopped and tail == ""
    assert out == ["Hello ", "wor", "ld! ", "", ""]


def test_held_prefix_released_when_no_stop_follows():
    out, tail, stopped = feed([b"a </", b"b"], ["</stop>"])
    assert out == ["a ", "</b"] and not stopped
    out, tail, stopped = feed([b"a </st"], ["</stop>"])
    assert out == ["a "] and tail == "</st" and not stopped


def test_first_of_several_stops():
    out, _, stopped = feed([b"one two three"], ["three", "two"])
    assert out == ["one "] and stopped


# ---------------------------------------------------------------- chat templates


def test_chatml_and_thinking():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = render(msgs)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render(msgs, enable_thinking=True) == text + THINK_PREFIX
    assert render(msgs, fx.CHATML) == text  # the fixture's template is ChatML too


def test_template_that_handles_thinking_itself():
    tpl = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if enable_thinking %}<T>{% endif %}"
    assert render([{"role": "user", "content": "x"}], tpl, enable_thinking=True) == "[user]x<T>"


def test_smollm_template_adds_its_system_prompt(smollm):
    text = render([{"role": "user", "content": "Hi"}], smollm.chat_template)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("bad", [[], [{"role": "user"}], [{"role": "robot", "content": "x"}], "hi"])
def test_bad_messages(bad):
    with pytest.raises(ValueError, match="messages"):
        render(bad)


def test_template_errors_are_clear():
    with pytest.raises(ValueError, match="chat template: no system"):
        render([{"role": "user", "content": "x"}], "{{ raise_exception('no system') }}")
    with pytest.raises(ValueError, match="chat template cannot be rendered"):
        render([{"role": "user", "content": "x"}], "{% for %}")


# ---------------------------------------------------------------- generation


def test_stream_generate_shapes_and_determinism(tiny):
    rs = list(looplm.stream_generate(tiny, "Hello world", max_tokens=12, seed=5))
    assert rs[-1].finish_reason in ("length", "stop") and all(r.finish_reason is None for r in rs[:-1])
    tokens = [r.token for r in rs if r.token is not None]
    assert rs[-1].generation_tokens == len(tokens) <= 12
    assert all(r.exit_step == 3 for r in rs if r.token is not None)  # threshold 1: every loop
    assert rs[-1].mean_loops == 4.0
    pieces = b"".join(tiny.token_bytes(t) for t in tokens if tiny.token_type(t) != 3)  # control tokens: no text
    assert "".join(r.text for r in rs) == pieces.decode("utf-8", "replace")
    again = [r.token for r in looplm.stream_generate(tiny, "Hello world", max_tokens=12, seed=5) if r.token is not None]
    assert again == tokens
    other = [r.token for r in looplm.stream_generate(tiny, "Hello world", max_tokens=12, seed=6) if r.token is not None]
    assert other != tokens


def test_generate_text_equals_stream(tiny):
    text = looplm.generate(tiny, "The loop", max_tokens=10, temperature=0)
    assert text == "".join(r.text for r in looplm.stream_generate(tiny, "The loop", max_tokens=10, temperature=0))


def test_greedy_generation_matches_reference(tiny_gguf):
    """Greedy tokens equal the argmax chain of the NumPy reference."""
    from looplm import reference as R

    m = looplm.Model(tiny_gguf["f32"], kv_type="f32")
    prompt = m.tokenize("Hello world", special=True)
    got = [r.token for r in looplm.stream_generate(m, prompt, max_tokens=8, temperature=0) if r.token is not None]
    cfg, w = R.load_gguf(tiny_gguf["f32"])
    seq = list(prompt)
    for _ in range(len(got)):
        seq.append(int(R.run(cfg, w, seq).chosen_logits[-1].argmax()))
    assert got == seq[len(prompt) :]


def test_stop_string_in_generation(tiny):
    full = looplm.generate(tiny, "Hello", max_tokens=30, temperature=0)
    assert len(full) > 6
    stop = full[3:6]
    cut = full.find(stop)
    rs = list(looplm.stream_generate(tiny, "Hello", max_tokens=30, temperature=0, stop=[stop]))
    assert "".join(r.text for r in rs) == full[:cut]
    assert rs[-1].finish_reason == "stop"


def test_prefix_reuse(tiny):
    looplm.generate(tiny, "Hello world, this is", max_tokens=4, temperature=0)
    held = tiny.tokens
    list(looplm.stream_generate(tiny, held + tiny.tokenize(" more"), max_tokens=2, temperature=0))
    assert tiny.reused_prefix == len(held)


def test_per_call_ouro_options_are_restored(tiny):
    policy = tiny.exit_policy
    rs = list(looplm.stream_generate(tiny, "Hello", max_tokens=5, loops=2, temperature=0))
    assert {r.exit_step for r in rs if r.token is not None} == {1}
    rs = list(looplm.stream_generate(tiny, "Hello", max_tokens=5, exit_at_step=0, temperature=0))
    assert {r.exit_step for r in rs if r.token is not None} == {0}
    assert tiny.exit_policy == policy and tiny.config["n_loops"] == 4
    with pytest.raises(ValueError, match="loops=5"):
        list(looplm.stream_generate(tiny, "Hello", max_tokens=5, loops=5))


def test_create_completion_shapes(tiny):
    out = tiny.create_completion("Hello", max_tokens=5, temperature=0)
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    c = out["choices"][0]
    assert set(c) == {"text", "index", "logprobs", "finish_reason"} and c["index"] == 0
    u = out["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert len(out["looplm"]["exit_steps"]) == u["completion_tokens"]
    chunks = list(tiny.create_completion("Hello", max_tokens=5, temperature=0, stream=True))
    assert "".join(ch["choices"][0]["text"] for ch in chunks) == c["text"]
    assert [ch["choices"][0]["finish_reason"] for ch in chunks][-1] == c["finish_reason"]
    assert all(ch["choices"][0]["finish_reason"] is None for ch in chunks[:-1])


def test_create_chat_completion_shapes(tiny):
    msgs = [{"role": "user", "content": "Hi"}]
    out = tiny.create_chat_completion(msgs, max_tokens=6, temperature=0)
    assert out["object"] == "chat.completion"
    msg = out["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)
    chunks = list(tiny.create_chat_completion(msgs, max_tokens=6, temperature=0, stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text == msg["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == out["choices"][0]["finish_reason"]


def test_max_tokens_and_context_limits(tiny_gguf):
    m = looplm.Model(tiny_gguf["q8_0"], n_ctx=20)
    rs = list(looplm.stream_generate(m, "Hello world", max_tokens=None, temperature=0))
    assert rs[-1].finish_reason in ("length", "stop") and m.n_past <= 20
    with pytest.raises(ValueError, match="context holds 20"):
        list(looplm.stream_generate(m, "x " * 30, max_tokens=1))
    with pytest.raises(ValueError, match="max_tokens"):
        list(looplm.stream_generate(m, "x", max_tokens="5"))
    with pytest.raises(ValueError, match="stop strings"):
        list(looplm.stream_generate(m, "x", stop=[""]))
