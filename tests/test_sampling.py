"""The native sampler on hand-made logits."""

from __future__ import annotations

import numpy as np
import pytest
from looplm import SamplingParams

LOGITS = np.array([1.0, 3.0, 2.5, -1.0, 0.0, 2.9], dtype=np.float32)
NOHIST = np.zeros(0, np.int32)


def draw(params: SamplingParams, logits=LOGITS, history=NOHIST, n: int = 1) -> list[int]:
    s = params.sampler()
    return [s.sample(logits, history) for _ in range(n)]


def test_greedy():
    assert draw(SamplingParams(temperature=0), n=5) == [1] * 5


def test_top_k_1_is_greedy():
    assert set(draw(SamplingParams(temperature=5.0, top_k=1, seed=1), n=50)) == {1}


def test_seed_determinism():
    p = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=1234)
    assert draw(p, n=200) == draw(p, n=200)
    assert draw(p, n=200) != draw(p.with_options(seed=4321), n=200)


def test_distribution_matches_softmax():
    p = SamplingParams(temperature=0.7, top_k=0, top_p=1.0, min_p=0.0, seed=7)
    n = 40000
    counts = np.bincount(draw(p, n=n), minlength=len(LOGITS)) / n
    expect = np.exp(LOGITS / 0.7 - (LOGITS / 0.7).max())
    expect /= expect.sum()
    np.testing.assert_allclose(counts, expect, atol=0.01)


def test_top_k():
    assert set(draw(SamplingParams(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0, seed=3), n=500)) == {1, 5}


def test_top_p():
    # softmax at temperature 1 (before temperature, as in llama.cpp): p = .38 .35 .23 ...
    got = set(draw(SamplingParams(temperature=2.0, top_k=0, top_p=0.5, min_p=0.0, seed=3), n=500))
    assert got == {1, 5}
    assert set(draw(SamplingParams(temperature=2.0, top_k=0, top_p=0.3, min_p=0.0, seed=3), n=200)) == {1}


def test_min_p():
    # keep p >= min_p * p_max: exp(2.5 - 3) = .61, exp(2.9 - 3) = .90, exp(1 - 3) = .14
    got = set(draw(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.5, seed=3), n=500))
    assert got == {1, 2, 5}


def test_repeat_penalty():
    history = np.array([1, 1, 5], np.int32)
    # 3.0 / 2 = 1.5 and 2.9 / 2 = 1.45: token 2 (2.5) becomes the best
    assert draw(SamplingParams(temperature=0, repeat_penalty=2.0), history=history) == [2]
    neg = np.array([-1.0, -2.0], np.float32)  # negative logits are multiplied
    assert draw(SamplingParams(temperature=0, repeat_penalty=3.0), logits=neg, history=np.array([0], np.int32)) == [1]


def test_presence_and_frequency_penalties():
    history = np.array([1, 1, 1, 5], np.int32)
    assert draw(SamplingParams(temperature=0, presence_penalty=0.6), history=history) == [2]
    # frequency: token 1 loses 3 * 0.2 = .6 -> 2.4 < 2.5; token 5 loses .2 -> 2.7: best
    assert draw(SamplingParams(temperature=0, frequency_penalty=0.2), history=history) == [5]


def test_penalty_window():
    history = np.array([1] + [3] * 10, np.int32)  # token 1 is outside the last 4
    assert draw(SamplingParams(temperature=0, repeat_penalty=10.0, penalty_last_n=4), history=history) == [1]
    assert draw(SamplingParams(temperature=0, repeat_penalty=10.0, penalty_last_n=-1), history=history) == [5]


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"min_p": -0.1},
        {"min_p": 2},
        {"repeat_penalty": 0},
        {"top_k": -5},
        {"seed": -1},
        {"temperature": float("nan")},
        {"top_k": 1.5},
        {"presence_penalty": float("inf")},
    ],
)
def test_invalid_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SamplingParams().with_options(**bad)


def test_unknown_option():
    with pytest.raises(TypeError, match="temprature"):
        SamplingParams().with_options(temprature=1)


def test_thinking_preset():
    from looplm import PRESETS

    assert (PRESETS["thinking"].temperature, PRESETS["thinking"].top_p) == (1.0, 0.7)
