"""config.json is checked before any work (convert/ouro_arch.py CONFIG_KEYS; issue 18, item 3):
types (real booleans, integers that are not booleans, finite floats) and the runtime's ranges,
which come from csrc/model/limits.h through looplm._core.config_limits(); and its sizes
against the tensors found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import looplm
import numpy as np
import ouro_fixtures as fx
import pytest
from gguf_edit import rewrite
from looplm import _core
from looplm.convert import ConvertError, convert_checkpoint
from looplm.convert.ouro_arch import CONFIG_KEYS

NAN, INF = float("nan"), float("inf")

# config.json override -> a text the error must contain (the key, and why)
BAD = {
    "layers_1e9": ({"num_hidden_layers": 10**9}, "'num_hidden_layers' = 1000000000 is out of range (1..4096"),
    "layers_1e6": ({"num_hidden_layers": 10**6}, "'num_hidden_layers' = 1000000 is out of range"),
    "layers_bool": ({"num_hidden_layers": True}, "'num_hidden_layers' = true must be an integer"),
    "layers_float": ({"num_hidden_layers": 2.0}, "'num_hidden_layers' = 2.0 must be an integer"),
    "layers_string": ({"num_hidden_layers": "2"}, "'num_hidden_layers' = \"2\" must be an integer"),
    "tie_string": ({"tie_word_embeddings": "false"}, "'tie_word_embeddings' = \"false\" must be true or false"),
    "tie_int": ({"tie_word_embeddings": 0}, "'tie_word_embeddings' = 0 must be true or false"),
    "loops_1000": ({"total_ut_steps": 1000}, "'total_ut_steps' = 1000 is out of range (1..64"),
    "loops_2_33": ({"total_ut_steps": 2**33}, "'total_ut_steps' = 8589934592 is out of range"),
    "loops_0": ({"total_ut_steps": 0}, "'total_ut_steps' = 0 is out of range"),
    "eps_nan": ({"rms_norm_eps": NAN}, "'rms_norm_eps' = NaN must be a finite number > 0"),
    "eps_negative": ({"rms_norm_eps": -1}, "'rms_norm_eps' = -1 must be a finite number > 0"),
    "eps_1e300": ({"rms_norm_eps": 1e300}, "'rms_norm_eps' = 1e+300 must be a finite number > 0 (as a float32"),
    "eps_underflow": ({"rms_norm_eps": 1e-50}, "'rms_norm_eps' = 1e-50 must be a finite number > 0"),
    "eps_inf": ({"rms_norm_eps": INF}, "'rms_norm_eps' = Infinity must be"),
    "theta_negative": ({"rope_theta": -5}, "'rope_theta' = -5 must be a finite number > 0"),
    "threshold_nan": ({"early_exit_threshold": NAN}, "'early_exit_threshold' = NaN must be a finite number >= 0"),
    "threshold_negative": ({"early_exit_threshold": -0.5}, "'early_exit_threshold' = -0.5 must be"),
    "ctx_0": ({"max_position_embeddings": 0}, "'max_position_embeddings' = 0 is out of range (1..2147483647"),
    "ctx_2_40": ({"max_position_embeddings": 2**40}, "'max_position_embeddings' = 1099511627776 is out of range"),
    "architectures_int": ({"architectures": 5}, "'architectures' = 5 must be a list of strings"),
    "model_type_list": ({"model_type": ["ouro"]}, "'model_type' = list must be a string"),
    "heads_zero": ({"num_attention_heads": 0}, "'num_attention_heads' = 0 is out of range"),
    "kv_heads_above": ({"num_key_value_heads": 8}, "num_attention_heads 4 is not a multiple of num_key_value_heads 8"),
    "head_dim_odd": ({"head_dim": 15}, "head_dim 15 must be even"),
    "head_dim_big": ({"head_dim": 2048}, "'head_dim' = 2048 is out of range (1..1024"),
    "hidden_huge": ({"hidden_size": 2**17}, "'hidden_size' = 131072 is out of range (1..65536"),
    "vocab_negative": ({"vocab_size": -3}, "'vocab_size' = -3 is out of range"),
    "sliding_string": ({"use_sliding_window": "no"}, "'use_sliding_window' = \"no\" must be true or false"),
    "bias_true": ({"attention_bias": True}, "attention_bias = true is not supported"),
    "name_int": ({"_name_or_path": 7}, "'_name_or_path' must be a string"),
    # sizes against the tensors found
    "layers_more_than_found": ({"num_hidden_layers": 3}, "num_hidden_layers = 3, but the checkpoint holds layers 0..1"),
    "layers_fewer_than_found": (
        {"num_hidden_layers": 1},
        "num_hidden_layers = 1, but the checkpoint holds layers 0..1",
    ),
    "vocab_mismatch": ({"vocab_size": 999}, "vocab_size = 999, but 'model.embed_tokens.weight' has"),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return fx.make_checkpoint(tmp_path_factory.mktemp("cfg") / "base", seed=4)


def _with_config(base: Path, dst: Path, **overrides) -> Path:
    dst.mkdir()
    for f in base.iterdir():
        (dst / f.name).symlink_to(f)
    (dst / "config.json").unlink()
    cfg = json.loads((base / "config.json").read_text())
    cfg.update(overrides)
    (dst / "config.json").write_text(json.dumps(cfg))  # NaN and Infinity as Python's json writes them
    return dst


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_value_is_refused_before_any_work(base, tmp_path, case):
    overrides, needle = BAD[case]
    folder = _with_config(base, tmp_path / "ckpt", **overrides)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConvertError) as e:
        convert_checkpoint(folder, out / "m.gguf", "q8_0", progress=False)
    msg = str(e.value)
    assert msg.startswith(str(folder / "config.json")) and needle in msg and "\n" not in msg, msg
    assert list(out.iterdir()) == []


def test_cli_one_line(base, tmp_path):
    folder = _with_config(base, tmp_path / "ckpt", num_hidden_layers=10**9)
    r = subprocess.run(
        [sys.executable, "-m", "looplm.cli", "convert", str(folder), "-o", str(tmp_path / "m.gguf")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "num_hidden_layers" in lines[0], r.stderr


def test_real_booleans_convert_as_meant(tmp_path):
    """tie_word_embeddings false keeps lm_head (a string "false" used to be read as true and
    drop it); true with an lm_head that differs from the embedding is refused."""
    untied = fx.make_checkpoint(tmp_path / "untied", seed=5)
    path = convert_checkpoint(untied, tmp_path / "u.gguf", "f32", progress=False).path
    assert "output.weight" in {t.name for t in gguf.GGUFReader(str(path)).tensors}
    lied = _with_config(untied, tmp_path / "lied", tie_word_embeddings=True)
    with pytest.raises(ConvertError, match=r"'lm_head\.weight' differs from 'model\.embed_tokens\.weight'"):
        convert_checkpoint(lied, tmp_path / "l.gguf", "f32", progress=False)


def test_defaults_and_derived_values(base, tmp_path):
    """Optional keys absent or null take their defaults (head_dim from hidden/heads)."""
    folder = _with_config(
        base, tmp_path / "ckpt", head_dim=None, num_key_value_heads=None, rope_theta=None, early_exit_threshold=None
    )
    path = convert_checkpoint(folder, tmp_path / "m.gguf", "f32", progress=False).path
    m = looplm.Model(path, n_threads=1)
    assert m.config["head_dim"] == 16 and m.config["n_head_kv"] == 4 and m.config["rope_theta"] == 10000.0


def test_the_converter_uses_the_runtimes_limits():
    limits = _core.config_limits()
    used = {
        "num_hidden_layers": "n_layer",
        "hidden_size": "n_embd",
        "intermediate_size": "n_ff",
        "num_attention_heads": "n_head",
        "head_dim": "head_dim",
        "max_position_embeddings": "n_ctx_train",
        "total_ut_steps": "n_loops",
        "vocab_size": "n_vocab",
    }
    for key, limit in used.items():
        assert CONFIG_KEYS[key].hi == limits[limit], key


@pytest.mark.parametrize(
    ("key", "limit"),
    [("ouro.num_loops", "n_loops"), ("ouro.context_length", "n_ctx_train"), ("ouro.block_count", "n_layer")],
)
def test_the_runtime_enforces_those_limits(tiny_gguf, tmp_path, key, limit):
    """A GGUF one above the limit is refused by the loader, naming the key: the numbers the
    converter checks are the ones the runtime enforces."""
    hi = _core.config_limits()[limit]
    over = rewrite(tiny_gguf["f32"], tmp_path / "over.gguf", set_keys={key: (hi + 1, gguf.GGUFValueType.UINT64, None)})
    with pytest.raises(looplm.GGUFError, match=f"'{key}' = {hi + 1}"):
        looplm.Model(over, n_threads=1)
    if key != "ouro.block_count":  # at the limit it loads (block_count: then tensors are missing)
        at = rewrite(tiny_gguf["f32"], tmp_path / "at.gguf", set_keys={key: (hi, gguf.GGUFValueType.UINT64, None)})
        m = looplm.Model(at, n_threads=1, n_ctx=16)
        assert np.isfinite(m.eval([1, 2])).all()
