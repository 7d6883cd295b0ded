"""The batched runtime (looplm._core.BatchModel): several sequences stepped together, prompts in
chunks interleaved with the others' decoding, each with its own loops and exit policy. Every
sequence's logits equal its single-sequence run (bit for bit with float weights, where every
kernel computes a row alone; to the tile kernels' rounding with quantized ones) and the NumPy
reference, including sequences exiting at different loops in the same step."""

from __future__ import annotations

import looplm
import looplm.reference as R
import numpy as np
import pytest
from looplm import _core

PROMPTS = [
    [5, 99, 180, 3, 250, 17, 300, 44, 120, 121, 7, 8, 9],
    [200, 201, 202, 31],
    [32, 33, 34, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18],
    [64],
]
DECODE = [[11, 12, 13, 14, 15, 16], [40, 41, 42, 43, 44, 45], [70, 71, 72, 73, 74, 75], [90, 91, 92, 93, 94, 95]]
OPTIONS = [
    {},  # every loop, exact
    {"exit_threshold": 0.5},  # skip mode, gate exits
    {"exit_at_step": 1},  # skip, always loop 1
    {"loops": 2, "exit_threshold": 0.7, "exit_mode": "exact"},
]


@pytest.fixture(scope="module")
def varied(make_gguf):
    return make_gguf("f32", seed=2, gate_scale=6.0, gate_bias=-1.0)


def batch_run(path, chunk: int, kv_type: str = "f32") -> tuple[list[list[np.ndarray]], list[list[int]]]:
    """Steps all sequences together: prompts in chunks, then the decode tokens; returns each
    sequence's logits and exit loop after each of its items."""
    m = looplm.Model(path, kv_type=kv_type)  # for resolve
    b = _core.BatchModel(str(path), len(PROMPTS), 256, 0, 0, kv_type, "")
    runs = [m.resolve(looplm.OuroOptions(**o)) for o in OPTIONS]
    feeds = []
    for i, p in enumerate(PROMPTS):
        # sequence i starts i steps late, so prefills overlap the others' decoding
        items: list[list[int] | None] = [None] * i
        items += [p[k : k + chunk] for k in range(0, len(p), chunk)] + [[t] for t in DECODE[i]]
        feeds.append(items)
    logits: list[list[np.ndarray]] = [[] for _ in PROMPTS]
    exits: list[list[int]] = [[] for _ in PROMPTS]
    for step in range(max(len(f) for f in feeds)):
        seqs = [i for i, f in enumerate(feeds) if step < len(f) and f[step] is not None]
        out, ex = b.step(seqs, [feeds[i][step] for i in seqs], [runs[i] for i in seqs])
        for row, i in enumerate(seqs):
            logits[i].append(out[row])
            exits[i].append(ex[row])
    for i, p in enumerate(PROMPTS):
        assert b.n_past(i) == len(p) + len(DECODE[i])
    return logits, exits


def single_run(path, i: int, kv_type: str = "f32") -> tuple[np.ndarray, list[int]]:
    """Sequence i alone: all-token logits and exit loops of prompt + decode tokens."""
    m = looplm.Model(path, kv_type=kv_type)
    tokens = PROMPTS[i] + DECODE[i]
    out = m.eval(tokens, all_logits=True, options=looplm.OuroOptions(**OPTIONS[i]))
    return out, m.exit_steps


def last_rows(i: int, chunk: int) -> list[int]:
    """The token index each batch item of sequence i ends at."""
    n = len(PROMPTS[i])
    ends = [min(k + chunk, n) - 1 for k in range(0, n, chunk)]
    return ends + [n + t for t in range(len(DECODE[i]))]


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_each_sequence_equals_its_single_run(varied, chunk):
    logits, exits = batch_run(varied, chunk)
    seen_exits = set()
    for i in range(len(PROMPTS)):
        ref, ref_exits = single_run(varied, i)
        rows = last_rows(i, chunk)
        np.testing.assert_array_equal(np.stack(logits[i]), ref[rows])  # float weights: bit for bit
        assert exits[i] == [ref_exits[r] for r in rows]
        seen_exits |= set(exits[i])
    assert len(seen_exits) >= 3  # sequences left the loop at different loops


def test_each_sequence_equals_the_numpy_reference(varied):
    logits, exits = batch_run(varied, 4)
    cfg, w = R.load_gguf(varied)
    for i, o in enumerate(OPTIONS):
        mode = o.get("exit_mode", "skip" if ("exit_threshold" in o or "exit_at_step" in o) else "exact")
        ref = R.run(cfg, w, PROMPTS[i] + DECODE[i], loops=o.get("loops"), threshold=o.get("exit_threshold"),
                    exit_at_step=o.get("exit_at_step"), mode=mode)  # fmt: skip
        rows = last_rows(i, 4)
        got = np.stack(logits[i])
        want = ref.chosen_logits[rows]
        assert np.abs(got - want).max() / np.abs(want).max() < 1e-4, i
        assert exits[i] == [int(ref.exit_steps[r]) for r in rows]


@pytest.mark.parametrize("wtype", ["q8_0", "q4_0"])
def test_quantized_weights_match_single_runs(make_gguf, wtype):
    """Rows that share a weight tile with other sequences may round an activation to the next
    Q8 step (a float sum in another order), as a prompt evaluated in other micro-batches does:
    the logits then agree to the quantization's accuracy (cosine, as test_runtime's reference
    check) and the exits are the same."""
    path = make_gguf(wtype, seed=2, gate_scale=6.0, gate_bias=-1.0)
    logits, exits = batch_run(path, 5, kv_type="f16")
    for i in range(len(PROMPTS)):
        ref, ref_exits = single_run(path, i, kv_type="f16")
        rows = last_rows(i, 5)
        assert exits[i] == [ref_exits[r] for r in rows]
        for got, want in zip(logits[i], ref[rows]):
            cos = float(got @ want / np.linalg.norm(got) / np.linalg.norm(want))
            assert cos > 0.9995, (i, cos)


def test_bad_steps_are_refused_before_any_work(varied):
    m = looplm.Model(varied)
    b = _core.BatchModel(str(varied), 2, 8, 0, 0, "f16", "")
    run = m.resolve()
    with pytest.raises(ValueError, match="appears twice"):
        b.step([0, 0], [[1], [2]], [run, run])
    with pytest.raises(ValueError, match="no sequence 2"):
        b.step([2], [[1]], [run])
    with pytest.raises(ValueError, match="out of range"):
        b.step([0, 1], [[1], [10**6]], [run, run])
    with pytest.raises(ValueError, match="context overflow"):
        b.step([0, 1], [[1], list(range(9))], [run, run])
    assert (b.n_past(0), b.n_past(1)) == (0, 0)
    b.step([1], [[1, 2, 3]], [run])
    b.reset(1)
    assert b.n_past(1) == 0


def test_bench_batch_prints_one_row_per_stream_count(tiny_gguf):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "looplm.cli", "bench", "-m", str(tiny_gguf["q8_0"]), "--batch", "1,3", "-n", "4",
           "-p", "5", "-b", "2", "-r", "1", "--exit-threshold", "1,0.5"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("| 4 ")]
    assert [(c[1].strip(), c[3].strip()) for c in rows] == [("1", "1"), ("1", "3"), ("0.5", "1"), ("0.5", "3")]
    assert all(c[6].strip() == "1.00x" for c in rows if c[3].strip() == "1")
    assert all(c[8].strip().endswith(" s") for c in rows)  # the time to first token
    full = [float(c[7]) for c in rows if c[1].strip() == "1"]
    assert full == [4.0, 4.0]  # threshold 1: every loop
