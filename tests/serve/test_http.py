"""The ML backend routes over a real waitress server on loopback, with a scripted backend."""

from __future__ import annotations

import base64
import threading

import pytest

from huale.serve.errors import NotReady, TaskError, TaskFailure, UpstreamError
from huale.serve.http import MLBackendApp
from huale.serve.images import ImageRefused
from tests.serve.conftest import serving


class ScriptedBackend:
    """Answers like a backend; ``fail`` makes predict raise what the test asks for."""

    model_version = "huale-round-002"

    def __init__(self):
        self.events = []
        self.fail: BaseException | None = None
        self.label_configs = []

    def health(self):
        return {"model_version": self.model_version, "training": {"state": "idle"}}

    def setup(self, request):
        return {"model_version": self.model_version}

    def predict(self, tasks, label_config=None):
        self.label_configs.append(label_config)
        if self.fail is not None:
            raise self.fail
        return [{"model_version": self.model_version, "score": 0.25 * i, "result": []}
                for i, _ in enumerate(tasks)]

    def handle_event(self, event, payload):
        self.events.append((event, payload))
        return {"event": event}


@pytest.fixture
def backend():
    return ScriptedBackend()


@pytest.fixture
def client(backend):
    with serving(MLBackendApp(backend, max_body_bytes=4096)) as c:
        yield c


def test_health_setup_predict_webhook_shapes(client, backend):
    health = client.get("/health")
    assert health.status == 200 and health.body["status"] == "UP"
    assert health.body["model_version"] == "huale-round-002"
    assert client.get("/").status == 200
    setup = client.post("/setup", {"project": "1.1700000000", "schema": "<View/>"})
    assert setup.status == 200 and setup.body == {"model_version": "huale-round-002"}
    predict = client.post("/predict", {"tasks": [{"id": 1}, {"id": 2}], "label_config": "<View/>"})
    assert predict.status == 200
    assert predict.body["results"] == [
        {"model_version": "huale-round-002", "score": 0.0, "result": []},
        {"model_version": "huale-round-002", "score": 0.25, "result": []},
    ]
    assert predict.body["model_version"] == "huale-round-002"
    assert backend.label_configs == ["<View/>"]
    hook = client.post("/webhook", {"action": "START_TRAINING", "project": {"id": 1}})
    assert hook.status == 200 and hook.body == {"status": "ok", "result": {"event": "START_TRAINING"}}
    assert backend.events == [("START_TRAINING", {"project": {"id": 1}})]
    train = client.post("/train", {"annotations": []})
    assert train.status == 200 and backend.events[-1][0] == "START_TRAINING"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "must be an object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"tasks": {"id": 1}}', '"tasks" must be a list'),
    ],
)
def test_malformed_bodies_are_400_with_a_message(client, raw, message):
    reply = client.post("/predict", raw=raw, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert message in reply.body["error"]


def test_webhook_without_action_is_400(client):
    reply = client.post("/webhook", {"project": {"id": 1}})
    assert reply.status == 400 and '"action"' in reply.body["error"]


def test_body_over_the_limit_is_413_and_the_server_goes_on(client):
    reply = client.post("/predict", {"tasks": [{"data": {"image": "x" * 8000}}]})
    assert reply.status == 413 and "over the limit" in reply.body["error"]
    assert client.get("/health").status == 200


def test_missing_length_and_unknown_routes_and_methods(client):
    assert client.post("/predict", raw=b"").status == 400  # Content-Length: 0 -> empty JSON
    assert client.get("/nowhere").status == 404
    reply = client.get("/predict")
    assert reply.status == 405 and reply.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TaskError("task 7: no \"data\" object"), 400),
        (ImageRefused("image 'http://evil/x.jpg' is not on the Label Studio host"), 400),
        (NotReady("no round has trained a model yet"), 503),
    ],
)
def test_backend_errors_map_to_statuses(client, backend, error, status):
    backend.fail = error
    reply = client.post("/predict", {"tasks": [{"id": 7}]})
    assert reply.status == status
    assert reply.body["error"] == str(error)


def test_a_failed_task_is_an_empty_result_and_an_error_entry(client, backend):
    """Label Studio stores one prediction per dict and none for ``[]``: the failed tasks get
    ``[]`` at their place, the reason in ``errors``, the others their prediction."""
    class PartlyFailing(ScriptedBackend):
        def predict(self, tasks, label_config=None):
            answers = super().predict(tasks)
            answers[1] = TaskFailure(1, 12, TaskError("task 12: image '/etc/x' is refused"))
            answers[2] = TaskFailure(2, "#2", UpstreamError("task #2: Label Studio answered 500"))
            return answers

    with serving(MLBackendApp(PartlyFailing())) as c:
        reply = c.post("/predict", {"tasks": [{"id": 11}, {"id": 12}, {}, {"id": 14}]})
    assert reply.status == 200
    results = reply.body["results"]
    assert results[1] == [] and results[2] == []
    assert results[0]["score"] == 0.0 and results[3]["score"] == 0.75
    assert reply.body["errors"] == [
        {"task": 12, "index": 1, "status": 400, "error": "task 12: image '/etc/x' is refused"},
        {"task": "#2", "index": 2, "status": 502, "error": "task #2: Label Studio answered 500"},
    ]
    assert "errors" not in client.post("/predict", {"tasks": [{"id": 1}]}).body


@pytest.mark.parametrize("crash", [RuntimeError("boom"), MemoryError(), SystemExit(3),
                                   ZeroDivisionError("x")])
def test_a_crashing_request_is_500_and_the_server_keeps_serving(client, backend, crash):
    backend.fail = crash
    for _ in range(6):  # more than the server's threads: no thread died
        reply = client.post("/predict", {"tasks": [{"id": 1}]})
        assert reply.status == 500
        assert "internal error" in reply.body["error"]
    backend.fail = None
    assert client.post("/predict", {"tasks": [{"id": 1}]}).status == 200
    assert client.get("/health").status == 200


def test_concurrent_clients_with_one_crashing(backend):
    class Mixed(ScriptedBackend):
        def predict(self, tasks, label_config=None):
            if tasks and tasks[0].get("crash"):
                raise RuntimeError("this one fails")
            return super().predict(tasks)

    mixed = Mixed()
    statuses = []
    with serving(MLBackendApp(mixed), threads=4) as c:
        def call(i):
            statuses.append(c.post("/predict", {"tasks": [{"id": i, "crash": i % 5 == 0}]}).status)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert c.get("/health").status == 200
    assert sorted(statuses) == [200] * 32 + [500] * 8


def test_token_is_required_on_every_route(backend):
    app = MLBackendApp(backend, auth_token="s3cret")
    with serving(app) as c:
        for method, path in [("GET", "/health"), ("POST", "/setup"), ("POST", "/predict"),
                             ("POST", "/webhook"), ("GET", "/nowhere")]:
            reply = c.request(method, path, {"tasks": []})
            assert reply.status == 401, path
            assert reply.headers["www-authenticate"].startswith("Bearer")
        wrong = c.get("/health", headers={"Authorization": "Bearer s3cre"})
        assert wrong.status == 401
        bearer = c.get("/health", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status == 200
        # Label Studio's "basic auth" connection: any user name, the token as password
        basic = base64.b64encode(b"label-studio:s3cret").decode()
        assert c.get("/health", headers={"Authorization": f"Basic {basic}"}).status == 200
        bad = base64.b64encode(b"s3cret:nope").decode()
        assert c.get("/health", headers={"Authorization": f"Basic {bad}"}).status == 401
        assert c.get("/health", headers={"Authorization": "Basic !!!"}).status == 401
    assert backend.events == []
