"""Instructions retired per weight byte of each decode kernel, on aarch64 (under qemu-user) and x86.

Speed means nothing under emulation, so this counts what can be counted: the instructions a
kernel executes for one decode step's worth of weights (one activation column), divided by the
bytes of weights it reads. For each kernel set and kernel, benchmarks/insn_driver.cpp calls the
kernel ITERS times on a fixed matrix; the whole process's instructions are counted at ITERS and
at 0 iterations (same binary, same setup) and the difference is divided by ITERS times the
weight bytes, so start-up, data set-up and the activation quantization cancel out.

- aarch64: the driver is cross-compiled statically (g++-aarch64-linux-gnu) and run under
  ``qemu-aarch64 -singlestep -d nochain,exec``: one translation block per guest instruction and
  no chaining between blocks, so qemu logs one "Trace" line per executed instruction (hardware
  counters do not work on this VM and Debian's static qemu has no TCG plugins). The neon set
  runs on ``-cpu cortex-a53`` (ARMv8.0), dotprod on ``-cpu cortex-a76`` (the Raspberry Pi 5).
- x86: the native driver under ``valgrind --tool=callgrind`` (its "Collected" count is the
  instructions executed). AVX2 only: valgrind does not decode AVX-512.

``--before REV`` builds the same driver against the sources of git revision REV too (exported
with ``git archive``, so the working tree is untouched) and prints both columns.

Example (docs/benchmarks.md, "Raspberry Pi / ARM")::

    python benchmarks/arm_insn_count.py --before main

Needs cmake, g++-aarch64-linux-gnu, qemu-aarch64 (Debian's qemu-user or qemu-user-static) and
valgrind. Builds go to --work (default /tmp/looplm-insn-count), reused between runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "benchmarks" / "insn_driver.cpp"

GEMMS = ["q4_0", "q4_1", "q8_0", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K", "f16", "bf16", "q4_0x16", "q4_1x16"]
KV = ["kv_dot_q8_0", "kv_dot_q4_0", "kv_axpy_q8_0", "kv_axpy_q4_0"]
# (set, architecture, qemu CPU model)
ARM_SETS = [("neon", "aarch64", "cortex-a53"), ("dotprod", "aarch64", "cortex-a76")]
X86_SETS = [("avx2", "x86_64", "")]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Runs cmd, raising with its output when it fails."""
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p


def export_tree(rev: str, dest: Path) -> Path:
    """Writes the files of git revision rev into dest (once); returns dest."""
    stamp = dest / ".rev"
    sha = run(["git", "-C", str(ROOT), "rev-parse", rev]).stdout.strip()
    if stamp.is_file() and stamp.read_text() == sha:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryFile() as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", sha], stdout=f, check=True)
        f.seek(0)
        with tarfile.open(fileobj=f) as t:
            t.extractall(dest, filter="data")
    stamp.write_text(sha)
    return dest


def build_driver(src: Path, arch: str, work: Path, jobs: int) -> Path:
    """Builds looplm_core of the tree src for arch and links the driver against it (static)."""
    bdir = work / f"build-{arch}"
    opts = ["-DLOOPLM_PYTHON=OFF", "-DLOOPLM_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Release"]
    cxx = "g++"
    if arch == "aarch64":
        opts.append(f"-DCMAKE_TOOLCHAIN_FILE={src / 'cmake' / 'aarch64-linux-gnu.cmake'}")
        cxx = "aarch64-linux-gnu-g++"
    if shutil.which("ccache"):
        opts.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
    run(["cmake", "-S", str(src), "-B", str(bdir), *opts])
    run(["cmake", "--build", str(bdir), "--target", "looplm_core", "-j", str(jobs)])
    lib = next(bdir.rglob("liblooplm_core.a"))
    exe = work / f"insn_driver-{arch}"
    run([cxx, "-O2", "-std=c++17", "-static", f"-I{src / 'csrc'}", str(DRIVER), str(lib), "-o", str(exe), "-pthread"])
    return exe


