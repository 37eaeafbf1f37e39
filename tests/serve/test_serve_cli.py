"""``huale serve`` as users start it: a subprocess on loopback, stopped with SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import huale_env
from tests.serve.conftest import Client
from tests.serve.projects import make_project
from tests.serve.serving import ServeProcess

pytest.importorskip("huale.project.rounds", reason="needs the project folder (huale round)")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("serve-cli"))


def test_serve_answers_label_studio_routes_and_stops_cleanly(project):
    server = ServeProcess(project.root, "--auth-token", "s3cret")
    try:
        assert "huale-round-001" in server.banner and "token required" in server.banner
        client = Client(server.host, server.port, {"Authorization": "Bearer s3cret"})
        assert Client(server.host, server.port, {}).get("/health").status == 401
        health = client.get("/health")
        assert health.status == 200 and health.body["model_version"] == "huale-round-001"
        setup = client.post("/setup", {"project": "1.1", "schema": "<View/>"})
        assert setup.body == {"model_version": "huale-round-001"}
        tasks = json.loads((project.round_dir(1) / "labelstudio_tasks.json").read_text())
        reply = client.post("/predict", {"tasks": [dict(t, id=k) for k, t in enumerate(tasks)]})
        assert reply.status == 200
        assert [p["score"] for p in reply.body["results"]] == [t["predictions"][0]["score"]
                                                               for t in tasks]
        bad = client.post("/predict", {"tasks": [{"id": 1, "data": {"image": "/etc/passwd"}}]})
        assert bad.status == 400 and "refused" in bad.body["error"]
        assert client.post("/predict", raw=b"{oops").status == 400
        assert client.get("/health").status == 200
    finally:
        code, out, err = server.stop()
    assert code == 0, err[-2000:]


def test_serve_of_a_missing_project_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "huale", "serve", str(tmp_path / "nope")],
                            env=huale_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("huale serve: error:")
    assert "not a huale project" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_busy_port(project):
    first = ServeProcess(project.root)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "huale", "serve", str(project.root), "--port", str(first.port),
             "--device", "cpu"], env=huale_env(), capture_output=True, text=True, timeout=180)
    finally:
        first.stop()
    assert result.returncode == 2 and "cannot listen" in result.stderr
