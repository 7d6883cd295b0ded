"""Sampling parameters: defaults, validation (shared by the API and the CLI) and presets.

Defaults follow llama-cpp-python (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no
repetition penalty), except ``max_tokens``: 256, not 16. Sampling itself runs in C++.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from . import _core


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. ``temperature <= 0`` means greedy."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int = 64
    seed: int | None = None  # None: a fresh random seed

    def validate(self) -> SamplingParams:
        """Raises ValueError naming the first bad value; returns self."""

        def num(name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 3.4e38:
                raise ValueError(f"{name} must be a finite number (of float32 range), got {v!r}")
            if lo is not None and (v <= lo if lo_open else v < lo):
                raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
            if hi is not None and v > hi:
                raise ValueError(f"{name} must be <= {hi}, got {v!r}")

        num("temperature", 0.0)
        num("top_p", 0.0, 1.0, lo_open=True)
        num("min_p", 0.0, 1.0)
        num("repeat_penalty", 0.0, lo_open=True)
        num("presence_penalty")
        num("frequency_penalty")
        for name in ("top_k", "penalty_last_n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not -1 <= v <= 2**31 - 1:
                raise ValueError(f"{name} must be an integer in -1..{2**31 - 1} (0 or -1: off/all), got {v!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        return self

    def sampler(self) -> _core.Sampler:
        """A native sampler for these parameters (a random seed when seed is None)."""
        seed = self.seed if self.seed is not None else int.from_bytes(__import__("os").urandom(8), "little")
        return _core.Sampler(
            float(self.temperature),
            int(self.top_k),
            float(self.top_p),
            float(self.min_p),
            float(self.repeat_penalty),
            float(self.presence_penalty),
            float(self.frequency_penalty),
            int(self.penalty_last_n),
            seed & (2**64 - 1),
        )

    def with_options(self, **opts: Any) -> SamplingParams:
        """A copy with the given fields changed (None values are ignored)."""
        known = {f.name for f in fields(self)}
        bad = [k for k in opts if k not in known]
        if bad:
            raise TypeError(f"unknown sampling option(s): {', '.join(bad)}")
        return replace(self, **{k: v for k, v in opts.items() if v is not None}).validate()


GREEDY = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0)

PRESETS: dict[str, SamplingParams] = {
    "default": SamplingParams(),
    "greedy": GREEDY,
    # the Ouro-*-Thinking model cards: temperature 1.0, top_p 0.7
    "thinking": SamplingParams(temperature=1.0, top_k=0, top_p=0.7, min_p=0.0),
}
