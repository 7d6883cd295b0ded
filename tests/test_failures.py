"""A failed call leaves the context as it was; a generation holds its model (issue 18, items 6
and 7; docs/robustness.md).

Failures are injected with the runtime's fault switch (``_core._arm_fault``, runtime/fault.h):
the n-th pass through a named stage of an evaluation raises MemoryError, as a failed
allocation there would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import looplm
import numpy as np
import pytest
from looplm import _core

BUSY = "this Model is in use by another thread"
PROMPT = [5, 9, 17, 33, 40, 41]
MORE = [50, 51, 52, 53, 54, 55, 56, 57, 58, 59]  # three micro-batches of n_batch = 4

# (stage, passes): every stage of an eval of MORE, at its first, a middle and its last pass.
# forward.block passes once per (loop, layer, micro-batch): at least 2 loops x 2 layers x 3.
STAGES = [
    ("eval.kv", 1),
    ("forward.embed", 1),
    ("forward.embed", 2),
    ("forward.embed", 3),
    ("forward.commit", 1),
    ("forward.commit", 3),
    ("forward.block", 1),
    ("forward.block", 7),
    ("forward.block", 12),
    ("forward.logits", 1),
    ("forward.logits", 3),
]


@pytest.fixture(scope="module")
def tiny_f32(tiny_gguf):
    return tiny_gguf["f32"]


@pytest.fixture(autouse=True)
def _disarm():
    yield
    _core._arm_fault("", 0)


def _model(path, **kw) -> looplm.Model:
    return looplm.Model(path, n_ctx=64, n_threads=1, kv_type="f32", n_batch=4, **kw)


def _state(m: looplm.Model) -> tuple:
    return m.n_past, m.tokens, m.exit_steps


@pytest.mark.parametrize(("stage", "nth"), STAGES)
@pytest.mark.parametrize("per_call", [False, True], ids=["load-options", "per-call-options"])
def test_failed_eval_leaves_the_context_as_it_was(tiny_f32, stage, nth, per_call):
    m = _model(tiny_f32)
    m.eval(PROMPT)
    before = _state(m)
    options = looplm.OuroOptions(loops=2, exit_threshold=0.5, exit_mode="exact") if per_call else None
    _core._arm_fault(stage, nth)
    with pytest.raises(MemoryError):
        m.eval(MORE, all_logits=True, options=options)
    assert _state(m) == before
    # The options record is intact: the whole context is still reusable by a prefill with
    # the load-time options (a leftover run of the failed call's options would cut it).
    m.prefill([*PROMPT, 60])
    assert m.reused_prefix == len(PROMPT)
    # And the context computes what a fresh model computes.
    fresh = _model(tiny_f32)
    fresh.eval(PROMPT)
    np.testing.assert_array_equal(m.eval(MORE[:3], all_logits=True), fresh.eval([60, *MORE[:3]], all_logits=True)[1:])
    assert m.tokens == fresh.tokens and m.exit_steps == fresh.exit_steps


@pytest.mark.parametrize(("stage", "nth"), [("eval.kv", 2), ("forward.commit", 2), ("forward.logits", 3)])
def test_failed_prefill_leaves_a_consistent_context(tiny_f32, stage, nth):
    """A prefill replaces the context chunk by chunk: a failure leaves the chunks evaluated
    before it (as Ctrl-C does), each whole, and the next generation is a fresh model's."""
    m = _model(tiny_f32)
    m.eval([7, 8, 9])
    _core._arm_fault(stage, nth)
    with pytest.raises(MemoryError):
        m.prefill(PROMPT + MORE)
    n = m.n_past
    assert m.tokens == (PROMPT + MORE)[:n] and len(m.exit_steps) == n and n % 4 == 0
    expect = looplm.generate(_model(tiny_f32), PROMPT + MORE, max_tokens=6, temperature=0)
    assert looplm.generate(m, PROMPT + MORE, max_tokens=6, temperature=0) == expect


def test_failed_generation_then_a_shared_prefix(tiny_f32):
    """The issue's case: after a failed call, a generation sharing a prefix works (it failed
    with 'truncate(4): the context holds 0 tokens')."""
    m = _model(tiny_f32)
    looplm.generate(m, PROMPT, max_tokens=4, temperature=0)
    _core._arm_fault("forward.commit", 1)
    with pytest.raises(MemoryError):
        m.eval(MORE)
    expect = looplm.generate(_model(tiny_f32), [*PROMPT, 1], max_tokens=6, temperature=0)
    assert looplm.generate(m, [*PROMPT, 1], max_tokens=6, temperature=0) == expect


