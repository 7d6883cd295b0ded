"""The ASGI response of a completion: server-sent events (``data: {json}`` lines ending with
``data: [DONE]``) when streaming, one JSON body otherwise.

Both watch the connection while the request runs: a client that goes away cancels its sequence
at once (the scheduler frees the slot before its next step), whether it was waiting in the
queue, prefilling or decoding, and whether or not anything was sent yet.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from .schemas import ApiError
from .sequence import Event, Sequence
from .shapes import Shaper

_GONE = Event("gone")


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class CompletionResponse:
    """Answers one sequence's events.

    Args:
        seq: the queued sequence.
        events: the queue its events arrive on (filled from the scheduler thread).
        shaper: the request's body builder.
        cancel: called with the sequence when the client disconnects before it finished.
        outcome: called once with "ok", "cancelled" or "error" when the response ends.
    """

    def __init__(
        self,
        seq: Sequence,
        events: asyncio.Queue[Event],
        shaper: Shaper,
        cancel: Callable[[Sequence], None],
        outcome: Callable[[str], None],
    ) -> None:
        self.seq, self.events, self.shaper, self._cancel, self._outcome = seq, events, shaper, cancel, outcome
        self._done = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        watcher = asyncio.ensure_future(self._watch(receive))
        result = "cancelled"
        try:
            if self.seq.req.stream:
                result = await self._stream(send)
            else:
                result = await self._whole(send)
        except OSError:  # the connection broke while sending
            result = "cancelled"
        finally:
            self._done = True
            watcher.cancel()
            if not self.seq.finished:
                self._cancel(self.seq)
            self._outcome(result)

    async def _watch(self, receive: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self._done and not self.seq.finished:
                    self._cancel(self.seq)
                    self.events.put_nowait(_GONE)
                return

    async def _whole(self, send: Any) -> str:
        parts: list[str] = []
        entries: list[dict[str, Any]] = []
        while True:
            ev = await self.events.get()
            if ev.kind == "gone":
                return "cancelled"
            if ev.kind == "error":
                assert isinstance(ev.error, ApiError)
                await self._send_json(send, ev.error.status, ev.error.body(), ev.error.headers)
                return "error"
            if ev.kind == "text":
                parts.append(ev.text)
                entries += ev.logprobs
                continue
            assert ev.finish_reason is not None and ev.usage is not None
            body = self.shaper.complete("".join(parts), entries, ev.finish_reason, ev.usage)
            await self._send_json(send, 200, body, {})
            return "ok"

    async def _stream(self, send: Any) -> str:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no")]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        first = self.shaper.first()
        if first is not None:
            await self._body(send, sse(first))
        offset = 0
        while True:
            ev = await self.events.get()
            if ev.kind == "gone":
                return "cancelled"
            if ev.kind == "error":
                assert isinstance(ev.error, ApiError)
                await self._body(send, sse(ev.error.body()) + DONE, more=False)
                return "error"
            if ev.kind == "text":
                await self._body(send, sse(self.shaper.delta(ev.text, ev.logprobs, offset)))
                offset += len(ev.text)
                continue
            assert ev.finish_reason is not None and ev.usage is not None
            tail = sse(self.shaper.last(ev.finish_reason))
            if self.seq.req.include_usage:
                tail += sse(self.shaper.usage(ev.usage))
            await self._body(send, tail + DONE, more=False)
            return "ok"

    @staticmethod
    async def _body(send: Any, data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    @staticmethod
    async def _send_json(send: Any, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data, "more_body": False})
