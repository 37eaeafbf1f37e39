"""A real Label Studio for the round-trip and ``huale serve`` tests: installed by
``.ci/setup-label-studio.sh`` into ``.venv-ls/`` and started once per test session on 127.0.0.1
with local-files serving (the ``label_studio`` fixture of ``tests/conftest.py``; every test
using it makes its own project and keeps its files in its own folder under the document root).

:func:`start_label_studio` returns a :class:`LabelStudio` (base URL, token, the document root
that local files are served from, and ``call`` for the REST API); ``stop`` ends the server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("LS_VENV", REPO / ".venv-ls"))
SETUP = REPO / ".ci" / "setup-label-studio.sh"
TOKEN = "huale-test-token-0123456789abcdef"
START_TIMEOUT = 600  # first start runs Django migrations: ~30 s idle, minutes on a busy machine


@dataclass
class LabelStudio:
    url: str
    token: str
    document_root: Path
    process: subprocess.Popen
    log: Path

    def call(self, method: str, path: str, body=None, *, form: dict | None = None):
        """JSON (or ``form``-encoded) request to the API; returns the decoded JSON answer."""
        headers = {"Authorization": f"Token {self.token}"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None
        return json.loads(raw) if raw else None

    def get_bytes(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def python(self) -> Path:
        return VENV / "bin" / "python"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def install() -> str | None:
    """Run the setup script (idempotent); returns None, or why Label Studio cannot be installed."""
    if (VENV / ".installed").is_file():
        return None
    try:
        done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return "installing label-studio took more than 30 minutes"
    if done.returncode != 0:
        return f"{SETUP.name} failed: {done.stderr.strip()[-500:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_label_studio(root: Path, extra_env: dict[str, str] | None = None) -> LabelStudio:
    """Start Label Studio with data in ``root/data`` and local files served from ``root/files``;
    ``extra_env`` is added to its environment."""
    document_root = root / "files"
    document_root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "DJANGO"))}
    env.update(
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(document_root),
        PYTHONPATH="",
    )
    env.update(extra_env or {})
    log = root / "label-studio.log"
    command = [str(VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host",
               "127.0.0.1", "--port", str(port), "--data-dir", str(root / "data"),
               "--username", "huale@example.com", "--password", "huale-test-password",
               "--user-token", TOKEN, "--enable-legacy-api-token", "--log-level", "WARNING"]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   cwd=root, start_new_session=True)
    server = LabelStudio(f"http://127.0.0.1:{port}", TOKEN, document_root, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            server.call("GET", "/api/version")
            return server
        except (urllib.error.URLError, ConnectionError, AssertionError, OSError):
            time.sleep(1)
    server.stop()
    raise RuntimeError(f"label-studio did not answer within {START_TIMEOUT} s: {log.read_text()[-3000:]}")
