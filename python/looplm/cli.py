"""The ``looplm`` command: demo, convert, quantize, run, chat, serve, info, bench, perplexity.

Flags follow llama.cpp's spelling with mlx-lm's long aliases. Exit codes: 0 success (also when
the reader of stdout goes away, as with ``| head``), 1 an error (a missing or unusable file, a
prompt longer than the context), 2 a usage error (a flag missing, unknown or out of range),
130 interrupted. An error is one line naming the flag, file, key or tensor; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

from .sampling import PRESETS, SamplingParams
from .terminal import OutputClosed, err, exit_summary, is_tty, legend, stream_text, timing_line, write
from .usage import UsageError, UserError

# The Python API's parameter names and the flags that set them: an API ValueError that starts
# with a parameter name is reported with the flag the user typed, as a usage error.
FLAGS = {
    "n_ctx": "-c/--ctx-size",
    "n_threads": "-t/--threads",
    "n_batch": "-b/--batch-size",
    "loops": "--loops",
    "kv_type": "--kv-type",
    "type_k": "-ctk/--cache-type-k",
    "type_v": "-ctv/--cache-type-v",
    "kv_share": "--kv-share",
    "exit_threshold": "--exit-threshold",
    "exit_mode": "--exit-mode",
    "exit_at_step": "--exit-at-step",
    "kv_fill": "--kv-fill",
    "max_tokens": "-n/--n-predict",
    "seed": "-s/--seed",
    "temperature": "--temp",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "min_p": "--min-p",
    "repeat_penalty": "--repeat-penalty",
    "presence_penalty": "--presence-penalty",
    "frequency_penalty": "--frequency-penalty",
    "penalty_last_n": "--repeat-last-n",
}
_LEADING_NAME = re.compile(r"^([a-z_]+)\b")


def flag_message(message: str) -> tuple[str, bool]:
    """An API error message with its leading parameter name replaced by the flag; True if replaced."""
    m = _LEADING_NAME.match(message)
    if m and m.group(1) in FLAGS:
        return FLAGS[m.group(1)] + message[m.end() :], True
    return message, False


# ---------------------------------------------------------------- shared options


def add_model_options(p: argparse.ArgumentParser, *, ctx_size: int = 4096) -> None:
    g = p.add_argument_group("model")
    g.add_argument("-m", "--model", required=True, help="GGUF file, HF Ouro folder or hub repo id (required)")
    g.add_argument(
        "--type",
        default=None,
        choices=["f32", "f16", "bf16", "q8_0", "q4_0"],
        help="quantization when -m is an HF checkpoint (default q8_0)",
    )
    g.add_argument(
        "-c",
        "--ctx-size",
        type=int,
        default=ctx_size,
        help=f"context size in tokens, 0: the trained one (default {ctx_size})",
    )
    g.add_argument("-t", "--threads", type=int, default=None, help="threads (default: the physical cores)")
    g.add_argument("--loops", type=int, default=None, help="loops per token (default: the trained count)")
    g.add_argument(
        "--exit-threshold",
        type=float,
        default=None,
        help="exit gate CDF threshold in 0..1; below 1 tokens may exit early (default: the file's, 1.0 for Ouro)",
    )
    g.add_argument(
        "--exit-mode",
        choices=["skip", "exact"],
        default=None,
        help="skip: stop a token at its exit loop; exact: run every loop, the exit loop only picks the logits "
        "(default: skip when the threshold is below 1 or --exit-at-step is given, else exact)",
    )
    g.add_argument(
        "--exit-at-step", type=int, default=None, help="always exit at this loop, counted from 0 (default: the gate)"
    )
    g.add_argument(
        "--kv-fill",
        choices=["exit", "first"],
        default="exit",
        help="skip mode: fill skipped loops' KV from the exit loop or from loop 0 (default exit)",
    )
    add_kv_options(g)
    g.add_argument("-b", "--batch-size", type=int, default=256, help="prompt tokens per forward pass (default 256)")
    g.add_argument("--no-mmap", action="store_true", help="read the file into memory instead of mapping it")
    g.add_argument("--mlock", action="store_true", help="lock the model in RAM (no paging out)")
    g.add_argument("-v", "--verbose", action="store_true", help="print the model, build and kernels in use to stderr")


def add_kv_options(g: argparse._ActionsContainer) -> None:
    """The KV cache flags (docs/kv-cache.md), shared by the model commands and info."""
    kv_types = ["f32", "f16", "q8_0", "q4_0"]
    g.add_argument("--kv-type", choices=kv_types, default="f16", help="KV cache type of keys and values (default f16)")
    g.add_argument(
        "-ctk",
        "--cache-type-k",
        dest="type_k",
        choices=kv_types,
        default=None,
        help="KV cache type of keys (default --kv-type)",
    )
    g.add_argument(
        "-ctv",
        "--cache-type-v",
        dest="type_v",
        choices=kv_types,
        default=None,
        help="KV cache type of values (default --kv-type)",
    )
    g.add_argument(
        "--kv-share",
        choices=["none", "last"],
        default="none",
        help="none: one KV cache per loop (upstream's); last: evaluated positions keep their last loop's K/V only "
        "(docs/kv-cache.md; default none)",
    )


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    d = PRESETS["default"]
    g = p.add_argument_group("sampling (defaults: llama-cpp-python's)")
    g.add_argument(
        "-n",
        "--n-predict",
        "--max-tokens",
        dest="max_tokens",
        type=int,
        default=256,
        help="tokens to generate (-1: until a stop or a full context; default 256)",
    )
    g.add_argument("-s", "--seed", type=int, default=None, help="random seed (default: random)")
    g.add_argument(
        "--temp",
        "--temperature",
        dest="temperature",
        type=float,
        default=None,
        help=f"temperature; 0 = greedy (default {d.temperature:g})",
    )
    g.add_argument("--top-k", type=int, default=None, help=f"keep the k most likely tokens; 0: off (default {d.top_k})")
    g.add_argument("--top-p", type=float, default=None, help=f"nucleus sampling; 1: off (default {d.top_p:g})")
    g.add_argument(
        "--min-p", type=float, default=None, help=f"drop tokens below p x the top one; 0: off (default {d.min_p:g})"
    )
    g.add_argument("--repeat-penalty", type=float, default=None, help=f"1: off (default {d.repeat_penalty:g})")
    g.add_argument("--presence-penalty", type=float, default=None, help=f"(default {d.presence_penalty:g})")
    g.add_argument("--frequency-penalty", type=float, default=None, help=f"(default {d.frequency_penalty:g})")
    g.add_argument(
        "--repeat-last-n",
        dest="penalty_last_n",
        type=int,
        default=None,
        help=f"tokens the penalties look back at; -1: all (default {d.penalty_last_n})",
    )
    g.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="sampling preset; 'thinking' = the Ouro Thinking model cards (temp 1.0, top-p 0.7); default 'default'",
    )


def sampling_from(args: argparse.Namespace) -> SamplingParams:
    return PRESETS[args.preset].with_options(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
        presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty,
        penalty_last_n=args.penalty_last_n,
        seed=args.seed,
    )


def model_options(args: argparse.Namespace) -> dict:
    """The load options (``looplm.load``'s keywords) of the arguments add_model_options made."""
    return {
        "kv_fill": args.kv_fill,
        "n_batch": args.batch_size,
        "n_ctx": args.ctx_size,
        "n_threads": args.threads,
        "loops": args.loops,
        "kv_type": args.kv_type,
        "type_k": args.type_k,
        "type_v": args.type_v,
        "kv_share": args.kv_share,
        "exit_threshold": args.exit_threshold,
        "exit_mode": args.exit_mode,
        "exit_at_step": args.exit_at_step,
        "use_mmap": not args.no_mmap,
        "use_mlock": args.mlock,
    }


def load_model(args: argparse.Namespace):
    from .generate import load

    if args.type and Path(args.model).expanduser().is_file():
        raise UsageError(f"--type applies to HF checkpoints; {args.model} is already a GGUF file")
    opts = model_options(args)
    if args.type:
        opts["type"] = args.type
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported below, in the command's words
        model = load(args.model, **opts)
    if args.exit_threshold is not None and not model.config["has_exit_gate"]:
        raise UserError(
            f"--exit-threshold: {args.model} has no exit gate (llama.cpp's converter drops it), so it runs "
            f"all {model.config['n_loops']} loops; use --loops or --exit-at-step to change the depth"
        )
    if args.loops and args.loops > model.config["n_loops_trained"]:
        err(f"looplm: warning: --loops {args.loops} is above the trained {model.config['n_loops_trained']}; "
            "quality usually drops")  # fmt: skip
    if args.mlock and not model.config["mlock"]:
        err(f"looplm: warning: --mlock: {model.config['mlock_error']}; running unlocked")
    if args.verbose:
        err(model.describe())
        err(model.memory_summary())
    return model


def read_prompt(file: str) -> str:
    """The prompt from a file, or from standard input for ``-``."""
    try:
        if file == "-":
            if sys.stdin is None:
                raise UserError("-f -: standard input is closed")
            return sys.stdin.buffer.read().decode("utf-8")
        with open(file, "rb") as f:
            return f.read().decode("utf-8")
    except OSError as e:
        raise UserError(f"{file}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: not UTF-8 text (byte {e.start})") from e


def generate_and_show(
    model, prompt: str, args: argparse.Namespace, sampling: SamplingParams, *, timing: bool = True
) -> str:
    """Streams a reply to stdout (coloured by exit loop with --show-exits on a terminal), then
    the timing line (``timing``) and, with --show-exits, the exit summary on stderr. Returns the
    text."""
    from .generate import stream_generate

    n_loops, mode = model.config["n_loops"], model.exit_policy["exit_mode"]
    color = args.show_exits and is_tty(sys.stdout)
    if color:
        err(legend(n_loops))
    parts: list[str] = []
    exits: list[int] = []
    last = None
    try:
        responses = stream_generate(model, prompt, max_tokens=args.max_tokens, sampling=sampling)
        for text, step, r in stream_text(responses, sys.stdout, color=color):
            parts.append(text)
            if step is not None:
                exits.append(step)
            last = r
    except KeyboardInterrupt:
        err("\nlooplm: interrupted")
    write(sys.stdout, "\n")
    if timing and last is not None:
        err("looplm: " + timing_line(last, exits, n_loops, mode))
    if args.show_exits:
        err("looplm: " + exit_summary(exits, n_loops, mode))
    return "".join(parts)


# ---------------------------------------------------------------- commands


def cmd_quantize(args: argparse.Namespace) -> int:
    from looplm.convert.requantize import run

    return run(args)


def cmd_convert(args: argparse.Namespace) -> int:
    from looplm.convert import run

    return run(args)


def cmd_run(args: argparse.Namespace) -> int:
    from .chat import render

    if (args.prompt is None) == (args.file is None):
        raise UsageError("give the prompt with exactly one of -p/--prompt or -f/--file")
    if args.prompt is not None and any("\udc80" <= ch <= "\udcff" for ch in args.prompt):
        raise UsageError("-p/--prompt is not valid UTF-8 text")  # argv bytes kept as surrogates
    prompt = args.prompt if args.prompt is not None else read_prompt(args.file)
    sampling = sampling_from(args)
    model = load_model(args)
    if not args.ignore_chat_template and (model.chat_template or model.config["arch"] == "ouro"):
        msgs = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": prompt}
        ]
        prompt = render(msgs, model.chat_template, enable_thinking=args.think, where=model.path)
    generate_and_show(model, prompt, args, sampling)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .repl import chat

    sampling = sampling_from(args)
    return chat(load_model(args), args, sampling)


