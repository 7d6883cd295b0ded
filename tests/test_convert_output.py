"""Where `looplm convert` writes (convert/output.py; issue 18, items 1 and 5): never over an
input, only to regular files, through symlinks to their targets, with no temporary file left
by an error, a full disk, Ctrl-C, SIGTERM or SIGHUP."""

from __future__ import annotations

import hashlib
import os
import resource
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import gguf
import ouro_fixtures as fx
import pytest
from looplm.convert import ConvertError, convert_checkpoint

LOOPLM = [sys.executable, "-m", "looplm.cli"]


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every entry of folder: its mode and a hash of its bytes (regular files)."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[p.name] = (stat.S_IFMT(st.st_mode), digest)
    return out


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "single": fx.make_checkpoint(root / "single", seed=3),
        "sharded": fx.make_checkpoint(root / "sharded", seed=3, shards=2),
    }


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LOOPLM, *args], capture_output=True, text=True, check=False, timeout=120, **kw)


def one_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_output_that_is_an_input_is_refused(ckpts, kind, tmp_path):
    """Every file of the checkpoint, named directly, through a symlink and through a hard
    link: refused before any work, the checkpoint unchanged."""
    folder = ckpts[kind]
    before = snapshot(folder)
    names = sorted(before)
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(names)
    for name in names:
        link, hard = tmp_path / f"link-{name}", tmp_path / f"hard-{name}"
        link.symlink_to(folder / name)
        os.link(folder / name, hard)
        for out in (folder / name, link, hard):
            with pytest.raises(ConvertError, match="is one of the checkpoint's input files"):
                convert_checkpoint(folder, out, "q8_0", progress=False)
    r = cli("convert", str(folder), "-o", str(folder / names[0]))
    assert r.returncode == 1 and "input files" in one_line(r)
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary


def test_output_inside_the_checkpoint_under_a_new_name_is_fine(ckpts, tmp_path):
    folder = tmp_path / "ckpt"
    fx.make_checkpoint(folder, seed=3)
    before = snapshot(folder)
    convert_checkpoint(folder, folder / "model.gguf", "q8_0", progress=False)
    after = snapshot(folder)
    assert after.pop("model.gguf")[0] == stat.S_IFREG and after == before


def _special_files(tmp_path: Path) -> list[Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    nodes = [fifo]
    try:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
        nodes.append(tmp_path / "null")
    except PermissionError:  # not root: the FIFO stands for every node
        pass
    return nodes


def test_output_that_is_not_a_regular_file_is_refused(ckpts, tmp_path):
    """A FIFO (opening it would block) or a device node: refused, the node stays as it was
    (the rename used to replace it with a regular file)."""
    for node in _special_files(tmp_path):
        kind = stat.S_IFMT(node.lstat().st_mode)
        link = tmp_path / f"link-to-{node.name}"
        link.symlink_to(node)
        for out in (node, link):
            with pytest.raises(ConvertError, match="not a regular file"):
                convert_checkpoint(ckpts["single"], out, "q8_0", progress=False)
            r = cli("convert", str(ckpts["single"]), "-o", str(out))
            assert r.returncode == 1 and f"{out}: not a regular file" in one_line(r)
        assert stat.S_IFMT(node.lstat().st_mode) == kind and link.is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_symlink_output_is_written_through(ckpts, tmp_path):
    """A symlink output: the GGUF replaces the link's target (in the target's folder), the
    link stays a link; a dangling link creates its target."""
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "real.gguf"
    target.write_bytes(b"old")
    link = tmp_path / "m.gguf"
    link.symlink_to(target)
    r = convert_checkpoint(ckpts["single"], link, "q8_0", progress=False)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert gguf.GGUFReader(str(target)).fields["general.architecture"].contents() == "ouro"
    assert r.n_bytes == target.stat().st_size
    dangling = tmp_path / "d.gguf"
    dangling.symlink_to(tmp_path / "models" / "new.gguf")
    convert_checkpoint(ckpts["single"], dangling, "q8_0", progress=False)
    assert dangling.is_symlink() and (tmp_path / "models" / "new.gguf").is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["new.gguf", "real.gguf"]


def test_stale_temporaries_of_dead_processes_are_swept(ckpts, tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)  # exited: no process has this pid (for the moment)
    stale = tmp_path / f".m.gguf.{dead_pid}.tmp"
    alive = tmp_path / f".m.gguf.{os.getppid()}.tmp"  # a live process's: maybe still writing
    other = tmp_path / f".other.gguf.{dead_pid}.tmp"  # another output's: not ours to judge here
    for p in (stale, alive, other):
        p.write_bytes(b"x" * 1000)
    convert_checkpoint(ckpts["single"], tmp_path / "m.gguf", "q8_0", progress=False)
    assert not stale.exists() and alive.exists() and other.exists()


# ---------------------------------------------------------------- signals, full disks

# Runs the CLI with the tensor conversion slowed down at its third tensor, announcing it.
SLOW = r"""
import sys, time
import looplm.convert.hf_to_gguf as h
real, calls = h.convert, [0]
def slow(*a, **k):
    calls[0] += 1
    if calls[0] == 3:
        print("writing", flush=True)
        time.sleep(60)
    return real(*a, **k)
h.convert = slow
from looplm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _signal_while_writing(args: list[str], sig: int, env: dict | None = None) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", SLOW, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        ready, end = b"", time.time() + 60
        while b"writing" not in ready and time.time() < end:
            if select.select([p.stdout], [], [], 0.5)[0]:
                ready += os.read(p.stdout.fileno(), 4096)
        assert b"writing" in ready, p.stderr.read().decode() if p.poll() is not None else "no progress"
        p.send_signal(sig)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_during_convert_leaves_no_file(ckpts, tmp_path, sig):
    """The process still ends by the signal (its exit status says so), without its temporary."""
    out = tmp_path / "out"
    out.mkdir()
    p = _signal_while_writing(["convert", str(ckpts["single"]), "-o", str(out / "m.gguf")], sig)
    assert p.returncode == -sig
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_during_the_cache_conversion_of_run(ckpts, tmp_path, sig):
    """`looplm run -m FOLDER` converts into the cache first: a signal there leaves nothing."""
    cache = tmp_path / "cache"
    args = ["run", "-m", str(ckpts["single"]), "-p", "x", "-n", "1"]
    p = _signal_while_writing(args, sig, {"LOOPLM_CACHE": str(cache)})
    assert p.returncode == -sig
    assert list(cache.iterdir()) == []


def test_file_size_limit_names_the_output(ckpts, tmp_path):
    """ulimit -f (EFBIG) or a full disk: one line naming the output, no file left."""
    out = tmp_path / "m.gguf"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    r = subprocess.run(
        [*LOOPLM, "convert", str(ckpts["single"]), "-o", str(out), "--type", "f32"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        preexec_fn=limit,
    )
    line = one_line(r)
    assert r.returncode == 1 and f"{out}: cannot write: " in line, line
    assert "File too large" in line or "short write (disk full or file size limit)" in line, line
    assert list(tmp_path.iterdir()) == []
