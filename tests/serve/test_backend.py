"""The project backend without HTTP: predictions, scores, events, the background round."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from huale.serve.backend import ProjectBackend, ServeOptions
from huale.serve.errors import NotReady, TaskError, TaskFailure, UpstreamError
from huale.serve.images import LabelStudioHost
from tests.serve.projects import copy_project, make_project

pytest.importorskip("huale.project.rounds", reason="needs the project folder (huale round)")

OPTIONS = ServeOptions(device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("serve-project"))


@pytest.fixture
def project(one_round, tmp_path):
    return copy_project(one_round, tmp_path / "proj")


@pytest.fixture
def backend(project):
    return ProjectBackend(project, options=OPTIONS)


def round_tasks(project, number=1) -> list[dict]:
    tasks = json.loads((project.round_dir(number) / "labelstudio_tasks.json").read_text())
    return [dict(t, id=100 + k) for k, t in enumerate(tasks)]


def pool_task(project, image_id: str, task_id: int) -> dict:
    return {"id": task_id, "data": {"image": str((project.pool / image_id).resolve())}}


def annotation(task: dict, boxes, names, *, annotation_id=1, updated="2026-12-01T03:00:00Z",
               size=64) -> dict:
    """A Label Studio annotation of ``task``: xyxy pixel boxes as percent regions."""
    result = []
    for k, ((x1, y1, x2, y2), name) in enumerate(zip(boxes, names, strict=True)):
        result.append({
            "id": f"r{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": size, "original_height": size, "image_rotation": 0,
            "value": {"x": 100 * x1 / size, "y": 100 * y1 / size, "width": 100 * (x2 - x1) / size,
                      "height": 100 * (y2 - y1) / size, "rotation": 0, "rectanglelabels": [name]},
        })
    return {"id": annotation_id, "task": task["id"], "result": result, "was_cancelled": False,
            "created_at": updated, "updated_at": updated}


def labeled_boxes(project, image_id: str):
    labeled = project.labeled()
    image = labeled.image_at(project.pool / image_id)
    if image is None:
        return None
    return sorted(tuple(round(v, 3) for v in a["bbox"]) for a in labeled.annotations_of(image["id"]))


def test_setup_and_health_name_the_round(backend):
    assert backend.setup({"project": "3.1700000000", "schema": "<View/>"}) == {
        "model_version": "huale-round-001"
    }
    health = backend.health()
    assert health["round"] == 1 and health["model_loaded"] and health["strategy"] == "huale"
    assert health["training"] == {"state": "idle"} and health["pool_images"] == 10


def test_predictions_of_the_round_tasks_equal_its_export(backend, project):
    tasks = round_tasks(project)
    predictions = backend.predict(tasks)
    assert len(predictions) == len(tasks) == 3
    for task, got in zip(tasks, predictions, strict=True):
        want = task["predictions"][0]
        assert got["model_version"] == want["model_version"] == "huale-round-001"
        assert got["score"] == pytest.approx(want["score"])
        assert len(got["result"]) == len(want["result"])
        for a, b in zip(got["result"], want["result"], strict=True):
            assert a["value"]["rectanglelabels"] == b["value"]["rectanglelabels"]
            for key in ("x", "y", "width", "height"):
                assert a["value"][key] == pytest.approx(b["value"][key], abs=1e-3)
            assert (a["from_name"], a["to_name"], a["type"]) == ("label", "image", "rectanglelabels")
            assert 0 <= a["value"]["x"] and a["value"]["x"] + a["value"]["width"] <= 100 + 1e-6


def test_scores_sort_the_whole_pool_in_the_rounds_order(backend, project):
    selection = json.loads((project.round_dir(1) / "selection.json").read_text())
    ranking = [r["image_id"] for r in selection["ranking"]]
    assert len(ranking) == 10
    shuffled = list(np.random.default_rng(0).permutation(ranking))
    predictions = backend.predict([pool_task(project, i, k) for k, i in enumerate(shuffled)])
    by_score = [i for _, i in sorted(zip([p["score"] for p in predictions], shuffled, strict=True))]
    assert by_score == ranking  # ascending score = huale's rank, most informative first
    scores = sorted(p["score"] for p in predictions)
    assert scores[:3] == pytest.approx([0, 1 / 3, 2 / 3]) and 1.0 <= scores[3] < scores[-1] < 2.0


def test_label_config_names_are_used(backend, project):
    config = ('<View><Image name="photo" value="$img"/>'
              '<RectangleLabels name="boxes" toName="photo"><Label value="red"/>'
              '<Label value="green"/></RectangleLabels></View>')
    task = {"id": 1, "data": {"img": str((project.pool / "img0.png").resolve())}}
    [prediction] = backend.predict([task], label_config=config)
    assert all((r["from_name"], r["to_name"]) == ("boxes", "photo") for r in prediction["result"])
    backend.setup({"schema": config})
    [again] = backend.predict([task])
    assert again == prediction


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("not a task", "is not a JSON object"),
        ({"id": 4}, 'no "data"'),
        ({"id": 4, "data": {"text": "x"}}, "no 'image' field"),
        ({"id": 4, "data": {"image": "/etc/passwd"}}, "refused"),
        ({"id": 4, "data": {"image": "http://169.254.169.254/x.png"}}, "refused"),
        ({"id": 4, "data": {"image": "/data/local-files/?d=../lab/img0.png"}}, "refused"),
        ({"id": 4, "data": {"image": "/data/upload/1/x.png"}}, "LABEL_STUDIO_URL"),
    ],
)
def test_unknown_or_malformed_tasks_are_task_errors(backend, task, message):
    with pytest.raises(TaskError, match=message):
        backend.predict([task])


def test_a_bad_task_in_a_batch_fails_alone(backend, project, tmp_path):
    """A refused, malformed or unreadable task gets a TaskFailure at its position; the other
    tasks of the batch get the predictions they get without it."""
    import dataclasses

    # pool image img3.png unreadable since the round (the pool folder is shared by the tests:
    # the backend reads a damaged copy instead)
    damaged = tmp_path / "img3.png"
    damaged.write_bytes(b"not a png")
    backend._pool["img3.png"] = dataclasses.replace(backend._pool["img3.png"], path=damaged)
    good = [pool_task(project, "img0.png", 1), pool_task(project, "img5.png", 2)]
    batch = [good[0], {"id": 7, "data": {"image": "/etc/passwd"}}, good[1],
             pool_task(project, "img3.png", 8), "not a task"]
    answers = backend.predict(batch)
    assert len(answers) == 5
    assert [answers[0], answers[2]] == backend.predict(good)
    failures = {a.index: a for a in answers if isinstance(a, TaskFailure)}
    assert sorted(failures) == [1, 3, 4]
    assert failures[1].task_id == 7 and "refused" in str(failures[1].error)
    assert failures[3].task_id == 8 and "cannot read its image" in str(failures[3].error)
    assert failures[4].task_id == "#4" and "not a JSON object" in str(failures[4].error)
    assert all(isinstance(f.error, TaskError) for f in failures.values())


def test_a_batch_with_no_answerable_task_fails_naming_them(backend):
    bad = [{"id": k, "data": {"image": f"/etc/x{k}.png"}} for k in range(5)]
    with pytest.raises(TaskError, match=r"none of the 5 tasks .*task 0: .*task 2: .*and 2 more"):
        backend.predict(bad)


def test_label_studio_failing_to_deliver_one_image_spares_the_batch(project):
    """A task whose image Label Studio cannot deliver (here: nothing listens) is an
    UpstreamError for that task only."""
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = LabelStudioHost.parse(f"http://127.0.0.1:{port}", "tok")
    backend = ProjectBackend(project, label_studio=host, options=OPTIONS)
    answers = backend.predict([{"id": 9, "data": {"image": "/data/upload/1/a.png"}},
                               pool_task(project, "img0.png", 1)])
    assert isinstance(answers[0], TaskFailure) and isinstance(answers[0].error, UpstreamError)
    assert answers[1]["model_version"] == "huale-round-001"
    with pytest.raises(UpstreamError, match="task 9"):
        backend.predict([{"id": 9, "data": {"image": "/data/upload/1/a.png"}}])


def test_an_image_from_label_studio_is_scored_live(project, tmp_path):
    from http.server import ThreadingHTTPServer

    from tests.serve.test_images import FakeLabelStudio, png_bytes  # noqa: F401 (server class)

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = LabelStudioHost.parse(f"http://127.0.0.1:{server.server_address[1]}", "tok")
        backend = ProjectBackend(project, label_studio=host, options=OPTIONS)
        [prediction] = backend.predict([{"id": 9, "data": {"image": "/data/upload/1/a.png"}}])
    finally:
        server.shutdown()
        server.server_close()
    assert prediction["model_version"] == "huale-round-001"
    assert 1.0 <= prediction["score"] <= 2.0  # placed among the round's non-selected images
    for region in prediction["result"]:
        assert (region["original_width"], region["original_height"]) == (20, 10)


def test_no_model_before_the_first_round(tmp_path):
    from huale.data.coco import write_coco
    from huale.project.state import Project
    from tests.conftest import make_tiny_dataset

    make_tiny_dataset(tmp_path / "pool", num_images=3)
    write_coco(make_tiny_dataset(tmp_path / "lab", num_images=2, seed=5), tmp_path / "lab.json")
    project = Project.create(tmp_path / "p", pool=tmp_path / "pool", labeled=tmp_path / "lab.json")
    backend = ProjectBackend(project, options=OPTIONS)
    assert backend.setup({}) == {"model_version": "huale-round-000"}
    assert backend.health()["model_loaded"] is False
    with pytest.raises(NotReady, match="huale round"):
        backend.predict([pool_task(project, "img0.png", 1)])
    result = backend.start_round()  # no round to copy options from, no --budget
    assert result["started"]
    backend.training.wait(60)
    state = backend.health()["training"]
    assert state["state"] == "failed" and "--budget" in state["error"]


def test_concurrent_predictions_equal_sequential_ones(project):
    tasks = [pool_task(project, f"img{i}.png", i) for i in range(10)]
    for replicas in (1, 2):
        backend = ProjectBackend(project, options=ServeOptions(device="cpu", replicas=replicas))
        expected = [backend.predict([t]) for t in tasks]
        got = [None] * len(tasks)

        def call(k):
            got[k] = backend.predict([tasks[k]])  # noqa: B023 - joined below

        threads = [threading.Thread(target=call, args=(k,)) for k in range(len(tasks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert got == expected


def test_annotation_events_update_the_labeled_set_like_ingest(backend, project):
    task = round_tasks(project)[0]
    image_id = task["data"]["huale_id"]
    before = len(project.labeled())
    created = annotation(task, [(2, 3, 20, 30), (30, 30, 60, 50)], ["red", "green"])
    result = backend.handle_event("ANNOTATION_CREATED", {"annotation": created, "task": task,
                                                         "project": {"id": 1}})
    assert result["added"] == [image_id]
    assert len(project.labeled()) == before + 1
    # COCO bbox [x, y, w, h] in pixels, from the percent regions
    assert labeled_boxes(project, image_id) == [(2.0, 3.0, 18.0, 27.0), (30.0, 30.0, 30.0, 20.0)]
    again = backend.handle_event("ANNOTATION_CREATED", {"annotation": created, "task": task})
    assert again["unchanged"] == [image_id] and len(project.labeled()) == before + 1
    updated = annotation(task, [(5, 5, 25, 25)], ["green"], updated="2026-12-01T03:05:00Z")
    result = backend.handle_event("ANNOTATION_UPDATED", {"annotation": updated, "task": task})
    assert result["replaced"] == [image_id]
    assert labeled_boxes(project, image_id) == [(5.0, 5.0, 20.0, 20.0)]
    deleted = backend.handle_event("ANNOTATIONS_DELETED", {"annotations": [{"id": 1}, {"id": 77}],
                                                           "project": {"id": 1}})
    assert deleted == {"removed": [image_id], "ignored": ["77"]}
    assert labeled_boxes(project, image_id) is None and len(project.labeled()) == before


def test_a_pool_image_never_sent_is_taken_and_an_unknown_class_is_an_error(backend, project):
    selection = json.loads((project.round_dir(1) / "selection.json").read_text())
    unsent = next(r["image_id"] for r in selection["ranking"] if not r["selected"])
    task = pool_task(project, unsent, 55)
    result = backend.handle_event("ANNOTATION_CREATED", {
        "annotation": annotation(task, [(1, 1, 9, 9)], ["red"]), "task": task})
    assert result["added"] == [unsent]
    with pytest.raises(Exception, match="unknown class 'blue'"):
        backend.handle_event("ANNOTATION_CREATED", {
            "annotation": annotation(task, [(1, 1, 9, 9)], ["blue"], annotation_id=2), "task": task})
    cancelled = dict(annotation(round_tasks(project)[1], [], [], annotation_id=3), was_cancelled=True)
    result = backend.handle_event("ANNOTATION_CREATED", {"annotation": cancelled,
                                                         "task": round_tasks(project)[1]})
    assert result["outstanding"] and not result["added"]


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("ANNOTATION_CREATED", {"annotation": "x", "task": {}}),
        ("ANNOTATION_CREATED", {"task": {"id": 1, "data": {}}}),
        ("ANNOTATIONS_DELETED", {"annotations": [{"task": 3}]}),
        ("ANNOTATIONS_CREATED", {"annotation": [{"task": 9, "result": []}], "tasks": [{"id": 1}]}),
    ],
)
def test_malformed_events_are_task_errors(backend, event, payload):
    with pytest.raises(TaskError):
        backend.handle_event(event, payload)


def test_other_events_are_acknowledged_and_ignored(backend):
    assert backend.handle_event("PROJECT_UPDATED", {"project": {"id": 1}}) == {
        "ignored": "PROJECT_UPDATED"
    }


def test_events_wait_while_another_process_holds_the_project(backend, project):
    task = round_tasks(project)[0]
    event = {"annotation": annotation(task, [(2, 2, 12, 12)], ["red"]), "task": task}
    with project.lock():  # e.g. `huale round` running in a shell
        result = backend.handle_event("ANNOTATION_CREATED", event)
        assert result["queued"] and backend.health()["pending_events"] == 1
        assert labeled_boxes(project, task["data"]["huale_id"]) is None
    later_task = round_tasks(project)[1]
    later = {"annotation": annotation(later_task, [(4, 4, 14, 14)], ["green"], annotation_id=2),
             "task": later_task}
    result = backend.handle_event("ANNOTATION_CREATED", later)  # replays the kept one first
    assert result == {"queued": False, "pending_events": 0}
    assert labeled_boxes(project, task["data"]["huale_id"]) == [(2.0, 2.0, 10.0, 10.0)]
    assert labeled_boxes(project, later_task["data"]["huale_id"]) == [(4.0, 4.0, 10.0, 10.0)]


def test_start_training_runs_one_round_at_a_time(project):
    release = threading.Event()
    calls = []

    def slow_round(p):
        calls.append(p.root)
        release.wait(30)
        return {"round": 2}

    backend = ProjectBackend(project, options=OPTIONS, run_round=slow_round)
    first = backend.handle_event("START_TRAINING", {"project": {"id": 1}})
    second = backend.handle_event("START_TRAINING", {"project": {"id": 1}})
    assert first["started"] and not second["started"]
    assert backend.health()["training"]["state"] == "running"
    release.set()
    assert backend.training.wait(30)
    assert backend.health()["training"]["state"] == "finished" and len(calls) == 1


def test_start_training_runs_the_next_real_round_and_serves_it(backend, project):
    task = round_tasks(project)[0]
    backend.handle_event("ANNOTATION_CREATED", {
        "annotation": annotation(task, [(2, 3, 20, 30)], ["red"]), "task": task})
    assert backend.handle_event("START_TRAINING", {"project": {"id": 1}})["started"]
    assert backend.training.wait(600)
    state = backend.health()["training"]
    assert state["state"] == "finished", state
    assert state["result"]["round"] == 2
    assert backend.model_version == "huale-round-002"
    record = project.round_record(2)
    assert record["labeled_images"] == 5 and record["options"]["budget"] == 3
    [prediction] = backend.predict([round_tasks(project, 2)[0]])
    assert prediction["model_version"] == "huale-round-002" and prediction["score"] == 0.0