def cmd_perplexity(args: argparse.Namespace) -> int:
    from .perplexity import run

    return run(args, load_model(args))


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run

    return run(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import run

    return run(args)


def cmd_info(args: argparse.Namespace) -> int:
    from .info import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from looplm import __version__
    from looplm.convert import add_arguments

    p = argparse.ArgumentParser(
        prog="looplm",
        description="Run looped language models (Ouro) on the CPU. Try 'looplm demo': no download, a few seconds.",
        epilog="'looplm COMMAND --help' lists a command's flags and their defaults.",
    )
    p.add_argument("--version", action="version", version=f"looplm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from .demo import add_arguments as add_demo_arguments

    d = sub.add_parser("demo", help="the loops and the exit gate on a small random-weight Ouro model, in seconds")
    add_demo_arguments(d)
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("convert", help="HF Ouro checkpoint -> GGUF")
    add_arguments(c)
    c.set_defaults(func=cmd_convert)

    from looplm.convert.requantize import add_arguments as add_quantize_arguments

    q = sub.add_parser("quantize", help="GGUF -> GGUF at another type (e.g. F16 or Q8_0 -> Q4_K_M)")
    add_quantize_arguments(q)
    q.set_defaults(func=cmd_quantize)

    r = sub.add_parser("run", help="generate text from a prompt")
    add_model_options(r)
    r.add_argument("-p", "--prompt", default=None, help="the prompt")
    r.add_argument("-f", "--file", default=None, help="read the prompt from a file ('-': standard input)")
    r.add_argument("--system", default=None, help="system message (default: none, or the template's own)")
    r.add_argument("--think", action="store_true", help="open the reply with <think> (Thinking models)")
    r.add_argument("--ignore-chat-template", "--raw", action="store_true", help="use the prompt as is")
    r.add_argument(
        "--show-exits",
        action="store_true",
        help="colour tokens by exit loop (on a terminal) and print the exit summary",
    )
    add_sampling_options(r)
    r.set_defaults(func=cmd_run)

    ch = sub.add_parser("chat", help="interactive multi-turn chat (/help lists its commands)")
    add_model_options(ch)
    ch.add_argument("--system", default=None, help="system message (default: none, or the template's own)")
    ch.add_argument("--think", action="store_true", help="open replies with <think> (Thinking models)")
    ch.add_argument(
        "--show-exits",
        action="store_true",
        help="colour tokens by exit loop (on a terminal) and print an exit summary after each reply",
    )
    add_sampling_options(ch)
    ch.set_defaults(func=cmd_chat)

    from .bench import add_arguments as add_bench_arguments
    from .perplexity import add_arguments as add_ppl_arguments

    pp = sub.add_parser("perplexity", help="perplexity of a text file (llama.cpp's definition)")
    add_model_options(pp, ctx_size=512)
    add_ppl_arguments(pp)
    pp.set_defaults(func=cmd_perplexity)

    b = sub.add_parser("bench", help="pp/tg speed and bandwidth (llama-bench's tables)")
    add_bench_arguments(b)
    b.set_defaults(func=cmd_bench)

    from .server import add_arguments as add_server_arguments

    sv = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (pip install 'looplm[server]')")
    add_server_arguments(sv)
    sv.set_defaults(func=cmd_serve)

    i = sub.add_parser("info", help="describe a model file, whether looplm can run it, and the build and kernels")
    i.add_argument("-m", "--model", required=True, help="GGUF file, HF Ouro folder or hub repo id (required)")
    add_kv_options(i)
    i.set_defaults(func=cmd_info)
    return p


def _quiet_stdout() -> None:
    """After a broken pipe: stdout to /dev/null, so the interpreter's last flush cannot fail."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    if sys.stderr is None:  # 2>&-: messages go nowhere rather than fail
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        if sys.stdout is not None:
            parser.print_help()
        return 0
    args = parser.parse_args(argv)
    where = f"looplm {args.command}"
    try:
        if sys.stdout is None and args.command not in ("convert", "quantize"):
            raise UserError("standard output is closed")
        return args.func(args)
    except (OutputClosed, BrokenPipeError):
        _quiet_stdout()
        return 0
    except UsageError as e:
        err(f"{where}: error: {e}")
        return 2
    except UserError as e:
        err(f"{where}: error: {e}")
        return 1
    except OSError as e:
        err(f"{where}: error: {e.filename}: {e.strerror}" if e.filename and e.strerror else f"{where}: error: {e}")
        return 1
    except ValueError as e:  # GGUFError and ConvertError are ValueErrors
        message, is_flag = flag_message(str(e))
        err(f"{where}: error: {message}")
        return 2 if is_flag else 1
    except RuntimeError as e:
        err(f"{where}: error: {e}")
        return 1
    except KeyboardInterrupt:
        err("looplm: interrupted")
        return 130
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("LOOPLM_DEBUG"):
            raise
        err(f"{where}: internal error: {type(e).__name__}: {e} (LOOPLM_DEBUG=1 shows the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FLAGS", "main"]
