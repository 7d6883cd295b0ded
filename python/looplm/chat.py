"""Chat prompts: the GGUF's Jinja chat template (rendered as HF transformers does, in a
sandbox on a budget: looplm/template.py), or ChatML when the file has none;
``enable_thinking`` for the Thinking variants."""

from __future__ import annotations

from typing import Any

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
THINK_PREFIX = "<think>\n"
ROLES = ("system", "user", "assistant", "tool")


def _check(messages: list[dict[str, Any]]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}] must be a dict with string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}]: unknown role {m['role']!r} (one of {', '.join(ROLES)})")


def render(
    messages: list[dict[str, Any]],
    template: str | None = None,
    *,
    add_generation_prompt: bool = True,
    enable_thinking: bool = False,
    bos_token: str = "",
    eos_token: str = "",
    where: str = "",
) -> str:
    """Renders a conversation to the prompt text.

    Args:
        messages: [{"role": "system" | "user" | "assistant", "content": str}, ...].
        template: a Jinja chat template (tokenizer.chat_template); None or "": ChatML.
        add_generation_prompt: end with the assistant header, ready for the reply.
        enable_thinking: Thinking variants: open the reply with ``<think>\\n`` (passed to
            templates that handle ``enable_thinking`` themselves).
        bos_token, eos_token: the values templates may refer to.
        where: the template's file (the model), named in errors.

    Raises:
        ValueError: bad messages; a template that fails or exceeds its budget
            (looplm.template.TemplateError, one line naming ``where``).
    """
    from .template import render_template

    _check(messages)
    source = template or CHATML
    text = render_template(
        source,
        where,
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    if (
        enable_thinking
        and add_generation_prompt
        and "enable_thinking" not in source
        and not text.endswith(THINK_PREFIX)
    ):
        text += THINK_PREFIX
    return text
