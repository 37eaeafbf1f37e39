"""A real Label Studio (1.23, its own virtualenv) connected to ``huale serve`` on loopback.

Label Studio refuses ML backends on reserved addresses unless started with
``ML_BLOCK_LOCAL_IP=false`` and ``SSRF_PROTECTION_ENABLED=false`` (the session's Label Studio,
``label_studio`` in ``tests/conftest.py``, is). The test connects the
backend through the API (basic auth: the token as password), runs the Data Manager's
"Retrieve predictions" action, checks what Label Studio stored (a prediction for every task
but the one whose image huale refuses), saves an annotation through the
API and waits for the webhook Label Studio registered for the backend to bring it into the
project's labeled set, then presses "Start training" and waits for round 2 to be served.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from huale.serve.ranking import Ranking
from tests.serve.projects import make_project
from tests.serve.serving import ServeProcess

pytest.importorskip("huale.project.rounds", reason="needs the project folder (huale round)")

TOKEN = "serve-test-token"


@pytest.fixture(scope="module")
def served(label_studio, tmp_path_factory):
    """A one-round project whose pool lies under Label Studio's document root, served with
    LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY pointing at that Label Studio."""
    project = make_project(tmp_path_factory.mktemp("serve-ls"),
                           pool=label_studio.document_root / "serve-pool")
    server = ServeProcess(project.root, "--auth-token", TOKEN, env={
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token})
    yield project, server
    code, _, err = server.stop()
    assert code == 0, err[-2000:]


def upload_image(ls, project_id: int, name: str, data: bytes) -> dict:
    """Import one image file as a task (Label Studio stores it under /data/upload/)."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{ls.url}/api/projects/{project_id}/import", data=body, method="POST",
        headers={"Authorization": f"Token {ls.token}",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_label_studio_predictions_webhook_and_training(label_studio, served):
    ls = label_studio
    project, server = served
    config = (project.round_dir(1) / "labelstudio_config.xml").read_text()
    pid = ls.call("POST", "/api/projects", {"title": "huale serve", "label_config": config})["id"]
    ls.call("POST", "/api/storages/localfiles", {
        "project": pid, "title": "pool", "path": str(project.pool), "use_blob_urls": False})
    # every pool image as a task without predictions, as a team importing its whole pool would
    pool_ids = sorted(p.name for p in project.pool.iterdir())
    ls.call("POST", f"/api/projects/{pid}/import",
            [{"data": {"image": f"/data/local-files/?d={project.pool.name}/{name}"}}
             for name in pool_ids])
    upload_image(ls, pid, "upload.png", (project.pool / pool_ids[0]).read_bytes())
    # and one task huale must refuse (an image on another host): it gets no prediction, and
    # the tasks sent with it in the same batch still get theirs
    outside = "http://198.51.100.7/elsewhere.png"
    ls.call("POST", f"/api/projects/{pid}/import", [{"data": {"image": outside}}])

    ml = ls.call("POST", "/api/ml", {
        "url": server.url, "project": pid, "title": "huale", "auth_method": "BASIC_AUTH",
        "basic_auth_user": "label-studio", "basic_auth_pass": TOKEN})
    assert ml["state"] == "CO", ml  # connected: /health and /setup answered
    # the webhook Label Studio made for the backend: give it the token too
    hooks = [h for h in ls.call("GET", f"/api/webhooks?project={pid}")
             if h["url"].rstrip("/") == server.url + "/webhook"]
    assert len(hooks) == 1, hooks
    ls.call("PATCH", f"/api/webhooks/{hooks[0]['id']}",
            {"headers": {"Authorization": f"Bearer {TOKEN}"}})

    # Data Manager > Actions > Retrieve predictions, on every task
    done = ls.call("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
                   {"selectedItems": {"all": True, "excluded": []}})
    assert done.get("processed_items") == 12, done
    tasks = ls.call("GET", f"/api/tasks?project={pid}&fields=all&page_size=100")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    assert len(tasks) == 12
    [refused] = [t for t in tasks if t["data"]["image"] == outside]
    assert refused["predictions"] == []
    tasks = [t for t in tasks if t is not refused]
    selection = json.loads((project.round_dir(1) / "selection.json").read_text())
    ranking = Ranking.from_selection(selection["ranking"])
    by_name = {}
    for task in tasks:
        assert len(task["predictions"]) == 1, task
        prediction = task["predictions"][0]
        assert prediction["model_version"] == "huale-round-001"
        name = task["data"]["image"].rsplit("/", 1)[-1]
        if task["data"]["image"].startswith("/data/upload/"):
            assert 1.0 <= prediction["score"] <= 2.0  # fetched from Label Studio, scored live
            continue
        by_name[name] = task
        assert prediction["score"] == pytest.approx(ranking.prediction_score(name))
        for region in prediction["result"]:
            assert region["from_name"] == "label" and region["to_name"] == "image"
    order = sorted(by_name, key=lambda n: by_name[n]["predictions"][0]["score"])
    assert order == [e.image_id for e in ranking.entries]  # lowest score first = huale's order

    # an annotation saved through the API reaches the labeled set through the webhook
    target = by_name[order[0]]
    region = {"id": "a1", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
              "original_width": 64, "original_height": 64, "image_rotation": 0,
              "value": {"x": 12.5, "y": 25.0, "width": 50.0, "height": 37.5, "rotation": 0,
                        "rectanglelabels": ["green"]}}
    ls.call("POST", f"/api/tasks/{target['id']}/annotations",
            {"result": [region], "was_cancelled": False, "ground_truth": False})
    path = project.pool / order[0]

    def stored():
        labeled = project.labeled()
        image = labeled.image_at(path)
        return image and labeled.annotations_of(image["id"])

    [box] = wait_for(stored, 120, "the annotation to reach the labeled set")
    # 12.5 %, 25 %, 50 %, 37.5 % of 64 px: x 8, y 16, w 32, h 24
    assert box["bbox"] == pytest.approx([8.0, 16.0, 32.0, 24.0], abs=0.01)
    assert project.labeled().categories[box["category_id"] - 1]["name"] == "green" or \
        {c["id"]: c["name"] for c in project.labeled().categories}[box["category_id"]] == "green"

    # Start training: one background round, then Label Studio gets round 2's model version
    ls.call("POST", f"/api/ml/{ml['id']}/train", {})
    health = wait_for(lambda: _finished(server), 900, "the background round")
    assert health["training"]["state"] == "finished", health
    assert health["model_version"] == "huale-round-002"
    assert project.round_record(2)["labeled_images"] == 5
    ml_now = ls.call("GET", f"/api/ml/{ml['id']}")
    assert ml_now["state"] in ("CO", "TR"), ml_now


def _finished(server):
    from tests.serve.conftest import Client

    reply = Client(server.host, server.port, {"Authorization": f"Bearer {TOKEN}"}).get("/health")
    state = reply.body["training"]["state"]
    return reply.body if state in ("finished", "failed") else None