def count_qemu(exe: Path, cpu: str, args: list[str]) -> int:
    """Instructions the aarch64 process retires: qemu's exec log lines, one per instruction."""
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if not qemu:
        raise RuntimeError("no qemu-aarch64 (apt-get install qemu-user)")
    cmd = [qemu, "-cpu", cpu, "-singlestep", "-d", "nochain,exec", str(exe), *args]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.stderr is not None
    lines = 0
    while chunk := p.stderr.read(1 << 22):
        lines += chunk.count(b"Trace ")
    if p.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode})")
    return lines


def count_valgrind(exe: Path, args: list[str]) -> int:
    """Instructions the x86 process executes, as callgrind counts them."""
    p = run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(exe), *args])
    m = re.search(r"Collected : (\d+)", p.stderr)
    if not m:
        raise RuntimeError(f"no callgrind count in:\n{p.stderr[-2000:]}")
    return int(m.group(1))


def per_byte(exe: Path, arch: str, kset: str, cpu: str, kernel: str, n: int, rows: int, iters: int, nc: int) -> float:
    """Instructions per weight byte of one kernel: (count at iters - count at 0) / (iters * bytes).

    With nc activation columns (a GEMM kernel's tile) the weight bytes are counted once per call.
    """
    counts = []
    wbytes = 0
    for it in (iters, 0):
        args = [kset, kernel, str(n), str(rows), str(it)] + ([str(nc)] if nc != 1 else [])
        if arch == "aarch64":
            counts.append(count_qemu(exe, cpu, args))
            out = run([shutil.which("qemu-aarch64") or "qemu-aarch64-static", "-cpu", cpu, str(exe), *args]).stdout
        else:
            counts.append(count_valgrind(exe, args))
            out = run([str(exe), *args]).stdout
        wbytes = int(re.search(r"weight_bytes=(\d+)", out).group(1))  # type: ignore[union-attr]
    return (counts[0] - counts[1]) / (iters * wbytes)


def main() -> int:
    """Builds the drivers, counts every kernel, prints a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", metavar="REV", help="also count the kernels of git revision REV")
    ap.add_argument("--n", type=int, default=2048, help="row length (Ouro-1.4B's hidden size)")
    ap.add_argument("--rows", type=int, default=64, help="weight rows per call (KV: rows of the cache)")
    ap.add_argument("--kv-n", type=int, default=256, help="KV row length (two heads of 128)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--nc", type=int, default=1, help="activation columns per GEMM call (1: decode)")
    ap.add_argument("--kernels", default=",".join(GEMMS + KV))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "looplm-insn-count")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("LOOPLM_JOBS", "2")))
    a = ap.parse_args()
    kernels = [k for k in a.kernels.split(",") if k]
    bad = [k for k in kernels if k not in GEMMS + KV]
    if bad:
        ap.error(f"unknown kernel(s) {', '.join(bad)}; known: {', '.join(GEMMS + KV)}")

    trees = {"after": ROOT}
    if a.before:
        trees = {"before": export_tree(a.before, a.work / "src-before"), "after": ROOT}
    exes: dict[tuple[str, str], Path] = {}
    for label, src in trees.items():
        for arch in ("aarch64", "x86_64"):
            if label == "before" and arch == "x86_64":
                continue  # the x86 column is the current tree's
            exes[label, arch] = build_driver(src, arch, a.work / label, a.jobs)
            print(f"built {label} {arch}: {exes[label, arch]}", file=sys.stderr)

    cols: list[tuple[str, str, str, str]] = []  # (label, set, arch, cpu)
    for kset, arch, cpu in ARM_SETS:
        cols += [(label, kset, arch, cpu) for label in trees]
    cols += [("after", kset, arch, cpu) for kset, arch, cpu in X86_SETS]
    head = ["kernel"] + [f"{s} {lab}" if arch == "aarch64" else f"x86 {s}" for lab, s, arch, _ in cols]
    print(
        f"instructions per weight byte (n={a.n}, {a.rows} rows, {a.nc} column(s), KV rows of {a.kv_n};"
        f" {a.iters} iterations)"
    )
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(cols))
    for k in kernels:
        n = a.kv_n if k.startswith("kv_") else a.n
        vals = [per_byte(exes[lab, arch], arch, s, cpu, k, n, a.rows, a.iters, a.nc) for lab, s, arch, cpu in cols]
        print(f"| {k} | " + " | ".join(f"{v:.3f}" for v in vals) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
