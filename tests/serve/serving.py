"""``huale serve`` in a real subprocess: start it on a free port, read its address, stop it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import huale_env

ADDRESS = re.compile(r"on http://([0-9.]+):(\d+) ")


class ServeProcess:
    """``huale serve PROJECT --port 0 ARGS``; ``port`` once it printed its address."""

    def __init__(self, project: Path, *args: str, env: dict | None = None, timeout: float = 180):
        full_env = huale_env()
        full_env.update(env or {})
        self.command = [sys.executable, "-m", "huale", "serve", str(project), "--port", "0",
                        "--device", "cpu", *args]
        self.proc = subprocess.Popen(self.command, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"huale serve exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read()[-3000:]}")
            match = ADDRESS.search(line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                self.banner = line
                return
        self.proc.kill()
        raise RuntimeError(f"huale serve printed no address within {timeout} s (last: {line!r})")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        """SIGTERM, then (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err
