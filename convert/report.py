"""What a finished write reports, and the one wrapper that turns a write into a command's exit code.

``looplm convert`` and ``looplm quantize`` both write one GGUF file and answer the same way: one
summary line on success, one ``error:`` line and exit code 1 on bad input, exit code 130 on Ctrl-C
(the writers leave no partial file behind; convert/output.py).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WriteResult:
    """One GGUF file written by the converter or the requantizer.

    Attributes:
        path: the file written.
        n_tensors: tensors in it.
        n_bytes: its size in bytes.
        out_type: the ``--type`` it was written at.
        seconds: wall time of the whole write.
        peak_rss_mb: the process's peak resident memory, MiB.
    """

    path: Path
    n_tensors: int
    n_bytes: int
    out_type: str
    seconds: float
    peak_rss_mb: float


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, where Linux has it: ru_maxrss also counts
    the parent's peak at fork, so a child would report its parent's high-water mark."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_write(prog: str, write: Callable[[], WriteResult]) -> int:
    """Runs ``write`` for the command ``prog`` and reports it on stderr.

    Returns:
        0 after the summary line; 1 after one ``error:`` line for bad input (ValueError, OSError);
        130 when interrupted.
    """
    try:
        r = write()
    except (ValueError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted, no output written", file=sys.stderr)
        return 130
    print(
        f"{prog}: wrote {r.path} ({r.n_tensors} tensors, {r.n_bytes / 1e6:.1f} MB, {r.out_type}) "
        f"in {r.seconds:.1f} s, peak memory {r.peak_rss_mb:.0f} MB",
        file=sys.stderr,
    )
    return 0
