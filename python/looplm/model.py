"""looplm.Model: a GGUF model loaded by the native runtime, with its context (KV cache).

The engine runs the model's shared layers ``loops`` times per token; the exit gate can stop
a token early (``exit_mode="skip"``) or only choose which loop feeds the logits
(``exit_mode="exact"``, upstream's behaviour).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _core
from .options import OuroOptions, check_int
from .results import ChatCompletion, ChatCompletionChunk, Completion, CompletionChunk

EXIT_MODES = ("skip", "exact")
KV_FILLS = ("exit", "first")
KV_TYPES = ("f32", "f16", "q8_0", "q4_0")
KV_SHARES = ("none", "last")


class _Hold:
    """A re-entrant claim on a model by one thread; another thread gets RuntimeError at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this Model is in use by another thread")
        self._owner, self._depth = me, 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


class Model:
    """A loaded GGUF model and one conversation's state.

    Args:
        path: a GGUF file (architecture ``ouro`` or ``llama``).
        n_ctx: the context size in tokens, 0 for the model's trained context; the KV cache
            grows with the tokens actually used.
        n_threads: compute threads (default: the machine's physical cores).
        loops: loops per token (default: the trained count, ``ouro.num_loops``); more than
            the trained count warns, since the model gets worse.
        kv_type: KV cache element type of keys and values: "f16" (default), "f32", "q8_0" or
            "q4_0" (the quantized ones need a head size that is a multiple of 32).
        type_k, type_v: the key / value type apart (llama-cpp-python's names); default kv_type.
        kv_share: "none" (default, upstream's: one cache per loop for every position) or
            "last": once an evaluation is done its positions keep only their last loop's K/V
            (docs/kv-cache.md), a quarter of the memory for 4 loops.
        exit_threshold: the exit gate's CDF threshold (default: the GGUF's, 1.0 for Ouro,
            meaning every loop runs).
        exit_mode: "skip" stops a token at its exit loop; "exact" runs all loops and only
            picks the exit loop's logits. Default: "skip" when the threshold is below 1.
        exit_at_step: always exit at this 0-based loop (upstream's static exit).
        kv_fill: how skip mode fills the KV slots of skipped loops: "exit" (reuse the exit
            loop's keys/values, default) or "first" (loop 0's).
        n_batch: tokens per forward micro-batch when evaluating a prompt.
        kernels: force a kernel set by name (debugging; see ``looplm.kernels_available()``).
        use_mmap: map the file (default); False reads it into memory (llama.cpp's --no-mmap).
        use_mlock: lock the model's pages in RAM (llama.cpp's --mlock); a lock the system
            refuses (the locked-memory limit) is a warning, not an error.
        verbose: print the model, the build and the kernels in use to stderr.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        GGUFError: the file is not a valid GGUF or not a model looplm can run.
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        loops: int | None = None,
        kv_type: str = "f16",
        type_k: str | None = None,
        type_v: str | None = None,
        kv_share: str = "none",
        exit_threshold: float | None = None,
        exit_mode: str | None = None,
        exit_at_step: int | None = None,
        kv_fill: str = "exit",
        n_batch: int = 256,
        kernels: str | None = None,
        use_mmap: bool = True,
        use_mlock: bool = False,
        verbose: bool = False,
    ) -> None:
        path = os.fspath(path)
        # Upper bounds: positions are int32 (as in llama.cpp), and a thread count beyond any
        # machine is a typo, not a request.
        check_int("n_ctx", n_ctx, 0)
        if n_threads is not None:
            check_int("n_threads", n_threads, 1, 4096)
        check_int("n_batch", n_batch, 1)
        if loops is not None:
            check_int("loops", loops, 1, 64)  # the KV cache's slots (a per-call loops must fit them)
        if not isinstance(kv_type, str):
            raise ValueError(f"kv_type must be a string, got {kv_type!r}")
        for name, v in (("kv_type", kv_type), ("type_k", type_k), ("type_v", type_v)):
            if v is not None and v not in KV_TYPES:
                raise ValueError(f"{name} must be one of {KV_TYPES}, got {v!r}")
        if kv_share not in KV_SHARES:
            raise ValueError(f"kv_share must be one of {KV_SHARES}, got {kv_share!r}")
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        self.path = path
        self.reused_prefix = 0
        self._hold = _Hold()
        load = OuroOptions(loops, exit_threshold, exit_mode, exit_at_step, kv_fill)
        self._m = _core.Model(
            os.fsencode(path), n_ctx, n_threads or 0, load.loops or 0, kv_type, kernels or "", n_batch,
            run_loops=None, exit_threshold=load.exit_threshold, exit_mode=load.exit_mode,
            exit_at_step=load.exit_at_step, kv_fill=load.kv_fill, use_mmap=bool(use_mmap), use_mlock=bool(use_mlock),
            type_k=type_k, type_v=type_v, kv_share=kv_share,
        )  # fmt: skip
        self._load_options = self._m.load_options
        cfg = self._m.config
        if use_mlock and not cfg["mlock"]:
            warnings.warn(f"{path}: {cfg['mlock_error']}; running unlocked", stacklevel=2)
        self._n_vocab: int = cfg["n_vocab"]
        self._n_ctx: int = cfg["n_ctx"]
        if loops is not None and loops > cfg["n_loops_trained"]:
            warnings.warn(
                f"loops={loops} is above the {cfg['n_loops_trained']} the model was trained with; "
                "quality usually drops",
                stacklevel=2,
            )
        if verbose:
            import sys

            print(self.describe(), file=sys.stderr)

    # ---------------------------------------------------------------- options

    def resolve(self, options: OuroOptions | None = None) -> _core.RunOptions:
        """The options an evaluation runs with: the load-time ones with those given taken
        over, completed with the file's defaults and validated by the runtime.

        Raises:
            ValueError: naming the option (``loops``, ``exit_threshold``, ...) at fault.
        """
        if options is None:
            return self._load_options
        return self._m.resolve(**options.as_kwargs())

    @property
    def exit_policy(self) -> dict[str, Any]:
        """The load-time exit policy: threshold, mode, exit_at_step, kv_fill."""
        o = self._load_options
        return {
            "exit_threshold": o.exit_threshold,
            "exit_mode": o.exit_mode,
            "exit_at_step": o.exit_at_step,
            "kv_fill": o.kv_fill,
        }

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Holds the model for this thread (re-entrant): calls from other threads meanwhile
        raise ``RuntimeError("this Model is in use by another thread")``. Every generation
        holds its model from the first evaluation to the last."""
        with self._hold:
            yield

    # ---------------------------------------------------------------- evaluation

    def eval(
        self, tokens: list[int] | np.ndarray, *, all_logits: bool = False, options: OuroOptions | None = None
    ) -> np.ndarray:
        """Appends tokens to the context and runs them through the model.

        Args:
            tokens: token ids.
            all_logits: return the logits of every token, not just the last.
            options: loops and exit policy for this call (default: the load-time ones).

        Returns:
            float32 ``[n_vocab]`` logits of the last token, or ``[len(tokens), n_vocab]``.
            Each token's logits come from the normed hidden state of its exit loop.
        """
        return self._eval(tokens, all_logits, self.resolve(options))

    def _eval(self, tokens: list[int] | np.ndarray, all_logits: bool, run: _core.RunOptions) -> np.ndarray:
        ids = np.asarray(tokens)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence of token ids")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self._n_vocab:
            bad = int(ids[(ids < 0) | (ids >= self._n_vocab)][0])
            raise ValueError(f"token id {bad} is out of range (vocabulary of {self._n_vocab})")
        with self._hold:
            return self._m.eval(ids.astype(np.int32), all_logits, run)

    def reset(self) -> None:
        """Empties the context (KV cache and exit statistics)."""
        with self._hold:
            self._m.reset()

    def prefill(self, tokens: list[int], *, options: OuroOptions | None = None) -> np.ndarray:
        """Makes the context hold exactly ``tokens`` and returns the last token's logits.

        The longest common prefix with what the context already holds is kept (its KV is
        reused) when those positions were computed with the loops and exit policy asked for
        now (otherwise their KV is not what a fresh evaluation would give); the rest is
        evaluated in chunks of ``n_batch``, so Ctrl-C lands between chunks and leaves a
        consistent context. ``reused_prefix`` tells how many were kept.
        """
        return self._prefill(tokens, self.resolve(options))

    def _prefill(self, tokens: list[int], run: _core.RunOptions) -> np.ndarray:
        if not tokens:
            raise ValueError("cannot prefill an empty prompt")
        with self._hold:
            try:
                return self._m.prefill([int(t) for t in tokens], run)
            finally:
                self.reused_prefix = self._m.reused

    # ---------------------------------------------------------------- tokens

    def tokenize(self, text: str | bytes, *, special: bool = False) -> list[int]:
        """Text -> token ids with the GGUF's tokenizer (no BOS is added).

        Args:
            text: a string, or its UTF-8 bytes (``bytes``, ``bytearray``, ``memoryview``).
            special: match special-token texts such as ``<|im_start|>`` as their ids (HF
                tokenizers' default); False tokenizes them as plain text (llama.cpp's default).

        Raises:
            ValueError: ``text`` is neither text nor bytes (``bytes(5)`` would be five NULs).
        """
        if isinstance(text, str):
            try:
                raw = text.encode("utf-8")
            except UnicodeEncodeError as e:  # a lone surrogate: a byte that was not UTF-8 (surrogateescape)
                raise ValueError(f"text is not valid UTF-8 (U+{ord(text[e.start]):04X} at {e.start})") from None
        elif isinstance(text, (bytes, bytearray, memoryview)):
            raw = bytes(text)
        else:
            raise ValueError(f"text must be a str or bytes, got {type(text).__name__}")
        return self._m.tokenize(raw, special)

    def _token_id(self, token: object) -> int:
        if not isinstance(token, (int, np.integer)) or isinstance(token, bool) or not 0 <= token < self._n_vocab:
            raise ValueError(f"token id {token!r} is out of range (vocabulary of {self._n_vocab})")
        return int(token)

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids -> text (special tokens rendered as their text)."""
        return self._m.detokenize([self._token_id(t) for t in tokens]).decode("utf-8", errors="replace")

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (a piece of a UTF-8 sequence for byte tokens)."""
        return self._m.token_bytes(self._token_id(token))

    def token_type(self, token: int) -> int:
        """GGUF token type: 1 normal, 3 control, 4 user-defined, 5 unused, ..."""
        return self._m.token_type(self._token_id(token))

    @property
    def stop_ids(self) -> list[int]:
        """Tokens that end generation: eos, eot, <|im_end|> and <|endoftext|>."""
        return list(self._m.vocab["stop_ids"])

    @property
    def chat_template(self) -> str | None:
        return self._m.vocab["chat_template"] or None

    @property
    def tokens(self) -> list[int]:
        """The token ids in the context."""
        with self._hold:
            return list(self._m.tokens)

    @property
    def last_exit_step(self) -> int:
        """The exit loop of the last token evaluated."""
        with self._hold:
            return self._m.last_exit_step

    @property
    def n_past(self) -> int:
        """Tokens in the context."""
        return self._m.n_past

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def exit_steps(self) -> list[int]:
        """The 0-based exit loop of every token in the context."""
        with self._hold:
            return self._m.exit_steps.tolist()

    @property
    def config(self) -> dict[str, Any]:
        """Hyper-parameters and runtime settings (loops, threads, kernel set, KV type, ...)."""
        return self._m.config

    @property
    def metadata(self) -> dict[str, Any]:
        """The GGUF metadata (arrays longer than 4096 elements, e.g. the vocabulary, left out)."""
        return self._m.metadata

    @property
    def kv_bytes(self) -> int:
        """Bytes allocated by the KV cache (it grows with the context)."""
        with self._hold:
            return self._m.kv_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes the KV cache takes per position of the context once it is evaluated (all
        loops for kv_share none, one for last), for the load's K and V types."""
        return self._m.config["kv_bytes_per_token"]

    def kv_slot(self, loop: int, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of one (loop, layer) KV slot, float32 ``[n_past, kv_dim]``
        (dequantized). Loop -1 is the last loop's slot; with ``kv_share="last"`` it is the
        only one (the kept K/V of every position)."""
        with self._hold:
            return self._m.kv_slot(loop, layer)

    # ---------------------------------------------------------------- llama-cpp-python API

    def create_completion(self, prompt: str | list[int], **opts: Any) -> Completion | Iterator[CompletionChunk]:
        """Completes a prompt (llama-cpp-python's ``create_completion``).

        Args:
            prompt: text (special tokens parsed) or token ids.
            **opts: max_tokens (256; None or -1: unlimited), temperature (0.8), top_p (0.95),
                top_k (40), min_p (0.05), repeat_penalty (1.0), presence_penalty (0.0),
                frequency_penalty (0.0), penalty_last_n (64), stop (str or list), stream
                (False), seed (None: random), and the Ouro options loops, exit_threshold,
                exit_mode, exit_at_step.

        Returns:
            ``{"id", "object": "text_completion", "created", "model", "choices": [{"text",
            "index", "logprobs", "finish_reason"}], "usage": {...}, "looplm": {"exit_steps",
            "mean_loops", ...}}``, or an iterator of such chunks when ``stream=True``.
        """
        from .completion import create_completion

        return create_completion(self, prompt, **opts)

    def create_chat_completion(
        self, messages: list[dict[str, Any]], **opts: Any
    ) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """Answers a conversation (llama-cpp-python's ``create_chat_completion``).

        Args:
            messages: ``[{"role": "system" | "user" | "assistant", "content": str}, ...]``,
                rendered with the GGUF's chat template (ChatML when it has none).
            **opts: as :meth:`create_completion`, plus ``enable_thinking`` (open the reply
                with ``<think>\n``, for the Thinking variants).

        Returns:
            ``{"object": "chat.completion", "choices": [{"message": {"role", "content"},
            "finish_reason", ...}], "usage", ...}``, or ``chat.completion.chunk`` dicts
            with ``delta``s when ``stream=True``.
        """
        from .completion import create_chat_completion

        return create_chat_completion(self, messages, **opts)

    def describe(self) -> str:
        """One line: the model, how it is held in memory, the kernels and threads in use, the build."""
        from . import build_info

        c = self.config
        memory = "mmap" if c["mmap"] else "read into memory"
        memory += ", mlocked" if c["mlock"] else ""
        if c["repacked_bytes"]:
            memory += f", {c['repacked_bytes'] / 1e6:.0f} MB repacked to x16 in {c['repack_seconds']:.2f} s"
        return (
            f"looplm: {os.path.basename(self.path)}: {c['arch']}, {c['n_layer']} layers x "
            f"{c['n_loops']} loops, {c['weight_type']}, exit gate {'yes' if c['has_exit_gate'] else 'no'}, "
            f"{c['file_size'] / 1e6:.0f} MB ({memory}), kernels {c['kernels']}, {c['n_threads']} threads, "
            f"n_ctx {c['n_ctx']} | {build_info()}"
        )

    def memory_summary(self, available: int | None = None) -> str:
        """One line: KV bytes per token for this model's cache settings and the largest context
        that fits in the machine's available memory next to the weights (looplm.kv_memory)."""
        from . import kv_memory

        c = self.config
        return "looplm: " + kv_memory.describe(
            n_layer=c["n_layer"], loops=c["max_loops"], kv_dim=c["n_head_kv"] * c["head_dim"], type_k=c["type_k"],
            type_v=c["type_v"], kv_share=c["kv_share"], weights=c["file_size"], n_ctx_train=c["n_ctx_train"],
            available=available,
        )  # fmt: skip

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Releases the model: unmaps the file and frees the KV cache (as llama-cpp-python's
        ``close``). Any later call raises ValueError; closing twice is harmless.

        Raises:
            RuntimeError: another thread is using the model (it stays open).
        """
        with self._hold:
            # Stand-ins that raise ValueError on any use (a closed model is no longer typed as open).
            self._m = _Closed(self.path)  # type: ignore[assignment]
            self._load_options = _Closed(self.path)  # type: ignore[assignment]  # a view keeps the native model alive

    @property
    def closed(self) -> bool:
        return isinstance(self._m, _Closed)

    def __enter__(self) -> Model:  # noqa: PYI034 - Model is not subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<looplm.Model {self.path!r} closed>"
        return f"<looplm.Model {self.path!r} n_past={self.n_past}>"


class _Closed:
    """Stands for the native model after close(): every use is a clear error."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Any:
        raise ValueError(f"{self._path}: the model is closed")
