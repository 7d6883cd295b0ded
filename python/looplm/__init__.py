"""looplm: a GGUF converter and native CPU runtime for looped language models (Ouro).

Quick start::

    import looplm
    m = looplm.load("Ouro-1.4B-Thinking-Q4_0.gguf")
    print(looplm.generate(m, "Why is the sky blue?", max_tokens=64))

Errors: a missing file raises ``FileNotFoundError``; a file looplm cannot read or run raises
``GGUFError``, a checkpoint the converter refuses ``ConvertError`` (both ``ValueError``s);
other bad arguments raise ``ValueError``.
"""

from __future__ import annotations

from ._core import GGUFError, cpu_features, kernels_available
from ._core import __version__ as _native_version
from ._core import build_info as _build_info
from ._core import kernels as _kernels
from .generate import GenerationResponse, generate, load, stream_generate
from .model import Model
from .options import GenerationOptions, OuroOptions
from .sampling import PRESETS, SamplingParams

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "ConvertError",
    "GGUFError",
    "GenerationOptions",
    "GenerationResponse",
    "Model",
    "OuroOptions",
    "SamplingParams",
    "__version__",
    "build_info",
    "cpu_features",
    "generate",
    "kernels",
    "kernels_available",
    "load",
    "stream_generate",
]


def kernels() -> str:
    """The name of the kernel set this process runs ("ref", "avx2", "avx512", ...).

    Chosen once from the CPU's features; the environment variable ``LOOPLM_KERNELS`` forces
    a set (e.g. ``ref``) for debugging.
    """
    return _kernels()


def build_info() -> str:
    """One line on the build and the kernels in use, e.g. ``looplm 0.1.0 (Release, gcc 12.2.0,
    portable), kernels avx512 (available: ref, avx2, avx512; cpu: avx2 avx512 vnni)``."""
    b = _build_info()
    target = "-march=native" if b["native"] else "portable"
    return (
        f"looplm {__version__} ({b['build_type']}, {b['compiler']}, {target}), kernels {kernels()} "
        f"(available: {', '.join(kernels_available())}; cpu: {cpu_features() or 'no SIMD features detected'})"
    )


def __getattr__(name: str) -> object:
    # ConvertError lives with the converter, which imports gguf-py: loaded when first asked for.
    if name == "ConvertError":
        from .convert import ConvertError

        return ConvertError
    raise AttributeError(f"module 'looplm' has no attribute {name!r}")


assert _native_version in (__version__, "dev"), "stale native module"
