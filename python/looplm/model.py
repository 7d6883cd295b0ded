"""looplm.Model: a GGUF model loaded by the native runtime, with its context (KV cache).

The engine runs the model's shared layers ``loops`` times per token; the exit gate can stop
a token early (``exit_mode="skip"``) or only choose which loop feeds the logits
(``exit_mode="exact"``, upstream's behaviour).
"""

from __future__ import annotations

import contextlib
import errno
import numbers
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _core

EXIT_MODES = ("skip", "exact")
KV_FILLS = ("exit", "first")


class Model:
    """A loaded GGUF model and one conversation's state.

    Args:
        path: a GGUF file (architecture ``ouro`` or ``llama``).
        n_ctx: the context size in tokens; the KV cache grows with the tokens actually used.
        n_threads: compute threads (default: the machine's physical cores).
        loops: loops per token (default: the trained count, ``ouro.num_loops``); more than
            the trained count warns, since the model gets worse.
        kv_type: KV cache element type, "f16" (default) or "f32".
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
        if not isinstance(n_ctx, int) or not 1 <= n_ctx <= 2**31 - 1:
            raise ValueError(f"n_ctx must be an integer in 1..{2**31 - 1}, got {n_ctx!r}")
        if n_threads is not None and (not isinstance(n_threads, int) or not 1 <= n_threads <= 4096):
            raise ValueError(f"n_threads must be an integer in 1..4096, got {n_threads!r}")
        if loops is not None and (not isinstance(loops, int) or not 1 <= loops <= 64):
            raise ValueError(f"loops must be an integer in 1..64, got {loops!r}")
        if not isinstance(n_batch, int) or not 1 <= n_batch <= 2**31 - 1:
            raise ValueError(f"n_batch must be an integer in 1..{2**31 - 1}, got {n_batch!r}")
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        self.path = path
        self._n_batch = n_batch
        self.reused_prefix = 0
        # The loops and exit policy the context's KV was computed under (None: mixed), so
        # that prefill reuses a prefix only when it is what a fresh evaluation would compute.
        self._ctx_key: tuple | None = None
        self._m = _core.Model(
            path, n_ctx, n_threads or 0, loops or 0, kv_type, 1.0, "exact", -1, "exit", kernels or "", n_batch,
            bool(use_mmap), bool(use_mlock),
        )  # fmt: skip
        cfg = self._m.config
        if use_mlock and not cfg["mlock"]:
            warnings.warn(f"{path}: {cfg['mlock_error']}; running unlocked", stacklevel=2)
        if loops is not None and loops > cfg["n_loops_trained"]:
            warnings.warn(
                f"loops={loops} is above the {cfg['n_loops_trained']} the model was trained with; "
                "quality usually drops",
                stacklevel=2,
            )
        # The exit arguments as given at load: what a None per-call override falls back to.
        self._load_exit = {
            "exit_threshold": exit_threshold,
            "exit_mode": exit_mode,
            "exit_at_step": exit_at_step,
            "kv_fill": kv_fill,
        }
        self.set_exit()
        if verbose:
            import sys

            print(self.describe(), file=sys.stderr)

    # ---------------------------------------------------------------- exit policy

    def _resolve_exit(
        self, threshold: float | None, mode: str | None, at_step: int | None, fill: str | None
    ) -> tuple[float, str, int, str]:
        cfg = self._m.config
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0
        ):
            raise ValueError(f"exit_threshold must be a number in 0..1 (1: every loop runs), got {threshold!r}")
        thr = cfg["exit_threshold_default"] if threshold is None else float(threshold)
        if mode is None:
            mode = "skip" if (thr < 1.0 or at_step is not None) else "exact"
        if mode not in EXIT_MODES:
            raise ValueError(f"exit_mode must be one of {EXIT_MODES}, got {mode!r}")
        if at_step is not None and (not isinstance(at_step, int) or not 0 <= at_step < cfg["n_loops"]):
            raise ValueError(f"exit_at_step must be an integer in 0..{cfg['n_loops'] - 1}, got {at_step!r}")
        fill = fill or "exit"
        if fill not in KV_FILLS:
            raise ValueError(f"kv_fill must be one of {KV_FILLS}, got {fill!r}")
        return thr, mode, -1 if at_step is None else at_step, fill

    def set_exit(
        self,
        *,
        exit_threshold: float | None = None,
        exit_mode: str | None = None,
        exit_at_step: int | None = None,
        kv_fill: str | None = None,
    ) -> None:
        """Sets the exit policy for the following evaluations; None keeps the load-time value."""
        given = {
            "exit_threshold": exit_threshold,
            "exit_mode": exit_mode,
            "exit_at_step": exit_at_step,
            "kv_fill": kv_fill,
        }
        a = {k: self._load_exit[k] if v is None else v for k, v in given.items()}
        self._m.set_exit(*self._resolve_exit(a["exit_threshold"], a["exit_mode"], a["exit_at_step"], a["kv_fill"]))

    @property
    def exit_policy(self) -> dict[str, Any]:
        """The exit policy in force: threshold, mode, exit_at_step, kv_fill."""
        thr, mode, at, fill = self._m.get_exit()
        return {"exit_threshold": thr, "exit_mode": mode, "exit_at_step": None if at < 0 else at, "kv_fill": fill}

    # ---------------------------------------------------------------- evaluation

    def eval(self, tokens: list[int] | np.ndarray, *, all_logits: bool = False) -> np.ndarray:
        """Appends tokens to the context and runs them through the model.

        Args:
            tokens: token ids.
            all_logits: return the logits of every token, not just the last.

        Returns:
            float32 ``[n_vocab]`` logits of the last token, or ``[len(tokens), n_vocab]``.
            Each token's logits come from the normed hidden state of its exit loop.
        """
        ids = np.asarray(tokens)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("tokens must be a non-empty 1-D sequence of token ids")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            bad = int(ids[(ids < 0) | (ids >= self.n_vocab)][0])
            raise ValueError(f"token id {bad} is out of range (vocabulary of {self.n_vocab})")
        key = self._options_key()
        if self._m.n_past == 0:
            self._ctx_key = key
        elif key != self._ctx_key:
            self._ctx_key = None  # positions computed under different options
        return self._m.eval(ids.astype(np.int32), all_logits)

    def _options_key(self) -> tuple:
        return (self._m.config["n_loops"], self._m.get_exit())

    def reset(self) -> None:
        """Empties the context (KV cache and exit statistics)."""
        self._m.reset()

    def prefill(self, tokens: list[int]) -> np.ndarray:
        """Makes the context hold exactly ``tokens`` and returns the last token's logits.

        The longest common prefix with what the context already holds is kept (its KV is
        reused) when the context was computed with the loops and exit policy in force now
        (otherwise its KV is not what a fresh evaluation would give); the rest is evaluated in
        chunks of ``n_batch``, so Ctrl-C lands between chunks and leaves a consistent context.
        ``reused_prefix`` tells how many were kept.
        """
        if not tokens:
            raise ValueError("cannot prefill an empty prompt")
        p = 0
        # Only KV computed with the loops and exit policy in force now is reusable.
        if self._ctx_key == self._options_key():
            for a, b in zip(self._m.tokens, tokens):
                if a != b:
                    break
                p += 1
            p = min(p, len(tokens) - 1)  # re-evaluate at least the last token for its logits
        self._m.truncate(p)
        self.reused_prefix = p
        logits = None
        for i in range(p, len(tokens), self._n_batch):
            logits = self.eval(tokens[i : i + self._n_batch])
        return logits

    @contextlib.contextmanager
    def options(
        self,
        *,
        loops: int | None = None,
        exit_threshold: float | None = None,
        exit_mode: str | None = None,
        exit_at_step: int | None = None,
    ) -> Iterator[None]:
        """Per-call Ouro options: applied inside the block, the load-time ones restored after."""
        if loops is not None:
            self._m.set_loops(loops)
        if (exit_threshold, exit_mode, exit_at_step) != (None, None, None):
            self.set_exit(exit_threshold=exit_threshold, exit_mode=exit_mode, exit_at_step=exit_at_step)
        try:
            yield
        finally:
            self._m.set_loops(self._m.config["max_loops"])
            self.set_exit()

    # ---------------------------------------------------------------- tokens

    def tokenize(self, text: str | bytes, *, special: bool = False) -> list[int]:
        """Text -> token ids with the GGUF's tokenizer (no BOS is added).

        Args:
            special: match special-token texts such as ``<|im_start|>`` as their ids (HF
                tokenizers' default); False tokenizes them as plain text (llama.cpp's default).
        """
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return self._m.tokenize(raw, special)

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids -> text (special tokens rendered as their text)."""
        return self._m.detokenize([int(t) for t in tokens]).decode("utf-8", errors="replace")

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token (a piece of a UTF-8 sequence for byte tokens)."""
        return self._m.token_bytes(int(token))

    def token_type(self, token: int) -> int:
        """GGUF token type: 1 normal, 3 control, 4 user-defined, 5 unused, ..."""
        return self._m.token_type(int(token))

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
        return list(self._m.tokens)

    @property
    def last_exit_step(self) -> int:
        """The exit loop of the last token evaluated."""
        return self._m.last_exit_step

    @property
    def n_past(self) -> int:
        """Tokens in the context."""
        return self._m.n_past

    @property
    def n_vocab(self) -> int:
        return self._m.config["n_vocab"]

    @property
    def n_ctx(self) -> int:
        return self._m.config["n_ctx"]

    @property
    def exit_steps(self) -> list[int]:
        """The 0-based exit loop of every token in the context."""
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
        return self._m.kv_bytes

    def kv_slot(self, loop: int, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of one (loop, layer) KV slot, float32 ``[n_past, kv_dim]``."""
        return self._m.kv_slot(loop, layer)

    # ---------------------------------------------------------------- llama-cpp-python API

    def create_completion(self, prompt: str | list[int], **opts: Any) -> Any:
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

    def create_chat_completion(self, messages: list[dict[str, Any]], **opts: Any) -> Any:
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
        return (
            f"looplm: {os.path.basename(self.path)}: {c['arch']}, {c['n_layer']} layers x "
            f"{c['n_loops']} loops, {c['weight_type']}, exit gate {'yes' if c['has_exit_gate'] else 'no'}, "
            f"{c['file_size'] / 1e6:.0f} MB ({memory}), kernels {c['kernels']}, {c['n_threads']} threads, "
            f"n_ctx {c['n_ctx']} | {build_info()}"
        )

    def __repr__(self) -> str:
        return f"<looplm.Model {self.path!r} n_past={self.n_past}>"
