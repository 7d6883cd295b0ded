"""``looplm serve`` as a real process on 127.0.0.1 for the server tests: started on a free port
(``--port 0``, the port read from its start-up line), waited for until /health says ready, and
stopped with SIGTERM (then SIGKILL after a bounded wait)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 60.0


class Server:
    def __init__(self, model: Path | str, *args: str) -> None:
        cmd = [sys.executable, "-m", "looplm.cli", "serve", "-m", str(model), "--host", "127.0.0.1", "--port", "0"]
        self.proc = subprocess.Popen([*cmd, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.port = self._read_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._lines)

    def _read_port(self) -> int:
        end = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < end and self.proc.poll() is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.stderr)
            if m:
                return int(m.group(1))
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"the server did not start: {self.stderr}")

    def _wait_ready(self) -> None:
        end = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < end:
            status, _ = self.get("/health")
            if status == 200:
                return
            assert status == 503, status  # loading
            time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path: str, body: bytes | dict, headers: dict[str, str] | None = None) -> tuple[int, dict, Any]:
        """(status, JSON body, headers (case-insensitive)) of a POST with a raw or JSON body."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.url + path, data=data, headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), e.headers

    def metrics(self) -> dict[str, float]:
        """The /metrics samples by name with labels."""
        status, text = self.get("/metrics")
        assert status == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (SIGKILL and a failure if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the server did not exit after SIGTERM") from None
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
