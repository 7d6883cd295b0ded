"""docs/raspberry-pi.md's computed decode-speed tables are scripts/pi_decode_estimate.py's
output, and that script's byte counts agree with the files the converter's policy makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "pi_decode_estimate.py"
DOC = ROOT / "docs" / "raspberry-pi.md"
BEGIN, END = "<!-- decode-estimate: begin (scripts/pi_decode_estimate.py) -->\n", "<!-- decode-estimate: end -->"


def _script():
    if not SCRIPT.exists():
        pytest.skip("scripts/ is not next to the tests")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import pi_decode_estimate
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return pi_decode_estimate


def test_doc_tables_are_the_scripts_output():
    _script()
    out = subprocess.run([sys.executable, str(SCRIPT)], check=True, capture_output=True, text=True).stdout
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC.name}: no decode-estimate markers"
    assert text.split(BEGIN, 1)[1].split(END, 1)[0].strip() == out.strip()


def test_bytes_per_token_match_the_shapes():
    """Q4_0 Ouro-1.4B: 18 bytes per 32 weights; 24 layers of 4 x 2048^2 + 3 x 2048 x 5632 per loop,
    the 49152 x 2048 output once, one embedding row, F32 norms (4 per layer + final) and the gate per loop."""
    est = _script()
    from gguf import GGMLQuantizationType as QT

    layer = 4 * 2048 * 2048 + 3 * 2048 * 5632
    per_loop = (24 * layer + 2048) * 18 // 32 + (24 * 4 + 1) * 2048 * 4 + 4  # + the gate bias
    head, row = 49152 * 2048 * 18 // 32, 2048 * 18 // 32
    for loops in (1, 4):
        _, tok = est.bytes_per_token("ouro-1.4b", QT.Q4_0, loops)
        assert tok == loops * per_loop + head + row
    size, _ = est.bytes_per_token("ouro-2.6b", QT.Q8_0, 1)
    assert size == (48 * layer + 2 * 49152 * 2048 + 2048) * 34 // 32 + (48 * 4 + 1) * 2048 * 4 + 4
