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


class Engine(Protocol):
    """What the scheduler needs of an engine."""

    n_slots: int
    model: Model  # tokenizer, stop ids, n_ctx, resolve

    def begin(self, slot: int) -> None:
        """Empties a slot for a new sequence."""

    def step(self, work: list[tuple[int, list[int], Any]]) -> list[tuple[np.ndarray, int]]:
        """Evaluates (slot, tokens, run options) for every item; returns for each the logits
        and the exit loop of its last token."""
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

    def begin(self, slot: int) -> None:
        self.models[slot].reset()

    def step(self, work: list[tuple[int, list[int], Any]]) -> list[tuple[np.ndarray, int]]:
        out = []
        for slot, tokens, run in work:
            m = self.models[slot]
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
            model_options.get("use_mlock", False),
        )  # fmt: skip
        self.n_slots = n_slots

    def begin(self, slot: int) -> None:
        self._batch.reset(slot)

    def step(self, work: list[tuple[int, list[int], Any]]) -> list[tuple[np.ndarray, int]]:
        logits, exits = self._batch.step([w[0] for w in work], [w[1] for w in work], [w[2] for w in work])
        return [(logits[i], exits[i]) for i in range(len(work))]
