"""The Python API's documented surface: the exceptions it raises are importable from looplm
and are the documented ones, and every entry point takes the options docs/python-api.md lists."""

from __future__ import annotations

import looplm
import pytest
from looplm.chat import render


@pytest.mark.parametrize("source", ["missing.gguf", "models/ouro.gguf", "/nonexistent/dir/x.gguf"])
def test_a_missing_file_is_file_not_found(source, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file") as e:
        looplm.load(source)
    assert e.value.filename == source
    with pytest.raises(FileNotFoundError):
        looplm.Model(source)


def test_documented_exceptions_are_importable():
    from looplm import ConvertError, GGUFError

    assert issubclass(GGUFError, ValueError) and issubclass(ConvertError, ValueError)
    for name in ("ConvertError", "GGUFError"):
        assert name in looplm.__all__
    with pytest.raises(AttributeError):
        looplm.NoSuchThing  # noqa: B018


def test_a_checkpoint_the_converter_refuses_raises_convert_error(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    with pytest.raises(looplm.ConvertError):
        looplm.load(tmp_path / "ckpt")


def test_not_a_gguf_raises_gguf_error(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"not a gguf file at all, just text")
    with pytest.raises(looplm.GGUFError, match="not a GGUF file"):
        looplm.Model(p)


def test_penalty_last_n_is_an_option_of_every_entry_point(tiny_gguf):
    """docs/python-api.md lists penalty_last_n for every entry point; each takes it, and it
    decides which tokens the repetition penalty sees (0: none, the same as no penalty)."""
    m = looplm.Model(tiny_gguf["q8_0"])
    plain = looplm.generate(m, "Hello world", max_tokens=24, temperature=0)
    opts = {"max_tokens": 24, "temperature": 0, "repeat_penalty": 3.0}
    off = looplm.generate(m, "Hello world", penalty_last_n=0, **opts)
    on = looplm.generate(m, "Hello world", penalty_last_n=64, **opts)
    assert off == plain != on
    assert "".join(r.text for r in looplm.stream_generate(m, "Hello world", penalty_last_n=64, **opts)) == on
    assert m.create_completion("Hello world", penalty_last_n=64, **opts)["choices"][0]["text"] == on
    chat = [{"role": "user", "content": "Hello world"}]
    prompt = render(chat, m.chat_template)
    reply = m.create_chat_completion(chat, penalty_last_n=64, **opts)["choices"][0]["message"]["content"]
    assert reply == looplm.generate(m, prompt, penalty_last_n=64, **opts)


def test_create_chat_completion_names_itself_for_an_unknown_keyword(tiny_gguf):
    m = looplm.Model(tiny_gguf["q8_0"])
    with pytest.raises(TypeError, match=r"create_chat_completion\(\) got an unexpected keyword argument 'frobnicate'"):
        m.create_chat_completion([{"role": "user", "content": "Hi"}], frobnicate=1)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), float("inf"), "0.5", True])
def test_exit_threshold_outside_0_1_is_refused(tiny_gguf, threshold):
    with pytest.raises(ValueError, match=r"exit_threshold must be a number in 0\.\.1"):
        looplm.Model(tiny_gguf["q8_0"], exit_threshold=threshold)
    m = looplm.Model(tiny_gguf["q8_0"])
    with pytest.raises(ValueError, match="exit_threshold"):
        looplm.generate(m, "Hi", max_tokens=2, exit_threshold=threshold)


def test_version_is_one_fact():
    """The wheel's metadata, looplm.__version__ and the C++ build line agree (one source: __init__.py)."""
    from importlib.metadata import version

    assert version("looplm") == looplm.__version__
    assert looplm.build_info().startswith(f"looplm {looplm.__version__} (")
