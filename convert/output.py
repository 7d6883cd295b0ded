"""Where a conversion may write: never over one of its inputs, only to a regular file, and
through a temporary file renamed at the end (so an error or a signal leaves no partial file).

* An output that is one of the checkpoint's files (the same inode: the path itself, a
  symlink to it or a hard link) is refused: ``-o CKPT/model.safetensors`` used to replace the
  weights with the GGUF.
* An output that exists and is not a regular file (a device node, a FIFO, a socket) is
  refused: the rename would replace the node itself (``-o /dev/null`` as root replaced the
  system's ``/dev/null`` with a regular file).
* A symlink output is written through: the GGUF replaces the link's target, the link stays.
* The temporary file ``.NAME.PID.tmp`` lives next to the final file (the rename must not cross
  file systems) and is created exclusively, so an existing file or link of that name is never
  followed. The PID lets a later run sweep the leftovers of a process that died (SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import ConvertError

_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def input_files(folder: Path, extra: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """Every file a conversion of ``folder`` reads or could read: the folder's files (config,
    shards, index, tokenizer files, ...) and ``extra`` (shards an index names elsewhere)."""
    files = [p for p in folder.iterdir() if p.is_file()]
    return files + [p for p in extra if p not in files]


def final_path(out: Path, inputs: list[Path]) -> Path:
    """The file the GGUF will replace or create, after the checks above.

    Raises:
        ConvertError: the output is a folder, not a regular file, or one of the inputs.
    """
    target = Path(os.path.realpath(out)) if out.is_symlink() else out
    try:
        st = target.stat()
    except FileNotFoundError:
        return target
    except OSError as e:
        raise ConvertError(f"{out}: cannot write: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise ConvertError(f"{out}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ConvertError(f"{out}: not a regular file (a device, FIFO or socket); the GGUF goes to a regular file")
    me = (st.st_dev, st.st_ino)
    for p in inputs:
        if _identity(p) == me:
            same = "" if p.resolve() == target.resolve() else f" (the same file as {p})"
            raise ConvertError(f"{out}: is one of the checkpoint's input files{same}; choose another output")
    return target


def temp_path(target: Path) -> Path:
    """Creates (exclusively) and returns the temporary file for ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for attempt in (0, 1):
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return tmp
        except FileExistsError:
            if attempt:
                raise ConvertError(f"{target}: cannot write: {tmp} exists") from None
            try:
                tmp.unlink()  # our own pid's: left by a process that had this pid before
            except OSError as e:
                raise ConvertError(f"{target}: cannot write: {tmp}: {e.strerror or e}") from e
        except OSError as e:
            raise ConvertError(f"{target}: cannot write: {e.strerror or e}") from e
    raise AssertionError("unreachable")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def sweep_stale(folder: Path, name: str | None = None) -> list[Path]:
    """Removes the temporary files in ``folder`` (of the output ``name`` only, if given)
    whose process is gone; returns them."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TMP.match(p.name)
        if not m or (name is not None and m["name"] != name) or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        try:
            if p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


class Signalled(BaseException):
    """SIGTERM or SIGHUP arrived while writing: unwinds like KeyboardInterrupt (the temporary
    file is removed on the way), then :func:`signals_unwind` re-delivers the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Signalled` inside the block (where their handler is
    the default one, in the main thread); after the block's cleanup the default handler is
    restored and the signal sent again, so the process ends as the signal meant (timeout,
    ``docker stop``, a CI cancel) but leaves no temporary file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:

            def handler(signum: int, frame: object) -> None:
                raise Signalled(signum)

            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    except Signalled as e:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.kill(os.getpid(), e.signum)
        raise  # only if the signal was blocked
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
