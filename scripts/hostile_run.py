"""The hostile-input run of CI (docs/robustness.md): every crafted input through the command
line, each case in its own process under an address-space limit and a timeout.

Inputs: the bad-GGUF corpus (tests/bad_gguf, through ``looplm info`` and ``looplm run``),
damaged checkpoints (the config.json, safetensors and tokenizer cases of
tests/test_convert_config.py and tests/test_convert_files.py, through ``looplm convert``),
outputs that are inputs or device nodes, and hostile chat templates (tests/test_template.py,
each in a GGUF, through ``looplm run``). A case passes when its process exits with the code
expected (0 or 1, or 2 for a usage error), prints no traceback, and changes no file but its
output. The run fails on any crash (death by a signal), hang (timeout), traceback, unexpected
exit code or file changed elsewhere.

    python scripts/hostile_run.py            # ~1-2 minutes on 2 cores
    python scripts/hostile_run.py --only template --verbose
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

LIMIT_AS = 4 << 30  # bytes of address space per case
TIMEOUT = 30.0  # seconds per case; a hang is anything this long (cases take well under 2 s)
LOOPLM = [sys.executable, "-m", "looplm.cli"]


@dataclass
class Case:
    kind: str
    name: str
    argv: list[str]
    expect: tuple[int, ...]  # acceptable exit codes
    watch: Path  # a folder whose files must not change (outputs below `output` excepted)
    output: Path | None = None
    needle: str = ""  # text the stderr must contain
    input: str = ""  # standard input
    result: dict = field(default_factory=dict)


def snapshot(root: Path, skip: Path | None) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            dirnames[:] = []
            continue
        for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
            p = d / name
            st = p.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            out[str(p)] = (stat.S_IFMT(st.st_mode), digest)
    return out


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def run_case(c: Case) -> Case:
    before = snapshot(c.watch, c.output)
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            c.argv,
            input=c.input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT,
            preexec_fn=_limit,
            check=False,
        )
        code, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        code, err = None, (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else ""
    seconds = time.monotonic() - t0
    after = snapshot(c.watch, c.output)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    problems = []
    if code is None:
        problems.append(f"hang (> {TIMEOUT:g} s)")
    elif code < 0:
        problems.append(f"crash (signal {-code})")
    elif code not in c.expect:
        problems.append(f"exit code {code}, expected {c.expect}")
    if "Traceback" in err:
        problems.append("traceback")
    if code not in (None, 0) and len(err.strip().splitlines()) > 1 and c.kind != "template-chat":
        problems.append("more than one error line")
    if c.needle and c.needle not in err:
        problems.append(f"stderr lacks {c.needle!r}")
    if changed:
        problems.append(f"changed {', '.join(changed[:3])}")
    c.result = {"code": code, "seconds": round(seconds, 2), "problems": problems, "stderr": err.strip()[-300:]}
    return c


# ---------------------------------------------------------------- the cases


def gguf_cases(work: Path) -> list[Case]:
    corpus = ROOT / "tests" / "bad_gguf"
    expected = json.loads((corpus / "EXPECTED.json").read_text())
    copy = work / "bad_gguf"
    shutil.copytree(corpus, copy)
    cases = []
    for name, needle in expected.items():
        f = str(copy / name)
        # info words an unrunnable type its own way ("tensor types looplm cannot run: ...")
        info_needle = "" if "which looplm cannot run" in needle else needle
        cases.append(Case("gguf-info", name, [*LOOPLM, "info", "-m", f], (1,), copy, needle=info_needle))
        cases.append(Case("gguf-run", name, [*LOOPLM, "run", "-m", f, "-p", "ab", "-n", "2", "-t", "1"], (1,), copy))
    for f in sorted((copy / "valid").glob("*.gguf")):
        cases.append(Case("gguf-valid-info", f.name, [*LOOPLM, "info", "-m", str(f)], (0,), copy))
        if "novocab" in f.name:  # no tokenizer: it runs from token ids (the API), not from text
            continue
        argv = [*LOOPLM, "run", "-m", str(f), "-p", "ab a", "-n", "4", "-t", "1", "-c", "64", "--temp", "0"]
        cases.append(Case("gguf-valid", f.name, argv, (0,), copy))
    return cases


def checkpoint_cases(work: Path) -> list[Case]:
    import ouro_fixtures as fx
    import test_convert_config as tc
    import test_convert_files as tf

    base = fx.make_checkpoint(work / "ckpt-base", seed=7)
    cases = []
    for name, (overrides, needle) in tc.BAD.items():
        folder = work / f"config-{name}"
        shutil.copytree(base, folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(overrides)
        (folder / "config.json").write_text(json.dumps(cfg))
        out = work / f"out-config-{name}"
        out.mkdir()
        argv = [*LOOPLM, "convert", str(folder), "-o", str(out / "m.gguf"), "--type", "q8_0"]
        cases.append(Case("config", name, argv, (1,), folder, out, needle=needle))
    for name, (damage, _file, needle) in tf.CASES.items():
        folder = work / f"files-{name}"
        shutil.copytree(base, folder)
        damage(folder)
        out = work / f"out-files-{name}"
        out.mkdir()
        argv = [*LOOPLM, "convert", str(folder), "-o", str(out / "m.gguf"), "--type", "q8_0"]
        cases.append(Case("files", name, argv, (1,), folder, out, needle=needle))
    # outputs that are inputs, or not regular files
    outputs = work / "outputs"
    guard = outputs / "ckpt"
    shutil.copytree(base, guard)
    fifo = outputs / "fifo"
    os.mkfifo(fifo)
    links = outputs / "links"
    links.mkdir()
    targets = {f.name: f for f in sorted(guard.iterdir())}
    for name, f in targets.items():
        (links / f"sym-{name}").symlink_to(f)
        os.link(f, links / f"hard-{name}")
        for how, out in (("direct", f), ("symlink", links / f"sym-{name}"), ("hardlink", links / f"hard-{name}")):
            argv = [*LOOPLM, "convert", str(guard), "-o", str(out)]
            cases.append(Case("output", f"{how}-{name}", argv, (1,), outputs, needle="input files"))
    argv = [*LOOPLM, "convert", str(guard), "-o", str(fifo)]
    cases.append(Case("output", "fifo", argv, (1,), outputs, needle="regular"))
    try:
        os.mknod(outputs / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        argv = [*LOOPLM, "convert", str(guard), "-o", str(outputs / "null")]
        cases.append(Case("output", "device", argv, (1,), outputs, needle="regular"))
    except PermissionError:
        pass
    return cases


def template_cases(work: Path) -> list[Case]:
    import gguf
    import ouro_fixtures as fx
    import test_template as tt
    from gguf_edit import rewrite
    from looplm.convert import convert_checkpoint

    seed = convert_checkpoint(fx.make_checkpoint(work / "tpl-ckpt", seed=8), work / "tpl.gguf", "q8_0", progress=False)
    folder = work / "templates"
    folder.mkdir()
    cases = []
    for name, (source, _needle) in tt.HOSTILE.items():
        f = folder / f"{name}.gguf"
        rewrite(seed.path, f, set_keys={"tokenizer.chat_template": (source, gguf.GGUFValueType.STRING, None)})
        argv = [*LOOPLM, "run", "-m", str(f), "-p", "Hi", "-n", "2", "-t", "1"]
        cases.append(Case("template", name, argv, (1,), folder, needle=f"{f}: chat template"))
        argv = [*LOOPLM, "chat", "-m", str(f), "-n", "2", "-t", "1"]
        cases.append(Case("template-chat", name, argv, (1,), folder, needle=f"{f}: chat template", input="Hi\n"))
    return cases


KINDS = {"gguf": gguf_cases, "checkpoint": checkpoint_cases, "template": template_cases}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=list(KINDS), action="append", help="run only these kinds of case")
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("--verbose", action="store_true", help="one line per case")
    args = p.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="looplm-hostile-") as tmp:
        work = Path(tmp)
        env_cache = work / "cache"
        os.environ["LOOPLM_CACHE"] = str(env_cache)  # no conversion may land in the user's cache
        cases = [c for kind in args.only or KINDS for c in KINDS[kind](work)]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            done = list(pool.map(run_case, cases))
    failed = [c for c in done if c.result["problems"]]
    by_problem: dict[str, int] = {"crash": 0, "hang": 0, "traceback": 0, "changed": 0}
    for c in failed:
        for prob in c.result["problems"]:
            for key in by_problem:
                if prob.startswith(key):
                    by_problem[key] += 1
    for c in done if args.verbose else failed:
        status = "FAIL " + "; ".join(c.result["problems"]) if c.result["problems"] else "ok"
        print(f"{c.kind:14} {c.name:40} {c.result['seconds']:6.2f}s  {status}")
        if c.result["problems"]:
            print(f"    stderr: {c.result['stderr']!r}")
    slowest = max(done, key=lambda c: c.result["seconds"])
    print(
        f"hostile run: {len(done)} cases, {len(failed)} failed | crashes {by_problem['crash']}, hangs "
        f"{by_problem['hang']}, tracebacks {by_problem['traceback']}, files changed outside the output "
        f"{by_problem['changed']} | slowest {slowest.kind}/{slowest.name} {slowest.result['seconds']:.1f} s | "
        f"{time.monotonic() - t0:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
