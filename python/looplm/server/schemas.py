"""The request bodies of the OpenAI endpoints, validated into one :class:`Request` value, and the
OpenAI-shaped error every refusal is answered with.

Only the fields that apply to a local model are taken: ``max_tokens`` (or
``max_completion_tokens``), ``temperature``, ``top_p``, ``stop``, ``seed``, ``n`` (1 only),
``stream``, ``stream_options.include_usage``, ``presence_penalty``, ``frequency_penalty``,
``logprobs``/``top_logprobs``, and llama-server's and looplm's own as extra fields (``top_k``,
``min_p``, ``repeat_penalty``; ``loops``, ``exit_threshold``, ``exit_mode``). Unknown fields are
ignored, as OpenAI-compatible servers do; a known field of the wrong type is a 400 naming it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from ..options import GenerationOptions, OuroOptions

MAX_TOP_LOGPROBS = 20  # the OpenAI API's limit for chat; completions allow 5


class ApiError(Exception):
    """A request refused with an HTTP status and an OpenAI-shaped body.

    Attributes:
        status: the HTTP status code.
        message: one line naming the field, limit or header at fault.
        type: OpenAI's error type (``invalid_request_error``, ``authentication_error``, ...).
        code: a short machine-readable code, or None.
        param: the request field at fault, or None.
        headers: extra response headers (``Retry-After`` on 503).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


def bad(param: str, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, f"{param}: {message}", code=code, param=param)


def _int(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise bad(name, f"must be an integer in {lo}..{hi}, got {v!r}")
    return v


def _num(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not lo <= float(v) <= hi:
        raise bad(name, f"must be a number in {lo:g}..{hi:g}, got {v!r}")
    return float(v)


def _bool(body: dict[str, Any], name: str, default: bool = False) -> bool:
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad(name, f"must be true or false, got {v!r}")
    return v


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    v = body.get("stop")
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or len(stops) > 4 or any(not isinstance(s, str) or not s for s in stops):
        raise bad("stop", "must be a non-empty string or a list of up to 4 non-empty strings")
    return tuple(stops)


@dataclass(frozen=True)
class Request:
    """One validated completion request.

    Attributes:
        kind: "chat" or "completion".
        prompt: the prompt text (chat: the rendered conversation) or token ids.
        options: sampling, stops, length and Ouro options for the generation.
        stream: answer with server-sent events.
        include_usage: streaming: a last chunk carries the usage.
        logprobs: None (off) or how many alternatives per token (0 = only the chosen one).
        model: the model name the client asked for (echoed back).
    """

    kind: str
    prompt: str | list[int]
    options: GenerationOptions
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise bad("messages", "must be a non-empty list of {role, content} objects", "missing_field")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"messages[{i}]", "must be an object with a string 'role'")
        content = m.get("content")
        if isinstance(content, list):  # the parts form: text parts only
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise bad(f"messages[{i}].content", "only text parts are supported")
                texts.append(part["text"])
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise bad(
                f"messages[{i}].content", f"must be a string or a list of text parts, got {type(content).__name__}"
            )
        out.append({"role": m["role"], "content": content})
    return out


def _prompt(body: dict[str, Any]) -> str | list[int]:
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
        p = p[0]  # a batch of one prompt
    if isinstance(p, str) and p:
        return p
    if isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
        return list(p)
    raise bad("prompt", "must be a non-empty string or a non-empty list of token ids (one prompt)", "missing_field")


def parse(kind: str, body: object) -> tuple[Request, list[dict[str, str]] | None]:
    """Validates a request body; returns the request and, for chat, the messages to render.

    Raises:
        ApiError: 400 naming the field at fault.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    n = _int(body, "n", 1, 1_000_000)
    if n not in (None, 1):
        raise bad("n", "only n=1 is supported")
    max_tokens = _int(body, "max_completion_tokens", -1, 2**31 - 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", -1, 2**31 - 1)
    if kind == "chat":
        messages = _messages(body)
        prompt: str | list[int] = ""
        want_logprobs = _bool(body, "logprobs")
        top = _int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
        if top is not None and not want_logprobs:
            raise bad("top_logprobs", "needs logprobs: true")
        logprobs = (top or 0) if want_logprobs else None
        default_max = None  # chat: until the model stops (or the context is full)
    else:
        messages = None
        prompt = _prompt(body)
        logprobs = _int(body, "logprobs", 0, 5)
        default_max = 16  # OpenAI's default for completions
    stream = _bool(body, "stream")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise bad("stream_options", "must be an object")
    include_usage = _bool(so or {}, "include_usage")
    mode = body.get("exit_mode")
    if mode is not None and mode not in ("skip", "exact"):
        raise bad("exit_mode", f"must be 'skip' or 'exact', got {mode!r}")
    try:
        ouro = OuroOptions(
            loops=_int(body, "loops", 1, 64),
            exit_threshold=_num(body, "exit_threshold", 0.0, 1.0),
            exit_mode=mode,
            exit_at_step=_int(body, "exit_at_step", 0, 63),
        )
        seed = _int(body, "seed", -(2**63), 2**64 - 1)
        options = GenerationOptions.build(
            max_tokens=default_max if max_tokens is None else max_tokens,
            stop=_stop(body),
            ouro=ouro,
            temperature=_num(body, "temperature", 0.0, 2.0),
            top_p=_num(body, "top_p", 0.0, 1.0),
            top_k=_int(body, "top_k", -1, 2**31 - 1),
            min_p=_num(body, "min_p", 0.0, 1.0),
            repeat_penalty=_num(body, "repeat_penalty", 0.0, 10.0),
            presence_penalty=_num(body, "presence_penalty", -2.0, 2.0),
            frequency_penalty=_num(body, "frequency_penalty", -2.0, 2.0),
            seed=None if seed is None else seed & (2**64 - 1),
        )
    except ValueError as e:  # the API's own checks (top_p > 0, ...) name the keyword first
        name = str(e).split(" ", 1)[0]
        raise ApiError(400, str(e), code="invalid_value", param=name) from e
    model = body.get("model", "")
    if not isinstance(model, str):
        raise bad("model", "must be a string")
    req = Request(kind, prompt, options, stream, include_usage and stream, logprobs, model)
    return req, messages
