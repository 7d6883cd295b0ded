"""The OpenAI response bodies: whole completions and streaming chunks, for /v1/completions
(``text_completion``) and /v1/chat/completions (``chat.completion``, ``chat.completion.chunk``).
``usage`` carries looplm's ``mean_loops`` beside OpenAI's token counts."""

from __future__ import annotations

import time
import uuid
from typing import Any

from .schemas import Request


class Shaper:
    """Builds the bodies of one request's answer (one id and creation time for all its chunks)."""

    def __init__(self, req: Request, model_name: str) -> None:
        self.req = req
        self.chat = req.kind == "chat"
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model_name

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    # ---------------------------------------------------------------- logprobs

    def logprobs(self, entries: list[dict[str, Any]], offset: int = 0) -> dict[str, Any] | None:
        """The logprobs object of these token entries (None when not asked for)."""
        if self.req.logprobs is None:
            return None
        if self.chat:
            return {"content": entries, "refusal": None}
        offsets, pos = [], offset
        for e in entries:
            offsets.append(pos)
            pos += len(e["token"])
        return {
            "tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": offsets,
        }

    # ---------------------------------------------------------------- whole answers

    def complete(self, text: str, entries: list[dict[str, Any]], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
        if self.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": self.logprobs(entries),
                "finish_reason": finish,
            }
            return {**self._base("chat.completion"), "choices": [choice], "usage": usage}
        choice = {"text": text, "index": 0, "logprobs": self.logprobs(entries), "finish_reason": finish}
        return {**self._base("text_completion"), "choices": [choice], "usage": usage}

    # ---------------------------------------------------------------- chunks

    def _chunk(self, choice: dict[str, Any] | None) -> dict[str, Any]:
        out = self._base("chat.completion.chunk" if self.chat else "text_completion")
        out["choices"] = [choice] if choice is not None else []
        if self.req.include_usage:
            out["usage"] = None
        return out

    def first(self) -> dict[str, Any] | None:
        """Chat streams open with the assistant role."""
        if not self.chat:
            return None
        return self._chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                            "finish_reason": None})  # fmt: skip

    def delta(self, text: str, entries: list[dict[str, Any]], offset: int) -> dict[str, Any]:
        lp = self.logprobs(entries, offset)
        if self.chat:
            return self._chunk({"index": 0, "delta": {"content": text}, "logprobs": lp, "finish_reason": None})
        return self._chunk({"text": text, "index": 0, "logprobs": lp, "finish_reason": None})

    def last(self, finish: str) -> dict[str, Any]:
        if self.chat:
            return self._chunk({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish})
        return self._chunk({"text": "", "index": 0, "logprobs": None, "finish_reason": finish})

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The chunk after the last one when ``stream_options.include_usage``: no choices."""
        out = self._chunk(None)
        out["usage"] = usage
        return out
