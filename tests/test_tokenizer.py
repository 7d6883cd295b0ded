"""The native tokenizer against HF `tokenizers` built from the same vocabulary and merges."""

from __future__ import annotations

import json
import random

import gguf
import looplm
import pytest
from gguf_edit import rewrite
from hf_tokenizer import hf_encode, hf_tokenizer
from tokenizers import Tokenizer

CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "def looped(x):\n\tfor i in range(4):\n        x = layer(x)  # again\n    return x\n",
    "Numbers: 1234567 3.14159 -42 1e-6 0x1F 2026-11-29 ١٢٣ ٣٤٥ １２３ ½ Ⅻ",
    "a  b   c    d\n\n\n\t \n trailing spaces   ",
    "   leading",
    "\r\n\r\nwindows\r\n",
    "中文测试：循环语言模型。日本語のテキストです。한국어 텍스트입니다.",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷🇯🇵 keycap 1️⃣",
    "Accents: café naïve résumé e\u0301 (combining) Ångström Zürich",
    "Cyrillic: Привет, мир! Greek: Γειά σου κόσμε. Hindi: नमस्ते दुनिया, हिन्दी।",
    "Apostrophes: don't I'LL we've she'd it's they're you’ve O'Brien 's 't",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|im_end|>< |im_start|><|im_start|x <jupyter_code>print(1)",
    "Mixed1234abc!!! ??? ... --- *** ___ ``` ~~~ @#$%^&*()",
    "URL https://example.com/a?b=c&d=e#frag and email a.b@c.de",
    "",
    " ",
    "\n",
    "🙂",
    "x" * 300,
    "1" * 50,
    "  \u00a0 \u2003 nbsp and em space",
]

# bytes the SmolLM2 vocabulary has no symbol for (HF and llama.cpp drop them too)
MISSING = {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D}


def random_strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " \t\n\r  ",
        ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
        "éèàüößñçÅØæœ",
        "中文日本語한국어",
        "😀👍🏽🇫🇷❤️",
        "ПриветΓειάनमस्ते",
        "١٢٣４５６½",
        "'s 't 're 've 'm 'll 'd ",
        "<|im_start|><|im_end|><|endoftext|>",
    ]
    out = []
    for _ in range(n):
        parts = [rng.choice(rng.choice(pools)) * rng.choice([1, 1, 1, 2, 3]) for _ in range(rng.randint(1, 40))]
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def hf(smollm_vocab):
    return hf_tokenizer(smollm_vocab["tokens"], smollm_vocab["token_type"], smollm_vocab["merges"])


@pytest.mark.parametrize("special", [True, False])
def test_parity_with_hf_tokenizers(smollm, hf, special):
    texts = CORPUS + random_strings(1500, seed=1 + special)
    mismatches = [t for t in texts if smollm.tokenize(t, special=special) != hf_encode(hf, t, special)]
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]!r}"


def test_special_tokens(smollm):
    ids = smollm.tokenize("<|im_start|>user\nHi<|im_end|>", special=True)
    assert ids[0] == 1 and ids[-1] == 2
    plain = smollm.tokenize("<|im_start|>", special=False)
    assert 1 not in plain and len(plain) > 1


def test_round_trip(smollm):
    for t in CORPUS + random_strings(500, seed=9):
        if any(b in MISSING for b in t.encode()):
            continue
        for special in (True, False):
            assert smollm.detokenize(smollm.tokenize(t, special=special)) == t


def test_decoding_is_byte_exact(smollm):
    text = "é😀中"
    ids = smollm.tokenize(text)
    assert b"".join(smollm.token_bytes(i) for i in ids) == text.encode()


def test_fixture_tokenizer_parity(tiny_hf, tiny_gguf):
    """The tiny checkpoint's tokenizer.json -> converter -> native tokenizer == HF reading
    the same tokenizer.json."""
    hf_tok = Tokenizer.from_file(str(tiny_hf / "tokenizer.json"))
    m = looplm.Model(tiny_gguf["q8_0"])
    for t in CORPUS + random_strings(300, seed=3):
        assert m.tokenize(t, special=True) == hf_tok.encode(t, add_special_tokens=False).ids, t


@pytest.mark.parametrize(("key", "value"), [("tokenizer.ggml.pre", "llama-bpe"), ("tokenizer.ggml.model", "llama")])
def test_unsupported_tokenizer_refused(tiny_gguf, tmp_path, key, value):
    path = rewrite(tiny_gguf["q8_0"], tmp_path / "t.gguf", set_keys={key: (value, gguf.GGUFValueType.STRING, None)})
    with pytest.raises(looplm.GGUFError, match=f"unsupported tokenizer.*{value}"):
        looplm.Model(path)


def test_model_without_vocabulary(tiny_gguf, tmp_path):
    drop = (
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
    )
    m = looplm.Model(rewrite(tiny_gguf["q8_0"], tmp_path / "t.gguf", drop_keys=drop))
    assert m.eval([1, 2, 3]).shape == (m.n_vocab,)
    with pytest.raises(ValueError, match="carries no tokenizer"):
        m.tokenize("hi")


def test_stop_ids(smollm, tiny_gguf):
    assert sorted(smollm.stop_ids) == [0, 2]  # eos 2 (<|im_end|>) and <|endoftext|> 0
    assert sorted(looplm.Model(tiny_gguf["q8_0"]).stop_ids) == [0, 2]


def test_metadata_leaves_out_the_vocabulary(smollm):
    md = smollm.metadata
    assert "tokenizer.ggml.tokens" not in md and md["tokenizer.ggml.pre"] == "smollm"
    json.dumps(md)  # plain Python values
