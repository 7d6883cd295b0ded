"""The scheduler: one thread that loads and owns the engine, admits requests from a bounded
queue into free slots and steps every active sequence together.

Each iteration admits what fits, drops the sequences whose clients went away (their slots are
free for the next iteration), then asks the engine for one step: a prompt chunk of up to
``n_batch`` tokens for a sequence still prefilling, its pending token for one decoding, so a long
prompt is interleaved with the others' tokens rather than stalling them. The native step
releases the GIL, so the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from .engine import Engine
from .metrics import Metrics
from .schemas import ApiError
from .sequence import Sequence


class Scheduler:
    """Owns the engine on its own thread.

    Args:
        load: makes the engine (called on the scheduler thread, so /health answers 503 meanwhile).
        queue_size: requests that may wait for a slot; one more is refused with 503.
        n_batch: prompt tokens per step of a prefilling sequence.
        metrics: where the counters go.
    """

    def __init__(self, load: Callable[[], Engine], *, queue_size: int, n_batch: int, metrics: Metrics) -> None:
        self._load = load
        self.queue_size = queue_size
        self.n_batch = n_batch
        self.metrics = metrics
        self.engine: Engine | None = None
        self.load_error: BaseException | None = None
        self.ready = threading.Event()  # set once loaded (or failed)
        self._cv = threading.Condition()
        self._queue: deque[Sequence] = deque()
        self._active: dict[int, Sequence] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="looplm-scheduler", daemon=True)

    # ---------------------------------------------------------------- handlers' side

    def start(self) -> None:
        self._thread.start()

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    def submit(self, seq: Sequence) -> None:
        """Queues a sequence; raises ApiError 503 (with Retry-After) when the queue is full."""
        with self._cv:
            if self._stopping:
                raise ApiError(503, "the server is shutting down", type="server_error", code="shutting_down")
            if len(self._queue) >= self.queue_size:
                raise ApiError(
                    503,
                    f"the server is busy: {len(self._queue)} requests are waiting (--queue-size); retry later",
                    type="server_error",
                    code="queue_full",
                    headers={"Retry-After": "1"},
                )
            self._queue.append(seq)
            self.metrics.queue_length = len(self._queue)
            self._cv.notify()

    def cancel(self, seq: Sequence) -> None:
        """The client went away: the sequence leaves its slot (or the queue) before the next step."""
        seq.cancelled.set()
        with self._cv:
            self._cv.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuses new requests, ends the queued and active ones with an error, joins the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout)

    # ---------------------------------------------------------------- the thread

    def _main(self) -> None:
        try:
            self.engine = self._load()
            self.metrics.n_slots = self.engine.n_slots
        except BaseException as e:  # noqa: BLE001 - reported by /health and the start-up
            self.load_error = e
            self.ready.set()
            return
        self.ready.set()
        engine = self.engine
        while True:
            with self._cv:
                while not self._stopping and not self._active and not self._queue:
                    self._cv.wait()
                if self._stopping:
                    break
                admitted = self._admit(engine.n_slots)
            for seq in admitted:
                engine.begin(seq.slot)
            self._drop_cancelled()
            if self._active:
                self._step(engine)
        err = ApiError(503, "the server shut down before this request finished", type="server_error",
                       code="shutting_down")  # fmt: skip
        with self._cv:
            for seq in list(self._queue) + list(self._active.values()):
                seq.fail(err)
            self._queue.clear()
            self._active.clear()

    def _admit(self, n_slots: int) -> list[Sequence]:
        admitted = []
        free = [s for s in range(n_slots) if s not in self._active]
        while free and self._queue:
            seq = self._queue.popleft()
            if seq.cancelled.is_set():
                continue
            seq.slot = free.pop(0)
            self._active[seq.slot] = seq
            admitted.append(seq)
        self.metrics.queue_length = len(self._queue)
        self.metrics.slots_busy = len(self._active)
        return admitted

    def _drop_cancelled(self) -> None:
        for slot, seq in list(self._active.items()):
            if seq.cancelled.is_set():
                del self._active[slot]
        self.metrics.slots_busy = len(self._active)

    def _step(self, engine: Engine) -> None:
        slots = list(self._active)
        work = []
        for s in slots:
            seq = self._active[s]
            tokens = seq.next_chunk(self.n_batch)
            work.append((s, tokens, seq.run, seq.chunk_ends(len(tokens))))
        try:
            results = engine.step(work)
        except Exception as e:  # noqa: BLE001 - ends this step's sequences, not the server
            for s in slots:
                self._active.pop(s).fail(ApiError(500, f"the model failed: {e}", type="server_error", code="engine"))
            return
        exits = []
        for (s, tokens, _, _), (logits, exit_step) in zip(work, results):
            seq = self._active[s]
            n_gen, had_first = seq.n_gen, seq.t_first is not None
            seq.evaluated(len(tokens), logits, exit_step)
            if seq.n_gen > n_gen:
                exits.append(exit_step)
            if not had_first and seq.t_first is not None:
                self.metrics.first_token(seq.t_first - seq.t_queued)
            if seq.finished:
                del self._active[s]
        self.metrics.tokens(exits)
        self.metrics.slots_busy = len(self._active)
