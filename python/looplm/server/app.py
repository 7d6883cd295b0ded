"""The Starlette application: the OpenAI routes, /health, /metrics, the API key check and the
OpenAI-shaped errors. Handlers only validate, tokenize and queue; the scheduler thread owns
the model."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..chat import render
from .metrics import Metrics
from .scheduler import Scheduler
from .schemas import ApiError, parse
from .sequence import Event, Sequence
from .shapes import Shaper
from .sse import CompletionResponse

MAX_BODY = 16 * 1024 * 1024  # bytes of a request body


@dataclass
class ServerConfig:
    """What the routes need besides the scheduler.

    Attributes:
        model_name: the id /v1/models lists and answers carry (--alias, default the file name).
        api_key: required as ``Authorization: Bearer KEY`` on /v1/ routes when set.
    """

    model_name: str
    api_key: str | None = None


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def build_app(scheduler: Scheduler, metrics: Metrics, config: ServerConfig) -> Starlette:
    """The ASGI app; its lifespan starts the scheduler (which loads the model) and stops it."""

    def check_key(request: HttpRequest) -> None:
        if config.api_key is None:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), config.api_key.encode()):
            raise ApiError(401, "invalid or missing API key (Authorization: Bearer KEY)", type="authentication_error",
                           code="invalid_api_key")  # fmt: skip

    def check_ready() -> None:
        if scheduler.load_error is not None:
            raise ApiError(503, f"the model failed to load: {scheduler.load_error}", type="server_error",
                           code="load_failed")  # fmt: skip
        if not scheduler.loaded:
            raise ApiError(503, "the model is loading", type="server_error", code="loading",
                           headers={"Retry-After": "1"})  # fmt: skip

    async def completion(request: HttpRequest, kind: str) -> Response:
        endpoint = "chat" if kind == "chat" else "completions"
        try:
            check_key(request)
            check_ready()
            raw = await request.body()
            if len(raw) > MAX_BODY:
                raise ApiError(413, f"the request body is over {MAX_BODY} bytes", code="too_large")
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from e
            req, messages = parse(kind, body)
            engine = scheduler.engine
            assert engine is not None
            model = engine.model
            loop = asyncio.get_running_loop()
            prompt = req.prompt
            if messages is not None:
                try:
                    prompt = render(messages, model.chat_template)
                except ValueError as e:
                    raise ApiError(400, f"messages: {e}", param="messages") from e
            if isinstance(prompt, str):
                ids = await loop.run_in_executor(None, lambda: model.tokenize(prompt, special=True))
            else:
                ids = prompt
                bad = [t for t in ids if not 0 <= t < model.n_vocab]
                if bad:
                    raise ApiError(400, f"prompt: token id {bad[0]} is out of range (vocabulary of {model.n_vocab})",
                                   param="prompt")  # fmt: skip
            if not ids:
                raise ApiError(400, "the prompt is empty after tokenization", param="prompt")
            if len(ids) >= model.n_ctx:
                raise ApiError(
                    400,
                    f"the prompt has {len(ids)} tokens; the context holds {model.n_ctx} (-c/--ctx-size)",
                    code="context_length_exceeded",
                    param="messages" if kind == "chat" else "prompt",
                )
            try:
                run = model.resolve(req.options.ouro)
            except ValueError as e:
                name = str(e).split("=", 1)[0].split(" ", 1)[0]
                raise ApiError(400, str(e), param=name) from e
            events: asyncio.Queue[Event] = asyncio.Queue()

            def emit(ev: Event) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed (shutdown)
                    loop.call_soon_threadsafe(events.put_nowait, ev)

            seq = Sequence(req, ids, run, model, emit)
            scheduler.submit(seq)
        except ApiError as e:
            metrics.request(endpoint, "rejected" if e.status == 503 else "invalid")
            return error_response(e)
        metrics.prompt(len(ids))
        shaper = Shaper(req, config.model_name)
        return CompletionResponse(seq, events, shaper, scheduler.cancel, lambda o: metrics.request(endpoint, o))  # type: ignore[return-value]

    async def chat_completions(request: HttpRequest) -> Response:
        return await completion(request, "chat")

    async def completions(request: HttpRequest) -> Response:
        return await completion(request, "completion")

    async def models(request: HttpRequest) -> Response:
        try:
            check_key(request)
        except ApiError as e:
            return error_response(e)
        entry: dict[str, Any] = {"id": config.model_name, "object": "model", "created": started, "owned_by": "looplm"}
        if scheduler.engine is not None:
            c = scheduler.engine.model.config
            entry["meta"] = {k: c[k] for k in ("arch", "n_layer", "n_loops", "weight_type", "n_ctx", "n_vocab")}
            entry["meta"]["n_slots"] = scheduler.engine.n_slots
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(request: HttpRequest) -> Response:
        if scheduler.load_error is not None:
            return JSONResponse({"status": "error", "error": str(scheduler.load_error)}, status_code=503)
        if not scheduler.loaded:
            return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"status": "ok", "slots": metrics.n_slots, "slots_busy": metrics.slots_busy,
                             "queue_length": metrics.queue_length})  # fmt: skip

    async def prometheus(request: HttpRequest) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, scheduler.stop)

    started = int(time.time())
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
