"""One request's decoding state, driven by the scheduler one evaluation at a time.

The order of checks is the single-sequence loop's (looplm.generate.token_stream): the length
limit, then sampling (penalties over the same history window), then the stop tokens, then a
full context, then the token is evaluated and its text released through the same
:class:`~looplm.generate.TextStream`. So a request served among others produces the tokens it
would produce alone with the same seed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..generate import TOKEN_CONTROL, TextStream
from ..model import Model
from .schemas import Request


@dataclass
class Event:
    """What the scheduler tells a request's handler.

    kind: "text" (``text``, ``logprobs``), "done" (``finish_reason``, ``usage``) or "error"
    (``error``: an ApiError).
    """

    kind: str
    text: str = ""
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: Exception | None = None


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max()
    return x - np.log(np.exp(x).sum())


class Sequence:
    """A request in the scheduler: its prompt ids, sampler, history and text stream.

    Args:
        req: the validated request.
        ids: its prompt's token ids.
        run: the resolved Ouro options (a ``_core.RunOptions``).
        model: the model (tokenizer, stop ids, context size).
        emit: called (from the scheduler thread) with each :class:`Event`.
    """

    def __init__(self, req: Request, ids: list[int], run: Any, model: Model, emit: Callable[[Event], None]) -> None:
        self.req, self.ids, self.run, self.model, self.emit = req, ids, run, model, emit
        self.cancelled = threading.Event()
        self.slot = -1
        self.fed = 0  # prompt tokens evaluated so far
        self.pending: int | None = None  # a sampled token waiting for its evaluation
        self.finished = False
        params, limit = req.options.sampling, req.options.max_tokens
        self.limit = limit
        self.sampler = params.sampler()
        self.history = list(ids)
        n_ctx = model.n_ctx
        self.window = len(ids) + (limit or n_ctx) if params.penalty_last_n < 0 else params.penalty_last_n
        self.stop_ids = set(model.stop_ids)
        self.out = TextStream(list(req.options.stop))
        self.n_gen = 0
        self.exits: list[int] = []
        self.n_past = 0
        self.t_queued = time.perf_counter()
        self.t_first: float | None = None  # first token out
        self._pending_lp: dict[str, Any] | None = None

    # ---------------------------------------------------------------- scheduler side

    def next_chunk(self, n_batch: int) -> list[int]:
        """The tokens to evaluate next: a chunk of the prompt, or the pending token."""
        if self.fed < len(self.ids):
            return self.ids[self.fed : self.fed + n_batch]
        assert self.pending is not None
        return [self.pending]

    def chunk_ends(self, n: int) -> bool:
        """Whether a next chunk of n tokens ends the evaluation chunk (docs/kv-cache.md): the
        prompt's last part, or a decoded token; False for the prompt's earlier parts."""
        return self.fed + n >= len(self.ids)

    def evaluated(self, n: int, logits: np.ndarray, exit_step: int) -> None:
        """The engine evaluated the chunk of n tokens; logits and exit loop of its last token."""
        self.n_past += n
        if self.fed < len(self.ids):
            self.fed += n
            if self.fed < len(self.ids):
                return
        else:  # the pending token: as token_stream after its eval
            token, self.pending = self.pending, None
            assert token is not None  # a decode step always feeds the pending token
            self.history.append(token)
            self.n_gen += 1
            self.exits.append(exit_step)
            piece = b"" if self.model.token_type(token) == TOKEN_CONTROL else self.model.token_bytes(token)
            text = self.out.push(piece)
            lp = [self._pending_lp] if self._pending_lp is not None else []
            if self.t_first is None:
                self.t_first = time.perf_counter()
            if text or lp:
                self.emit(Event("text", text, lp))
            if self.out.stopped:
                self.finish("stop")
                return
        self._sample(logits)

    def _sample(self, logits: np.ndarray) -> None:
        if self.limit is not None and self.n_gen >= self.limit:
            self.finish("length")
            return
        window = self.history[-self.window :] if self.window else []
        token = self.sampler.sample(logits, np.asarray(window, dtype=np.int32))
        if token in self.stop_ids:
            self.finish("stop")
            return
        if self.n_past >= self.model.n_ctx:
            self.finish("length")
            return
        self.pending = token
        self._pending_lp = self._logprob(logits, token) if self.req.logprobs is not None else None

    def _logprob(self, logits: np.ndarray, token: int) -> dict[str, Any]:
        lp = log_softmax(logits)
        entry = self._entry(token, float(lp[token]))
        k = self.req.logprobs or 0
        top: Any = np.argsort(-lp, kind="stable")[:k] if k else []
        entry["top_logprobs"] = [self._entry(int(t), float(lp[t])) for t in top]
        return entry

    def _entry(self, token: int, logprob: float) -> dict[str, Any]:
        raw = self.model.token_bytes(token)
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}

    def finish(self, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        tail = self.out.finish()
        if tail:
            self.emit(Event("text", tail))
        self.emit(Event("done", finish_reason=reason, usage=self.usage()))

    def fail(self, error: Exception) -> None:
        if not self.finished:
            self.finished = True
            self.emit(Event("error", error=error))

    def usage(self) -> dict[str, Any]:
        n_prompt = len(self.ids)
        mean = sum(self.exits) / len(self.exits) + 1 if self.exits else 0.0
        return {
            "prompt_tokens": n_prompt,
            "completion_tokens": self.n_gen,
            "total_tokens": n_prompt + self.n_gen,
            "mean_loops": mean,
        }
