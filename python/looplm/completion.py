"""llama-cpp-python's completion API over the generation loop: the same parameter names and
the same dict shapes (``choices``, ``finish_reason``, ``usage``; chunks when streaming).

Each result also carries a ``looplm`` entry: the exit loop of every generated token and the
mean loops per token, which llama-cpp-python does not have (a field added, none changed).
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Iterator
from typing import Any, Union

from .chat import render
from .generate import token_stream
from .model import Model
from .options import GenerationOptions, OuroOptions
from .results import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChatMessage,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionUsage,
    LoopStats,
)

_Done = tuple[Union[str, None], CompletionUsage, LoopStats]


def _run(model: Model, prompt: str | list[int], opts: GenerationOptions) -> Iterator[str | _Done]:
    """Yields each generated piece of text, and finally (finish_reason, usage, loop stats)."""
    exits: list[int] = []
    n_prompt, finish = 0, None
    for r in token_stream(model, prompt, opts):
        n_prompt = r.prompt_tokens
        if r.exit_step is not None:
            exits.append(r.exit_step)
        if r.text:
            yield r.text
        finish = r.finish_reason or finish
    n_ctx_prompt = len(model.tokenize(prompt, special=True)) if isinstance(prompt, str) else len(prompt)
    usage = CompletionUsage(
        prompt_tokens=n_ctx_prompt, completion_tokens=len(exits), total_tokens=n_ctx_prompt + len(exits)
    )
    extra = LoopStats(
        exit_steps=exits,
        mean_loops=(sum(exits) / len(exits) + 1) if exits else 0.0,
        prompt_tokens_evaluated=n_prompt,
    )
    yield finish, usage, extra


def create_completion(
    model: Model,
    prompt: str | list[int],
    *,
    max_tokens: int | None = 256,
    temperature: float = 0.8,
    top_p: float = 0.95,
    top_k: int = 40,
    min_p: float = 0.05,
    repeat_penalty: float = 1.0,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    penalty_last_n: int = 64,
    stop: str | list[str] | None = None,
    stream: bool = False,
    seed: int | None = None,
    loops: int | None = None,
    exit_threshold: float | None = None,
    exit_mode: str | None = None,
    exit_at_step: int | None = None,
) -> Completion | Iterator[CompletionChunk]:
    """See :meth:`looplm.Model.create_completion`."""
    opts = GenerationOptions.build(
        max_tokens=max_tokens,
        stop=stop,
        ouro=OuroOptions(loops, exit_threshold, exit_mode, exit_at_step),
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        penalty_last_n=penalty_last_n,
        seed=seed,
    )
    cid, created = f"cmpl-{uuid.uuid4()}", int(time.time())

    def chunk(text: str, finish: str | None) -> CompletionChunk:
        choice = CompletionChoice(text=text, index=0, logprobs=None, finish_reason=finish)
        return CompletionChunk(id=cid, object="text_completion", created=created, model=model.path, choices=[choice])

    events = _run(model, prompt, opts)
    if stream:

        def chunks() -> Iterator[CompletionChunk]:
            for e in events:
                if isinstance(e, str):
                    yield chunk(e, None)
                else:
                    last = chunk("", e[0])
                    last["usage"], last["looplm"] = e[1], e[2]
                    yield last

        return chunks()
    parts: list[str] = []
    done: _Done | None = None
    for e in events:
        if isinstance(e, str):
            parts.append(e)
        else:
            done = e
    assert done is not None  # _run always ends with its stats
    c = chunk("".join(parts), done[0])
    return Completion(
        id=c["id"], object=c["object"], created=c["created"], model=c["model"], choices=c["choices"],
        usage=done[1], looplm=done[2],
    )  # fmt: skip


_COMPLETION_OPTIONS = set(inspect.signature(create_completion).parameters) - {"model", "prompt"}


def create_chat_completion(
    model: Model,
    messages: list[dict[str, Any]],
    *,
    enable_thinking: bool = False,
    **opts: Any,
) -> ChatCompletion | Iterator[ChatCompletionChunk]:
    """See :meth:`looplm.Model.create_chat_completion`."""
    unknown = sorted(set(opts) - _COMPLETION_OPTIONS)
    if unknown:  # named here, not as an error of create_completion
        raise TypeError(f"create_chat_completion() got an unexpected keyword argument {unknown[0]!r}")
    prompt = render(messages, model.chat_template, enable_thinking=enable_thinking)
    result = create_completion(model, prompt, **opts)
    cid, created = f"chatcmpl-{uuid.uuid4()}", int(time.time())
    if not isinstance(result, dict):
        return _chat_chunks(result, cid, created, model.path)
    c = result["choices"][0]
    message = ChatMessage(role="assistant", content=c["text"])
    choice = ChatChoice(index=0, message=message, logprobs=None, finish_reason=c["finish_reason"])
    return ChatCompletion(
        id=cid, object="chat.completion", created=created, model=model.path, choices=[choice],
        usage=result["usage"], looplm=result["looplm"],
    )  # fmt: skip


def _chat_chunks(result: Iterator[CompletionChunk], cid: str, created: int, path: str) -> Iterator[ChatCompletionChunk]:
    """The chat form of a streamed completion: a first chunk with the role, then the text."""

    def chunk(delta: ChatDelta, finish: str | None) -> ChatCompletionChunk:
        choice = ChatChunkChoice(index=0, delta=delta, logprobs=None, finish_reason=finish)
        return ChatCompletionChunk(
            id=cid, object="chat.completion.chunk", created=created, model=path, choices=[choice]
        )

    yield chunk(ChatDelta(role="assistant"), None)
    for ch in result:
        c = ch["choices"][0]
        out = chunk(ChatDelta(content=c["text"]) if c["text"] else ChatDelta(), c["finish_reason"])
        if "usage" in ch:
            out["usage"], out["looplm"] = ch["usage"], ch["looplm"]
        yield out
