"""The shapes of completion results, as TypedDicts: llama-cpp-python's (and OpenAI's) field
names, plus the ``looplm`` entry with the loops each token ran.

A streamed result is a sequence of chunks; only the last carries ``usage`` and ``looplm``.
"""

from __future__ import annotations

from typing import TypedDict


class CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LoopStats(TypedDict):
    """looplm's addition: the exit loop (0-based) of every generated token and their mean + 1."""

    exit_steps: list[int]
    mean_loops: float
    prompt_tokens_evaluated: int  # the prompt tokens actually computed (the rest reused a prefix)


class CompletionChoice(TypedDict):
    text: str
    index: int
    logprobs: None
    finish_reason: str | None  # "stop" | "length"; None in a chunk before the last


class _CompletionBase(TypedDict):
    id: str
    object: str  # "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]


class Completion(_CompletionBase):
    usage: CompletionUsage
    looplm: LoopStats


class CompletionChunk(_CompletionBase, total=False):
    usage: CompletionUsage  # the last chunk only
    looplm: LoopStats


class ChatMessage(TypedDict):
    role: str
    content: str


class ChatChoice(TypedDict):
    index: int
    message: ChatMessage
    logprobs: None
    finish_reason: str | None


class ChatCompletion(TypedDict):
    id: str
    object: str  # "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    looplm: LoopStats


class ChatDelta(TypedDict, total=False):
    role: str  # the first chunk
    content: str


class ChatChunkChoice(TypedDict):
    index: int
    delta: ChatDelta
    logprobs: None
    finish_reason: str | None


class _ChatChunkBase(TypedDict):
    id: str
    object: str  # "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]


class ChatCompletionChunk(_ChatChunkBase, total=False):
    usage: CompletionUsage  # the last chunk only
    looplm: LoopStats
