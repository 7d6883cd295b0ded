"""The batched runtime under the cache settings of docs/kv-cache.md: kv_share="last" and the
quantized KV types (type_k / type_v). Sequences stepped together, prompts fed in parts over
several steps (one chunk: ``ends`` False until the prompt's last part), each sequence with its
own loops and exit policy, equal their single-sequence runs (prefill, then one eval per decoded
token) bit for bit, and the NumPy reference run under the same chunks."""

from __future__ import annotations

import looplm
import looplm.reference as R
import numpy as np
import pytest
from looplm import _core

PROMPTS = [
    [5, 99, 180, 3, 250, 17, 300, 44, 120, 121, 7, 8, 9],
    [200, 201, 202, 31],
    [32, 33, 34, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    [64],
]
DECODE = [[11, 12, 13, 14, 15], [40, 41, 42, 43, 44], [70, 71, 72, 73, 74], [90, 91, 92, 93, 94]]
OPTIONS = [
    {},  # every loop, exact
    {"exit_threshold": 0.5},  # skip mode, gate exits
    {"exit_at_step": 1, "kv_fill": "first"},  # skip, always loop 1, loop 0's KV in the skipped slots
    {"loops": 2, "exit_threshold": 0.7, "exit_mode": "exact"},
]
CHUNK = 5
SETTINGS = [  # (kv_share, type_k, type_v)
    ("last", "f32", "f32"),
    ("last", "q8_0", "q8_0"),
    ("last", "q4_0", "f16"),
    ("none", "q4_0", "q8_0"),
]


@pytest.fixture(scope="module")
def varied(make_gguf):
    """Exits at different loops for different tokens; head size 32 so quantized KV blocks fit."""
    return make_gguf("f32", seed=2, gate_scale=6.0, gate_bias=-1.0, config={"head_dim": 32})


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def kv_kw(share: str, tk: str, tv: str) -> dict:
    return {"kv_share": share, "type_k": tk, "type_v": tv}


def batch_run(path, kv: dict, *, one_chunk: bool = True) -> tuple[list[np.ndarray], list[list[int]]]:
    """All sequences stepped together, sequence i starting i steps late so prompt parts overlap
    the others' decoding; each sequence's logits and exit loop after each of its items."""
    m = looplm.Model(path, **kv)  # for resolve
    b = _core.BatchModel(str(path), len(PROMPTS), 256, 0, 0, "f16", "", **kv)
    runs = [m.resolve(looplm.OuroOptions(**o)) for o in OPTIONS]
    feeds: list[list[tuple[list[int], bool] | None]] = []
    for i, p in enumerate(PROMPTS):
        parts = [p[k : k + CHUNK] for k in range(0, len(p), CHUNK)]
        items: list[tuple[list[int], bool] | None] = [None] * i
        items += [(part, not one_chunk or k == len(parts) - 1) for k, part in enumerate(parts)]
        items += [([t], True) for t in DECODE[i]]
        feeds.append(items)
    logits: list[list[np.ndarray]] = [[] for _ in PROMPTS]
    exits: list[list[int]] = [[] for _ in PROMPTS]
    for step in range(max(len(f) for f in feeds)):
        seqs = [i for i, f in enumerate(feeds) if step < len(f) and f[step] is not None]
        work = [feeds[i][step] for i in seqs]
        out, ex = b.step(seqs, [w[0] for w in work], [runs[i] for i in seqs], [w[1] for w in work])  # type: ignore[index]
        for row, i in enumerate(seqs):
            logits[i].append(out[row])
            exits[i].append(ex[row])
    for i, p in enumerate(PROMPTS):
        assert b.n_past(i) == len(p) + len(DECODE[i])
    return [np.stack(x) for x in logits], exits


def prompt_rows(i: int, one_chunk: bool) -> list[int]:
    """The token index each item of sequence i ends at."""
    n = len(PROMPTS[i])
    ends = [min(k + CHUNK, n) - 1 for k in range(0, n, CHUNK)]
    return ends + [n + t for t in range(len(DECODE[i]))]


@pytest.mark.parametrize(("share", "tk", "tv"), SETTINGS)
def test_each_sequence_equals_its_single_run(varied, share, tk, tv):
    kv = kv_kw(share, tk, tv)
    logits, exits = batch_run(varied, kv)
    seen = set()
    for i in range(len(PROMPTS)):
        m = looplm.Model(varied, **kv)
        run = m.resolve(looplm.OuroOptions(**OPTIONS[i]))
        ref = [m._prefill(PROMPTS[i], run)] + [m._eval([t], False, run) for t in DECODE[i]]
        ref_exits = m.exit_steps
        n = len(PROMPTS[i])
        got_rows = [len(prompt_rows(i, True)) - len(DECODE[i]) - 1 + k for k in range(len(DECODE[i]) + 1)]
        np.testing.assert_array_equal(logits[i][got_rows], np.stack(ref))  # float weights: bit for bit
        assert [exits[i][r] for r in got_rows] == [ref_exits[n - 1 + k] for k in range(len(DECODE[i]) + 1)]
        seen |= set(exits[i])
    assert len(seen) >= 3  # sequences left the loop at different loops


def reference(path, i: int, kv: dict, chunks: list[int]) -> R.RefResult:
    cfg, w = R.load_gguf(path)
    o = OPTIONS[i]
    mode = o.get("exit_mode", "skip" if ("exit_threshold" in o or "exit_at_step" in o) else "exact")
    return R.run(cfg, w, PROMPTS[i] + DECODE[i], loops=o.get("loops"), threshold=o.get("exit_threshold"),
                 exit_at_step=o.get("exit_at_step"), mode=mode, kv_fill=o.get("kv_fill", "exit"),
                 kv_share=kv["kv_share"], chunks=chunks, type_k=kv["type_k"], type_v=kv["type_v"])  # fmt: skip


@pytest.mark.parametrize(("share", "tk", "tv"), SETTINGS)
@pytest.mark.parametrize("one_chunk", [True, False])
def test_each_sequence_equals_the_numpy_reference(varied, share, tk, tv, one_chunk):
    """one_chunk False ends a chunk after every prompt part: the reference then runs the same
    parts as separate chunks (in the shared mode a different result, checked below)."""
    kv = kv_kw(share, tk, tv)
    logits, exits = batch_run(varied, kv, one_chunk=one_chunk)
    errs, quant_effect = [], []
    for i in range(len(PROMPTS)):
        n = len(PROMPTS[i])
        chunks = ([n] if one_chunk else [min(CHUNK, n - k) for k in range(0, n, CHUNK)]) + [1] * len(DECODE[i])
        ref = reference(varied, i, kv, chunks)
        rows = prompt_rows(i, one_chunk)
        want = ref.chosen_logits[rows]
        errs.append(rel_err(logits[i], want))
        if tk == tv == "f32":
            assert exits[i] == [int(ref.exit_steps[r]) for r in rows]
        else:
            exact = reference(varied, i, {**kv, "type_k": "f32", "type_v": "f32"}, chunks).chosen_logits[rows]
            quant_effect.append(rel_err(exact, want))
    if tk == tv == "f32":
        assert max(errs) < 1e-5, errs  # measured 9e-7
    else:
        # Measured 2e-7 to 9e-4, and 3e-3 / 8e-3 for the all-loops sequence under q8_0, where
        # a key rounded from f32 here and from float64 there lands in the other Q8 step (as
        # test_kv_quant notes) and the 4 loops carry it on; the quantization itself moves the
        # logits by 1e-2 to 0.36.
        assert max(errs) < 1e-2 and sorted(errs)[2] < 1e-3, errs
        assert min(quant_effect) > 1e-2, quant_effect


def test_chunks_matter_in_the_shared_mode(varied):
    """The ends flag is what makes a prompt in parts one chunk: without it the shared mode gives
    other logits (the parts read each other's kept K/V only)."""
    kv = kv_kw("last", "f32", "f32")
    one, _ = batch_run(varied, kv, one_chunk=True)
    parts, _ = batch_run(varied, kv, one_chunk=False)
    assert rel_err(one[0][-1], parts[0][-1]) > 1e-2  # measured 0.6 (sequence 0 runs every loop)


def test_memory_of_the_shared_mode(varied):
    """A decoding sequence in the shared mode holds one slot per layer of history plus one page
    of its chunk, far less than a cache per loop."""
    kw = {"kv_share": "last", "type_k": "q8_0", "type_v": "q8_0"}
    b = _core.BatchModel(str(varied), 2, 256, 0, 0, "f16", "", **kw)
    shared = _core.BatchModel(str(varied), 2, 256, 0, 0, "f16", "", type_k="q8_0", type_v="q8_0")
    m = looplm.Model(varied, **kw)
    run = m.resolve()
    for model in (b, shared):
        model.step([0], [list(range(1, 100))], [run])
        for t in range(60):
            model.step([0], [[t + 1]], [run])
    assert b.kv_bytes(0) < shared.kv_bytes(0) / 2
    assert b.kv_bytes(1) == 0


def test_bad_cache_settings_are_refused(varied, tiny_gguf):
    with pytest.raises(ValueError, match="kv_share"):
        _core.BatchModel(str(varied), 1, 16, 0, 0, "f16", "", kv_share="first")
    with pytest.raises(ValueError, match="type_k"):
        _core.BatchModel(str(varied), 1, 16, 0, 0, "f16", "", type_k="q5_0")
    with pytest.raises(ValueError, match="multiple of 32"):
        _core.BatchModel(str(tiny_gguf["f32"]), 1, 16, 0, 0, "q8_0", "")
    m = looplm.Model(varied)
    b = _core.BatchModel(str(varied), 1, 16, 0, 0, "f16", "")
    with pytest.raises(ValueError, match="same length"):
        b.step([0], [[1]], [m.resolve()], [True, False])
