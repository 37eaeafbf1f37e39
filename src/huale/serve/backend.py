"""The Label Studio ML backend of a huale project, without any HTTP (that is :mod:`.http`).

:class:`ProjectBackend` answers the four things Label Studio asks:

- :meth:`~ProjectBackend.setup` / :attr:`~ProjectBackend.model_version`: the served round's
  model version (``huale-round-NNN``, as the round's task export writes it);
- :meth:`~ProjectBackend.predict`: one prediction per task, in task order: the served model's
  detections (original view, score >= the round's pre-annotation threshold) as
  ``rectanglelabels`` regions, and a ``score`` that puts the most informative task first
  (:mod:`huale.serve.ranking`). A task whose image cannot be had (refused, missing, unreadable,
  Label Studio failing to deliver it) gets a :class:`~.errors.TaskFailure` in its place and the
  rest of the batch is answered; only when no task of the request can be answered does the
  request fail;
- :meth:`~ProjectBackend.handle_event`: ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` (and the
  batch ``ANNOTATIONS_CREATED``) merge the task's annotation into the project's labeled set
  through :func:`huale.project.ingest.ingest_label_studio`, the code of ``huale ingest``;
  ``ANNOTATIONS_DELETED`` (``ANNOTATION_DELETED`` too) takes back the labels a deleted
  annotation gave; ``START_TRAINING`` starts the next round in the background, one at a time;
  every other event is acknowledged and ignored;
- :meth:`~ProjectBackend.health`: the served round and the background round's state.

The model is loaded once per round and shared by all requests (:class:`~.models.ModelPool`).
When the project gets a newer finished round (the background round, or ``huale round`` run
from a shell), the next request loads it. Annotation events that arrive while another process
(or the background round) holds the project's lock are kept in ``PROJECT/serve/pending.json``
and merged, in order, as soon as the lock is free: Label Studio does not resend webhooks.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huale.data.images import image_size
from huale.data.records import DetectionDataset, ImageRecord
from huale.errors import DataError, HualeError
from huale.io import atomic_write_json
from huale.labeling.regions import ConfigNames, config_names, rectangle_regions
from huale.locking import FolderLockedError
from huale.predictions import Needs, PredictionRecord
from huale.serve.errors import NotReady, TaskError, TaskFailure, UpstreamError
from huale.serve.images import ImageFetchError, ImageRefused, ImageSource, LabelStudioHost
from huale.serve.models import ModelPool
from huale.serve.project import (
    ServedRound,
    next_round,
    pool_dataset,
    round_model_version,
    served_round,
    served_round_number,
    task_references,
)
from huale.serve.training import BackgroundRound

log = logging.getLogger(__name__)

SERVE_DIR = "serve"
PENDING_FILE = "pending.json"
ANNOTATIONS_FILE = "annotations.json"
INGEST_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
DELETE_EVENTS = ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED")
TRAIN_EVENT = "START_TRAINING"


@dataclass
class ServeOptions:
    """How the backend runs inference (see ``huale serve --help``)."""

    device: str = "auto"
    replicas: int = 1
    batch_size: int = 4
    amp: bool = True
    max_tasks: int = 256  # tasks per /predict request
    round_budget: int | None = None  # START_TRAINING's budget; None: the last round's


@dataclass
class _Loaded:
    """A served round with its model (None before the first round) and strategy."""

    round: ServedRound
    models: ModelPool | None
    class_names: list[str]
    strategy: Any = None
    context: Any = None


@dataclass
class _TaskImage:
    index: int
    task_id: Any
    record: ImageRecord
    pool_id: str | None


class ProjectBackend:
    """The ML backend of the project at ``project`` (a :class:`huale.project.state.Project`).

    label_studio: the host images may be fetched from; run_round: the job START_TRAINING runs,
    given the project (default :func:`huale.serve.project.next_round`: the next round with the
    last round's options and ``options.round_budget``).
    """

    def __init__(
        self,
        project,
        *,
        label_studio: LabelStudioHost | None = None,
        options: ServeOptions | None = None,
        run_round: Callable[[Any], Any] | None = None,
    ):
        self.project = project
        self.options = options or ServeOptions()
        self.serve_dir = Path(project.root) / SERVE_DIR
        self._run_round = run_round
        self._lock = threading.RLock()  # guards _loaded, the pool listing and the state files
        self._context_lock = threading.Lock()
        self._names = ConfigNames()
        self._loaded: _Loaded | None = None
        pool = pool_dataset(project)
        self._pool = {r.image_id: r for r in pool.records}
        self.images = ImageSource(
            {i: r.path for i, r in self._pool.items()},
            references=task_references(project, pool),
            label_studio=label_studio,
            cache_dir=self.serve_dir / "images",
        )
        self.training = BackgroundRound(on_finish=self._after_round)
        self.refresh()
        self._replay_pending()

    # ------------------------------------------------------------------ the served round
    @property
    def model_version(self) -> str:
        """The version of the newest finished round: the one the next prediction uses (cheap:
        ``/setup`` must answer within Label Studio's 3 s, so nothing is loaded here)."""
        return round_model_version(served_round_number(self.project))

    def refresh(self) -> _Loaded:
        """Load the project's newest finished round if it is not the one served."""
        with self._lock:
            number = served_round_number(self.project)
            loaded = self._loaded
            if loaded is not None and loaded.round.number == number:
                return loaded
            served = served_round(self.project, number)
            self._loaded = self._load(served)
            log.info("serving %s (%s)", self._loaded.round.model_version,
                     served.checkpoint or "no model yet")
            return self._loaded

    def _current(self) -> _Loaded:
        return self.refresh()

    def _load(self, served: ServedRound) -> _Loaded:
        from huale.models.checkpoint import build_from_checkpoint, load_checkpoint
        from huale.runtime.device import resolve_device
        from huale.strategies import build_strategy

        class_names = self.project.class_names
        if served.checkpoint is None:
            return _Loaded(served, None, class_names)
        state = load_checkpoint(served.checkpoint)
        model, _ = build_from_checkpoint(state)
        model.to(resolve_device(self.options.device))
        strategy = build_strategy(served.strategy, **served.strategy_options)
        return _Loaded(served, ModelPool(model, self.options.replicas), class_names, strategy)

    # ------------------------------------------------------------------ /setup, /health
    def setup(self, request: dict[str, Any]) -> dict[str, Any]:
        """Label Studio connects (``project``, ``schema`` = its labeling config, ...)."""
        schema = request.get("schema") or request.get("label_config")
        if schema:
            self._names = config_names(schema)
        return {"model_version": self.model_version}

    def health(self) -> dict[str, Any]:
        """State for ``/health`` (Label Studio waits 1 s for it: nothing is loaded here)."""
        loaded = self._loaded
        assert loaded is not None
        return {
            "model_class": "huale",
            "model_version": loaded.round.model_version,
            "round": loaded.round.number,
            "model_loaded": loaded.models is not None,
            "newest_round": served_round_number(self.project),
            "strategy": loaded.round.strategy if loaded.models is not None else None,
            "pool_images": len(self._pool),
            "pending_events": len(self._read_state(PENDING_FILE, [])),
            "training": self.training.state(),
        }

    # ------------------------------------------------------------------ /predict
    def predict(self, tasks: list[Any], label_config: Any = None
                ) -> list[dict[str, Any] | TaskFailure]:
        """One prediction per task, in order, or a :class:`TaskFailure` for a task that cannot
        be answered (see module docstring). Raises the error itself when every task fails."""
        loaded = self._current()
        if loaded.models is None:
            raise NotReady(
                f"{self.project.root}: no round has trained a model yet; run `huale round "
                f"{self.project.root} --budget N` (or Start Training in Label Studio)"
            )
        if len(tasks) > self.options.max_tasks:
            raise TaskError(f"{len(tasks)} tasks in one request; the limit is {self.options.max_tasks}")
        names = config_names(label_config) if label_config else self._names
        failures: dict[int, TaskFailure] = {}
        items = []
        for i, task in enumerate(tasks):
            try:
                items.append(self._task_image(i, task, names))
            except (TaskError, UpstreamError) as exc:
                failures[i] = TaskFailure(i, _task_id(task, i), exc)
        ranking = loaded.round.ranking
        ranked = [t for t in items if t.pool_id is not None and t.pool_id in ranking]
        live = [t for t in items if not (t.pool_id is not None and t.pool_id in ranking)]

        records = self._infer(loaded, ranked, Needs(), failures)
        scores = {t.index: ranking.prediction_score(t.pool_id) for t in ranked
                  if t.index in records}
        if live:
            needs = loaded.strategy.needs
            live_records = self._infer(loaded, live, needs, failures)
            records.update(live_records)
            if live_records:
                context = self._context(loaded, needs)
                unique = {r.image_id: r for r in live_records.values()}
                verdicts = {v.image_id: v
                            for v in loaded.strategy.score(list(unique.values()), context)}
                for index, record in live_records.items():
                    verdict = verdicts[record.image_id]
                    scores[index] = ranking.live_score(verdict.score, verdict.stage)
        for failure in failures.values():
            log.warning("/predict: no prediction for task %s: %s", failure.task_id, failure.error)
        if tasks and len(failures) == len(tasks):
            raise _all_failed([failures[i] for i in range(len(tasks))])

        threshold = loaded.round.preannotation_threshold
        predictions: list[dict[str, Any] | TaskFailure] = []
        answered = {t.index: t for t in items}
        for index in range(len(tasks)):
            if index in failures:
                predictions.append(failures[index])
                continue
            t = answered[index]
            dets = records[index].original
            dets = dets.select(dets.scores >= threshold)
            predictions.append(
                {
                    "model_version": loaded.round.model_version,
                    "score": scores[index],
                    "result": rectangle_regions(
                        dets, t.record.width, t.record.height, loaded.class_names, names,
                        id_prefix=f"huale-{t.task_id}-",
                    ),
                }
            )
        return predictions

    def _task_image(self, index: int, task: Any, names: ConfigNames) -> _TaskImage:
        """The image of ``task`` (refused -> 400, Label Studio failing to deliver it -> 502)."""
        if not isinstance(task, dict):
            raise TaskError(f"task #{index} is not a JSON object")
        task_id = _task_id(task, index)
        data = task.get("data")
        if not isinstance(data, dict):
            raise TaskError(f"task {task_id}: no \"data\" object")
        if names.image_field not in data:
            raise TaskError(
                f"task {task_id}: data has no {names.image_field!r} field (the image of the "
                "labeling config)"
            )
        try:
            found = self.images.resolve(data[names.image_field], hint_id=data.get("huale_id"))
        except ImageRefused as exc:
            raise TaskError(f"task {task_id}: {exc}") from None
        except ImageFetchError as exc:
            raise UpstreamError(f"task {task_id}: {exc}") from None
        if found.pool_id is not None:
            record = self._pool[found.pool_id]
        else:
            try:
                width, height = image_size(found.path)
            except DataError as exc:
                raise TaskError(f"task {task_id}: {exc.problem}") from None
            record = ImageRecord(f"label-studio-task-{task_id}", found.path, width, height)
        return _TaskImage(index, task_id, record, found.pool_id)

    def _infer(self, loaded: _Loaded, items: Sequence[_TaskImage], needs: Needs,
               failures: dict[int, TaskFailure]) -> dict[int, PredictionRecord]:
        """Prediction records of ``items`` (by item index) with the views ``needs`` asks for;
        an item whose image cannot be read is added to ``failures`` instead."""
        if not items:
            return {}
        from huale.inference import ScoringReport, score_pool

        # one record per distinct image id, so a batch may name an image twice
        unique: dict[str, ImageRecord] = {}
        for t in items:
            unique.setdefault(t.record.image_id, t.record)
        dataset = DetectionDataset(list(unique.values()), loaded.class_names)
        report = ScoringReport()
        with loaded.models.borrow() as model:
            found = score_pool(
                model, dataset, needs, self._scoring_request(), seed=loaded.round.seed,
                report=report,
            )
        by_id = {r.image_id: r for r in found}
        out = {}
        for t in items:
            record = by_id.get(t.record.image_id)
            if record is None:
                reason = dict(report.skipped).get(t.record.image_id, "unreadable")
                error = TaskError(f"task {t.task_id}: cannot read its image ({reason})")
                failures[t.index] = TaskFailure(t.index, t.task_id, error)
                continue
            out[t.index] = record
        return out

    def _scoring_request(self):
        """How the served model scores images (in this process, no DataLoader workers)."""
        from huale.inference import ScoringRequest

        return ScoringRequest(batch_size=self.options.batch_size, device=self.options.device,
                              amp=self.options.amp, workers=0, progress=False)

    def _context(self, loaded: _Loaded, needs: Needs):
        """The strategy's view of the labeled set, built once per served round."""
        with self._context_lock:
            if loaded.context is None:
                from huale.selection.context import build_selection_context

                labeled = self.project.labeled()
                dataset = labeled.dataset(loaded.class_names) if len(labeled) else None
                with loaded.models.borrow() as model:
                    loaded.context = build_selection_context(
                        model, dataset, needs, loaded.class_names, self._scoring_request(),
                        seed=loaded.round.seed,
                    )
            return loaded.context

    # ------------------------------------------------------------------ /webhook
    def handle_event(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Act on a Label Studio event (see module docstring); unknown events are ignored."""
        if event in INGEST_EVENTS:
            tasks = _annotated_tasks(event, payload)
            return self._apply_or_queue({"event": event, "tasks": tasks})
        if event in DELETE_EVENTS:
            ids = _deleted_annotation_ids(payload)
            return self._apply_or_queue({"event": event, "annotation_ids": ids})
        if event == TRAIN_EVENT:
            return self.start_round()
        return {"ignored": event}

    def start_round(self) -> dict[str, Any]:
        """Start the next round in the background unless one is running."""
        if self._run_round is not None:
            job = self._run_round
        else:
            def job(project):
                return next_round(project, budget=self.options.round_budget,
                                  device=self.options.device)
        started = self.training.start(lambda: job(self.project), description="round")
        return {"started": started.started, "training": started.state}

    def _after_round(self, result: Any) -> None:
        self.refresh()
        self._replay_pending()

    def _apply_or_queue(self, change: dict[str, Any]) -> dict[str, Any]:
        """Apply an annotation change now, or keep it for later if the project is locked."""
        with self._lock:
            pending = self._read_state(PENDING_FILE, [])
            if pending:
                pending.append(change)
                self._write_state(PENDING_FILE, pending)
                self._replay_pending()
                left = len(self._read_state(PENDING_FILE, []))
                return {"queued": bool(left), "pending_events": left}
            try:
                return self._apply(change)
            except FolderLockedError as exc:
                self._write_state(PENDING_FILE, [change])
                log.warning("project busy (%s): event kept for later", exc)
                return {"queued": True, "pending_events": 1, "reason": str(exc)}

    def _replay_pending(self) -> None:
        """Apply the kept events in order while the project's lock can be had."""
        with self._lock:
            pending = self._read_state(PENDING_FILE, [])
            while pending:
                try:
                    self._apply(pending[0])
                except FolderLockedError:
                    break
                except HualeError as exc:
                    log.error("kept event %s could not be applied and is dropped: %s",
                              pending[0].get("event"), exc)
                pending.pop(0)
                self._write_state(PENDING_FILE, pending)

    def _apply(self, change: dict[str, Any]) -> dict[str, Any]:
        if "tasks" in change:
            return self._ingest(change["tasks"])
        return self._forget(change["annotation_ids"])

    def _ingest(self, tasks: list[dict]) -> dict[str, Any]:
        from huale.project.ingest import ingest_label_studio

        # the image this server resolved for the task is the one ingest must match: name it by
        # its pool id (file names alone can be ambiguous between folders)
        tasks = [self._with_pool_id(task) for task in tasks]
        report = ingest_label_studio(
            self.project, tasks, source="label-studio webhook", allow_new=True
        )
        known = self._read_state(ANNOTATIONS_FILE, {})
        for task in tasks:
            pool_id = self._pool_id_of(task)
            for annotation in task.get("annotations", []):
                if pool_id is not None and annotation.get("id") is not None:
                    known[str(annotation["id"])] = {
                        "task": task.get("id"), "pool_id": pool_id,
                        "updated_at": annotation.get("updated_at"),
                    }
        self._write_state(ANNOTATIONS_FILE, known)
        return {
            "added": report.added, "replaced": report.replaced, "unchanged": report.unchanged,
            "outstanding": report.outstanding, "kept_newer": report.kept_newer,
        }

    def _forget(self, annotation_ids: list[str]) -> dict[str, Any]:
        """Remove from the labeled set the images whose labels came from these annotations
        (and were not replaced since); other ids are ignored and listed."""
        known = self._read_state(ANNOTATIONS_FILE, {})
        removed, ignored = [], []
        with self.project.lock():
            labeled = self.project.labeled()
            for annotation_id in annotation_ids:
                entry = known.pop(str(annotation_id), None)
                image = None
                if entry is not None and entry["pool_id"] in self._pool:
                    image = labeled.image_at(self._pool[entry["pool_id"]].path)
                meta = (image or {}).get("huale") or {}
                if image is None or meta.get("updated_at") != entry.get("updated_at") or \
                        meta.get("source") != "label-studio":
                    ignored.append(annotation_id)
                    continue
                labeled.coco["images"] = [i for i in labeled.coco["images"] if i is not image]
                labeled.coco["annotations"] = [
                    a for a in labeled.coco["annotations"] if a["image_id"] != image["id"]
                ]
                removed.append(entry["pool_id"])
            if removed:
                labeled.save(self.project.labeled_path)
                self.project.record_ingest({"source": "label-studio webhook", "format":
                                            "label-studio", "removed": len(removed)})
        self._write_state(ANNOTATIONS_FILE, known)
        return {"removed": removed, "ignored": ignored}

    def _with_pool_id(self, task: dict) -> dict:
        pool_id = self._pool_id_of(task)
        if pool_id is None:
            return task
        return dict(task, data=dict(task["data"], huale_id=pool_id))

    def _pool_id_of(self, task: dict) -> str | None:
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            return None
        hint = data.get("huale_id")
        if isinstance(hint, str) and hint in self._pool:
            return hint
        reference = data.get(self._names.image_field)
        return self.images.pool_image(reference) if isinstance(reference, str) else None

    # ------------------------------------------------------------------ state files
    def _read_state(self, name: str, default):
        path = self.serve_dir / name
        if not path.is_file():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(path, f"cannot read huale serve's state ({exc})") from None

    def _write_state(self, name: str, value) -> None:
        atomic_write_json(self.serve_dir / name, value)


def _task_id(task: Any, index: int) -> Any:
    """Label Studio's id of ``task``, or ``#index`` (its position) when it has none."""
    return task.get("id", f"#{index}") if isinstance(task, dict) else f"#{index}"


def _all_failed(failures: list[TaskFailure]) -> HualeError:
    """The error of a request none of whose tasks could be answered: the task's own error for
    one task; for more, one of the first task's kind that names the first few."""
    first = failures[0].error
    if len(failures) == 1:
        return first
    shown = "; ".join(str(f.error) for f in failures[:3])
    more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
    return type(first)(f"none of the {len(failures)} tasks could be predicted: {shown}{more}")


def _annotated_tasks(event: str, payload: dict[str, Any]) -> list[dict]:
    """The payload as a Label Studio export: tasks with their ``annotations``."""
    annotation, task = payload.get("annotation"), payload.get("task")
    if event == "ANNOTATIONS_CREATED":
        annotations = annotation if isinstance(annotation, list) else None
        tasks = payload.get("tasks", task)
        tasks = tasks if isinstance(tasks, list) else None
        if annotations is None or tasks is None:
            raise TaskError(f"{event}: expected lists \"annotation\" and \"tasks\"")
        by_id = {t.get("id"): dict(t, annotations=[]) for t in tasks if isinstance(t, dict)}
        for a in annotations:
            if not isinstance(a, dict) or a.get("task") not in by_id:
                raise TaskError(f"{event}: an annotation names no task of the payload")
            by_id[a["task"]]["annotations"].append(a)
        return list(by_id.values())
    if not isinstance(annotation, dict) or not isinstance(task, dict):
        raise TaskError(f"{event}: expected \"annotation\" and \"task\" objects")
    if not isinstance(annotation.get("result", []), list) or not isinstance(task.get("data"), dict):
        raise TaskError(f"{event}: malformed annotation or task")
    return [dict(task, annotations=[annotation])]


def _deleted_annotation_ids(payload: dict[str, Any]) -> list[str]:
    """Ids of ``ANNOTATIONS_DELETED``'s ``annotations`` (or ``ANNOTATION_DELETED``'s one)."""
    found = payload.get("annotations")
    if found is None and isinstance(payload.get("annotation"), dict):
        found = [payload["annotation"]]
    if not isinstance(found, list) or not all(isinstance(a, dict) and "id" in a for a in found):
        raise TaskError("a deletion event needs \"annotations\": [{\"id\": ...}, ...]")
    return [str(a["id"]) for a in found]

