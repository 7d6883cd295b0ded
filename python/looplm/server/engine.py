"""The engines a scheduler drives: each holds ``n_slots`` independent sequences and evaluates
the next chunk of every active one per :meth:`step`.

:class:`BatchEngine` (the default) runs all of them in one batched step of the native runtime
(``_core.BatchModel``): every weight matrix is read once per step for all sequences, and each
sequence leaves the loop at its own exit. :class:`SlotEngine` runs the single-sequence runtime:
one :class:`looplm.Model` (one context) per slot over the same mapped file, the chunks evaluated
one after another (``--engine slots``, the baseline the batch engine is measured against).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .. import _core
from ..model import Model

WorkItem = tuple[int, list[int], Any, bool]


class Engine(Protocol):
    """What the scheduler needs of an engine."""

    n_slots: int
    model: Model  # tokenizer, stop ids, n_ctx, resolve

    def begin(self, slot: int) -> None:
        """Empties a slot for a new sequence."""

    def step(self, work: list[WorkItem]) -> list[tuple[np.ndarray, int]]:
        """Evaluates (slot, tokens, run options, end) for every item; returns for each the
        logits and the exit loop of its last token. ``end`` False: the tokens are a part of a
        prompt whose chunk goes on in the slot's next item (docs/kv-cache.md: with
        kv_share "last" a prompt is one chunk, however many steps feed it)."""
        ...


class SlotEngine:
    """One :class:`looplm.Model` per slot, evaluated one after another.

    Args:
        path: the GGUF file.
        n_slots: sequences held at once.
        **model_options: keyword options of :class:`looplm.Model` (n_ctx, n_threads, ...).
    """

    def __init__(self, path: str, n_slots: int, **model_options: Any) -> None:
        self.models = [Model(path, **model_options) for _ in range(n_slots)]
        self.model = self.models[0]
        self.n_slots = n_slots
        # kv_share "last": one eval call is one chunk, so a prompt's parts wait for its last one.
        self._shared = self.model.config["kv_share"] == "last"
        self._parts: dict[int, list[int]] = {}

    def begin(self, slot: int) -> None:
        self.models[slot].reset()
        self._parts.pop(slot, None)

    def step(self, work: list[WorkItem]) -> list[tuple[np.ndarray, int]]:
        out = []
        for slot, tokens, run, end in work:
            m = self.models[slot]
            if self._shared and not end:
                self._parts.setdefault(slot, []).extend(tokens)
                out.append((np.zeros(m.n_vocab, dtype=np.float32), 0))  # a prompt part: no logits wanted
                continue
            tokens = self._parts.pop(slot, []) + list(tokens)
            logits = m._eval(tokens, False, run)
            out.append((logits, m.last_exit_step))
        return out


class BatchEngine:
    """All slots in one ``_core.BatchModel``, stepped together.

    Args:
        path: the GGUF file.
        n_slots: sequences held at once.
        **model_options: keyword options of :class:`looplm.Model`; a Model with them gives the
            tokenizer, the option resolution and the configuration (its own context stays empty).
    """

    def __init__(self, path: str, n_slots: int, **model_options: Any) -> None:
        self.model = Model(path, **model_options)
        c = self.model.config
        self._batch = _core.BatchModel(
            path, n_slots, c["n_ctx"], c["n_threads"], c["max_loops"], c["kv_type"],
            model_options.get("kernels") or "", model_options.get("use_mmap", True),
            model_options.get("use_mlock", False), type_k=c["type_k"], type_v=c["type_v"],
            kv_share=c["kv_share"],
        )  # fmt: skip
        self.n_slots = n_slots

    def begin(self, slot: int) -> None:
        self._batch.reset(slot)

    def step(self, work: list[WorkItem]) -> list[tuple[np.ndarray, int]]:
        logits, exits = self._batch.step(
            [w[0] for w in work], [w[1] for w in work], [w[2] for w in work], [w[3] for w in work]
        )
        return [(logits[i], exits[i]) for i in range(len(work))]
