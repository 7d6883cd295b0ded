"""looplm: a GGUF converter and native CPU runtime for looped language models (Ouro).

Quick start::

    import looplm
    m = looplm.load("Ouro-1.4B-Thinking-Q4_0.gguf")
    print(looplm.generate(m, "Why is the sky blue?", max_tokens=64))
"""

from __future__ import annotations

from ._core import GGUFError, cpu_features, kernels_available
from ._core import __version__ as _native_version
from ._core import kernels as _kernels
from .generate import GenerationResponse, generate, load, stream_generate
from .model import Model
from .options import GenerationOptions, OuroOptions
from .sampling import PRESETS, SamplingParams

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "GGUFError",
    "GenerationOptions",
    "GenerationResponse",
    "Model",
    "OuroOptions",
    "SamplingParams",
    "__version__",
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


assert _native_version in (__version__, "dev"), "stale native module"
