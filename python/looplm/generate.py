"""Generation: the token loop behind every API (mlx-lm's load / generate / stream_generate
here, llama-cpp-python's create_completion in completion.py, and the CLI).

The loop runs in Python, so streaming is a plain generator and stops, ``max_tokens`` and
UTF-8 hold-back are ordinary code; each forward and each sampling step runs in C++. Text
is never emitted mid UTF-8 sequence, nor as a partial stop string.
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .model import Model
from .options import GenerationOptions, OuroOptions
from .sampling import SamplingParams

TOKEN_CONTROL = 3  # control tokens (<|im_start|>, ...) are not rendered as text


@dataclass
class GenerationResponse:
    """One step of :func:`stream_generate` (mlx-lm's shape, plus the exit loop).

    Attributes:
        text: new text since the previous response ("" while bytes are held back).
        token: the token generated at this step (None on a final flush).
        exit_step: its 0-based exit loop (None on a final flush).
        prompt_tokens: tokens of the prompt evaluated for this call.
        prompt_tps: prompt tokens per second.
        generation_tokens: tokens generated so far.
        generation_tps: generated tokens per second so far.
        mean_loops: mean exit depth (exit loop + 1) of the generated tokens so far: the loops
            computed per token in skip mode; in exact mode every loop is computed anyway.
        finish_reason: "stop" (stop token or string), "length" (max_tokens or a full
            context) or None while generating.
    """

    text: str
    token: int | None
    exit_step: int | None
    prompt_tokens: int
    prompt_tps: float
    generation_tokens: int
    generation_tps: float
    mean_loops: float
    finish_reason: str | None = None


def load(path: str | os.PathLike[str], **opts: object) -> Model:
    """Loads a GGUF (or converts an HF Ouro folder / hub id first, see looplm.hub).

    Args:
        path: a .gguf file, an HF Ouro checkpoint folder or a hub repo id.
        **opts: keyword options of :class:`looplm.Model` (n_ctx, n_threads, loops, ...); a
            ``type`` option picks the quantization when converting (default q8_0).
    """
    from .hub import resolve_model

    out_type = opts.pop("type", None)
    return Model(resolve_model(os.fspath(path), out_type=out_type), **opts)  # type: ignore[arg-type]


class TextStream:
    """Token bytes in, safe text out: never half a UTF-8 sequence, never part of a stop string.

    ``push`` returns the text that can be shown now; bytes of an incomplete UTF-8 sequence
    and text that could be the start of a stop string are held back. When a stop string
    appears, ``stopped`` becomes True and the text before it is the last returned.
    """

    def __init__(self, stops: list[str] | None = None) -> None:
        self.stops = [s for s in (stops or []) if s]
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def _hold_len(self, text: str) -> int:
        """Length of the longest suffix of text that begins some stop string."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    def push(self, piece: bytes) -> str:
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(piece)
        cut = min((text.find(s) for s in self.stops if s in text), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return text[:cut]
        keep = self._hold_len(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        """The held-back text at the end (it was no stop string after all)."""
        if self.stopped:
            return ""
        text, self._held = self._held + self._decoder.decode(b"", final=True), ""
        return text


def token_stream(model: Model, prompt: str | list[int], opts: GenerationOptions) -> Iterator[GenerationResponse]:
    """The generation loop shared by every API; see :func:`stream_generate`.

    The model is held for the whole generation (see :meth:`Model.hold`), so another thread
    cannot slip in between two evaluations.
    """
    run = model.resolve(opts.ouro)  # the options' meaning, once, before any work
    # bytes are text, as for tokenize (a list of their values would be token ids)
    is_text = isinstance(prompt, (str, bytes, bytearray, memoryview))
    ids: list[int] = model.tokenize(prompt, special=True) if is_text else list(prompt)  # type: ignore[arg-type]
    if not ids:
        raise ValueError("the prompt is empty")
    if len(ids) >= model.n_ctx:
        raise ValueError(f"the prompt has {len(ids)} tokens; the context holds {model.n_ctx}")
    stop_ids = set(model.stop_ids)
    params, limit = opts.sampling, opts.max_tokens

    with model.hold():
        t0 = time.perf_counter()
        logits = model._prefill(ids, run)
        n_prompt = len(ids) - model.reused_prefix
        prompt_tps = n_prompt / max(time.perf_counter() - t0, 1e-9)
        sampler = params.sampler()
        history = list(ids)
        window = len(history) + (limit or model.n_ctx) if params.penalty_last_n < 0 else params.penalty_last_n
        out = TextStream(list(opts.stop))
        n_gen, loops_sum, finish = 0, 0, None
        t1 = time.perf_counter()

        def response(text: str, token: int | None, step: int | None, reason: str | None) -> GenerationResponse:
            dt = max(time.perf_counter() - t1, 1e-9)
            return GenerationResponse(
                text, token, step, n_prompt, prompt_tps, n_gen, n_gen / dt, loops_sum / n_gen if n_gen else 0.0, reason
            )

        while finish is None:
            if limit is not None and n_gen >= limit:
                finish = "length"
                break
            token = sampler.sample(logits, np.asarray(history[-window:] if window else [], dtype=np.int32))
            if token in stop_ids:
                finish = "stop"
                break
            if model.n_past >= model.n_ctx:
                finish = "length"
                break
            logits = model._eval([token], False, run)
            history.append(token)
            n_gen += 1
            step = model.last_exit_step
            loops_sum += step + 1
            piece = b"" if model.token_type(token) == TOKEN_CONTROL else model.token_bytes(token)
            text = out.push(piece)
            if out.stopped:
                finish = "stop"
            yield response(text, token, step, None)
        yield response(out.finish(), None, None, finish)


def stream_generate(
    model: Model,
    prompt: str | list[int],
    *,
    max_tokens: int | None = 256,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repeat_penalty: float | None = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
    penalty_last_n: int | None = None,
    seed: int | None = None,
    sampling: SamplingParams | None = None,
    stop: list[str] | str | None = None,
    loops: int | None = None,
    exit_threshold: float | None = None,
    exit_mode: str | None = None,
    exit_at_step: int | None = None,
) -> Iterator[GenerationResponse]:
    """Generates text token by token (mlx-lm's ``stream_generate``).

    The prompt is used as given (a string is tokenized with special tokens parsed, so
    ChatML text works); use :func:`looplm.chat.render` or ``Model.create_chat_completion``
    for conversations. The context is kept, so a follow-up prompt that extends it only
    evaluates the new tokens.

    Args:
        model: a loaded model.
        prompt: text or token ids.
        max_tokens: most tokens to generate; None or -1: until a stop or a full context.
        temperature, top_k, top_p, min_p, repeat_penalty, presence_penalty,
        frequency_penalty, penalty_last_n, seed: sampling options over ``sampling``
            (default: llama-cpp-python's; ``temperature=0`` is greedy; the penalties look at
            the last ``penalty_last_n`` tokens, 64).
        stop: strings that end generation (not included in the text).
        loops, exit_threshold, exit_mode, exit_at_step: Ouro options for this call.

    Yields:
        A :class:`GenerationResponse` per token, then a final one with ``finish_reason``.
    """
    opts = GenerationOptions.build(
        max_tokens=max_tokens,
        sampling=sampling,
        stop=stop,
        ouro=OuroOptions(loops, exit_threshold, exit_mode, exit_at_step),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        penalty_last_n=penalty_last_n,
        seed=seed,
    )
    return token_stream(model, prompt, opts)


def generate(model: Model, prompt: str | list[int], *, verbose: bool = False, **opts: object) -> str:
    """Generates and returns the text (mlx-lm's ``generate``); options as stream_generate.

    Args:
        verbose: stream the text to stdout and print timings to stderr.
    """
    import sys

    parts: list[str] = []
    last = None
    for r in stream_generate(model, prompt, **opts):  # type: ignore[arg-type]
        parts.append(r.text)
        last = r
        if verbose:
            print(r.text, end="", flush=True)
    if verbose and last is not None:
        print(file=sys.stderr)
        print(
            f"prompt: {last.prompt_tokens} tokens, {last.prompt_tps:.1f} tok/s | generation: "
            f"{last.generation_tokens} tokens, {last.generation_tps:.1f} tok/s | "
            f"mean loops/token {last.mean_loops:.2f}",
            file=sys.stderr,
        )
    return "".join(parts)


__all__ = ["GenerationResponse", "TextStream", "generate", "load", "stream_generate", "token_stream"]
