"""A small but real GPT-2 byte-level BPE tokenizer for synthetic Ouro checkpoints: SmolLM2's 17
special tokens, the 256 byte symbols and merges learned from a fixed text, in SmolLM2's
tokenizer.json structure. Used by the tests' tiny checkpoints and by ``looplm demo``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
]

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = (
    "The loop runs the same layers again and again. Looped language models think by repeating "
    "their layers; the exit gate says when a token has thought enough. Hello world! "
    "def main():\n    return 42\n"
) * 3


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_bpe(text: str, n_merges: int) -> tuple[list[str], list[str]]:
    """Byte-level BPE: returns (vocabulary after the specials, merges "a b" in rank order)."""
    b2u = bytes_to_unicode()
    pieces = re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", text)
    words = Counter(tuple(b2u[b] for b in p.encode()) for p in pieces)
    vocab = [b2u[b] for b in b2u]  # GPT-2's symbol order
    merges = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        new: Counter[tuple[str, ...]] = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return vocab, merges


def tokenizer_json(n_merges: int = 60) -> dict:
    """tokenizer.json of the specials, the byte symbols and ``n_merges`` merges."""
    vocab, merges = train_bpe(CORPUS, n_merges)
    tokens = SPECIALS + vocab
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, t in enumerate(SPECIALS)
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }


N_MERGES = 60
N_TOKENS = len(SPECIALS) + 256 + N_MERGES  # the vocabulary tokenizer_json() builds


def write_tokenizer_files(folder: Path) -> None:
    """Writes tokenizer.json, tokenizer_config.json (ChatML template) and generation_config.json."""
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(N_MERGES)))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_bos_token": False,
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>",
                "unk_token": "<|endoftext|>",
                "chat_template": CHATML,
                "model_max_length": 131072,
                "tokenizer_class": "GPT2Tokenizer",
            }
        )
    )
    (folder / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})
    )
