"""Hostile chat templates (looplm/template.py; issue 18, item 2): every one ends in a one-line
ValueError naming the file, within the step, time and size budgets; never a hang, a
traceback or a MemoryError."""

from __future__ import annotations

import subprocess
import sys

import gguf
import looplm
import pytest
from gguf_edit import rewrite
from looplm.chat import CHATML, render
from looplm.template import MAX_OUTPUT, MAX_STEPS, TemplateError

MSGS = [{"role": "user", "content": "Hi"}]

# template -> a text the error must contain
HOSTILE = {
    "nested_range": ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "budget"),
    "nested_range_printing": (
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}",
        "budget",
    ),
    "nested_strings": ("{% set s = 'x' * 1000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", "budget"),
    "loop_over_messages": (
        "{% for i in range(99999) %}{% for m in messages * 99999 %}{% endfor %}{% endfor %}",
        "budget",
    ),
    "huge_range": ("{% for i in range(10**12) %}{% endfor %}", "cannot be rendered"),
    "repeat_string": ("{{ 'x' * 10**10 }}", "budget"),
    "repeat_list": ("{{ ([1] * 10**9)|length }}", "budget"),
    "doubling": (
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "budget",
    ),
    "power": ("{{ 7 ** (10 ** 9) }}", "budget"),
    "percent_width": ("{{ '%999999999d' % 1 }}", "budget"),
    "format_width": ("{{ '{:>999999999}'.format(1) }}", "budget"),
    "format_filter": ("{{ '%999999999s'|format('x') }}", "budget"),
    "center": ("{{ 'x'.center(10**9) }}", "budget"),
    "center_filter": ("{{ 'x'|center(10**9) }}", "budget"),
    "indent_filter": ("{{ 'a\nb'|indent(10**9) }}", "budget"),
    "replace": ("{{ ('x' * 100000).replace('x', 'y' * 100000) }}", "budget"),
    "join": ("{{ ('x' * 100000).join('y' * 100000) }}", "budget"),
    "lipsum": ("{{ lipsum(10**9) }}", "budget"),
    "recursion": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "cannot be rendered"),
    "recursive_loop": ("{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}", "cannot be rendered"),
    "division_by_zero": ("{{ 1/0 }}", "ZeroDivisionError"),
    "string_plus_int": ("{{ messages[0]['content'] + 1 }}", "cannot be rendered"),
    "syntax": ("{% for %}", "cannot be rendered"),
    "unclosed": ("{% if true %}", "cannot be rendered"),
    "private_attribute": ("{{ messages.__class__.__mro__ }}", "cannot be rendered"),
    "mutation": ("{{ messages.append(1) }}", "cannot be rendered"),
    "raise_exception": ("{{ raise_exception('no system') }}", "chat template: no system"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_is_one_line_value_error(name):
    source, needle = HOSTILE[name]
    with pytest.raises(ValueError) as e:
        render(MSGS, source, where="model.gguf")
    msg = str(e.value)
    assert isinstance(e.value, TemplateError)
    assert msg.startswith("model.gguf: chat template") and needle in msg and "\n" not in msg, msg
    assert len(msg) < 400


def test_budgets_are_far_above_real_templates(smollm):
    """SmolLM2's template over a long conversation stays far inside the budgets."""
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 200} for i in range(200)]
    for template in (smollm.chat_template, CHATML):
        text = render(long, template)
        assert 200_000 < len(text) < MAX_OUTPUT
    many = "{% for i in range(500) %}{% for j in range(500) %}{% endfor %}{% endfor %}ok"  # 250 000 steps
    assert render(MSGS, many) == "ok" and MAX_STEPS > 250_000


@pytest.fixture(scope="module")
def hostile_gguf(tiny_gguf, tmp_path_factory):
    out = tmp_path_factory.mktemp("templates") / "hostile-template.gguf"
    source = HOSTILE["nested_range_printing"][0]
    return rewrite(
        tiny_gguf["q8_0"], out, set_keys={"tokenizer.chat_template": (source, gguf.GGUFValueType.STRING, None)}
    )


def test_api_names_the_file(hostile_gguf):
    m = looplm.Model(hostile_gguf, n_threads=1)
    for call in (
        lambda: m.create_chat_completion(MSGS, max_tokens=2),
        lambda: list(m.create_chat_completion(MSGS, max_tokens=2, stream=True)),
    ):
        with pytest.raises(ValueError, match=f"^{hostile_gguf}: chat template exceeds its budget"):
            call()
    assert m.n_past == 0


@pytest.mark.parametrize("command", ["run", "chat"])
def test_cli_one_line_naming_the_file(hostile_gguf, command):
    args = ["-p", "Hi", "-n", "2"] if command == "run" else ["-n", "2"]
    r = subprocess.run(
        [sys.executable, "-m", "looplm.cli", command, "-m", str(hostile_gguf), *args],
        input="Hi\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and any(
        line.startswith(f"looplm {command}: error: {hostile_gguf}: chat template exceeds its budget") for line in lines
    ), r.stderr
