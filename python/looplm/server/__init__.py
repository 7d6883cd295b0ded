"""``looplm serve``: an OpenAI-compatible HTTP server (the optional extra ``looplm[server]``:
Starlette and uvicorn). See docs/server.md.

The process answers /health with 503 while the scheduler thread loads the model, then serves
/v1/chat/completions, /v1/completions, /v1/models and /metrics. SIGTERM or Ctrl-C stops taking
connections, lets the requests in flight finish for ``--shutdown-timeout`` seconds, cancels
what is left and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from typing import Any

from ..usage import UsageError, UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import add_model_options

    add_model_options(p)
    g = p.add_argument_group("server (llama-server's spelling)")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    g.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0: any free port)")
    g.add_argument("-np", "--parallel", type=int, default=4, help="sequences decoded together (slots; default 4)")
    g.add_argument(
        "--queue-size", type=int, default=64, help="requests that may wait for a slot; more get 503 (default 64)"
    )
    g.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1/ routes")
    g.add_argument("-a", "--alias", default=None, help="the model id clients see (default: the file name)")
    g.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="on SIGTERM, seconds requests in flight may take to finish before they are cancelled (default 10)",
    )
    g.add_argument(
        "--engine",
        choices=["batch", "slots"],
        default="batch",
        help="batch: all slots in one batched step (default); slots: one single-sequence context per slot, "
        "run one after another",
    )


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    from ..cli import model_options

    return model_options(args)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as e:
        raise UserError(
            f"looplm serve needs the server extra: pip install 'looplm[server]' ({e.name} is missing)"
        ) from e
    from ..hub import resolve_model
    from ..terminal import err
    from .app import ServerConfig, build_app
    from .engine import BatchEngine, SlotEngine
    from .metrics import Metrics
    from .scheduler import Scheduler

    if not 1 <= args.parallel <= 256:
        raise UsageError(f"-np/--parallel must be an integer in 1..256, got {args.parallel}")
    if not 0 <= args.queue_size <= 1_000_000:
        raise UsageError(f"--queue-size must be an integer in 0..1000000, got {args.queue_size}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    if args.shutdown_timeout < 0:
        raise UsageError(f"--shutdown-timeout must be >= 0, got {args.shutdown_timeout}")
    if args.type and os.path.isfile(os.path.expanduser(args.model)):
        raise UsageError(f"--type applies to HF checkpoints; {args.model} is already a GGUF file")
    name = args.alias or os.path.basename(os.path.normpath(args.model))
    metrics = Metrics(n_loops=1)
    server: uvicorn.Server | None = None

    # A missing file or a checkpoint to convert is dealt with before listening; the model is
    # then loaded on the scheduler thread while /health answers 503.
    path = resolve_model(os.path.expanduser(args.model), out_type=args.type)

    def load() -> BatchEngine | SlotEngine:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kind = BatchEngine if args.engine == "batch" else SlotEngine
                engine = kind(path, args.parallel, **_model_options(args))
        except BaseException as e:
            err(f"looplm serve: error: {e}")
            if server is not None:
                server.should_exit = True
            raise
        metrics.set_loops(engine.model.config["max_loops"])
        err(f"looplm serve: ready: {engine.model.describe()}; {args.parallel} slots, {args.engine} engine")
        return engine

    scheduler = Scheduler(load, queue_size=args.queue_size, n_batch=args.batch_size, metrics=metrics)
    app = build_app(scheduler, metrics, ServerConfig(name, args.api_key))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        access_log=bool(args.verbose),
        timeout_graceful_shutdown=int(args.shutdown_timeout) if args.shutdown_timeout else None,
        lifespan="on",
    )
    server = uvicorn.Server(config)

    def started() -> None:
        for s in server.servers if server else []:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                err(f"looplm serve: listening on http://{host}:{port} (model {name} loading)")

    orig_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await orig_startup(sockets)
        started()
        sys.stderr.flush()

    server.startup = startup  # type: ignore[method-assign]
    # uvicorn re-raises the signal that stopped it once it has shut down: SIGTERM then lands
    # here and the process exits 0 (Ctrl-C keeps Python's KeyboardInterrupt: exit 130).
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if scheduler.load_error is not None:
        return 1
    err("looplm serve: stopped")
    return 0