REAL_OOM = r"""
import resource, sys
import numpy as np
import looplm
m = looplm.Model(sys.argv[1], n_ctx=32768, n_threads=1)
m.eval([1, 2, 3, 4])
before = (m.n_past, m.tokens, m.exit_steps)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
with open("/proc/self/statm") as f:
    vm = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + (32 << 20), hard))
try:
    m.eval(np.arange(30000) % m.n_vocab, all_logits=True)  # 30000 x n_vocab floats: > 32 MB
    print("no failure")
except MemoryError:
    pass
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
assert (m.n_past, m.tokens, m.exit_steps) == before, (m.n_past, len(m.tokens), len(m.exit_steps))
m.eval([5, 6])
assert m.n_past == 6 and len(m.tokens) == 6 and len(m.exit_steps) == 6
print("ok")
"""


def test_real_out_of_memory_leaves_the_context_as_it_was(tiny_f32):
    """Without the fault switch: an eval of 30,000 tokens under an address-space limit."""
    r = subprocess.run(
        [sys.executable, "-c", REAL_OOM, str(tiny_f32)], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr[-2000:])


# ---------------------------------------------------------------- a generation holds its model


def test_a_thread_cannot_slip_into_a_paused_generation(tiny_f32):
    """Thread A's generation is paused between two evaluations (its consumer is slow): every
    call of thread B that reads or changes the context is refused, and A's text is a fresh
    model's."""
    m = _model(tiny_f32)
    expect = looplm.generate(_model(tiny_f32), "Hello world", max_tokens=10, temperature=0)
    stream = looplm.stream_generate(m, "Hello world", max_tokens=10, temperature=0)
    parts = [next(stream).text, next(stream).text]
    refused: list[str] = []

    def intruder() -> None:
        calls = [
            lambda: looplm.generate(m, "Other text", max_tokens=3, temperature=0),
            lambda: looplm.generate(m, "Hello world", max_tokens=3, temperature=0, loops=2),
            lambda: m.eval([3]),
            lambda: m.reset(),
            lambda: m.prefill([1, 2]),
            lambda: m.tokens,
            lambda: m.exit_steps,
            lambda: m.create_completion("x", max_tokens=2),
        ]
        for call in calls:
            try:
                call()
                refused.append("ran")
            except RuntimeError as e:
                refused.append("busy" if str(e) == BUSY else repr(e))

    t = threading.Thread(target=intruder)
    t.start()
    t.join(60)
    assert refused == ["busy"] * 8, refused
    parts += [r.text for r in stream]
    assert "".join(parts) == expect


def test_generations_racing_under_a_tiny_switch_interval(tiny_f32):
    """Threads switching every microsecond, each streaming to a consumer that takes a moment
    per piece (the model sits idle between two evaluations then): every generation runs whole
    or is refused, and every completed one is a fresh model's text. Without the hold, another
    thread's generation slipped in between two evaluations and changed the text."""
    prompts = [[5, 9, 17], [40, 41, 42, 43], [7]]
    fresh = {tuple(p): looplm.generate(_model(tiny_f32), p, max_tokens=24, temperature=0) for p in prompts}
    m = _model(tiny_f32)
    results: list[tuple[tuple[int, ...], str]] = []
    errors: list[str] = []
    start = threading.Barrier(len(prompts))

    def worker(prompt: list[int]) -> None:
        start.wait()
        done = 0
        for _ in range(2000):
            if done == 2:
                break
            try:
                text = ""
                for r in looplm.stream_generate(m, prompt, max_tokens=24, temperature=0):
                    text += r.text
                    time.sleep(0.0005)
                results.append((tuple(prompt), text))
                done += 1
            except RuntimeError as e:
                if str(e) != BUSY:
                    errors.append(repr(e))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert results, "no generation completed"
    wrong = [p for p, text in results if text != fresh[p]]
    assert not wrong, f"{len(wrong)} of {len(results)} generations were changed by another thread"
