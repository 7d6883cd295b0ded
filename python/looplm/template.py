"""Rendering an untrusted Jinja template (a GGUF's ``tokenizer.chat_template``) on a budget.

The template comes with the model file, so it is treated as hostile: it runs in jinja2's
immutable sandbox (no attribute writes, no private attributes), and every rendering gets

* a step budget (:data:`MAX_STEPS`): each iteration of every ``for`` loop (the parse tree is
  rewritten so that each loop's iterable passes through a counter), each call, filter and
  arithmetic operator is a step, so nested loops cannot spin for hours;
* a time budget (:data:`MAX_SECONDS`), checked at every step;
* a size cap (:data:`MAX_OUTPUT` characters) on the output and on every string, list or
  number an operator, filter or string method would build (``'x' * 10**9``,
  ``'%999999999d' % 1``, ``'x'|center(10**9)``, ``lipsum(10**9)``, ``2 ** 10**9``) — refused
  before it is built.

Whatever goes wrong (a syntax error, ``1/0``, ``x + 1`` on a string, an exhausted budget, a
``MemoryError``, a recursion too deep) is a :class:`TemplateError`, a ``ValueError`` with a
one-line message.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jinja2
import jinja2.sandbox
from jinja2 import nodes

MAX_STEPS = 1_000_000
MAX_SECONDS = 2.0
MAX_OUTPUT = 1 << 20  # characters (a chat prompt is far below; the context is 32k tokens at most)
_MAX_INT_BITS = 4096
_SIZE_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
_PERCENT_SPEC = re.compile(r"%[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:[^{}]*?\}")


class TemplateError(ValueError):
    """A template that cannot be rendered, or not within the budget."""


class BudgetExceeded(Exception):
    """Raised inside the rendering when a budget runs out (reported as a TemplateError)."""


def _size(x: object) -> int:
    return len(x) if isinstance(x, (str, bytes, list, tuple)) else 0


def _check_format(fmt: str, brace: bool) -> None:
    """Refuses a format string with a field width or precision above the size cap."""
    specs = _BRACE_SPEC.findall(fmt) if brace else [a + b for a, b in _PERCENT_SPEC.findall(fmt)]
    for spec in specs:
        if any(int(d) > MAX_OUTPUT for d in re.findall(r"\d+", spec)):
            raise BudgetExceeded(f"a format width above {MAX_OUTPUT}")


class BudgetedEnvironment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The sandbox with the budgets of this module; one rendering at a time per instance."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._deadline = 0.0
        self._steps = 0
        self.filters = {name: self._budgeted(f) for name, f in self.filters.items()}
        self.filters["_looplm_iter"] = self._iterate

    # ---------------------------------------------------------------- budget

    def start(self) -> None:
        self._steps, self._deadline = 0, time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise BudgetExceeded(f"more than {MAX_STEPS} steps")
        if time.monotonic() > self._deadline:
            raise BudgetExceeded(f"more than {MAX_SECONDS:g} s")

    def _iterate(self, value: Iterable[Any]) -> Iterator[Any]:
        for x in value:
            self.step()
            yield x

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Filter(loop.iter, "_looplm_iter", [], [], None, None, lineno=loop.lineno)
        return tree

    # ---------------------------------------------------------------- hooks

    def _budgeted(self, f: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            self.step()
            values = list(args) + list(kwargs.values())
            if any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_OUTPUT for v in values):
                raise BudgetExceeded(f"a filter argument above {MAX_OUTPUT}")
            if getattr(f, "__name__", "") == "do_format" and args and isinstance(args[0], str):
                _check_format(args[0], brace=False)
            out = f(*args, **kwargs)
            if _size(out) > MAX_OUTPUT:
                raise BudgetExceeded(f"a value longer than {MAX_OUTPUT}")
            return out

        for attr in ("jinja_pass_arg", "__name__"):  # pass_context / pass_environment markers
            if hasattr(f, attr):
                setattr(run, attr, getattr(f, attr))
        return run

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.step()
        if operator == "*":
            n = right if isinstance(right, int) else left if isinstance(left, int) else None
            seq = left if n is right else right
            if n is not None and _size(seq) * max(n, 0) > MAX_OUTPUT:
                raise BudgetExceeded(f"a value longer than {MAX_OUTPUT}")
        elif operator == "+" and _size(left) + _size(right) > MAX_OUTPUT:
            raise BudgetExceeded(f"a value longer than {MAX_OUTPUT}")
        elif operator == "%" and isinstance(left, str):
            _check_format(left, brace=False)
        both_int = isinstance(left, int) and isinstance(right, int)
        if both_int and operator == "**" and abs(left) > 1 and right * math.log2(abs(left)) > _MAX_INT_BITS:
            raise BudgetExceeded(f"a number above 2**{_MAX_INT_BITS}")
        if both_int and operator in ("*", "+") and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise BudgetExceeded(f"a number above 2**{_MAX_INT_BITS}")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.step()
        owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
        values = list(args) + list(kwargs.values())
        big = any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_OUTPUT for v in values)
        if isinstance(owner, str):
            if name in _SIZE_METHODS and big:
                raise BudgetExceeded(f"a width above {MAX_OUTPUT}")
            if name in ("format", "format_map"):
                _check_format(owner, brace=True)
            if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                grow = (owner.count(args[0]) if args[0] else len(owner) + 1) * len(args[1])
                if len(owner) + grow > MAX_OUTPUT:
                    raise BudgetExceeded(f"a value longer than {MAX_OUTPUT}")
            if name == "join" and args and _size(owner) * _size(args[0]) > MAX_OUTPUT:
                raise BudgetExceeded(f"a value longer than {MAX_OUTPUT}")
        elif name == "generate_lorem_ipsum" and big:
            raise BudgetExceeded(f"lipsum above {MAX_OUTPUT}")
        return super().call(context, obj, *args, **kwargs)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def render_template(source: str, where: str, **variables: Any) -> str:
    """Renders ``source`` with ``variables`` within the budgets.

    Args:
        source: the template text.
        where: what the message names (the model file); "" for nothing.
        **variables: the template's variables (callables among them are called under the
            budget too).

    Raises:
        TemplateError: one line, ``"<where>: chat template ..."``.
    """
    prefix = f"{where}: " if where else ""
    env = BudgetedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg: str) -> None:
        raise TemplateError(f"{prefix}chat template: {msg}")

    env.globals["raise_exception"] = raise_exception
    env.start()
    try:
        template = env.from_string(source)
        parts, n = [], 0
        for chunk in template.generate(**variables):
            n += len(chunk)
            if n > MAX_OUTPUT:
                raise BudgetExceeded(f"an output longer than {MAX_OUTPUT} characters")
            parts.append(chunk)
            env.step()
        return "".join(parts)
    except TemplateError:
        raise
    except BudgetExceeded as e:
        raise TemplateError(f"{prefix}chat template exceeds its budget: {e}") from None
    except (Exception, RecursionError, MemoryError) as e:  # noqa: BLE001 - any failure of untrusted code
        kind = "" if isinstance(e, jinja2.TemplateError) else f"{type(e).__name__}: "
        raise TemplateError(f"{prefix}chat template cannot be rendered: {kind}{_one_line(e)}") from None
