"""The ``looplm`` command: convert, run, chat, info, bench, perplexity.

Flags follow llama.cpp's spelling with mlx-lm's long aliases. A user error prints one line
and exits with code 1 (2 for usage errors, from argparse); never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from .sampling import PRESETS, SamplingParams

EXIT_COLORS = ["\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[31m"]  # loop 1, 2, 3, 4, 5+
RESET = "\x1b[0m"


class UserError(Exception):
    """An error to report in one line (exit code 1)."""


# ---------------------------------------------------------------- shared options


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("-m", "--model", required=True, help="GGUF file, HF Ouro folder or hub repo id")
    g.add_argument(
        "--type",
        default=None,
        choices=["f32", "f16", "bf16", "q8_0", "q4_0"],
        help="quantization when -m is an HF checkpoint (default q8_0)",
    )
    g.add_argument("-c", "--ctx-size", type=int, default=4096, help="context size in tokens (default 4096)")
    g.add_argument("-t", "--threads", type=int, default=None, help="threads (default: physical cores)")
    g.add_argument("--loops", type=int, default=None, help="loops per token (default: the trained count)")
    g.add_argument(
        "--exit-threshold",
        type=float,
        default=None,
        help="exit gate CDF threshold (default: the file's; < 1 lets tokens exit early)",
    )
    g.add_argument(
        "--exit-mode",
        choices=["skip", "exact"],
        default=None,
        help="skip: stop at the exit loop (default when threshold < 1); exact: run all loops",
    )
    g.add_argument("--exit-at-step", type=int, default=None, help="always exit at this 0-based loop")
    g.add_argument(
        "--kv-fill",
        choices=["exit", "first"],
        default="exit",
        help="skip mode: fill skipped loops' KV from the exit loop (default) or loop 0",
    )
    g.add_argument("--kv-type", choices=["f16", "f32"], default="f16", help="KV cache type (default f16)")
    g.add_argument("-b", "--batch-size", type=int, default=256, help="prompt tokens per forward pass (default 256)")


def add_sampling_options(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--temp", "--temperature", dest="temperature", type=float, default=None, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--min-p", type=float, default=None)
    g.add_argument("--repeat-penalty", type=float, default=None)
    g.add_argument("--presence-penalty", type=float, default=None)
    g.add_argument("--frequency-penalty", type=float, default=None)
    g.add_argument("--repeat-last-n", dest="penalty_last_n", type=int, default=None)
    g.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="sampling preset; 'thinking' = the Ouro Thinking model cards (temp 1.0, top-p 0.7)",
    )


def sampling_from(args: argparse.Namespace) -> SamplingParams:
    try:
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
    except ValueError as e:
        raise UserError(str(e)) from e


def load_model(args: argparse.Namespace):
    from .generate import load

    opts = {
        "kv_fill": args.kv_fill,
        "n_batch": args.batch_size,
        "n_ctx": args.ctx_size,
        "n_threads": args.threads,
        "loops": args.loops,
        "kv_type": args.kv_type,
        "exit_threshold": args.exit_threshold,
        "exit_mode": args.exit_mode,
        "exit_at_step": args.exit_at_step,
    }
    if args.type:
        opts["type"] = args.type
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loops above the trained count: reported below instead
        model = load(args.model, **opts)
    if args.loops and args.loops > model.config["n_loops_trained"]:
        print(
            f"looplm: warning: {args.loops} loops is above the trained {model.config['n_loops_trained']}; "
            "quality usually drops",
            file=sys.stderr,
        )
    return model


def exit_summary(exits: list[int], n_loops: int) -> str:
    if not exits:
        return "no tokens generated"
    hist = [exits.count(i) for i in range(n_loops)]
    mean = sum(e + 1 for e in exits) / len(exits)
    shares = ", ".join(f"loop {i + 1}: {h / len(exits):.0%}" for i, h in enumerate(hist))
    return f"exits: {shares} | mean loops/token {mean:.2f} | loops saved {1 - mean / n_loops:.0%}"


# ---------------------------------------------------------------- commands


def cmd_convert(args: argparse.Namespace) -> int:
    from looplm.convert import run

    return run(args)


def cmd_run(args: argparse.Namespace) -> int:
    from .chat import render
    from .generate import stream_generate

    if (args.prompt is None) == (args.file is None):
        raise UserError("give the prompt with exactly one of -p/--prompt or -f/--file")
    if args.prompt is not None:
        prompt = args.prompt
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                prompt = f.read()
        except OSError as e:
            raise UserError(f"{args.file}: {e.strerror}") from e
    sampling = sampling_from(args)
    model = load_model(args)
    if not args.ignore_chat_template and (model.chat_template or model.config["arch"] == "ouro"):
        msgs = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": prompt}
        ]
        prompt = render(msgs, model.chat_template, enable_thinking=args.think)
    color = args.show_exits and sys.stdout.isatty()
    exits: list[int] = []
    last = None
    try:
        for r in stream_generate(model, prompt, max_tokens=args.max_tokens, sampling=sampling):
            last = r
            if r.exit_step is not None:
                exits.append(r.exit_step)
            if color and r.text:
                sys.stdout.write(EXIT_COLORS[min(r.exit_step or 0, 4)] + r.text + RESET)
            else:
                sys.stdout.write(r.text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        print("\nlooplm: interrupted", file=sys.stderr)
    sys.stdout.write("\n")
    if last is not None:
        print(
            f"looplm: prompt {last.prompt_tokens} tokens, {last.prompt_tps:.1f} tok/s | generation "
            f"{last.generation_tokens} tokens, {last.generation_tps:.1f} tok/s | mean loops/token "
            f"{last.mean_loops:.2f} of {model.config['n_loops']}",
            file=sys.stderr,
        )
    if args.show_exits:
        print("looplm: " + exit_summary(exits, model.config["n_loops"]), file=sys.stderr)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat import render
    from .generate import stream_generate

    sampling = sampling_from(args)
    model = load_model(args)
    history: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    if interactive:
        print("looplm chat: /reset clears the conversation, /exit or Ctrl-D quits.", file=sys.stderr)
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history = history[:1] if args.system else []
            print("looplm: conversation cleared", file=sys.stderr)
            continue
        history.append({"role": "user", "content": text})
        prompt = render(history, model.chat_template, enable_thinking=args.think)
        reply = []
        try:
            for r in stream_generate(model, prompt, max_tokens=args.max_tokens, sampling=sampling):
                reply.append(r.text)
                sys.stdout.write(r.text)
                sys.stdout.flush()
        except KeyboardInterrupt:
            print("\nlooplm: interrupted", file=sys.stderr)
        sys.stdout.write("\n")
        sys.stdout.flush()
        history.append({"role": "assistant", "content": "".join(reply)})
    return 0


def cmd_perplexity(args: argparse.Namespace) -> int:
    from .perplexity import run

    return run(args, load_model(args))


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run

    return run(args)


def cmd_info(args: argparse.Namespace) -> int:
    import looplm

    from . import _core
    from .hub import resolve_model

    path = resolve_model(args.model, getattr(args, "type", None))
    info = _core.file_info(path, 64)
    md = info["metadata"]
    arch = md.get("general.architecture", "?")
    rows = [
        ("file", f"{path} ({info['file_size'] / 1e6:.1f} MB, GGUF v{info['version']})"),
        ("name", md.get("general.name", "?")),
        ("architecture", arch),
    ]
    for key in (
        "block_count",
        "num_loops",
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "context_length",
        "rope.freq_base",
    ):
        if f"{arch}.{key}" in md:
            rows.append((key, md[f"{arch}.{key}"]))
    gate = "ouro.exit_gate.bias" in md
    threshold = f", threshold {md['ouro.exit_gate.threshold']}" if "ouro.exit_gate.threshold" in md else ""
    rows.append(("exit gate", ("yes" + threshold) if gate else "no (runs at fixed depth)"))
    types: dict[str, int] = {}
    for _, t, _shape, _, nbytes in info["tensors"]:
        types[t] = types.get(t, 0) + nbytes
    rows.append(
        ("tensor types", ", ".join(f"{t} {b / 1e6:.1f} MB" for t, b in sorted(types.items(), key=lambda x: -x[1])))
    )
    template = "yes" if md.get("tokenizer.chat_template") else "no"
    tok = f"{md.get('tokenizer.ggml.model', 'none')} / {md.get('tokenizer.ggml.pre', '-')}, chat template {template}"
    rows.append(("tokenizer", tok))
    rows.append(("cpu features", looplm.cpu_features() or "(none detected)"))
    rows.append(("kernels", f"{looplm.kernels()} (available: {', '.join(looplm.kernels_available())})"))
    rows.append(("threads", f"{_core.physical_cores()} (physical cores)"))
    for label, value in rows:
        print(f"{label + ':':<25} {value}")
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from looplm import __version__
    from looplm.convert import add_arguments

    p = argparse.ArgumentParser(prog="looplm", description="Run looped language models (Ouro) on the CPU.")
    p.add_argument("--version", action="version", version=f"looplm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("convert", help="HF Ouro checkpoint -> GGUF")
    add_arguments(c)
    c.set_defaults(func=cmd_convert)

    r = sub.add_parser("run", help="generate text from a prompt")
    add_model_options(r)
    r.add_argument("-p", "--prompt", default=None, help="the prompt")
    r.add_argument("-f", "--file", default=None, help="read the prompt from a file")
    r.add_argument("--system", default=None, help="system message (chat template)")
    r.add_argument("--think", action="store_true", help="open the reply with <think> (Thinking models)")
    r.add_argument("--ignore-chat-template", "--raw", action="store_true", help="use the prompt as is")
    r.add_argument(
        "--show-exits", action="store_true", help="colour tokens by exit loop (on a terminal) and print an exit summary"
    )
    add_sampling_options(r)
    r.set_defaults(func=cmd_run)

    ch = sub.add_parser("chat", help="interactive multi-turn chat")
    add_model_options(ch)
    ch.add_argument("--system", default=None, help="system message")
    ch.add_argument("--think", action="store_true", help="open replies with <think> (Thinking models)")
    add_sampling_options(ch)
    ch.set_defaults(func=cmd_chat)

    from .bench import add_arguments as add_bench_arguments
    from .perplexity import add_arguments as add_ppl_arguments

    pp = sub.add_parser("perplexity", help="perplexity of a text file (llama.cpp's definition)")
    add_model_options(pp)
    add_ppl_arguments(pp)
    pp.set_defaults(func=cmd_perplexity, ctx_size=512)

    b = sub.add_parser("bench", help="pp/tg speed and bandwidth (llama-bench's tables)")
    add_bench_arguments(b)
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="describe a model file and the kernels that will run it")
    i.add_argument("-m", "--model", required=True)
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"looplm {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as e:  # GGUFError is a ValueError
        print(f"looplm {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("looplm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
