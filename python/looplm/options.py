"""The per-call options, each built once at an entry point and then passed along unchanged.

:class:`OuroOptions` are the looped model's own (loops and the exit policy); their meaning
(the file's default threshold, the inferred exit mode, the ranges) belongs to the runtime,
which resolves them (``Model.resolve``). :class:`GenerationOptions` add what the token loop
needs: the length limit, sampling and stop strings. Errors name the API's keyword; the CLI
translates keywords to its flags in one table.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .sampling import SamplingParams

INT32_MAX = 2**31 - 1


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int(name: str, v: object, lo: int, hi: int = INT32_MAX) -> int:
    """Returns v if it is an integer in lo..hi, else raises ValueError naming the keyword."""
    if not _is_int(v) or not lo <= v <= hi:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    return v  # type: ignore[return-value]


@dataclass(frozen=True)
class OuroOptions:
    """Loops per token and the exit policy; None takes the load-time (then the file's) value.

    Attributes:
        loops: loops per token (1..the loops the KV cache has slots for).
        exit_threshold: the exit gate's CDF threshold; below 1 lets tokens exit early.
        exit_mode: "skip" (stop at the exit loop) or "exact" (run all, pick the exit's logits).
        exit_at_step: always exit at this 0-based loop.
        kv_fill: how skip mode fills the skipped loops' KV: "exit" or "first".
    """

    loops: int | None = None
    exit_threshold: float | None = None
    exit_mode: str | None = None
    exit_at_step: int | None = None
    kv_fill: str | None = None

    def __post_init__(self) -> None:
        # Integers of the runtime's width here; their ranges are the runtime's (Model.resolve).
        for name in ("loops", "exit_at_step"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), -INT32_MAX - 1)
        t = self.exit_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= t <= 1.0):
            raise ValueError(f"exit_threshold must be a number in 0..1 (1: every loop runs), got {t!r}")
        for name in ("exit_mode", "kv_fill"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name} must be a string, got {v!r}")

    def merged(self, over: OuroOptions) -> OuroOptions:
        """These options with the fields ``over`` sets taken from ``over``."""
        return replace(
            self, **{f.name: getattr(over, f.name) for f in fields(over) if getattr(over, f.name) is not None}
        )

    def as_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class GenerationOptions:
    """Everything one generation runs with.

    Attributes:
        max_tokens: most tokens to generate; None (or -1 when built) means until a stop token
            or a full context.
        sampling: how the next token is chosen.
        stop: strings that end generation.
        ouro: loops and exit policy for this call.
    """

    max_tokens: int | None = 256
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    ouro: OuroOptions = field(default_factory=OuroOptions)

    @classmethod
    def build(
        cls,
        *,
        max_tokens: int | None = 256,
        sampling: SamplingParams | None = None,
        stop: str | list[str] | tuple[str, ...] | None = None,
        ouro: OuroOptions | None = None,
        **sampling_options: object,
    ) -> GenerationOptions:
        """Validates the keyword options of an entry point into one value.

        Args:
            max_tokens: an integer >= 0, or -1 / None for no limit.
            sampling: base sampling parameters (default: llama-cpp-python's), overridden by
                ``sampling_options`` (temperature, top_k, ...; None values are ignored).
            stop: one string or several.
            ouro: loops and exit options.

        Raises:
            ValueError: naming the keyword at fault. TypeError: an unknown keyword.
        """
        if max_tokens is not None:
            check_int("max_tokens", max_tokens, -1)
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        if any(not isinstance(s, str) or not s for s in stops):
            raise ValueError("stop strings must be non-empty strings")
        params = (sampling or SamplingParams()).with_options(**sampling_options)
        limit = None if max_tokens is None or max_tokens == -1 else max_tokens
        return cls(limit, params, stops, ouro or OuroOptions())


__all__ = ["GenerationOptions", "OuroOptions"]
